"""Named validation steps of :func:`~bayesdtr.data.design.build_design` and of new data.

Each step raises a :class:`~bayesdtr.exceptions.DataError` or
:class:`~bayesdtr.exceptions.SpecificationError` whose message names the column or argument,
what was seen, what is allowed and the fix. Nothing here drops, reorders or silently coerces a
row: a value bayesdtr cannot handle is refused, never turned into a plausible number.

Steps
-----
- :func:`check_frame`: column labels (no MultiIndex, no duplicates) and string dtypes;
- :func:`check_used_columns`: dtypes and values of the columns a stage's formulas read
  (complex, dates and durations, lists and dicts, infinities, magnitudes above
  :data:`MAX_ABS`);
- :func:`check_terms`: every formula term keeps at least one design column (a constant
  categorical does not vanish), and no categorical has more levels than half the units;
- :func:`check_rank`: one pivoted QR decides the rank;
- :func:`check_timeline` and :func:`check_time_order`: when each covariate is measured;
- :func:`check_new_data`: histories passed to the posterior's queries (missing or infinite
  values, unseen category levels, labels of earlier treatments).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesdtr.exceptions import DataError, FitError, SpecificationError

if TYPE_CHECKING:
    from bayesdtr.data.design import StageDesign
    from bayesdtr.data.spec import Stage

__all__ = [
    "MAX_ABS",
    "check_probability",
    "check_positive_int",
    "check_draws_memory",
    "BASELINE",
    "check_frame",
    "normalize_strings",
    "check_used_columns",
    "check_finite_design",
    "check_terms",
    "check_rank",
    "check_timeline",
    "check_time_order",
    "check_new_data",
    "missing_column_hint",
]

#: Largest magnitude accepted in the outcome, rewards and numeric covariates. Squares and
#: cross-products of the data (X'X, y'y, over up to 1e8 units) must stay far inside the
#: float64 range (about 1.8e308): 1e100 leaves 1e100 of headroom. Rescale larger data.
MAX_ABS = 1e100

#: Key of a timeline's covariates measured before the first decision.
BASELINE = "baseline"


def _label(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _rows_text(index: Sequence[Any], limit: int = 8) -> str:
    idx = list(index)
    shown = ", ".join(repr(_label(i)) for i in idx[:limit])
    if len(idx) > limit:
        shown += ", ..."
    return f"[{shown}] ({len(idx)} row{'s' if len(idx) != 1 else ''})"


# --------------------------------------------------------------------------- the frame


def check_frame(df: pd.DataFrame) -> None:
    """Refuse column labels that formulas and errors cannot address unambiguously."""
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            f"data has MultiIndex columns (levels {df.columns.nlevels}, e.g. {df.columns[0]!r}); "
            "bayesdtr needs one label per column. Flatten them, e.g. "
            "df.columns = ['_'.join(map(str, c)) for c in df.columns]."
        )
    dup = df.columns[df.columns.duplicated()].unique()
    if len(dup):
        raise DataError(
            f"data has duplicated column names {[_label(c) for c in dup][:8]}; a formula could "
            "not tell them apart. Rename or drop the copies (df.loc[:, ~df.columns.duplicated()])."
        )


def _is_string_ext(dtype: Any) -> bool:
    if isinstance(dtype, pd.StringDtype):
        return True
    return isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype) in (
        "string",
        "large_string",
    )


def normalize_strings(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with pandas string columns (``"string"``, ``"string[pyarrow]"``) as object strings.

    formulaic reads extension string columns as numbers; as object columns they are the
    categorical labels they are. Missing entries stay missing; nothing else changes.
    """
    cols = [c for c in df.columns if _is_string_ext(df[c].dtype)]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        s = df[c]
        out[c] = pd.Series(
            np.where(s.isna().to_numpy(), None, s.astype(object).to_numpy()),
            index=df.index,
            dtype=object,
        )
    return out


# --------------------------------------------------------------------------- columns


