r"""Closed-form stage posteriors, vectorized over pseudo-outcome draws.

**Normal-Inverse-Gamma (exact).** With the default conjugate prior of a Gaussian stage
(:mod:`bayesdtr.models.priors`), :math:`\Lambda_0 = \mathrm{diag}(\tau^{-2})`, and a target
vector :math:`T^{(s)}`,

.. math::

    \Lambda_n &= X^\top X + \Lambda_0, \quad
    m_n^{(s)} = \Lambda_n^{-1}(X^\top T^{(s)} + \Lambda_0 m_0), \\
    a_n &= a_0 + n/2, \quad
    b_n^{(s)} = b_0 + \tfrac12\big(T^{(s)\top}T^{(s)} + m_0^\top\Lambda_0 m_0
        - m_n^{(s)\top}\Lambda_n m_n^{(s)}\big), \\
    \sigma^{2(s)} &\sim \mathrm{InvGamma}(a_n, b_n^{(s)}), \quad
    \theta^{(s)} \sim \mathrm{Normal}(m_n^{(s)}, \sigma^{2(s)}\Lambda_n^{-1}).

One Cholesky factor of :math:`\Lambda_n` serves every draw; :math:`X^\top T` for all draws is
one matrix product.

**Weighted Bayesian bootstrap of dWOLS (robust contrasts).** For each draw s, with propensity
draw :math:`\pi^{(s)}` and Dirichlet(1, ..., 1) weights :math:`\omega^{(s)}` (Rubin 1981),

.. math::

    \theta^{(s)} = \arg\min_\theta \sum_i \omega_i^{(s)} w_i^{(s)} (T_i^{(s)} - x_i^\top\theta)^2,
    \qquad w_i = \frac{1/\pi_{a_i}(H_i)}{\sum_b 1/\pi_b(H_i)},

the overlap weights that reduce to :math:`|A - \pi(H)|` with two arms (Wallace and Moodie 2015).
The contrasts are consistent when either the main-effect model or the propensity model is
correct; the Bayesian bootstrap carries the sampling uncertainty, the propensity draws carry the
propensity model's.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from bayesdtr.inference.draws import select_arm
from bayesdtr.models.priors import NIGHyper

__all__ = ["nig_draws", "nig_factor", "nig_from_stats", "nig_stats", "robust_draws", "overlap_weights"]


def nig_draws(
    X: np.ndarray,
    T: np.ndarray,
    hyper: NIGHyper,
    rng: np.random.Generator,
    *,
    n_draws: int | None = None,
    chol: tuple[np.ndarray, bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One exact NIG posterior draw per row of ``T`` (or ``n_draws`` draws for a single row).

    Parameters
    ----------
    X : (n, p) design
    T : (S, n) target vectors, or (1, n) with ``n_draws``
    hyper : prior hyperparameters
    rng : generator
    chol : the Cholesky factor of Lambda_n from :func:`nig_factor`, if already computed

    Returns
    -------
    theta : (S, p)
    sigma : (S,)
    """
    XtT, tt = nig_stats(X, T)
    factor = nig_factor(X, hyper) if chol is None else chol
    return nig_from_stats(X.shape[0], XtT, tt, hyper, rng, factor, n_draws=n_draws)


def nig_factor(X: np.ndarray, hyper: NIGHyper) -> tuple[np.ndarray, bool]:
    r"""Cholesky factor (scipy ``cho_factor`` form) of :math:`\Lambda_n = X^\top X + \Lambda_0`,
    the same for every draw of a stage."""
    return linalg.cho_factor(X.T @ X + np.diag(1.0 / hyper.tau**2), lower=True)


