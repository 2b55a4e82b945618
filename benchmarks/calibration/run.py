"""Calibration table of issue 8: coverage and width of 95% intervals, bayesdtr against baselines.

For each scenario and sample size, ``--reps`` replicates; for each replicate and method, a 95%
interval of four estimands and whether it covers the truth. Replicate r's data, fit and bootstrap
seeds come from child r of ``SeedSequence([seed, n, crc32(scenario)])``: every cell has its own
random numbers. (With ``--shared-seeds``, child r of ``SeedSequence([seed, n])``, the scheme of
the first tables: replicate r then had the same data seed in every scenario, and the nine
published designs, which draw O1, A1, O2, A2 and the noise in the same order, shared those draws,
so their cells were one correlated Monte Carlo draw, not nine; estimates correlated 0.55-0.92
between examples 1-5. Those cells are kept in ``cells_shared_seeds/``, with the first
``k_stage`` n = 300 cell. The ``multisite_smart`` n = 300, ``two_stage_cont`` and ``k_stage``
n = 1,000 cells in ``cells/`` were run with shared seeds too (grow them with ``--shared-seeds``);
their generators differ from each other and from the published designs. ``multisite_smart``
n = 1,000 has its own seeds.)

- ``psi10``, ``psi11``: the stage-1 contrast coefficients (intercept and first covariate of the
  stage-1 contrast, bayesdtr's parametrization: Q_1(h, arm 1) - Q_1(h, reference));
- ``V(d*)``: the true optimal value;
- ``V(d_hat)``: the true value of the method's own estimated rule (bayesdtr: ``post.rule()``;
  the OLS baselines: the argmax of the fitted Q-functions).

Methods:

- ``bayes``: ``fit()`` defaults (propagation="modal", conjugate engine), 95% equal-tailed
  posterior intervals; values from ``post.value("optimal")`` and ``post.value(post.rule())``
  (online sample splitting, AIPW, by default);
- ``bayes_mean``: contrasts with ``propagation="mean"`` (standard Q-learning pseudo-outcomes);
- ``bayes_q``: values by online sample splitting with ``method="q"``;
- ``bayes_cross``: values by 10-fold cross-fitting (``split="cross"``);
- ``bayes_plugin``: ``post.value("optimal", crossfit=0)`` (the plain posterior of the mean of the
  max of Q) for both value estimands;
- ``ols_boot``: OLS Q-learning, percentile bootstrap (B = 1000);
- ``mofn_boot``: the adaptive m-out-of-n bootstrap (Chakraborty, Laber & Zhao 2013), alpha = 0.1;
- ``ols_online_aipw``: the frequentist online AIPW Wald interval (values only).

Usage::

    python benchmarks/calibration/run.py                                # everything, 200 reps (hours)
    python benchmarks/calibration/run.py --scenarios chakraborty_ex1 chakraborty_ex3 --n 300 --reps 40
    python benchmarks/calibration/run.py --n 300 --first 100 --reps 200   # grow 100-replicate cells to 200

``multisite_smart``: bayesdtr's methods fit the hierarchical model (Gibbs engine), the baselines
fixed site effects; about 80 s per replicate at n = 300 (every online chunk refits the
hierarchical model). Its n = 1,000 cell was run as
``--scenarios multisite_smart --n 1000 --truth-units 200000 --skip bayes_cross bayes_q``, in two
processes (``--reps 100`` and ``--first 100 --reps 200``), about 40 CPU-seconds per replicate:
with the default 1,000,000 truth units, valuing the fitted rule's truth took more than the
methods. ``cells_fixed_effects/`` keeps an earlier 50-replicate cell in which bayesdtr
also fitted fixed per-site effects: 41 columns on 120-unit training chunks made its value
intervals 3.8 times wider than the spread of its estimates.

Each (scenario, n) cell is written to ``benchmarks/calibration/cells/<scenario>_n<n>.csv`` as
soon as it finishes (a rerun skips finished cells); ``summarize.py`` builds the table
(``calibration.csv``) and the figure (``calibration.png``). Monte Carlo SE of a coverage c over R
replicates: sqrt(c (1 - c) / R), 0.015 at R = 200 for c = 0.95.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CELLS = HERE / "cells"
LEVEL = 0.95
LO, HI = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2

PUBLISHED = [f"chakraborty_ex{e}" for e in "123456ABC"]
DEFAULT_SCENARIOS = PUBLISHED + ["two_stage_cont", "multisite_smart", "k_stage"]


def cell_seeds(name: str, n: int, seed: int, reps: int, shared: bool = False) -> list[np.random.SeedSequence]:
    """The replicates' seed sequences of one cell (see the module docstring)."""
    key = [seed, n] if shared else [seed, n, zlib.crc32(name.encode())]
    return np.random.SeedSequence(key).spawn(reps)


