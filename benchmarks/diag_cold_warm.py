"""Same seed, same data: do NUTS draws depend on the state of PyTensor's compile cache?

Runs one small NUTS fit (a model of ``bench_compile.py``) in fresh processes that share a new,
empty cache folder: the first process compiles everything (cold), the later ones load from the
cache (warm). Each prints a hash of the last stage's draws and of its step counts.

Found 2026-12-02 (Intel rocketlake, numba 0.68.0, pytensor 3.3.8, nutpie 0.16.11): with Numba's
fast-math flags (PyTensor's default) the cold process gave other draws than the warm ones, with
nutpie's own C callbacks as with the cached ones: the log density evaluated through PyTensor's
own function already differed in the last bits. Compiled together with its callees (cold), LLVM
may reassociate and contract across them; loaded from the cache, they are separate. Warm
processes agreed with each other. ``compile_cached`` now compiles with
``numba__fastmath=False``, and cold and warm processes give the same draws.

Usage::

    python benchmarks/diag_cold_warm.py bernoulli --processes 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(name: str) -> str:
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(HERE))
    from bench_compile import build

    model, kw = build(name)
    post = model.fit(
        random_seed=3,
        draws=100,
        tune=100,
        chains=2,
        imputations=2,
        progressbar=False,
        warn=False,
        **kw,
    )
    fit = post.fits[-1]
    steps = fit.stats.get("n_steps")
    return " ".join(
        [
            hashlib.md5(fit.theta.tobytes()).hexdigest()[:12],
            "-" if steps is None else hashlib.md5(steps.tobytes()).hexdigest()[:12],
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model", choices=("propensity", "bernoulli", "hierarchical", "survival"))
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(child(args.model))
        return
    with tempfile.TemporaryDirectory(prefix="cold-warm-") as tmp:
        env = os.environ | {
            "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTENSOR_FLAGS": f"base_compiledir={tmp}",
        }
        for i in range(args.processes):
            out = subprocess.run(
                [sys.executable, __file__, args.model, "--child"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            print("cold" if i == 0 else "warm", out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
