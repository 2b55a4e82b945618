"""Why the RMST value posterior under-covers on ``survival_smart``: the measurements.

For each seeded replicate (the same seeds as ``bench_survival.py``) one censored analysis is
fitted per setting (``--imputations``, ``--family``, ``--propagation``); for each embedded static
regime, value method (``augmented``, ``q``) and horizon (``--horizons``) it records:

- the posterior mean, SD and 95% equal-tailed interval of the RMST against the exact truth;
- ``between``: the share of the posterior variance of the value that lies between the
  multiple-imputation blocks (stage-1 draws grouped by their stage-2 ancestor draw). With M
  imputations the value posterior sees only M distinct stage-2 draws; a large share means
  the interval rests on M points;
- ``sd_params``: the posterior SD of the value with the Bayesian-bootstrap weights set to 1
  (parameter uncertainty only); ``sd`` minus that is what the weights over units add.

Summaries per (setting, method, horizon, regime): coverage, bias of the posterior mean,
mean posterior SD, SD of the posterior means over replicates, and their ratio.

    python benchmarks/diag_survival.py --n 1000 --reps 4 --imputations 8 32
    python benchmarks/diag_survival.py --n 5000 --reps 1 --family lognormal weibull
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayesdtr as bd
from bayesdtr.models.survival import rmst
from bayesdtr.survival_values import augmented_terms

HERE = Path(__file__).resolve().parent


def unweighted_value(post, ind, tau: float, method: str) -> np.ndarray:
    """RMST draws with every Bayesian-bootstrap weight 1 (parameter uncertainty only)."""
    fam = post.design.family
    event = post.design.event > 0.5
    out = np.empty(post.n_samples)
    for idx in post.bootstrap.chunks():
        if method == "q":
            mu, sigma = ind.stage1_mu(idx)
            per = rmst(fam, mu, sigma[:, None], tau)
        else:
            p = ind.tail_parts(0, idx)
            per = augmented_terms(
                fam,
                p["ell"],
                p["mu"],
                p["sigma"],
                event[None, :],
                tau,
                "rmst",
                alpha=p["alpha"],
                beta=p["beta"],
            )
        out[idx] = per.mean(axis=1)
    return out


def between_share(v: np.ndarray, anc: np.ndarray | None) -> float:
    """Share of var(v) between groups of draws with the same stage-2 ancestor."""
    if anc is None or v.var() == 0:
        return float("nan")
    df = pd.DataFrame({"v": v, "a": anc})
    means = df.groupby("a")["v"].transform("mean")
    return float(means.var(ddof=0) / v.var())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--first-rep", type=int, default=0)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--imputations", type=int, nargs="+", default=[8])
    ap.add_argument("--family", nargs="+", default=["lognormal"])
    ap.add_argument("--propagation", nargs="+", default=["modal"])
    ap.add_argument("--horizons", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--sampler", default="nutpie")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "survival_diag.csv")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    scn = bd.scenario("survival_smart")
    regimes = {f"({a1},{a2})": bd.Regime.static(A1=a1, A2=a2) for a1 in (0, 1) for a2 in (0, 1)}
    rows = []
    t_start = time.perf_counter()
    for rep in range(args.first_rep, args.first_rep + args.reps):
        df = scn.sample(args.n, seed=args.seed + rep)
        for m, fam, prop in itertools.product(args.imputations, args.family, args.propagation):
            t0 = time.perf_counter()
            model = bd.DTRModel(df, scn.stages, outcome="T", event="delta", family=fam)
            post = model.fit(
                draws=args.draws,
                tune=args.tune,
                chains=args.chains,
                imputations=m,
                propagation=prop,
                sampler=args.sampler,
                random_seed=args.seed + rep,
                progressbar=False,
                warn=False,
            )
            for (name, reg), tau, method in itertools.product(
                regimes.items(), args.horizons, ("augmented", "q")
            ):
                truth = scn.true_rmst(reg, tau)
                v = post.value(reg, horizon=tau, method=method).values.ravel()
                ind = post.induction_for(reg)
                anc = ind.fits[0].ancestor
                vp = unweighted_value(post, ind, tau, method)
                lo, hi = np.quantile(v, [0.025, 0.975])
                rows.append(
                    dict(
                        rep=rep,
                        n=args.n,
                        imputations=m,
                        family=fam,
                        propagation=prop,
                        method=method,
                        horizon=tau,
                        regime=name,
                        truth=truth,
                        mean=float(v.mean()),
                        sd=float(v.std()),
                        lo=float(lo),
                        hi=float(hi),
                        covered=bool(lo <= truth <= hi),
                        between=between_share(v, anc),
                        sd_params=float(vp.std()),
                        mean_params=float(vp.mean()),
                    )
                )
            print(
                f"rep {rep} M={m} {fam} {prop}: {time.perf_counter() - t0:.0f} s "
                f"(total {time.perf_counter() - t_start:.0f} s)",
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)
    summarize(pd.DataFrame(rows))


def summarize(res: pd.DataFrame) -> None:
    res = res.assign(bias=res["mean"] - res["truth"])
    keys = ["n", "imputations", "family", "propagation", "method", "horizon", "regime"]
    g = res.groupby(keys).agg(
        reps=("rep", "size"),
        coverage=("covered", "mean"),
        bias=("bias", "mean"),
        sd=("sd", "mean"),
        sd_of_means=("mean", "std"),
        between=("between", "mean"),
        sd_params=("sd_params", "mean"),
    )
    g["ratio"] = g["sd"] / g["sd_of_means"]
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(g.to_string(float_format=lambda x: f"{x:.3f}"))
        print(
            res.groupby(keys[:-1])
            .agg(coverage=("covered", "mean"), bias=("bias", "mean"), sd=("sd", "mean"))
            .to_string(float_format=lambda x: f"{x:.3f}")
        )


if __name__ == "__main__":
    main()
