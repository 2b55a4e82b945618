"""Propagation modes with BART Q-functions on ``nonlinear_band`` (known truth), same data.

Per seeded replicate (n = 1,000 by default) one data set is analysed with
``scn.bart_stages(trees=50)`` and each ``propagation=`` mode (``modal``, the default; ``mean``;
``predictive``, Murray, Yuan and Thall's (2018) choice: a pseudo-outcome is a posterior predictive
draw under the rule's arm where it differs from the observed one; ``augmented``). The last stage's
fit is the same in every mode (same seed); the modes differ in the stage-1 pseudo-outcomes.

Recorded per replicate and mode:

- the share of units whose posterior-mode rule (arm of highest P(optimal)) matches the true
  optimal arm, per stage;
- the 95% equal-tailed interval of ``value(post.rule())`` (the default: online sample splitting,
  AIPW with the known propensities) and whether it covers the true value of the estimated rule
  (``scn.true_value(post.rule())``, midpoint quadrature);
- the 95% interval of the plug-in Q-value of the optimal regime (``value("optimal",
  method="q", crossfit=0)``: it reads only the Q-functions, so the propagation mode shows most)
  and whether it covers the optimal value 4/3;
- seconds of the fit and of the whole analysis.

Usage::

    python benchmarks/bench_bart_propagation.py --reps 10      # results/bart_propagation.{csv,md}
    python benchmarks/bench_bart_propagation.py --reps 1 --modes modal mean --draws 50  # quick look
    python benchmarks/bench_bart_propagation.py --table-only   # the Markdown table of the CSV
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings

import numpy as np
from _util import RESULTS

MODES = ("modal", "mean", "predictive", "augmented")


def analyse(bd, scn, df, stages, args, seed, mode):
    t0 = time.perf_counter()
    post = bd.DTRModel(df, stages, outcome=scn.outcome).fit(
        draws=args.draws,
        chains=args.chains,
        random_seed=seed,
        propagation=mode,
        progressbar=False,
        warn=False,
    )
    t_fit = time.perf_counter() - t0
    match = []
    for k in (1, 2):
        p = post.prob_optimal(k)
        rule_k = np.asarray(p.columns)[np.argmax(p.to_numpy(), axis=1)]
        match.append(float(np.mean(rule_k == scn.true_optimal_treatment(df, k))))
    plug = post.value("optimal", method="q", crossfit=0).values
    rule = post.rule()
    v = post.value(rule)
    secs = time.perf_counter() - t0
    lo, hi = np.quantile(v.values, [0.025, 0.975])
    plo, phi = np.quantile(plug, [0.025, 0.975])
    truth = scn.true_value(rule)
    v_opt = scn.true_value("optimal")
    return {
        "fit_seconds": round(t_fit, 2),
        "analysis_seconds": round(secs, 2),
        "match_stage1": match[0],
        "match_stage2": match[1],
        "value_mean": float(v.mean()),
        "lo95": float(lo),
        "hi95": float(hi),
        "true_value_rule": truth,
        "covers_rule_value": bool(lo <= truth <= hi),
        "plugin_q_mean": float(plug.mean()),
        "plugin_lo95": float(plo),
        "plugin_hi95": float(phi),
        "plugin_covers_optimal": bool(plo <= v_opt <= phi),
    }


def summarise(rows, modes) -> list[dict]:
    out = []
    for mode in modes:
        sub = [r for r in rows if r["mode"] == mode]
        if not sub:
            continue
        out.append(
            {
                "mode": mode,
                "reps": len(sub),
                "match_stage1": round(float(np.mean([r["match_stage1"] for r in sub])), 4),
                "min_match_stage1": round(float(np.min([r["match_stage1"] for r in sub])), 4),
                "match_stage2": round(float(np.mean([r["match_stage2"] for r in sub])), 4),
                "cover_rule_value": f"{sum(r['covers_rule_value'] for r in sub)}/{len(sub)}",
                "width_rule_value": round(float(np.mean([r["hi95"] - r["lo95"] for r in sub])), 3),
                "plugin_cover_4/3": f"{sum(r['plugin_covers_optimal'] for r in sub)}/{len(sub)}",
                "plugin_width": round(
                    float(np.mean([r["plugin_hi95"] - r["plugin_lo95"] for r in sub])), 3
                ),
                "plugin_bias": round(float(np.mean([r["plugin_q_mean"] for r in sub])) - 4 / 3, 3),
                "median_fit_s": round(float(np.median([r["fit_seconds"] for r in sub])), 1),
                "median_analysis_s": round(
                    float(np.median([r["analysis_seconds"] for r in sub])), 1
                ),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--first", type=int, default=0, help="index of the first replicate")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--modes", nargs="+", default=list(MODES[:3]), choices=MODES)
    ap.add_argument("--out", default=str(RESULTS / "bart_propagation.csv"))
    ap.add_argument("--table-only", action="store_true", help="summarise the CSV in --out")
    args = ap.parse_args()
    if args.table_only:
        with open(args.out, newline="") as fh:
            rows = [_typed(r) for r in csv.DictReader(fh)]
        write_table(rows, args.modes, args.out)
        return
    warnings.simplefilter("ignore")
    import bayesdtr as bd

    scn = bd.scenario("nonlinear_band")
    rows = []
    for r in range(args.first, args.first + args.reps):
        df = scn.sample(args.n, seed=2000 + r)
        for mode in args.modes:
            row = {
                "rep": r,
                "mode": mode,
                "n": args.n,
                "draws": args.draws * args.chains,
                **analyse(bd, scn, df, scn.bart_stages(trees=args.trees), args, r + 1, mode),
            }
            rows.append(row)
            print(row, flush=True)
            RESULTS.mkdir(exist_ok=True)
            with open(args.out, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    write_table(rows, args.modes, args.out)


def _typed(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if v in ("True", "False"):
            out[k] = v == "True"
        elif k in ("mode",):
            out[k] = v
        else:
            out[k] = float(v)
    return out


def write_table(rows: list[dict], modes, out: str) -> None:
    """Print the summary table and write it next to the CSV as Markdown (same name, .md)."""
    table = summarise(rows, modes)
    lines = [
        "| " + " | ".join(table[0]) + " |",
        "|" + "---|" * len(table[0]),
        *("| " + " | ".join(str(v) for v in t.values()) + " |" for t in table),
    ]
    text = "\n".join(lines)
    print(text)
    with open(out.removesuffix(".csv") + ".md", "w") as fh:
        fh.write(
            "# Propagation modes with BART on nonlinear_band\n\n"
            "`python benchmarks/bench_bart_propagation.py --reps "
            f"{len({r['rep'] for r in rows})}` (n = {int(rows[0]['n'])}, "
            f"{int(rows[0]['draws'])} draws per stage, 50 trees). Columns: share of units whose "
            "posterior-mode rule is the true optimal arm (mean, and the worst replicate at "
            "stage 1); replicates whose 95% interval of value(post.rule()) (online AIPW) covers "
            "the estimated rule's true value, and its mean width; the same for the plug-in "
            "value('optimal', method='q', crossfit=0) against the optimal value 4/3, with its "
            "mean bias.\n\n" + text + "\n"
        )


if __name__ == "__main__":
    main()