def nig_stats(X: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The sufficient statistics of targets ``T`` (S, n): :math:`X^\top T` (S, p) and
    :math:`T^\top T` (S,).

    Both are sums over units, so they can be accumulated over chunks of units (or computed for
    chunks of draws) without holding a (draws x units) array.
    """
    return T @ X, np.einsum("sn,sn->s", T, T)


def nig_from_stats(
    n: int,
    XtT: np.ndarray,
    tt: np.ndarray,
    hyper: NIGHyper,
    rng: np.random.Generator,
    chol: tuple[np.ndarray, bool],
    *,
    n_draws: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One exact NIG draw per row of the sufficient statistics (see :func:`nig_stats`), or
    ``n_draws`` draws for a single row.

    ``n`` is the number of units; ``chol`` the factor from :func:`nig_factor`. Returns
    ``theta`` (S, p) and ``sigma`` (S,).
    """
    lam0 = 1.0 / hyper.tau**2
    rhs = XtT + lam0 * hyper.m0  # (S, p)
    m_n = linalg.cho_solve(chol, rhs.T).T
    S = n_draws if n_draws is not None else XtT.shape[0]
    if XtT.shape[0] == 1 and S > 1:
        m_n = np.repeat(m_n, S, axis=0)
        rhs = np.repeat(rhs, S, axis=0)
        tt = np.repeat(tt, S)
    p = XtT.shape[1]
    a_n = hyper.a0 + n / 2.0
    b_n = hyper.b0 + 0.5 * (tt + np.sum(lam0 * hyper.m0**2) - np.einsum("sp,sp->s", m_n, rhs))
    b_n = np.maximum(b_n, 1e-300)
    sigma2 = b_n / rng.gamma(a_n, 1.0, size=S)
    z = rng.standard_normal((S, p))
    L = chol[0]
    # theta = m_n + sigma * L^{-T} z, since Lam_n = L L^T and cov = Lam_n^{-1}
    noise = linalg.solve_triangular(L, z.T, lower=True, trans="T").T
    theta = m_n + np.sqrt(sigma2)[:, None] * noise
    return theta, np.sqrt(sigma2)


def overlap_weights(prop: np.ndarray, a: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """Overlap weights ``(1/pi_a) / sum_b (1/pi_b)`` over feasible arms: (m, S, n) -> (S, n).

    A unit with a single feasible arm carries no information about contrasts and gets weight 0.
    """
    inv = 1.0 / np.clip(prop, 1e-12, None)
    if feasible is not None and not feasible.all():
        inv = np.where(feasible.T[:, None, :], inv, 0.0)
    w = select_arm(inv, a) / inv.sum(axis=0)
    if feasible is not None:
        w = np.where(feasible.sum(axis=1) >= 2, w, 0.0)
    return w


def robust_draws(
    X: np.ndarray,
    T: np.ndarray,
    a: np.ndarray,
    prop: np.ndarray,
    rng: np.random.Generator,
    *,
    feasible: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted-Bayesian-bootstrap dWOLS draws, one per row of ``T``.

    Parameters
    ----------
    X : (n, p) design of observed arms
    T : (S, n) targets
    a : (n,) observed arm codes
    prop : (m, S, n) propensity draws, arm first, or (m, 1, n) when known
    feasible : (n, m) feasible arms, or None for all

    Returns
    -------
    theta : (S, p)
    sigma : (S,) Bayesian-bootstrap residual SD
    """
    S, n = T.shape
    omega = rng.exponential(1.0, size=(S, n))
    omega /= omega.mean(axis=1, keepdims=True)
    w = overlap_weights(prop, a, feasible)
    wt = omega * w
    XW = X[None, :, :] * wt[:, :, None]  # (S, n, p)
    A = np.matmul(XW.transpose(0, 2, 1), X[None, :, :])  # (S, p, p)
    b = np.einsum("snp,sn->sp", XW, T)
    theta = np.linalg.solve(A, b[..., None])[..., 0]
    resid = T - theta @ X.T
    sigma = np.sqrt(np.sum(omega * resid**2, axis=1) / np.sum(omega, axis=1))
    return theta, sigma
