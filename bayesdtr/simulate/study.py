r"""Simulation studies in one call: :func:`simulation_study` and its :class:`StudyResult`.

Every replicate draws a data set from a scenario with known truth, runs every method on it
(bayesdtr fits and frequentist baselines alike go through the callable protocol of
:mod:`bayesdtr.simulate.methods`), and scores the answers against the truth. Replicates run
serially, on an embedded dask ``LocalCluster`` or on a user's dask cluster, with identical
results; with ``store=`` each finished replicate is checkpointed and a rerun resumes.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesdtr.exceptions import SpecificationError
from bayesdtr.simulate._store import COLUMNS, StudyStore
from bayesdtr.simulate.methods import MethodResult, describe, psi_name, resolve_methods, seed_int

__all__ = ["ESTIMANDS", "StudyResult", "simulation_study", "summarize"]

#: Estimand groups accepted by ``estimands=`` (default: all that the scenario supports).
ESTIMANDS = ("psi", "value_optimal", "value_rule", "rule_value", "regret", "correct")
#: What a scenario object must have (``stages`` unless ``stages=`` is given).
_INTERFACE = ("sample", "true_value", "true_optimal_treatment", "truth", "treatments", "arms")
_TIE = 1e-9


# --------------------------------------------------------------------------- the plan


@dataclass
class _Plan:
    """Everything a replicate needs (sent once to every dask worker)."""

    scenario: Any
    stages: list
    n: int
    seed: int
    level: float
    methods: dict[str, Callable[..., MethodResult]]
    groups: frozenset[str]
    truth: dict[str, float]  # psi estimands and value_optimal
    order: list[str]  # every estimand name, in table order
    blas_threads: int | None = 1


def _interval_names(plan: _Plan) -> list[str]:
    return [e for e in plan.order if e.startswith("psi[") or e in ("value_optimal", "value_rule")]


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\r", " ").replace("\n", " ")
    return text[:1000]


def _fail_rows(r: int, label: str, plan: _Plan, err: BaseException, seconds: float) -> list[tuple]:
    nan = float("nan")
    return [(r, label, e, nan, nan, nan, nan, nan, nan, seconds, _one_line(err)) for e in plan.order]


def _row(r: int, label: str, name: str, est: float, lo: float, hi: float, truth: float, secs: float) -> tuple:
    est, lo, hi, truth = float(est), float(lo), float(hi), float(truth)
    has = np.isfinite(lo) and np.isfinite(hi)
    covered = float(lo <= truth <= hi) if has and np.isfinite(truth) else float("nan")
    width = hi - lo if has else float("nan")
    return (r, label, name, est, lo, hi, truth, covered, width, secs, "")


def _correct_share(plan: _Plan, res: MethodResult, df: pd.DataFrame, treatment: str) -> float:
    from bayesdtr.data.design import applies_mask

    scn = plan.scenario
    stage = next((s for s in plan.stages if s.treatment == treatment), None)
    mask = np.ones(len(df), dtype=bool) if stage is None or stage.applies is None else applies_mask(stage, df)
    hist = df[mask]
    if res.decisions is not None and treatment in res.decisions:
        chosen = np.asarray(res.decisions[treatment])[mask]
    elif res.rule is not None:
        chosen = np.asarray(res.rule.assign(treatment, hist))
    else:
        return float("nan")
    if hasattr(scn, "true_q"):  # a decision is correct when it attains the max of the true Q
        q = scn.true_q(hist, treatment)
        cols = list(q.columns)
        idx = np.array([cols.index(a) for a in chosen.tolist()])
        qv = q.to_numpy(float)
        return float(np.mean(qv[np.arange(len(idx)), idx] >= qv.max(axis=1) - _TIE))
    return float(np.mean(chosen == np.asarray(scn.true_optimal_treatment(hist, treatment))))


def _score(r: int, label: str, res: MethodResult, df: pd.DataFrame, plan: _Plan, secs: float) -> list[tuple]:
    if not isinstance(res, MethodResult):
        raise TypeError(f"method {label!r} returned {type(res).__name__}, not a MethodResult")
    g, rows = plan.groups, []
    v_opt = plan.truth["value_optimal"]
    v_rule = float("nan")
    if res.rule is not None and g & {"value_rule", "rule_value", "regret"}:
        v_rule = float(plan.scenario.true_value(res.rule))
    for name in plan.order:
        if name.startswith("psi[") or name == "value_optimal":
            if name in res.estimates:
                rows.append(_row(r, label, name, *res.estimates[name], plan.truth[name], secs))
        elif name == "value_rule":
            if name in res.estimates and res.rule is not None:
                rows.append(_row(r, label, name, *res.estimates[name], v_rule, secs))
        elif name == "rule_value" and res.rule is not None:
            rows.append(_row(r, label, name, v_rule, np.nan, np.nan, v_opt, secs))
        elif name == "regret" and res.rule is not None:
            rows.append(_row(r, label, name, v_opt - v_rule, np.nan, np.nan, 0.0, secs))
        elif name.startswith("correct["):
            share = _correct_share(plan, res, df, name[len("correct[") : -1])
            if np.isfinite(share):
                rows.append(_row(r, label, name, share, np.nan, np.nan, 1.0, secs))
    return rows


def method_seed(seed: int, replicate: int, label: str) -> np.random.SeedSequence:
    """Seed sequence of method ``label`` in replicate ``replicate`` of a study seeded ``seed``.

    Replicate r's sequence is ``SeedSequence(seed).spawn(reps)[r]`` (the same for every
    ``reps``); its first child seeds the data, its second the methods, each method by the
    CRC-32 of its label.
    """
    fit = np.random.SeedSequence(seed, spawn_key=(replicate,)).spawn(2)[1]
    return np.random.SeedSequence(fit.entropy, spawn_key=tuple(fit.spawn_key) + (zlib.crc32(label.encode()),))


def data_seed(seed: int, replicate: int) -> int:
    """The integer seed of ``scenario.sample`` in replicate ``replicate``."""
    return seed_int(np.random.SeedSequence(seed, spawn_key=(replicate,)).spawn(2)[0])


_CONTROLLER: list[Any] = []


def _blas_controller() -> Any:
    """This process's ``threadpoolctl.ThreadpoolController`` (finding the libraries costs ms)."""
    if not _CONTROLLER:
        import scipy.linalg  # noqa: F401  # load every BLAS the fits use before scanning
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def run_replicate(replicate: int, plan: _Plan) -> list[tuple]:
    """Run and score every method on one replicate; errors become rows with their text."""
    if plan.blas_threads is None:
        return _run_replicate(replicate, plan)
    with _blas_controller().limit(limits=plan.blas_threads):
        return _run_replicate(replicate, plan)


