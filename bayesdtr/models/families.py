r"""Outcome families of the final stage, as objects (``FAMILIES`` by name).

A family knows everything that differs between outcome types: the response map from the linear
predictor to the outcome scale (``response``), the posterior-predictive draw used by the
``"predictive"`` propagation (``predictive``), whether the closed-form engines (conjugate,
robust, OLS) apply (``closed_form``), and its part of the PyMC stage model
(:mod:`bayesdtr.models.outcome`): default-prior data, the data a target vector sets, the residual
scale and the likelihood. Stages before the last always use :data:`GAUSSIAN` (pseudo-outcomes are
continuous).

Users still pass names (``family="gaussian"``); :func:`family_of` turns a name into its object.
A new family (e.g. a censored accelerated-failure-time model) plugs in by subclassing
:class:`Family` and adding an instance to ``FAMILIES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from bayesdtr.data.design import StageDesign
from bayesdtr.exceptions import SpecificationError
from bayesdtr.models.priors import NIGHyper, StagePriors, column_scales, nig_hyper

__all__ = ["FAMILIES", "GAUSSIAN", "Bernoulli", "Family", "Gaussian", "family_of", "prior_or"]


def prior_or(priors: StagePriors, name: str, dims: tuple[str, ...], default):
    """The user's prior ``name`` as a PyMC variable with ``dims``, or ``default()`` without one."""
    user = priors.get(name)
    if user is None:
        return default()
    p = user.deepcopy() if hasattr(user, "deepcopy") else user
    p.dims = dims
    return p.create_variable(name)


