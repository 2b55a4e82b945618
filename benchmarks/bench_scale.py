"""Analyses at scale, each against a baseline in the same run (issue 13, "What it must show").

Every case runs in its own fresh Python process (``--child``), so that its peak RSS
(``ru_maxrss``) and its compile times are its own.

| case | what is timed | baseline in the same run |
|---|---|---|
| ``import`` | ``import bayesdtr`` in a fresh process (median of 7) | ``import numpy, pandas`` (what any analysis needs at least) |
| ``whole_10k`` | ``two_stage_cont``, n = 10,000, stages without propensity models, ``fit(engine="conjugate", draws=1000, chains=4)`` + ``prob_optimal`` of both stages + ``value("optimal", method="q", crossfit=0)`` | a hand-written NumPy pipeline of the same computation (below) |
| ``large`` | the same analysis at n = 1,000,000 (4 chains x ``--large-draws``) plus ``value(static (1, 1), method="q")`` and the library's default ``value("optimal")`` (online sample splitting: six chunks, each valued by a rule learned on the chunks before it; ``--no-online`` leaves it out): wall time of each part and peak RSS after each part | the dense (draws x units) float64 array it never builds, and the (200 draws x units x arms) Q array a fold rule would build whole |
| ``dask`` (``--only dask``) | n = 100,000, 4 x ``--large-draws``: a static regime's q value and stage-1 P(optimal) with ``client=`` an in-process ``LocalCluster`` of one thread per core (cluster start not timed) | the same two queries in process (``client=None``) on an equal posterior; the results must be identical |
| ``bmi_mcmc`` / ``bmi_conjugate`` | bmi with propensity models, ``fit(engine=...)`` + ``compare`` of 5 regimes with ``method="aipw"`` (the learned one by online sample splitting), each regime's value timed on its own (``--bmi-samplers nutpie nutpie-jax`` adds a row with nutpie's JAX backend) | each other; compile seconds per model, cold (fresh process) and warm (refit in it) |

The NumPy pipeline (``numpy_pipeline``) is what one would write by hand for the same
posterior: exact NIG draws of stage 2 (one Cholesky factor), the stage-2 contrasts of every unit
and draw as one dense (units x draws) array, P(optimal) and the modal arm, the modal
pseudo-outcomes, exact NIG draws of stage 1 on them (X'T as one matrix product), stage-1
P(optimal), and the Bayesian-bootstrap posterior of (1/n) sum_i max_a Q_1. Its priors are
vague rather than the library's data-scaled ones, so the posteriors agree to about 1e-2, not
exactly (printed as a check); the work is the same.

Usage::

    python benchmarks/bench_scale.py            # about 20 min on the 2-core machine
    python benchmarks/bench_scale.py --quick    # about 2 min: n = 2,000 and 100,000, no bmi
    python benchmarks/bench_scale.py --large-draws 1000   # n = 1e6 at 4 x 1,000 draws (long)
    python benchmarks/bench_scale.py --only large --out scale_large   # the large case alone
    python benchmarks/bench_scale.py --only bmi --out scale_bmi   # the bmi case alone
    python benchmarks/bench_scale.py --only dask --out scale_dask # value blocks on dask vs here

Writes ``benchmarks/results/scale.csv`` and ``scale.md`` (``--out`` to change the stem).
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
import time
import warnings
from pathlib import Path

import numpy as np
from _util import RESULTS, environment, rss_mb

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------- children
def child_import(which: str) -> dict:
    t0 = time.perf_counter()
    if which == "bayesdtr":
        import bayesdtr  # noqa: F401
    else:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    return {"seconds": time.perf_counter() - t0, "pymc_loaded": "pymc" in sys.modules}


def _two_stage(n: int):
    import bayesdtr as bd

    scn = bd.scenario("two_stage_cont")
    df = scn.sample(n, seed=1)
    stages = [dataclasses.replace(s, propensity=None) for s in scn.stages]
    return bd, df, stages


def child_library(n: int, draws: int, chains: int, static: bool, online: bool = False) -> dict:
    """The analysis of ``whole``/``large``; ``peak_rss_mb`` after each part in ``peaks``."""
    bd, df, stages = _two_stage(n)
    out: dict = {}
    peaks: dict = {}
    t0 = time.perf_counter()
    model = bd.DTRModel(df, stages, outcome="Y")
    out["model_s"] = time.perf_counter() - t0
    peaks["model"] = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    post = model.fit(
        draws=draws, chains=chains, random_seed=1, progressbar=False, engine="conjugate"
    )
    out["fit_s"] = time.perf_counter() - t0
    peaks["fit"] = rss_mb()
    t1 = time.perf_counter()
    p1 = post.prob_optimal(1)
    p2 = post.prob_optimal(2)
    out["prob_optimal_s"] = time.perf_counter() - t1
    peaks["prob_optimal"] = rss_mb()
    t1 = time.perf_counter()
    v = post.value("optimal", method="q", crossfit=0)
    out["value_q_s"] = time.perf_counter() - t1
    peaks["value_q"] = rss_mb()
    out["analysis_s"] = time.perf_counter() - t0
    out["analysis_cpu_s"] = time.process_time() - c0
    if static:
        t1 = time.perf_counter()
        vs = post.value(bd.Regime.static(A1=1, A2=1), method="q")
        out["value_static_s"] = time.perf_counter() - t1
        out["value_static_mean"] = float(vs.mean())
        peaks["value_static"] = rss_mb()
    if online:
        # the library's default value of the learned rule: online sample splitting (10 chunks,
        # 6 valued, each by a rule learned on the chunks before it; method "q" here, as these
        # stages have no propensity models)
        t1 = time.perf_counter()
        vo = post.value("optimal")
        out["value_online_s"] = time.perf_counter() - t1
        out["value_online_method"] = vo.attrs["method"]
        out["value_online_mean"] = float(vo.mean())
        out["value_online_sd"] = float(vo.std())
        peaks["value_online"] = rss_mb()
    out |= {
        "p1_mean": float(p1.iloc[:, 1].mean()),
        "p2_mean": float(p2.iloc[:, 1].mean()),
        "value_mean": float(v.mean()),
        "value_sd": float(v.std()),
        "peaks": peaks,
        "peak_rss_mb": rss_mb(),
    }
    return out


def child_dask(n: int, draws: int, threads: int) -> dict:
    """Value and P(optimal) blocks in this process against a dask LocalCluster of threads."""
    import logging

    import numpy as np
    from distributed import Client, LocalCluster

    bd, df, stages = _two_stage(n)
    model = bd.DTRModel(df, stages, outcome="Y")
    static = bd.Regime.static(A1=1, A2=1)
    posts = []
    for _ in range(2):  # two equal posteriors (same seed): each keeps its own caches
        post = model.fit(
            draws=draws, chains=4, random_seed=1, progressbar=False, engine="conjugate"
        )
        post.induction_for(static)  # the static regime's stage-1 refit, not timed
        posts.append(post)
    out: dict = {}
    t0 = time.perf_counter()
    v_here = posts[0].value(static, method="q").values
    out["here_value_s"] = time.perf_counter() - t0
    p_here = posts[0].prob_optimal(1).to_numpy()
    out["here_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=threads,
        processes=False,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    out["cluster_start_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    v_dask = posts[1].value(static, method="q", client=client).values
    out["dask_value_s"] = time.perf_counter() - t0
    p_dask = posts[1].prob_optimal(1, client=client).to_numpy()
    out["dask_s"] = time.perf_counter() - t0
    client.close()
    cluster.close()
    out["identical"] = bool(np.array_equal(v_here, v_dask) and np.array_equal(p_here, p_dask))
    out["peak_rss_mb"] = rss_mb()
    return out


def _nig(X: np.ndarray, T: np.ndarray, S: int, rng: np.random.Generator) -> np.ndarray:
    """Exact NIG draws, vague prior (tau = 100, a0 = b0 = 0.01); T is (n,) or (n, S)."""
    n, p = X.shape
    L = np.linalg.cholesky(X.T @ X + np.eye(p) / 100.0**2)
    rhs = X.T @ T  # (p,) or (p, S)
    m = np.linalg.solve(L.T, np.linalg.solve(L, rhs))
    tt = np.einsum("n...,n...->...", T, T)
    b = 0.01 + 0.5 * (tt - np.einsum("p...,p...->...", m, rhs))
    sigma2 = b / rng.gamma(0.01 + n / 2.0, 1.0, size=S)
    z = np.linalg.solve(L.T, rng.standard_normal((p, S)))
    return ((m if m.ndim == 2 else m[:, None]) + np.sqrt(sigma2) * z).T  # (S, p)


def numpy_pipeline(x1, x2, a1, a2, y, S: int, seed: int) -> dict:
    """The same two-stage analysis by hand, dense (units x draws) arrays."""
    rng = np.random.default_rng(seed)
    n = len(y)
    one = np.ones(n)
    C2 = np.column_stack([one, x2])
    X2 = np.column_stack([one, np.exp(x1), np.exp(x2), a1, a1 * x1, a2[:, None] * C2])
    th2 = _nig(X2, y, S, rng)
    # contiguous coefficient blocks: np.matmul on a column slice falls back to a slow non-BLAS loop
    cont2 = C2 @ np.ascontiguousarray(th2[:, 5:].T)  # (n, S) contrast of arm 1 over arm 0
    p2 = np.count_nonzero(cont2 > 0, axis=1) / S
    modal2 = (p2 > 0.5).astype(float)
    T1 = y[:, None] + (modal2 - a2)[:, None] * cont2  # modal pseudo-outcomes
    del cont2
    M1 = np.column_stack([one, np.exp(x1)])
    C1 = np.column_stack([one, x1])
    th1 = _nig(np.column_stack([M1, a1[:, None] * C1]), T1, S, rng)
    del T1
    cont1 = C1 @ np.ascontiguousarray(th1[:, 2:].T)
    p1 = np.count_nonzero(cont1 > 0, axis=1) / S
    qmax = M1 @ np.ascontiguousarray(th1[:, :2].T) + np.maximum(cont1, 0.0)  # (n, S)
    del cont1
    w = rng.standard_exponential((S, n), dtype=np.float32)
    w /= w.mean(axis=1, keepdims=True)
    value = np.einsum("sn,ns->s", w, qmax) / n
    return {
        "p1_mean": float(p1.mean()),
        "p2_mean": float(p2.mean()),
        "value_mean": float(value.mean()),
        "value_sd": float(value.std()),
    }


def child_numpy(n: int, draws: int, chains: int) -> dict:
    _, df, _ = _two_stage(n)
    cols = [df[c].to_numpy(dtype=float) for c in ("X1", "X2", "A1", "A2", "Y")]
    t0, c0 = time.perf_counter(), time.process_time()
    out = numpy_pipeline(*cols, S=draws * chains, seed=1)
    out["analysis_s"] = time.perf_counter() - t0
    out["analysis_cpu_s"] = time.process_time() - c0
    out["peak_rss_mb"] = rss_mb()
    return out


def child_bmi(engine: str, sampler: str = "nutpie") -> dict:
    warnings.simplefilter("ignore")
    import bayesdtr as bd

    df = bd.load_data("bmi")
    df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
    stages = [
        bd.Stage(
            "A1",
            main="race + parentBMI + baselineBMI",
            contrast="1 + race + parentBMI + baselineBMI",
            propensity="race + parentBMI + baselineBMI",
        ),
        bd.Stage(
            "A2",
            main="race + parentBMI + month4BMI",
            contrast="1 + race + parentBMI + month4BMI",
            propensity="race + parentBMI + month4BMI",
        ),
    ]
    model = bd.DTRModel(df, stages, outcome="y")
    regimes = {"optimal": "optimal"} | {
        f"{a},{b}": bd.Regime.static(A1=a, A2=b) for a in ("CD", "MR") for b in ("CD", "MR")
    }
    out: dict = {}
    t0 = time.perf_counter()
    post = model.fit(engine=engine, sampler=sampler, random_seed=1, progressbar=False, warn=False)
    out["fit_s"] = time.perf_counter() - t0
    out["engines"] = ",".join(f.engine for f in post.fits)
    out["compile_cold"] = {
        **{f"stage{k + 1}": f.compile_seconds for k, f in enumerate(post.fits)},
        **{
            f"propensity{k + 1}": (p.compile_seconds if p is not None else 0.0)
            for k, p in enumerate(post.propensities)
        },
    }
    out["sample_s"] = {
        **{f"stage{k + 1}": f.sample_seconds for k, f in enumerate(post.fits)},
        **{
            f"propensity{k + 1}": (p.sample_seconds if p is not None else 0.0)
            for k, p in enumerate(post.propensities)
        },
    }
    # each regime's value on its own (where the time goes), then the comparison (values cached)
    t1 = time.perf_counter()
    out["value_s"] = {}
    for name, regime in regimes.items():
        t2 = time.perf_counter()
        post.value(regime, method="aipw")
        out["value_s"][name] = time.perf_counter() - t2
    tab = post.compare(regimes, method="aipw")
    out["compare_s"] = time.perf_counter() - t1
    out["total_s"] = time.perf_counter() - t0
    out["optimal_value"] = float(tab.loc["optimal", "mean"])
    out["value_mean"] = {name: float(tab.loc[name, "mean"]) for name in regimes}
    # which engine refitted (or reused) each stage of each regime's value
    out["stage_fits"] = {
        name: post.value(regime, method="aipw").attrs.get("stage_fits", "")
        for name, regime in regimes.items()
    }
    again = model.fit(
        engine=engine, sampler=sampler, random_seed=2, progressbar=False, warn=False
    )  # same structures: warm
    out["compile_warm"] = {
        **{f"stage{k + 1}": f.compile_seconds for k, f in enumerate(again.fits)},
        **{
            f"propensity{k + 1}": (p.compile_seconds if p is not None else 0.0)
            for k, p in enumerate(again.propensities)
        },
    }
    out["peak_rss_mb"] = rss_mb()
    return out


# ---------------------------------------------------------------------------------------- parent
BLAS_THREADS: list[str] = []  # set by --blas-threads


def run_child(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    env = os.environ | {
        "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
    }
    if BLAS_THREADS:
        env |= {
            v: BLAS_THREADS[0]
            for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        }
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        return {
            "error": res.stderr.strip().splitlines()[-1]
            if res.stderr.strip()
            else f"exit {res.returncode}"
        }
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, no bmi (about 2 min)")
    ap.add_argument(
        "--n-whole", type=int, default=None, help="units of the whole-analysis comparison (10,000)"
    )
    ap.add_argument("--n-large", type=int, default=None, help="units of the large case (1,000,000)")
    ap.add_argument(
        "--large-draws",
        type=int,
        default=None,
        help="draws per chain of the large case (4 chains; 100)",
    )
    ap.add_argument(
        "--no-online",
        action="store_true",
        help="leave the default (online sample-split) value('optimal') out of the large case",
    )
    ap.add_argument(
        "--large-timeout",
        type=float,
        default=3600,
        help="seconds the large case may run before it is stopped and reported as timed out",
    )
    ap.add_argument("--no-bmi", action="store_true")
    ap.add_argument(
        "--only",
        nargs="+",
        choices=("import", "whole", "large", "bmi", "dask"),
        default=("import", "whole", "large", "bmi"),
        help="run only these cases",
    )
    ap.add_argument(
        "--bmi-samplers",
        nargs="+",
        choices=("nutpie", "nutpie-jax"),
        default=["nutpie"],
        help="NUTS samplers of the bmi case (one mcmc row each; the conjugate row uses the first)",
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads of every case, library and baselines alike (0: leave unset)",
    )
    ap.add_argument("--out", default="scale")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        kind, *rest = args.child
        if kind == "import":
            out = child_import(rest[0])
        elif kind == "library":
            online = len(rest) > 4 and rest[4] == "1"
            out = child_library(int(rest[0]), int(rest[1]), int(rest[2]), rest[3] == "1", online)
        elif kind == "numpy":
            out = child_numpy(int(rest[0]), int(rest[1]), int(rest[2]))
        elif kind == "dask":
            out = child_dask(int(rest[0]), int(rest[1]), int(rest[2]))
        else:
            out = child_bmi(*rest)
        print(json.dumps(out, default=float))
        return

    if args.blas_threads:
        BLAS_THREADS.append(str(args.blas_threads))
    n_whole = args.n_whole or (2_000 if args.quick else 10_000)
    n_large = args.n_large or (100_000 if args.quick else 1_000_000)
    large_draws = args.large_draws or (25 if args.quick else 100)
    draws_whole = 250 if args.quick else 1000
    load0 = os.getloadavg()
    rows: list[dict] = []

    def row(case, what, seconds, baseline_s=None, baseline="", **extra):
        r = {
            "case": case,
            "what": what,
            "seconds": seconds,
            "baseline": baseline,
            "baseline_s": baseline_s,
            "ratio": None if not baseline_s or seconds is None else seconds / baseline_s,
        } | extra
        rows.append(r)
        print(
            f"{case:>14}  {what:<58} {seconds if seconds is None else round(seconds, 2)!s:>8} s"
            + (f"  vs {baseline} {baseline_s:.2f} s  ratio {r['ratio']:.2f}" if r["ratio"] else ""),
            flush=True,
        )

    # import time
    if "import" in args.only:
        imp, base = [], []
        for _ in range(7):  # interleaved, so that load changes hit both alike
            imp.append(run_child(["import", "bayesdtr"], 120)["seconds"])
            base.append(run_child(["import", "base"], 120)["seconds"])
        row(
            "import",
            "import bayesdtr (fresh process, median of 7)",
            statistics.median(imp),
            statistics.median(base),
            "import numpy, pandas",
        )

    # whole analysis against NumPy
    if "whole" in args.only:
        run_whole(args, n_whole, draws_whole, row)
    if "large" in args.only:
        run_large(n_large, large_draws, row, not args.no_online, args.large_timeout)
    if "dask" in args.only:
        run_dask(100_000 if not args.quick else 20_000, large_draws, row)
    if "bmi" in args.only and not (args.quick or args.no_bmi):
        run_bmi(args.bmi_samplers, row)
    load1 = os.getloadavg()
    write_results(args, rows, load0, load1)


def run_whole(args, n_whole: int, draws_whole: int, row) -> None:
    lib = run_child(["library", str(n_whole), str(draws_whole), "4", "0"], 1800)
    ref = run_child(["numpy", str(n_whole), str(draws_whole), "4"], 1800)
    row(
        "whole",
        f"n={n_whole:,}, 4x{draws_whole}: fit + prob_optimal x2 + q value",
        lib.get("analysis_s"),
        ref.get("analysis_s"),
        "hand-written NumPy",
        peak_rss_mb=lib.get("peak_rss_mb"),
        cpu_s=lib.get("analysis_cpu_s"),
        baseline_cpu_s=ref.get("analysis_cpu_s"),
        baseline_peak_rss_mb=ref.get("peak_rss_mb"),
        model_s=lib.get("model_s"),
        check=f"P(opt) {lib.get('p1_mean', 0):.3f}/{ref.get('p1_mean', 0):.3f}, "
        f"value {lib.get('value_mean', 0):.3f}/{ref.get('value_mean', 0):.3f} (library/NumPy)",
    )


def run_large(
    n_large: int, large_draws: int, row, online: bool = True, timeout: float = 3600
) -> None:
    from bayesdtr.crossfit import RULE_DRAWS

    big = run_child(
        ["library", str(n_large), str(large_draws), "4", "1", "1" if online else "0"], timeout
    )
    S = large_draws * 4
    dense_gb = n_large * S * 8 / 1e9
    # what the fold rule of each valued chunk and stage built before it went by chunks of units:
    # Q of its thinned draws for every unit and both arms (float64)
    rule_gb = min(RULE_DRAWS, S) * n_large * 2 * 8 / 1e9
    parts = ["analysis_s", "value_static_s"] + (["value_online_s"] if online else [])
    total = None if "error" in big else sum(big.get(k, 0) for k in parts)
    row(
        "large",
        f"n={n_large:,}, 4x{large_draws}: fit + prob_optimal x2 + plug-in q value + static q "
        "value" + (" + value('optimal') (default: online sample split)" if online else ""),
        total,
        None,
        f"dense draws x units array {dense_gb:.1f} GB"
        + (f"; unchunked fold-rule Q array {rule_gb:.1f} GB" if online else ""),
        peak_rss_mb=big.get("peak_rss_mb"),
        model_s=big.get("model_s"),
        fit_s=big.get("fit_s"),
        prob_optimal_s=big.get("prob_optimal_s"),
        value_q_s=big.get("value_q_s"),
        value_static_s=big.get("value_static_s"),
        value_online_s=big.get("value_online_s"),
        value_online_method=big.get("value_online_method"),
        value_online_mean=big.get("value_online_mean"),
        value_online_sd=big.get("value_online_sd"),
        peaks=json.dumps({k: round(v) for k, v in (big.get("peaks") or {}).items()}),
        check=big.get("error", ""),
    )


def run_dask(n: int, draws: int, row) -> None:
    threads = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    r = run_child(["dask", str(n), str(draws), str(threads)], 1800)
    row(
        "dask",
        f"n={n:,}, 4x{draws}: static q value + P(optimal) stage 1 on a LocalCluster "
        f"({threads} threads)",
        r.get("dask_s"),
        r.get("here_s"),
        "the same in process",
        peak_rss_mb=r.get("peak_rss_mb"),
        check=r.get("error", "")
        or f"value {r.get('dask_value_s', 0):.2f} s vs {r.get('here_value_s', 0):.2f} s, P(optimal) "
        f"{r.get('dask_s', 0) - r.get('dask_value_s', 0):.2f} s vs {r.get('here_s', 0) - r.get('here_value_s', 0):.2f} s "
        "(in process it is a plug-in value pass that tallies); "
        f"identical: {r.get('identical')}; cluster start {r.get('cluster_start_s', 0):.2f} s (not timed)",
    )


def _parts(r: dict) -> str:
    """Where a bmi analysis's seconds went: compile and sampling per model, value per regime."""
    out = []
    for key, label in (
        ("compile_cold", "compile"),
        ("sample_s", "sample"),
        ("value_s", "value"),
        ("value_mean", "posterior mean"),
    ):
        d = r.get(key) or {}
        out.append(f"{label} " + ", ".join(f"{k} {v:.1f}" for k, v in d.items()))
    return "; ".join(out)