def _interval(x: np.ndarray) -> tuple[float, float, float]:
    x = np.asarray(x, dtype=float).ravel()
    lo, hi = np.percentile(x, [LO, HI])
    return float(x.mean()), float(lo), float(hi)


def _bayes_model(scn, df):
    """The model bayesdtr's methods fit: the scenario's default stages; for multisite_smart its
    hierarchical specification (``group="site"``, random site intercepts and contrasts, sampled
    by the Gibbs engine), which is what a user would fit."""
    import bayesdtr as bd

    if scn.name == "multisite_smart":
        return bd.DTRModel(df, scn.stages, outcome=scn.outcome, group="site", group_contrast=True)
    return bd.DTRModel(df, scn.stages, outcome=scn.outcome)


def _stages(scn):
    """The baselines' stages: the scenario's defaults; for multisite_smart, fixed site
    intercepts (``C(site)`` in every main effect) and contrasts common to all sites (OLS has no
    random effects; its psi is not the site-specific one, so only the values are scored there).

    Site-specific fixed contrasts (``C(site)`` in the contrasts too, 41 columns at stage 2) were
    used before: at n = 300 their bootstrap resamples were singular in 40-80% of replicates and
    the intervals meaningless; the baselines now refuse such a bootstrap (FitError).
    """
    if scn.name != "multisite_smart":
        return scn.stages
    import bayesdtr as bd

    half = bd.KnownPropensity({-1: 0.5, 1: 0.5})
    return [
        bd.Stage("A1", main="X0 + X1 + C(site)", contrast="1 + X1", propensity=half),
        bd.Stage("A2", main="X0 + X1 + A1:X1 + X2 + C(site)", contrast="1 + X2",
                 propensity=half, applies="R == 0"),
    ]


def _ols_rule(design, res):
    """The argmax of OLS Q-learning's fitted Q-functions as a bd.Regime (new histories too)."""
    import bayesdtr as bd
    from bayesdtr.data.design import materialize

    rules = {}
    for sd, st in zip(design.stages, res.stages, strict=True):
        theta = st.coef.to_numpy()
        pm_ = sd.X_main.shape[1]
        psi = theta[pm_:].reshape(sd.n_arms - 1, -1)

        def rule(df, sd=sd, psi=psi):
            xc = materialize(sd.contrast_spec, df, f"OLS rule {sd.treatment}")
            scores = np.column_stack([np.zeros(len(df))] + [xc @ p for p in psi])
            return sd.arm_coord[np.argmax(scores, axis=1)]

        rules[sd.treatment] = rule
    return bd.Regime.dynamic(rules, name="OLS rule")


BASELINES = ("ols_boot", "mofn_boot", "ols_online_aipw")


