"""The arguments of a model, checked before any design is built.

:func:`check_arguments` (the data frame and the list of stages), :func:`check_roles` (each
column plays one role) and :func:`check_id` (one row per unit), called in that order by
:func:`bayesdtr.data.design.build_design`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayesdtr.constants import FAMILIES
from bayesdtr.data.matrices import check_columns, rows_text
from bayesdtr.data.spec import Stage
from bayesdtr.data.validate import check_frame
from bayesdtr.exceptions import DataError, SpecificationError

__all__ = ["check_arguments", "check_id", "check_roles"]


def check_roles(stages: Sequence[Stage], outcome: str, group: str | None, id: str | None) -> None:
    """Each column plays one role: a treatment is not the outcome, a reward, the group or the id."""
    others = {"outcome=": outcome, "group=": group, "id=": id}
    rewards: dict[str, str] = {}
    for st in stages:
        for arg, col in others.items():
            if col is not None and st.treatment == col:
                raise SpecificationError(
                    f"Stage {st.treatment!r}: the treatment column is also {arg}{col!r}. A "
                    "column plays one role; use a different column for one of them."
                )
        if st.reward is None:
            continue
        treatments = [s.treatment for s in stages]
        if st.reward == outcome or st.reward in treatments:
            what = "the final outcome" if st.reward == outcome else "a treatment column"
            raise SpecificationError(
                f"Stage {st.treatment!r} reward={st.reward!r} is {what}. A reward is an "
                "intermediate outcome observed after this stage's treatment (the final outcome is "
                "added once, by outcome=); use another column or drop reward=."
            )
        if st.reward in rewards:
            raise SpecificationError(
                f"reward={st.reward!r} is used by stages {rewards[st.reward]!r} and "
                f"{st.treatment!r}; it would be counted twice in the return. Give each stage its "
                "own reward column."
            )
        rewards[st.reward] = st.treatment


def check_arguments(data: pd.DataFrame, stages: Sequence[Stage], outcome: str, family: str) -> None:
    """The data is a non-empty DataFrame, ``stages`` a list of Stages with distinct treatments."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame (one row per unit); got {type(data).__name__}.")
    if len(data) == 0:
        raise DataError("data has no rows; bayesdtr needs one row per unit.")
    check_frame(data)
    if isinstance(stages, Stage | str) or not isinstance(stages, Sequence) or not stages:
        raise SpecificationError(
            "stages must be a non-empty list of bd.Stage objects in time order, e.g. "
            f"[bd.Stage('A1'), bd.Stage('A2')]; got {type(stages).__name__} {stages!r:.80}."
        )
    for i, s in enumerate(stages):
        if not isinstance(s, Stage):
            raise SpecificationError(
                f"stages[{i}] must be a bd.Stage; got {type(s).__name__} {s!r:.80}. Wrap it: "
                "bd.Stage('A1', main=..., contrast=...)."
            )
    treatments = [s.treatment for s in stages]
    dup = sorted({t for t in treatments if treatments.count(t) > 1})
    if dup:
        raise SpecificationError(
            f"Treatment column(s) {dup} appear in more than one stage (stages {treatments}); each "
            "stage needs its own treatment column."
        )
    if family not in FAMILIES:
        raise SpecificationError(
            f"family={family!r} is not supported; use {', '.join(repr(f) for f in FAMILIES[:-1])} or {FAMILIES[-1]!r}."
        )
    if not isinstance(outcome, str):
        raise SpecificationError(f"outcome= must be a column name; got {outcome!r}.")


def check_id(df: pd.DataFrame, id: str | None) -> None:
    """One row per unit: unique ``id=`` values, else a unique index."""
    if id is not None:
        check_columns(df, [id], "id=")
        dup_ids = df[id][df[id].duplicated(keep=False)]
        if len(dup_ids):
            raise DataError(
                f"id column {id!r} has duplicate values "
                f"{sorted((v.item() if isinstance(v, np.generic) else v for v in dup_ids.unique()), key=str)[:8]} "
                f"in rows {rows_text(dup_ids.index)}. The data must be wide, one row per unit; "
                "reshape long data (one row per visit) to wide first."
            )
    elif not df.index.is_unique:
        raise DataError(
            "The data's index has duplicate labels; errors refer to rows by label, so reset it "
            "(df.reset_index(drop=True)) or pass id=."
        )
