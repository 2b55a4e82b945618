"""Coverage of the value posteriors on ``dropout_smart``: dropout declared (IPCW) vs complete case.

For each seeded replicate (n units from ``bd.scenario("dropout_smart")``, about 20% of which
drop out before stage 2, MAR given the intermediate covariate X2) two analyses are fitted with
the same correctly specified stages and settings:

- ``ipcw``: the data as they are, with ``bd.Stage("A2", ..., censoring="X1 + A1 + X2")``
  (inverse-probability-of-censoring weighted stage-1 fit and IPW/AIPW values);
- ``complete_case``: the units that dropped out removed (``df.dropna()``), no censoring model:
  what a user does to get past the missing values.

For each of the four embedded static regimes (A1, A2) in {0, 1}^2 the value posterior is computed
by ``method="q"`` (the default for fixed regimes), ``"ipw"`` and ``"aipw"``, and its 95%
equal-tailed interval is checked against the exact true value (closed form). The baseline, in
the same run, is the complete-case analysis. Writes one CSV row per (analysis, method, regime,
replicate) to ``benchmarks/results/dropout.csv`` and the coverage table to
``benchmarks/results/dropout.md``.

    python benchmarks/bench_dropout.py                      # n = 1000, 20 replicates
    python benchmarks/bench_dropout.py --reps 2 --n 300     # smoke run
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayesdtr as bd

HERE = Path(__file__).resolve().parent


def complete_case_stages(stages: list[bd.Stage]) -> list[bd.Stage]:
    """The same stages without ``censoring=``."""
    return [
        bd.Stage(
            s.treatment,
            main=s.main,
            contrast=s.contrast,
            propensity=s.propensity,
            applies=s.applies,
        )
        for s in stages
    ]


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a Markdown table (floats to 3 decimals), without optional dependencies."""
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    fmt = [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        for row in df.itertuples(index=False)
    ]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(r) + " |" for r in fmt]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "dropout.csv")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    scn = bd.scenario("dropout_smart")
    regimes = {f"({a1},{a2})": bd.Regime.static(A1=a1, A2=a2) for a1 in (0, 1) for a2 in (0, 1)}
    truth = {name: scn.true_value(r) for name, r in regimes.items()}
    rows = []
    t_start = time.perf_counter()
    for rep in range(args.reps):
        df = scn.sample(args.n, seed=args.seed + rep)
        cc = df.dropna().reset_index(drop=True)
        for analysis, data, stages in (
            ("ipcw", df, scn.stages),
            ("complete_case", cc, complete_case_stages(scn.stages)),
        ):
            t0 = time.perf_counter()
            post = bd.DTRModel(data, stages, outcome="Y").fit(
                draws=args.draws,
                tune=args.tune,
                chains=args.chains,
                random_seed=args.seed + rep,
                progressbar=False,
            )
            fit_s = time.perf_counter() - t0
            for method in ("q", "ipw", "aipw"):
                for name, reg in regimes.items():
                    v = post.value(reg, method=method).values.ravel()
                    lo, hi = np.quantile(v, [0.025, 0.975])
                    rows.append(
                        dict(
                            analysis=analysis,
                            method=method,
                            regime=name,
                            rep=rep,
                            n=args.n,
                            n_dropped=int(df["A2"].isna().sum()),
                            truth=truth[name],
                            mean=float(v.mean()),
                            sd=float(v.std()),
                            lo=float(lo),
                            hi=float(hi),
                            covered=bool(lo <= truth[name] <= hi),
                            fit_seconds=fit_s,
                        )
                    )
        print(
            f"replicate {rep + 1}/{args.reps} done ({time.perf_counter() - t_start:.0f} s)",
            flush=True,
        )
    res = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(args.out, index=False)
    res["bias"] = res["mean"] - res["truth"]
    table = (
        res.groupby(["analysis", "method"])
        .agg(
            coverage=("covered", "mean"),
            cells=("covered", "size"),
            bias=("bias", "mean"),
            post_sd=("sd", "mean"),
        )
        .reset_index()
    )
    per_regime = res.pivot_table(
        index=["analysis", "method"], columns="regime", values="covered", aggfunc="mean"
    )
    bias_regime = res.pivot_table(
        index=["analysis", "method"], columns="regime", values="bias", aggfunc="mean"
    )
    lines = [
        "# dropout_smart: IPCW (censoring= declared) vs complete case",
        "",
        f"`python benchmarks/bench_dropout.py --n {args.n} --reps {args.reps} --draws {args.draws} "
        f"--tune {args.tune} --chains {args.chains} --seed {args.seed}`; 95% equal-tailed intervals, "
        f"{args.reps} replicates x 4 embedded static regimes; total {time.perf_counter() - t_start:.0f} s; "
        f"mean dropout {res.drop_duplicates('rep')['n_dropped'].mean() / args.n:.3f}.",
        "",
        "## Coverage over (regime x replicate) cells, mean bias, mean posterior SD",
        "",
        markdown(table, index=False),
        "",
        "## Coverage per regime",
        "",
        markdown(per_regime),
        "",
        "## Mean bias per regime (truth: "
        + ", ".join(f"{k} {v:g}" for k, v in truth.items())
        + ")",
        "",
        markdown(bias_regime),
        "",
    ]
    md = "\n".join(lines)
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
