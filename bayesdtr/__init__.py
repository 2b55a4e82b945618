"""bayesdtr: Bayesian dynamic treatment regimes.

Each stage has a hierarchical Bayesian outcome (Q-function) model and a propensity model;
posterior draws are carried backwards through the stages, so the optimal rule, P(arm optimal)
and regime values come out as full posteriors.
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 12):  # noqa: UP036  # pragma: no cover - guarded by requires-python
    raise ImportError(
        f"bayesdtr needs Python >= 3.12 (PyMC 6); this interpreter is {sys.version.split()[0]}. "
        "Use a 3.12 interpreter (the repository's .python-version selects it under pyenv)."
    )

from bayesdtr._version import __version__
from bayesdtr.data.bart_spec import BART
from bayesdtr.data.datasets import list_datasets, load_data
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import (
    BayesDTRError,
    BayesDTRWarning,
    ConvergenceWarning,
    DataError,
    FileFormatError,
    FitError,
    PositivityWarning,
    PriorError,
    RegimeError,
    SpecificationError,
)
from bayesdtr.loading import load
from bayesdtr.model import DTRModel
from bayesdtr.plotting import (
    plot_contrasts,
    plot_decision,
    plot_diagnostics,
    plot_regret,
    plot_shrinkage,
    plot_value,
)
from bayesdtr.posterior import DTRPosterior
from bayesdtr.regimes import Regime
from bayesdtr.report import write_report
from bayesdtr.simulate.methods import MethodResult
from bayesdtr.simulate.scenarios import Scenario, list_scenarios, scenario
from bayesdtr.simulate.study import StudyResult, simulation_study

__all__ = [
    "BART",
    "BayesDTRError",
    "BayesDTRWarning",
    "ConvergenceWarning",
    "PositivityWarning",
    "DTRModel",
    "DTRPosterior",
    "DataError",
    "FileFormatError",
    "FitError",
    "KnownPropensity",
    "MethodResult",
    "PriorError",
    "Regime",
    "Scenario",
    "RegimeError",
    "SpecificationError",
    "Stage",
    "StudyResult",
    "__version__",
    "list_datasets",
    "load",
    "load_data",
    "plot_contrasts",
    "plot_decision",
    "plot_diagnostics",
    "plot_regret",
    "plot_shrinkage",
    "plot_value",
    "list_scenarios",
    "scenario",
    "simulation_study",
    "write_report",
]
