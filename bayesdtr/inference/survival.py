r"""Backward induction for a right-censored survival outcome (log-time AFT stages).

Notation (:mod:`bayesdtr.data.survival`): :math:`T_i` the total time from the first decision,
:math:`\delta_i` its event indicator, :math:`R_{k,i}` the time from stage k's decision to stage
k+1's, :math:`E_{k,i} = \sum_{j<k} R_{j,i}` the time of stage k's decision.

**Targets.** Stage k is a censored AFT regression (:mod:`bayesdtr.models.survival`) of a log
time left :math:`L_{k,i}` on :math:`(H_k, A_k)`, censored where :math:`\delta_i = 0`:

- last stage K: :math:`L_{K,i} = \log(T_i - E_{K,i})`;
- stage k < K, for posterior draw s of stage k+1: a unit that reaches stage k+1 has
  :math:`L_{k,i}^{(s)} = \log\big(R_{k,i} + \exp\{L_{k+1,i}^{(s')} + Q_{k+1}^{(s)}(H, d) -
  Q_{k+1}^{(s)}(H, A_{k+1})\}\big)` (s' its own ancestor draw); a unit that does not reach it
  has :math:`L_{k,i} = \log(T_i - E_{k,i})`.

Under an AFT model, a unit's time left under arm d is its observed time left times
:math:`e^{Q(d) - Q(A)}` (the residual is shared), and a censored time stays a lower bound after
that shift, so the stage-k target is censored exactly when :math:`T_i` is. The arm d is the
regime's (``"augmented"`` propagation) or, for the optimal regime with the default ``"modal"``
propagation, the arm most often optimal across the draws.

**What was taken from DTRreg's DWSurv** (Simoneau, Moodie, Nijjar and Platt 2019 JASA; the
package's ``R/dtrProcedure.R`` and ``R/utils.R``, ``.stageYSurvival``, read in the stored copy
``cran/DTRreg``): the stage-k outcome is the log of the stage-k time plus the later stages' times,
each later time multiplied by ``exp(shift)``, the blip difference between the optimal and the
observed arm on the log-time scale. What differs: DWSurv fits only the uncensored units
(weights :math:`\delta_i` times inverse probability of censoring weights from a logistic
``cens.mod``), while here censored units enter through the censored likelihood; and DWSurv's
estimates are point estimates (sandwich or bootstrap variance), here every stage-(k+1) draw gives
its own pseudo-outcome (cut posterior). Not verified: that DWSurv's IPCW and this likelihood
agree numerically on ``two_stage_cens`` (no R here), and DWSurv's handling of stage-specific
censoring before a later decision (its ``last.stage`` bookkeeping), which is not implemented.

Only ``"modal"`` and ``"augmented"`` propagation are allowed: ``"mean"`` would replace a
censored time by a prediction and ``"predictive"`` would draw over the censoring; both are refused.
"""

from __future__ import annotations

import numpy as np

from bayesdtr.data.design import DTRDesign
from bayesdtr.exceptions import FitError
from bayesdtr.inference.backward import Induction
from bayesdtr.inference.draws import select_arm
from bayesdtr.models.families import family_of
from bayesdtr.models.survival import SURVIVAL, SurvivalFamily

__all__ = ["SURVIVAL_PROPAGATIONS", "SurvivalInduction", "induction_class"]

#: Propagations that keep the censoring of the pseudo-outcome.
SURVIVAL_PROPAGATIONS = ("modal", "augmented")


def induction_class(design: DTRDesign) -> type[Induction]:
    """:class:`SurvivalInduction` for a censored outcome, else :class:`Induction`."""
    return SurvivalInduction if design.event is not None else Induction


