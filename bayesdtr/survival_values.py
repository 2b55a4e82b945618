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
value) and the closed forms of :mod:`bayesdtr.models.survival`: that is ``method="q"``, which
rests entirely on the stage-1 working model's distribution of the total time.

The default ``method="augmented"`` uses each unit's own time instead, as the propagation does:
:math:`\ell_i^{(s)} = L_{1,i} + Q_1^{(s)}(H_i, d_1) - Q_1^{(s)}(H_i, A_{1,i})` is the unit's log
total time under d (its stage-1 pseudo-outcome, shifted by the AFT contrast), and the unit adds
:math:`\min(e^{\ell_i}, \tau)` if :math:`\delta_i = 1`, or, if censored at :math:`c_i =
e^{\ell_i}`, :math:`E[\min(T, \tau) \mid T > c_i]` under the stage-1 model
(:func:`augmented_terms`). Only the censored units' tails beyond their censoring times come from
the parametric model, but every unit not on the regime's first arm is moved there by the stage-1
AFT contrast. Where the stage-1 model is misspecified (``survival_smart``: a mixture of stage-1
deaths and later deaths), ``"q"`` is biased by up to -0.22 and ``"augmented"`` by up to -0.08 at
tau = 10 (``benchmarks/results/survival_oracle.txt``).

``method="aipw"`` (the default when stage 1 has a propensity, e.g. a randomized stage declared
``propensity=bd.KnownPropensity(...)``) does not rest on the stage-1 AFT contrast at all: with
:math:`d_{1,i}` the regime's first arm, :math:`m_i^{(s)}` the stage-1 model's
:math:`E[\min(T, \tau) \mid H_{1,i}, d_{1,i}]` (the ``"q"`` term) and :math:`g_i^{(s)}` the
unit's augmented term with no stage-1 shift (its own time, the later stages shifted to the regime,
a censored tail from the model of the stage it was censored in),

.. math::

    \phi_i^{(s)} = m_i^{(s)} + \frac{1\{A_{1,i} = d_{1,i}\}}{\pi_1^{(s)}(A_{1,i} \mid H_{1,i})}
        \big(g_i^{(s)} - m_i^{(s)}\big)

(:func:`aipw_terms`), averaged with the Bayesian-bootstrap weights: the augmented inverse
probability weighted estimator (Robins, Rotnitzky and Zhao 1994, JASA 89:846) applied at stage 1
with :math:`g` as the outcome, coded from that formula; not checked against a published
survival-SMART implementation. It is consistent if either the stage-1 propensity or the stage-1
model is right, except for the units censored before the stage-2 decision, whose tails still
come from the stage-1 model; the later stages' AFT models still carry each follower's time to the
regime. Why: the stage-1 target is an accumulated time
:math:`\log(R_1 + T_2 e^{s_2})`, which no AFT model generates exactly when a stage-1 arm acts on
the later stage's time (a time :math:`R_1` is not scaled by the arm), so ``"augmented"`` inherits
the stage-1 model's misspecification bias. Measured on ``survival_smart`` by maximum likelihood
(``benchmarks/diag_survival_oracle.py``, n = 1,000, 300 replicates, RMST at tau = 10): bias
-0.076/-0.065/+0.056/+0.015 for ``"augmented"`` (the same at n = 200,000 with the true stage 2:
misspecification, not noise) against -0.011/-0.009/+0.001/+0.000 for the stage-1 AIPW, with
sampling SDs 0.170/0.152/0.139/0.113 against 0.161/0.143/0.141/0.121 (regimes (0,0), (0,1),
(1,0), (1,1)).

IPW values and sample splitting do not handle censoring here and are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from bayesdtr.exceptions import FitError
from bayesdtr.inference.draws import propensity_for, select_arm
from bayesdtr.inference.survival import SurvivalInduction
from bayesdtr.models.survival import rmst, survival_at
from bayesdtr.regimes import Regime

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = [
    "ESTIMANDS",
    "SURVIVAL_METHODS",
    "aipw_terms",
    "augmented_terms",
    "check_survival_value",
    "survival_method",
    "survival_value",
]

#: What ``post.value(..., horizon=tau, estimand=...)`` returns for a survival posterior.
ESTIMANDS = ("rmst", "survival")
#: Value methods for survival posteriors (None: :func:`survival_method`).
SURVIVAL_METHODS = (None, "aipw", "augmented", "q")


