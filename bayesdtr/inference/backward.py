r"""Backward induction on posterior draws (the cut posterior).

Let :math:`G = \sum_k R_k + Y` be the return. Going backwards from the last stage K, with
:math:`V_{K+1} = Y`, stage k's regression target is :math:`T_k = R_k + V_{k+1}` and, for each
posterior draw s of stage k+1, the value-to-go :math:`V_{k+1}^{(s)}` of a unit that reaches stage
k+1 is built from :math:`Q_{k+1}^{(s)}` and the regime's arm :math:`d^{(s)}` (the feasible argmax
for the optimal regime):

- ``"mean"``: :math:`V = Q^{(s)}(H, d^{(s)})` (Q-learning);
- ``"predictive"`` (Murray, Yuan and Thall 2018): :math:`V = T` where the unit received
  :math:`d^{(s)}`, else a draw from the posterior predictive under :math:`d^{(s)}`;
- ``"augmented"``: :math:`V = T + Q^{(s)}(H, d^{(s)}) - Q^{(s)}(H, A)`;
- ``"modal"`` (the default): :math:`V = T + Q^{(s)}(H, \hat d) - Q^{(s)}(H, A)`, with
  :math:`\hat d(H)` the arm most often optimal across stage k+1's draws (the same for every
  draw; a fixed regime's own arm where it does not follow the optimal rule).

Why ``"modal"``: where two arms tie (a non-regular history), the average over draws of
:math:`\max_a Q^{(s)}` exceeds the true maximum by about 0.56 posterior SDs of the contrast,
and ``"mean"``/``"augmented"`` carry that bias into the earlier stage's contrasts. With the arm
fixed across draws, the draws' noise no longer selects the arm: only the units whose observed arm
differs from :math:`\hat d` get a contrast added (at a tie, a bias of about 0.4 instead of
0.56 posterior SDs of the contrast), and the pseudo-outcome keeps the observed outcome's noise. Measured on the published Chakraborty-Laber-Zhao designs (n = 300, two independent sets of 200
replicates, 95% intervals of the stage-1 contrast intercept, ``benchmarks/calibration``):
example 3 0.870 and 0.900 ("mean") vs 0.910 and 0.945 ("modal"), example 4 0.870 vs 0.925,
example B 0.895 vs 0.945, example C 0.950 vs 0.970 and 0.905 vs 0.950, example 6 0.960 vs 0.955,
at about 5% more width. Fixing the arm reduces the bias of the stage-1 intercept without
removing it (example 3: -0.084 against -0.117 for "mean"; OLS Q-learning -0.083).

Units that do not reach stage k+1 carry :math:`V_{k+1} = T_{k+1}`. Stage k's parameters are drawn
from :math:`p(\theta_k \mid \text{data}, T_k^{(s)})`, one (conjugate, robust) or a block of
(MCMC by multiple imputation) stage-k draws per stage-(k+1) draw, recorded as the ancestor.
Nothing of stage k flows back into stage k+1 (Plummer 2015).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bayesdtr.cluster import map_blocks
from bayesdtr.constants import CHUNK_ELEMENTS
from bayesdtr.data.design import DTRDesign, StageDesign
from bayesdtr.exceptions import FitError, RegimeError
from bayesdtr.inference.draws import (
    PropensityDraws,
    StageDraws,
    best_arm,
    propensity_for,
    q_arms,
    q_response,
    select_arm,
)
from bayesdtr.inference.engines import ENGINES, StageEngine, refit_engines, stage_engines
from bayesdtr.models.families import GAUSSIAN, Family, family_of
from bayesdtr.models.priors import StagePriors
from bayesdtr.regimes import Regime

# propensity_for and stage_engines live in draws.py and engines/; re-exported for their callers
__all__ = [
    "FitSettings",
    "Induction",
    "propensity_for",
    "refit_engines",
    "regime_codes",
    "reusable_stages",
    "stage_engines",
    "stage_fits_text",
]

Propagation = Literal["mean", "predictive", "augmented", "modal"]

#: Tasks that :meth:`Induction.tally_all` splits the draws into (at most).
TALLY_TASKS = 32


@dataclass
class FitSettings:
    """Settings of one backward induction."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    propagation: Propagation = "modal"
    engine: str = "auto"
    sampler: str = "nutpie"
    imputations: int = 200
    imputation_tune: int | None = None
    robust: bool = False
    progressbar: bool = False
    group_contrast: bool = False
    max_chunk_elements: int = CHUNK_ELEMENTS

    @property
    def tune_per_imputation(self) -> int:
        """Tuning steps of each multiple-imputation refit (default ``min(tune, 200)``)."""
        return min(self.tune, 200) if self.imputation_tune is None else self.imputation_tune

    @property
    def total(self) -> int:
        return self.draws * self.chains


