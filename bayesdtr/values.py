r"""Propensity-based values of a regime: IPW and AIPW, per posterior draw.

For a regime d and posterior draw s, let :math:`C_{k,i} = \prod_{j \le k} 1\{A_{j,i} = d_j^{(s)}(H_{j,i})\}`
(a stage a unit does not reach counts as followed), :math:`\bar\pi_{k,i} = \prod_{j \le k}
\pi_j^{(s)}(A_{j,i} \mid H_{j,i})`, and :math:`G_i` the observed return. With Bayesian-bootstrap
weights :math:`\omega^{(s)}` (mean 1),

.. math::

    \hat V_{\mathrm{IPW}}^{(s)} &= \frac{\sum_i \omega_i C_{K,i} G_i / \bar\pi_{K,i}}
                                   {\sum_i \omega_i C_{K,i} / \bar\pi_{K,i}}, \\
    \hat V_{\mathrm{AIPW}}^{(s)} &= \frac1n \sum_i \omega_i \Big[\frac{C_{K,i} G_i}{\bar\pi_{K,i}}
        + \sum_{k=1}^K \Big(\frac{C_{k-1,i}}{\bar\pi_{k-1,i}} - \frac{C_{k,i}}{\bar\pi_{k,i}}\Big)
          \mu_{k,i}^{(s)}\Big],

with :math:`\mu_k = \sum_{j<k} R_j + Q_k^{d,(s)}(H_k, d_k(H_k))` from the regime's own backward
induction (Zhang, Tsiatis, Laber and Davidian 2013). AIPW stays consistent if either the
propensity or the Q-models are right; its disagreement with ``method="q"`` is a diagnostic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesdtr.exceptions import FitError
from bayesdtr.inference.backward import Induction, propensity_for
from bayesdtr.inference.draws import PropensityDraws, select_arm

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = ["check_propensities", "pool", "unit_terms", "weighted_value"]


def weighted_value(post: DTRPosterior, ind: Induction, method: str, *, ess: np.ndarray | None = None) -> np.ndarray:
    r"""IPW or AIPW value draws (flat, one per posterior draw) of the regime of ``ind``.

    If ``ess`` (one entry per draw) is given, it receives the Kish effective sample size
    :math:`(\sum_i w_i)^2 / \sum_i w_i^2` of the weights :math:`w_i = \omega_i C_{K,i} / \bar\pi_{K,i}`.
    """
    check_propensities(post.design, post.propensities, method)
    out = np.empty(post.n_samples)
    for idx in post._bb_chunks():
        omega = post._bb_weights(idx)
        num, ratio = unit_terms(ind, post.propensities, idx, method)
        if ess is not None:
            w = omega * ratio
            sq = np.sum(w * w, axis=1)
            ess[idx] = np.where(sq > 0, np.sum(w, axis=1) ** 2 / np.where(sq > 0, sq, 1.0), 0.0)
        out[idx] = pool(omega, num, ratio if method == "ipw" else None)
    return out


def pool(omega: np.ndarray, num: np.ndarray, den: np.ndarray | None = None) -> np.ndarray:
    r"""Value draws from per-unit terms: :math:`\sum_i \omega_i num_i / \sum_i \omega_i den_i`
    (``den`` None: the weights themselves, i.e. a weighted mean; a unit with all-zero terms and
    weight 0 does not count)."""
    d = np.sum(omega * (1.0 if den is None else den), axis=1)
    if np.any(d == 0):
        raise FitError(
            "IPW value is undefined: no unit followed the regime in some posterior draws. "
            "Use method='aipw' or 'q'."
        )
    return np.sum(omega * num, axis=1) / d


def check_propensities(design, propensities: list[PropensityDraws | None], method: str) -> None:
    """Refuse a propensity-based method when a stage has no propensity model."""
    for sd, pr in zip(design.stages, propensities, strict=True):
        if pr is None:
            raise FitError(
                f"method={method!r} needs a propensity model at every stage; stage "
                f"{sd.treatment!r} has propensity=None. Declare one in bd.Stage(propensity=...)."
            )


def unit_terms(
    ind: Induction, propensities: list[PropensityDraws | None], idx: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-unit terms of the IPW/AIPW estimators for draws ``idx``: (len(idx), n) arrays.

    Returns ``num`` and ``ratio`` :math:`C_K / \bar\pi_K`. AIPW: ``num`` holds each unit's
    augmented inverse-probability-weighted return (the value is their weighted mean). IPW:
    ``num`` holds :math:`C_K G / \bar\pi_K` (Hajek: the value is the ratio of the weighted sums
    of ``num`` and ``ratio``). The Q-models
    are ``ind``'s fits and the units ``ind.design``'s, which may be a held-out fold.
    """
    design = ind.design
    n = design.n
    G = ind.observed_return()
    ratio = np.ones((len(idx), n))  # C_k / pibar_k, updated stage by stage
    aug = np.zeros((len(idx), n)) if method == "aipw" else None
    past_reward = np.zeros(n)
    stage_idx = idx
    for k, sd in enumerate(design.stages):
        cols = slice(None) if sd.n_units == n else sd.units
        q = ind.q_observed(k, stage_idx)
        d, qd = ind.decide(k, q, stage_idx)
        prop = propensity_for(propensities[k], sd, design, idx)
        before = ratio[:, cols]
        after = np.where(d == sd.a[None, :], before / select_arm(prop, sd.a), 0.0)
        if aug is not None:
            aug[:, cols] += (before - after) * (past_reward[cols][None, :] + qd)
        ratio[:, cols] = after
        past_reward = past_reward + sd.reward
        if k < ind.K - 1:
            stage_idx = ind.fits[k].ancestor[stage_idx]  # type: ignore[union-attr,index]
    if aug is not None:
        return ratio * G[None, :] + aug, ratio
    return ratio * G[None, :], ratio