def run_bmi(samplers: list[str], row) -> None:
    """bmi: MCMC against conjugate, end to end (fit + 5-regime AIPW comparison), same run."""
    res = {("conjugate", samplers[0]): run_child(["bmi", "conjugate", samplers[0]], 3600)}
    for smp in samplers:
        res[("mcmc", smp)] = run_child(["bmi", "mcmc", smp], 3600)
    c = res[("conjugate", samplers[0])]
    for smp in samplers:
        m = res[("mcmc", smp)]
        row(
            "bmi",
            f'engine="mcmc", sampler="{smp}": fit + 5-regime AIPW compare',
            m.get("total_s"),
            c.get("total_s"),
            f'engine="conjugate", sampler="{samplers[0]}", same analysis',
            fit_s=m.get("fit_s"),
            compare_s=m.get("compare_s"),
            baseline_fit_s=c.get("fit_s"),
            baseline_compare_s=c.get("compare_s"),
            engines=m.get("engines"),
            parts=_parts(m),
            stage_fits=json.dumps(m.get("stage_fits") or {}),
            baseline_parts=_parts(c),
            check=m.get("error", c.get("error", "")),
        )
    for (eng, smp), r in res.items():
        for model_name, cold in (r.get("compile_cold") or {}).items():
            row(
                "compile",
                f"{eng}, {smp}: {model_name} cold / warm",
                cold,
                None,
                "",
                warm_s=(r.get("compile_warm") or {}).get(model_name),
            )


