"""The result type and small helpers of the simulation-study method protocol.

Kept apart from :mod:`bayesdtr.simulate.methods` so that the baselines
(:mod:`bayesdtr.baselines.registry`) can return :class:`MethodResult` without importing the
method resolver that looks them up (no import circle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.regimes import Regime

__all__ = ["MethodResult", "equal_tailed", "model_for", "psi_name", "seed_int"]


def psi_name(treatment: str, term: str, arm: Any) -> str:
    """Estimand name of the contrast coefficient of ``term`` for ``arm`` at stage ``treatment``.

    The intercept is called ``"Intercept"`` (a truth's ``"1"`` is renamed to it).

    Examples
    --------
    >>> psi_name("A1", "1", 1)
    'psi[A1][Intercept][1]'
    """
    term = "Intercept" if str(term) == "1" else str(term)
    return f"psi[{treatment}][{term}][{arm}]"


def equal_tailed(draws: Any, level: float) -> tuple[float, float, float]:
    """Posterior mean and the equal-tailed interval at ``level`` of a set of draws.

    Examples
    --------
    >>> [round(v, 6) for v in equal_tailed(np.arange(101.0), 0.9)]
    [50.0, 5.0, 95.0]
    """
    x = np.asarray(draws, dtype=float).ravel()
    lo, hi = np.quantile(x, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(x.mean()), float(lo), float(hi)


def seed_int(seed_sequence: np.random.SeedSequence) -> int:
    """A non-negative 31-bit integer seed drawn from ``seed_sequence`` (for APIs that take ints)."""
    return int(seed_sequence.generate_state(1, dtype=np.uint32)[0] >> 1)


@dataclass
class MethodResult:
    """What a method returns for one replicate.

    Attributes
    ----------
    estimates : dict of str to (float, float, float)
        ``estimand -> (estimate, lower, upper)``; intervals at the study's ``level``.
    rule : Regime or None
        The estimated rule, scored against the scenario's truth.
    decisions : dict of str to ndarray, or None
        Arm labels of the estimated rule per treatment for the rows of ``df``.
    """

    estimates: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    rule: Regime | None = None
    decisions: dict[str, np.ndarray] | None = None


def model_for(df: pd.DataFrame, scenario: Any, stages: list) -> Any:
    """The :class:`~bayesdtr.DTRModel` of ``df`` with the study's stages and the scenario's outcome."""
    from bayesdtr.model import DTRModel

    return DTRModel(
        df,
        stages,
        outcome=getattr(scenario, "outcome", "Y"),
        family=getattr(scenario, "family", "gaussian"),
        group=getattr(scenario, "group", None),
    )
