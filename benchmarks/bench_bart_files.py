"""BART posteriors in files: size and time of storing the forests, against the file without them.

One ``nonlinear_band`` data set (n = 1,000), BART stages with 50 trees, ``fit()`` at its default
4 chains x 1,000 draws (``--draws``/``--chains`` to change). Timed in the same run:

- ``to_netcdf(path, forests=False)`` and ``to_netcdf(path)`` (forests as compressed JSON), file sizes;
- ``bd.load`` of each;
- ``prob_optimal(2, data=new)`` for 100 new histories: in the fitting session (forests in memory)
  and the first call after ``bd.load`` (parses the JSON and checks it against the stored Q).

Usage::

    python benchmarks/bench_bart_files.py            # writes results/bart_files.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
import warnings

import numpy as np
from _util import RESULTS


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--out", default=str(RESULTS / "bart_files.csv"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import bayesdtr as bd

    scn = bd.scenario("nonlinear_band")
    df = scn.sample(args.n, seed=7)
    new = scn.sample(100, seed=8)
    stages = scn.bart_stages(trees=args.trees)
    t0 = time.perf_counter()
    post = bd.DTRModel(df, stages, outcome="Y").fit(
        draws=args.draws, chains=args.chains, random_seed=1, progressbar=False, warn=False
    )
    rows = [{"step": "fit", "seconds": time.perf_counter() - t0, "mb": ""}]
    post.tree  # noqa: B018 (the tree with /value and /policy, shared by both writes)

    def timed(step, f, path=None):
        t = time.perf_counter()
        out = f()
        mb = "" if path is None else round(os.path.getsize(path) / 2**20, 2)
        rows.append({"step": step, "seconds": time.perf_counter() - t, "mb": mb})
        print(rows[-1], flush=True)
        return out

    p_mem = timed("prob_optimal(data=new) in session", lambda: post.prob_optimal(2, data=new))
    with tempfile.TemporaryDirectory() as tmp:
        small, full = os.path.join(tmp, "small.nc"), os.path.join(tmp, "full.nc")
        timed("to_netcdf(forests=False)", lambda: post.to_netcdf(small, forests=False), small)
        timed("to_netcdf (forests)", lambda: post.to_netcdf(full), full)
        timed("bd.load without forests", lambda: bd.load(small, stages=stages))
        back = timed("bd.load with forests", lambda: bd.load(full, stages=stages))
        p_file = timed(
            "prob_optimal(data=new) after load (parse + check)",
            lambda: back.prob_optimal(2, data=new),
        )
        timed("prob_optimal(data=new) after load, again", lambda: back.prob_optimal(2, data=new))
    assert np.array_equal(p_mem.to_numpy(), p_file.to_numpy())
    RESULTS.mkdir(exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["step", "seconds", "mb", "n", "draws", "trees"])
        w.writeheader()
        for r in rows:
            w.writerow(
                r
                | {
                    "seconds": round(r["seconds"], 2),
                    "n": args.n,
                    "draws": args.draws * args.chains,
                    "trees": args.trees,
                }
            )


if __name__ == "__main__":
    main()
