"""``two_stage_cont`` given only X1 and X2 (no ``exp()`` written): BART against linear mains.

Per seeded data set (n = 1,000): BART stages (``covariates=["X1"]`` and ``["X1", "A1", "X2"]``,
50 trees) and the linear model with linear mains (``main="X1"``, ``contrast="1 + X1"``;
``main="X1 + X2 + A1"``, ``contrast="1 + X2"``; conjugate engine), no propensity models. For each:
the 95% equal-tailed interval of ``value("optimal", method="q")`` with the default online
sample splitting (estimand V(d_hat)) and of the plug-in ``crossfit=0``, and whether each covers
the true optimal value 5.4641. (The true value of ``post.rule()`` is left out: the scenario
computes it by a Monte Carlo over 1,000,000 units, minutes of forest predictions.)

Usage::

    python benchmarks/bench_bart_two_stage_cont.py --reps 3
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import bayesdtr as bd

    scn = bd.scenario("two_stage_cont")
    v_opt = scn.true_value("optimal")
    models = {
        "bart": [
            bd.Stage("A1", q=bd.BART(covariates=["X1"])),
            bd.Stage("A2", q=bd.BART(covariates=["X1", "A1", "X2"])),
        ],
        "linear": [
            bd.Stage("A1", main="X1", contrast="1 + X1"),
            bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2"),
        ],
    }
    for r in range(args.reps):
        df = scn.sample(args.n, seed=2000 + r)
        for label, stages in models.items():
            post = bd.DTRModel(df, stages, outcome="Y").fit(
                draws=100, chains=2, random_seed=r + 1, progressbar=False, warn=False
            )
            for cf in ("auto", 0):
                v = post.value("optimal", method="q", crossfit=cf)
                lo, hi = np.quantile(v.values, [0.025, 0.975])
                print(
                    f"rep {r} {label:6} crossfit={cf!s:4} [{lo:.3f}, {hi:.3f}] covers V(d*)={v_opt:.3f}: "
                    f"{lo <= v_opt <= hi}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