class Family(ABC):
    """An outcome family: what the engines, propagation and the PyMC model need to know.

    Attributes
    ----------
    name : str
        The name users pass (``family=``) and files store.
    closed_form : bool
        Whether the closed-form engines (conjugate NIG, robust dWOLS, OLS) apply: linear
        Gaussian stages only.
    has_sigma : bool
        Whether the stage has a residual SD ``sigma`` (stored in the draws and files).
    """

    name: ClassVar[str]
    closed_form: ClassVar[bool] = False
    has_sigma: ClassVar[bool] = False

    @abstractmethod
    def response(self, lin: np.ndarray) -> np.ndarray:
        """Q on the outcome scale from the linear predictor."""

    @abstractmethod
    def predictive(
        self, rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray | None
    ) -> np.ndarray:
        """One posterior-predictive outcome per entry of ``mean`` (S, n); ``sigma`` is (S,) or None."""

    def hyper(self, sd: StageDesign, g_obs: np.ndarray) -> NIGHyper | None:
        """Default conjugate prior hyperparameters of the stage, or None if the family has none."""
        return None

    @abstractmethod
    def prior_data(
        self, sd: StageDesign, W: np.ndarray, hyper: NIGHyper | None, target: np.ndarray
    ) -> dict[str, np.ndarray]:
        """``pm.Data`` values of the default priors and of the design (not of the target)."""

    @abstractmethod
    def target_data(self, W: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
        """``pm.Data`` values that a target vector sets (swapped between imputations)."""

    def group_scale(self, target_scale: float) -> float:
        """Scale of the default half-normal priors of group effects."""
        return 1.0

    def key(self, W: np.ndarray) -> tuple:
        """What the compiled model's structure depends on beyond the shared key."""
        return ()

    def scale(self, d: dict[str, Any], priors: StagePriors):
        """The residual scale inside the PyMC model (a variable, or 1.0)."""
        return 1.0

    @abstractmethod
    def likelihood(self, d: dict[str, Any], phi: Any, sigma: Any) -> None:
        """Add the likelihood of the target given location parameters ``phi`` to the model."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gaussian(Family):
    r"""Normal outcome, identity response; the likelihood is written by sufficient statistics."""

    name = "gaussian"
    closed_form = True
    has_sigma = True

    def response(self, lin: np.ndarray) -> np.ndarray:
        return lin

    def predictive(
        self, rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray | None
    ) -> np.ndarray:
        assert sigma is not None
        return mean + sigma[:, None] * rng.standard_normal(mean.shape)

    def hyper(self, sd: StageDesign, g_obs: np.ndarray) -> NIGHyper | None:
        return nig_hyper(sd.X_main, sd.X_contrast, sd.n_arms, g_obs)

    def prior_data(
        self, sd: StageDesign, W: np.ndarray, hyper: NIGHyper | None, target: np.ndarray
    ) -> dict[str, np.ndarray]:
        assert hyper is not None
        p_main, n_arms_c, p_con = sd.X_main.shape[1], sd.n_arms - 1, sd.X_contrast.shape[1]
        return {
            "beta_mu": hyper.m0[:p_main],
            "beta_tau": hyper.tau[:p_main],
            "psi_mu": hyper.m0[p_main:].reshape(n_arms_c, p_con),
            "psi_tau": hyper.tau[p_main:].reshape(n_arms_c, p_con),
            "sigma2_ab": np.array([hyper.a0, hyper.b0]),
            "WtW": W.T @ W,
            "n_obs": np.asarray(float(len(target))),
        }

    def target_data(self, W: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
        return {"Wty": W.T @ target, "yty": np.asarray(float(target @ target))}

    def group_scale(self, target_scale: float) -> float:
        return target_scale

    def scale(self, d: dict[str, Any], priors: StagePriors):
        import pymc as pm
        import pytensor.tensor as pt

        if priors.get("sigma") is None:
            sigma2 = pm.InverseGamma("sigma2", alpha=d["sigma2_ab"][0], beta=d["sigma2_ab"][1])
            return pm.Deterministic("sigma", pt.sqrt(sigma2))
        return prior_or(priors, "sigma", (), lambda: None)

    def likelihood(self, d: dict[str, Any], phi: Any, sigma: Any) -> None:
        import pymc as pm
        import pytensor.tensor as pt

        quad = d["yty"] - 2.0 * pt.dot(phi, d["Wty"]) + pt.dot(phi, pt.dot(d["WtW"], phi))
        pm.Potential("loglik", -d["n_obs"] * pt.log(sigma) - quad / (2.0 * sigma**2))


class Bernoulli(Family):
    r"""0/1 outcome, inverse-logit response, logistic default priors."""

    name = "bernoulli"

    def response(self, lin: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return expit(lin)

    def predictive(
        self, rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray | None
    ) -> np.ndarray:
        return (rng.random(mean.shape) < mean).astype(float)

    def prior_data(
        self, sd: StageDesign, W: np.ndarray, hyper: NIGHyper | None, target: np.ndarray
    ) -> dict[str, np.ndarray]:
        tau_m, const_m = column_scales(sd.X_main, 2.5)
        rate = float(np.clip(np.mean(target), 0.01, 0.99))
        return {
            "beta_mu": np.where(const_m, np.log(rate / (1 - rate)), 0.0),
            "beta_tau": tau_m,
            "psi_mu": np.zeros((sd.n_arms - 1, sd.X_contrast.shape[1])),
            "psi_tau": np.tile(column_scales(sd.X_contrast, 2.5)[0], (sd.n_arms - 1, 1)),
            "W": W,
        }

    def target_data(self, W: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
        return {"target": target.astype(np.int64)}

    def likelihood(self, d: dict[str, Any], phi: Any, sigma: Any) -> None:
        import pymc as pm
        import pytensor.tensor as pt

        pm.Bernoulli("y", logit_p=pt.dot(d["W"], phi), observed=d["target"])


GAUSSIAN = Gaussian()

#: Outcome families by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (GAUSSIAN, Bernoulli())}


def family_of(family: str | Family) -> Family:
    """The family object of a name (or the object itself).

    Raises
    ------
    SpecificationError
        If ``family`` is not the name of a family in ``FAMILIES``.

    Examples
    --------
    >>> family_of("bernoulli").response(np.array([0.0]))
    array([0.5])
    """
    if isinstance(family, Family):
        return family
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]
    names = [repr(n) for n in FAMILIES]
    allowed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    raise SpecificationError(f"family={family!r} is not supported; use {allowed}.")