def one_replicate(scn, n: int, seed: np.random.SeedSequence, B: int, skip: frozenset[str] = frozenset(),
                  baselines_only: bool = False) -> list[dict]:
    """Rows of one replicate: bayesdtr's methods (unless ``baselines_only``), then the baselines."""
    s_data, s_fit, s_boot = seed.generate_state(3)
    df = scn.sample(n, seed=int(s_data))
    rows = [] if baselines_only else _bayes_rows(scn, df, int(s_fit), skip)
    return rows + _baseline_rows(scn, df, int(s_boot), B)


def _row(method, estimand, est, lo, hi, truth, seconds) -> dict:
    return dict(method=method, estimand=estimand, estimate=est, lower=lo, upper=hi, truth=truth,
                covered=bool(lo <= truth <= hi), width=hi - lo, seconds=seconds)


def _psi_truth(scn):
    psi_truth = scn.truth.get("psi")
    return None if psi_truth is None else np.asarray(psi_truth[scn.treatments[0]], dtype=float)[:2]


def _bayes_rows(scn, df, s_fit: int, skip: frozenset[str]) -> list[dict]:
    bmodel = _bayes_model(scn, df)
    truth_psi = _psi_truth(scn)
    vstar = scn.true_value("optimal")
    rows: list[dict] = []

    def add(*args):
        rows.append(_row(*args))

    t0 = time.perf_counter()
    post = bmodel.fit(draws=500, chains=2, random_seed=s_fit % 2**31, progressbar=False, warn=False)
    psi = post.coef(1)["psi"].isel(arm=1).values.reshape(-1, post.coef(1)["psi"].sizes["contrast_term"])
    t_fit = time.perf_counter() - t0
    for j, name in enumerate(("psi10", "psi11")):
        if truth_psi is not None:
            add("bayes", name, *_interval(psi[:, j]), truth_psi[j], t_fit)
    if truth_psi is not None:
        t0 = time.perf_counter()
        pm = bmodel.fit(draws=500, chains=2, random_seed=s_fit % 2**31, progressbar=False, warn=False,
                        propagation="mean")
        psi_m = pm.coef(1)["psi"].isel(arm=1).values.reshape(-1, pm.coef(1)["psi"].sizes["contrast_term"])
        for j, name in enumerate(("psi10", "psi11")):
            add("bayes_mean", name, *_interval(psi_m[:, j]), truth_psi[j], time.perf_counter() - t0)
    rule = post.rule()
    vhat = scn.true_value(rule)
    for method, kw in (("bayes", {}), ("bayes_q", {"method": "q"}), ("bayes_cross", {"split": "cross"}),
                       ("bayes_plugin", {"crossfit": 0})):
        if method in skip:
            continue
        t0 = time.perf_counter()
        v_opt = post.value("optimal", **kw).values
        v_rule = post.value(rule, **kw).values
        sec = time.perf_counter() - t0
        add(method, "V(d*)", *_interval(v_opt), vstar, sec)
        add(method, "V(d_hat)", *_interval(v_rule), vhat, sec)
    return rows


