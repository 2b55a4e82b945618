"""Warm starts of the BART engine's multiple-imputation refits: time and rule accuracy.

``nonlinear_band`` (n = 1,000 by default), BART stages with 50 trees, 2 chains x 100 draws and
20 imputations at stage 1, fitted with ``BART(warm_start=False)`` (each imputation: 10
grow-from-root sweeps, then the draws) and ``warm_start=True`` (imputation j starts from the
last forest of imputation j-1 through stochtree's JSON, ``warm_burn`` = 20 sweeps discarded),
interleaved over ``--reps`` data sets. Reports the stage-1 sampling seconds (all 20 refits) and
the share of units whose posterior-mode stage-1 rule is the true optimal arm.

Usage::

    python benchmarks/bench_bart_warm.py --reps 3
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

    scn = bd.scenario("nonlinear_band")
    out: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for r in range(args.reps):
        df = scn.sample(args.n, seed=500 + r)
        truth = scn.true_optimal_treatment(df, 1)
        for warm in (False, True):
            post = bd.DTRModel(df, scn.bart_stages(warm_start=warm), outcome="Y").fit(
                draws=100, chains=2, random_seed=r + 1, progressbar=False, warn=False
            )
            p = post.prob_optimal(1)
            match = float(np.mean(np.asarray(p.columns)[np.argmax(p.to_numpy(), axis=1)] == truth))
            out[warm].append((post.fits[0].sample_seconds, match))
            print(
                f"rep {r} warm_start={warm}: stage 1 {post.fits[0].sample_seconds:.2f} s, match {match:.3f}",
                flush=True,
            )
    cold = np.median([s for s, _ in out[False]])
    warm = np.median([s for s, _ in out[True]])
    print(f"median stage-1 seconds: cold {cold:.2f}, warm {warm:.2f}, warm/cold {warm / cold:.2f}")
    print(
        f"mean match: cold {np.mean([m for _, m in out[False]]):.3f}, warm {np.mean([m for _, m in out[True]]):.3f}"
    )


if __name__ == "__main__":
    main()
