"""Validation of a DTR specification against a wide DataFrame, and the stage design matrices.

Everything a stage model needs is computed here once: the units that reach the stage, the
observed arms as integer codes, the main-effect and contrast design matrices (formulaic), the
feasible sets, the propensity design and the rewards. Every problem raises a
:class:`~bayesdtr.exceptions.DataError` or :class:`~bayesdtr.exceptions.SpecificationError`
that names the column or argument, what was seen, what is allowed and the fix. No row is ever
dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.arguments import check_arguments, check_id, check_roles
from bayesdtr.data.matrices import (
    arm_levels,
    check_columns,
    check_no_nan,
    check_positivity,
    feasible_matrix,
    formula_vars,
    materialize,
    model_matrix,
    rows_text,
)
from bayesdtr.data.reach import (
    CensoringDesign,
    applies_mask,
    censoring_design,
    dropout_hint,
    dropout_masks,
)
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.data.survival import (
    check_censored_marks,
    check_survival_arguments,
    event_values,
    stage_times,
)
from bayesdtr.data.validate import (
    categorical_levels,
    check_frame,
    check_new_data,
    check_rank,
    check_time_order,
    check_timeline,
    check_used_columns,
    new_group_codes,
    normalize_strings,
)
from bayesdtr.exceptions import DataError, SpecificationError

__all__ = ["StageDesign", "StageRows", "DTRDesign", "applies_mask", "build_design", "materialize", "rows_text"]


def arm_array(arms: Sequence[Any]) -> np.ndarray:
    """Arm labels as an array for coordinates and label lookups (object dtype for strings)."""
    if any(isinstance(a, str) for a in arms):
        return np.asarray([str(a) for a in arms], dtype=object)
    return np.asarray(arms)


@dataclass(frozen=True)
class StageRows:
    """The design rows of one stage for some histories: what a Q-function is evaluated on.

    Attributes
    ----------
    rows : pandas.DataFrame
        The histories (the stage's units of the data, or new data as given).
    X_main, X_contrast : ndarray
        Main-effect and contrast design matrices of ``rows``.
    group_codes : ndarray of int or None
        Group codes (a label unseen in the data gets ``-1 - crc32(label)``); None without groups.
    feasible : ndarray of bool
        (rows, arms) feasibility of each arm.
    """

    rows: pd.DataFrame
    X_main: np.ndarray
    X_contrast: np.ndarray
    group_codes: np.ndarray | None
    feasible: np.ndarray

    def __iter__(self):
        """Unpack as ``rows, X_main, X_contrast, group_codes, feasible``."""
        return iter((self.rows, self.X_main, self.X_contrast, self.group_codes, self.feasible))


@dataclass
class StageDesign:
    """The validated design of one stage (rows are the units that reach the stage).

    Attributes
    ----------
    treatment : str
        Treatment column.
    position : int
        1-based stage number.
    arms : list
        Arm labels in order; ``arms[0]`` is the reference arm.
    units : ndarray of int
        Positions (0..n-1) of the units that reach this stage.
    a : ndarray of int
        Observed arm codes (index into ``arms``) of those units.
    X_main, X_contrast : ndarray
        Main-effect and contrast design matrices of those units.
    feasible : ndarray of bool
        (units, arms) feasibility of each arm.
    """

    stage: Stage
    position: int
    arms: list[Any]
    units: np.ndarray
    a: np.ndarray
    X_main: np.ndarray
    X_contrast: np.ndarray
    main_terms: list[str]
    contrast_terms: list[str]
    main_spec: Any
    contrast_spec: Any
    feasible: np.ndarray
    reward: np.ndarray
    X_prop: np.ndarray | None = None
    prop_terms: list[str] = field(default_factory=list)
    prop_spec: Any = None
    known_propensity: np.ndarray | None = None
    columns: list[str] = field(default_factory=list)  # data columns read by main= and contrast=
    levels: dict[str, list[Any]] = field(default_factory=dict)  # categorical levels seen, by column

    @property
    def treatment(self) -> str:
        return self.stage.treatment

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def arm_coord(self) -> np.ndarray:
        """Arm labels as an array; ``arm_coord[codes]`` turns arm codes into labels."""
        return arm_array(self.arms)

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_coef(self) -> int:
        return self.X_main.shape[1] + (self.n_arms - 1) * self.X_contrast.shape[1]

    def full_design(self, X_main: np.ndarray, X_contrast: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Regression design [main, 1{a=arm_1} contrast, ..., 1{a=arm_m} contrast] for codes ``a``."""
        blocks = [X_main]
        for j in range(1, self.n_arms):
            blocks.append(X_contrast * (a == j)[:, None])
        return np.hstack(blocks)

    @property
    def X(self) -> np.ndarray:
        """Regression design of the observed arms."""
        return self.full_design(self.X_main, self.X_contrast, self.a)

    def feasible_of(self, data: pd.DataFrame) -> np.ndarray:
        """(rows, arms) feasibility of each arm for the histories ``data`` (all True without
        ``feasible=``), checked as when fitting."""
        if self.stage.feasible is None:
            return np.ones((len(data), self.n_arms), dtype=bool)
        return feasible_matrix(self.stage, data, self.arms)

    def evaluate(self, data: pd.DataFrame | None, design: DTRDesign, *, source: str | None = None) -> StageRows:
        """The design rows of this stage for ``data``: the stage's units (``None``) or new histories.

        New histories are checked as the fitted data were (columns, missing or infinite values,
        unseen levels, group labels, feasible sets). A design read from a file (no formulas)
        can evaluate only its stored units; ``source`` names the file in that error.

        Parameters
        ----------
        data : pandas.DataFrame or None
            Histories with the stage's formula columns, or None for the units that reach the stage.
        design : DTRDesign
            The design this stage belongs to (earlier stages' arms, the group column, the data).
        source : str or None
            The file the design was read from, for the error message.

        Returns
        -------
        StageRows

        Raises
        ------
        DataError, SpecificationError
            Data that the fitted stage cannot evaluate; the message names the column and the fix.

        Examples
        --------
        >>> import bayesdtr as bd
        >>> import pandas as pd
        >>> df = pd.DataFrame({"x": [0.1, -0.4, 1.2, 0.3, -1.0, 0.7], "A": [0, 1, 0, 1, 1, 0],
        ...                    "y": [1.0, 2.0, 0.5, 1.5, 2.5, 0.2]})
        >>> design = build_design(df, [bd.Stage("A", main="x", contrast="1 + x")], outcome="y")
        >>> ev = design.stages[0].evaluate(pd.DataFrame({"x": [0.0, 2.0]}), design)
        >>> ev.X_contrast.tolist(), ev.feasible.shape
        ([[1.0, 0.0], [1.0, 2.0]], (2, 2))
        """
        k = self.position - 1
        if data is None:
            g = design.groups_of(self)
            return StageRows(design.data.iloc[self.units], self.X_main, self.X_contrast, g, self.feasible)
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data= must be a pandas DataFrame of histories; got {type(data).__name__}.")
        if self.main_spec is None:  # read from a file: only the stored units can be evaluated
            return self._stored_rows(data, design, source)
        where = f"data= for stage {self.treatment!r}"
        check_frame(data)
        check_new_data(self, data, where, {s.treatment: s.arms for s in design.stages[:k]}, design.data)
        Xm = materialize(self.main_spec, data, f"{where} (main)")
        Xc = materialize(self.contrast_spec, data, f"{where} (contrast)")
        g = None
        if design.group is not None:
            if design.group not in data.columns:
                raise DataError(
                    f"{where} needs the group column {design.group!r}; use a level of it, or a "
                    "new label to predict for a new group."
                )
            # unseen labels get a stable negative code, -1 - crc32(label): one effect per label
            g = new_group_codes(
                data[design.group], design.group_levels, design.group, where,
                lambda v: zlib.crc32(str(v).encode()),
            )
        return StageRows(data, Xm, Xc, g, self.feasible_of(data))

    def _stored_rows(self, data: pd.DataFrame, design: DTRDesign, source: str | None) -> StageRows:
        """Rows of ``data`` that are the stage's stored units (same index label and the same value
        in every column): their stored design rows. Anything else needs the caller's formulas."""
        stored = design.data
        rows = stored.iloc[self.units]
        if rows.index.is_unique and data.index.is_unique:
            pos = rows.index.get_indexer(data.index)
        elif data.index.equals(rows.index):  # repeated labels (id= data): the rows in order
            pos = np.arange(len(rows))
        else:
            pos = np.array([-1])
        same = (pos >= 0).all() and list(data.columns) == list(stored.columns) and _same_frame(data, rows.iloc[pos])
        if not same:
            raise SpecificationError(
                f"This posterior was read from {source or 'a file'} without stages=, so it "
                f"can evaluate stage {self.treatment!r} only on its stored units (formulas read from "
                "a file are never evaluated). To query new data, load it with your own stages: "
                "bd.load(path, stages=[bd.Stage(...), ...]) (matched by treatment name)."
            )
        g = None if design.group_codes is None else design.group_codes[self.units][pos]
        return StageRows(data, self.X_main[pos], self.X_contrast[pos], g, self.feasible[pos])

    def _centering(self, X: np.ndarray) -> tuple[np.ndarray, int | None]:
        """Column means to subtract (non-constant columns, only if an intercept column exists)."""
        ones = np.flatnonzero(np.all(X == 1.0, axis=0))
        if len(ones) == 0:
            return np.zeros(X.shape[1]), None
        mu = X.mean(axis=0)
        mu[np.ptp(X, axis=0) == 0] = 0.0
        return mu, int(ones[0])

    @property
    def X_centered(self) -> np.ndarray:
        """Regression design with covariates centred on the stage's units (intercepts kept).

        Both engines fit (and put their priors on) the centred parametrization, whose intercepts
        are the Q-values at the covariate means: better geometry for NUTS, and an intercept
        prior that does not depend on where zero lies. :meth:`uncenter` maps draws back.
        """
        mu_m, _ = self._centering(self.X_main)
        mu_c, _ = self._centering(self.X_contrast)
        return self.full_design(self.X_main - mu_m, self.X_contrast - mu_c, self.a)

    def uncenter(self, theta_c: np.ndarray) -> np.ndarray:
        """Map coefficient draws (S, p) of the centred design to the original design."""
        theta = np.array(theta_c, dtype=float, copy=True)
        mu_m, i0 = self._centering(self.X_main)
        pm_ = self.X_main.shape[1]
        if i0 is not None:
            theta[:, i0] -= theta_c[:, :pm_] @ mu_m
        mu_c, j0 = self._centering(self.X_contrast)
        pc = self.X_contrast.shape[1]
        if j0 is not None:
            for j in range(1, self.n_arms):
                block = slice(pm_ + (j - 1) * pc, pm_ + j * pc)
                theta[:, pm_ + (j - 1) * pc + j0] -= theta_c[:, block] @ mu_c
        return theta


@dataclass
class DTRDesign:
    """The validated design of a whole DTR: one :class:`StageDesign` per stage."""

    data: pd.DataFrame
    stages: list[StageDesign]
    outcome: str
    family: str
    y: np.ndarray
    group: str | None
    group_levels: list[Any]
    group_codes: np.ndarray | None
    id: str | None
    data_hash: str
    timeline: dict[str, int] | None = None  # column -> 0 (baseline) or k (after decision k)
    event: np.ndarray | None = None  # survival families: 1 event, 0 censored (bayesdtr.data.survival)
    event_column: str | None = None
    #: Per stage, its dropout (``censoring=``) design or None (bayesdtr.data.reach); None: no dropout
    dropout: list[CensoringDesign | None] | None = None
    #: The fitted inverse-probability-of-censoring weights (set by ``fit``; bayesdtr.inference.dropout)
    ipcw: Any = None

    @property
    def n(self) -> int:
        return len(self.data)

    @property
    def treatments(self) -> list[str]:
        return [s.treatment for s in self.stages]

    def subset(self, rows: np.ndarray) -> DTRDesign:
        """The design of the units at positions ``rows`` (0..n-1), with the same encodings.

        Term names, arm labels, group levels and specs are kept, so coefficients fitted on one
        subset apply to the design matrices of another (cross-fitting). Rows keep their order.
        """
        if self.dropout is not None:
            raise SpecificationError(
                "This design has dropout (censoring= on a stage); sample splitting and other "
                "subsets of its units are not supported yet. Use crossfit=0 (the plug-in value)."
            )
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or len(rows) == 0 or np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= self.n:
            raise SpecificationError(
                f"subset rows must be increasing positions in 0..{self.n - 1}; got {len(rows)} rows."
            )
        new_pos = np.full(self.n, -1, dtype=np.int64)
        new_pos[rows] = np.arange(len(rows))
        stages = []
        for sd in self.stages:
            keep = new_pos[sd.units] >= 0
            stages.append(
                dataclasses.replace(
                    sd,
                    units=new_pos[sd.units[keep]],
                    a=sd.a[keep],
                    X_main=sd.X_main[keep],
                    X_contrast=sd.X_contrast[keep],
                    feasible=sd.feasible[keep],
                    reward=sd.reward[rows],
                    X_prop=None if sd.X_prop is None else sd.X_prop[keep],
                )
            )
        return dataclasses.replace(
            self,
            data=self.data.iloc[rows],
            stages=stages,
            y=self.y[rows],
            group_codes=None if self.group_codes is None else self.group_codes[rows],
            event=None if self.event is None else self.event[rows],
            data_hash=f"{self.data_hash}[subset {len(rows)}]",
        )

    def obs_labels(self, rows: pd.DataFrame) -> np.ndarray:
        """Labels of ``rows`` for the ``obs`` coordinate: the ``id=`` column when the rows have
        it, else their index."""
        if self.id is not None and self.id in rows.columns:
            return rows[self.id].to_numpy()
        return np.asarray(rows.index)

    def groups_of(self, sd: StageDesign) -> np.ndarray | None:
        """Group codes of stage ``sd``'s units, or None without ``group=``."""
        return None if self.group_codes is None else self.group_codes[sd.units]

    def stage(self, stage: int | str) -> StageDesign:
        """Look up a stage by 1-based number or treatment name."""
        if isinstance(stage, str):
            for s in self.stages:
                if s.treatment == stage:
                    return s
            raise SpecificationError(
                f"stage={stage!r} is not a treatment of this model; the stages are "
                f"{self.treatments} (or numbers 1..{len(self.stages)})."
            )
        if isinstance(stage, int | np.integer) and 1 <= stage <= len(self.stages):
            return self.stages[int(stage) - 1]
        raise SpecificationError(
            f"stage={stage!r} is out of range; use 1..{len(self.stages)} or one of {self.treatments}."
        )


# --------------------------------------------------------------------------- helpers


def _same_frame(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal values row by row and column by column (missing equal to missing, any dtypes)."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    if a.equals(b):
        return True
    for c in b.columns:
        x, y = a[c], b[c]
        na_x, na_y = x.isna().to_numpy(), y.isna().to_numpy()
        if not np.array_equal(na_x, na_y):
            return False
        u, v = x.to_numpy(dtype=object)[~na_x], y.to_numpy(dtype=object)[~na_y]
        if not all(p == q for p, q in zip(u, v, strict=True)):
            return False
    return True


def data_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the data frame's values and column names (for provenance in attrs)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df.index).to_numpy().tobytes())
    for c in df.columns:
        try:
            h.update(pd.util.hash_pandas_object(df[c], index=False).to_numpy().tobytes())
        except TypeError:  # unhashable entries (lists, dicts) in a column no stage uses
            h.update(repr(df[c].tolist()).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- main entry


def build_design(
    data: pd.DataFrame,
    stages: Sequence[Stage],
    *,
    outcome: str,
    family: str = "gaussian",
    group: str | None = None,
    id: str | None = None,
    timeline: Mapping[str, Sequence[str]] | None = None,
    event: str | None = None,
) -> DTRDesign:
    """Validate a DTR specification and build every stage's design.

    ``event`` (survival families only) is the 0/1 event column of a censored ``outcome``; see
    :mod:`bayesdtr.data.survival` for what the outcome and the stages' ``reward=`` mean then.

    ``timeline`` (see :class:`~bayesdtr.DTRModel`) declares when each covariate is measured;
    with it, a stage's formulas may read only covariates measured before its decision.

    The steps, in order: the arguments (:func:`~bayesdtr.data.arguments.check_arguments`), the roles of the columns and
    the timeline, the id column, the outcome, the group column, then each stage
    (:func:`_stage_design`).

    Raises
    ------
    DataError, SpecificationError
        On any problem; messages name the column or argument and the fix.
    """
    check_arguments(data, stages, outcome, family)
    check_columns(data, [outcome], "outcome=")
    check_survival_arguments(family, event, outcome)
    check_censored_marks(data, stages, outcome, family, event)
    check_roles(stages, outcome, group, id)
    when = check_timeline(timeline, stages, data, outcome)
    df = normalize_strings(data)
    check_id(df, id)
    masks = dropout_masks(df, stages)  # (present before stage k, dropped out before stage k)
    y = _outcome_values(df, outcome, family, masks[-1][0] & ~masks[-1][1], stages)
    group_levels, group_codes = _group_codes(df, group)
    dropout = [censoring_design(df, stages, k, *masks[k - 1], outcome, when) for k in range(1, len(stages) + 1)]
    designs = [
        _stage_design(df, stages, k, outcome, when, masks[k - 1][0] & ~masks[k - 1][1])
        for k in range(1, len(stages) + 1)
    ]
    if all(cd is None for cd in dropout):
        dropout = None
    elif event is not None:
        raise SpecificationError(
            "censoring= (dropout before a stage) is not supported yet with a censored survival "
            f"outcome (event={event!r}). Use family='gaussian', or analyse the survival outcome "
            "without dropout."
        )
    if family == "bernoulli" and stages[-1].reward is not None:
        raise SpecificationError(
            "reward= on the last stage is not allowed with family='bernoulli': the final outcome "
            "is a probability scale quantity. Use family='gaussian' or move the reward."
        )
    ev = None
    if event is not None:
        ev = event_values(df, event, outcome, y)
        stage_times(df, stages, [sd.units for sd in designs], [sd.reward for sd in designs], y, outcome)
    return DTRDesign(
        data=data,
        stages=designs,
        outcome=outcome,
        family=family,
        y=y,
        group=group,
        group_levels=group_levels,
        group_codes=group_codes,
        id=id,
        data_hash=data_hash(data),
        timeline=when,
        event=ev,
        event_column=event,
        dropout=dropout,
    )


def _outcome_values(
    df: pd.DataFrame, outcome: str, family: str, present: np.ndarray, stages: Sequence[Stage]
) -> np.ndarray:
    """The final outcome as finite floats (0/1 for a Bernoulli family) of the units ``present``
    at the end (not dropped out); 0 for the others, whose outcome is never used."""
    rows = np.flatnonzero(present)
    ycol = df[outcome]
    if not pd.api.types.is_numeric_dtype(ycol):
        raise DataError(
            f"Outcome column {outcome!r} has dtype {ycol.dtype}; it must be numeric. Convert it "
            "(e.g. map labels to numbers) before building the model."
        )
    na = df.index[rows][ycol.iloc[rows].isna().to_numpy()]
    check_no_nan(df, [outcome], rows, "outcome=", "impute or remove these rows yourself." + dropout_hint(df, stages, na))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a complex outcome is refused below, not cast
        y = ycol.to_numpy(dtype=float)
    y = np.where(present, y, 0.0)
    if not np.all(np.isfinite(y)):
        bad = df.index[~np.isfinite(y)]
        raise DataError(
            f"Outcome column {outcome!r} has infinite values in rows {rows_text(bad)}; it must be "
            "finite. Replace or remove these rows."
        )
    check_used_columns(df, [outcome], rows, "outcome=")
    if family == "bernoulli" and not np.all(np.isin(y, (0.0, 1.0))):
        raise DataError(
            f"family='bernoulli' needs outcome {outcome!r} coded 0/1; saw values "
            f"{sorted(np.unique(y))[:6]}. Recode it, or use family='gaussian'."
        )
    return y


def _group_codes(df: pd.DataFrame, group: str | None) -> tuple[list[Any], np.ndarray | None]:
    """Levels and integer codes of the group column (at least 2 levels), or ``([], None)``."""
    if group is None:
        return [], None
    n = len(df)
    check_columns(df, [group], "group=")
    check_no_nan(df, [group], np.arange(n), "group=", "give these units a group label (or their own level).")
    check_used_columns(df, [group], np.arange(n), "group=")
    cat = pd.Categorical(df[group])
    group_levels = list(cat.categories)
    if len(group_levels) < 2:
        raise DataError(
            f"group column {group!r} has a single level {group_levels}; partial pooling needs "
            "at least 2 groups. Drop group=."
        )
    return group_levels, np.asarray(cat.codes, dtype=np.int64)


def _stage_design(
    df: pd.DataFrame,
    stages: Sequence[Stage],
    k: int,
    outcome: str,
    when: dict[str, int] | None,
    present: np.ndarray,
) -> StageDesign:
    """The design of stage ``k`` (1-based): columns, units, arms, matrices, feasible sets, reward.

    Its units are those ``applies=`` selects among the units ``present`` (not dropped out)."""
    st = stages[k - 1]
    where = f"Stage {st.treatment!r}"
    check_columns(df, [st.treatment], f"{where} (treatment)")
    if st.reward is not None:
        check_columns(df, [st.reward], f"{where} reward=")
    if getattr(st, "q", None) is not None:  # a BART stage: its covariates, named as the user gave them
        check_columns(df, list(st.q.covariates), f"{where} q=bd.BART(covariates=...)")
    used, q_cols = _formula_columns(df, stages, k, outcome, when)
    rows = np.flatnonzero(applies_mask(st, df) & present)
    arms, a = _observed_arms(df, st, rows, stages)
    check_no_nan(df, sorted(used | ({st.reward} if st.reward else set())), rows, where)
    check_used_columns(df, sorted(used), rows, where, covariates=True)
    sub = df.iloc[rows]
    cats = [c for c in sorted(used) if isinstance(sub[c].dtype, pd.CategoricalDtype)]
    if cats:  # unused levels would add all-zero dummy columns (rank deficiency)
        sub = sub.assign(**{c: sub[c].cat.remove_unused_categories() for c in cats})
    X_main, main_terms, main_spec = model_matrix(st.main, sub, f"{where} main=")
    X_con, con_terms, con_spec = model_matrix(st.contrast, sub, f"{where} contrast=")
    feas = _feasible_sets(st, sub, arms, a)
    sd = StageDesign(
        stage=st,
        position=k,
        arms=arms,
        units=rows,
        a=a,
        X_main=X_main,
        X_contrast=X_con,
        main_terms=main_terms,
        contrast_terms=con_terms,
        main_spec=main_spec,
        contrast_spec=con_spec,
        feasible=feas,
        reward=_reward(df, st, rows),
        columns=sorted(q_cols),
    )
    check_rank(sd)
    sd.levels = categorical_levels([main_spec, con_spec], list(df.columns))
    _propensity_design(sd, sub)
    return sd


def _formula_columns(
    df: pd.DataFrame, stages: Sequence[Stage], k: int, outcome: str, when: dict[str, int] | None
) -> tuple[set[str], set[str]]:
    """Columns read by stage ``k``'s formulas (all of them, and those of main= and contrast=),
    each known before the decision: not the outcome, this or a later treatment or reward."""
    st = stages[k - 1]
    where = f"Stage {st.treatment!r}"
    treatments = [s.treatment for s in stages]
    future = {outcome} | set(treatments[k - 1 :])
    future |= {s.reward for s in stages[k - 1 :] if s.reward is not None}
    formulas = {"main": st.main, "contrast": st.contrast}
    if isinstance(st.propensity, str):
        formulas["propensity"] = st.propensity
    used: set[str] = set()
    q_cols: set[str] = set()
    for arg, f in formulas.items():
        vars_ = formula_vars(f, f"{where} {arg}=", set(map(str, df.columns)) | future)
        bad = sorted(vars_ & future)
        if bad:
            raise SpecificationError(
                f"{where} {arg}={f!r} uses {bad}, which is not known before decision "
                f"{st.treatment!r} (the outcome, this stage's treatment, a later treatment or "
                f"a later reward). Use only baseline covariates, earlier treatments "
                f"{treatments[: k - 1]} and earlier intermediate outcomes."
            )
        check_columns(df, sorted(vars_), f"{where} {arg}=")
        check_time_order(vars_, k, when, stages, f"{where} {arg}={f!r}")
        used |= vars_
        if arg != "propensity":
            q_cols |= vars_
    return used, q_cols


def _observed_arms(
    df: pd.DataFrame, st: Stage, rows: np.ndarray, stages: Sequence[Stage]
) -> tuple[list[Any], np.ndarray]:
    """Arm labels (at least 2 observed) and the arm codes of the units that reach the stage."""
    tcol = df[st.treatment].iloc[rows]
    nan_t = tcol.index[tcol.isna().to_numpy()]
    if len(nan_t):
        raise DataError(
            f"Treatment column {st.treatment!r} is missing in rows {rows_text(nan_t)} where "
            f"the stage applies. Fill it, or set applies= to the units that reach stage "
            f"{st.treatment!r} (e.g. applies='R == 0' for non-responders)."
            + (
                f" If these units dropped out before this decision, declare it: bd.Stage({st.treatment!r}, "
                "..., censoring='<covariates known before the dropout>'), a model of remaining in "
                "the study whose inverse probabilities reweight the units that stayed."
                if st.censoring is None and st is not stages[0]
                else ""
            )
        )
    check_used_columns(df, [st.treatment], rows, f"Stage {st.treatment!r} (treatment)")
    arms = arm_levels(tcol, st.treatment)
    if len(arms) < 2:
        raise DataError(
            f"Treatment column {st.treatment!r} has a single observed arm {arms} among the "
            f"{len(rows)} units that reach this stage; contrasts need at least 2 observed "
            "arms. Drop the stage or check applies=."
        )
    code_of = {a: i for i, a in enumerate(arms)}
    a = np.array([code_of[v.item() if isinstance(v, np.generic) else v] for v in tcol], dtype=np.int64)
    return arms, a


def _feasible_sets(st: Stage, sub: pd.DataFrame, arms: list[Any], a: np.ndarray) -> np.ndarray:
    """(units, arms) feasible sets; each observed arm must be feasible, and positivity hold."""
    feas = np.ones((len(sub), len(arms)), dtype=bool)
    if st.feasible is not None:
        feas = feasible_matrix(st, sub, arms)
    infeasible = ~feas[np.arange(len(sub)), a]
    if infeasible.any():
        bad = sub.index[infeasible]
        i0 = int(np.flatnonzero(infeasible)[0])
        first = bad[0].item() if isinstance(bad[0], np.generic) else bad[0]
        allowed = [arm for arm, ok in zip(arms, feas[i0], strict=True) if ok]
        raise DataError(
            f"Treatment column {st.treatment!r}: the observed arm is outside the unit's feasible "
            f"set in rows {rows_text(bad)} (e.g. row {first!r} got {arms[a[i0]]!r}; its "
            f"feasible arms are {allowed}). Fix the data or the feasible= rule."
        )
    check_positivity(st, a, feas, arms, sub)
    return feas


def _reward(df: pd.DataFrame, st: Stage, rows: np.ndarray) -> np.ndarray:
    """The stage's reward of every unit (0 where the stage does not apply or has no reward=)."""
    reward = np.zeros(len(df))
    if st.reward is not None:
        rcol = df[st.reward]
        if not pd.api.types.is_numeric_dtype(rcol):
            raise DataError(
                f"Stage {st.treatment!r} reward column {st.reward!r} has dtype {rcol.dtype}; it must be "
                "numeric. Convert it (e.g. map labels to numbers)."
            )
        check_used_columns(df, [st.reward], rows, f"Stage {st.treatment!r} reward=")
        reward[rows] = rcol.iloc[rows].to_numpy(dtype=float)
    return reward


def _propensity_design(sd: StageDesign, sub: pd.DataFrame) -> None:
    """Set the stage's propensity design (a formula) or known probabilities (in arm order)."""
    st, where = sd.stage, f"Stage {sd.treatment!r}"
    if isinstance(st.propensity, str):
        sd.X_prop, sd.prop_terms, sd.prop_spec = model_matrix(st.propensity, sub, f"{where} propensity=")
    elif isinstance(st.propensity, KnownPropensity):
        keys = list(st.propensity.probabilities)
        if set(keys) != set(sd.arms):
            raise SpecificationError(
                f"{where}: KnownPropensity arms {keys} do not match the observed arms {sd.arms}. "
                "Give one probability per arm label, spelled as in the data."
            )
        sd.known_propensity = np.array([st.propensity.probabilities[a_] for a_ in sd.arms])
