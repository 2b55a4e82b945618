"""Benchmark of comparing five regimes on a fitted two-stage conjugate posterior.

``two_stage_cont`` data (n = 1,000), its default stages without propensity models,
``fit(engine="conjugate")`` with 4 chains x 1,000 draws, then five regimes: the optimal one,
three static ones and a dynamic threshold rule. Measured:

- ``compare``: ``post.compare(regimes)`` on a fresh posterior (first call: it refits the earlier
  stage once per non-optimal regime and computes every value posterior), then a second, cached
  call. Only if ``DTRPosterior.compare`` exists; otherwise five ``post.value(regime)`` calls.
- ``values``: five ``post.value(regime)`` calls on another fresh posterior (same seed), to show
  what ``compare`` adds on top of the value posteriors.

Usage::

    python benchmarks/bench_compare.py           # n = 1,000, 4 x 1,000 draws
    python benchmarks/bench_compare.py --quick   # 4 x 200 draws

Writes ``benchmarks/results/compare.json`` (``compare_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

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


def regimes():
    import bayesdtr as bd

    return {
        "optimal": "optimal",
        "never": bd.Regime.static(A1=0, A2=0),
        "always": bd.Regime.static(A1=1, A2=1),
        "A1 only": bd.Regime.static(A1=1, A2=0),
        "X > 0": bd.Regime.dynamic(
            {"A1": lambda d: (d["X1"] > 0).astype(int), "A2": lambda d: (d["X2"] > 0).astype(int)}
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="4 x 200 draws")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    import bayesdtr as bd

    draws = args.draws or (200 if args.quick else 1000)
    sc = bd.scenario("two_stage_cont")
    df = sc.sample(args.n, seed=args.seed)
    model = bd.DTRModel(df, without_propensity(sc.stages), outcome=sc.outcome)
    kw = dict(
        engine="conjugate",
        draws=draws,
        chains=args.chains,
        random_seed=args.seed,
        progressbar=False,
        warn=False,
    )
    load0 = os.getloadavg()
    base = current_rss_mb()
    regs = regimes()

    t0 = time.perf_counter()
    post = model.fit(**kw)
    fit_s = time.perf_counter() - t0
    has_compare = hasattr(post, "compare")
    rows = [{"what": "fit (conjugate)", "seconds": fit_s}]
    tab = None
    if has_compare:
        t0 = time.perf_counter()
        tab = post.compare(regs)
        rows.append({"what": "compare(5 regimes), first call", "seconds": time.perf_counter() - t0})
        t0 = time.perf_counter()
        post.compare(regs)
        rows.append({"what": "compare(5 regimes), cached", "seconds": time.perf_counter() - t0})
    post2 = model.fit(**kw)
    per = {}
    t0 = time.perf_counter()
    for name, r in regs.items():
        t1 = time.perf_counter()
        post2.value(r)
        per[name] = time.perf_counter() - t1
    rows.append({"what": "5 x value(regime)", "seconds": time.perf_counter() - t0})
    for name, s in per.items():
        rows.append({"what": f"  value({name!r})", "seconds": s})
    peak = rss_mb()

    text = table(rows, [("what", "step", ""), ("seconds", "seconds", ".3f")])
    note = (
        ""
        if has_compare
        else "DTRPosterior.compare does not exist; timed five post.value(regime) calls only."
    )
    print(f"bench_compare: n={args.n}, {args.chains} chains x {draws} draws, conjugate, 5 regimes")
    print(text)
    if note:
        print(note)
    if tab is not None:
        print()
        print(tab.round(3).to_string())
    load1 = os.getloadavg()
    print(f"\npeak RSS {peak:.0f} MiB (+{peak - base:.0f} MiB over the data and model)")
    print(f"load average at start {load0}, at end {load1} (1, 5, 15 min; {os.cpu_count()} cores)")
    out = args.out or RESULTS / ("compare_quick.json" if args.quick else "compare.json")
    write_json(
        out,
        {
            "benchmark": "compare",
            "environment": environment(),
            "config": {"n": args.n, "draws": draws, "chains": args.chains, "seed": args.seed},
            "has_compare": has_compare,
            "note": note,
            "timings": rows,
            "rss_base_mb": base,
            "rss_peak_mb": peak,
            "loadavg_start": load0,
            "loadavg_end": load1,
            "compare_table": None if tab is None else tab.reset_index().to_dict(orient="records"),
            "table": text,
        },
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
