"""Command line: ``bayesdtr demo`` fits the bmiData analysis end to end."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from bayesdtr.constants import HDI_PROB

__all__ = ["main", "bmi_model"]


def bmi_model():
    """The DynTxRegime ``?qLearn`` specification of the bmiData analysis, as a DTRModel.

    Outcome: percent BMI reduction at month 12, ``-100 (month12BMI - baselineBMI) / baselineBMI``.
    Both stages were randomized 1:1, so their propensities are known.
    """
    import bayesdtr as bd

    df = bd.load_data("bmi")
    df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
    half = bd.KnownPropensity({"CD": 0.5, "MR": 0.5})
    return bd.DTRModel(
        df,
        [
            bd.Stage("A1", main="race + parentBMI + baselineBMI", contrast="1 + race + parentBMI + baselineBMI", propensity=half),
            bd.Stage("A2", main="race + parentBMI + month4BMI", contrast="1 + race + parentBMI + month4BMI", propensity=half),
        ],
        outcome="y",
    )


def _hdi(x: np.ndarray, prob: float = HDI_PROB) -> tuple[float, float]:
    import arviz as az

    lo, hi = np.asarray(az.hdi(np.asarray(x).ravel(), prob=prob)).ravel()[:2]
    return float(lo), float(hi)


def demo(engine: str = "auto", seed: int = 1) -> int:
    import bayesdtr as bd

    t0 = time.perf_counter()
    model = bmi_model()
    print(model)
    print()
    post = model.fit(random_seed=seed, engine=engine, progressbar=False)
    print(post)
    v = post.value("optimal").values
    lo, hi = _hdi(v)
    print(f"\nValue of the estimated optimal regime (mean % BMI reduction): {v.mean():.2f} [{HDI_PROB:.0%} HDI {lo:.2f}, {hi:.2f}]")
    regimes = {
        "optimal": "optimal",
        "always CD": bd.Regime.static(A1="CD", A2="CD"),
        "always MR": bd.Regime.static(A1="MR", A2="MR"),
        "CD then MR": bd.Regime.static(A1="CD", A2="MR"),
        "MR then CD": bd.Regime.static(A1="MR", A2="CD"),
    }
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print("\nRegime comparison (posterior of the value):")
        print(post.compare(regimes).to_string())
        for k in (1, 2):
            po = post.prob_optimal(k)
            print(f"\nStage {k}: P(arm optimal) averaged over units: " + ", ".join(f"{a}={p:.3f}" for a, p in po.mean().items()))
            print(f"  units with P(MR optimal) > 0.95: {(po['MR'] > 0.95).sum()}, < 0.05: {(po['MR'] < 0.05).sum()} of {len(po)}")
        print("\nStage contrasts (MR vs CD):")
        summ = post.summary()
        print(summ[summ.index.str.contains("psi")][["mean", "sd", f"hdi{int(HDI_PROB * 100)}_lb", f"hdi{int(HDI_PROB * 100)}_ub", "ess_bulk", "r_hat"]].to_string())
    print(f"\nDone in {time.perf_counter() - t0:.1f} s.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bayesdtr", description="Bayesian dynamic treatment regimes.")
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="fit the bmiData two-stage analysis and print the results")
    d.add_argument("--engine", choices=["auto", "conjugate", "mcmc"], default="auto")
    d.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(engine=args.engine, seed=args.seed)
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