def check_used_columns(
    df: pd.DataFrame, cols: Sequence[str], rows: np.ndarray, where: str, *, covariates: bool = False
) -> None:
    """Dtypes and values of the columns ``where`` reads, on the rows ``rows`` (after NaN checks).

    With ``covariates=True`` (formula columns when fitting), an object column must hold labels
    of one kind: strings mixed with numbers are refused, and so are numbers stored with dtype
    object, which formulaic would silently encode as category levels.
    """
    for c in cols:
        s = df[c].iloc[rows]
        dt = s.dtype
        kind = getattr(dt, "kind", "O")
        if kind == "c" or (
            kind == "O" and s.map(lambda v: isinstance(v, complex | np.complexfloating)).any()
        ):
            raise DataError(
                f"Column {c!r} (used by {where}) holds complex numbers; values must be real. "
                "Use the real part or the modulus explicitly (e.g. df[col].to_numpy().real)."
            )
        if kind in "mM" or isinstance(dt, pd.PeriodDtype | pd.IntervalDtype | pd.DatetimeTZDtype):
            raise DataError(
                f"Column {c!r} (used by {where}) has dtype {dt}; dates, durations, periods and "
                "intervals are not covariates. Convert it to a number, e.g. "
                "df[col].dt.total_seconds() / 86400 (days) or (df[col] - start).dt.days."
            )
        if kind == "O":
            bad = s.map(lambda v: isinstance(v, list | dict | set | tuple | np.ndarray | pd.Series))
            if bad.any():
                first = s[bad.to_numpy()].iloc[0]
                raise DataError(
                    f"Column {c!r} (used by {where}) holds containers ({type(first).__name__}, e.g. "
                    f"{first!r:.40}) in rows {_rows_text(s.index[bad.to_numpy()])}; each row needs "
                    "one number or label. Expand it into columns or map it to a label."
                )
            if covariates:
                _check_object_labels(s, c, where)
        if pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
            check_magnitude(s, c, where)


def _check_object_labels(s: pd.Series, col: str, where: str) -> None:
    vals = s.dropna()
    is_str = vals.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if is_str.all():
        return
    numbers = vals.map(
        lambda v: isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
    ).to_numpy(dtype=bool)
    if is_str.any():
        first = vals[is_str].iloc[0]
        other = vals[~is_str].iloc[0]
        raise DataError(
            f"Column {col!r} (used by {where}) mixes strings (e.g. {first!r:.30} in row "
            f"{_label(vals.index[is_str][0])!r}) with {type(other).__name__} values; a covariate is numeric "
            "or categorical. Convert it: pd.to_numeric(df[col]) for a number (a stray string "
            "such as 'n/a' becomes an error to fix), or df[col].astype(str) for labels."
        )
    if numbers.all():
        raise DataError(
            f"Column {col!r} (used by {where}) holds numbers with dtype object; formulaic would "
            "read them as category labels, one level per distinct number. Convert it: "
            "pd.to_numeric(df[col]) for a numeric covariate, or df[col].astype(str) (or C(col) "
            "on a numeric column) for a categorical one."
        )


def check_magnitude(s: pd.Series, col: str, where: str) -> None:
    """Refuse infinite values and magnitudes above :data:`MAX_ABS` in a numeric column."""
    x = s.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(x)
    if inf.any():
        raise DataError(
            f"Column {col!r} (used by {where}) has infinite values in rows {_rows_text(s.index[inf])}; "
            "it must be finite. Replace them, or leave these rows out."
        )
    big = np.abs(np.nan_to_num(x)) > MAX_ABS
    if big.any():
        raise DataError(
            f"Column {col!r} (used by {where}) has values up to {np.nanmax(np.abs(x)):.3g} in rows "
            f"{_rows_text(s.index[big])}; bayesdtr accepts magnitudes up to {MAX_ABS:g} (its sums "
            "of squares must stay inside the floating-point range). Rescale the column (e.g. "
            "divide by a power of 10) or check it for a data-entry error."
        )


