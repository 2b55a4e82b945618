r"""PyMC propensity model of one stage: a (hierarchical) multinomial-logit regression.

For unit i with propensity design :math:`z_i` and group :math:`g_i`,

.. math::

    \Pr(A_i = a \mid H_i) = \frac{\exp \eta_{ia}}{\sum_{b \in F_i} \exp \eta_{ib}}
        \ (a \in F_i), \qquad
    \eta_{ia} = z_i^\top \gamma_a + w_{g_i, a}, \quad \eta_{i,\mathrm{ref}} = 0,

with :math:`\gamma_{a,j} \sim \mathrm{Normal}(0, 2.5/\mathrm{sd}(z_j))` (2.5 for the intercept)
and non-centred group intercepts :math:`w_{g,a} = s_w\, \zeta_{g,a}`. With two arms this is
logistic regression. :math:`F_i` is the unit's feasible set: infeasible arms have probability 0
(also for a :class:`~bayesdtr.KnownPropensity`, which is renormalized over each unit's feasible
set, so responders who continue their treatment have propensity 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from bayesdtr.data.design import StageDesign
from bayesdtr.models.families import prior_or
from bayesdtr.models.priors import StagePriors, column_scales

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["build_propensity_model", "propensity_probabilities"]


def build_propensity_model(
    sd: StageDesign,
    *,
    priors: StagePriors,
    group_codes: np.ndarray | None,
    n_groups: int,
) -> tuple[tuple, dict[str, np.ndarray], Callable[[], pm.Model]]:
    """Structure key, data and builder of stage ``sd``'s propensity model (needs a formula).

    All data (design, observed arms, prior locations and scales, group codes) are ``pm.Data``
    containers, so models with the same key share one compiled sampler.
    """
    assert sd.X_prop is not None
    Z = sd.X_prop
    n_c = sd.n_arms - 1
    tau, const = column_scales(Z, 2.5)
    counts = np.bincount(sd.a, minlength=sd.n_arms).astype(float)
    log_ratio = np.log(np.maximum(counts[1:], 0.5) / max(counts[0], 0.5))
    data = {
        "prop_Z": Z,
        "prop_a": sd.a.astype(np.int64),
        "prop_mu": np.where(const[None, :], log_ratio[:, None], 0.0),
        "prop_tau": np.tile(tau, (n_c, 1)),
    }
    if n_groups:
        assert group_codes is not None
        data["prop_group"] = group_codes.astype(np.int64)
    restricted = not sd.feasible.all()
    if restricted:
        # infeasible arms get a logit offset of log(1e-300): probability 0 up to rounding
        data["prop_offset"] = np.log(np.where(sd.feasible, 1.0, 1e-300))
    overrides = tuple(sorted((k, repr(v)) for k, v in priors.overrides.items() if k.startswith("propensity")))
    key = ("propensity", Z.shape[1], n_c, n_groups, restricted, overrides)

    def build() -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        coords = {"propensity_term": sd.prop_terms, "contrast_arm": [str(a) for a in sd.arms[1:]]}
        if n_groups:
            coords["group"] = [str(i) for i in range(n_groups)]
        with pm.Model(coords=coords) as model:
            d = {name: pm.Data(name, value) for name, value in data.items()}
            gamma = prior_or(
                priors,
                "propensity_coef",
                ("contrast_arm", "propensity_term"),
                lambda: pm.Normal(
                    "propensity_coef", mu=d["prop_mu"], sigma=d["prop_tau"], dims=("contrast_arm", "propensity_term")
                ),
            )
            eta = pt.dot(d["prop_Z"], gamma.T)  # (n, m-1)
            if n_groups:
                s_ = prior_or(priors, "propensity_group_sd", (), lambda: pm.HalfNormal("propensity_group_sd", sigma=1.0))
                zeta = pm.Normal("propensity_group_z", 0.0, 1.0, dims=("group", "contrast_arm"))
                w = pm.Deterministic("propensity_group", s_ * zeta, dims=("group", "contrast_arm"))
                eta = eta + w[d["prop_group"]]
            logits = pt.concatenate([pt.zeros((eta.shape[0], 1)), eta], axis=1)
            if restricted:
                logits = logits + d["prop_offset"]
            pm.Categorical("treatment", logit_p=logits, observed=d["prop_a"])
        return model

    return key, data, build


def propensity_probabilities(
    gamma: np.ndarray,
    Z: np.ndarray,
    group_effect: np.ndarray | None = None,
    group_codes: np.ndarray | None = None,
) -> np.ndarray:
    """P(A = a | H) for every draw, arm first: ``gamma`` (S, m-1, q), ``Z`` (n, q) -> (m, S, n).

    The softmax runs over a leading arm axis with one pass per arm (numpy reductions along a
    short trailing axis are several times slower).
    """
    S, m1, _ = gamma.shape
    eta = np.zeros((m1 + 1, S, Z.shape[0]))
    for j in range(m1):
        np.matmul(gamma[:, j, :], Z.T, out=eta[j + 1])
        if group_effect is not None and group_codes is not None:
            eta[j + 1] += group_effect[:, group_codes, j]
    top = eta[0].copy()
    for j in range(1, m1 + 1):
        np.maximum(top, eta[j], out=top)
    np.subtract(eta, top[None], out=eta)
    np.exp(eta, out=eta)
    total = eta[0].copy()
    for j in range(1, m1 + 1):
        total += eta[j]
    eta /= total[None]
    return eta
