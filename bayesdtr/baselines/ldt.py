r"""The Lunceford-Davidian-Tsiatis estimator: restricted mean survival of SMART regimes.

A two-stage SMART with a time-to-event outcome (the design of the DTR package's ``ldt``,
``wrse``, ``lr``, ``ph`` and ``chr`` datasets): every unit is randomized at stage 1 to an arm
x; responders (R = 1) are randomized again to a second-stage arm z, non-responders are not.
The embedded regime "x, then z if responding" is followed by every non-responder of arm x and by
the responders of arm x who got z. Lunceford, Davidian and Tsiatis (2002, *Biometrics*
58:48-57) estimate its restricted mean survival time by inverse weighting, within arm x:

.. math::

    Q_i = (1 - R_i) + R_i \frac{1\{Z_i = z\}}{\hat\pi_z}, \qquad
    w_i = \frac{\Delta_i Q_i}{\hat K(V_i)}, \qquad
    \hat\mu_{xz} = \frac{\sum_i w_i V_i}{\sum_i w_i},

with :math:`\hat\pi_z` the share of arm x's responders assigned z, :math:`V_i = \min(T_i,
C_i, \tau)` the observed time restricted to the horizon :math:`\tau`, :math:`\Delta_i = 1` if
:math:`\min(T_i, \tau)` is observed (an event, or follow-up reaching :math:`\tau`), and
:math:`\hat K` the Kaplan-Meier estimate of the censoring survival function (right-continuous,
evaluated at :math:`V_i`). The standard error is their sandwich formula with the
censoring-martingale term, as the DTR package (version 1.7, ``LDT.mean.estimator``) computes
it; this module follows the formulas of that function's source, re-derived here in NumPy. The
DTR package's own data restrict the times at :math:`\tau` before estimating (the simulated
death times are ``pmin(T, L)``); with ``horizon=`` this function does the same restriction for
any data.

What was checked: against the exact RMST of the LDT simulation design (exponential stages;
``tests/test_ldt.py``, 1e6-unit Monte Carlo truth) the estimate is unbiased, and over 300
replicates its Wald interval covers at the nominal rate. The DTR package itself (R) was not
run here, so agreement with its printed numbers is not verified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.exceptions import DataError

__all__ = ["ldt_rmst"]


def ldt_rmst(
    data: pd.DataFrame,
    horizon: float,
    *,
    first: str = "X",
    response: str = "R",
    second: str = "Z",
    time: str = "U",
    event: str = "delta",
    level: float = 0.95,
) -> pd.DataFrame:
    r"""Restricted mean survival of every embedded regime of a two-stage SMART (LDT 2002).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit (the DTR package's layout: ``bd.load_data("ldt")``).
    horizon : float
        Restriction time :math:`\tau` (the DTR package's ``L``), positive and finite.
    first, response, second : str
        Columns of the stage-1 arm, the response indicator (0/1) and the stage-2 arm (used
        only where ``response`` is 1).
    time, event : str
        Observed time and event indicator (1 = event, 0 = censored).
    level : float, default 0.95
        Level of the Wald intervals.

    Returns
    -------
    pandas.DataFrame
        One row per regime (index ``"<first>=x, <second>=z"``), columns ``first``,
        ``second``, ``estimate``, ``se``, ``lower``, ``upper`` and ``n`` (units of arm x).

    Raises
    ------
    DataError
        If a column is missing, has missing values or values outside what is allowed, an arm
        has no responders on some second-stage arm, or every unit of an arm has zero weight.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> from bayesdtr.baselines import ldt_rmst
    >>> tab = ldt_rmst(bd.load_data("ldt"), horizon=1.5)
    >>> list(tab.index)
    ['X=0, Z=0', 'X=0, Z=1', 'X=1, Z=0', 'X=1, Z=1']
    >>> bool(((tab.estimate > 0) & (tab.estimate < 1.5)).all())
    True
    """
    tau = _check(data, horizon, level, first, response, second, time, event)
    z_level = float(np.sqrt(2.0) * _erfinv(level))
    rows = []
    for x in sorted(data[first].unique().tolist()):
        arm = data[data[first] == x]
        r = arm[response].to_numpy(dtype=float)
        z = arm[second].to_numpy()
        levels = sorted(pd.unique(z[r == 1]).tolist())
        if len(levels) == 0:
            raise DataError(
                f"{first}={x} has no responders ({response} == 1), so no second-stage arm can be "
                "weighted. The LDT estimator needs responders randomized at stage 2 in every arm."
            )
        for zz in levels:
            est, se = _one_regime(arm, r, z == zz, tau, time, event)
            rows.append(
                {
                    "regime": f"{first}={x}, {second}={zz}",
                    first: x,
                    second: zz,
                    "estimate": est,
                    "se": se,
                    "lower": est - z_level * se,
                    "upper": est + z_level * se,
                    "n": len(arm),
                }
            )
    return pd.DataFrame(rows).set_index("regime")


def _one_regime(
    arm: pd.DataFrame, r: np.ndarray, on_z: np.ndarray, tau: float, time: str, event: str
) -> tuple[float, float]:
    n = len(arm)
    v_raw = arm[time].to_numpy(dtype=float)
    d_raw = arm[event].to_numpy(dtype=float)
    v = np.minimum(v_raw, tau)
    delta = np.where(v_raw >= tau, 1.0, d_raw)  # min(T, tau) observed: event or reached tau
    pi_z = float(np.sum(r * on_z) / np.sum(r))
    q = (1.0 - r) + r * on_z / pi_z
    k = _censoring_km(v_raw, d_raw, v)
    ok = k > 0
    if not np.any(ok & (delta * q > 0)):
        raise DataError(
            "Every unit of this arm that follows the regime is censored before the horizon "
            f"(horizon={tau:g}); the LDT estimate is undefined. Use a shorter horizon."
        )
    kk = np.where(ok, k, 1.0)
    w = np.where(ok, delta * q / kk, 0.0)
    mu = float(np.sum(w * v) / np.sum(w))
    # sandwich variance with the censoring-martingale term (LDT 2002; DTR's LDT.mean.estimator)
    at_risk = v[None, :] >= v[:, None]  # [k, j]: V_j >= V_k
    base = np.where(ok, delta / kk, 0.0)
    s = 1.0 - (base[None, :] * (v[None, :] <= v[:, None])).sum(axis=1) / base.sum()
    resid = q * (v - mu)
    g = np.where(s != 0, (at_risk * (base * resid)[None, :]).sum(axis=1) / (n * np.where(s != 0, s, 1.0)), 0.0)
    e = (at_risk * base[None, :] * (resid[None, :] - g[:, None]) ** 2).sum(axis=1) / n
    y = at_risk.sum(axis=1)
    cens_term = np.where(ok & (delta == 0) & (v <= tau), e / (kk * y), 0.0)
    var = float(np.sum(base * q**2 * (v - mu) ** 2) / n**2 + np.sum(cens_term) / n)
    return mu, float(np.sqrt(var))


def _censoring_km(v_raw: np.ndarray, d_raw: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kaplan-Meier estimate of P(C > t) (censoring = the event), right-continuous, at ``at``."""
    times = np.unique(v_raw[d_raw == 0])
    if len(times) == 0:
        return np.ones_like(at)
    n_risk = np.array([(v_raw >= t).sum() for t in times], dtype=float)
    n_cens = np.array([((v_raw == t) & (d_raw == 0)).sum() for t in times], dtype=float)
    surv = np.cumprod(1.0 - n_cens / n_risk)
    idx = np.searchsorted(times, at, side="right") - 1
    return np.where(idx >= 0, surv[np.maximum(idx, 0)], 1.0)


def _erfinv(level: float) -> float:
    from scipy.special import erfinv

    return float(erfinv(level))


def _check(data: Any, horizon: Any, level: Any, first, response, second, time, event) -> float:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame; got {type(data).__name__}.")
    cols = {"first": first, "response": response, "second": second, "time": time, "event": event}
    for arg, col in cols.items():
        if col not in data.columns:
            raise DataError(
                f"{arg}={col!r} is not a column of data; columns are {list(data.columns)}. "
                f"Pass {arg}= the column's name."
            )
    for arg in ("first", "response", "time", "event"):
        col = cols[arg]
        if data[col].isna().any():
            raise DataError(
                f"Column {col!r} ({arg}=) has {int(data[col].isna().sum())} missing values; the LDT "
                "estimator needs it for every unit. Drop or impute those rows explicitly."
            )
    if data.loc[data[response] == 1, second].isna().any():
        raise DataError(f"Column {second!r} (second=) is missing for some responders ({response} == 1).")
    for arg in ("response", "event"):
        col = cols[arg]
        bad = ~data[col].isin([0, 1])
        if bad.any():
            raise DataError(
                f"Column {col!r} ({arg}=) must be 0/1; saw {sorted(pd.unique(data.loc[bad, col]).tolist())[:5]}."
            )
    t = pd.to_numeric(data[time], errors="coerce")
    if t.isna().any() or (t < 0).any() or not np.isfinite(t).all():
        raise DataError(f"Column {time!r} (time=) must hold non-negative finite numbers.")
    if isinstance(horizon, bool) or not isinstance(horizon, int | float | np.integer | np.floating):
        raise DataError(f"horizon= must be a positive number (the restriction time tau); got {horizon!r}.")
    tau = float(horizon)
    if not (np.isfinite(tau) and tau > 0):
        raise DataError(f"horizon= must be a positive finite number; got {horizon!r}.")
    if not (isinstance(level, float) and 0 < level < 1):
        raise DataError(f"level= must be a number in (0, 1), e.g. 0.95; got {level!r}.")
    return tau
