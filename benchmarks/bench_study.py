"""Throughput of ``bd.simulation_study``: replicates per minute, runner overhead, BLAS pinning.

One run, scenario ``two_stage_cont`` with n = 300 and its default stages without the
propensity models (so every stage uses the conjugate engine; the NUTS logistic propensity
models would dominate the time). Cases, all through the study runner:

- ``fit+value``: the default fit (4 chains x 1,000 draws) plus ``post.value("optimal")``, as a
  method callable; estimand ``value_optimal``.
- ``bayes``: the library's default bayesdtr method (``methods={"bayes": {}}``: the fit, the
  contrast coefficients, ``value("optimal")``, the value of ``post.rule()``); estimands psi,
  value_optimal and correct decisions.
- ``qlearning``: the OLS + 1,000-resample percentile-bootstrap baseline, same estimands.

Each case runs serially (``client="serial"``) and on the embedded ``LocalCluster`` (one
single-threaded worker process per core; the time includes starting it) and on a started
cluster (``client=Client``, startup excluded). Overhead is the share of the time that is not
spent inside the methods (data simulation, scoring, dispatch, checkpointing):
1 - sum(method seconds) / (wall x workers). BLAS pinning: ``fit+value`` serially with
``blas_threads=1`` against ``None`` (OpenBLAS's own thread count), and on a cluster whose
workers are not pinned (dask's nanny sets ``OPENBLAS_NUM_THREADS=1`` by default; the unpinned
cluster removes it).

Usage::

    python benchmarks/bench_study.py             # --reps 60 (about 3 min on 2 busy cores)
    python benchmarks/bench_study.py --reps 200

Writes ``benchmarks/results/study.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's bayesdtr

from _util import RESULTS, environment, table, write_json  # noqa: E402


def fit_value(df, scenario, seed_sequence, *, stages, level):
    """The default two-stage fit plus the value of the optimal regime, as a study method."""
    from bayesdtr.simulate.methods import MethodResult, equal_tailed, model_for, seed_int

    post = model_for(df, scenario, stages).fit(random_seed=seed_int(seed_sequence), progressbar=False, warn=False)
    return MethodResult(estimates={"value_optimal": equal_tailed(post.value("optimal").values, level)})


CASES: dict[str, tuple[Any, list[str]]] = {
    "fit+value": (fit_value, ["value_optimal"]),
    "bayes": ({}, ["psi", "value_optimal", "correct"]),
    "qlearning": ("qlearning", ["psi", "value_optimal", "correct"]),
}


def run(
    case: str, reps: int, client: Any, *, workers: int, blas: int | None = 1, seed: int = 1,
    store: Path | None = None,
) -> dict[str, Any]:
    import bayesdtr as bd

    scn = bd.scenario("two_stage_cont")
    stages = [dataclasses.replace(s, propensity=None) for s in scn.stages]
    spec, est = CASES[case]
    t0 = time.perf_counter()
    res = bd.simulation_study(
        scn, stages=stages, n=300, reps=reps, seed=seed, methods={case: spec}, estimands=est,
        client=client, progressbar=False, blas_threads=blas, store=store,
    )
    wall = time.perf_counter() - t0
    tab = res.table
    inside = float(tab.groupby("replicate")["seconds"].first().sum())
    return {
        "case": case,
        "executor": ("embedded" if client is None else client if isinstance(client, str) else "client")
        + ("+store" if store else ""),
        "blas_threads": blas,
        "reps": reps,
        "workers": workers,
        "wall_s": wall,
        "reps_per_min": reps / wall * 60,
        "method_s_per_rep": inside / reps,
        "overhead": 1 - inside / (wall * workers),
        "failed_rows": int((tab["error"] != "").sum()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=60, help="replicates per serial run (cluster runs: 2x)")
    p.add_argument("--out", type=Path, default=RESULTS / "study.json")
    args = p.parse_args(argv)
    import dask
    from distributed import Client, LocalCluster

    cores = len(os.sched_getaffinity(0))
    R = args.reps
    load0 = os.getloadavg()
    print(f"bench_study: reps={R}, cores={cores}, load avg {load0}", flush=True)
    rows = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        print(f"  {row['case']:10s} {str(row['executor']):8s} blas={row['blas_threads']}: "
              f"{row['reps_per_min']:7.1f} reps/min, method {row['method_s_per_rep']:.3f} s/rep, "
              f"overhead {row['overhead']:.1%}", flush=True)

    run("fit+value", 3, "serial", workers=1)  # warm imports and caches
    for case in CASES:
        reps = R if case != "qlearning" else max(10, R // 2)
        add(run(case, reps, "serial", workers=1))
    add(run("fit+value", R, "serial", workers=1, blas=None))
    with tempfile.TemporaryDirectory() as tmp:
        add(run("fit+value", R, "serial", workers=1, store=Path(tmp) / "store"))
    add(run("fit+value", 2 * R, None, workers=cores))  # embedded cluster, startup included
    t = time.perf_counter()
    with (
        LocalCluster(n_workers=cores, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as cl,
        Client(cl) as client,
    ):
        client.run(lambda: __import__("bayesdtr.simulate.study"))
        startup = time.perf_counter() - t
        run("fit+value", cores, client, workers=cores)  # warm the workers
        for case in CASES:
            reps = 2 * R if case != "qlearning" else R
            add(run(case, reps, client, workers=cores))
    # dask.config.set merges dicts, so the nanny's pins are overridden, not removed: OpenBLAS's
    # own default is one thread per core
    unpinned = {k: cores for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": unpinned}):
        with (
            LocalCluster(n_workers=cores, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as cl,
            Client(cl) as client,
        ):
            client.run(lambda: __import__("bayesdtr.simulate.study"))
            run("fit+value", cores, client, workers=cores, blas=None)
            add(run("fit+value", 2 * R, client, workers=cores, blas=None))
    by = {(r["case"], str(r["executor"]), r["blas_threads"]): r for r in rows}
    by_store = by[("fit+value", "serial+store", 1)]
    ser = by[("fit+value", "serial", 1)]["reps_per_min"]
    ratios = {
        "cluster/serial (fit+value, started cluster)": by[("fit+value", "client", 1)]["reps_per_min"] / ser,
        "cluster/serial (fit+value, embedded incl. startup)": by[("fit+value", "embedded", 1)]["reps_per_min"] / ser,
        "fit+value / qlearning (serial, reps per min)": ser / by[("qlearning", "serial", 1)]["reps_per_min"],
        "bayes / qlearning (serial, reps per min)": by[("bayes", "serial", 1)]["reps_per_min"] / by[("qlearning", "serial", 1)]["reps_per_min"],
        "checkpointing / none (serial, reps per min)": by_store["reps_per_min"] / ser,
        "BLAS pinned / unpinned (serial)": ser / by[("fit+value", "serial", None)]["reps_per_min"],
        "BLAS pinned / unpinned (cluster)": by[("fit+value", "client", 1)]["reps_per_min"] / by[("fit+value", "client", None)]["reps_per_min"],
    }
    text = table(rows, [
        ("case", "case", ""), ("executor", "executor", ""), ("blas_threads", "BLAS", ""),
        ("reps", "R", "d"), ("wall_s", "wall s", ".1f"), ("reps_per_min", "reps/min", ".0f"),
        ("method_s_per_rep", "method s/rep", ".3f"), ("overhead", "overhead", ".1%"),
        ("failed_rows", "failed", "d"),
    ])
    print("\n" + text)
    print(f"\ncluster startup (LocalCluster + imports in workers): {startup:.1f} s")
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    load1 = os.getloadavg()
    print(f"load avg at end {load1}")
    write_json(args.out, {
        "benchmark": "study", "environment": environment(), "config": {"reps": R, "n": 300,
        "scenario": "two_stage_cont (no propensity models)", "cores": cores},
        "rows": rows, "ratios": ratios, "cluster_startup_s": startup,
        "loadavg_start": load0, "loadavg_end": load1, "table": text,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
