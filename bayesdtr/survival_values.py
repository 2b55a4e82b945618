r"""Values of regimes for a censored survival outcome: restricted mean survival time (RMST).

For a regime d, posterior draw s and horizon :math:`\tau`, stage 1 of the regime's own backward
induction (:mod:`bayesdtr.inference.survival`) gives every unit the log-time AFT location
:math:`\mu_i^{(s)} = Q_1^{d,(s)}(H_{1,i}, d_1(H_{1,i}))` of its total time and a scale
:math:`\sigma_1^{(s)}`. The value draws are

.. math::

    \mathrm{RMST}^{(s)}(d, \tau) = \frac1n \sum_i \omega_i^{(s)}\,
        E\big[\min(T, \tau) \mid \mu_i^{(s)}, \sigma_1^{(s)}\big]
    \quad\text{or}\quad
    S^{(s)}(d, \tau) = \frac1n \sum_i \omega_i^{(s)}\, P(T > \tau \mid \mu_i^{(s)}, \sigma_1^{(s)}),

with the posterior's Bayesian-bootstrap weights :math:`\omega^{(s)}` (the same as every other
value) and the closed forms of :mod:`bayesdtr.models.survival`. IPW/AIPW values and sample
splitting do not handle censoring here and are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from bayesdtr.exceptions import FitError
from bayesdtr.inference.survival import SurvivalInduction
from bayesdtr.models.survival import rmst, survival_at
from bayesdtr.regimes import Regime

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = ["ESTIMANDS", "check_survival_value", "survival_value"]

#: What ``post.value(..., horizon=tau, estimand=...)`` returns for a survival posterior.
ESTIMANDS = ("rmst", "survival")


def check_survival_value(
    post: DTRPosterior,
    reg: Regime,
    *,
    horizon: float | None,
    estimand: str,
    method: str | None,
    crossfit: int | str | None,
) -> float:
    """Check the arguments of a survival value; returns the horizon as a float.

    Raises
    ------
    FitError
        Without ``horizon=`` on a survival posterior, with ``horizon=`` on another one, with a
        horizon that is not a positive finite number, an unknown ``estimand``, ``method`` other
        than ``"q"``, or sample splitting asked for explicitly.
    """
    d = post.design
    if d.event is None:
        raise FitError(
            f"horizon={horizon!r} is for censored survival outcomes; this posterior's outcome "
            f"{d.outcome!r} is {d.family!r}. Drop horizon=."
        )
    if horizon is None:
        raise FitError(
            f"The outcome {d.outcome!r} is a censored time (family={d.family!r}); its mean is not "
            "identified beyond the follow-up, so a value needs a horizon: "
            "post.value(regime, horizon=tau) gives the restricted mean survival time up to tau "
            "(estimand='survival': the probability of surviving past tau)."
        )
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, int | float | np.integer | np.floating)
        or not (np.isfinite(horizon) and horizon > 0)
    ):
        raise FitError(
            f"horizon= must be a positive finite time (same unit as {d.outcome!r}); got {horizon!r}."
        )
    if estimand not in ESTIMANDS:
        raise FitError(f"estimand={estimand!r} is not one of {list(ESTIMANDS)}.")
    if method not in (None, "q"):
        raise FitError(
            f"method={method!r} does not handle censored outcomes here (its weights ignore "
            "censoring); a survival value is computed from the Q-models only: use method='q' or "
            "leave method unset."
        )
    if crossfit not in ("auto", None, 0):
        raise FitError(
            f"crossfit={crossfit!r}: sample splitting is not available for survival outcomes; the "
            "value of a learned rule ('optimal') is the plug-in posterior. Use crossfit=None."
        )
    if d.stages[0].n_units != d.n:
        raise FitError(
            f"A survival value needs every unit at stage 1 ({d.stages[0].treatment!r}); "
            f"{d.n - d.stages[0].n_units} units do not reach it (applies=)."
        )
    t_max = float(d.y.max())
    if horizon > t_max:
        raise FitError(
            f"horizon={horizon!r} is beyond the longest follow-up in the data ({t_max:.4g}); the "
            "RMST there would rest on the AFT model's extrapolation alone. Use a horizon within "
            "the follow-up."
        )
    return float(horizon)


def survival_value(
    post: DTRPosterior,
    ind: SurvivalInduction,
    *,
    horizon: float,
    estimand: Literal["rmst", "survival"],
) -> np.ndarray:
    """RMST (or survival probability) draws at ``horizon``, flat, one per posterior draw."""
    fn = rmst if estimand == "rmst" else survival_at
    out = np.empty(post.n_samples)
    bb = post.bootstrap
    for idx in bb.chunks():
        mu, sigma = ind.stage1_mu(idx)
        per_unit = fn(post.design.family, mu, sigma[:, None], horizon)
        out[idx] = np.sum(bb.weights(idx) * per_unit, axis=1) / bb.n_units
    return out
