"""Frequentist baselines fitted to the same :class:`~bayesdtr.DTRModel` specification.

:func:`qlearning` is OLS Q-learning with classical standard errors and a vectorized
nonparametric bootstrap of the whole backward induction; :func:`m_out_of_n` is its adaptive
m-out-of-n bootstrap (Chakraborty, Laber and Zhao 2013); :func:`crossfit_aipw` is a cross-fitted
AIPW Wald interval for the value of the estimated optimal rule; :func:`ldt_rmst` is the
Lunceford-Davidian-Tsiatis inverse-weighted restricted mean survival of the embedded regimes of
a two-stage survival SMART (the DTR package's estimator).
"""

from bayesdtr.baselines.crossfit_aipw import CrossFitAIPWResult, crossfit_aipw
from bayesdtr.baselines.ldt import ldt_rmst
from bayesdtr.baselines.qlearning import (
    QLearningResult,
    QLearningStage,
    m_out_of_n,
    nonregularity,
    qlearning,
)

__all__ = [
    "CrossFitAIPWResult",
    "QLearningResult",
    "QLearningStage",
    "crossfit_aipw",
    "ldt_rmst",
    "m_out_of_n",
    "nonregularity",
    "qlearning",
]
