"""Benchmark of a whole two-stage analysis: conjugate, NUTS (nutpie, PyMC) and OLS Q-learning.

Cases, each run in its own fresh Python process (so its peak RSS is its own), at each n:

(a) ``conjugate``: ``two_stage_cont`` data, its default stages without propensity models,
    ``fit(engine="conjugate")`` + ``prob_optimal`` at every stage + ``value("optimal")``.
(b) ``nutpie``: ``multisite_smart`` data, its default stages without propensity models,
    ``group="site"`` (random site intercepts), ``fit(engine="mcmc", sampler="nutpie")`` + the
    same queries. Compile time (sum of ``compile_seconds``) and sampling time (sum of
    ``sample_seconds``) are reported separately. For the last stage, the gradient floor:
    gradients used x cost of one logp+gradient / cores. Post-warmup gradients are the sum of
    ``stats["n_steps"]`` of the last-stage draws; warmup gradients are not stored by the
    library, so they are counted by one extra nutpie run of the same compiled last-stage model
    with ``save_warmup=True`` (same data, settings and seed; not included in (b)'s time). The
    cost of one logp+gradient is timed by calling nutpie's compiled (numba) logp+gradient
    function in a numba loop, so Python call overhead is excluded as it is in nutpie.
(c) ``pymc``: (b) with ``sampler="pymc"`` (``pm.sample`` recompiles inside every call, so its
    compile time is part of the sampling time).
(d) ``qlearning``: ``bayesdtr.baselines.qlearning(model, bootstrap=B)`` on (a)'s model.

Usage::

    python benchmarks/bench_backward.py            # n = 1,000 and 10,000, 4 x 1,000 draws
    python benchmarks/bench_backward.py --quick    # n = 1,000, 4 x 200 draws, smoke run

Writes ``benchmarks/results/backward.json`` (``backward_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import (
    RESULTS,
    current_rss_mb,
    environment,
    rss_mb,
    table,
    without_propensity,
    write_json,
)  # noqa: E402

CASES = ("conjugate", "nutpie", "pymc", "qlearning")
LABELS = {
    "conjugate": "(a) conjugate",
    "nutpie": "(b) nutpie",
    "pymc": "(c) pymc",
    "qlearning": "(d) qlearning",
}


# --------------------------------------------------------------------------- children


def _models(case: str, n: int, seed: int):
    import bayesdtr as bd

    if case in ("conjugate", "qlearning"):
        sc = bd.scenario("two_stage_cont")
        df = sc.sample(n, seed=seed)
        return bd.DTRModel(df, without_propensity(sc.stages), outcome=sc.outcome)
    sc = bd.scenario("multisite_smart")
    df = sc.sample(n, seed=seed)
    return bd.DTRModel(df, without_propensity(sc.stages), outcome=sc.outcome, group="site")


def _queries(post) -> dict[str, float]:
    """prob_optimal at every stage and value("optimal"), timed."""
    t0 = time.perf_counter()
    for k in range(1, len(post.fits) + 1):
        post.prob_optimal(stage=k)
    t1 = time.perf_counter()
    v = post.value("optimal")
    t2 = time.perf_counter()
    return {"prob_optimal_s": t1 - t0, "value_s": t2 - t1, "value_mean": float(v.mean())}


def _grad_cost_seconds(compiled, reps: int = 200_000) -> dict[str, float]:
    """Seconds per logp+gradient of a nutpie-compiled model (numba loop; and Python dispatch)."""
    import numba
    import numpy as np

    fn = compiled.logp_func  # pytensor Function: unconstrained point -> (logp, grad)
    jit = fn.vm.jit_fn
    shared = [np.asarray(v.get_value()) for v in fn.get_shared()]
    try:
        x = np.asarray(compiled.initial_point_func(0), dtype=float).ravel()
    except Exception:  # noqa: BLE001 - any failure: evaluate at zero instead
        x = np.zeros(compiled.n_dim)
    if x.size != compiled.n_dim:
        x = np.zeros(compiled.n_dim)
    src = "\n".join(
        [
            "def loop(fn, x, " + ", ".join(f"s{i}" for i in range(len(shared))) + ", N):",
            "    acc = 0.0",
            "    for i in range(N):",
            "        x[0] += 1e-12",
            "        r = fn(x, " + ", ".join(f"s{i}" for i in range(len(shared))) + ")",
            "        acc += r[1][0]",
            "    return acc",
        ]
    )
    ns: dict[str, Any] = {}
    exec(src, ns)  # noqa: S102 - a loop with the right arity for numba
    loop = numba.njit(ns["loop"])
    loop(jit, x.copy(), *shared, 10)
    t0 = time.perf_counter()
    loop(jit, x.copy(), *shared, reps)
    in_numba = (time.perf_counter() - t0) / reps
    py_reps = reps // 10
    t0 = time.perf_counter()
    for _ in range(py_reps):
        jit(x, *shared)
    dispatch = (time.perf_counter() - t0) / py_reps
    return {
        "grad_cost_s": in_numba,
        "grad_cost_python_call_s": dispatch,
        "n_dim": int(compiled.n_dim),
    }


def _last_stage_sampler(post, sampler: str):
    """The last stage's outcome model, its cached compiled sampler and its target.

    The library keeps compiled samplers in a process-wide cache keyed by model structure
    (``bayesdtr.inference.sampling``); the outcome model is rebuilt here exactly as
    ``bayesdtr.inference.engines.mcmc.fit_stage_mcmc`` builds it for the last stage, and its
    key finds the sampler that the fit compiled (no recompilation).
    """
    import numpy as np

    from bayesdtr.inference.sampling import cached_sampler
    from bayesdtr.models.outcome import build_outcome_model
    from bayesdtr.models.priors import nig_hyper

    ind = post.induction
    k = ind.K - 1
    design, st = ind.design, ind.settings
    sd = design.stages[k]
    family = ind.family(k)
    g_obs = ind.observed_return()[sd.units]
    hyper = nig_hyper(sd.X_main, sd.X_contrast, sd.n_arms, g_obs) if family == "gaussian" else None
    target = ind.target_for_fit(k, None)[0]
    om = build_outcome_model(
        sd,
        target,
        family=family,
        priors=ind.priors[sd.treatment],
        hyper=hyper,
        group_codes=None if design.group_codes is None else design.group_codes[sd.units],
        n_groups=len(design.group_levels),
        group_contrast=st.group_contrast,
        target_scale=float(np.std(g_obs)) or 1.0,
    )
    smp, created = cached_sampler(om.key, om.build, sampler)
    if created:
        raise RuntimeError("the last stage's sampler was not in the compile cache (key changed?)")
    return om, smp, target


def _warmup_gradients(post, settings, seed: int) -> dict[str, Any]:
    """Re-run the last stage's compiled nutpie model with save_warmup=True to count warmup gradients."""
    import numpy as np
    import nutpie

    om, sampler, target = _last_stage_sampler(post, "nutpie")
    compiled = sampler._compiled.with_data(**om.data_for(target))
    cost = _grad_cost_seconds(compiled)  # before sampling: no sampler threads around
    t0 = time.perf_counter()
    tree = nutpie.sample(
        compiled,
        draws=settings["draws"],
        tune=settings["tune"],
        chains=settings["chains"],
        cores=min(settings["chains"], os.cpu_count() or 1),
        seed=seed,
        progress_bar=False,
        save_warmup=True,
    )
    seconds = time.perf_counter() - t0
    groups = {name: tree[name] for name in tree.children}
    warm = groups.get("warmup_sample_stats")
    post_stats = groups["sample_stats"]
    out = {
        "rerun_seconds": seconds,
        "post_warmup_gradients_rerun": int(np.asarray(post_stats["n_steps"].values).sum()),
        "warmup_gradients": int(np.asarray(warm["n_steps"].values).sum())
        if warm is not None
        else None,
    }
    return {**out, **cost}