def survival_method(post: DTRPosterior, method: str | None) -> str:
    """The value method: ``method``, or by default ``"aipw"`` when stage 1 has a propensity
    (declared model or known probabilities), else ``"augmented"``."""
    if method is not None:
        return method
    return "aipw" if post.propensities[0] is not None else "augmented"


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
    if method not in SURVIVAL_METHODS:
        raise FitError(
            f"method={method!r} does not handle censored outcomes (IPW weights here ignore "
            "censoring); a survival value is 'aipw' (the default when stage 1 has a propensity: "
            "augmented inverse probability weighting at stage 1), 'augmented' (each unit's own "
            "time shifted to the regime, censored tails from the model) or 'q' (the stage-1 "
            "model's distribution only). Use one of those or leave method unset."
        )
    if method == "aipw" and post.propensities[0] is None:
        raise FitError(
            f"method='aipw' needs the propensity of stage 1 ({d.stages[0].treatment!r}), which "
            "has propensity=None. Declare it: bd.Stage(..., propensity=bd.KnownPropensity({...})) "
            "for a randomized stage, or a formula; or use method='augmented'."
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
    method: Literal["aipw", "augmented", "q"] = "augmented",
) -> np.ndarray:
    """RMST (or survival probability) draws at ``horizon``, flat, one per posterior draw."""
    fam = post.design.family
    out = np.empty(post.n_samples)
    bb = post.bootstrap
    event = post.design.event
    assert event is not None
    for idx in bb.chunks():
        if method == "q":
            mu, sigma = ind.stage1_mu(idx)
            fn = rmst if estimand == "rmst" else survival_at
            per_unit = fn(fam, mu, sigma[:, None], horizon)
        else:
            p = ind.tail_parts(0, idx)
            own = augmented_terms(
                fam,
                p["ell"],
                p["mu"],
                p["sigma"],
                event[None, :] > 0.5,
                horizon,
                estimand,
                alpha=p["alpha"],
                beta=p["beta"],
            )
            if method == "aipw":
                sd = post.design.stages[0]
                codes, mu, sigma = ind.stage1_decisions(idx)
                fn = rmst if estimand == "rmst" else survival_at
                pi = select_arm(propensity_for(post.propensities[0], sd, post.design, idx), sd.a)
                per_unit = aipw_terms(fn(fam, mu, sigma[:, None], horizon), own, codes == sd.a, pi)
            else:
                per_unit = own
        out[idx] = np.sum(bb.weights(idx) * per_unit, axis=1) / bb.n_units
    return out


def aipw_terms(
    model: np.ndarray, own: np.ndarray, follows: np.ndarray, propensity: np.ndarray
) -> np.ndarray:
    r"""Per-unit terms of the stage-1 AIPW survival value (see the module docstring).

    :math:`\phi = m + 1\{A_1 = d_1\}(g - m) / \pi_1(A_1 \mid H_1)`, with ``model`` m, ``own``
    g (valid only where ``follows``), ``propensity`` the probability of the observed arm.

    Examples
    --------
    >>> aipw_terms(np.array([5.0, 5.0]), np.array([7.0, 1.0]), np.array([True, False]),
    ...            np.array([0.5, 0.5])).tolist()
    [9.0, 5.0]
    """
    return model + np.where(follows, (own - model) / propensity, 0.0)


def augmented_terms(
    family: str,
    ell: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    event: np.ndarray,
    horizon: float,
    estimand: str,
    *,
    alpha: np.ndarray | float = 0.0,
    beta: np.ndarray | float = 1.0,
) -> np.ndarray:
    r"""Per-unit terms of the augmented survival value (see the module docstring).

    A unit's total time under the regime is :math:`t = e^{\ell} = \alpha + \beta u`, with u its
    time left at the last stage it reached, :math:`U \sim \mathrm{AFT}(\mu, \sigma)` there. An
    event gives :math:`\min(t, \tau)` (or :math:`1\{t > \tau\}`). A time censored at :math:`t`
    (:math:`U > u`) gives :math:`\tau` (or 1) if :math:`t \ge \tau`, else, with
    :math:`h = (\tau - \alpha)/\beta`,

    .. math::

        E[\min(\alpha + \beta U, \tau) \mid U > u] = \alpha + \beta\Big(u +
            \frac{\mathrm{RMST}(h) - \mathrm{RMST}(u)}{S(u)}\Big)
        \quad\Big(\text{or } \frac{S(h)}{S(u)}\Big).

    Examples
    --------
    >>> float(augmented_terms("lognormal", np.array(0.0), np.array(0.0), np.array(1.0),
    ...                       np.array(True), 5.0, "rmst"))
    1.0
    """
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    t = np.exp(ell)
    u = np.maximum((t - alpha) / beta, 1e-300)
    h = np.maximum((horizon - alpha) / beta, 1e-300)
    over = t >= horizon
    u_c = np.where(over, h, u)  # only censored units below the horizon use it
    surv_u = survival_at(family, mu, sigma, u_c)
    ok = surv_u > 1e-12
    safe = np.where(ok, surv_u, 1.0)
    if estimand == "rmst":
        tail = (rmst(family, mu, sigma, h) - rmst(family, mu, sigma, u_c)) / safe
        cens = alpha + beta * (u_c + np.where(ok, np.clip(tail, 0.0, h - u_c), 0.0))
        cens = np.where(over, horizon, np.minimum(cens, horizon))
        return np.where(event, np.minimum(t, horizon), cens)
    cens = np.where(ok, np.clip(survival_at(family, mu, sigma, h) / safe, 0.0, 1.0), 0.0)
    return np.where(event, (t > horizon).astype(float), np.where(over, 1.0, cens))
