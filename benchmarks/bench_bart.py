"""BART Q-functions against the linear model on ``nonlinear_band`` (known truth), same run.

Per seeded replicate (n = 1,000 by default), two analyses of the same data:

- ``bart``: ``scn.bart_stages(trees=50)`` (stochtree, engine "bart"; 20 imputations at stage 1);
- ``linear``: ``scn.linear_stages()``, linear in X1, X2 (contrasts ``1 + X_k``; conjugate engine).

Each is timed as fit + ``prob_optimal`` at both stages + ``value(post.rule())`` (the default:
online sample splitting, AIPW with the known propensities). Recorded: the share of units whose
posterior-mode rule (arm of highest P(optimal)) matches the true optimal arm, per stage; the
95% equal-tailed interval of ``value(post.rule())`` and whether it covers the true value of the
estimated rule (``scn.true_value(post.rule())``, Monte Carlo) and the optimal value 4/3.

With ``--family bernoulli`` the data come from ``scenario("nonlinear_band", family="bernoulli")``
(0/1 outcome; the last stage is a probit BART, the linear model logistic, fitted by NUTS); the
true values are then probabilities (optimal 0.8). ``--models bart`` leaves the linear model out.

Usage::

    python benchmarks/bench_bart.py --reps 20              # writes results/bart_nonlinear.csv
    python benchmarks/bench_bart.py --reps 10 --family bernoulli --models bart \
        --out benchmarks/results/bart_nonlinear_bernoulli.csv
    python benchmarks/bench_bart.py --reps 2 --draws 100   # quick look
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings

import numpy as np
from _util import RESULTS


def analyse(bd, scn, df, stages, args, seed):
    t0 = time.perf_counter()
    post = bd.DTRModel(df, stages, outcome=scn.outcome, family=scn.family).fit(
        draws=args.draws, chains=args.chains, random_seed=seed, progressbar=False, warn=False
    )
    t_fit = time.perf_counter() - t0
    match = []
    for k in (1, 2):
        p = post.prob_optimal(k)
        mode = np.asarray(p.columns)[np.argmax(p.to_numpy(), axis=1)]
        match.append(float(np.mean(mode == scn.true_optimal_treatment(df, k))))
    rule = post.rule()
    v = post.value(rule)
    secs = time.perf_counter() - t0
    lo, hi = np.quantile(v.values, [0.025, 0.975])
    t1 = time.perf_counter()
    truth = scn.true_value(rule)
    t_truth = time.perf_counter() - t1
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
        "covers_optimal": bool(lo <= scn.true_value("optimal") <= hi),
        "truth_seconds": round(t_truth, 2),
        "method": v.attrs["method"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--draws", type=int, default=250)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--family", default="gaussian", choices=["gaussian", "bernoulli"])
    ap.add_argument("--models", nargs="+", default=["linear", "bart"], choices=["linear", "bart"])
    ap.add_argument("--out", default=str(RESULTS / "bart_nonlinear.csv"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import bayesdtr as bd

    scn = bd.scenario("nonlinear_band", family=args.family)
    rows = []
    for r in range(args.reps):
        df = scn.sample(args.n, seed=1000 + r)
        for label, stages in (
            ("linear", scn.linear_stages()),
            ("bart", scn.bart_stages(trees=args.trees)),
        ):
            if label not in args.models:
                continue
            row = {
                "rep": r,
                "model": label,
                "n": args.n,
                **analyse(bd, scn, df, stages, args, seed=r + 1),
            }
            rows.append(row)
            print(row, flush=True)
        RESULTS.mkdir(exist_ok=True)
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(
        f"\n{'model':8} {'reps':>4} {'match1':>7} {'match2':>7} {'cover V(d_hat)':>15} {'cover V(d*)':>11} {'analysis s':>10}"
    )
    for label in args.models:
        sub = [r for r in rows if r["model"] == label]
        print(
            f"{label:8} {len(sub):4d} {np.mean([r['match_stage1'] for r in sub]):7.3f} "
            f"{np.mean([r['match_stage2'] for r in sub]):7.3f} "
            f"{sum(r['covers_rule_value'] for r in sub):>9d}/{len(sub):<5d} "
            f"{sum(r['covers_optimal'] for r in sub):>5d}/{len(sub):<3d} "
            f"{np.median([r['analysis_seconds'] for r in sub]):10.1f}"
        )
    if len(args.models) < 2:
        return
    lin = np.array([r["analysis_seconds"] for r in rows if r["model"] == "linear"])
    bart = np.array([r["analysis_seconds"] for r in rows if r["model"] == "bart"])
    print(f"median wall-time ratio BART / linear conjugate: {np.median(bart / lin):.1f}")


if __name__ == "__main__":
    main()
