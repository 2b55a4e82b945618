"""Coverage of the RMST value posterior on the ``survival_smart`` scenario, against a naive fit.

For each seeded replicate (n units from ``bd.scenario("survival_smart")``) two analyses are fitted
with the same lognormal AFT stages and the same settings:

- ``censored``: ``event="delta"`` (the censored likelihood, the right analysis);
- ``naive``: every censored time treated as an event (``event=`` a column of ones), the mistake
  that ``load_data("two_stage_cens")`` with a gaussian family used to make silently.

For each of the four embedded static regimes (A1, A2) in {0, 1}^2 the posterior of the RMST at the
scenario's horizon (tau = 10) is computed by the three value methods (``"aipw"``, the default
here because the scenario declares its known randomization; ``"augmented"``; ``"q"``, the stage-1
model only), and its 95% equal-tailed interval is checked against the exact true RMST (closed
form + quadrature, ``SurvivalSmart.true_rmst``). Writes one CSV row per (analysis, method, regime,
replicate) to ``benchmarks/results/survival.csv`` and prints coverage with its Monte Carlo SE
(clustered by replicate: the four regimes of a replicate share its data), mean bias, mean
posterior SD, the SD of the posterior means over replicates and their ratio, per (analysis,
method) and per regime.

    python benchmarks/bench_survival.py                      # n = 1000, 20 replicates
    python benchmarks/bench_survival.py --reps 2 --n 300     # smoke run
    python benchmarks/bench_survival.py --first-rep 20 --no-naive --out results/survival_more.csv
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--first-rep", type=int, default=0, help="seed offset of the first replicate")
    ap.add_argument("--no-naive", action="store_true", help="fit only the censored analysis")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--imputations", type=int, default=8)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "survival.csv")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    scn = bd.scenario("survival_smart")
    tau = scn.horizon
    regimes = {f"({a1},{a2})": bd.Regime.static(A1=a1, A2=a2) for a1 in (0, 1) for a2 in (0, 1)}
    truth = {name: scn.true_value(r) for name, r in regimes.items()}
    rows = []
    t_start = time.perf_counter()
    for rep in range(args.first_rep, args.first_rep + args.reps):
        df = scn.sample(args.n, seed=args.seed + rep)
        df["ones"] = 1
        analyses = (("censored", "delta"),) + (() if args.no_naive else (("naive", "ones"),))
        for analysis, event in analyses:
            t0 = time.perf_counter()
            model = bd.DTRModel(df, scn.stages, outcome="T", event=event, family="lognormal")
            post = model.fit(
                draws=args.draws,
                tune=args.tune,
                chains=args.chains,
                imputations=args.imputations,
                random_seed=args.seed + rep,
                progressbar=False,
                warn=False,
            )
            for name, reg in regimes.items():
                for method in ("aipw", "augmented", "q"):
                    v = post.value(reg, horizon=tau, method=method).values.ravel()
                    lo, hi = np.quantile(v, [0.025, 0.975])
                    rows.append(
                        dict(
                            rep=rep,
                            analysis=analysis,
                            method=method,
                            regime=name,
                            truth=truth[name],
                            mean=float(v.mean()),
                            sd=float(v.std()),
                            lo=float(lo),
                            hi=float(hi),
                            covered=bool(lo <= truth[name] <= hi),
                            censored_share=float(1 - df["delta"].mean()),
                        )
                    )
            print(
                f"rep {rep} {analysis}: {time.perf_counter() - t0:.0f} s "
                f"(total {time.perf_counter() - t_start:.0f} s)",
                flush=True,
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
    res = pd.DataFrame(rows)
    res["bias"] = res["mean"] - res["truth"]
    summary = (
        res.groupby(["analysis", "method"])
        .agg(
            cells=("covered", "size"),
            coverage=("covered", "mean"),
            bias=("bias", "mean"),
            sd=("sd", "mean"),
        )
        .reset_index()
    )
    # Monte Carlo SE of the pooled coverage, clustered by replicate (its four cells share data)
    per_rep = res.groupby(["analysis", "method", "rep"])["covered"].mean()
    se = per_rep.groupby(["analysis", "method"]).agg(lambda x: x.std(ddof=1) / np.sqrt(len(x)))
    summary["mc_se"] = summary.set_index(["analysis", "method"]).index.map(se)
    by_regime = res.groupby(["analysis", "method", "regime"]).agg(
        coverage=("covered", "mean"),
        bias=("bias", "mean"),
        sd=("sd", "mean"),
        sd_of_means=("mean", "std"),
        truth=("truth", "first"),
    )
    by_regime["sd_ratio"] = by_regime["sd"] / by_regime["sd_of_means"]
    print(
        f"\nsurvival_smart, n = {args.n}, {args.reps} replicates, RMST at tau = {tau:g}, 95% intervals"
    )
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    print(by_regime.to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; rows in {args.out}")


if __name__ == "__main__":
    main()