def _baseline_rows(scn, df, s_boot: int, B: int) -> list[dict]:
    import bayesdtr as bd
    from bayesdtr.baselines import crossfit_aipw, m_out_of_n, qlearning

    truth_psi = _psi_truth(scn)
    vstar = scn.true_value("optimal")
    rows: list[dict] = []

    def add(*args):
        rows.append(_row(*args))

    try:  # the baselines' design may be rank deficient: they fail alone
        model = bd.DTRModel(df, _stages(scn), outcome=scn.outcome)
    except bd.BayesDTRError as err:
        return [dict(method="error", estimand=type(err).__name__, estimate=np.nan, lower=np.nan,
                     upper=np.nan, truth=np.nan, covered=False, width=np.nan, seconds=0.0,
                     error=f"baselines: {str(err)[:280]}")]
    for method, fn in (
        ("ols_boot", lambda: qlearning(model, bootstrap=B, seed=s_boot % 2**31)),
        ("mofn_boot", lambda: m_out_of_n(model, bootstrap=B, seed=s_boot % 2**31)),
    ):
        t0 = time.perf_counter()
        try:
            res = fn()
        except bd.FitError as err:  # e.g. too many singular resamples: this method fails alone
            rows.append(dict(method=method, estimand="error", estimate=np.nan, lower=np.nan, upper=np.nan,
                             truth=np.nan, covered=False, width=np.nan, seconds=0.0, error=str(err)[:300]))
            continue
        sec = time.perf_counter() - t0
        tab = res.summary(level=LEVEL)
        cols = [c for c in tab.columns if c.startswith("boot_0")]
        names = [i for i in tab.index if i.startswith(f"{scn.treatments[0]}::psi[")][:2]
        for j, name in enumerate(names if truth_psi is not None else []):
            add(method, f"psi1{j}", float(tab.loc[name, "estimate"]), float(tab.loc[name, cols[0]]),
                float(tab.loc[name, cols[1]]), truth_psi[j], sec)
        lo, hi = float(tab.loc["value", cols[0]]), float(tab.loc["value", cols[1]])
        add(method, "V(d*)", res.value, lo, hi, vstar, sec)
        add(method, "V(d_hat)", res.value, lo, hi, scn.true_value(_ols_rule(model.design, res)), sec)
    if all(sd.known_propensity is not None for sd in model.design.stages):
        t0 = time.perf_counter()
        try:
            cf = crossfit_aipw(model, seed=s_boot % 2**31)
        except bd.FitError as err:  # a training chunk cannot identify the OLS model: no interval
            cf = None
            rows.append(dict(method="ols_online_aipw", estimand="error", estimate=np.nan, lower=np.nan,
                             upper=np.nan, truth=np.nan, covered=False, width=np.nan, seconds=0.0,
                             error=str(err)[:300]))
        sec = time.perf_counter() - t0
        if cf is not None:
            add("ols_online_aipw", "V(d*)", cf.estimate, cf.lower, cf.upper, vstar, sec)
    return rows


