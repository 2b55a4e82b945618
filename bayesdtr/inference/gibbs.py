r"""Blocked Gibbs sampler for conditionally conjugate Gaussian stages, vectorised over imputations.

The model is the default Gaussian stage model of :mod:`bayesdtr.models.outcome` with group
random intercepts (and, with ``group_contrast=True``, group-by-arm random contrasts):

.. math::

    T_i \sim N(w_i^\top \phi, \sigma^2), \quad
    \phi = (\beta, \psi, u, v), \quad
    \beta_j, \psi_j \sim N(m_j, \sigma^2 \tau_j^2), \quad
    \sigma^2 \sim \mathrm{InvGamma}(a_0, b_0),

    u_g \sim N(0, s_u^2), \quad s_u \sim \mathrm{HalfNormal}(c), \qquad
    v_{g,a} \sim N(0, s_{v,a}^2), \quad s_{v,a} \sim \mathrm{HalfNormal}(c/2).

One sweep updates, for every imputation and chain at once:

1. :math:`\phi \mid \sigma^2, s` — Gaussian with precision :math:`W^\top W/\sigma^2 + D` (one
   batched Cholesky factor);
2. :math:`\sigma^2 \mid \phi` — inverse-gamma with shape :math:`a_0 + (n + p)/2` and scale
   :math:`b_0 + (\lVert T - W\phi\rVert^2 + \sum_j (\phi_j - m_j)^2/\tau_j^2)/2` over the p
   fixed coefficients;
3. each group SD twice (ancillarity-sufficiency interweaving, Yu & Meng 2011, so the sampler
   mixes whether the data pin the group effects down or not):

   - centred: :math:`s^2 \mid u` by an independence Metropolis step whose proposal
     :math:`\mathrm{InvGamma}((G-1)/2, \sum_g u_g^2/2)` is exact up to the half-normal prior's
     factor :math:`\exp(-s^2/2c^2)`, which is the acceptance ratio;
   - non-centred: with :math:`z = u/s` held fixed, :math:`s \mid z, \text{rest}` is normal,
     truncated to :math:`s > 0`; then :math:`u = s z`.

Everything uses the sufficient statistics :math:`W^\top W`, :math:`W^\top T`, :math:`T^\top T`
that the NUTS model uses, so the two samplers target the same posterior
(``tests/test_gibbs.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["GibbsLayout", "gibbs_sample"]


@dataclass(frozen=True)
class GibbsLayout:
    """Where each block sits in the columns of W: ``p_main`` main terms, ``n_arms_c`` x
    ``p_con`` contrast terms, ``n_groups`` group intercepts, then (group-major) the
    ``n_groups`` x ``n_arms_c`` group contrasts if ``group_contrast``."""

    p_main: int
    p_con: int
    n_arms_c: int
    n_groups: int
    group_contrast: bool

    @property
    def p_fixed(self) -> int:
        return self.p_main + self.p_con * self.n_arms_c

    @property
    def n_cols(self) -> int:
        g = self.n_groups * (1 + (self.n_arms_c if self.group_contrast else 0))
        return self.p_fixed + g

    def scale_blocks(self) -> list[np.ndarray]:
        """Column indices of each group-SD block: intercepts, then one block per contrast arm."""
        if not self.n_groups:
            return []
        start = self.p_fixed
        out = [np.arange(start, start + self.n_groups)]
        if self.group_contrast:
            first = start + self.n_groups
            out += [
                first + np.arange(self.n_groups) * self.n_arms_c + a for a in range(self.n_arms_c)
            ]
        return out


def _truncated_normal_positive(
    mean: np.ndarray, sd: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draws of N(mean, sd^2) truncated to (0, inf), by the inverse CDF of the upper tail."""
    lower = np.clip(-mean / sd, -37.0, 37.0)
    tail = ndtr(-lower)  # P(X > 0) in standard units
    u = rng.random(mean.shape)
    x = -ndtri(np.clip(u * tail, 1e-300, 1.0))
    return np.maximum(mean + sd * x, 1e-12)


