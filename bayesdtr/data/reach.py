r"""Which units reach each stage: ``applies=`` (by design) and dropout (``censoring=``).

A stage applies to the units its ``applies=`` selects (e.g. non-responders). A stage that
declares ``censoring=`` may also lose units before its decision: a unit *at risk* (it reached
every earlier stage it was due at, and this stage applies to it) whose treatment column is
missing has **dropped out**. It is neither dropped from the data nor treated as reaching the
stage: it keeps its earlier stages, leaves this and every later stage, and its outcome (and any
later column) may be missing. Dropout is monotone: a unit that dropped out before stage k is not
at risk at any later stage.

For each such stage, :class:`CensoringDesign` holds the data of the logistic model of remaining
up to the decision,

.. math::

    \Pr(\text{remain}_k = 1 \mid H) = \operatorname{logit}^{-1}(z_k(H)^\top \gamma_k),

fitted on the units at risk (``censoring=`` gives :math:`z_k`, a right-hand-side formula of
columns observed for all of them; see :mod:`bayesdtr.inference.dropout`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.matrices import (
    check_columns,
    check_no_nan,
    formula_vars,
    model_matrix,
    rows_text,
)
from bayesdtr.data.spec import Stage
from bayesdtr.data.validate import check_time_order, check_used_columns
from bayesdtr.exceptions import DataError, SpecificationError

__all__ = ["CensoringDesign", "applies_mask", "censoring_design", "dropout_masks", "dropout_hint"]

#: Labels of the two outcomes of the censoring model (code 0, code 1).
REMAIN_ARMS = ["dropped out", "remained"]


@dataclass
class CensoringDesign:
    """The data of one stage's dropout (censoring) model.

    Its attribute names are those of a two-arm :class:`~bayesdtr.data.design.StageDesign`'s
    propensity design, so the propensity model (:mod:`bayesdtr.models.propensity`) fits it:
    the "arm" is 1 (remained) or 0 (dropped out).

    Attributes
    ----------
    treatment : str
        The treatment of the stage the units may drop out before.
    position : int
        1-based stage number.
    formula : str
        The ``censoring=`` formula.
    at_risk : ndarray of int
        Positions (0..n-1) of the units at risk of dropping out before this decision.
    a : ndarray of int
        1 where the unit at risk remained (its treatment is observed), 0 where it dropped out.
    X_prop : ndarray
        The censoring design of the units at risk.
    prop_terms : list of str
        Its column names.
    """

    treatment: str
    position: int
    formula: str
    at_risk: np.ndarray
    a: np.ndarray
    X_prop: np.ndarray
    prop_terms: list[str]
    spec: Any = None

    arms = REMAIN_ARMS
    n_arms = 2

    @property
    def feasible(self) -> np.ndarray:
        return np.ones((len(self.at_risk), 2), dtype=bool)

    @property
    def dropped(self) -> np.ndarray:
        """Positions of the units that dropped out before this decision."""
        return self.at_risk[self.a == 0]

    @property
    def remained(self) -> np.ndarray:
        """Positions of the units at risk that reached this decision."""
        return self.at_risk[self.a == 1]


def dropout_masks(df: pd.DataFrame, stages: Sequence[Stage]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage: (units present before its decision, units that dropped out before it).

    Only stages that declare ``censoring=`` lose units; a unit present before stage k is one
    that has not dropped out before any earlier stage.
    """
    present = np.ones(len(df), dtype=bool)
    out = []
    for k, st in enumerate(stages):
        dropped = np.zeros(len(df), dtype=bool)
        if st.censoring is not None:
            if k == 0:
                raise SpecificationError(
                    f"Stage {st.treatment!r} (the first stage) declares censoring={st.censoring!r}; "
                    "a unit that leaves before the first decision never entered the study. "
                    "Declare censoring= on a later stage, and keep only the units that received "
                    "a first treatment."
                )
            check_columns(df, [st.treatment], f"Stage {st.treatment!r} (treatment)")
            at_risk = present & applies_mask(st, df)
            dropped = at_risk & df[st.treatment].isna().to_numpy()
        out.append((present.copy(), dropped))
        present &= ~dropped
    return out


