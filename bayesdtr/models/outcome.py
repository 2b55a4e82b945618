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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayesdtr.data.design import StageDesign
from bayesdtr.models.families import Family, family_of, prior_or
from bayesdtr.models.priors import NIGHyper, StagePriors

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["OutcomeModel", "build_outcome_model", "group_design"]


@dataclass
class OutcomeModel:
    """A stage model's data and structure; the PyMC model is built only when not cached.

    Every data-dependent quantity (design cross-products, prior locations and scales) is a
    ``pm.Data`` container, so one compiled model serves every fit with the same structure
    (``key``): imputations, regimes, replicates of a simulation study.
    """

    family: Family
    key: tuple
    data: dict[str, np.ndarray]
    W: np.ndarray
    build: Callable[[], pm.Model]

    def data_for(self, target: np.ndarray) -> dict[str, np.ndarray]:
        """Values of all the model's data containers for a target vector."""
        return self.data | self.family.target_data(self.W, target)


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


def build_outcome_model(
    sd: StageDesign,
    target: np.ndarray,
    *,
    family: str | Family,
    priors: StagePriors,
    hyper: NIGHyper | None,
    group_codes: np.ndarray | None,
    n_groups: int,
    group_contrast: bool,
    target_scale: float,
) -> OutcomeModel:
    """Describe the PyMC model of stage ``sd``; ``.build()`` creates it with ``target`` as data.

    ``family`` (a name or a :class:`~bayesdtr.models.families.Family`) supplies the default
    priors' data, the target's data, the residual scale and the likelihood.
    """
    fam = family_of(family)
    n_arms_c = sd.n_arms - 1
    p_main = sd.X_main.shape[1]
    p_con = sd.X_contrast.shape[1]
    group_contrast = group_contrast and bool(n_groups)
    W = sd.X_centered
    if n_groups:
        assert group_codes is not None
        W = np.hstack([W, group_design(group_codes, sd.a, n_groups, sd.n_arms, group_contrast)])
    data = fam.prior_data(sd, W, hyper, target)
    if n_groups:
        data["group_scale"] = np.asarray(fam.group_scale(target_scale))
    # a user prior replaces the default one: its data would be unused, and a compiled model drops
    # unused data, so swapping it in later (nutpie's with_data) would fail
    unused = {"sigma": ("sigma2_ab",), "beta": ("beta_mu", "beta_tau"), "psi": ("psi_mu", "psi_tau")}
    for name, keys in unused.items():
        if priors.get(name) is not None:
            for k in keys:
                data.pop(k, None)
    overrides = tuple(sorted((k, repr(v)) for k, v in priors.overrides.items()))
    key = ("outcome", fam.name, W.shape[1], p_main, p_con, n_arms_c, n_groups, group_contrast, overrides)
    key += fam.key(W)
    om = OutcomeModel(family=fam, key=key, data=data, W=W, build=lambda: None)  # type: ignore[arg-type,return-value]
    init = om.data_for(target)

    def build() -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        coords = {
            "main_term": sd.main_terms,
            "contrast_term": sd.contrast_terms,
            "contrast_arm": [str(a) for a in sd.arms[1:]],
        }
        if n_groups:
            coords["group"] = [str(i) for i in range(n_groups)]
        with pm.Model(coords=coords) as model:
            d = {name: pm.Data(name, value) for name, value in init.items()}
            sigma = fam.scale(d, priors)

            # default priors scale with sigma (NIG); their data exist only when they are used
            beta = prior_or(
                priors,
                "beta",
                ("main_term",),
                lambda: pm.Normal("beta", mu=d["beta_mu"], sigma=sigma * d["beta_tau"], dims="main_term"),
            )
            psi = prior_or(
                priors,
                "psi",
                ("contrast_arm", "contrast_term"),
                lambda: pm.Normal(
                    "psi", mu=d["psi_mu"], sigma=sigma * d["psi_tau"], dims=("contrast_arm", "contrast_term")
                ),
            )
            phi = [beta, psi.reshape((-1,))]
            if n_groups:
                gscale = d["group_scale"]
                group_sd = prior_or(priors, "group_sd", (), lambda: pm.HalfNormal("group_sd", sigma=gscale))
                z = pm.Normal("group_z", 0.0, 1.0, dims="group")
                phi.append(pm.Deterministic("group_intercept", group_sd * z, dims="group"))
                if group_contrast:
                    gcsd = prior_or(
                        priors,
                        "group_contrast_sd",
                        ("contrast_arm",),
                        lambda: pm.HalfNormal("group_contrast_sd", sigma=gscale / 2, dims="contrast_arm"),
                    )
                    zc = pm.Normal("group_contrast_z", 0.0, 1.0, dims=("group", "contrast_arm"))
                    v = pm.Deterministic("group_contrast", zc * gcsd, dims=("group", "contrast_arm"))
                    phi.append(v.reshape((-1,)))
            phi_vec = pt.concatenate(phi)
            fam.likelihood(d, phi_vec, sigma)
        return model

    om.build = build
    return om
