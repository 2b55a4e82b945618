"""Exceptions raised by bayesdtr.

Every failure that a user can cause raises a subclass of :class:`BayesDTRError`, which itself
subclasses :class:`ValueError`. Messages name the argument or column, the value seen, what is
allowed, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BayesDTRError",
    "DataError",
    "SpecificationError",
    "PriorError",
    "RegimeError",
    "FitError",
    "BayesDTRWarning",
    "PositivityWarning",
    "ConvergenceWarning",
    "FileFormatError",
]


class BayesDTRError(ValueError):
    """Base class of every bayesdtr error."""


class DataError(BayesDTRError):
    """The data frame does not fit the specification (missing columns, NaNs, arms, ids)."""


class SpecificationError(BayesDTRError):
    """A stage, formula or model argument is invalid."""


class PriorError(BayesDTRError):
    """A prior override names an unknown parameter or has the wrong type."""


class RegimeError(BayesDTRError):
    """A regime is malformed or assigns an arm that is not feasible."""


class FitError(BayesDTRError):
    """An argument of ``fit`` or of a posterior method is invalid."""


class BayesDTRWarning(UserWarning):
    """Base class of every bayesdtr warning: the result exists but needs a look."""


class PositivityWarning(BayesDTRWarning):
    """Propensities near 0 or 1, or inverse-probability weights with a small effective sample size."""


class ConvergenceWarning(BayesDTRWarning):
    """Sampling diagnostics (divergences, R-hat, ESS) need attention; see ``post.diagnostics()``."""


class FileFormatError(BayesDTRError):
    """A posterior file cannot be read or written: missing, not netCDF, damaged, tampered with,
    or from a newer bayesdtr. The message names the file and what is wrong."""
