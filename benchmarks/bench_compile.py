"""Compile cost per NUTS model, cold and warm, and import time (issue 13, "Compile cost").

Four models, each the one NUTS model of a small fit (draws and tuning kept tiny, so that the
compile, not the sampling, is what is timed):

| model | fit |
|---|---|
| ``propensity`` | bmi, one stage with ``propensity="race + parentBMI + baselineBMI"``, ``engine="conjugate"`` (the multinomial-logit propensity model is the only NUTS model) |
| ``bernoulli`` | ``two_stage_cont`` n = 300, stage 2 alone, outcome ``Y > median``, ``family="bernoulli"`` |
| ``hierarchical`` | ``multisite_smart`` n = 300, stage 2 alone, ``group="site"``, ``group_contrast=True``, ``engine="mcmc"`` (NUTS, not Gibbs) |
| ``survival`` | ``survival_smart`` n = 300, stage 2 alone, ``family="lognormal"`` (censored AFT) |

Each model and sampler runs in fresh Python processes sharing one set of on-disk caches:
``cold`` (empty cache directories: ``PYTENSOR_FLAGS=base_compiledir=`` and ``NUMBA_CACHE_DIR=``
point at a new temporary folder), then, for ``nutpie`` (which uses PyTensor's disk cache),
``warm`` (a second process, same folders). In each process the
model is fitted twice at a tiny size (``refit``: in-process reuse of the compiled sampler, expect
0), once at the library's default size, 4 chains x (1,000 tune + 1,000 draws) (``long``: what
sampling costs with each sampler), and, after ``clear_cache()``, compiled again (``recompile``:
in-process, numba's memory caches warm). The compile seconds are what the library records
(``fit.compile_seconds``, ``propensity.compile_seconds``: the sampler's compile alone);
``process`` is the whole child's wall time, imports included.

``--profile MODEL`` prints a cProfile of one cold compile instead.

Usage::

    python benchmarks/bench_compile.py              # about 5 min on the 2-core machine
    python benchmarks/bench_compile.py --models propensity bernoulli

Writes ``benchmarks/results/compile.csv`` and ``compile.md`` (``--out`` to change the stem).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _util import RESULTS, environment

HERE = Path(__file__).resolve().parent
MODELS = ("propensity", "bernoulli", "hierarchical", "survival")
FIT = dict(draws=100, tune=100, chains=2, imputations=2, progressbar=False, warn=False)
#: A fit at the library's default size, once the sampler is compiled: what sampling costs.
LONG = dict(draws=1000, tune=1000, chains=4)
SAMPLERS = ("nutpie", "nutpie-jax")


# ---------------------------------------------------------------------------------------- child
def build(name: str):
    """The model and fit arguments of one benchmarked NUTS model."""
    import bayesdtr as bd

    if name == "propensity":
        df = bd.load_data("bmi")
        df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
        stage = bd.Stage(
            "A1",
            main="race + parentBMI + baselineBMI",
            contrast="1 + race + parentBMI + baselineBMI",
            propensity="race + parentBMI + baselineBMI",
        )
        return bd.DTRModel(df, [stage], outcome="y"), {"engine": "conjugate"}
    if name == "bernoulli":
        scn = bd.scenario("two_stage_cont")
        df = scn.sample(300, seed=1)
        df["Yb"] = (df["Y"] > df["Y"].median()).astype(int)
        stage = dataclasses.replace(scn.stages[1], propensity=None)
        return bd.DTRModel(df, [stage], outcome="Yb", family="bernoulli"), {"engine": "mcmc"}
    if name == "hierarchical":
        scn = bd.scenario("multisite_smart")
        df = scn.sample(300, seed=1)
        model = bd.DTRModel(
            df, scn.stages[1:], outcome=scn.outcome, group="site", group_contrast=True
        )
        return model, {"engine": "mcmc"}
    if name == "survival":
        scn = bd.scenario("survival_smart")
        df = scn.sample(300, seed=1)
        stage = scn.stages[1]
        model = bd.DTRModel(df, [stage], outcome="T", event="delta", family="lognormal")
        return model, {"engine": "mcmc"}
    raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")


def compile_seconds(post) -> float:
    """Seconds spent compiling NUTS models in this fit (stage and propensity models)."""
    s = sum(f.compile_seconds for f in post.fits)
    return s + sum(p.compile_seconds for p in post.propensities if p is not None)


def child(name: str, sampler: str) -> dict:
    warnings.simplefilter("ignore")
    t_imp = time.perf_counter()
    import bayesdtr  # noqa: F401
    from bayesdtr.inference.sampling import clear_cache

    model, kw = build(name)
    import_build_s = time.perf_counter() - t_imp
    out: dict = {"import_build_s": import_build_s}
    for step, seed in (("first", 1), ("refit", 2), ("long", 4), ("recompile", 3)):
        if step == "recompile":
            clear_cache()
        fit_kw = FIT | LONG if step == "long" else FIT
        t0 = time.perf_counter()
        post = model.fit(random_seed=seed, sampler=sampler, **kw, **fit_kw)
        out[f"{step}_compile_s"] = compile_seconds(post)
        out[f"{step}_fit_s"] = time.perf_counter() - t0
    return out


def profile(name: str) -> None:
    import cProfile
    import pstats

    warnings.simplefilter("ignore")
    model, kw = build(name)
    prof = cProfile.Profile()
    prof.enable()
    model.fit(random_seed=1, sampler="nutpie", **kw, **FIT)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)


# ---------------------------------------------------------------------------------------- parent
def run_child(name: str, sampler: str, cache: Path, timeout: float) -> dict:
    env = os.environ | {
        "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PYTENSOR_FLAGS": f"base_compiledir={cache / 'pytensor'}",
        "NUMBA_CACHE_DIR": str(cache / "numba"),
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, sampler]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def import_times(runs: int) -> tuple[float, float]:
    """Median wall seconds of ``import bayesdtr`` and of ``import numpy, pandas`` (fresh processes)."""

    def once(stmt: str) -> float:
        code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
        env = os.environ | {
            "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
        }
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        return float(out.stdout.strip())

    lib, base = [], []
    for _ in range(runs):  # interleaved, so load changes hit both alike
        lib.append(once("import bayesdtr"))
        base.append(once("import numpy, pandas"))
    return statistics.median(lib), statistics.median(base)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--import-runs", type=int, default=7)
    ap.add_argument("--out", default="compile")
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--profile", choices=MODELS, help="cProfile one cold compile of MODEL and exit")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.profile:
        profile(args.profile)
        return

    load0 = os.getloadavg()
    imp, base = import_times(args.import_runs)
    print(f"import bayesdtr {imp:.3f} s; import numpy, pandas {base:.3f} s", flush=True)
    rows = []
    for name in args.models:
        for sampler in args.samplers:
            with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
                # JAX keeps no compiled code on disk here: one (cold) process tells it all
                for process in ("cold", "warm") if sampler == "nutpie" else ("cold",):
                    r = run_child(name, sampler, Path(tmp), 900)
                    r |= {"model": name, "sampler": sampler, "process": process}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    load1 = os.getloadavg()

    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = ["model", "sampler", "process"]
    keys += sorted({k for r in rows for k in r} - set(keys))
    with open(RESULTS / f"{args.out}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)

    def f(v, fmt=".2f"):
        return "-" if v is None else format(v, fmt)

    env = environment()
    lines = [
        "# Compile benchmark",
        "",
        f"`python benchmarks/bench_compile.py`; {env['date']}, commit {env['git_commit']}, {env['cpu_count']} CPUs, "
        f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end; nutpie {env['nutpie']}, pytensor "
        f"{env['pytensor']}. Wall seconds on a shared machine.",
        "",
        f"Import (fresh process, median of {args.import_runs}): `import bayesdtr` {imp:.3f} s; baseline "
        f"`import numpy, pandas` {base:.3f} s in the same run (ratio {imp / base:.2f}).",
        "",
        "| model | sampler | process | compile s (first fit) | refit compile s | in-process recompile s "
        "| first fit s | refit s (sampling only) | 4 x (1000 + 1000) fit s | process s | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sampler']} | {r['process']} | {f(r.get('first_compile_s'))} | "
            f"{f(r.get('refit_compile_s'))} | {f(r.get('recompile_compile_s'))} | {f(r.get('first_fit_s'))} | "
            f"{f(r.get('refit_fit_s'))} | {f(r.get('long_fit_s'))} | {f(r.get('process_s'), '.1f')} | "
            f"{r.get('error', '')} |"
        )
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
