r"""Default priors of the stage models, scaled to the data, and user overrides.

Outcome (Q-function) models of Gaussian stages use the conjugate Normal-Inverse-Gamma form by
default, so that the closed-form engine and NUTS target the same posterior:

.. math::

    \sigma_k^2 \sim \mathrm{InvGamma}(a_0, b_0), \qquad
    \theta_{k,j} \mid \sigma_k \sim \mathrm{Normal}(m_{0j}, \sigma_k \tau_j)

with :math:`a_0 = 1`, :math:`b_0 = \widehat{\mathrm{var}}(G)` (G the observed return, the sum of
rewards and the final outcome), :math:`m_{0j}` the mean of G for an intercept column and 0
otherwise, and :math:`\tau_j = 10 / \mathrm{sd}(x_j)` (10 for constant columns). A coefficient's
prior standard deviation is therefore ten residual SDs per SD of its covariate: weak.

Logistic models (a Bernoulli final stage, propensity models) use
:math:`\mathrm{Normal}(0, 2.5 / \mathrm{sd}(x_j))` (2.5 for the intercept, centred at the logit
of the observed rate). Group effects are non-centred with half-normal scales.

Users override any of them by name with :class:`pymc_extras.prior.Prior`, either for every stage
(``priors={"psi": Prior(...)}``) or for one stage (``priors={"A2": {"psi": Prior(...)}}``). A
Gaussian stage whose ``beta``, ``psi`` or ``sigma`` is overridden is no longer conjugate, so
``engine="auto"`` fits it by MCMC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesdtr.exceptions import PriorError

__all__ = ["OUTCOME_PRIORS", "PROPENSITY_PRIORS", "PRIOR_NAMES", "StagePriors", "resolve_priors", "nig_hyper"]

#: Names of outcome-model priors and what they are.
OUTCOME_PRIORS: dict[str, str] = {
    "beta": "main-effect coefficients (dims main_term)",
    "psi": "contrast coefficients of each non-reference arm (dims contrast_arm, contrast_term)",
    "sigma": "residual SD of a Gaussian stage",
    "group_sd": "SD of the group (site) random intercepts",
    "group_contrast_sd": "SD of the group random contrasts (dims contrast_arm)",
}
#: Names of propensity-model priors.
PROPENSITY_PRIORS: dict[str, str] = {
    "propensity_coef": "propensity coefficients (dims contrast_arm, propensity_term)",
    "propensity_group_sd": "SD of the group random intercepts of the propensity model",
}
PRIOR_NAMES = tuple(OUTCOME_PRIORS) + tuple(PROPENSITY_PRIORS)
CONJUGACY_BREAKERS = ("beta", "psi", "sigma")


@dataclass
class StagePriors:
    """User prior overrides of one stage (name -> ``Prior``)."""

    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def conjugate_compatible(self) -> bool:
        return not any(name in self.overrides for name in CONJUGACY_BREAKERS)

    def get(self, name: str) -> Any | None:
        return self.overrides.get(name)


def _check_prior(name: str, value: Any, where: str) -> None:
    if name not in PRIOR_NAMES:
        raise PriorError(
            f"Unknown prior name {name!r} in {where}. Valid names: {list(PRIOR_NAMES)} "
            "(or a stage's treatment column mapping to a dict of these)."
        )
    if not hasattr(value, "create_variable"):
        raise PriorError(
            f"Prior {name!r} in {where} must be a pymc_extras.prior.Prior; got "
            f"{type(value).__name__}."
        )


def resolve_priors(priors: Mapping[str, Any] | None, treatments: list[str]) -> dict[str, StagePriors]:
    """Validate ``priors=`` and split it per stage (user > default precedence)."""
    out = {t: StagePriors() for t in treatments}
    if priors is None:
        return out
    if not isinstance(priors, Mapping):
        raise PriorError(f"priors= must be a dict name -> Prior; got {type(priors).__name__}.")
    for key, value in priors.items():
        if key in treatments:
            if not isinstance(value, Mapping):
                raise PriorError(
                    f"priors[{key!r}] must be a dict name -> Prior for stage {key!r}; got "
                    f"{type(value).__name__}."
                )
            for name, p in value.items():
                _check_prior(name, p, f"priors[{key!r}]")
                out[key].overrides[name] = p
        else:
            if key not in PRIOR_NAMES and isinstance(value, Mapping):
                raise PriorError(
                    f"priors key {key!r} is neither a prior name {list(PRIOR_NAMES)} nor a "
                    f"treatment column {treatments}."
                )
            _check_prior(key, value, "priors")
            for t in treatments:
                out[t].overrides.setdefault(key, value)
    return out


def column_scales(X: np.ndarray, base: float) -> tuple[np.ndarray, np.ndarray]:
    """Prior SD multipliers ``base / sd(x_j)`` (``base`` for constant columns) and a constant-column mask."""
    sd = X.std(axis=0)
    const = sd < 1e-12
    tau = np.where(const, base, base / np.where(const, 1.0, sd))
    return tau, const


@dataclass
class NIGHyper:
    """Normal-Inverse-Gamma hyperparameters: theta | sigma^2 ~ N(m0, sigma^2 diag(tau^2))."""

    m0: np.ndarray
    tau: np.ndarray
    a0: float
    b0: float


def nig_hyper(X_main: np.ndarray, X_contrast: np.ndarray, n_arms: int, g_obs: np.ndarray) -> NIGHyper:
    """Default NIG hyperparameters of a Gaussian stage, scaled by the observed return ``g_obs``."""
    tau_m, const_m = column_scales(X_main, 10.0)
    tau_c, _ = column_scales(X_contrast, 10.0)
    m0_main = np.where(const_m & np.all(np.isclose(X_main, 1.0), axis=0), float(np.mean(g_obs)), 0.0)
    tau = np.concatenate([tau_m] + [tau_c] * (n_arms - 1))
    m0 = np.concatenate([m0_main] + [np.zeros(X_contrast.shape[1])] * (n_arms - 1))
    var = float(np.var(g_obs))
    return NIGHyper(m0=m0, tau=tau, a0=1.0, b0=max(var, 1e-8))
