"""Build the calibration table and figure from the cells written by ``run.py``.

Usage::

    python benchmarks/calibration/summarize.py

Writes ``benchmarks/calibration/calibration.csv`` (one row per scenario, n, method and estimand:
replicates, replicates the method refused (an error such as a bootstrap with singular resamples;
not in the coverage), coverage, its Monte Carlo SE sqrt(c (1 - c) / R), mean width, bias, and the ratio of
the interval's SD (width / 3.92) to the SD of the estimates over replicates) and
``calibration.png`` (coverage with +-2 MC SE against the nominal 0.95 and the 0.92-0.98 band),
and prints the worst cell of each method.

The published designs' cells of the first tables (``cells_shared_seeds/``, one data seed per
replicate shared by every scenario, see ``run.py``) are summarized next to the current ones in
``calibration_seed_check.csv``: coverage in each table and pooled over both (independent data),
for every method and estimand both have.

``calibration_interval_shape.csv`` asks whether the shape of the default (``bayes``) value
intervals costs coverage: for every cell, the coverage of the 95% equal-tailed interval that the
table reports, of the interval with the same width centred at the posterior mean (``centred``)
and of its reflection about the mean (``basic``, [2 mean - upper, 2 mean - lower]), with the
mean of (upper - mean) - (mean - lower) over the width (``skew``). These are re-read from the
stored intervals; the library's values are the posterior draws, and which interval a user
reports from them is the user's choice.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
ESTIMANDS = ["psi10", "psi11", "V(d*)", "V(d_hat)"]


def table(folder: Path = HERE / "cells") -> pd.DataFrame:
    cells = sorted(folder.glob("*.csv"))
    if not cells:
        raise SystemExit("no cells yet: run benchmarks/calibration/run.py first")
    d = pd.concat([pd.read_csv(p) for p in cells], ignore_index=True)
    d = d[d.method != "error"].drop_duplicates(["scenario", "n", "replicate", "method", "estimand"])
    # a method that refused a replicate (estimand "error", e.g. a bootstrap whose resamples
    # were singular) is counted in `refused`, not in the coverage
    refused = d[d.estimand == "error"].groupby(["scenario", "n", "method"]).size().rename("refused")
    d = d[d.estimand != "error"]
    g = d.groupby(["scenario", "n", "method", "estimand"])
    out = g.agg(
        replicates=("covered", "size"),
        coverage=("covered", "mean"),
        width=("width", "mean"),
        bias=("estimate", "mean"),
        truth=("truth", "mean"),
        seconds=("seconds", "mean"),
    ).reset_index()
    out["bias"] = out["bias"] - out["truth"]
    out["mc_se"] = np.sqrt(out.coverage * (1 - out.coverage) / out.replicates)
    # Interval SD (width / 3.92, the normal approximation) over the SD of the point estimates
    # across replicates: about 1 for a calibrated method (the check polle runs for its online
    # estimator, asked of the null example 1).
    out["sd_ratio"] = (out["width"] / (2 * 1.959964)) / g["estimate"].std().to_numpy()
    out = out.merge(refused.reset_index(), on=["scenario", "n", "method"], how="left")
    out["refused"] = out["refused"].fillna(0).astype(int)
    return out[["scenario", "n", "method", "estimand", "replicates", "refused", "coverage", "mc_se", "width",
                "bias", "sd_ratio", "seconds"]]


def seed_check(tab: pd.DataFrame) -> pd.DataFrame | None:
    """The published designs' coverage with per-cell seeds (``tab``) against the first tables'
    shared seeds, and pooled (the two sets of replicates are independent)."""
    folder = HERE / "cells_shared_seeds"
    if not any(folder.glob("*.csv")):
        return None
    old = table(folder)
    keys = ["scenario", "n", "method", "estimand"]
    both = tab.merge(old, on=keys, suffixes=("", "_shared"))
    r, r0 = both.replicates, both.replicates_shared
    both["pooled"] = (both.coverage * r + both.coverage_shared * r0) / (r + r0)
    both["pooled_mc_se"] = np.sqrt(both.pooled * (1 - both.pooled) / (r + r0))
    return both[keys + ["replicates", "coverage", "replicates_shared", "coverage_shared", "pooled", "pooled_mc_se",
                        "sd_ratio", "sd_ratio_shared"]]


def interval_shape(folder: Path = HERE / "cells", method: str = "bayes") -> pd.DataFrame:
    """Coverage of the value intervals of ``method`` by interval shape (see the module docstring)."""
    d = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("*.csv"))], ignore_index=True)
    d = d[(d.method == method) & d.estimand.str.startswith("V")].drop_duplicates(
        ["scenario", "n", "replicate", "estimand"])
    half = (d.upper - d.lower) / 2
    d = d.assign(
        centred=((d.estimate - half) <= d.truth) & (d.truth <= (d.estimate + half)),
        basic=((2 * d.estimate - d.upper) <= d.truth) & (d.truth <= (2 * d.estimate - d.lower)),
        skew=((d.upper - d.estimate) - (d.estimate - d.lower)) / (d.upper - d.lower),
    )
    return d.groupby(["scenario", "n", "estimand"]).agg(
        replicates=("covered", "size"), equal_tailed=("covered", "mean"), centred=("centred", "mean"),
        basic=("basic", "mean"), skew=("skew", "mean")).reset_index()


def figure(tab: pd.DataFrame, path: Path) -> None:
    methods = sorted(tab.method.unique())
    fig, axes = plt.subplots(1, len(ESTIMANDS), figsize=(4.2 * len(ESTIMANDS), 0.32 * tab[["scenario", "n"]].drop_duplicates().shape[0] + 2.2), sharey=True)
    rows = tab[["scenario", "n"]].drop_duplicates().sort_values(["n", "scenario"])
    labels = [f"{s.replace('chakraborty_', '')} n={n}" for s, n in zip(rows.scenario, rows.n, strict=True)]
    ypos = {(s, n): i for i, (s, n) in enumerate(zip(rows.scenario, rows.n, strict=True))}
    colors = dict(zip(methods, plt.cm.tab10.colors, strict=False))
    for ax, est in zip(axes, ESTIMANDS, strict=True):
        ax.axvspan(0.92, 0.98, color="0.9")
        ax.axvline(0.95, color="0.4", lw=0.8)
        sub = tab[tab.estimand == est]
        for j, m in enumerate(methods):
            s = sub[sub.method == m]
            y = np.array([ypos[(a, b)] for a, b in zip(s.scenario, s.n, strict=True)]) + (j - len(methods) / 2) * 0.09
            ax.errorbar(s.coverage, y, xerr=2 * s.mc_se, fmt="o", ms=3, lw=0.8, color=colors[m], label=m)
        ax.set_title(est)
        ax.set_xlim(0.2, 1.01)
        ax.set_xlabel("coverage of 95% intervals")
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="lower left", fontsize=7)
    fig.suptitle("Calibration near the decision boundary (grey band 0.92-0.98; bars: +-2 Monte Carlo SE)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    tab = table()
    tab.to_csv(HERE / "calibration.csv", index=False, float_format="%.4f")
    figure(tab, HERE / "calibration.png")
    check = seed_check(tab)
    if check is not None:
        check.to_csv(HERE / "calibration_seed_check.csv", index=False, float_format="%.4f")
    shape = interval_shape()
    shape.to_csv(HERE / "calibration_interval_shape.csv", index=False, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        piv = tab.pivot_table(index=["scenario", "n"], columns=["estimand", "method"], values="coverage")
        print(piv.round(3).to_string())
        null = tab[(tab.scenario == "chakraborty_ex1") & tab.estimand.str.startswith("V")]
        print("\nnull example 1: interval SD / SD of estimates over replicates")
        print(null.pivot_table(index=["n", "estimand"], columns="method", values="sd_ratio").round(3).to_string())
        print("\nworst cell per method (coverage, and how far outside 0.92-0.98):")
        for m, s in tab.groupby("method"):
            w = s.loc[(s.coverage - 0.95).abs().idxmax()]
            print(f"  {m:16s} {w.scenario} n={w.n} {w.estimand}: {w.coverage:.3f} (MC SE {w.mc_se:.3f}, R={w.replicates})")
        cols = ["equal_tailed", "centred", "basic"]
        print("\nbayes value intervals by shape: mean coverage over cells, cells outside 0.92-0.98")
        print(pd.DataFrame({"mean": shape[cols].mean(),
                            "outside": ((shape[cols] < 0.92) | (shape[cols] > 0.98)).sum()}).round(3).to_string())
        if check is not None:
            print("\ndefault (bayes) outside 0.92-0.98 in either seed set: coverage per-cell seeds | shared seeds | pooled")
            c = check[check.method == "bayes"]
            out = c[(c.coverage < 0.92) | (c.coverage > 0.98) | (c.coverage_shared < 0.92) | (c.coverage_shared > 0.98)]
            print(out.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
