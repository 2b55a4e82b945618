r"""PyMC outcome (Q-function) model of one stage.

For unit i at stage k with observed arm :math:`a_i` and group :math:`g_i`,

.. math::

    \mu_i = x_i^\top\beta_k + \sum_{a \ne \mathrm{ref}} 1\{a_i = a\}\, c_i^\top \psi_{k,a}
        + u_{g_i} + \sum_{a \ne \mathrm{ref}} 1\{a_i = a\}\, v_{g_i, a}

with non-centred group effects :math:`u_g = s_u z_g`, :math:`v_{g,a} = s_{v,a} z_{g,a}` (the
second only with ``group_contrast=True``). The target :math:`T_i` (the final outcome at the last
stage, a pseudo-outcome before) is :math:`\mathrm{Normal}(\mu_i, \sigma_k)` or, for a Bernoulli
final stage, :math:`\mathrm{Bernoulli}(\mathrm{logit}^{-1}\mu_i)`.

The Gaussian likelihood is written through its sufficient statistics. Since
:math:`\mu = W\phi` is linear in all location parameters :math:`\phi = (\beta, \psi, u, v)`,

.. math::

    \log p(T \mid \phi, \sigma) = -n \log\sigma
        - \frac{T^\top T - 2\phi^\top W^\top T + \phi^\top W^\top W \phi}{2\sigma^2} + C,

so one gradient costs :math:`O(P^2)` instead of :math:`O(nP)`, and swapping the pseudo-outcome
between imputations swaps only :math:`W^\top T` and :math:`T^\top T`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesdtr.data.design import StageDesign
from bayesdtr.models.priors import NIGHyper, StagePriors, column_scales

__all__ = ["OutcomeModel", "build_outcome_model", "group_design"]


@dataclass
class OutcomeModel:
    """A compiled-once PyMC stage model and how to swap its target."""

    model: pm.Model
    family: str
    W: np.ndarray | None  # full design for sufficient statistics (gaussian only)
    n_theta: int
    n_groups: int
    group_contrast: bool

    def data_for(self, target: np.ndarray) -> dict[str, np.ndarray]:
        """Values of the model's data containers for a new target vector."""
        if self.family == "gaussian":
            assert self.W is not None
            return {"Wty": self.W.T @ target, "yty": np.array(target @ target)}
        return {"target": target.astype(np.int64)}


def group_design(codes: np.ndarray, a: np.ndarray, n_groups: int, n_arms: int, contrast: bool) -> np.ndarray:
    """One-hot group columns, then group-by-arm columns (non-reference arms) if ``contrast``."""
    n = len(codes)
    G = np.zeros((n, n_groups))
    G[np.arange(n), codes] = 1.0
    if not contrast:
        return G
    GA = np.zeros((n, n_groups, n_arms - 1))
    nz = a > 0
    GA[np.flatnonzero(nz), codes[nz], a[nz] - 1] = 1.0
    return np.hstack([G, GA.reshape(n, -1)])


def _prior_or(priors: StagePriors, name: str, dims: tuple[str, ...], default):
    user = priors.get(name)
    if user is None:
        return default()
    p = user.deepcopy() if hasattr(user, "deepcopy") else user
    p.dims = dims
    return p.create_variable(name)


