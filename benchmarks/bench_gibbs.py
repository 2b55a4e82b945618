"""The Gibbs engine against NUTS on the same hierarchical analysis, in the same run.

``multisite_smart`` with group random intercepts and contrasts (``group="site"``,
``group_contrast=True``): a whole two-stage fit (4 chains x 1,000 draws, 200 imputations at stage
1) and a two-regime ``compare(method="q")`` (each static regime refits stage 1), first with
``engine="gibbs"`` (what ``engine="auto"`` chooses), then with ``engine="mcmc"`` (NUTS via
nutpie, compile cache cleared first). Reports seconds, the NUTS/Gibbs ratio, and how far apart
the two stage-1 contrast posteriors are (difference of means in posterior SDs, ratio of SDs).

Usage::

    python benchmarks/bench_gibbs.py            # n = 1,000
    python benchmarks/bench_gibbs.py --n 300
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _util import RESULTS, environment, table, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import bayesdtr as bd
    from bayesdtr.inference.sampling import clear_cache

    scn = bd.scenario("multisite_smart")
    df = scn.sample(args.n, seed=args.seed)
    model = bd.DTRModel(df, scn.stages, outcome=scn.outcome, group="site", group_contrast=True)
    regimes = {"all -1": bd.Regime.static(A1=-1, A2=-1), "all +1": bd.Regime.static(A1=1, A2=1)}
    load0 = os.getloadavg()
    rows, psi = [], {}
    for engine in ("gibbs", "mcmc"):
        clear_cache()
        t0 = time.perf_counter()
        post = model.fit(engine=engine, random_seed=1, progressbar=False, warn=False)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        post.compare(regimes, method="q")
        cmp_s = time.perf_counter() - t0
        psi[engine] = post.coef(1)["psi"].isel(arm=1).values.reshape(-1, post.coef(1)["psi"].sizes["contrast_term"])
        diag = post.diagnostics()
        rows.append(dict(engine=engine, fit_s=fit_s, compare_s=cmp_s, max_r_hat=float(diag["max_r_hat"].max()),
                         min_ess=float(diag["min_ess_bulk"].min())))
    ratio = {k: rows[1][k] / rows[0][k] for k in ("fit_s", "compare_s")}
    sd = psi["mcmc"].std(axis=0)
    agreement = dict(
        max_mean_diff_in_sd=float(np.max(np.abs(psi["gibbs"].mean(axis=0) - psi["mcmc"].mean(axis=0)) / sd)),
        sd_ratio_range=[float(x) for x in (np.min(psi["gibbs"].std(axis=0) / sd), np.max(psi["gibbs"].std(axis=0) / sd))],
    )
    print(table(rows, [("engine", "engine", "s"), ("fit_s", "fit (s)", ".1f"), ("compare_s", "compare (s)", ".1f"),
                       ("max_r_hat", "max R-hat", ".3f"), ("min_ess", "min bulk ESS", ".0f")]))
    print(f"NUTS / Gibbs: fit {ratio['fit_s']:.1f}x, compare {ratio['compare_s']:.1f}x; load {load0} -> {os.getloadavg()}")
    print(f"stage-1 contrasts, Gibbs vs NUTS: {agreement}")
    write_json(RESULTS / f"gibbs_n{args.n}.json", dict(environment=environment(), n=args.n, rows=rows, ratio=ratio,
                                                       agreement=agreement, load=[load0, os.getloadavg()]))


if __name__ == "__main__":
    main()
