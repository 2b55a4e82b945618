"""Shared machinery of the simulation scenarios: the :class:`Scenario` base class.

A scenario is a fully known data-generating process for a multi-stage decision problem. Each
subclass supplies the generator (``_simulate``), the true Q-functions (``_q``), and the true values
of the optimal and static regimes; this base class turns those into the public API
(:meth:`Scenario.sample`, :meth:`Scenario.true_value`, :meth:`Scenario.true_optimal_treatment`, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import Stage
from bayesdtr.exceptions import RegimeError, SpecificationError
from bayesdtr.regimes import Regime, as_regime

__all__ = ["Scenario", "expit"]

#: Q-values closer than this are treated as tied; ties go to the earliest arm (the reference).
TIE_TOL = 1e-12


def expit(x: np.ndarray | float) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))``, computed stably."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float))))


def check_n(n: Any) -> int:
    """Validate a sample size (a positive integer) and return it as ``int``."""
    if isinstance(n, bool) or not isinstance(n, Integral) or int(n) <= 0:
        raise SpecificationError(
            f"n must be a positive integer (the number of units to simulate); got {n!r}."
        )
    return int(n)


def check_seed(seed: Any) -> int:
    """Validate a seed (a non-negative integer) and return it as ``int``."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise SpecificationError(
            f"seed must be a non-negative integer passed to numpy.random.default_rng; got "
            f"{seed!r}. Pass e.g. seed=1 (the same seed always gives the same data frame)."
        )
    return int(seed)


def check_int(value: Any, name: str, *, low: int, high: int | None = None) -> int:
    """Validate an integer constructor argument within ``[low, high]``."""
    ok = not isinstance(value, bool) and isinstance(value, Integral) and int(value) >= low
    if ok and high is not None:
        ok = int(value) <= high
    if not ok:
        span = f">= {low}" if high is None else f"between {low} and {high}"
        raise SpecificationError(f"{name} must be an integer {span}; got {value!r}.")
    return int(value)


