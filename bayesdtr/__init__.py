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
from bayesdtr.data.datasets import list_datasets, load_data
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import (
    BayesDTRError,
    DataError,
    FileFormatError,
    FitError,
    PriorError,
    RegimeError,
    SpecificationError,
)
from bayesdtr.model import DTRModel
from bayesdtr.posterior import DTRPosterior, load
from bayesdtr.regimes import Regime
from bayesdtr.simulate.scenarios import Scenario, list_scenarios, scenario

__all__ = [
    "BayesDTRError",
    "DTRModel",
    "DTRPosterior",
    "DataError",
    "FileFormatError",
    "FitError",
    "KnownPropensity",
    "PriorError",
    "Regime",
    "Scenario",
    "RegimeError",
    "SpecificationError",
    "Stage",
    "__version__",
    "list_datasets",
    "load",
    "load_data",
    "list_scenarios",
    "scenario",
]
