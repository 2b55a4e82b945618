"""bayesdtr: Bayesian dynamic treatment regimes."""

from __future__ import annotations

import sys

if sys.version_info < (3, 12):  # pragma: no cover - guarded by requires-python
    raise ImportError(
        f"bayesdtr needs Python >= 3.12 (PyMC 6); this interpreter is {sys.version.split()[0]}. "
        "Use a 3.12 interpreter (the repository's .python-version selects it under pyenv)."
    )

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import (
    BayesDTRError,
    DataError,
    FitError,
    PriorError,
    RegimeError,
    SpecificationError,
)
from bayesdtr.regimes import Regime

__version__ = "0.1.0"

__all__ = [
    "BayesDTRError",
    "DataError",
    "FitError",
    "KnownPropensity",
    "PriorError",
    "Regime",
    "RegimeError",
    "SpecificationError",
    "Stage",
    "__version__",
]
