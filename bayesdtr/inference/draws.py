"""Containers of per-stage posterior draws and the Q-function they imply.

Draws are stored flat: draw ``s = chain * n_draws + draw``. Each stage before the last records,
for each of its draws, the ``ancestor``: the index of the later stage's draw whose pseudo-outcome
it was fitted to. Following ancestors recovers a coherent draw of every stage (the cut posterior).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bayesdtr.data.design import DTRDesign, StageDesign
from bayesdtr.exceptions import FitError
from bayesdtr.models.families import Family, family_of
from bayesdtr.models.propensity import propensity_probabilities

__all__ = [
    "QModel",
    "StageDraws",
    "PropensityDraws",
    "best_arm",
    "flatten_draws",
    "posterior_mean",
    "propensity_for",
    "q_arms",
    "q_linear",
    "q_response",
    "select_arm",
]


class QModel(Protocol):
    """A stage's Q-function that is not linear in coefficients (e.g. BART forests).

    It evaluates Q for draws ``idx`` on any design rows (the main-effect matrix of the stage's
    units or of new histories), arm first, and knows its posterior mean.
    """

    def q_arms(self, sd: StageDesign, idx: np.ndarray, X_main: np.ndarray) -> np.ndarray:
        """Q_k(h, a) for draws ``idx``: (n_arms, len(idx), n)."""
        ...

    def mean(self) -> QModel:
        """A one-draw model whose Q is the posterior mean of Q."""
        ...


@dataclass
class StageDraws:
    """Posterior draws of one stage's outcome model.

    A stage whose Q-function is not linear in coefficients (BART) has an empty ``theta``
    ((S, 0)) and its Q in ``q_model``; :func:`q_arms` asks it.
    """

    theta: np.ndarray  # (S, p) = [beta, psi_1, ..., psi_{m-1}]
    sigma: np.ndarray | None  # (S,) (None for a Bernoulli stage)
    chains: int
    draws: int
    engine: str  # "conjugate" | "mcmc" | "robust"
    family: str = "gaussian"
    group_intercept: np.ndarray | None = None  # (S, G)
    group_contrast: np.ndarray | None = None  # (S, G, m-1)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # (S, ...) other parameters
    ancestor: np.ndarray | None = None  # (S,) indices into the next stage's draws
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # (S,) sampler statistics
    compile_seconds: float = 0.0
    sample_seconds: float = 0.0
    n_fits: int = 0
    q_model: QModel | None = None

    @property
    def n(self) -> int:
        return self.theta.shape[0]


def posterior_mean(fit: StageDraws) -> StageDraws:
    """A one-draw StageDraws holding the posterior means of ``fit``'s location parameters.

    The linear predictor is linear in the parameters, so Q at the posterior means is the
    posterior mean of Q (on the probability scale of a Bernoulli stage, approximately).
    """

    def mean(x):
        return None if x is None else x.mean(axis=0, keepdims=True)

    return StageDraws(
        theta=mean(fit.theta),
        sigma=mean(fit.sigma),
        chains=1,
        draws=1,
        engine=fit.engine,
        family=fit.family,
        group_intercept=mean(fit.group_intercept),
        group_contrast=mean(fit.group_contrast),
        extras={k: mean(v) for k, v in fit.extras.items()},
        q_model=None if fit.q_model is None else fit.q_model.mean(),
    )


@dataclass
class PropensityDraws:
    """Posterior draws of one stage's propensity model, or its known probabilities."""

    known: np.ndarray | None = None  # (m,)
    gamma: np.ndarray | None = None  # (S, m-1, q)
    group_effect: np.ndarray | None = None  # (S, G, m-1)
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    chains: int = 0
    draws: int = 0
    compile_seconds: float = 0.0
    sample_seconds: float = 0.0


def q_arms(
    sd: StageDesign,
    dr: StageDraws,
    idx: np.ndarray,
    X_main: np.ndarray,
    X_contrast: np.ndarray,
    group_codes: np.ndarray | None,
    new_groups: np.random.SeedSequence | None = None,
) -> np.ndarray:
    """Linear predictor of Q_k(h, a) for draws ``idx``, arm first: (n_arms, len(idx), n).

    The arm-first layout keeps every arm's (draws, units) block contiguous, which makes the
    per-arm comparisons of :func:`best_arm` and :func:`select_arm` cheap. Negative
    ``group_codes`` mark groups unseen in the data (``-1 - key``, a stable key per label): with
    ``new_groups`` their effects are drawn from the group-level distribution, one effect per
    label and posterior draw, the same in every call (posterior predictive for a new group);
    without it they are 0, the mean of that distribution.
    """
    if dr.q_model is not None:
        return dr.q_model.q_arms(sd, idx, X_main)
    p_main = X_main.shape[1]
    p_con = X_contrast.shape[1]
    th = dr.theta[idx]
    out = np.empty((sd.n_arms, len(idx), X_main.shape[0]))
    base = out[0]
    np.matmul(th[:, :p_main], X_main.T, out=base)
    if dr.group_intercept is not None and group_codes is not None:
        base += _group_values(dr.group_intercept[idx], group_codes, dr.extras.get("group_sd"), idx, dr.n, new_groups, 0)
    for j in range(1, sd.n_arms):
        psi = th[:, p_main + (j - 1) * p_con : p_main + j * p_con]
        np.matmul(psi, X_contrast.T, out=out[j])
        out[j] += base
        if dr.group_contrast is not None and group_codes is not None:
            sdv = dr.extras.get("group_contrast_sd")
            sdv = None if sdv is None else sdv[:, j - 1]
            out[j] += _group_values(dr.group_contrast[idx, :, j - 1], group_codes, sdv, idx, dr.n, new_groups, j)
    return out


