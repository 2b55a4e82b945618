"""Closed-form stage engines: exact conjugate NIG draws and the robust weighted Bayesian bootstrap.

Both draw one stage-k draw per stage-(k+1) draw (the ancestor is the identity), vectorized over
chunks of draws (:mod:`bayesdtr.inference.conjugate` holds the formulas). They apply to linear
Gaussian stages without group effects (:func:`~bayesdtr.inference.engines.base.closed_form_reasons`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from bayesdtr.data.design import DTRDesign
from bayesdtr.inference.conjugate import (
    nig_draws,
    nig_factor,
    nig_from_stats,
    nig_stats,
    robust_draws,
)
from bayesdtr.inference.draws import StageDraws, propensity_for
from bayesdtr.inference.engines.base import closed_form_reasons
from bayesdtr.models.families import family_of
from bayesdtr.models.priors import OUTCOME_PRIORS, StagePriors, nig_hyper

if TYPE_CHECKING:
    from bayesdtr.inference.backward import FitSettings, Induction

__all__ = ["ClosedFormEngine", "ConjugateEngine", "RobustEngine"]


class ClosedFormEngine(ABC):
    """One closed-form draw per later-stage draw, in chunks; subclasses give ``draw``."""

    name = ""

    def setup(self, ind: Induction, k: int) -> object:
        """What every chunk of stage ``k`` shares (e.g. prior hyperparameters)."""
        return None

    @abstractmethod
    def draw(
        self,
        ind: Induction,
        k: int,
        shared: object,
        T: np.ndarray,
        idx: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Centred coefficient draws (len(idx), p) and sigma draws (len(idx),) for targets ``T``.

        ``T`` is (len(idx), n_k), or (1, n_k) at the last stage (the same target for every draw);
        ``shared`` is what :meth:`setup` returned.
        """

    def draw_block(
        self, ind: Induction, k: int, shared: object, idx: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Centred draws for the block of draws ``idx`` (the targets, then :meth:`draw`)."""
        T = ind.target_for_fit(k, None if k == ind.K - 1 else idx)
        return self.draw(ind, k, shared, T, idx, rng)

    def fit(self, ind: Induction, k: int) -> StageDraws:
        sd = ind.design.stages[k]
        S = ind.settings.total
        rng = ind.rngs[k]
        theta_c = np.empty((S, sd.n_coef))
        sigma = np.empty(S)
        last = k == ind.K - 1
        shared = self.setup(ind, k)
        # random numbers are drawn in fixed blocks (Induction.block_size), whatever the memory
        # setting, so that the chunk size never changes a posterior
        step = ind.block_size(k)
        for start in range(0, S, step):
            idx = np.arange(start, min(S, start + step))
            theta_c[idx], sigma[idx] = self.draw_block(ind, k, shared, idx, rng)
        return StageDraws(
            theta=sd.uncenter(theta_c),
            sigma=sigma,
            chains=ind.settings.chains,
            draws=ind.settings.draws,
            engine=self.name,
            ancestor=None if last else np.arange(S),
        )


class ConjugateEngine(ClosedFormEngine):
    """Exact Normal-Inverse-Gamma draws (default priors, linear Gaussian, no groups)."""

    name = "conjugate"

    def refusal(
        self, design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors], k: int
    ) -> str | None:
        reasons = closed_form_reasons(design, priors, k)
        if not reasons:
            return None
        return (
            f"engine='conjugate' is exact only for linear Gaussian stages without groups "
            f"and with default priors; stage {design.stages[k].treatment!r} is not: {'; '.join(reasons)}. "
            "Use engine='auto' or 'mcmc'."
        )

    def setup(self, ind: Induction, k: int) -> object:
        sd = ind.design.stages[k]
        X = sd.X_centered
        w = None if ind.design.ipcw is None else ind.design.ipcw.q_weights(k)
        if w is None:
            hyper = nig_hyper(sd.X_main, sd.X_contrast, sd.n_arms, ind.observed_return()[sd.units])
            return X, hyper, nig_factor(X, hyper), None, X.shape[0]  # one Cholesky factor serves every draw
        # dropout later (bayesdtr.inference.dropout): the NIG posterior of T ~ N(x'theta, sigma^2 / w)
        # over the units that remained, w normalized to mean 1 there; rows scaled by sqrt(w)
        keep = w > 0
        sw = np.sqrt(w / w[keep].mean())
        hyper = nig_hyper(sd.X_main[keep], sd.X_contrast[keep], sd.n_arms, ind.observed_return()[sd.units][keep])
        Xw = X * sw[:, None]
        return Xw, hyper, nig_factor(Xw, hyper), sw, int(keep.sum())

    def draw(
        self,
        ind: Induction,
        k: int,
        shared: object,
        T: np.ndarray,
        idx: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        X, hyper, chol, sw, n_fit = shared  # type: ignore[misc]
        if sw is None:
            return nig_draws(X, T, hyper, rng, n_draws=len(idx) if k == ind.K - 1 else None, chol=chol)
        XtT, tt = nig_stats(X, T * sw[None, :])
        return nig_from_stats(n_fit, XtT, tt, hyper, rng, chol, n_draws=len(idx) if k == ind.K - 1 else None)

    def draw_block(
        self, ind: Induction, k: int, shared: object, idx: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The targets enter only through X'T and T'T, accumulated over chunks of draws of at
        most ``settings.max_chunk_elements`` (draws x units) elements."""
        if k == ind.K - 1:
            return super().draw_block(ind, k, shared, idx, rng)
        X, hyper, chol, sw, n_fit = shared  # type: ignore[misc]
        XtT = np.empty((len(idx), X.shape[1]))
        tt = np.empty(len(idx))
        step = ind.chunk_size(k)
        for start in range(0, len(idx), step):
            part = slice(start, min(len(idx), start + step))
            T = ind.target_for_fit(k, idx[part])
            XtT[part], tt[part] = nig_stats(X, T if sw is None else T * sw[None, :])
        return nig_from_stats(n_fit, XtT, tt, hyper, rng, chol)


class RobustEngine(ClosedFormEngine):
    """dWOLS by a weighted Bayesian bootstrap over propensity draws (``robust=True``)."""

    name = "robust"

    def refusal(
        self, design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors], k: int
    ) -> str | None:
        sd = design.stages[k]
        last = k == len(design.stages) - 1
        outcome_priors = sorted(
            name for name in priors[sd.treatment].overrides if name in OUTCOME_PRIORS
        )
        if outcome_priors:
            return (
                f"robust=True uses no outcome priors (dWOLS by weighted Bayesian bootstrap), "
                f"but priors were given for stage {sd.treatment!r}: {outcome_priors}. Drop "
                "them or use robust=False."
            )
        if design.group is not None or design.event is not None or (last and not family_of(design.family).closed_form):
            return (
                f"robust=True (dWOLS by weighted Bayesian bootstrap) needs Gaussian stages "
                f"without group effects; stage {sd.treatment!r} has: "
                f"{'; '.join(closed_form_reasons(design, priors, k))}. Use robust=False."
            )
        if sd.stage.propensity is None:
            return (
                f"robust=True needs a propensity model at every stage; stage "
                f"{sd.treatment!r} has propensity=None. Give a formula (e.g. propensity='x1') "
                "or bd.KnownPropensity({...}) for a randomized stage."
            )
        return None

    def setup(self, ind: Induction, k: int) -> object:
        return ind.design.stages[k].X_centered

    def draw(
        self,
        ind: Induction,
        k: int,
        shared: object,
        T: np.ndarray,
        idx: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        sd = ind.design.stages[k]
        if k == ind.K - 1:
            T = np.broadcast_to(T, (len(idx), T.shape[1]))
        prop = propensity_for(ind.propensities[k], sd, ind.design, idx)
        return robust_draws(shared, T, sd.a, prop, rng, feasible=sd.feasible)
