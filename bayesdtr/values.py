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

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesdtr.cluster import map_blocks
from bayesdtr.exceptions import FitError
from bayesdtr.inference.backward import Induction, propensity_for
from bayesdtr.inference.draws import PropensityDraws, select_arm

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = ["BootstrapWeights", "check_propensities", "pool", "q_value", "unit_terms", "weighted_value"]

#: Weights generated per block of draws, at most (fewer draws per block for many units).
BLOCK_WEIGHTS = 4_000_000


class BootstrapWeights:
    r"""The Bayesian-bootstrap weights of a posterior: Dirichlet(1, ..., 1) times n, per draw.

    Draw s gives unit i the weight :math:`\omega_i^{(s)} = E_i / \bar E` with
    :math:`E_i` standard exponential (so the weights have mean 1). They are generated in fixed
    blocks of draws, each block from its own child of the posterior's seed, so every regime,
    method and fold sees the same weights for the same draw (a joint posterior over regimes),
    whatever chunk of draws asks for them.

    Parameters
    ----------
    seed : numpy.random.SeedSequence
        The posterior's seed (only its entropy is used).
    n_units : int
        Number of units weighted.
    n_samples : int
        Number of posterior draws (chains x draws).

    Examples
    --------
    >>> import numpy as np
    >>> bb = BootstrapWeights(np.random.SeedSequence(1), n_units=5, n_samples=3)
    >>> w = bb.weights(np.arange(3))
    >>> w.shape, bool(np.allclose(w.mean(axis=1), 1.0))
    ((3, 5), True)
    >>> [c.tolist() for c in bb.chunks()]
    [[0, 1, 2]]
    """

    def __init__(self, seed: np.random.SeedSequence, n_units: int, n_samples: int) -> None:
        self.entropy = seed.entropy
        self.n_units = int(n_units)
        self.n_samples = int(n_samples)
        #: Draws per block (about 4e6 weights a block, at most 256 draws).
        self.block = int(max(1, min(256, BLOCK_WEIGHTS // max(1, self.n_units))))

    def chunks(self) -> Iterator[np.ndarray]:
        """Chunks of draw indices aligned with the blocks (each chunk one block)."""
        for start in range(0, self.n_samples, self.block):
            yield np.arange(start, min(self.n_samples, start + self.block))

    def weights(self, idx: np.ndarray) -> np.ndarray:
        """Weights (float32, mean 1 per draw) of the units for draws ``idx``: (len(idx), n_units)."""
        n, size = self.n_units, self.block
        out = np.empty((len(idx), n), dtype=np.float32)
        blocks = idx // size
        for b in np.unique(blocks):
            rng = np.random.default_rng(np.random.SeedSequence(entropy=self.entropy, spawn_key=(7, int(b))))
            w = rng.standard_exponential(size=(size, n), dtype=np.float32)
            rows = blocks == b
            out[rows] = w[idx[rows] % size]
        out /= out.mean(axis=1, keepdims=True)
        return out


def q_value(weights: BootstrapWeights, ind: Induction, client: Any = None) -> np.ndarray:
    r"""Value draws by the Q-functions (flat, one per draw): :math:`\frac1n \sum_i \omega_i^{(s)}
    Q_1^{d,(s)}(H_i, d_1(H_i))`, the regime of ``ind`` followed by its own backward induction.

    ``client``: where the blocks of draws run (:func:`bayesdtr.cluster.map_blocks`; None: here).
    """
    blocks = list(weights.chunks())
    with ind.read_only(client is not None):
        parts = map_blocks(_q_block, blocks, (weights, ind), client)
    out = np.empty(weights.n_samples)
    for idx, vals in zip(blocks, parts, strict=True):
        out[idx] = vals
    return out


def _q_block(idx: np.ndarray, shared: tuple[BootstrapWeights, Induction]) -> np.ndarray:
    """The q value draws of one block of draws ``idx`` (a task of :func:`q_value`)."""
    weights, ind = shared
    w = weights.weights(idx)
    out = np.empty(len(idx))
    for part in _parts(len(idx), ind.chunk_size(0)):
        out[part] = np.sum(w[part] * ind.stage1_values(idx[part]), axis=1) / weights.n_units
    return out


def _parts(length: int, step: int) -> Iterator[slice]:
    """Slices of at most ``step`` positions covering ``range(length)`` (memory chunks within a
    block of draws; every value draw is a sum over units, so the split changes no result)."""
    for start in range(0, length, step):
        yield slice(start, min(length, start + step))


def weighted_value(
    post: DTRPosterior,
    ind: Induction,
    method: str,
    *,
    ess: np.ndarray | None = None,
    client: Any = None,
) -> np.ndarray:
    r"""IPW or AIPW value draws (flat, one per posterior draw) of the regime of ``ind``.

    If ``ess`` (one entry per draw) is given, it receives the Kish effective sample size
    :math:`(\sum_i w_i)^2 / \sum_i w_i^2` of the weights :math:`w_i = \omega_i C_{K,i} / \bar\pi_{K,i}`.
    ``client``: where the blocks of draws run (:func:`bayesdtr.cluster.map_blocks`; None: here).
    """
    check_propensities(post.design, post.propensities, method)
    blocks = list(post.bootstrap.chunks())
    with ind.read_only(client is not None):
        parts = map_blocks(_weighted_block, blocks, (post.bootstrap, post.propensities, ind, method), client)
    out = np.empty(post.n_samples)
    for block, (vals, block_ess) in zip(blocks, parts, strict=True):
        out[block] = vals
        if ess is not None:
            ess[block] = block_ess
    return out


def _weighted_block(block: np.ndarray, shared: tuple) -> tuple[np.ndarray, np.ndarray]:
    """IPW/AIPW value draws and weight ESS of one block of draws (a task of :func:`weighted_value`)."""
    bootstrap, propensities, ind, method = shared
    vals = np.empty(len(block))
    ess = np.empty(len(block))
    step = max(1, ind.chunk_size(0) // 2)  # unit_terms holds about twice the arrays of a Q pass
    weights = bootstrap.weights(block)
    for part in _parts(len(block), step):
        idx, omega = block[part], weights[part]
        num, ratio = unit_terms(ind, propensities, idx, method)
        w = omega * ratio
        sq = np.sum(w * w, axis=1)
        ess[part] = np.where(sq > 0, np.sum(w, axis=1) ** 2 / np.where(sq > 0, sq, 1.0), 0.0)
        den = ratio if method == "ipw" else None
        if den is None and ind.design.ipcw is not None:  # dropout: a weighted mean of the AIPW terms
            den = ind.design.ipcw.value_weights(idx)
        vals[part] = pool(omega, num, den)
    return vals, ess


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

    With dropout (``design.ipcw``, :mod:`bayesdtr.inference.dropout`) both are multiplied by
    each unit's inverse-probability-of-censoring weight :math:`W^{(s)}` (0 for a unit that
    dropped out), and AIPW is pooled as the :math:`W`-weighted mean.

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
    num = ratio * G[None, :] if aug is None else ratio * G[None, :] + aug
    if design.ipcw is not None:
        cw = design.ipcw.value_weights(idx)
        return cw * num, cw * ratio
    return num, ratio