class Scenario(ABC):
    """A simulation scenario with a known optimal dynamic treatment regime.

    Subclasses set the attributes below in their constructor and implement the generator and the
    true Q-functions.

    Attributes
    ----------
    name : str
        Registry name (see :func:`bayesdtr.simulate.scenarios.list_scenarios`).
    description : str
        One-line description.
    outcome : str
        Column of the final outcome (``"Y"``).
    treatments : list of str
        Treatment columns in stage order.
    arms : dict of str to list
        Arm labels per treatment, reference arm first.
    group : str or None
        Cluster column (multi-site scenarios) or None.
    family : str
        Outcome family; every scenario here is ``"gaussian"``.

    Notes
    -----
    Ties in the true Q-functions (differences below ``1e-12``) are broken toward the earliest arm
    in ``arms[treatment]``, i.e. the reference arm.
    """

    #: Units of the Monte Carlo used by :meth:`true_value` for general dynamic regimes.
    MC_UNITS: int = 1_000_000
    #: Seed of that Monte Carlo (fixed, so true values of dynamic regimes are reproducible).
    MC_SEED: int = 20_240_917

    name: str = ""
    description: str = ""
    outcome: str = "Y"
    treatments: list[str]
    arms: dict[str, list[Any]]
    group: str | None = None
    family: str = "gaussian"

    # ------------------------------------------------------------------ to implement
    @property
    @abstractmethod
    def stages(self) -> list[Stage]:
        """Correctly specified default :class:`~bayesdtr.Stage` list (one per treatment)."""

    @property
    @abstractmethod
    def truth(self) -> dict[str, Any]:
        """True parameters of the generating process (blip coefficients, values, ...)."""

    @abstractmethod
    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        """Draw ``n`` units; treatments follow ``regime`` (None: the generator's own mechanism)."""

    @abstractmethod
    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        """True Q-function of stage ``k`` (0-based): array (rows, arms) in ``arms`` order."""

    @abstractmethod
    def _optimal_value(self) -> float:
        """Exact value of the true optimal regime."""

    @abstractmethod
    def _static_value(self, arms: dict[str, Any]) -> float:
        """Exact value of the static regime ``arms``."""

    @abstractmethod
    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        """E[Y | every simulated column of ``df``] (the outcome without its noise)."""

    # ------------------------------------------------------------------ public API
    def sample(
        self, n: int, *, seed: int, regime: Regime | str | None = None
    ) -> pd.DataFrame:
        """Simulate ``n`` independent units.

        Parameters
        ----------
        n : int
            Number of units (rows).
        seed : int
            Seed of :func:`numpy.random.default_rng`; the same seed gives an identical frame.
        regime : Regime, "optimal" or None
            None: treatments follow the scenario's own (possibly confounded) assignment
            mechanism. Otherwise treatments are assigned by the regime, stage by stage; the rule
            of stage k sees the data frame of everything observed before decision k, and stages
            that follow the optimal rule use the TRUE optimal rule
            (:meth:`true_optimal_treatment`). Every random quantity other than the treatments
            is drawn from the same stream whatever the regime, so regimes compared under one
            seed share their baseline covariates and noise.

        Returns
        -------
        pandas.DataFrame
            One row per unit: covariates, treatments, outcome (and the group column, if any).

        Raises
        ------
        SpecificationError
            If ``n`` or ``seed`` is invalid.
        RegimeError
            If the regime does not cover every stage or assigns an unknown arm.
        """
        n = check_n(n)
        seed = check_seed(seed)
        reg = None if regime is None else self._check_regime(regime)
        return self._simulate(n, np.random.default_rng(seed), reg)

    def true_value(self, regime: Regime | str) -> float:
        """True mean outcome if every unit followed ``regime``.

        The optimal regime and static regimes are computed exactly (see the subclass docstring
        for how); other regimes use the subclass's exact method where it has one, else a
        seeded Monte Carlo over :attr:`MC_UNITS` units that averages the noise-free conditional
        mean of the outcome.

        Raises
        ------
        RegimeError
            If the regime does not give a rule for every stage, or names an unknown arm.
        """
        reg = self._check_regime(regime)
        if reg.is_optimal:
            return float(self._optimal_value())
        static = reg.static_arms
        if static is not None:
            for t in self.treatments:
                self._check_arms(t, np.asarray([static[t]]), reg)
            return float(self._static_value({t: static[t] for t in self.treatments}))
        return float(self._general_value(reg))

    def true_q(self, df: pd.DataFrame, stage: str | int) -> pd.DataFrame:
        """True Q-function of ``stage`` at the histories in ``df``: one column per arm.

        At stage k the Q-function integrates over the future under optimal play at later
        stages. Rows are assumed to reach the stage (for stages that apply to a subset).
        """
        k = self._stage_index(stage)
        q = self._q(k, df)
        return pd.DataFrame(q, columns=list(self.arms[self.treatments[k]]), index=df.index)

    def true_contrast(self, df: pd.DataFrame, stage: str | int) -> np.ndarray:
        """True contrast Q_k(h, arm) - Q_k(h, reference) for each non-reference arm.

        Returns a 1-D array for two-arm stages, else an array (rows, arms - 1).
        """
        q = self._q(self._stage_index(stage), df)
        out = q[:, 1:] - q[:, :1]
        return out[:, 0] if out.shape[1] == 1 else out

    def true_optimal_treatment(self, df: pd.DataFrame, stage: str | int) -> np.ndarray:
        """Arms of the true optimal rule at ``stage`` for the histories in ``df``.

        Parameters
        ----------
        df : pandas.DataFrame
            Histories (at least the columns observed before the decision).
        stage : str or int
            Treatment name (e.g. ``"A1"``) or 1-based stage number.

        Returns
        -------
        numpy.ndarray
            The argmax of the true Q-function, ties going to the reference arm.
        """
        k = self._stage_index(stage)
        q = self._q(k, df)
        best = q.max(axis=1, keepdims=True)
        idx = np.argmax(q >= best - TIE_TOL, axis=1)
        return np.asarray(self.arms[self.treatments[k]])[idx]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ------------------------------------------------------------------ helpers
    def _general_value(self, regime: Regime) -> float:
        df = self.sample(self.MC_UNITS, seed=self.MC_SEED, regime=regime)
        return float(np.mean(self._conditional_mean(df)))

    def _check_regime(self, regime: Regime | str) -> Regime:
        reg = as_regime(regime)
        reg.check_covers(self.treatments)
        return reg

    def _stage_index(self, stage: str | int) -> int:
        if isinstance(stage, str) and stage in self.treatments:
            return self.treatments.index(stage)
        if (
            not isinstance(stage, bool)
            and isinstance(stage, Integral)
            and 1 <= int(stage) <= len(self.treatments)
        ):
            return int(stage) - 1
        raise SpecificationError(
            f"stage must be a treatment name in {self.treatments} or a 1-based stage number "
            f"1..{len(self.treatments)}; got {stage!r}."
        )

    def _check_arms(self, treatment: str, arms: np.ndarray, regime: Regime) -> None:
        allowed = list(self.arms[treatment])
        bad = ~pd.Series(np.asarray(arms).ravel()).isin(allowed).to_numpy()
        if np.any(bad):
            shown = sorted({repr(a) for a in np.asarray(arms).ravel()[bad].tolist()})[:5]
            raise RegimeError(
                f"Regime {regime.name!r} assigns arm(s) {', '.join(shown)} at stage "
                f"{treatment!r} of scenario {self.name!r}; the arms are {allowed}."
            )

    def _choose(
        self,
        regime: Regime | None,
        treatment: str,
        history: pd.DataFrame,
        natural: np.ndarray | None,
    ) -> np.ndarray:
        """Treatments at one stage: the natural draw, or the regime's (or true optimal) rule."""
        if regime is None:
            assert natural is not None
            return natural
        if regime.follows_optimal(treatment):
            return self.true_optimal_treatment(history, treatment)
        arms = np.asarray(regime.assign(treatment, history))
        self._check_arms(treatment, arms, regime)
        ref = np.asarray(self.arms[treatment])
        return arms.astype(ref.dtype) if ref.dtype.kind in "iuf" else arms


def enumerate_static(treatments: list[str], arms: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every static regime over ``arms`` as a list of ``{treatment: arm}`` dicts."""
    out: list[dict[str, Any]] = [{}]
    for t in treatments:
        out = [{**d, t: a} for d in out for a in arms[t]]
    return out