def q_linear(
    sd: StageDesign,
    dr: StageDraws,
    idx: np.ndarray,
    X_main: np.ndarray,
    X_contrast: np.ndarray,
    group_codes: np.ndarray | None,
    new_groups: np.random.SeedSequence | None = None,
) -> np.ndarray:
    """Linear predictor of Q_k(h, a) for draws ``idx``: (len(idx), n, n_arms)."""
    return np.moveaxis(q_arms(sd, dr, idx, X_main, X_contrast, group_codes, new_groups), 0, -1)


def best_arm(q: np.ndarray, feasible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feasible argmax of arm-first ``q`` (m, S, n) with ``feasible`` (n, m), ties to the first.

    Returns the arm codes (S, n) and the maximal Q (S, n). One comparison pass per arm: numpy's
    argmax along a short arm axis is about 5x slower (93 ms against 19 ms for 1,000 draws x
    10,000 units x 2 arms).

    >>> q = np.array([[[1.0, 3.0]], [[2.0, 1.0]], [[2.0, 5.0]]])
    >>> best_arm(q, np.array([[True, True, True], [True, True, False]]))[0]
    array([[1, 0]], dtype=int8)
    """
    m = q.shape[0]
    all_feasible = bool(np.all(feasible))
    best = q[0].copy() if all_feasible else np.where(feasible[:, 0], q[0], -np.inf)
    code = np.zeros(best.shape, dtype=np.int8)
    for j in range(1, m):
        qj = q[j] if all_feasible else np.where(feasible[:, j], q[j], -np.inf)
        np.copyto(code, np.int8(j), where=qj > best)
        np.maximum(best, qj, out=best)
    return code, best


def select_arm(q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Values of arm-first ``q`` (m, S, n) at arm ``codes`` ((S, n) or (n,)): (S, n)."""
    if q.shape[0] == 2:  # one pass
        return np.where(codes == 1, q[1], q[0])
    out = np.array(np.broadcast_to(q[0], q.shape[1:]))
    codes = np.broadcast_to(codes, q.shape[1:])
    for j in range(1, q.shape[0]):
        np.copyto(out, q[j], where=codes == j)
    return out


def _group_values(effects, codes, scale, idx, n_draws, seed, arm):
    known = codes >= 0
    vals = np.zeros((effects.shape[0], len(codes)))
    vals[:, known] = effects[:, codes[known]]
    if known.all() or seed is None:
        return vals  # no new group, or new groups at their mean effect 0
    for code in np.unique(codes[~known]):
        if scale is None:
            raise ValueError("new groups need the group-level SD draws")
        key = (*seed.spawn_key, int(-code - 1), arm)
        z = np.random.default_rng(np.random.SeedSequence(entropy=seed.entropy, spawn_key=key)).standard_normal(n_draws)
        vals[:, codes == code] = (z[idx] * scale[idx])[:, None]
    return vals


def q_response(lin: np.ndarray, family: str | Family) -> np.ndarray:
    """Q on the outcome scale: the family's response map (identity, inverse logit, ...)."""
    return family_of(family).response(lin)


def flatten_draws(arr: np.ndarray) -> np.ndarray:
    """(chains, draws, ...) -> (chains * draws, ...)."""
    return arr.reshape((arr.shape[0] * arr.shape[1],) + arr.shape[2:])


def propensity_for(
    pd_: PropensityDraws | None, sd: StageDesign, design: DTRDesign, idx: np.ndarray
) -> np.ndarray:
    """Propensities of the stage's units, arm first: (m, len(idx), n_k), or (m, 1, n_k) if known.

    Probabilities are renormalized over each unit's feasible set: a unit with a single feasible
    arm received it with probability 1 (e.g. responders who continue their treatment).
    """
    if pd_ is None:
        raise FitError(f"Stage {sd.treatment!r} has no propensity model; give propensity= in its bd.Stage.")
    if pd_.known is not None:
        prop = np.broadcast_to(pd_.known[:, None, None], (sd.n_arms, 1, sd.n_units))
    else:
        assert pd_.gamma is not None and sd.X_prop is not None
        g = design.groups_of(sd)
        ge = None if pd_.group_effect is None else pd_.group_effect[idx]
        prop = propensity_probabilities(pd_.gamma[idx], sd.X_prop, ge, g)
    if sd.feasible.all():
        return prop
    masked = prop * sd.feasible.T[:, None, :]
    return masked / masked.sum(axis=0, keepdims=True)
