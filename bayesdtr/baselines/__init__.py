"""Frequentist baselines fitted to the same :class:`~bayesdtr.DTRModel` specification.

:func:`qlearning` is OLS Q-learning with classical standard errors and a vectorized
nonparametric bootstrap of the whole backward induction.
"""

from bayesdtr.baselines.qlearning import QLearningResult, QLearningStage, qlearning

__all__ = ["QLearningResult", "QLearningStage", "qlearning"]
