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

from typing import TYPE_CHECKING

from bayesdtr._version import __version__
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

#: Public names imported on first access (issue 13: ``import bayesdtr`` stays under a second).
#: Each maps to the module that defines it; ``bd.DTRModel`` imports ``bayesdtr.model`` then.
LAZY: dict[str, str] = {
    "BART": "bayesdtr.data.bart_spec",
    "list_datasets": "bayesdtr.data.datasets",
    "load_data": "bayesdtr.data.datasets",
    "KnownPropensity": "bayesdtr.data.spec",
    "Stage": "bayesdtr.data.spec",
    "load": "bayesdtr.loading",
    "DTRModel": "bayesdtr.model",
    "plot_contrasts": "bayesdtr.plotting",
    "plot_decision": "bayesdtr.plotting",
    "plot_diagnostics": "bayesdtr.plotting",
    "plot_regret": "bayesdtr.plotting",
    "plot_shrinkage": "bayesdtr.plotting",
    "plot_value": "bayesdtr.plotting",
    "DTRPosterior": "bayesdtr.posterior",
    "Regime": "bayesdtr.regimes",
    "write_report": "bayesdtr.report",
    "MethodResult": "bayesdtr.simulate.methods",
    "Scenario": "bayesdtr.simulate.scenarios",
    "list_scenarios": "bayesdtr.simulate.scenarios",
    "scenario": "bayesdtr.simulate.scenarios",
    "StudyResult": "bayesdtr.simulate.study",
    "simulation_study": "bayesdtr.simulate.study",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; never run
    from bayesdtr.data.bart_spec import BART
    from bayesdtr.data.datasets import list_datasets, load_data
    from bayesdtr.data.spec import KnownPropensity, Stage
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


def __getattr__(name: str) -> object:
    """Import a public name's module on first access and cache the name here (PEP 562).

    A submodule (``bd.io``) is imported too, as ``import bayesdtr.io`` would; anything else is
    an ``AttributeError``, as for any module.
    """
    import importlib

    if name in LAZY:
        value = getattr(importlib.import_module(LAZY[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))


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