def _run_replicate(r: int, plan: _Plan) -> list[tuple]:
    try:
        df = plan.scenario.sample(plan.n, seed=data_seed(plan.seed, r))
    except Exception as err:  # the data could not be drawn: every method fails
        return [row for label in plan.methods for row in _fail_rows(r, label, plan, err, 0.0)]
    rows: list[tuple] = []
    for label, fn in plan.methods.items():
        t0 = time.perf_counter()
        try:
            res = fn(df, plan.scenario, method_seed(plan.seed, r, label), stages=plan.stages, level=plan.level)
            secs = time.perf_counter() - t0
            rows.extend(_score(r, label, res, df, plan, secs))
        except Exception as err:
            rows.extend(_fail_rows(r, label, plan, err, time.perf_counter() - t0))
    return rows


# --------------------------------------------------------------------------- results


def summarize(table: pd.DataFrame, *, methods: Sequence[str] | None = None) -> pd.DataFrame:
    r"""Per method and estimand: bias, RMSE, coverage with its Monte Carlo SE, width, failures.

    With R replicates that gave an interval, coverage :math:`\hat p` has Monte Carlo SE
    :math:`\sqrt{\hat p(1 - \hat p)/R}`. ``bias`` and ``rmse`` compare ``estimate`` with ``truth``
    over the successful rows; for ``rule_value``, ``regret`` and ``correct[...]`` the column to
    read is ``mean``.

    Examples
    --------
    >>> tab = pd.DataFrame({"replicate": [0, 1], "method": "m", "estimand": "value_optimal",
    ...     "estimate": [1.0, 3.0], "lower": [0.0, 2.5], "upper": [2.0, 3.5], "truth": 2.0,
    ...     "covered": [True, False], "width": [2.0, 1.0], "seconds": 0.1, "error": ""})
    >>> summarize(tab)[["bias", "rmse", "coverage", "mean_width"]].round(3).to_dict("records")
    [{'bias': 0.0, 'rmse': 1.0, 'coverage': 0.5, 'mean_width': 1.5}]
    """
    order = list(dict.fromkeys(table["method"])) if methods is None else list(methods)
    rows = []
    for (method, estimand), g in table.groupby(["method", "estimand"], sort=False):
        ok = g[g["error"] == ""]
        err = ok["estimate"] - ok["truth"]
        cov = ok["covered"].dropna().astype(float)
        p = float(cov.mean()) if len(cov) else np.nan
        rows.append(
            {
                "method": method,
                "estimand": estimand,
                "truth": float(ok["truth"].mean()) if len(ok) else np.nan,
                "mean": float(ok["estimate"].mean()) if len(ok) else np.nan,
                "bias": float(err.mean()) if len(ok) else np.nan,
                "rmse": float(np.sqrt(np.mean(err**2))) if len(ok) else np.nan,
                "coverage": p,
                "coverage_mcse": float(np.sqrt(p * (1 - p) / len(cov))) if len(cov) else np.nan,
                "mean_width": float(ok["width"].mean()) if ok["width"].notna().any() else np.nan,
                "mean_seconds": float(ok["seconds"].mean()) if len(ok) else np.nan,
                "n_ok": len(ok),
                "n_failed": len(g) - len(ok),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_m"] = out["method"].map({m: i for i, m in enumerate(order)})
    return out.sort_values("_m", kind="stable").drop(columns="_m").reset_index(drop=True)


@dataclass
class StudyResult:
    """Result of :func:`simulation_study`.

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy, one row per replicate x method x estimand: ``estimate``, ``lower``, ``upper``,
        ``truth``, ``covered``, ``width``, ``seconds`` (the method's wall time in that
        replicate) and ``error`` (empty, or the one-line text of the exception).
    settings : dict
        The study's settings (as in a store's manifest).
    seconds : float
        Wall time of the call (replicates read back from a store are not timed again).
    """

    table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Per method x estimand (see :func:`summarize`)."""
        return summarize(self.table, methods=list(self.settings.get("methods", {})) or None)

    @property
    def failures(self) -> pd.DataFrame:
        """Rows whose method raised, with the error text."""
        return self.table[self.table["error"] != ""]

    def plot(
        self,
        *,
        kind: Literal["coverage", "bias"] = "coverage",
        estimands: Sequence[str] | None = None,
        ax: Any = None,
    ) -> Any:
        """Coverage (with Monte Carlo error bars and the nominal line) or bias/width per estimand.

        Parameters
        ----------
        kind : {"coverage", "bias"}
            ``"coverage"``: coverage +- 2 Monte Carlo SE of every interval estimand, one marker
            per method, and the nominal level as a line. ``"bias"``: the bias of each estimate
            (marker) with a bar of +- half the mean interval width.
        estimands : list of str, optional
            Estimands to show (default: those with intervals).
        ax : matplotlib Axes, optional
            Where to draw; a new figure when None.

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        if kind not in ("coverage", "bias"):
            raise SpecificationError(f"kind={kind!r} is not one of ['coverage', 'bias'].")
        s = self.summary
        s = s[s["mean_width"].notna()] if estimands is None else s[s["estimand"].isin(list(estimands))]
        names = list(dict.fromkeys(s["estimand"]))
        methods = list(dict.fromkeys(s["method"]))
        if ax is None:
            _, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.6))
        step = 0.7 / max(1, len(methods))
        for i, m in enumerate(methods):
            sm = s[s["method"] == m].set_index("estimand").reindex(names)
            x = np.arange(len(names)) - 0.35 + step * (i + 0.5)
            if kind == "coverage":
                p, e = sm["coverage"].to_numpy(float), 2 * sm["coverage_mcse"].to_numpy(float)
                yerr = np.vstack([np.minimum(e, p), np.minimum(e, 1 - p)])  # within [0, 1]
                ax.errorbar(x, p, yerr=yerr, fmt="o", capsize=3, label=m)
            else:
                ax.errorbar(x, sm["bias"], yerr=sm["mean_width"] / 2, fmt="o", capsize=3, label=m)
        if kind == "coverage":
            level = float(self.settings.get("level", 0.95))
            ax.axhline(level, color="0.3", ls="--", lw=1, label=f"nominal {level:g}")
            ax.set_ylabel("coverage (+- 2 MC SE)")
        else:
            ax.axhline(0.0, color="0.3", ls="--", lw=1)
            ax.set_ylabel("bias (bar: +- mean half-width)")
        ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
        ax.legend(fontsize="small")
        return ax

    def __repr__(self) -> str:
        reps = self.table["replicate"].nunique() if len(self.table) else 0
        return (
            f"StudyResult({reps} replicates, methods {list(dict.fromkeys(self.table['method']))}, "
            f"{len(self.failures)} failed rows, {self.seconds:.1f} s)"
        )


