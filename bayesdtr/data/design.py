"""Validation of a DTR specification against a wide DataFrame, and the stage design matrices.

Everything a stage model needs is computed here once: the units that reach the stage, the
observed arms as integer codes, the main-effect and contrast design matrices (formulaic), the
feasible sets, the propensity design and the rewards. Every problem raises a
:class:`~bayesdtr.exceptions.DataError` or :class:`~bayesdtr.exceptions.SpecificationError`
that names the column or argument, what was seen, what is allowed and the fix. No row is ever
dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import formulaic
import numpy as np
import pandas as pd
from formulaic.transforms import TRANSFORMS
from formulaic.utils.variables import get_required_variables

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import DataError, SpecificationError

__all__ = ["StageDesign", "DTRDesign", "build_design", "materialize", "rows_text"]


def rows_text(index: Sequence[Any], limit: int = 8) -> str:
    """Format row labels for an error message, e.g. ``[3, 17, 42] (3 rows)``."""
    idx = list(index)
    shown = ", ".join(repr(i.item() if isinstance(i, np.generic) else i) for i in idx[:limit])
    if len(idx) > limit:
        shown += ", ..."
    return f"[{shown}] ({len(idx)} row{'s' if len(idx) != 1 else ''})"


def arm_array(arms: Sequence[Any]) -> np.ndarray:
    """Arm labels as an array for coordinates and label lookups (object dtype for strings)."""
    if any(isinstance(a, str) for a in arms):
        return np.asarray([str(a) for a in arms], dtype=object)
    return np.asarray(arms)


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
            data_hash=f"{self.data_hash}[subset {len(rows)}]",
        )

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


def _check_columns(df: pd.DataFrame, cols: Sequence[str], where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{where} uses column(s) {missing} that are not in the data. Available columns: "
            f"{list(df.columns)}. Fix the name or add the column."
        )


def _plain(err: Exception) -> str:
    """An exception's text without terminal colour codes (formulaic highlights parse errors)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(err)).replace("⧛", "").replace("⧚", "")


def _formula_vars(formula: str, where: str, known: set[str]) -> set[str]:
    """Data columns a right-hand-side formula reads.

    formulaic's ``required_variables`` omits the arguments of stateful transforms
    (``center(x)``, ``scale(x)``, ``poly(x, 2)``, ``bs(x)``), so the Python factors are also
    parsed without the transform context; a name found that way is kept unless it belongs to
    formulaic's transform namespace (``contr.treatment``, ``np``) and is not in ``known``.
    """
    try:
        parsed = formulaic.Formula(formula)
        out = {str(v) for v in parsed.required_variables if v.Role.VALUE in v.roles}
    except Exception as err:  # formulaic raises many types
        raise SpecificationError(
            f"{where}: cannot parse formula {formula!r}: {_plain(err)}. Give a right-hand-side formula "
            "such as '1 + x1 + C(site)'."
        ) from err
    for term in parsed:
        for factor in term.factors:
            if str(factor.eval_method.value) != "python":
                continue
            try:
                found = get_required_variables(factor.expr, {})
            except Exception:  # unparsable here; formulaic reports it when building the design
                continue
            for v in found:
                name = str(v)
                if v.Role.VALUE in v.roles and (name in known or name.split(".")[0] not in TRANSFORMS):
                    out.add(name)
    return out


def _check_no_nan(
    df: pd.DataFrame,
    cols: Sequence[str],
    rows: np.ndarray,
    where: str,
    fix: str = "impute or remove these rows yourself, or restrict the stage with applies=.",
) -> None:
    sub = df.iloc[rows]
    for c in cols:
        bad = sub.index[sub[c].isna().to_numpy()]
        if len(bad):
            raise DataError(
                f"Column {c!r} (used by {where}) has missing values in rows {rows_text(bad)}. "
                f"bayesdtr never drops rows: {fix}"
            )


def materialize(spec: Any, df: pd.DataFrame, where: str) -> np.ndarray:
    """Evaluate a formulaic model spec on ``df`` (no rows dropped) as a float array."""
    try:
        mm = spec.get_model_matrix(df, na_action="raise")
    except Exception as err:
        raise DataError(f"{where}: cannot evaluate the formula on these data: {_plain(err)}") from err
    return np.asarray(mm, dtype=float)


def _model_matrix(formula: str, df: pd.DataFrame, where: str) -> tuple[np.ndarray, list[str], Any]:
    try:
        mm = formulaic.model_matrix(formula, df, na_action="raise")
    except Exception as err:
        raise SpecificationError(
            f"{where}: cannot build the design of {formula!r}: {_plain(err)}. Check the formula's "
            "terms and the columns' types."
        ) from err
    return np.asarray(mm, dtype=float), [str(c) for c in mm.columns], mm.model_spec


