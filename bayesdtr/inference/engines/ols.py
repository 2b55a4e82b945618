r"""The least-squares stage engine of the frequentist baseline (:mod:`bayesdtr.baselines.qlearning`).

Without weights, the one "draw" is the ordinary least-squares fit of the stage's targets on the
observed-arm design (by a QR factorization), with classical standard errors in
``extras["se"]`` and the residual degrees of freedom in ``extras["df_resid"]``. With frequency
weights :math:`w^{(b)}` (B, n), draw b is bootstrap replicate b: the weighted least-squares fit
:math:`(X^\top W^{(b)} X)^{-1} X^\top W^{(b)} T^{(b)}` on the centred design, vectorized over a
chunk of replicates; ``stats["singular"]`` flags replicates whose design was singular or
numerically singular (the smallest eigenvalue of the weighted normal matrix below
``RANK_TOL`` times its largest; such replicates are solved by minimum-norm least squares, as
their coefficients are not identified). Used with ``propagation="mean"``, the induction is Q-learning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from scipy import linalg

from bayesdtr.data.design import DTRDesign
from bayesdtr.exceptions import FitError
from bayesdtr.inference.draws import StageDraws
from bayesdtr.models.families import family_of
from bayesdtr.models.priors import StagePriors

if TYPE_CHECKING:
    from bayesdtr.inference.backward import FitSettings, Induction

__all__ = ["OLSEngine", "RANK_TOL", "solve_batch"]

#: A replicate's weighted normal matrix is singular when its smallest eigenvalue is below
#: ``RANK_TOL`` times its largest (the design is centred, so the scale is comparable).
RANK_TOL = 1e-9


def solve_batch(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Solve A[i] x = b[i] for a batch; singular systems get the minimum-norm LS solution."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0], 0
    except np.linalg.LinAlgError:
        out = np.empty_like(b)
        bad = 0
        for i in range(A.shape[0]):
            try:
                out[i] = np.linalg.solve(A[i], b[i])
            except np.linalg.LinAlgError:
                out[i] = np.linalg.lstsq(A[i], b[i], rcond=None)[0]
                bad += 1
        return out, bad


#: theta (S, p), sigma (S,) or None, extras, stats
_Fit = tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray], dict[str, np.ndarray]]


class OLSEngine:
    """Ordinary least squares, or weighted least squares per bootstrap replicate.

    Parameters
    ----------
    weights : ndarray or None
        (B, n) frequency weights of the units, one row per replicate (the induction then has
        B draws); None for the single point fit.
    """

    name = "ols"

    def __init__(self, weights: np.ndarray | None = None) -> None:
        self.weights = weights

    def refusal(
        self,
        design: DTRDesign,
        settings: FitSettings | None = None,
        priors: Mapping[str, StagePriors] | None = None,
        k: int = 0,
    ) -> str | None:
        if not family_of(design.family).closed_form:
            return (
                f"The OLS Q-learning baseline supports only Gaussian outcomes; this model has "
                f"family={design.family!r}. Use DTRModel(..., family='gaussian') or the Bayesian fit."
            )
        if design.group is not None:
            return (
                f"group={design.group!r}: groups (random site effects) are not supported by the OLS "
                "Q-learning baseline. Build the DTRModel without group= for the baseline (or add the "
                "group as fixed effects in main=)."
            )
        return None

    def fit(self, induction: Induction, k: int) -> StageDraws:
        ind = induction
        last = k == ind.K - 1
        S = ind.settings.total
        if self.weights is None:
            theta, sigma, extras, stats = self._point(ind, k)
        else:
            theta, sigma, extras, stats = self._replicates(ind, k)
        return StageDraws(
            theta=theta,
            sigma=sigma,
            chains=ind.settings.chains,
            draws=ind.settings.draws,
            engine=self.name,
            extras=extras,
            stats=stats,
            ancestor=None if last else np.arange(S),
        )

    def _point(self, ind: Induction, k: int) -> _Fit:
        sd = ind.design.stages[k]
        T = ind.target_for_fit(k, None if k == ind.K - 1 else np.zeros(1, dtype=np.int64))[0]
        X = sd.X
        n_k, p = X.shape
        Qm, R = linalg.qr(X, mode="economic")
        diag = np.abs(np.diag(R))
        if n_k < p or np.any(diag <= 1e-10 * max(float(diag.max(initial=0.0)), 1.0)):
            names = list(sd.main_terms) + [f"{a}:{t}" for a in sd.arms[1:] for t in sd.contrast_terms]
            bad = [names[j] for j in np.flatnonzero(diag <= 1e-10 * max(float(diag.max(initial=0.0)), 1.0))]
            raise FitError(
                f"OLS Q-learning cannot fit stage {sd.treatment!r}: its design of {n_k} units and "
                f"{p} columns is rank-deficient (first dependent column(s): {bad[:3]}). With "
                "sample splitting this happens when a training chunk lacks a level or an arm of a "
                "term; use fewer folds, more units, or fewer terms (e.g. no per-group contrasts)."
            )
        theta = linalg.solve_triangular(R, Qm.T @ T)
        resid = T - X @ theta
        df_resid = n_k - p
        sigma2 = float(resid @ resid / df_resid) if df_resid > 0 else np.nan
        Rinv = linalg.solve_triangular(R, np.eye(p))
        se = np.sqrt(sigma2 * np.sum(Rinv**2, axis=1))
        extras = {"se": se[None, :], "df_resid": np.array([df_resid])}
        return theta[None, :], np.array([np.sqrt(sigma2)]), extras, {}

    def _replicates(self, ind: Induction, k: int) -> _Fit:
        assert self.weights is not None
        sd = ind.design.stages[k]
        last = k == ind.K - 1
        S = ind.settings.total
        Xc = sd.X_centered  # better conditioned normal equations
        n_k, p = Xc.shape
        XX = (Xc[:, :, None] * Xc[:, None, :]).reshape(n_k, p * p)
        theta = np.empty((S, p))
        singular = np.zeros(S, dtype=bool)
        step = ind.chunk_size(k)
        for start in range(0, S, step):
            idx = np.arange(start, min(S, start + step))
            wk = self.weights[idx][:, sd.units]
            A = (wk @ XX).reshape(len(idx), p, p)
            T = ind.target_for_fit(k, None if last else idx)
            rhs = wk @ (Xc * T[0][:, None]) if last else (wk * T) @ Xc
            th_c, _ = solve_batch(A, rhs)
            # a replicate may miss an arm, or a cell of a fixed-effect interaction, entirely:
            # its normal matrix is then (numerically) singular and np.linalg.solve may return
            # huge coefficients without raising. Flag it by its eigenvalues; minimum-norm solve.
            ev = np.linalg.eigvalsh(A)
            bad = ev[:, 0] <= RANK_TOL * np.maximum(ev[:, -1], np.finfo(float).tiny)
            if n_k > 0:
                used = wk > 0
                for j in range(1, sd.n_arms):
                    bad |= ~np.any(used & (sd.a == j)[None, :], axis=1)
            for i in np.flatnonzero(bad):
                th_c[i] = np.linalg.lstsq(A[i], rhs[i], rcond=RANK_TOL)[0]
            singular[idx] |= bad
            theta[idx] = sd.uncenter(th_c)
        return theta, None, {}, {"singular": singular}