def write_results(args, rows: list[dict], load0, load1) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = environment()  # before the results are written, which would mark the tree dirty
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    with open(RESULTS / f"{args.out}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"# Scale benchmark ({'--quick' if args.quick else 'default'})",
        "",
        f"`python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}`; {env['date']}, commit "
        f"{env['git_commit']}, {env['cpu_count']} CPUs, load average {load0[0]:.1f} at start, {load1[0]:.1f} at end; "
        f"BLAS threads per case: {args.blas_threads or 'unset'}. Seconds are wall time; on a shared machine "
        "compare the ratios (same run), and the CPU seconds where given.",
        "",
        "| case | what | seconds | baseline | baseline s | ratio | peak RSS MB | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(v, fmt=".2f"):
        return "-" if v is None else format(v, fmt)

    for r in rows:
        notes = r.get("check", "") or ""
        if r["case"] == "large":
            notes = (
                f"model {f(r.get('model_s'), '.1f')} s, fit {f(r.get('fit_s'), '.1f')} s, P(optimal) "
                f"{f(r.get('prob_optimal_s'), '.1f')} s, q value {f(r.get('value_q_s'), '.1f')} s, static "
                f"{f(r.get('value_static_s'), '.1f')} s"
                + (
                    f", value('optimal') {f(r.get('value_online_s'), '.1f')} s (method "
                    f"{r.get('value_online_method')}, mean {f(r.get('value_online_mean'), '.3f')}, "
                    f"sd {f(r.get('value_online_sd'), '.4f')})"
                    if r.get("value_online_s") is not None
                    else ""
                )
                + f"; peak RSS MB after each part {r.get('peaks')} {notes}"
            )
        if r["case"] == "compile":
            notes = f"warm {f(r.get('warm_s'))} s"
        if r["case"] == "bmi":
            notes = (
                f"mcmc fit {f(r.get('fit_s'), '.1f')} + compare {f(r.get('compare_s'), '.1f')}; conjugate fit "
                f"{f(r.get('baseline_fit_s'), '.1f')} + compare {f(r.get('baseline_compare_s'), '.1f')}; "
                f"engines {r.get('engines')}. MCMC: {r.get('parts')}. Conjugate: {r.get('baseline_parts')}. "
                f"MCMC stage fits per regime: {r.get('stage_fits')} {notes}"
            )
        if r["case"] == "whole":
            cpu = (
                r["cpu_s"] / r["baseline_cpu_s"]
                if r.get("cpu_s") and r.get("baseline_cpu_s")
                else None
            )
            notes = (
                f"CPU {f(r.get('cpu_s'))} s vs {f(r.get('baseline_cpu_s'))} s, ratio {f(cpu)}; "
                f"model construction {f(r.get('model_s'))} s (not timed); NumPy RSS {f(r.get('baseline_peak_rss_mb'), '.0f')} MB; {notes}"
            )
        lines.append(
            f"| {r['case']} | {r['what']} | {f(r['seconds'])} | {r['baseline']} | {f(r['baseline_s'])} | "
            f"{f(r['ratio'])} | {f(r.get('peak_rss_mb'), '.0f')} | {notes} |"
        )
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
