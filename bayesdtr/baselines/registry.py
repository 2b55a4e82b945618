"""Frequentist baselines as simulation-study methods, by name.

:data:`BASELINES` maps a name (what users write in ``simulation_study(methods=[...])``) to a
method callable with the signature documented in :mod:`bayesdtr.simulate.methods`::

    f(df, scenario, seed_sequence, *, stages, level, **options) -> MethodResult

Options come from a dict spec, e.g. ``{"baseline": "qlearning", "bootstrap": 500}``. To add a
baseline, write such a function next to its estimator and register it with one line here, e.g.
``BASELINES["m_out_of_n"] = m_out_of_n_method``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.regimes import Regime
from bayesdtr.simulate.protocol import MethodResult, model_for, psi_name, seed_int

__all__ = ["BASELINES", "coefficient_rule", "crossfit_aipw_method", "m_out_of_n_method", "qlearning_method"]


def coefficient_rule(design: Any, coefs: list[np.ndarray], *, name: str) -> Regime:
    """The argmax rule of linear Q-functions with coefficient vectors ``coefs`` (one per stage).

    ``coefs[k]`` is in the order of the stage's full design (main terms, then the contrast
    terms of each non-reference arm), as in :func:`bayesdtr.baselines.qlearning`. The rule
    evaluates the stage formulas on new histories and respects feasible sets.
    """
    from bayesdtr.data.design import materialize

    def make(sd: Any, theta: np.ndarray) -> Callable[[pd.DataFrame], np.ndarray]:
        def rule(df: pd.DataFrame) -> np.ndarray:
            where = f"{name} at stage {sd.treatment!r}"
            Xm = materialize(sd.main_spec, df, f"{where} (main)")
            Xc = materialize(sd.contrast_spec, df, f"{where} (contrast)")
            q = np.column_stack(
                [sd.full_design(Xm, Xc, np.full(len(df), j)) @ theta for j in range(sd.n_arms)]
            )
            if sd.stage.feasible is not None:
                q = np.where(sd.feasible_of(df), q, -np.inf)
            return sd.arm_coord[np.argmax(q, axis=1)]

        return rule

    rules = {sd.treatment: make(sd, th) for sd, th in zip(design.stages, coefs, strict=True)}
    return Regime.dynamic(rules, name=name)


def qlearning_method(
    df: pd.DataFrame,
    scenario: Any,
    seed_sequence: np.random.SeedSequence,
    *,
    stages: list,
    level: float,
    bootstrap: int = 1000,
) -> MethodResult:
    """OLS Q-learning with the percentile bootstrap, as a study method.

    Estimates are the OLS fits and the plug-in value; intervals are percentile intervals of
    ``bootstrap`` resamples at ``level``. The plug-in value (mean of the fitted max-Q) is this
    method's estimate of both ``value_optimal`` and ``value_rule`` (the value of its own
    estimated rule); the rule is the argmax of the fitted Q-functions.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> scn = bd.scenario("two_stage_cont")
    >>> res = qlearning_method(scn.sample(300, seed=1), scn, np.random.SeedSequence(1),
    ...                        stages=scn.stages, level=0.95, bootstrap=200)
    >>> sorted(res.estimates)[:2]
    ['psi[A1][Intercept][1]', 'psi[A1][X1][1]']
    """
    from bayesdtr.baselines.qlearning import qlearning

    model = model_for(df, scenario, stages)
    res = qlearning(model, bootstrap=bootstrap, seed=seed_int(seed_sequence))
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    est: dict[str, tuple[float, float, float]] = {}
    for sd, st in zip(model.design.stages, res.stages, strict=True):
        for arm in sd.arms[1:]:
            for term in sd.contrast_terms:
                key = f"psi[{arm}, {term}]"
                lo, hi = np.quantile(st.boot_coef[key].to_numpy(), q) if bootstrap else (np.nan, np.nan)
                est[psi_name(sd.treatment, term, arm)] = (float(st.coef[key]), float(lo), float(hi))
    lo, hi = np.quantile(res.boot_value, q) if bootstrap else (np.nan, np.nan)
    est["value_optimal"] = est["value_rule"] = (res.value, float(lo), float(hi))
    rule = coefficient_rule(
        model.design, [st.coef.to_numpy() for st in res.stages], name="Q-learning rule"
    )
    return MethodResult(estimates=est, rule=rule)


def m_out_of_n_method(
    df: pd.DataFrame,
    scenario: Any,
    seed_sequence: np.random.SeedSequence,
    *,
    stages: list,
    level: float,
    bootstrap: int = 1000,
    alpha: float = 0.1,
) -> MethodResult:
    """OLS Q-learning with the adaptive m-out-of-n bootstrap (:func:`~bayesdtr.baselines.m_out_of_n`).

    Intervals are the m-out-of-n intervals of Chakraborty, Laber and Zhao (2013) at ``level``;
    otherwise as :func:`qlearning_method`.
    """
    from bayesdtr.baselines.qlearning import m_out_of_n

    model = model_for(df, scenario, stages)
    res = m_out_of_n(model, bootstrap=bootstrap, alpha=alpha, seed=seed_int(seed_sequence))
    tab = res.summary(level=level)
    lo_col, hi_col = [c for c in tab.columns if c.startswith("boot_0")]
    est: dict[str, tuple[float, float, float]] = {}
    for sd in model.design.stages:
        for arm in sd.arms[1:]:
            for term in sd.contrast_terms:
                row = tab.loc[f"{sd.treatment}::psi[{arm}, {term}]"]
                est[psi_name(sd.treatment, term, arm)] = (float(row["estimate"]), float(row[lo_col]), float(row[hi_col]))
    row = tab.loc["value"]
    est["value_optimal"] = est["value_rule"] = (float(row["estimate"]), float(row[lo_col]), float(row[hi_col]))
    rule = coefficient_rule(model.design, [st.coef.to_numpy() for st in res.stages], name="Q-learning rule")
    return MethodResult(estimates=est, rule=rule)


def crossfit_aipw_method(
    df: pd.DataFrame,
    scenario: Any,
    seed_sequence: np.random.SeedSequence,
    *,
    stages: list,
    level: float,
    folds: int = 5,
) -> MethodResult:
    """Cross-fitted AIPW Wald interval of the optimal value (:func:`~bayesdtr.baselines.crossfit_aipw`).

    Gives ``value_optimal`` only (no contrasts, no single rule: each fold has its own).
    """
    from bayesdtr.baselines.crossfit_aipw import crossfit_aipw

    model = model_for(df, scenario, stages)
    res = crossfit_aipw(model, folds=folds, seed=seed_int(seed_sequence), level=level)
    return MethodResult(estimates={"value_optimal": (res.estimate, res.lower, res.upper)})


#: Baseline methods by name; see the module docstring for the signature.
BASELINES: dict[str, Callable[..., MethodResult]] = {
    "qlearning": qlearning_method,
    "m_out_of_n": m_out_of_n_method,
    "crossfit_aipw": crossfit_aipw_method,
}
