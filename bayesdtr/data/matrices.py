"""Formulas to design matrices: the columns a formula reads, model matrices, arm levels, feasible sets.

The building blocks of :func:`~bayesdtr.data.design.build_design` and of the evaluation of a
fitted stage design on new data. Errors name the stage, the argument and the fix.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import Stage
from bayesdtr.data.validate import (
    check_finite_design,
    check_terms,
    missing_column_hint,
    normalize_strings,
)
from bayesdtr.exceptions import DataError, SpecificationError

__all__ = [
    "arm_levels",
    "check_columns",
    "check_no_nan",
    "check_positivity",
    "feasible_matrix",
    "formula_vars",
    "materialize",
    "model_matrix",
    "plain_message",
    "rows_text",
]


def rows_text(index: Sequence[Any], limit: int = 8) -> str:
    """Format row labels for an error message, e.g. ``[3, 17, 42] (3 rows)``."""
    idx = list(index)
    shown = ", ".join(repr(i.item() if isinstance(i, np.generic) else i) for i in idx[:limit])
    if len(idx) > limit:
        shown += ", ..."
    return f"[{shown}] ({len(idx)} row{'s' if len(idx) != 1 else ''})"


def check_columns(df: pd.DataFrame, cols: Sequence[str], where: str) -> None:
    """Refuse columns ``cols`` that ``df`` lacks, naming ``where`` and close matches."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{where} uses column(s) {missing} that are not in the data. Available columns: "
            f"{list(df.columns)}. Fix the name or add the column.{missing_column_hint(missing, list(df.columns))}"
        )


def check_no_nan(
    df: pd.DataFrame,
    cols: Sequence[str],
    rows: np.ndarray,
    where: str,
    fix: str = "impute or remove these rows yourself, or restrict the stage with applies=.",
) -> None:
    """Refuse missing values of ``cols`` in the rows at positions ``rows``; ``fix`` says what to do."""
    sub = df.iloc[rows]
    for c in cols:
        bad = sub.index[sub[c].isna().to_numpy()]
        if len(bad):
            raise DataError(
                f"Column {c!r} (used by {where}) has missing values in rows {rows_text(bad)}. "
                f"bayesdtr never drops rows: {fix}"
            )