def run_case(case: str, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one benchmark case in this process and return its measurements."""
    warnings.filterwarnings("ignore")
    import numpy as np

    import bayesdtr  # noqa: F401  (import time is not measured)
    from bayesdtr.baselines import qlearning

    model = _models(case, n, cfg["seed"])
    base = current_rss_mb()
    res: dict[str, Any] = {"case": case, "n": n, "rss_base_mb": base}
    fit_kw = dict(
        draws=cfg["draws"],
        tune=cfg["tune"],
        chains=cfg["chains"],
        random_seed=cfg["seed"],
        progressbar=False,
        warn=False,
    )
    # Compiled samplers are cached per process by model structure: start each case from an
    # empty cache so that its compile time is measured (each case also runs in a fresh process).
    from bayesdtr.inference.sampling import clear_cache

    clear_cache()
    t0 = time.perf_counter()
    if case == "qlearning":
        q = qlearning(model, bootstrap=cfg["bootstrap"], seed=cfg["seed"])
        res["wall_s"] = time.perf_counter() - t0
        res["value_mean"] = q.value
        res["boot_value_sd"] = float(np.std(q.boot_value, ddof=1))
    else:
        if case == "conjugate":
            post = model.fit(engine="conjugate", **fit_kw)
        else:
            post = model.fit(engine="mcmc", sampler=case, imputations=cfg["imputations"], **fit_kw)
        res["fit_s"] = time.perf_counter() - t0
        res |= _queries(post)
        res["wall_s"] = time.perf_counter() - t0
        res["compile_s"] = float(sum(f.compile_seconds for f in post.fits))
        res["sample_s"] = float(sum(f.sample_seconds for f in post.fits))
        res["stages"] = [
            {
                "stage": sd.treatment,
                "engine": f.engine,
                "n_units": int(sd.n_units),
                "n_fits": int(f.n_fits),
                "compile_s": float(f.compile_seconds),
                "sample_s": float(f.sample_seconds),
                "post_warmup_gradients": int(np.sum(f.stats["n_steps"]))
                if "n_steps" in f.stats
                else None,
                "divergences": int(np.sum(f.stats["diverging"]))
                if "diverging" in f.stats
                else None,
            }
            for sd, f in zip(post.design.stages, post.fits, strict=True)
        ]
        if case != "conjugate":
            last = res["stages"][-1]
            cores = min(cfg["chains"], os.cpu_count() or 1)
            floor: dict[str, Any] = {
                "cores": cores,
                "post_warmup_gradients": last["post_warmup_gradients"],
            }
            if case == "nutpie":
                floor |= _warmup_gradients(post, cfg, cfg["seed"])
            else:
                om, smp, _ = _last_stage_sampler(post, "pymc")
                import nutpie

                floor |= _grad_cost_seconds(nutpie.compile_pymc_model(smp.model, freeze_model=False))
            g_post = floor["post_warmup_gradients"]
            floor["floor_post_warmup_s"] = g_post * floor["grad_cost_s"] / cores
            if floor.get("warmup_gradients") is not None:
                floor["floor_total_s"] = (
                    (g_post + floor["warmup_gradients"]) * floor["grad_cost_s"] / cores
                )
            floor["last_stage_sample_s"] = last["sample_s"]
            res["last_stage_floor"] = floor
    res["rss_peak_mb"] = rss_mb()
    res["rss_delta_mb"] = res["rss_peak_mb"] - base
    return res


# --------------------------------------------------------------------------- parent


def _child(case: str, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--n",
        str(n),
        "--child-out",
        out,
        "--config",
        json.dumps(cfg),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"case": case, "n": n, "error": proc.stderr[-2000:]}
    res = json.loads(Path(out).read_text())
    os.unlink(out)
    res["process_s"] = time.perf_counter() - t0
    return res


def _ratios(by: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    def w(c: str) -> float | None:
        r = by.get(c)
        return None if r is None or "error" in r else r["wall_s"]

    a, b, c, d = (w(x) for x in CASES)
    b_nc = None if b is None else b - by["nutpie"]["compile_s"]
    return {
        "a_over_d": None if a is None or d is None else a / d,
        "b_over_c": None if b is None or c is None else b / c,
        "b_without_compile_over_d": None if b_nc is None or d is None else b_nc / d,
        "b_without_compile_s": b_nc,
    }


def report(results: list[dict[str, Any]], ns: list[int]) -> str:
    lines = []
    rows = []
    for r in results:
        if "error" in r:
            rows.append({"label": LABELS[r["case"]], "n": r["n"], "note": "ERROR"})
            continue
        rows.append(
            {
                "label": LABELS[r["case"]],
                "n": r["n"],
                "wall": r["wall_s"],
                "fit": r.get("fit_s"),
                "compile": r.get("compile_s") if r["case"] != "pymc" else None,
                "sample": r.get("sample_s"),
                "queries": (r["prob_optimal_s"] + r["value_s"]) if "value_s" in r else None,
                "peak": r["rss_peak_mb"],
                "delta": r["rss_delta_mb"],
                "value": r["value_mean"],
            }
        )
    lines.append(
        table(
            rows,
            [
                ("label", "case", ""),
                ("n", "n", ",d"),
                ("wall", "wall s", ".2f"),
                ("fit", "fit s", ".2f"),
                ("compile", "compile s", ".2f"),
                ("sample", "sample s", ".2f"),
                ("queries", "queries s", ".3f"),
                ("peak", "peak RSS MiB", ".0f"),
                ("delta", "+RSS MiB", ".0f"),
                ("value", "value", ".3f"),
            ],
        )
    )
    lines.append("")
    rat_rows = []
    for n in ns:
        by = {r["case"]: r for r in results if r["n"] == n}
        rat = _ratios(by)
        rat_rows.append({"n": n, **rat})
    lines.append(
        table(
            rat_rows,
            [
                ("n", "n", ",d"),
                ("a_over_d", "a/d", ".2f"),
                ("b_over_c", "b/c", ".3f"),
                ("b_without_compile_s", "b-compile s", ".2f"),
                ("b_without_compile_over_d", "(b-compile)/d", ".2f"),
            ],
        )
    )
    lines.append("")
    fl_rows = []
    for r in results:
        fl = r.get("last_stage_floor")
        if not fl:
            continue
        fl_rows.append(
            {
                "label": LABELS[r["case"]],
                "n": r["n"],
                "g_post": fl["post_warmup_gradients"],
                "g_warm": fl.get("warmup_gradients"),
                "cost": fl["grad_cost_s"] * 1e6,
                "pycost": fl["grad_cost_python_call_s"] * 1e6,
                "floor_post": fl["floor_post_warmup_s"],
                "floor_total": fl.get("floor_total_s"),
                "actual": fl["last_stage_sample_s"],
            }
        )
    if fl_rows:
        lines.append("Last-stage gradient floor (gradients x cost of one logp+grad / cores):")
        lines.append(
            table(
                fl_rows,
                [
                    ("label", "case", ""),
                    ("n", "n", ",d"),
                    ("g_post", "grads post-warmup", ",d"),
                    ("g_warm", "grads warmup", ",d"),
                    ("cost", "us/grad (numba)", ".2f"),
                    ("pycost", "us/grad (py call)", ".2f"),
                    ("floor_post", "floor post s", ".3f"),
                    ("floor_total", "floor all s", ".3f"),
                    ("actual", "actual sample s", ".2f"),
                ],
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="n=1,000 only, 4 x 200 draws, tune 200, B=200"
    )
    p.add_argument(
        "--n", type=int, nargs="+", default=None, help="sample sizes (default 1000 10000)"
    )
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--tune", type=int, default=None)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument(
        "--imputations", type=int, default=20, help="M for the earlier MCMC stage (default 20; the library's default is 200)"
    )
    p.add_argument(
        "--bootstrap", type=int, default=None, help="Q-learning bootstrap replicates (default 1000)"
    )
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        res = run_case(args.child, args.n[0], json.loads(args.config))
        Path(args.child_out).write_text(json.dumps(res, default=float))
        return 0

    ns = args.n or ([1000] if args.quick else [1000, 10000])
    cfg = {
        "draws": args.draws or (200 if args.quick else 1000),
        "tune": args.tune or (200 if args.quick else 1000),
        "chains": args.chains,
        "imputations": args.imputations,
        "bootstrap": args.bootstrap or (200 if args.quick else 1000),
        "seed": args.seed,
    }
    load0 = os.getloadavg()
    print(f"bench_backward: n={ns}, cases={args.cases}, config={cfg}", flush=True)
    print(f"load average at start (1, 5, 15 min): {load0}", flush=True)
    results = []
    for n in ns:
        for case in args.cases:
            t0 = time.perf_counter()
            r = _child(case, n, cfg)
            status = "ERROR" if "error" in r else f"wall {r['wall_s']:.2f} s"
            print(
                f"  {LABELS[case]:<15} n={n:>6,}: {status} (process {time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
            results.append(r)
    load1 = os.getloadavg()
    text = report(results, ns)
    print()
    print(text)
    print(f"\nload average at start {load0}, at end {load1} (1, 5, 15 min; {os.cpu_count()} cores)")
    out = args.out or RESULTS / ("backward_quick.json" if args.quick else "backward.json")
    ratios = {str(n): _ratios({r["case"]: r for r in results if r["n"] == n}) for n in ns}
    write_json(
        out,
        {
            "benchmark": "backward",
            "environment": environment(),
            "config": cfg,
            "n": ns,
            "results": results,
            "ratios": ratios,
            "loadavg_start": load0,
            "loadavg_end": load1,
            "table": text,
        },
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