class SurvivalInduction(Induction):
    """Backward induction on log times left, censored where the total time is (see module)."""

    def __init__(self, design: DTRDesign, settings, *args, **kwargs) -> None:
        if settings.propagation not in SURVIVAL_PROPAGATIONS:
            raise FitError(
                f"propagation={settings.propagation!r} cannot carry a censored time back: "
                f"'mean' replaces it by a prediction, 'predictive' draws over the censoring. With "
                f"family={design.family!r} use propagation='modal' (the default) or 'augmented'."
            )
        super().__init__(design, settings, *args, **kwargs)
        assert design.event is not None
        elapsed = np.zeros(design.n)
        self.elapsed: list[np.ndarray] = []
        for sd in design.stages:
            self.elapsed.append(elapsed.copy())
            elapsed = elapsed + sd.reward
        self._families: dict[int, SurvivalFamily] = {}

    # ------------------------------------------------------------------ families and data
    def outcome_family(self, k: int) -> SurvivalFamily:  # type: ignore[override]
        """Stage k's censored family, carrying its units' event indicators and log times."""
        if k not in self._families:
            sd = self.design.stages[k]
            base = SURVIVAL[self.design.family]
            self._families[k] = base.for_stage(
                self.design.event[sd.units], self.log_left(k)[sd.units]
            )  # type: ignore[index]
        return self._families[k]

    def family(self, k: int) -> str:
        return self.design.family

    def log_left(self, k: int) -> np.ndarray:
        """Observed log time left from stage k's decision, every unit (NaN where none is left)."""
        left = self.design.y - self.elapsed[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(left > 0, np.log(np.where(left > 0, left, 1.0)), np.nan)

    def observed_return(self) -> np.ndarray:
        """The total time :math:`T` (not a sum of rewards: the rewards are stage times)."""
        return self.design.y

    # ------------------------------------------------------------------ pseudo-outcomes
    def target_for_fit(self, k: int, idx_next: np.ndarray | None) -> np.ndarray:
        """Stage k's log-time targets for its units: (len(idx_next), n_k), or (1, n_k) at the last."""
        sd = self.design.stages[k]
        if k == self.K - 1:
            return self.log_left(k)[sd.units][None, :]
        assert idx_next is not None
        return self._target_all(k, idx_next)[:, sd.units]

    def _target_all(self, k: int, idx_next: np.ndarray) -> np.ndarray:
        """Stage k's log-time target for every unit given stage k+1's draws: (len(idx), n)."""
        nxt = self.design.stages[k + 1]
        full = np.broadcast_to(self.log_left(k), (len(idx_next), self.design.n)).copy()
        shifted = self.shifted(k + 1, idx_next)
        full[:, nxt.units] = np.log(
            self.design.stages[k].reward[nxt.units][None, :] + np.exp(shifted)
        )
        return full

    def shifted(self, k: int, idx: np.ndarray) -> np.ndarray:
        """Log time left from stage k's decision under the regime, for draws ``idx``: (len(idx), n_k)."""
        sd = self.design.stages[k]
        if k == self.K - 1:
            L = np.broadcast_to(self.log_left(k)[sd.units], (len(idx), sd.n_units))
        else:
            anc = self.fits[k].ancestor[idx]  # type: ignore[union-attr]
            L = self._target_all(k, anc)[:, sd.units]
        q = self.q_observed(k, idx)
        _, qd = self.decide(k, q, idx)
        if self.settings.propagation == "modal" and self.regime.follows_optimal(sd.treatment):
            qd = select_arm(q, self.map_decisions(k))
        return L + qd - select_arm(q, sd.a)

    def value_to_go(self, k: int, idx: np.ndarray, propagation: str | None = None) -> np.ndarray:
        raise FitError(
            f"The value of a regime with a censored outcome (family={self.design.family!r}) is a "
            "restricted mean survival time: call post.value(regime, horizon=tau)."
        )

    def tail_parts(self, k: int, idx: np.ndarray) -> dict[str, np.ndarray]:
        r"""Each stage-k unit's time left under the regime, as an affine map of its last stage's time.

        For draws ``idx`` of stage k, every unit of stage k gets (arrays (len(idx), n_k)):

        - ``ell``: its log time left from stage k's decision under the regime (its own time,
          shifted by the AFT contrasts of this and later stages; a lower bound if censored);
        - ``alpha``, ``beta``, ``mu``, ``sigma``: with U the time left from the decision of the
          last stage j the unit reached, under its observed arm there (so that a censored U
          is bounded by its observed time), :math:`U \sim \mathrm{AFT}(\mu = Q_j(H_j, A_j),
          \sigma_j)`, and the time left from stage k under the regime is
          :math:`\alpha + \beta U`, where :math:`\alpha = e^{s_k}(R_k + \alpha_{k+1})`,
          :math:`\beta = e^{s_k}\beta_{k+1}` (:math:`s_k = Q_k(d_k) - Q_k(A_k)`; at stage j,
          :math:`\alpha = 0`, :math:`\beta = e^{s_j}`). A censored unit's tail comes from the model of the stage it was censored in.
        """
        sd = self.design.stages[k]
        q = self.q_observed(k, idx)
        _, qd = self.decide(k, q, idx)
        if self.settings.propagation == "modal" and self.regime.follows_optimal(sd.treatment):
            qd = select_arm(q, self.map_decisions(k))
        qa = select_arm(q, sd.a)
        shift = qd - qa
        sigma = self.fits[k].sigma[idx]  # type: ignore[union-attr,index]
        shape = (len(idx), sd.n_units)
        L = np.broadcast_to(self.log_left(k)[sd.units], shape).copy()
        out = {
            "alpha": np.zeros(shape),
            "beta": np.ones(shape),
            "mu": qa.copy(),  # U is the time left under the observed arm; beta carries the shift
            "sigma": np.broadcast_to(sigma[:, None], shape).copy(),
        }
        if k < self.K - 1:
            nxt = self.design.stages[k + 1]
            later = self.tail_parts(k + 1, self.fits[k].ancestor[idx])  # type: ignore[union-attr,index]
            pos = np.searchsorted(sd.units, nxt.units)
            r = sd.reward[nxt.units][None, :]
            L[:, pos] = np.log(r + np.exp(later["ell"]))
            out["alpha"][:, pos] = r + later["alpha"]
            out["beta"][:, pos] = later["beta"]
            for name in ("mu", "sigma"):
                out[name][:, pos] = later[name]
        growth = np.exp(shift)
        out["alpha"] *= growth
        out["beta"] *= growth
        out["ell"] = L + shift
        return out

    def stage1_decisions(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage-1 arm codes of the regime (len(idx), n), their AFT location and sigma (len(idx),).

        The arms are those :meth:`tail_parts` shifts to: the regime's, or for the optimal regime
        with ``"modal"`` propagation the arm most often optimal across the draws, so a unit
        whose observed arm is that arm keeps its own time.
        """
        sd = self.design.stages[0]
        q = self.q_observed(0, idx)
        codes, qd = self.decide(0, q, idx)
        if self.settings.propagation == "modal" and self.regime.follows_optimal(sd.treatment):
            codes = self.map_decisions(0)
            qd = select_arm(q, codes)
        sigma = self.fits[0].sigma  # type: ignore[union-attr]
        assert sigma is not None
        return np.broadcast_to(codes, qd.shape), qd, sigma[idx]

    def stage1_mu(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage-1 AFT location under the regime's first arm (len(idx), n) and sigma (len(idx),)."""
        q = self.q_observed(0, idx)
        _, qd = self.decide(0, q, idx)
        sigma = self.fits[0].sigma  # type: ignore[union-attr]
        assert sigma is not None
        return qd, sigma[idx]


def is_survival_family(family: str) -> bool:
    """Whether ``family`` names a censored log-time family."""
    return family in SURVIVAL and isinstance(family_of(family), SurvivalFamily)