def build_outcome_model(
    sd: StageDesign,
    target: np.ndarray,
    *,
    family: str,
    priors: StagePriors,
    hyper: NIGHyper | None,
    group_codes: np.ndarray | None,
    n_groups: int,
    group_contrast: bool,
    target_scale: float,
) -> OutcomeModel:
    """Build the PyMC model of stage ``sd`` with ``target`` as (swappable) data."""
    arms_c = [str(a) for a in sd.arms[1:]]
    coords = {
        "main_term": sd.main_terms,
        "contrast_term": sd.contrast_terms,
        "contrast_arm": arms_c,
    }
    if n_groups:
        coords["group"] = [str(i) for i in range(n_groups)]
    X = sd.X_centered
    p_main = sd.X_main.shape[1]
    with pm.Model(coords=coords) as model:
        if family == "gaussian":
            assert hyper is not None
            if priors.get("sigma") is None:
                sigma2 = pm.InverseGamma("sigma2", alpha=hyper.a0, beta=hyper.b0)
                sigma = pm.Deterministic("sigma", pt.sqrt(sigma2))
            else:
                sigma = _prior_or(priors, "sigma", (), lambda: None)
            beta = _prior_or(
                priors,
                "beta",
                ("main_term",),
                lambda: pm.Normal("beta", mu=hyper.m0[:p_main], sigma=sigma * hyper.tau[:p_main], dims="main_term"),
            )
            psi_m0 = hyper.m0[p_main:].reshape(len(arms_c), -1)
            psi_tau = hyper.tau[p_main:].reshape(len(arms_c), -1)
            psi = _prior_or(
                priors,
                "psi",
                ("contrast_arm", "contrast_term"),
                lambda: pm.Normal("psi", mu=psi_m0, sigma=sigma * psi_tau, dims=("contrast_arm", "contrast_term")),
            )
        else:
            tau_m, const_m = column_scales(sd.X_main, 2.5)
            rate = float(np.clip(np.mean(target), 0.01, 0.99))
            m0 = np.where(const_m, np.log(rate / (1 - rate)), 0.0)
            tau_c, _ = column_scales(sd.X_contrast, 2.5)
            beta = _prior_or(
                priors, "beta", ("main_term",), lambda: pm.Normal("beta", mu=m0, sigma=tau_m, dims="main_term")
            )
            psi = _prior_or(
                priors,
                "psi",
                ("contrast_arm", "contrast_term"),
                lambda: pm.Normal(
                    "psi", mu=0.0, sigma=np.tile(tau_c, (len(arms_c), 1)), dims=("contrast_arm", "contrast_term")
                ),
            )
        phi = [beta, psi.reshape((-1,))]
        if n_groups:
            gsd_scale = target_scale if family == "gaussian" else 1.0
            group_sd = _prior_or(priors, "group_sd", (), lambda: pm.HalfNormal("group_sd", sigma=gsd_scale))
            z = pm.Normal("group_z", 0.0, 1.0, dims="group")
            u = pm.Deterministic("group_intercept", group_sd * z, dims="group")
            phi.append(u)
            if group_contrast:
                gcsd = _prior_or(
                    priors,
                    "group_contrast_sd",
                    ("contrast_arm",),
                    lambda: pm.HalfNormal("group_contrast_sd", sigma=gsd_scale / 2, dims="contrast_arm"),
                )
                zc = pm.Normal("group_contrast_z", 0.0, 1.0, dims=("group", "contrast_arm"))
                v = pm.Deterministic("group_contrast", zc * gcsd, dims=("group", "contrast_arm"))
                phi.append(v.reshape((-1,)))
        phi_vec = pt.concatenate(phi)
        W = X
        if n_groups:
            assert group_codes is not None
            W = np.hstack([X, group_design(group_codes, sd.a, n_groups, sd.n_arms, group_contrast)])
        if family == "gaussian":
            WtW = pt.constant(W.T @ W)
            Wty = pm.Data("Wty", W.T @ target)
            yty = pm.Data("yty", np.array(target @ target))
            n = len(target)
            quad = yty - 2.0 * pt.dot(phi_vec, Wty) + pt.dot(phi_vec, pt.dot(WtW, phi_vec))
            pm.Potential("loglik", -n * pt.log(sigma) - quad / (2.0 * sigma**2))
        else:
            y = pm.Data("target", target.astype(np.int64))
            mu = pt.dot(pt.constant(W), phi_vec)
            pm.Bernoulli("y", logit_p=mu, observed=y)
    return OutcomeModel(
        model=model,
        family=family,
        W=W if family == "gaussian" else None,
        n_theta=sd.n_coef,
        n_groups=n_groups,
        group_contrast=group_contrast and bool(n_groups),
    )
