r"""Censored survival outcomes in the data: the event column, stage times, and censored-time marks.

A survival analysis (``family="lognormal"`` or ``"weibull"``) reads

- ``outcome=``: the **total** time :math:`T_i` from the first decision to the event or to
  censoring (> 0, no NaN);
- ``event=``: 1 if :math:`T_i` is an event time, 0 if it is censored (no NaN, nothing else);
- ``reward=`` of every stage but the last: the time :math:`R_{k,i}` from stage k's decision to
  stage k+1's (DTRreg DWSurv's per-stage time :math:`T_k`; for a unit that does not reach stage
  k+1 it is not used). The last stage has no ``reward=``.

So stage k's decision is made at :math:`E_{k,i} = \sum_{j<k} R_{j,i}` and the time left from it
is :math:`T_i - E_{k,i}`, which must be positive for every unit that reaches stage k.

**Censored-time marks.** Shipped survival datasets carry ``df.attrs["bayesdtr_censored"]``
(column -> its event column; pandas keeps ``attrs`` through ``dropna``, column selection,
``loc``/``iloc``, ``query``, ``assign``, ``copy``, ``merge`` and ``concat``, measured with pandas
3.1). A model with a non-survival family whose outcome or reward is such a column is refused
(:func:`check_censored_marks`): a censored time used as if it were an event time biases every
estimate downwards without any sign of it. To really treat a marked column as uncensored, drop
the mark (``df.attrs["bayesdtr_censored"].pop("T2")``) or declare ``event=`` a column of ones
with a survival family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayesdtr.data.matrices import check_columns, check_no_nan, rows_text
from bayesdtr.data.spec import Stage
from bayesdtr.exceptions import DataError, SpecificationError

__all__ = [
    "CENSORED_ATTR",
    "SURVIVAL_FAMILIES",
    "check_censored_marks",
    "check_survival_arguments",
    "event_values",
    "mark_censored",
    "stage_times",
]

#: The ``DataFrame.attrs`` key marking censored-time columns: {time column: event column}.
CENSORED_ATTR = "bayesdtr_censored"

#: Families whose outcome is a right-censored time.
SURVIVAL_FAMILIES = ("lognormal", "weibull")


def mark_censored(df: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Mark ``columns`` (time column -> event column) of ``df`` as censored times, in place.

    Examples
    --------
    >>> df = pd.DataFrame({"T": [1.0, 2.0], "d": [1, 0]})
    >>> mark_censored(df, {"T": "d"}).dropna().attrs[CENSORED_ATTR]
    {'T': 'd'}
    """
    df.attrs[CENSORED_ATTR] = dict(df.attrs.get(CENSORED_ATTR, {})) | dict(columns)
    return df


def check_censored_marks(
    data: pd.DataFrame, stages: Sequence[Stage], outcome: str, family: str, event: str | None
) -> None:
    """Refuse a marked censored-time column used as an uncensored outcome or reward.

    Raises
    ------
    DataError
        If ``family`` is not a survival family and ``outcome=`` or a ``reward=`` is a column
        that ``data.attrs["bayesdtr_censored"]`` marks.
    """
    if family in SURVIVAL_FAMILIES:
        return
    marks = data.attrs.get(CENSORED_ATTR) or {}
    if not isinstance(marks, Mapping):
        return
    used = [("outcome=", outcome)] + [
        (f"Stage {s.treatment!r} reward=", s.reward) for s in stages if s.reward
    ]
    for where, col in used:
        if col in marks:
            ev = marks[col]
            raise DataError(
                f"{where} {col!r} is a right-censored time (its event indicator is column {ev!r}; "
                f"data.attrs[{CENSORED_ATTR!r}] marks it), but family={family!r} would treat every "
                f"censored time as an event time and bias the result downwards. Declare the "
                f"censoring: outcome= the total time from the first decision, event={ev!r}, "
                "family='lognormal' (or 'weibull'), and each earlier stage's reward= its time to "
                "the next decision (see bayesdtr.data.survival). To treat the column as "
                f"uncensored on purpose, drop the mark: data.attrs[{CENSORED_ATTR!r}].pop({col!r})."
            )