def gibbs_sample(
    data: dict[str, np.ndarray],
    Wty: np.ndarray,
    yty: np.ndarray,
    layout: GibbsLayout,
    *,
    draws: int,
    tune: int,
    chains: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Sample the stage posterior for M targets at once.

    Parameters
    ----------
    data : dict
        The stage model's data containers (``OutcomeModel.data``): ``WtW``, ``n_obs``,
        ``beta_mu``, ``beta_tau``, ``psi_mu``, ``psi_tau``, ``sigma2_ab`` and, with groups,
        ``group_scale``.
    Wty, yty : ndarray
        ``W^T T`` (M, P) and ``T^T T`` (M,) of the M targets (imputations).
    layout : GibbsLayout
    draws, tune, chains : int
        Kept draws and burn-in sweeps per chain and target.
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``beta`` (chains, M * draws, p_main), ``psi`` (chains, M * draws, arms - 1, p_con),
        ``sigma`` (chains, M * draws) and, with groups, ``group_intercept``, ``group_sd``,
        ``group_contrast``, ``group_contrast_sd``; target j's draws are ``j * draws ...``.
    """
    WtW = np.asarray(data["WtW"], dtype=float)
    Wty = np.atleast_2d(np.asarray(Wty, dtype=float))
    yty = np.atleast_1d(np.asarray(yty, dtype=float))
    M, P = Wty.shape
    B = M * chains
    pf = layout.p_fixed
    m0 = np.concatenate([np.ravel(data["beta_mu"]), np.ravel(data["psi_mu"])])
    tau = np.concatenate([np.ravel(data["beta_tau"]), np.ravel(data["psi_tau"])])
    a0, b0 = (float(x) for x in data["sigma2_ab"])
    n_obs = float(data["n_obs"])
    blocks = layout.scale_blocks()
    c = float(data["group_scale"]) if blocks else 1.0
    caps = [c] + [c / 2] * (len(blocks) - 1) if blocks else []
    # one row per (target, chain): chain-major within a target
    wty = np.repeat(Wty, chains, axis=0)
    tty = np.repeat(yty, chains)
    diag_wtw = np.diag(WtW)
    prior_mean = np.zeros(P)
    prior_mean[:pf] = m0

    sigma2 = (b0 / max(a0 - 1.0, 0.5)) * np.exp(0.5 * rng.standard_normal(B))
    s = [cap / 2 * np.exp(0.5 * rng.standard_normal(B)) for cap in caps]
    keep = {"phi": [], "sigma2": [], "s": []}
    idx = np.arange(P)
    for it in range(tune + draws):
        # 1. phi | sigma2, s
        d = np.empty((B, P))
        d[:, :pf] = 1.0 / (sigma2[:, None] * tau[None, :] ** 2)
        for cols, sj in zip(blocks, s, strict=True):
            d[:, cols] = 1.0 / sj[:, None] ** 2
        prec = WtW[None, :, :] / sigma2[:, None, None]
        prec[:, idx, idx] += d
        L = np.linalg.cholesky(prec)
        rhs = wty / sigma2[:, None] + d * prior_mean[None, :]
        y = np.linalg.solve(L, rhs[..., None])[..., 0]
        phi = np.linalg.solve(np.swapaxes(L, 1, 2), (y + rng.standard_normal((B, P)))[..., None])[
            ..., 0
        ]
        # 2. sigma2 | phi
        wtw_phi = phi @ WtW
        rss = tty - 2.0 * np.einsum("bp,bp->b", phi, wty) + np.einsum("bp,bp->b", phi, wtw_phi)
        pen = np.sum(((phi[:, :pf] - m0) / tau) ** 2, axis=1)
        shape = a0 + 0.5 * (n_obs + pf)
        scale = b0 + 0.5 * (np.maximum(rss, 0.0) + pen)
        sigma2 = scale / rng.gamma(shape, 1.0, size=B)
        # 3. group SDs: centred independence-MH step, then non-centred truncated-normal step
        for j, (cols, cap) in enumerate(zip(blocks, caps, strict=True)):
            u = phi[:, cols]
            G = len(cols)
            ss = 0.5 * np.sum(u * u, axis=1)
            prop = ss / rng.gamma(0.5 * (G - 1), 1.0, size=B)
            accept = np.log(rng.random(B)) < -(prop - s[j] ** 2) / (2 * cap**2)
            s_new = np.where(accept, np.sqrt(prop), s[j])
            z = u / s_new[:, None]
            # residual sums over each group's units, without this block's contribution
            resid = wty[:, cols] - (phi @ WtW[:, cols]) + diag_wtw[cols] * u
            prec_s = np.sum(diag_wtw[cols] * z * z, axis=1) / sigma2 + 1.0 / cap**2
            mean_s = (np.sum(z * resid, axis=1) / sigma2) / prec_s
            s[j] = _truncated_normal_positive(mean_s, 1.0 / np.sqrt(prec_s), rng)
            phi[:, cols] = s[j][:, None] * z
        if it >= tune:
            keep["phi"].append(phi.copy())
            keep["sigma2"].append(sigma2.copy())
            keep["s"].append(np.stack(s, axis=1) if s else np.zeros((B, 0)))

    def arrange(x: np.ndarray) -> np.ndarray:
        # (draws, M * chains, ...) -> (chains, M * draws, ...), target j's draws in block j
        x = x.reshape((draws, M, chains) + x.shape[2:])
        x = np.moveaxis(x, 2, 0)  # (chains, draws, M, ...)
        x = np.swapaxes(x, 1, 2)  # (chains, M, draws, ...)
        return x.reshape((chains, M * draws) + x.shape[3:])

    phi_all = arrange(np.stack(keep["phi"]))
    out = {
        "beta": phi_all[..., : layout.p_main],
        "psi": phi_all[..., layout.p_main : pf].reshape(
            chains, M * draws, layout.n_arms_c, layout.p_con
        ),
        "sigma": np.sqrt(arrange(np.stack(keep["sigma2"]))),
    }
    if blocks:
        s_all = arrange(np.stack(keep["s"]))
        g0 = pf + layout.n_groups
        out["group_intercept"] = phi_all[..., pf:g0]
        out["group_sd"] = s_all[..., 0]
        if layout.group_contrast:
            out["group_contrast"] = phi_all[..., g0:].reshape(
                chains, M * draws, layout.n_groups, layout.n_arms_c
            )
            out["group_contrast_sd"] = s_all[..., 1:]
    return out