def check_finite_design(X: np.ndarray, index: pd.Index, where: str) -> None:
    """Backstop: a transform such as ``np.log(x)`` at x = 0 makes a non-finite design entry."""
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: the design has non-finite entries (inf or NaN, e.g. np.log of 0 or a "
            f"division by 0) in rows {_rows_text(index[bad])}. Transform the covariate so that "
            "it is finite for every unit, or restrict the stage with applies=."
        )


def missing_column_hint(missing: Sequence[str], columns: Sequence[Any]) -> str:
    """Advice for a missing name that is the start of a dotted or spaced column name."""
    for m in missing:
        close = [
            c
            for c in columns
            if isinstance(c, str) and c != m and re.match(rf"{re.escape(m)}[. ]", c)
        ]
        if close:
            return (
                f" Column {close[0]!r} has a dot or a space in its name: quote it in formulas with "
                f"backticks, e.g. `{close[0]}` or Q({close[0]!r})."
            )
    return ""


# --------------------------------------------------------------------------- terms and rank


def check_terms(mm: Any, formula: str, sub: pd.DataFrame, where: str) -> None:
    """Every term of ``formula`` keeps a column, and no categorical is nearly one level per unit.

    A categorical covariate (string, category or ``C(...)``) with one level among the units
    would vanish from a design with an intercept, where a constant numeric one is reported as
    rank deficient: both are refused here, by name.
    """
    spec = mm.model_spec
    n = len(sub)
    for term, cols in spec.term_indices.items():
        if len(cols) == 0 and str(term) != "1":
            raise SpecificationError(
                f"{where}{formula!r}: term {str(term)!r} is constant (a single category level) on "
                f"the {n} units that reach the stage, so it adds no column to the design. Remove "
                "it from the formula, or restrict applies= to units where it varies."
            )
    for factor, (kind, state) in spec.encoder_state.items():
        if getattr(kind, "value", kind) != "categorical":
            continue
        levels = len(state.get("categories", []))
        if levels > max(2, n // 2):
            raise SpecificationError(
                f"{where}{formula!r}: categorical {str(factor)!r} has {levels} levels among the {n} "
                f"units that reach the stage (at most half the units, {max(2, n // 2)}, are "
                "allowed): its effects cannot be estimated. If it is a continuous covariate, drop "
                "C(...) around it (or convert it with astype(float)); group many clusters with "
                "group= instead."
            )


def check_rank(sd: StageDesign) -> None:
    """Refuse a rank-deficient regression design, naming the first redundant column.

    One pivoted QR of the column-scaled design decides the rank (scaling makes the decision
    independent of the units of the covariates). Only when it is deficient, an unpivoted QR
    finds the first column that is a linear combination of the columns before it.
    """
    X = sd.X
    n, p = X.shape
    norms = np.linalg.norm(X, axis=0)
    Xs = X / np.where(norms > 0, norms, 1.0)
    names = sd.main_terms + [f"{t}:{arm}" for arm in sd.arms[1:] for t in sd.contrast_terms]
    if n == 0 or p == 0:
        return
    import scipy.linalg  # with the first design, not with the package (issue 13)

    R = scipy.linalg.qr(Xs, mode="r", pivoting=True, check_finite=False)[0]
    diag = np.abs(np.diag(R))
    tol = max(n, p) * np.finfo(float).eps * (diag[0] if len(diag) else 0.0)
    rank = int(np.sum(diag > tol))
    if rank >= p:
        return
    R0 = np.abs(np.diag(scipy.linalg.qr(Xs, mode="r", check_finite=False)[0]))
    small = np.flatnonzero(R0 <= max(tol, 1e-9))
    culprit = names[int(small[0])] if len(small) else names[-1]
    if p > n:
        culprit += f"; the design has {p} columns for {n} units"
    raise SpecificationError(
        f"Stage {sd.treatment!r}: the design of main={sd.stage.main!r} and "
        f"contrast={sd.stage.contrast!r} is rank deficient (rank {rank} < {p} "
        f"columns; first redundant column {culprit!r}) on the {sd.n_units} units that reach "
        "the stage. Remove the redundant term (e.g. a column collinear with another, or a "
        "covariate that is constant within an arm)."
    )


# --------------------------------------------------------------------------- time order


def check_timeline(
    timeline: Mapping[str, Sequence[str]] | None,
    stages: Sequence[Stage],
    df: pd.DataFrame,
    outcome: str,
) -> dict[str, int] | None:
    """Validate ``timeline=`` and map each declared column to when it is measured.

    Returns
    -------
    dict or None
        ``{column: t}`` with t = 0 for baseline covariates and t = k for covariates measured
        after decision k (before decision k + 1), or None without a timeline.
    """
    if timeline is None:
        return None
    treatments = [s.treatment for s in stages]
    keys = [BASELINE, *treatments]
    if not isinstance(timeline, Mapping):
        raise SpecificationError(
            f"timeline= must be a dict {{'baseline': [...], <treatment>: [...]}}; got "
            f"{type(timeline).__name__}. Example: timeline={{'baseline': ['x1'], {treatments[0]!r}: ['x2']}}."
        )
    unknown = [k for k in timeline if k not in keys]
    if unknown:
        raise SpecificationError(
            f"timeline= has key(s) {unknown}; the keys are 'baseline' (covariates known before "
            f"the first decision) and the treatments {treatments} (covariates measured after "
            "that decision and before the next one)."
        )
    when: dict[str, int] = {}
    rewards = {s.reward: i for i, s in enumerate(stages, start=1) if s.reward is not None}
    for key, cols in timeline.items():
        t = keys.index(key)
        if isinstance(cols, str) or not isinstance(cols, Sequence | pd.Index):
            raise SpecificationError(
                f"timeline[{key!r}] must be a list of column names; got {cols!r:.80}. Wrap a "
                f"single column in a list: [{cols!r:.40}]."
            )
        for c in cols:
            if c in when:
                raise SpecificationError(
                    f"timeline= lists column {c!r} under both {keys[when[c]]!r} and {key!r}; a "
                    "covariate is measured once. Keep it under the earliest of the two."
                )
            if c == outcome or c in treatments:
                raise SpecificationError(
                    f"timeline[{key!r}] lists {c!r}, which is "
                    f"{'the outcome' if c == outcome else 'a treatment'}; treatments and the "
                    "outcome are placed in time by stages= and outcome=. Remove it from the timeline."
                )
            if c in rewards and rewards[c] != t:
                raise SpecificationError(
                    f"timeline[{key!r}] lists {c!r}, the reward of stage {treatments[rewards[c] - 1]!r}, "
                    f"which is measured after that decision: list it under "
                    f"{treatments[rewards[c] - 1]!r} or leave it out."
                )
            when[c] = t
    missing = [c for c in when if c not in df.columns]
    if missing:
        raise DataError(
            f"timeline= lists column(s) {missing} that are not in the data. Available columns: "
            f"{list(df.columns)[:30]}. Fix the names."
        )
    for c, t in rewards.items():
        when.setdefault(c, t)
    for t, tr in enumerate(treatments, start=1):
        when[tr] = t
    return when


def check_time_order(
    vars_: set[str],
    k: int,
    when: Mapping[str, int] | None,
    stages: Sequence[Stage],
    where: str,
) -> None:
    """Refuse a stage-k formula that reads a covariate measured at or after decision k."""
    if when is None:
        return
    treatments = [s.treatment for s in stages]
    undeclared = sorted(v for v in vars_ if v not in when)
    if undeclared:
        raise SpecificationError(
            f"{where} uses {undeclared}, which timeline= does not place in time. Add each to "
            f"timeline= under 'baseline' or under the treatment after which it is measured "
            f"(one of {treatments})."
        )
    late = sorted(v for v in vars_ if when[v] >= k and v not in treatments)
    if late:
        after = {v: treatments[when[v] - 1] for v in late}
        last = [v for v in late if when[v] == len(treatments)]
        extra = (
            f" {last} are measured after the last decision (outcome ingredients)." if last else ""
        )
        raise SpecificationError(
            f"{where} uses {late}, measured after decision(s) {after} (timeline=), so not known "
            f"before decision {treatments[k - 1]!r}.{extra} Use only covariates under 'baseline'"
            + (f" or under {treatments[: k - 1]}" if k > 1 else "")
            + "."
        )


# --------------------------------------------------------------------------- new data

_C_ARG = re.compile(r"^\s*C\(\s*(`[^`]+`|[A-Za-z_][\w.]*)\s*[,)]")


def _factor_column(expr: str, columns: Sequence[Any]) -> str | None:
    """The data column behind a categorical factor: ``col`` or ``C(col, ...)``; else None."""
    if expr in columns:
        return expr
    m = _C_ARG.match(expr)
    if m:
        name = m.group(1).strip("`")
        if name in columns:
            return name
    return None


def categorical_levels(specs: Sequence[Any], columns: Sequence[Any]) -> dict[str, list[Any]]:
    """``{column: levels seen when fitting}`` of every categorical factor that reads one column."""
    out: dict[str, list[Any]] = {}
    for spec in specs:
        if spec is None:
            continue
        for factor, (kind, state) in spec.encoder_state.items():
            if getattr(kind, "value", kind) != "categorical":
                continue
            col = _factor_column(str(factor), columns)
            if col is not None:
                out.setdefault(col, list(state.get("categories", [])))
    return out


def _unseen(values: pd.Series, levels: Sequence[Any]) -> np.ndarray:
    """Boolean mask of entries not among ``levels``; types must match ("5" is not 5, 5.0 is 5)."""
    if all(isinstance(_label(v), str) for v in levels):
        is_str = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        return ~(is_str & values.isin(list(levels)).to_numpy(dtype=bool))
    known = {(type(_label(v)) is str, _label(v)) for v in levels}
    return np.array([(type(_label(v)) is str, _label(v)) not in known for v in values], dtype=bool)


def check_new_data(
    sd: StageDesign,
    data: pd.DataFrame,
    where: str,
    earlier_arms: Mapping[str, Sequence[Any]],
    fitted: pd.DataFrame | None = None,
) -> None:
    """Refuse new histories that the fitted stage cannot evaluate honestly.

    Missing or infinite values would give NaN Q-values (and an argmax that falls back to the
    reference arm); a category level, or an earlier treatment's label, never seen when fitting
    would be encoded as the reference level. Each is an error naming the column and rows.
    """
    cols = [c for c in sd.columns if c in data.columns]
    missing = [c for c in sd.columns if c not in data.columns]
    if missing:
        raise DataError(
            f"{where} lacks column(s) {missing}, which the stage's formulas use "
            f"(main={sd.stage.main!r}, contrast={sd.stage.contrast!r}). Add them."
        )
    rows = np.arange(len(data))
    for c in cols:
        na = data[c].isna().to_numpy()
        if na.any():
            raise DataError(
                f"{where}: column {c!r} is missing in rows {_rows_text(data.index[na])}; the "
                "Q-values of these histories are undefined. Fill them or leave these rows out."
            )
    check_used_columns(data, cols, rows, where)
    if fitted is not None:
        for c in cols:
            was, now = fitted[c].dtype, data[c].dtype
            numeric_then = pd.api.types.is_numeric_dtype(was) and not pd.api.types.is_bool_dtype(
                was
            )
            if numeric_then and c not in earlier_arms and not pd.api.types.is_numeric_dtype(now):
                raise DataError(
                    f"{where}: column {c!r} has dtype {now}, but it was numeric ({was}) when "
                    "fitting, so the stage's coefficients read it as a number. Convert it, e.g. "
                    f"data[{c!r}] = pd.to_numeric(data[{c!r}])."
                )
    levels = dict(sd.levels)
    for c in cols:
        if c in earlier_arms and c not in levels:
            levels[c] = list(earlier_arms[c])
    for c, lev in levels.items():
        if c not in data.columns:
            continue
        bad = _unseen(data[c], lev)
        if bad.any():
            seen = sorted({repr(_label(v)) for v in data[c][bad]})
            what = "arms of that earlier stage" if c in earlier_arms else "levels seen when fitting"
            raise DataError(
                f"{where}: column {c!r} has label(s) {', '.join(seen[:8])} in rows "
                f"{_rows_text(data.index[bad])} that the model never saw; the {what} are "
                f"{[_label(v) for v in lev]}. Effects of unseen labels are unknown: recode them "
                "to a known level (types must match, e.g. 5 and not '5') or leave these rows out."
            )


def new_group_codes(
    labels: pd.Series, levels: Sequence[Any], group: str, where: str, key: Any
) -> np.ndarray:
    """Codes of group labels in new data: fitted levels get theirs, new labels ``-1 - key(label)``.

    Missing labels are refused (fitting refuses them too), and so is a label whose type differs
    from the fitted levels' (the string ``"5"`` for an integer site 5): it would silently become
    a new group. Numbers match numbers (5.0 is site 5).
    """
    na = labels.isna().to_numpy()
    if na.any():
        raise DataError(
            f"{where}: group column {group!r} is missing in rows {_rows_text(labels.index[na])}. "
            "Give each unit a group label: a fitted level, or a new label to predict for a new group."
        )
    check_used_columns(labels.to_frame(), [labels.name], np.arange(len(labels)), where)
    is_str = {isinstance(_label(v), str) for v in levels}
    lookup = {_label(lev): i for i, lev in enumerate(levels)}
    codes = np.empty(len(labels), dtype=np.int64)
    for i, v in enumerate(labels):
        v = _label(v)
        if is_str and (isinstance(v, str) not in is_str):
            raise DataError(
                f"{where}: group label {v!r} in row {_label(labels.index[i])!r} is a "
                f"{type(v).__name__}, but the fitted levels of {group!r} are "
                f"{'strings' if True in is_str else 'numbers'} ({[_label(x) for x in levels][:8]}); "
                "it would be taken for a new group. Convert the column to the fitted type "
                f"(e.g. data[{group!r}].astype({'str' if True in is_str else 'int'}))."
            )
        codes[i] = lookup[v] if v in lookup else -1 - key(v)
    return codes


def check_probability(value: Any, name: str, exc: type[Exception] = DataError) -> float:
    """A probability in (0, 1) given as a real number (e.g. ``hdi_prob``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not 0 < value < 1
    ):
        raise exc(f"{name} must be a number in (0, 1), e.g. 0.94; got {value!r}.")
    return float(value)


def check_positive_int(
    value: Any, name: str, exc: type[Exception] = DataError, minimum: int = 1
) -> int:
    """An integer >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise exc(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_draws_memory(
    n_coef: Sequence[int], n_prop: Sequence[int], chains: int, draws: int
) -> None:
    """Refuse ``chains * draws`` whose stored draws alone would not fit in this machine's memory.

    ``n_coef`` and ``n_prop`` are the numbers of outcome and propensity parameters per stage;
    each stage also keeps a residual SD, an ancestor index and sampler statistics per draw.
    """
    import os

    total = int(chains) * int(draws)
    per_draw = 8 * (sum(p + 4 for p in n_coef) + sum(n_prop))
    need = total * per_draw
    try:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        avail = 2**40
    if need > avail // 2 or total > 2**31 - 1:
        raise FitError(
            f"draws={draws} x chains={chains} = {total:,} posterior draws would need at least "
            f"{need / 2**30:,.1f} GiB to store ({per_draw} bytes a draw), more than half of this "
            f"machine's {avail / 2**30:,.1f} GiB. Use fewer draws: 1,000 to 10,000 in all are "
            "plenty for summaries and rules."
        )