def event_values(df: pd.DataFrame, event: str, outcome: str, y: np.ndarray) -> np.ndarray:
    """The event indicator as floats 0/1, after checking it and that every time is positive.

    Raises
    ------
    DataError
        If ``event`` is missing, not numeric, has NaN or values other than 0/1, or if an outcome
        time is not positive.
    """
    check_columns(df, [event], "event=")
    col = df[event]
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise DataError(
            f"event column {event!r} has dtype {col.dtype}; it must be 0/1 (1 = the time in "
            f"{outcome!r} is an event, 0 = censored). Recode it, e.g. df[{event!r}].map({{...}})."
        )
    n = len(df)
    check_no_nan(df, [event], np.arange(n), "event=", "every unit needs 0 (censored) or 1 (event).")
    ev = col.to_numpy(dtype=float)
    bad = ~np.isin(ev, (0.0, 1.0))
    if bad.any():
        raise DataError(
            f"event column {event!r} must be coded 0/1 (1 = event, 0 = censored); saw values "
            f"{[float(v) for v in np.unique(ev[bad])[:6]]} in rows {rows_text(df.index[bad])}. Recode it."
        )
    nonpos = ~(y > 0)
    if nonpos.any():
        raise DataError(
            f"outcome {outcome!r} is a survival time and must be > 0; saw {[float(v) for v in np.unique(y[nonpos])[:6]]} "
            f"in rows {rows_text(df.index[nonpos])}. A time of 0 has no log; check the time origin "
            "(the first decision) or add a small offset yourself."
        )
    return ev


def stage_times(
    df: pd.DataFrame,
    stages: Sequence[Stage],
    units: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    y: np.ndarray,
    outcome: str,
) -> None:
    """Check that the stage times add up: rewards >= 0, none on the last stage, time left > 0.

    ``units[k]`` are the positions of stage k's units and ``rewards[k]`` stage k's reward of
    every unit (0 outside the stage).

    Raises
    ------
    SpecificationError
        If the last stage has ``reward=``, or a stage reached by units follows a stage without
        ``reward=``.
    DataError
        If a stage time is negative, or a unit reaches stage k with no time left
        (:math:`T_i - E_{k,i} \\le 0`).
    """
    K = len(stages)
    if stages[-1].reward is not None:
        raise SpecificationError(
            f"Stage {stages[-1].treatment!r} reward={stages[-1].reward!r}: with a survival family "
            f"the last stage has no reward; its time is what is left of outcome {outcome!r}. "
            "Drop reward= from the last stage."
        )
    elapsed = np.zeros(len(df))
    for k in range(K):
        st = stages[k]
        if k > 0 and len(units[k]) and stages[k - 1].reward is None:
            raise SpecificationError(
                f"Stage {st.treatment!r} is reached by {len(units[k])} units, but stage "
                f"{stages[k - 1].treatment!r} has no reward=. With a survival family, reward= of "
                "each stage but the last is the time from its decision to the next decision "
                "(DWSurv's per-stage time), so that the time left at each decision is known."
            )
        left = y[units[k]] - elapsed[units[k]]
        bad = ~(left > 0)
        if bad.any():
            raise DataError(
                f"Stage {st.treatment!r}: {int(bad.sum())} units reach it with no time left "
                f"(outcome {outcome!r} minus the earlier stages' reward= times is <= 0) in rows "
                f"{rows_text(df.index[units[k][bad]])}. The earlier stage times must be shorter "
                "than the total time of every unit that reaches this stage."
            )
        if st.reward is not None:
            neg = rewards[k][units[k]] < 0
            if neg.any():
                raise DataError(
                    f"Stage {st.treatment!r} reward={st.reward!r} is a stage time and must be >= 0; "
                    f"negative in rows {rows_text(df.index[units[k][neg]])}."
                )
        elapsed = elapsed + rewards[k]


def check_survival_arguments(family: str, event: str | None, outcome: str) -> None:
    """``event=`` goes with a survival family and a survival family needs ``event=``.

    Raises
    ------
    SpecificationError
        If one is given without the other.
    """
    if family in SURVIVAL_FAMILIES and event is None:
        raise SpecificationError(
            f"family={family!r} models outcome {outcome!r} as a right-censored time and needs "
            "event= the 0/1 column saying which times are events (1) and which are censored (0). "
            "Pass event='...' (a column of ones if nothing is censored)."
        )
    if event is not None and family not in SURVIVAL_FAMILIES:
        raise SpecificationError(
            f"event={event!r} declares outcome {outcome!r} a censored time, but family={family!r} "
            f"has no censoring; use family='lognormal' or 'weibull' (log-time AFT models)."
        )
    if event is not None and not isinstance(event, str):
        raise SpecificationError(f"event= must be a column name; got {event!r}.")