def _arm_levels(values: pd.Series, column: str) -> list[Any]:
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


def _applies_mask(stage: Stage, df: pd.DataFrame) -> np.ndarray:
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
        used = [c for c in df.columns if isinstance(c, str) and re.search(rf"(?<![\w`]){re.escape(c)}(?![\w`])|`{re.escape(c)}`", stage.applies)]
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


def _check_roles(stages: Sequence[Stage], outcome: str, group: str | None, id: str | None) -> None:
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


def data_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the data frame's values and column names (for provenance in attrs)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
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
) -> DTRDesign:
    """Validate a DTR specification and build every stage's design.

    Raises
    ------
    DataError, SpecificationError
        On any problem; messages name the column or argument and the fix.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame (one row per unit); got {type(data).__name__}.")
    if len(data) == 0:
        raise DataError("data has no rows; bayesdtr needs one row per unit.")
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
    if family not in ("gaussian", "bernoulli"):
        raise SpecificationError(f"family={family!r} is not supported; use 'gaussian' or 'bernoulli'.")
    if not isinstance(outcome, str):
        raise SpecificationError(f"outcome= must be a column name; got {outcome!r}.")
    _check_columns(data, [outcome], "outcome=")
    _check_roles(stages, outcome, group, id)
    df = data
    n = len(df)

    # ---- id
    if id is not None:
        _check_columns(df, [id], "id=")
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

    # ---- outcome
    ycol = df[outcome]
    if not pd.api.types.is_numeric_dtype(ycol):
        raise DataError(
            f"Outcome column {outcome!r} has dtype {ycol.dtype}; it must be numeric. Convert it "
            "(e.g. map labels to numbers) before building the model."
        )
    _check_no_nan(df, [outcome], np.arange(n), "outcome=", "impute or remove these rows yourself.")
    y = ycol.to_numpy(dtype=float)
    if not np.all(np.isfinite(y)):
        bad = df.index[~np.isfinite(y)]
        raise DataError(
            f"Outcome column {outcome!r} has infinite values in rows {rows_text(bad)}; it must be "
            "finite. Replace or remove these rows."
        )
    if family == "bernoulli" and not np.all(np.isin(y, (0.0, 1.0))):
        raise DataError(
            f"family='bernoulli' needs outcome {outcome!r} coded 0/1; saw values "
            f"{sorted(np.unique(y))[:6]}. Recode it, or use family='gaussian'."
        )

    # ---- group
    group_levels: list[Any] = []
    group_codes = None
    if group is not None:
        _check_columns(df, [group], "group=")
        _check_no_nan(df, [group], np.arange(n), "group=", "give these units a group label (or their own level).")
        cat = pd.Categorical(df[group])
        group_levels = list(cat.categories)
        group_codes = np.asarray(cat.codes, dtype=np.int64)
        if len(group_levels) < 2:
            raise DataError(
                f"group column {group!r} has a single level {group_levels}; partial pooling needs "
                "at least 2 groups. Drop group=."
            )

    # ---- stages
    designs: list[StageDesign] = []
    for k, st in enumerate(stages, start=1):
        where = f"Stage {st.treatment!r}"
        _check_columns(df, [st.treatment], f"{where} (treatment)")
        if st.reward is not None:
            _check_columns(df, [st.reward], f"{where} reward=")
        future = {outcome} | set(treatments[k - 1 :])
        future |= {s.reward for s in stages[k - 1 :] if s.reward is not None}
        formulas = {"main": st.main, "contrast": st.contrast}
        if isinstance(st.propensity, str):
            formulas["propensity"] = st.propensity
        used: set[str] = set()
        for arg, f in formulas.items():
            vars_ = _formula_vars(f, f"{where} {arg}=", set(map(str, df.columns)) | future)
            bad = sorted(vars_ & future)
            if bad:
                raise SpecificationError(
                    f"{where} {arg}={f!r} uses {bad}, which is not known before decision "
                    f"{st.treatment!r} (the outcome, this stage's treatment, a later treatment or "
                    f"a later reward). Use only baseline covariates, earlier treatments "
                    f"{treatments[: k - 1]} and earlier intermediate outcomes."
                )
            _check_columns(df, sorted(vars_), f"{where} {arg}=")
            used |= vars_
        mask = _applies_mask(st, df)
        rows = np.flatnonzero(mask)
        # treatment
        tcol = df[st.treatment].iloc[rows]
        nan_t = tcol.index[tcol.isna().to_numpy()]
        if len(nan_t):
            raise DataError(
                f"Treatment column {st.treatment!r} is missing in rows {rows_text(nan_t)} where "
                f"the stage applies. Fill it, or set applies= to the units that reach stage "
                f"{st.treatment!r} (e.g. applies='R == 0' for non-responders)."
            )
        arms = _arm_levels(tcol, st.treatment)
        if len(arms) < 2:
            raise DataError(
                f"Treatment column {st.treatment!r} has a single observed arm {arms} among the "
                f"{len(rows)} units that reach this stage; contrasts need at least 2 observed "
                "arms. Drop the stage or check applies=."
            )
        code_of = {a: i for i, a in enumerate(arms)}
        a = np.array([code_of[v.item() if isinstance(v, np.generic) else v] for v in tcol], dtype=np.int64)
        _check_no_nan(df, sorted(used | ({st.reward} if st.reward else set())), rows, where)
        sub = df.iloc[rows]
        cats = [c for c in sorted(used) if isinstance(sub[c].dtype, pd.CategoricalDtype)]
        if cats:  # unused levels would add all-zero dummy columns (rank deficiency)
            sub = sub.assign(**{c: sub[c].cat.remove_unused_categories() for c in cats})
        X_main, main_terms, main_spec = _model_matrix(st.main, sub, f"{where} main=")
        X_con, con_terms, con_spec = _model_matrix(st.contrast, sub, f"{where} contrast=")
        # feasible sets
        feas = np.ones((len(rows), len(arms)), dtype=bool)
        if st.feasible is not None:
            feas = _feasible_matrix(st, sub, arms)
        infeasible = ~feas[np.arange(len(rows)), a]
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
        _check_positivity(st, a, feas, arms, sub)
        reward = np.zeros(n)
        if st.reward is not None:
            rcol = df[st.reward]
            if not pd.api.types.is_numeric_dtype(rcol):
                raise DataError(
                    f"{where} reward column {st.reward!r} has dtype {rcol.dtype}; it must be "
                    "numeric. Convert it (e.g. map labels to numbers)."
                )
            reward[rows] = rcol.iloc[rows].to_numpy(dtype=float)
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
            reward=reward,
        )
        _check_rank(sd)
        if isinstance(st.propensity, str):
            sd.X_prop, sd.prop_terms, sd.prop_spec = _model_matrix(st.propensity, sub, f"{where} propensity=")
        elif isinstance(st.propensity, KnownPropensity):
            keys = list(st.propensity.probabilities)
            if set(keys) != set(arms):
                raise SpecificationError(
                    f"{where}: KnownPropensity arms {keys} do not match the observed arms {arms}. "
                    "Give one probability per arm label, spelled as in the data."
                )
            sd.known_propensity = np.array([st.propensity.probabilities[a_] for a_ in arms])
        designs.append(sd)

    if family == "bernoulli" and stages[-1].reward is not None:
        raise SpecificationError(
            "reward= on the last stage is not allowed with family='bernoulli': the final outcome "
            "is a probability scale quantity. Use family='gaussian' or move the reward."
        )
    return DTRDesign(
        data=df,
        stages=designs,
        outcome=outcome,
        family=family,
        y=y,
        group=group,
        group_levels=group_levels,
        group_codes=group_codes,
        id=id,
        data_hash=data_hash(df),
    )


def _feasible_matrix(st: Stage, sub: pd.DataFrame, arms: list[Any]) -> np.ndarray:
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


def _check_positivity(st: Stage, a: np.ndarray, feas: np.ndarray, arms: list[Any], sub: pd.DataFrame) -> None:
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


def _check_rank(sd: StageDesign) -> None:
    X = sd.X
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        names = sd.main_terms + [f"{t}:{arm}" for arm in sd.arms[1:] for t in sd.contrast_terms]
        # find a column that is a linear combination of earlier ones
        culprit = None
        for j in range(1, X.shape[1] + 1):
            if np.linalg.matrix_rank(X[:, :j]) < j:
                culprit = names[j - 1]
                break
        raise SpecificationError(
            f"Stage {sd.treatment!r}: the design of main={sd.stage.main!r} and "
            f"contrast={sd.stage.contrast!r} is rank deficient (rank {rank} < {X.shape[1]} "
            f"columns; first redundant column {culprit!r}) on the {sd.n_units} units that reach "
            "the stage. Remove the redundant term (e.g. a column collinear with another, or a "
            "covariate that is constant within an arm)."
        )