def _table(rows: list[tuple]) -> pd.DataFrame:
    tab = pd.DataFrame(rows, columns=COLUMNS)
    tab["replicate"] = tab["replicate"].astype(np.int64)
    for c in ("estimate", "lower", "upper", "truth", "covered", "width", "seconds"):
        tab[c] = tab[c].astype(float)
    tab["covered"] = tab["covered"].map({1.0: True, 0.0: False}).astype("boolean")
    for c in ("method", "estimand", "error"):
        tab[c] = tab[c].astype(object)
    return tab


# --------------------------------------------------------------------------- running


class _Progress:
    """A one-line progress bar on stderr: replicates done, failed, rate and ETA."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.failed, self.enabled = total, done, 0, enabled
        self.start_done, self.t0 = done, time.perf_counter()
        self._draw()

    def update(self, failed: bool) -> None:
        if self.done == self.start_done:  # time the rate from the first result (after startup)
            self.t0 = time.perf_counter()
        self.done += 1
        self.failed += int(failed)
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        new, el = self.done - self.start_done - 1, time.perf_counter() - self.t0
        rate = new / el * 60 if el > 0 and new > 0 else 0.0
        eta = (self.total - self.done) / (rate / 60) if rate else float("nan")
        eta_s = "--" if not np.isfinite(eta) else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        width = 24
        fill = int(width * self.done / max(1, self.total))
        sys.stderr.write(
            f"\rstudy [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} replicates, "
            f"{self.failed} failed, {rate:.0f}/min, ETA {eta_s}  "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _run_serial(todo: list[int], plan: _Plan, on_done: Callable[[int, list[tuple]], None]) -> None:
    for r in todo:
        on_done(r, run_replicate(r, plan))


def _run_dask(todo: list[int], plan: _Plan, client: Any, on_done: Callable[[int, list[tuple]], None]) -> None:
    from distributed import as_completed

    plan_f = client.scatter(plan, broadcast=True, hash=False)
    futures = client.map(run_replicate, todo, plan=plan_f, pure=False)
    which = {f.key: r for f, r in zip(futures, todo, strict=True)}
    try:
        for fut in as_completed(futures):
            r = which[fut.key]
            try:
                rows = fut.result()
            except Exception as err:  # the worker died or the task could not run
                rows = [row for label in plan.methods for row in _fail_rows(r, label, plan, err, 0.0)]
            on_done(r, rows)
            fut.release()
    finally:
        client.cancel(futures)


def _embedded_cluster(kind: Literal["processes", "threads"], n_tasks: int) -> tuple[Any, Any]:
    import logging

    from distributed import Client, LocalCluster

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cores, n_tasks))
    if kind == "processes":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    else:
        cluster = LocalCluster(
            n_workers=1, threads_per_worker=workers, processes=False, dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    return cluster, Client(cluster)


def _check_int(value: Any, name: str, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < low:
        raise SpecificationError(f"{name} must be an integer >= {low}; got {value!r}. {fix}")
    return int(value)


def _check_scenario(scenario: Any, stages: list | None) -> tuple[Any, list]:
    from bayesdtr.data.spec import Stage
    from bayesdtr.simulate.scenarios import scenario as build

    scn = build(scenario) if isinstance(scenario, str) else scenario
    missing = [a for a in _INTERFACE if not hasattr(scn, a)]
    if stages is None and not hasattr(scn, "stages"):
        missing.append("stages")
    if missing:
        raise SpecificationError(
            f"scenario must be a scenario name (bd.list_scenarios()) or an object with the scenario "
            f"interface; {type(scn).__name__} lacks {missing}. See simulation_study's docstring."
        )
    st = list(scn.stages if stages is None else stages)
    if not st or not all(isinstance(s, Stage) for s in st):
        raise SpecificationError(
            f"stages must be a non-empty list of bd.Stage; got {stages!r}. Pass e.g. "
            "stages=scenario.stages, or leave stages=None for the scenario's default."
        )
    return scn, st


def _psi_truth(scn: Any) -> dict[str, float]:
    truth = scn.truth
    if "psi" not in truth or "contrast_terms" not in truth:
        return {}
    out = {}
    for t, psi in truth["psi"].items():
        arr = np.atleast_2d(np.asarray(psi, dtype=float))
        terms = list(truth["contrast_terms"][t])
        for arm, row in zip(list(scn.arms[t])[1:], arr, strict=True):
            for term, v in zip(terms, row, strict=True):
                out[psi_name(t, term, arm)] = float(v)
    return out


def _resolve_estimands(estimands: Any, scn: Any, psi: dict[str, float]) -> tuple[frozenset[str], list[str]]:
    if estimands is None:
        groups = set(ESTIMANDS) - (set() if psi else {"psi"})
        picked: list[str] = []
    else:
        if isinstance(estimands, str) or not isinstance(estimands, Sequence) or not estimands:
            raise SpecificationError(
                f"estimands must be None (all) or a non-empty list; got {estimands!r}. Allowed: "
                f"{list(ESTIMANDS)} or single coefficients such as {next(iter(psi), 'psi[A1][Intercept][1]')!r}."
            )
        groups, picked = set(), []
        for e in estimands:
            if e in ESTIMANDS:
                if e == "psi" and not psi:
                    raise SpecificationError(
                        f"estimands includes 'psi', but scenario {getattr(scn, 'name', scn)!r} has no "
                        "truth['psi'] and truth['contrast_terms']; drop 'psi' from estimands."
                    )
                groups.add(e)
            elif isinstance(e, str) and e in psi:
                picked.append(e)
            else:
                raise SpecificationError(
                    f"Unknown estimand {e!r}. Allowed: {list(ESTIMANDS)} or one of the scenario's "
                    f"coefficients {list(psi)}."
                )
    order = [k for k in psi if "psi" in groups or k in picked]
    order += [e for e in ("value_optimal", "value_rule", "rule_value", "regret") if e in groups]
    if "correct" in groups:
        order += [f"correct[{t}]" for t in scn.treatments]
    if picked:
        groups.add("psi")
    return frozenset(groups), order


def _settings(scenario: Any, scn: Any, stages: list, n: int, reps: int, seed: int, level: float,
              specs: dict[str, Any], order: list[str]) -> dict[str, Any]:
    def clean(x: Any) -> str:
        return re.sub(r" at 0x[0-9a-f]+", "", repr(x))

    return {
        "scenario": scenario if isinstance(scenario, str) else f"{type(scn).__module__}.{clean(scn)}",
        "stages": [clean(s) for s in stages],
        "n": n,
        "reps": reps,
        "seed": seed,
        "level": level,
        "methods": {k: describe(k, v) for k, v in specs.items()},
        "estimands": order,
    }


def simulation_study(
    scenario: Any,
    *,
    stages: list | None = None,
    n: int,
    reps: int,
    seed: int,
    methods: Any = None,
    estimands: Sequence[str] | None = None,
    client: Any = None,
    store: str | os.PathLike | None = None,
    progressbar: bool = True,
    level: float = 0.95,
    blas_threads: int | None = 1,
) -> StudyResult:
    r"""Run a simulation study: ``reps`` replicates of ``scenario``, every method on each.

    Parameters
    ----------
    scenario : str or scenario object
        A name of :func:`bayesdtr.list_scenarios`, or any object with the scenario interface:
        ``sample(n, seed=)`` (a data frame), ``true_value(regime)`` (the true value of a
        :class:`~bayesdtr.Regime` or ``"optimal"``), ``stages`` (the default list of
        :class:`~bayesdtr.Stage`; not needed with ``stages=``), ``treatments`` (treatment
        columns in stage order), ``arms`` (``{treatment: [reference arm, other arms...]}``),
        ``truth`` (a dict; ``truth["psi"][treatment]`` holds the true contrast coefficients,
        one value per term of ``truth["contrast_terms"][treatment]`` for a two-arm stage, or
        one row per non-reference arm, and ``"1"`` names the intercept) and
        ``true_optimal_treatment(df, stage)`` (true optimal arms of the histories in ``df``).
        Optional: ``outcome``, ``group``, ``family`` (model settings; default ``"Y"``, None,
        ``"gaussian"``) and ``true_q(df, stage)`` (a data frame of true Q-values per arm, used to
        count a decision as correct when it ties with the optimum). A scenario without
        ``truth["psi"]`` has no coefficient estimands.
    stages : list of Stage, optional
        The analysis model of every method (default: ``scenario.stages``).
    n, reps, seed : int
        Units per data set, replicates, and the study's seed. Replicate r uses
        ``numpy.random.SeedSequence(seed).spawn(reps)[r]``: its first child seeds the data,
        its second the methods (each method by its label, see :func:`method_seed`), so
        replicate r is the same whatever ``reps``, the executor, or the other methods.
    methods : dict or list, optional
        ``{label: spec}`` (labels become the ``method`` column) or a list of specs. A spec is a
        dict of bayesdtr fit settings (``{}`` for the default fit, ``{"propagation":
        "augmented"}``, ``{"robust": True}``, ``{"value": {"method": "aipw"}}``, ``{"rule":
        {"kind": "mean"}}``; see :class:`~bayesdtr.simulate.methods.BayesFit`), the name of a
        baseline (``"qlearning"``: OLS Q-learning, 1,000-resample percentile bootstrap; see
        :data:`bayesdtr.baselines.registry.BASELINES`) or ``{"baseline": name, **options}``, or
        a callable ``f(df, scenario, seed_sequence, *, stages, level) -> MethodResult`` (see
        :mod:`bayesdtr.simulate.methods`). Default ``{"bayes": {}, "qlearning": "qlearning"}``.
    estimands : list of str, optional
        Any of ``"psi"`` (every true contrast coefficient, named ``psi[A1][X1][1]``: stage,
        term, arm), single coefficient names, ``"value_optimal"`` (the method's interval for
        the optimal value against ``true_value("optimal")``), ``"value_rule"`` (its interval for
        the value of its estimated rule against the rule's true value), ``"rule_value"`` (the
        true value of the estimated rule), ``"regret"`` (true optimal value minus it) and
        ``"correct"`` (share of units whose estimated decision is truly optimal, per stage, over
        the units that reach the stage). Default: all the scenario supports.
    client : None, "serial", "threads", dask Client or scheduler address
        None runs on an embedded ``LocalCluster`` (one single-threaded worker process per
        core, closed at the end); ``"serial"`` runs in this process; ``"threads"`` on an
        embedded cluster of threads; a :class:`distributed.Client` on the user's cluster; a
        string such as ``"tcp://10.0.0.5:8786"`` connects to that scheduler. Results are
        identical in every case.
    store : path, optional
        A directory checkpointing the study: one HDF5 file (h5py; no pickle) per finished
        replicate, written atomically, plus ``manifest.json`` with the settings (see
        :mod:`bayesdtr.simulate._store`). Rerunning the same call skips finished replicates
        (a different setting other than ``reps`` is an error). Only the calling process
        writes it, so cluster workers need no shared disk.
    progressbar : bool, default True
        A progress line on stderr (replicates done, failed, rate, ETA); off when the ``CI``
        environment variable is set.
    level : float, default 0.95
        Nominal coverage of the equal-tailed intervals.
    blas_threads : int or None, default 1
        BLAS threads while a replicate runs (``threadpoolctl``); one thread per replicate is
        much faster for these small problems. None leaves the thread pools alone.

    Returns
    -------
    StudyResult
        ``.table`` (tidy replicate x method x estimand), ``.summary`` (bias, RMSE, coverage
        with its Monte Carlo SE, mean width, n ok / failed, and the rule's true value, regret
        and correct decisions per method) and ``.plot()``.

    Raises
    ------
    SpecificationError
        For an unknown scenario, method or estimand, a bad ``n``/``reps``/``seed``/``level``/
        ``client``, or a store holding a different study. A method that raises inside a
        replicate does not stop the study: its rows carry the error text.

    Notes
    -----
    Workers are long-lived processes, so the compiled MCMC samplers that
    :mod:`bayesdtr.inference.sampling` caches by model structure are compiled once per worker
    and reused by every later replicate there (checked: a 6-replicate ``engine="mcmc"`` study on
    2 workers compiled 2 models per worker; first replicates 130 s, later ones 0.25-1 s). The
    ``seconds`` of a worker's first replicate include that compilation.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> res = bd.simulation_study("chakraborty_ex3", n=100, reps=2, seed=1, client="serial",
    ...     methods={"bayes": {"draws": 100, "chains": 2}}, estimands=["value_optimal"],
    ...     progressbar=False)
    >>> res.summary[["method", "estimand", "n_ok"]].to_dict("records")
    [{'method': 'bayes', 'estimand': 'value_optimal', 'n_ok': 2}]
    """
    t0 = time.perf_counter()
    n = _check_int(n, "n", 1, "Pass the units per simulated data set, e.g. n=300.")
    reps = _check_int(reps, "reps", 1, "Pass the number of replicates, e.g. reps=200.")
    seed = _check_int(seed, "seed", 0, "Pass a non-negative integer, e.g. seed=1.")
    if isinstance(level, bool) or not isinstance(level, Real) or not 0 < float(level) < 1:
        raise SpecificationError(f"level must be a number in (0, 1); got {level!r}. E.g. level=0.95.")
    if blas_threads is not None:
        blas_threads = _check_int(blas_threads, "blas_threads", 1, "Pass 1, or None to leave BLAS alone.")
    scn, st = _check_scenario(scenario, stages)
    specs = {"bayes": {}, "qlearning": "qlearning"} if methods is None else methods
    resolved = resolve_methods(specs)
    if not isinstance(specs, dict):
        specs = {label: s for label, s in zip(resolved, specs, strict=True)}
    psi = _psi_truth(scn)
    groups, order = _resolve_estimands(estimands, scn, psi)
    truth = {**psi, "value_optimal": float(scn.true_value("optimal"))}
    plan = _Plan(scn, st, n, seed, float(level), resolved, groups, truth, order, blas_threads)
    settings = _settings(scenario, scn, st, n, reps, seed, float(level), specs, order)
    if not (client is None or client in ("serial", "threads") or _is_client(client)
            or (isinstance(client, str) and "://" in client)):
        raise SpecificationError(
            f"client must be None (embedded LocalCluster), 'serial', 'threads', a "
            f"distributed.Client or a scheduler address like 'tcp://host:8786'; got {client!r}."
        )

    results: dict[int, list[tuple]] = {}
    st_ = None if store is None else StudyStore(store, settings)
    if st_ is not None:
        for r in st_.finished():
            if r < reps:
                results[r] = st_.read(r)
    todo = [r for r in range(reps) if r not in results]
    bar = _Progress(reps, len(results), bool(progressbar) and not os.environ.get("CI"))

    def on_done(r: int, rows: list[tuple]) -> None:
        if st_ is not None:
            st_.write(r, rows)
        results[r] = rows
        bar.update(any(row[-1] for row in rows))

    try:
        if todo:
            if client == "serial":
                _run_serial(todo, plan, on_done)
            elif client is None or client == "threads":
                cluster, cl = _embedded_cluster("processes" if client is None else "threads", len(todo))
                try:
                    _run_dask(todo, plan, cl, on_done)
                finally:
                    cl.close()
                    cluster.close()
            elif isinstance(client, str):
                from distributed import Client

                cl = Client(client)
                try:
                    _run_dask(todo, plan, cl, on_done)
                finally:
                    cl.close()
            else:
                _run_dask(todo, plan, client, on_done)
    finally:
        bar.close()
    rows = [row for r in sorted(results) for row in results[r]]
    return StudyResult(table=_table(rows), settings=json.loads(json.dumps(settings, default=str)),
                       seconds=time.perf_counter() - t0)


def _is_client(obj: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - dask is a core dependency
        return False
    return isinstance(obj, Client)