def censoring_design(
    df: pd.DataFrame,
    stages: Sequence[Stage],
    k: int,
    present: np.ndarray,
    dropped: np.ndarray,
    outcome: str,
    when: Mapping[str, int] | None,
) -> CensoringDesign | None:
    """The censoring design of stage ``k`` (1-based), or None if it declares no ``censoring=``.

    The formula may read only columns known before the decision (not the outcome, this or a
    later treatment, this or a later reward), observed for every unit at risk.
    """
    st = stages[k - 1]
    if st.censoring is None:
        return None
    where = f"Stage {st.treatment!r} censoring={st.censoring!r}"
    treatments = [s.treatment for s in stages]
    future = (
        {outcome}
        | set(treatments[k - 1 :])
        | {s.reward for s in stages[k - 1 :] if s.reward is not None}
    )
    vars_ = formula_vars(st.censoring, where, set(map(str, df.columns)) | future)
    bad = sorted(vars_ & future)
    if bad:
        raise SpecificationError(
            f"{where} uses {bad}, which is not known when a unit drops out before decision "
            f"{st.treatment!r} (the outcome, this or a later treatment, or this or a later reward). "
            f"Use baseline covariates, earlier treatments {treatments[: k - 1]} and covariates "
            "measured before this decision."
        )
    check_columns(df, sorted(vars_), where)
    check_time_order(vars_, k, when, stages, where)
    at_risk = np.flatnonzero(present & applies_mask(st, df))
    check_no_nan(
        df,
        sorted(vars_),
        at_risk,
        where,
        "the censoring model needs them for every unit at risk of dropping out, including those "
        "that dropped out; use covariates measured before the dropout.",
    )
    check_used_columns(df, sorted(vars_), at_risk, where, covariates=True)
    remain = (~dropped[at_risk]).astype(np.int64)
    if remain.all():
        return None  # nobody dropped out: nothing to weight
    if not remain.any():
        raise DataError(
            f"{where}: every one of the {len(at_risk)} units at risk dropped out (treatment "
            f"{st.treatment!r} missing for all); nothing can be learned about this stage. Check the "
            "treatment column, or drop the stage."
        )
    Z, terms, spec = model_matrix(st.censoring, df.iloc[at_risk], where)
    return CensoringDesign(
        treatment=st.treatment,
        position=k,
        formula=st.censoring,
        at_risk=at_risk,
        a=remain,
        X_prop=Z,
        prop_terms=terms,
        spec=spec,
    )


def dropout_hint(df: pd.DataFrame, stages: Sequence[Stage], rows: pd.Index) -> str:
    """A sentence on declaring dropout, naming a stage whose treatment is also missing in ``rows``
    (empty when no undeclared stage's treatment is missing there)."""
    for st in stages[1:]:
        if (
            st.censoring is None
            and st.treatment in df.columns
            and df.loc[rows, st.treatment].isna().any()
        ):
            return (
                f" If these units dropped out before decision {st.treatment!r} (its treatment is "
                "missing too), declare it: bd.Stage("
                f"{st.treatment!r}, ..., censoring='<covariates known before the dropout>'), "
                "a model of remaining in the study whose inverse probabilities reweight the units "
                "that stayed."
            )
    return ""


def applies_mask(stage: Stage, df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the units that reach ``stage`` (its ``applies=`` query or mask), checked."""
    where = f"Stage {stage.treatment!r} applies="
    if stage.applies is None:
        return np.ones(len(df), dtype=bool)
    if isinstance(stage.applies, str):
        try:
            mask = df.eval(stage.applies)
        except Exception as err:
            raise SpecificationError(
                f"{where}{stage.applies!r} could not be evaluated as a DataFrame.query string: "
                f"{err}. Write a condition on the data's columns {list(df.columns)[:20]}, e.g. "
                "'R == 0', or pass a boolean mask."
            ) from err
        used = [
            c
            for c in df.columns
            if isinstance(c, str)
            and re.search(rf"(?<![\w`]){re.escape(c)}(?![\w`])|`{re.escape(c)}`", stage.applies)
        ]
        for col in used:
            na = df[col].isna().to_numpy()
            if na.any():
                raise DataError(
                    f"{where}{stage.applies!r} uses column {col!r}, which is missing in rows "
                    f"{rows_text(df.index[na])}; a comparison with a missing value is False, so "
                    "these units would silently skip the stage. Fill the column, or pass a "
                    "boolean mask that decides for them."
                )
    else:
        mask = stage.applies
        if isinstance(mask, pd.Series) and not mask.index.equals(df.index):
            raise SpecificationError(
                f"{where} is a boolean Series whose index does not match the data's index, so "
                "its entries cannot be matched to rows. Build it from the same DataFrame (e.g. "
                "applies=df['R'] == 0), pass .to_numpy(), or use a query string such as 'R == 0'."
            )
    if isinstance(mask, pd.Series) and isinstance(mask.dtype, pd.BooleanDtype):
        if mask.isna().any():
            raise DataError(
                f"{where} has missing values in rows {rows_text(mask.index[mask.isna().to_numpy()])}; "
                "whether these units reach the stage is unknown. Fill them with True or False."
            )
        mask = mask.to_numpy(dtype=bool)
    arr = np.asarray(mask)
    if arr.shape != (len(df),) or arr.dtype != bool:
        raise SpecificationError(
            f"{where} must be a query string or a boolean mask with one entry per row "
            f"({len(df)} rows); got dtype {arr.dtype} and shape {arr.shape}. Pass e.g. "
            "applies='R == 0' or applies=(df['R'] == 0).to_numpy()."
        )
    if not arr.any():
        raise DataError(
            f"{where}{stage.applies if isinstance(stage.applies, str) else '<mask>'!r} selects no "
            "unit (empty subset). Check the condition, or drop the stage."
        )
    return arr
