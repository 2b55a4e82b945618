"""``bd.load``: a posterior from a netCDF file written by :meth:`DTRPosterior.to_netcdf`.

It sits above :mod:`bayesdtr.posterior` (which it builds) and :mod:`bayesdtr.io` (which reads the
file and checks every part); neither of those imports it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from bayesdtr.data.spec import Stage
from bayesdtr.io import read_netcdf
from bayesdtr.posterior import DTRPosterior

__all__ = ["load"]


def load(path: str | os.PathLike, *, stages: Sequence[Stage] | None = None) -> DTRPosterior:
    """Load a posterior written by :meth:`DTRPosterior.to_netcdf`.

    Loading reads typed arrays only and evaluates no text from the file: the stored design
    matrices answer every query on the fitted units (``q_values``, ``prob_optimal``,
    ``optimal_treatment``, ``value`` of any regime with any method, ``compare``, ``rule``), with the
    same numbers as before saving. Formula text in the file is kept for reading only. A censored
    survival posterior comes back with its event column and AFT scale draws (ask
    ``value(regime, horizon=tau)``; its file has no ``/value`` node), a posterior with dropout with
    its censoring models' draws, from which the same weights are recomputed.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``post.to_netcdf``.
    stages : list of Stage or None
        Your own ``bd.Stage`` objects (matched by treatment name), needed to query *new* data:
        their formulas (and ``feasible=`` rules) are evaluated on the stored data and must
        reproduce the stored design matrices exactly, or loading is refused. Formulas are code
        (formulaic evaluates Python in them), so pass only formulas you trust.

    Returns
    -------
    DTRPosterior

    Raises
    ------
    FileFormatError
        The path is missing or a folder, the file is not a readable bayesdtr file (truncated,
        empty, random bytes), was written by a newer bayesdtr, or its contents are inconsistent
        (NaN draws, shapes, ancestors, settings, seeds).
    SpecificationError
        ``stages`` do not name the fitted treatments or do not reproduce the stored design.

    Examples
    --------
    >>> import os, tempfile
    >>> import bayesdtr as bd
    >>> df = bd.load_data("bmi")
    >>> df["y"] = -100 * (df.month12BMI - df.baselineBMI) / df.baselineBMI
    >>> stages = [bd.Stage("A1", main="baselineBMI", contrast="1 + baselineBMI"),
    ...           bd.Stage("A2", main="month4BMI", contrast="1 + month4BMI")]
    >>> post = bd.DTRModel(df, stages, outcome="y").fit(draws=100, chains=2, random_seed=1,
    ...                                                  progressbar=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "post.nc")
    >>> post.to_netcdf(path)
    >>> back = bd.load(path)
    >>> bool((back.value("optimal") == post.value("optimal")).all())
    True
    >>> new = bd.load(path, stages=stages).prob_optimal(stage=2, data=df.head(3))
    """
    return DTRPosterior.from_parts(read_netcdf(path, stages=stages))