class Induction:
    """Backward induction of one regime over a validated design.

    Each stage is fitted by a stage engine (:mod:`bayesdtr.inference.engines`): the one the
    table :func:`~bayesdtr.inference.engines.stage_engines` chooses from ``settings`` and
    ``priors``, or, with ``engines=``, the given engine objects (one per stage; e.g. the
    bootstrap replicates of the frequentist baseline, or
    :func:`~bayesdtr.inference.engines.refit_engines` for a regime's refits).
    ``origins[k]`` says how stage k's draws came about after :meth:`run`: the engine's name, or
    ``"reused"`` for draws taken over from another induction.
    """

    def __init__(
        self,
        design: DTRDesign,
        settings: FitSettings,
        priors: dict[str, StagePriors],
        propensities: list[PropensityDraws | None],
        regime: Regime,
        seed: np.random.SeedSequence,
        samplers: dict | None = None,
        engines: Sequence[StageEngine] | None = None,
    ) -> None:
        self.design = design
        self.settings = settings
        self.priors = priors
        self.propensities = propensities
        self.regime = regime
        if engines is None:
            self.engine_objects: list[StageEngine] = [
                ENGINES[name] for name in stage_engines(design, settings, priors)
            ]
        else:
            self.engine_objects = list(engines)
        self.engines = [e.name for e in self.engine_objects]
        self.K = len(design.stages)
        self.fits: list[StageDraws | None] = [None] * self.K
        self.origins: list[str] = [""] * self.K
        self.samplers = samplers if samplers is not None else {}
        seeds = seed.spawn(self.K + 1)
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self._fixed: dict[int, np.ndarray] = {}
        self._map: dict[int, np.ndarray] = {}
        self._tallies: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        #: Whether decisions are tallied (off while blocks run on other threads or machines).
        self.tallying = True
        regime.check_covers(design.treatments)

    # ------------------------------------------------------------------ public
    def run(
        self, *, last: StageDraws | None = None, reuse: Sequence[StageDraws | None] | None = None
    ) -> list[StageDraws]:
        """Fit every stage backwards.

        ``last`` reuses draws of the last stage (whose model does not depend on the regime);
        ``reuse[k]``, where not None, are stage k's draws from another induction on the same
        design whose regime takes the same decisions at every stage after k (so stage k's
        targets are the same): see :func:`reusable_stages`. A reused stage's ancestors must
        point into the draws this induction holds for stage k+1 (reused as well).
        """
        given = list(reuse) if reuse is not None else [None] * self.K
        if last is not None:
            given[-1] = last
        for k in reversed(range(self.K)):
            if given[k] is not None:
                if k < self.K - 1 and self.origins[k + 1] != "reused":
                    raise FitError(
                        f"reuse= gives stage {k + 1}'s draws but stage {k + 2} is refitted: the "
                        "reused ancestors would point into other draws. Reuse a suffix of stages."
                    )
                self.fits[k], self.origins[k] = given[k], "reused"
            else:
                self.fits[k] = self._fit_stage(k)
                self.origins[k] = self.engines[k]
        return self.fits  # type: ignore[return-value]

    def refits(self, fitted: Sequence[str] | None = None) -> str:
        """How each stage's draws came about, in words (``value()`` attrs ``stage_fits``).

        ``fitted``: the engines of the posterior's own fit, so that a refit by another engine
        (a NUTS stage refitted by ``"conjugate"`` or ``"gibbs"``) says so.
        """
        return stage_fits_text([sd.treatment for sd in self.design.stages], self.origins, fitted)

    def family(self, k: int) -> str:
        """Name of stage k's outcome family (Gaussian before the last stage)."""
        return self.outcome_family(k).name

    def outcome_family(self, k: int) -> Family:
        """Stage k's outcome family: the design's at the last stage, Gaussian before."""
        return family_of(self.design.family) if k == self.K - 1 else GAUSSIAN

    def chunk_size(self, k: int) -> int:
        """Draws per chunk when propagating from stage k: at most ``settings.max_chunk_elements``
        elements per (draws x units x arms x later stages) block, at least one draw."""
        return self._draws_per(k, self.settings.max_chunk_elements)

    def block_size(self, k: int) -> int:
        """Draws per block of random numbers of the closed-form engines at stage k: the chunk
        size of the default :data:`~bayesdtr.constants.CHUNK_ELEMENTS`, fixed so that the memory
        setting never changes a posterior."""
        return self._draws_per(k, CHUNK_ELEMENTS)

    def _draws_per(self, k: int, elements: int) -> int:
        sd = self.design.stages[k]
        per = max(self.design.n, 1) * max(sd.n_arms, 2) * (self.K - k + 1)
        return max(1, min(self.settings.total, elements // per))

    def observed_return(self) -> np.ndarray:
        return self.design.y + sum(sd.reward for sd in self.design.stages)

    def q_observed(self, k: int, idx: np.ndarray) -> np.ndarray:
        """Q_k on the outcome scale for the units of stage k, arm first: (m, len(idx), n_k)."""
        sd = self.design.stages[k]
        g = self.design.groups_of(sd)
        lin = q_arms(sd, self.fits[k], idx, sd.X_main, sd.X_contrast, g)  # type: ignore[arg-type]
        return q_response(lin, self.outcome_family(k))

    def decide(self, k: int, q: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arm codes the regime takes at stage k (S, n_k) and their Q (S, n_k).

        Following the optimal rule, the draws' argmax decisions are also tallied per unit, once
        per draw, so that P(arm optimal) of the observed units costs nothing extra.
        """
        sd = self.design.stages[k]
        if not self.regime.follows_optimal(sd.treatment):
            d = self.fixed_decisions(k)
            return np.broadcast_to(d, q.shape[1:]), select_arm(q, d)
        d, best = best_arm(q, sd.feasible)
        self._tally(k, d, idx)
        return d, best

    def _tally(self, k: int, d: np.ndarray, idx: np.ndarray) -> None:
        """Count the optimal arms ``d`` (len(idx), n_k) of draws ``idx`` not yet counted."""
        if not self.tallying:
            return
        sd = self.design.stages[k]
        tally = self._tallies.get(k)
        if tally is None:
            # arm-first integer counts of arms 1..m-1 (arm 0: the draws seen minus the others)
            tally = (
                np.zeros((sd.n_arms, sd.n_units), dtype=np.int64),
                np.zeros(self.fits[k].n, dtype=bool),  # type: ignore[union-attr]
            )
            self._tallies[k] = tally
        counts, seen = tally
        uniq, first = np.unique(idx, return_index=True)
        new = first[~seen[uniq]]
        if len(new):
            seen[idx[new]] = True
            dn = d if len(new) == len(idx) else d[new]
            if sd.n_arms == 2:
                counts[1] += dn[0] if len(dn) == 1 else dn.sum(axis=0, dtype=np.int64)
            else:
                for j in range(1, sd.n_arms):
                    counts[j] += np.count_nonzero(dn == j, axis=0)

    def tally_all(self, k: int, client: Any = None) -> None:
        """Tally the optimal arms of every draw of stage k not yet tallied, here or as dask tasks
        (:func:`bayesdtr.cluster.map_blocks`); the integer counts are the same either way.

        Each task counts :data:`TALLY_TASKS`-th of the draws, in chunks of :meth:`chunk_size`
        draws, and returns one (arms x units) array of counts; they are summed as they arrive.
        """
        tally = self._tallies.get(k)
        n = self.fits[k].n  # type: ignore[union-attr]
        todo = np.arange(n) if tally is None else np.flatnonzero(~tally[1])
        if not len(todo):
            return
        step = self.chunk_size(k)
        per_task = step * max(1, -(-len(todo) // (step * TALLY_TASKS)))  # whole chunks per task
        blocks = [todo[start : start + per_task] for start in range(0, len(todo), per_task)]
        with self.read_only(client is not None, propagates=False):
            total = map_blocks(_count_block, blocks, (self, k), client, combine=np.add)
        sd = self.design.stages[k]
        if tally is None:
            tally = (np.zeros((sd.n_arms, sd.n_units), dtype=np.int64), np.zeros(n, dtype=bool))
            self._tallies[k] = tally
        counts, seen = tally
        counts[1:] += total[1:]
        seen[todo] = True

    def decision_counts(self, k: int) -> np.ndarray | None:
        """Per-unit counts of each arm being optimal over all draws of stage k, if all were seen:
        (n_k, m) floats."""
        tally = self._tallies.get(k)
        if tally is None or not tally[1].all():
            return None
        counts = tally[0].astype(float)
        counts[0] = len(tally[1]) - counts[1:].sum(axis=0)
        return counts.T

    @contextmanager
    def read_only(self, on: bool = True, *, propagates: bool = True) -> Iterator[None]:
        """Prepare every cache a value pass reads, then stop tallying, so that blocks of draws
        can run concurrently or on other machines without changing this induction (``on``:
        whether to; a no-op otherwise).

        Where the blocks propagate values (``propagates``), refuses ``propagation="predictive"``
        (its draws follow the order in which blocks run).
        """
        if not on:
            yield
            return
        if propagates and self.settings.propagation == "predictive" and self.K > 1:
            raise FitError(
                "client= cannot run value blocks with propagation='predictive': its predictive "
                "draws follow the order in which blocks run, so the result would depend on the "
                "cluster. Leave client=None, or fit with propagation='modal' (the default)."
            )
        for k, sd in enumerate(self.design.stages):
            if not self.regime.follows_optimal(sd.treatment):
                self.fixed_decisions(k)
            elif k > 0 and self.settings.propagation == "modal":
                self.map_decisions(k)
        before, self.tallying = self.tallying, False
        try:
            yield
        finally:
            self.tallying = before

    def fixed_decisions(self, k: int) -> np.ndarray:
        if k not in self._fixed:
            sd = self.design.stages[k]
            self._fixed[k] = regime_codes(
                self.regime, sd, self.design.data.iloc[sd.units], sd.feasible
            )
        return self._fixed[k]

    def target_for_fit(self, k: int, idx_next: np.ndarray | None) -> np.ndarray:
        """Stage k's regression targets T_k for the units of stage k: (len(idx), n_k)."""
        sd = self.design.stages[k]
        if k == self.K - 1:
            return (self.design.y + sd.reward)[sd.units][None, :]
        V = self.value_to_go(k + 1, idx_next)  # type: ignore[arg-type]
        return (sd.reward[None, :] + V)[:, sd.units]

    def value_to_go(self, k: int, idx: np.ndarray, propagation: str | None = None) -> np.ndarray:
        """V_k for draws ``idx`` of stage k, for all n units: (len(idx), n)."""
        prop = propagation or self.settings.propagation
        sd = self.design.stages[k]
        n = self.design.n
        everyone = sd.n_units == n
        need_T = prop != "mean" or not everyone
        cols = slice(None) if everyone else sd.units
        if need_T:
            if k == self.K - 1:
                T = np.broadcast_to(self.design.y + sd.reward, (len(idx), n)).copy()
            else:
                anc = self.fits[k].ancestor[idx]  # type: ignore[union-attr]
                T = sd.reward[None, :] + self.value_to_go(k + 1, anc, propagation)
            V = T  # a fresh array: V's units are overwritten below from T's (read first)
        else:
            V = np.empty((len(idx), n))
        q = self.q_observed(k, idx)
        if prop == "modal" and self.regime.follows_optimal(sd.treatment):
            # map_decisions has tallied every draw's argmax: no per-draw decision needed here
            d, qd = None, select_arm(q, self.map_decisions(k))
        else:
            d, qd = self.decide(k, q, idx)
        if prop == "mean":
            V[:, cols] = qd
        elif prop in ("augmented", "modal"):
            # "modal" (qd above): augmented, with the arm most often optimal across draws instead
            # of each draw's argmax
            qa = select_arm(q, sd.a)
            if everyone:  # in place, the same operations as T + qd - qa
                np.add(V, qd, out=V)
                np.subtract(V, qa, out=V)
            else:
                V[:, cols] = T[:, cols] + qd - qa
        else:  # predictive
            sigma = self.fits[k].sigma  # type: ignore[union-attr]
            draw = self.outcome_family(k).predictive(
                self.rngs[k], qd, None if sigma is None else sigma[idx]
            )
            V[:, cols] = np.where(d == sd.a[None, :], T[:, cols], draw)
        return V

    def map_decisions(self, k: int) -> np.ndarray:
        """The arm most often optimal across stage k's draws, for each of its units."""
        if k not in self._map:
            sd = self.design.stages[k]
            step = self.chunk_size(k)
            for start in range(0, self.fits[k].n, step):  # type: ignore[union-attr]
                idx = np.arange(start, min(self.fits[k].n, start + step))  # type: ignore[union-attr]
                tally = self._tallies.get(k)
                if tally is None or not tally[1][idx].all():
                    # the same argmax as decide(): P(optimal) of stage k's units comes for free
                    self._tally(k, best_arm(self.q_observed(k, idx), sd.feasible)[0], idx)
            counts = self.decision_counts(k).T.copy()  # type: ignore[union-attr]
            counts[~sd.feasible.T] = -1
            self._map[k] = np.argmax(counts, axis=0)
        return self._map[k]

    def stage1_values(self, idx: np.ndarray) -> np.ndarray:
        """Per-unit value of the regime from stage 1 on (Q-based): (len(idx), n)."""
        return self.value_to_go(0, idx, propagation="mean")

    # ------------------------------------------------------------------ fitting
    def _fit_stage(self, k: int) -> StageDraws:
        return self.engine_objects[k].fit(self, k)


def _count_block(idx: np.ndarray, shared: tuple[Induction, int]) -> np.ndarray:
    """How often each arm is optimal for each unit of stage k over draws ``idx``, counted in
    chunks of :meth:`Induction.chunk_size` draws: (m, n_k) integers."""
    ind, k = shared
    sd = ind.design.stages[k]
    out = np.zeros((sd.n_arms, sd.n_units), dtype=np.int64)
    step = ind.chunk_size(k)
    for start in range(0, len(idx), step):
        d = best_arm(ind.q_observed(k, idx[start : start + step]), sd.feasible)[0]
        for j in range(sd.n_arms):
            out[j] += np.count_nonzero(d == j, axis=0)
    return out


def stage_fits_text(
    treatments: Sequence[str], origins: Sequence[str], fitted: Sequence[str] | None = None
) -> str:
    """How each stage's draws came about, in words (:meth:`Induction.refits`): ``origins[k]``
    the engine that fitted stage k or ``"reused"``; ``fitted`` the engines of the posterior's own
    fit, so that a refit by another engine says so."""
    parts = []
    for k, (treatment, origin) in enumerate(zip(treatments, origins, strict=True)):
        if origin == "reused":
            what = "fit reused"
        elif fitted is not None and fitted[k] != origin:
            what = f"{origin} (the fit used {fitted[k]}; same model)"
        else:
            what = origin or "not fitted"
        parts.append(f"{treatment}: {what}")
    return ", ".join(parts)


def reusable_stages(design: DTRDesign, regime: Regime) -> list[bool]:
    """Whether stage k's fit under the optimal regime serves ``regime`` too, per stage.

    Stage k's targets depend on the regime only through the decisions it takes at the stages
    after k, so the optimal regime's fit of stage k is the fit of every regime that follows the
    optimal rule at all later stages (always true of the last stage).
    """
    out = [False] * len(design.stages)
    for k in reversed(range(len(design.stages))):
        later = design.stages[k + 1 :]
        out[k] = all(regime.follows_optimal(sd.treatment) for sd in later)
    return out


def regime_codes(regime: Regime, sd: StageDesign, rows, feasible: np.ndarray) -> np.ndarray:
    """Arm codes that a (non-optimal) regime assigns at stage ``sd``; checks feasibility."""
    labels = regime.assign(sd.treatment, rows)
    code_of = {a: i for i, a in enumerate(sd.arms)}
    codes = np.empty(len(labels), dtype=np.int64)
    todo = range(len(labels))
    uniq, inverse = _unique_labels(labels)
    if uniq is not None:  # look up each distinct label once (O(n) in NumPy, not Python)
        codes[:] = -1
        for j, lab in enumerate(uniq):
            key = lab.item() if isinstance(lab, np.generic) else lab
            if key in code_of:
                codes[inverse == j] = code_of[key]
        todo = np.flatnonzero(codes < 0)
    for i in todo:
        lab = labels[i]
        key = lab.item() if isinstance(lab, np.generic) else lab
        if key not in code_of:
            raise RegimeError(
                f"Regime {regime.name!r} assigns arm {key!r} at stage {sd.treatment!r} to unit "
                f"{rows.index[i]!r}, but the arms of that stage are {sd.arms}."
            )
        codes[i] = code_of[key]
    bad = ~feasible[np.arange(len(codes)), codes]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RegimeError(
            f"Regime {regime.name!r} assigns infeasible arm {sd.arms[codes[i]]!r} at stage "
            f"{sd.treatment!r} to unit {rows.index[i]!r} ({int(bad.sum())} units in all); the "
            f"unit's feasible arms are {[a for a, f in zip(sd.arms, feasible[i], strict=True) if f]}."
        )
    return codes


def _unique_labels(labels) -> tuple[np.ndarray | None, np.ndarray]:
    """Distinct labels and each label's position among them, or (None, ...) when they cannot be
    sorted (mixed types): the caller then looks up every label."""
    try:
        uniq, inverse = np.unique(np.asarray(labels), return_inverse=True)
    except TypeError:
        return None, np.empty(0, dtype=np.int64)
    if uniq.dtype == object or len(uniq) > 64:
        return None, inverse
    return uniq, inverse.reshape(-1)
