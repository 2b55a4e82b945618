r"""Right-censored log-time (accelerated failure time) families: ``"lognormal"`` and ``"weibull"``.

At every stage k of a survival analysis the regression target is a log time
:math:`L_{k,i}` (the log of the time left from stage k's decision; see
:mod:`bayesdtr.inference.survival`) with the unit's event indicator :math:`\delta_i`:

.. math::

    L_{k,i} = Q_k(H_{k,i}, A_{k,i}) + \sigma_k\,\varepsilon_i, \qquad
    \varepsilon_i \sim \begin{cases} N(0, 1) & \text{lognormal} \\
    \text{standard minimum extreme value} & \text{Weibull} \end{cases}

with the right-censored likelihood

.. math::

    \log p(L \mid Q, \sigma) = \sum_i \delta_i \big[\log f(z_i) - \log\sigma_k\big]
        + (1 - \delta_i) \log S(z_i), \qquad z_i = (L_{k,i} - Q_{k,i}) / \sigma_k,

where :math:`f, S` are the density and survival function of :math:`\varepsilon` (Normal:
:math:`\varphi`, :math:`1 - \Phi`; extreme value: :math:`e^{z - e^z}`, :math:`e^{-e^z}`). A
censored unit contributes :math:`P(L > L_{k,i})`: its time is a lower bound. Q is on the log-time
scale (the AFT location), so a contrast :math:`\psi` multiplies survival times by :math:`e^{\psi}`.

The priors are the Gaussian stages' defaults: :math:`\theta \mid \sigma^2 \sim N(m_0, \sigma^2
\operatorname{diag}\tau^2)`, :math:`\sigma^2 \sim \text{Inv-Gamma}(1, \widehat{\operatorname{var}}
(L))`, scaled to the observed log times (censored ones included, for the scale only).

:func:`rmst` and :func:`survival_at` give the restricted mean survival time
:math:`E[\min(T, \tau)] = \int_0^\tau S(t)\,dt` and :math:`S(\tau)` of :math:`T = e^L`:

- lognormal: :math:`\mathrm{RMST} = e^{\mu + \sigma^2/2}\,\Phi\big(\tfrac{\log\tau - \mu -
  \sigma^2}{\sigma}\big) + \tau\big(1 - \Phi\big(\tfrac{\log\tau - \mu}{\sigma}\big)\big)`;
- Weibull (shape :math:`1/\sigma`, scale :math:`e^\mu`): :math:`\mathrm{RMST} = e^{\mu}\,
  \Gamma(1 + \sigma)\, P\big(\sigma, (\tau e^{-\mu})^{1/\sigma}\big)`, with :math:`P` the
  regularized lower incomplete gamma function.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy.special import gamma, gammainc, ndtr

from bayesdtr.data.design import StageDesign
from bayesdtr.models.families import FAMILIES, Gaussian
from bayesdtr.models.priors import NIGHyper, nig_hyper

__all__ = ["LogNormalAFT", "SURVIVAL", "SurvivalFamily", "WeibullAFT", "rmst", "survival_at"]


class SurvivalFamily(Gaussian):
    """A right-censored log-time family of one stage (``event`` and ``log_time`` of its units).

    The registered instances (``FAMILIES["lognormal"]``, ``FAMILIES["weibull"]``) carry no
    data; :meth:`for_stage` gives the one a stage is fitted with. Never closed form: only the
    NUTS engine fits it.
    """

    name: ClassVar[str]
    closed_form = False
    has_sigma = True

    def __init__(self, event: np.ndarray | None = None, log_time: np.ndarray | None = None) -> None:
        self.event = event
        self.log_time = log_time

    def for_stage(self, event: np.ndarray, log_time: np.ndarray) -> SurvivalFamily:
        """This family with a stage's event indicators and observed log times (prior scale)."""
        return type(self)(np.asarray(event, dtype=float), np.asarray(log_time, dtype=float))

    # -------------------------------------------------------------- numpy side
    def response(self, lin: np.ndarray) -> np.ndarray:
        return lin

    def hyper(self, sd: StageDesign, g_obs: np.ndarray) -> NIGHyper | None:
        scale = self.log_time if self.log_time is not None else g_obs
        return nig_hyper(sd.X_main, sd.X_contrast, sd.n_arms, scale)

    def prior_data(
        self, sd: StageDesign, W: np.ndarray, hyper: NIGHyper | None, target: np.ndarray
    ) -> dict[str, np.ndarray]:
        data = super().prior_data(sd, W, hyper, target)
        for name in ("WtW", "n_obs"):
            data.pop(name)
        event = self.event if self.event is not None else np.ones(len(target))
        return data | {"W": W, "event": event}

    def target_data(self, W: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
        return {"target": np.asarray(target, dtype=float)}

    def key(self, W: np.ndarray) -> tuple:
        return (W.shape[0],)

    def likelihood(self, d: dict[str, Any], phi: Any, sigma: Any) -> None:
        import pymc as pm
        import pytensor.tensor as pt

        z = (d["target"] - pt.dot(d["W"], phi)) / sigma
        ll = pt.switch(d["event"] > 0.5, self._logpdf(z) - pt.log(sigma), self._logsf(z))
        pm.Potential("loglik", pt.sum(ll))

    @abstractmethod
    def _logpdf(self, z):
        """Log density of the standardized log-time error."""

    @abstractmethod
    def _logsf(self, z):
        """Log survival function of the standardized log-time error."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogNormalAFT(SurvivalFamily):
    r"""Log-normal AFT: :math:`\log T = Q + \sigma\varepsilon`, :math:`\varepsilon \sim N(0, 1)`."""

    name = "lognormal"

    def predictive(
        self, rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray | None
    ) -> np.ndarray:
        assert sigma is not None
        return mean + sigma[:, None] * rng.standard_normal(mean.shape)

    def _logpdf(self, z):
        return -0.5 * z**2 - 0.5 * np.log(2 * np.pi)

    def _logsf(self, z):
        import pymc as pm

        # log(1 - Phi(z)) = log Phi(-z), PyMC's stable normal log-CDF
        return pm.logcdf(pm.Normal.dist(0.0, 1.0), -z)


class WeibullAFT(SurvivalFamily):
    r"""Weibull AFT: :math:`\log T = Q + \sigma W`, W standard minimum extreme value (shape
    :math:`1/\sigma`, scale :math:`e^{Q}`)."""

    name = "weibull"

    def predictive(
        self, rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray | None
    ) -> np.ndarray:
        assert sigma is not None
        w = np.log(-np.log(rng.random(mean.shape)))
        return mean + sigma[:, None] * w

    def _logpdf(self, z):
        import pytensor.tensor as pt

        return z - pt.exp(z)

    def _logsf(self, z):
        import pytensor.tensor as pt

        return -pt.exp(z)


def rmst(family: str, mu: np.ndarray, sigma: np.ndarray, horizon: float) -> np.ndarray:
    r"""Restricted mean survival time :math:`E[\min(e^L, \tau)]` of :math:`L = \mu + \sigma\varepsilon`.

    Examples
    --------
    >>> round(float(rmst("lognormal", np.array(0.0), np.array(1e-6), 5.0)), 6)  # T = 1 almost surely
    1.0
    >>> round(float(rmst("weibull", np.array(0.0), np.array(1.0), 1e6)), 6)  # exponential, mean 1
    1.0
    """
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    lt = np.log(horizon)
    if family == "lognormal":
        return np.exp(mu + sigma**2 / 2) * ndtr((lt - mu - sigma**2) / sigma) + horizon * ndtr(
            (mu - lt) / sigma
        )
    if family == "weibull":
        x = np.exp((lt - mu) / sigma)
        return np.exp(mu) * gamma(1.0 + sigma) * gammainc(sigma, x)
    raise ValueError(f"no RMST for family {family!r}")


def survival_at(family: str, mu: np.ndarray, sigma: np.ndarray, horizon: float) -> np.ndarray:
    r""":math:`S(\tau) = P(e^L > \tau)` of :math:`L = \mu + \sigma\varepsilon`.

    Examples
    --------
    >>> float(survival_at("lognormal", np.array(0.0), np.array(1.0), 1.0))
    0.5
    """
    z = (np.log(horizon) - np.asarray(mu, dtype=float)) / np.asarray(sigma, dtype=float)
    if family == "lognormal":
        return ndtr(-z)
    if family == "weibull":
        return np.exp(-np.exp(z))
    raise ValueError(f"no survival function for family {family!r}")


#: The survival families by name (registered in ``FAMILIES``).
SURVIVAL: dict[str, SurvivalFamily] = {f.name: f for f in (LogNormalAFT(), WeibullAFT())}
FAMILIES.update(SURVIVAL)