def rerun_baselines(path: Path, seed: int, B: int, shared: bool = False) -> None:
    """Recompute the baselines' rows of a finished cell (bayesdtr's rows are kept): the same
    replicates and seeds, the current baseline code and specification."""
    import bayesdtr as bd

    old = pd.read_csv(path)
    name, n = str(old.scenario.iloc[0]), int(old.n.iloc[0])
    scn = bd.scenario(name)
    is_base = old.method.isin(BASELINES) | (
        (old.method == "error") & old.get("error", pd.Series("", index=old.index)).astype(str).str.startswith("baselines:")
    )
    keep = old[~is_base]
    reps = sorted(int(r) for r in old.replicate.unique())
    children = cell_seeds(name, n, seed, max(reps) + 1, shared)
    new = []
    for r in reps:
        s_data, _, s_boot = children[r].generate_state(3)
        df = scn.sample(n, seed=int(s_data))
        for row in _baseline_rows(scn, df, int(s_boot), B):
            row.update(scenario=name, n=n, replicate=r)
            new.append(row)
    out = pd.concat([keep, pd.DataFrame(new)], ignore_index=True).sort_values(["replicate"], kind="stable")
    tmp = path.with_suffix(".tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, path)
    print(f"{path.name}: baselines recomputed for {len(reps)} replicates", flush=True)


def run_cell(name: str, n: int, reps: int, seed: int, B: int, first: int = 0,
             skip: frozenset[str] = frozenset(), partial: Path | None = None,
             shared: bool = False, truth_units: int | None = None) -> pd.DataFrame:
    """Replicates ``first .. reps - 1`` of one cell. Replicate r's seeds are child r of
    :func:`cell_seeds`, whatever ``first`` is, so a cell can be grown in pieces.
    With ``partial``, the replicates finished so far are written there after each one (a cell
    stopped early keeps them; ``--first`` then continues it)."""
    import bayesdtr as bd

    scn = bd.scenario(name)
    if truth_units is not None:
        # the Monte Carlo size of the true value of an estimated rule (V(d_hat) of methods whose
        # rule the scenario cannot value exactly); the scenario's default is 1,000,000 units
        scn.MC_UNITS = truth_units
    out = []
    t0 = time.perf_counter()
    children = cell_seeds(name, n, seed, reps, shared)
    for r in range(first, reps):
        ss = children[r]
        try:
            rows = one_replicate(scn, n, ss, B, skip)
        except Exception as err:  # recorded, the study goes on
            rows = [dict(method="error", estimand=type(err).__name__, estimate=np.nan, lower=np.nan,
                         upper=np.nan, truth=np.nan, covered=False, width=np.nan, seconds=0.0,
                         error=str(err)[:300])]
        for row in rows:
            row.update(scenario=name, n=n, replicate=r, seeds="shared" if shared else "cell",
                       truth_units=scn.MC_UNITS)
        out += rows
        if partial is not None:
            pd.DataFrame(out).to_csv(partial, index=False)
        if (r + 1 - first) % 20 == 0:
            print(f"  {name} n={n}: {r + 1}/{reps} replicates, {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS)
    ap.add_argument("--n", nargs="+", type=int, default=[300, 1000])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0,
                    help="first replicate to run (grows a finished cell: replicates first..reps-1 go to "
                         "<scenario>_n<n>_r<first>.csv)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["bayes_q", "bayes_cross", "bayes_plugin"],
                    help="bayesdtr value variants to leave out (bayes_cross is the slowest)")
    ap.add_argument("--force", action="store_true", help="recompute finished cells")
    ap.add_argument("--shared-seeds", action="store_true",
                    help="the first tables' seeds, shared by every scenario (to grow or check those cells)")
    ap.add_argument("--truth-units", type=int, default=None,
                    help="Monte Carlo units of the true value of a rule the scenario cannot value exactly "
                         "(default: the scenario's, 1,000,000; multisite_smart n=1000 used 200,000: its "
                         "truth's MC SE is about 0.0024 against interval widths of 0.36)")
    ap.add_argument("--cells", type=Path, default=CELLS, help="folder of the cell files (default: cells/)")
    ap.add_argument("--baselines-only", action="store_true",
                    help="recompute only the baselines' rows of the finished cells of these scenarios and n "
                         "(every <scenario>_n<n>*.csv piece; bayesdtr's rows are kept)")
    args = ap.parse_args(argv)
    if not 0 <= args.first < args.reps:
        ap.error(f"--first {args.first} must lie in 0..{args.reps - 1}: replicates --first .. --reps - 1 "
                 f"are run (to grow a cell to 200 replicates from replicate 100: --first 100 --reps 200)")
    warnings.simplefilter("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cells = args.cells
    cells.mkdir(parents=True, exist_ok=True)
    if args.baselines_only:
        for n in args.n:
            for name in args.scenarios:
                for path in sorted(cells.glob(f"{name}_n{n}.csv")) + sorted(cells.glob(f"{name}_n{n}_r*.csv")):
                    rerun_baselines(path, args.seed, args.bootstrap, args.shared_seeds)
        return
    for n in args.n:
        for name in args.scenarios:
            path = cells / (f"{name}_n{n}.csv" if args.first == 0 else f"{name}_n{n}_r{args.first}.csv")
            if path.exists() and not args.force:
                print(f"{path.name}: done, skipped")
                continue
            t0 = time.perf_counter()
            partial = path.with_suffix(".partial")
            tab = run_cell(name, n, args.reps, args.seed, args.bootstrap, args.first, frozenset(args.skip), partial,
                           args.shared_seeds, args.truth_units)
            tmp = path.with_suffix(".tmp")
            tab.to_csv(tmp, index=False)
            os.replace(tmp, path)
            partial.unlink(missing_ok=True)
            print(f"{path.name}: {args.reps - args.first} replicates in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