def plain_message(err: Exception) -> str:
    """An exception's text without terminal colour codes (formulaic highlights parse errors)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(err)).replace("⧛", "").replace("⧚", "")


def formula_vars(formula: str, where: str, known: set[str]) -> set[str]:
    """Data columns a right-hand-side formula reads.

    Each factor is read on its own: a looked-up name (``x1``, or a quoted `` `parent.BMI` ``) is
    one column; a Python factor (``center(x)``, ``np.log(x)``, ``Q("parent.BMI")``) reads the
    names found in its expression, less formulaic's transform namespace (``C``, ``contr``,
    ``np``) unless such a name is also a column. formulaic's own ``required_variables`` splits
    dotted names and omits the arguments of stateful transforms, so it is not used.
    """
    import formulaic  # imported when a formula is read, not with the package (issue 13)
    from formulaic.transforms import TRANSFORMS
    from formulaic.utils.variables import get_required_variables

    try:
        parsed = formulaic.Formula(formula)
    except Exception as err:  # formulaic raises many types
        raise SpecificationError(
            f"{where}: cannot parse formula {formula!r}: {plain_message(err)}. Give a right-hand-side formula "
            "such as '1 + x1 + C(site)'; quote column names with dots or spaces in backticks (`parent.BMI`)."
        ) from err
    if not isinstance(parsed, formulaic.formula.SimpleFormula):
        raise SpecificationError(
            f"{where}: formula {formula!r} has several parts (formulaic reads '|' as a separator "
            "of formula parts, e.g. for random effects), which bayesdtr does not use. Give one "
            "right-hand side such as '1 + x1'; for random intercepts by cluster use group=."
        )
    out: set[str] = set()
    for term in parsed:
        for factor in term.factors:
            method = str(factor.eval_method.value)
            if method == "lookup":
                out.add(str(factor.expr))
                continue
            if method != "python":
                continue
            out |= {m[1] for m in re.findall(r"\bQ\(\s*(['\"])(.*?)\1\s*\)", str(factor.expr))}
            try:
                found = get_required_variables(factor.expr, {})
            except Exception:  # unparsable here; formulaic reports it when building the design
                continue
            for v in found:
                name = str(v)
                if v.Role.VALUE in v.roles and (
                    name in known or name.split(".")[0] not in TRANSFORMS
                ):
                    out.add(name)
    return out


def materialize(spec: Any, df: pd.DataFrame, where: str) -> np.ndarray:
    """Evaluate a fitted formulaic model spec on ``df`` (no rows dropped) as a finite float array.

    A category level unseen when fitting is an error (formulaic would encode it as the
    reference level with a warning), and so is a non-finite design entry.
    """
    from formulaic.errors import DataMismatchWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            mm = spec.get_model_matrix(normalize_strings(df), na_action="raise")
        except DataMismatchWarning as w:
            raise DataError(
                f"{where}: {plain_message(w)} Recode these labels to levels seen when fitting (types must "
                "match), or leave these rows out."
            ) from None
        except Exception as err:
            raise DataError(
                f"{where}: cannot evaluate the formula on these data: {plain_message(err)}"
            ) from err
    X = np.asarray(mm, dtype=float)
    check_finite_design(X, df.index, where)
    return X


def model_matrix(formula: str, df: pd.DataFrame, where: str) -> tuple[np.ndarray, list[str], Any]:
    import formulaic

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # reported below, by row
            mm = formulaic.model_matrix(formula, df, na_action="raise")
            X = np.asarray(mm, dtype=float)
    except Exception as err:
        names = re.findall(r"name '([^']+)' is not defined", plain_message(err))
        raise SpecificationError(
            f"{where}: cannot build the design of {formula!r}: {plain_message(err)}. Check the formula's "
            f"terms and the columns' types.{missing_column_hint(names, list(df.columns))}"
        ) from err
    check_terms(mm, formula, df, f"{where}")
    check_finite_design(X, df.index, f"{where}{formula!r}")
    return X, [str(c) for c in mm.columns], mm.model_spec


def arm_levels(values: pd.Series, column: str) -> list[Any]:
    kinds = {type(v.item() if isinstance(v, np.generic) else v) for v in values.unique()}
    kinds = {bool if k is np.bool_ else k for k in kinds}
    numeric = {int, float, bool}
    if len(kinds) > 1 and not kinds <= numeric:
        raise DataError(
            f"Treatment column {column!r} mixes arm label types {sorted(k.__name__ for k in kinds)}. "
            "Use one type for all arms (all strings or all integers)."
        )
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.unique())
        return [c for c in values.cat.categories if c in present]
    levels = [v.item() if isinstance(v, np.generic) else v for v in sorted(values.unique())]
    if kinds <= {float}:
        if not all(float(v).is_integer() for v in levels):
            raise DataError(
                f"Treatment column {column!r} has non-integer numeric labels {levels[:6]}. "
                "Arm labels must be integers, strings or categories; recode them (e.g. "
                "df[col].map({0.5: 'low', 1.5: 'high'}))."
            )
        levels = [int(v) for v in levels]
    return [v.item() if isinstance(v, np.generic) else v for v in levels]


def feasible_matrix(st: Stage, sub: pd.DataFrame, arms: list[Any]) -> np.ndarray:
    where = f"Stage {st.treatment!r} feasible="
    try:
        out = st.feasible(sub)  # type: ignore[misc]
    except Exception as err:
        raise SpecificationError(f"{where} raised {type(err).__name__}: {err}") from err
    if not isinstance(out, pd.DataFrame):
        raise SpecificationError(
            f"{where} must return a boolean DataFrame with one column per arm {arms}; got "
            f"{type(out).__name__}."
        )
    missing = [a for a in arms if a not in out.columns]
    if missing or len(out) != len(sub):
        raise SpecificationError(
            f"{where} returned columns {list(out.columns)} and {len(out)} rows; it must have one "
            f"column per arm {arms} (missing {missing}) and one row per unit ({len(sub)})."
        )
    feas = out[arms].to_numpy()
    if feas.dtype != bool:
        raise SpecificationError(
            f"{where} must return booleans (True = arm allowed); got dtype {feas.dtype} in "
            f"columns {arms}. Return comparisons or call .astype(bool) on the result."
        )
    extra = [c for c in out.columns if c not in arms]
    extra_allowed = [c for c in extra if out[c].to_numpy(dtype=bool).any()]
    if extra_allowed:
        raise DataError(
            f"{where} marks arm(s) {extra_allowed} feasible for some units, but no unit that "
            f"reaches stage {st.treatment!r} received them (observed arms {arms}), so their "
            "effects are not identified (positivity). Mark them infeasible (False) or drop these "
            "columns."
        )
    none = ~feas.any(axis=1)
    if none.any():
        raise DataError(
            f"{where} leaves no feasible arm for rows {rows_text(sub.index[none])}. Every unit "
            "that reaches the stage needs at least one arm; restrict applies= instead."
        )
    return feas


def check_positivity(
    st: Stage, a: np.ndarray, feas: np.ndarray, arms: list[Any], sub: pd.DataFrame
) -> None:
    """Each arm feasible for a group of units (same feasible set) must be observed in that group."""
    patterns, inverse = np.unique(feas, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        members = inverse.ravel() == p
        for j in np.flatnonzero(pattern):
            if not np.any(a[members] == j):
                allowed = [arms[i] for i in np.flatnonzero(pattern)]
                raise DataError(
                    f"Positivity violation at stage {st.treatment!r}: arm {arms[j]!r} is feasible "
                    f"for {int(members.sum())} units (feasible set {allowed}) but none of them "
                    "received it, so its effect for them is not identified. Mark it infeasible "
                    "for these units with feasible=, or collect data where it is given."
                )
