"""A validated design as typed arrays, and back, without evaluating any text.

A :class:`~bayesdtr.data.design.DTRDesign` is stored as the input data plus, per stage, the
arrays every query on the fitted units needs: design matrices and their term names, arm labels,
the units that reach the stage, their observed arm codes, feasible sets, rewards and the
propensity design or known probabilities, plus a survival outcome's event indicator and each
dropout stage's censoring design (units at risk, who remained, ``X_censoring``). Reading them back needs no formula: formula text is
kept in the attributes for people to read, and nothing here (or anywhere in bayesdtr) parses it.

Formulas are code. formulaic evaluates Python inside a formula (``I(...)``, ``{...}``, any
function call), as every formula library does, so bayesdtr evaluates only the formulas that the
caller passes in their own ``bd.Stage`` objects. To query *new* data after loading, the caller
passes ``stages=``; the designs are rebuilt from the caller's formulas and must reproduce the
stored design matrices on the stored data, or loading is refused.

Data-frame columns are encoded by :mod:`bayesdtr.data.frames`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr.data.bart_spec import BART
from bayesdtr.data.design import DTRDesign, StageDesign, arm_array, build_design, data_hash
from bayesdtr.data.frames import (
    attr_int,
    attr_str,
    attr_text,
    decode_frame,
    encode_frame,
    file_error,
    labels_for_file,
    node_dataset,
    parse_json,
)
from bayesdtr.data.reach import CensoringDesign
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.data.survival import SURVIVAL_FAMILIES
from bayesdtr.exceptions import SpecificationError

__all__ = ["StoredStage", "design_datasets", "design_from_tree", "rebuild_design"]


@dataclass(frozen=True)
class StoredStage:
    """What a file says about one stage, for display only.

    Stands where a live :class:`~bayesdtr.Stage` stands in a design that was read from a file.
    ``main``, ``contrast`` and a propensity formula are the text the posterior was fitted with;
    bayesdtr never parses them (a file must not reach a formula evaluator), and
    :class:`~bayesdtr.DTRModel` refuses this class. Pass your own ``bd.Stage`` list to
    ``bd.load(path, stages=...)`` to evaluate formulas on new data.
    """

    treatment: str
    main: str
    contrast: str
    propensity: str | KnownPropensity | None
    reward: str | None
    source: str
    feasible: None = None
    applies: None = None
    q: BART | None = None  # a BART stage's settings (parsed as plain JSON)


# --------------------------------------------------------------------------- small checks


def _stored_q(attrs: dict, source: str, where: str) -> BART | None:
    text = attrs.get("q_model")
    if text is None:
        return None
    try:
        return BART.from_json(str(text))  # json.loads and checked fields: nothing is evaluated
    except (ValueError, TypeError) as exc:
        raise file_error(
            source, f"{where}: q_model is not a stored BART specification ({exc})"
        ) from None


def _arms_for_file(sd: StageDesign) -> np.ndarray:
    fix = (
        f"Recode the treatment before fitting, e.g. df[{sd.treatment!r}] = "
        f"df[{sd.treatment!r}].astype(str)."
    )
    labels_for_file(sd.arms, f"Treatment column {sd.treatment!r}", fix, floats=False)
    return arm_array(sd.arms)


def _matrix(dims: tuple[str, str], X: np.ndarray) -> xr.Variable:
    """A design matrix plus its memory layout: BLAS sums in layout order, so restoring the layout
    keeps every recomputed number bit-identical."""
    layout = "F" if X.flags.f_contiguous and not X.flags.c_contiguous else "C"
    return xr.Variable(dims, X, attrs={"layout": layout})


def _with_layout(ds: xr.Dataset, name: str, X: np.ndarray) -> np.ndarray:
    if attr_text(ds[name].attrs, "layout") == "F":
        return np.asfortranarray(X, dtype=float)
    return np.ascontiguousarray(X, dtype=float)


def _stage_dataset(sd: StageDesign) -> xr.Dataset:
    st = sd.stage
    arms = _arms_for_file(sd)
    data: dict[str, Any] = {
        "units": (("unit",), sd.units.astype(np.int64)),
        "a": (("unit",), sd.a.astype(np.int64)),
        "X_main": _matrix(("unit", "main_term"), sd.X_main),
        "X_contrast": _matrix(("unit", "contrast_term"), sd.X_contrast),
        "feasible": (("unit", "arm"), sd.feasible.astype(bool)),
        "reward": (("obs",), sd.reward.astype(float)),
    }
    coords: dict[str, Any] = {
        "arm": arms,
        "main_term": np.asarray(sd.main_terms, dtype=object),
        "contrast_term": np.asarray(sd.contrast_terms, dtype=object),
    }
    if sd.known_propensity is not None:
        kind, ptext = "known", ""
        data["known_propensity"] = (("arm",), sd.known_propensity.astype(float))
    elif sd.X_prop is not None:
        kind, ptext = "formula", str(st.propensity)
        data["X_prop"] = _matrix(("unit", "propensity_term"), sd.X_prop)
        coords["propensity_term"] = np.asarray(sd.prop_terms, dtype=object)
    else:
        kind, ptext = "none", ""
    attrs = {
        "treatment": sd.treatment,
        "position": sd.position,
        "main_formula": st.main,
        "contrast_formula": st.contrast,
        "propensity_formula": ptext,
        "propensity_kind": kind,
        "reward_column": st.reward or "",
        "feasible_rule": int(st.feasible is not None),
        "note": "formula text is for reading only; bayesdtr never parses text read from a file",
    }
    if getattr(st, "q", None) is not None:
        attrs["q_model"] = st.q.to_json()  # a BART stage's settings (plain JSON)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def design_datasets(design: DTRDesign) -> dict[str, xr.Dataset]:
    """Nodes ``/data``, ``/design`` and ``/stage_k/design`` of a posterior file."""
    nodes = {"/data": encode_frame(design.data)}
    root: dict[str, Any] = {"y": (("obs",), design.y.astype(float))}
    if design.group_codes is not None:
        root["group_code"] = (("obs",), design.group_codes.astype(np.int64))
    if design.event is not None:  # a censored survival outcome: its 0/1 event indicator
        root["event"] = (("obs",), design.event.astype(float))
    nodes["/design"] = xr.Dataset(
        root,
        attrs={
            "outcome": design.outcome,
            "family": design.family,
            "group": design.group or "",
            "id": design.id or "",
            "treatments": json.dumps(design.treatments),
            "event": design.event_column or "",
        },
    )
    for k, sd in enumerate(design.stages):
        ds = _stage_dataset(sd)
        cd = None if design.dropout is None else design.dropout[k]
        if cd is not None:  # dropout before this stage: its censoring model's design
            ds = ds.assign(
                censoring_at_risk=(("risk",), cd.at_risk.astype(np.int64)),
                censoring_remained=(("risk",), cd.a.astype(np.int64)),
                X_censoring=_matrix(("risk", "censoring_term"), cd.X_prop),
            ).assign_coords(censoring_term=np.asarray(cd.prop_terms, dtype=object))
            ds.attrs["censoring_formula"] = cd.formula
        nodes[f"/stage_{sd.position}/design"] = ds
    return nodes


def _censoring_from(ds: xr.Dataset, sd: StageDesign, n: int, source: str) -> CensoringDesign | None:
    """Stage ``sd``'s stored dropout design (None if the file has none for it)."""
    where = f"/stage_{sd.position}/design"
    if "censoring_at_risk" not in ds.variables:
        return None
    at_risk = _array(ds, "censoring_at_risk", ("risk",), "iu", source, where).astype(np.int64)
    remain = _array(ds, "censoring_remained", ("risk",), "iu", source, where).astype(np.int64)
    Z = _array(ds, "X_censoring", ("risk", "censoring_term"), "f", source, where)
    ok = (
        len(at_risk) > 0
        and at_risk[0] >= 0
        and at_risk[-1] < n
        and bool(np.all(np.diff(at_risk) > 0))
        and bool(np.all(np.isin(remain, (0, 1))))
        and remain.any()
        and not remain.all()
        and np.array_equal(at_risk[remain == 1], sd.units)
    )
    if not ok:
        raise file_error(
            source,
            f"{where} censoring design: units at risk must be increasing row positions in "
            f"0..{n - 1}, remained 0/1 with both present, and those that remained the stage's units",
        )
    return CensoringDesign(
        treatment=sd.treatment,
        position=sd.position,
        formula=attr_str(ds.attrs, "censoring_formula", source, where),
        at_risk=at_risk,
        a=remain,
        X_prop=_with_layout(ds, "X_censoring", Z),
        prop_terms=_names(ds, "censoring_term", source, where),
    )


def _array(
    ds: xr.Dataset, name: str, dims: tuple[str, ...], kinds: str, source: str, where: str
) -> np.ndarray:
    if name not in ds.variables:
        raise file_error(source, f"{where} has no variable {name!r}")
    var = ds[name]
    if var.dims != dims:
        raise file_error(source, f"{where} variable {name!r} has dims {var.dims}, expected {dims}")
    vals = var.values
    if vals.dtype.kind not in kinds:
        raise file_error(source, f"{where} variable {name!r} has dtype {vals.dtype}")
    if vals.dtype.kind == "f" and not np.all(np.isfinite(vals)):
        raise file_error(source, f"{where} variable {name!r} has NaN or infinite entries")
    return vals


def _names(ds: xr.Dataset, coord: str, source: str, where: str) -> list[str]:
    if coord not in ds.coords:
        return []
    vals = ds[coord].values
    if vals.dtype.kind not in "OU" or not all(isinstance(v, str) for v in vals.tolist()):
        raise file_error(source, f"{where} coordinate {coord!r} must hold term names (strings)")
    return [str(v) for v in vals.tolist()]


def _arms_from_file(ds: xr.Dataset, source: str, where: str) -> list[Any]:
    if "arm" not in ds.coords:
        raise file_error(source, f"{where} has no 'arm' coordinate")
    vals = ds["arm"].values
    if vals.dtype.kind not in "OUbiu":
        raise file_error(source, f"{where} arm labels have dtype {vals.dtype}")
    arms = vals.tolist()
    kinds = {type(a) for a in arms}
    if (
        len(kinds) != 1
        or not kinds <= {str, int, bool}
        or len(set(arms)) != len(arms)
        or len(arms) < 2
    ):
        raise file_error(
            source,
            f"{where} arm labels {arms[:6]!r:.80} must be at least 2 distinct labels of one type",
        )
    return arms


def _stage_from_dataset(
    ds: xr.Dataset, k: int, n: int, columns: set[str], source: str
) -> StageDesign:
    where = f"/stage_{k + 1}/design"
    a_ = ds.attrs
    treatment = attr_str(a_, "treatment", source, where)
    if treatment not in columns:
        raise file_error(source, f"{where}: treatment {treatment!r:.60} is not a column of /data")
    if attr_int(a_, "position", source, where) != k + 1:
        raise file_error(source, f"{where} says it is stage {a_.get('position')!r}")
    arms = _arms_from_file(ds, source, where)
    m = len(arms)
    units = _array(ds, "units", ("unit",), "iu", source, where).astype(np.int64)
    if len(units) == 0 or units[0] < 0 or units[-1] >= n or np.any(np.diff(units) <= 0):
        raise file_error(source, f"{where} units must be increasing row positions in 0..{n - 1}")
    nk = len(units)
    a = _array(ds, "a", ("unit",), "iu", source, where).astype(np.int64)
    if np.any((a < 0) | (a >= m)):
        raise file_error(source, f"{where} arm codes must lie in 0..{m - 1}")
    main_terms = _names(ds, "main_term", source, where)
    contrast_terms = _names(ds, "contrast_term", source, where)
    X_main = _array(ds, "X_main", ("unit", "main_term"), "f", source, where)
    X_contrast = _array(ds, "X_contrast", ("unit", "contrast_term"), "f", source, where)
    feasible = _array(ds, "feasible", ("unit", "arm"), "b", source, where)
    if not feasible.any(axis=1).all() or not feasible[np.arange(nk), a].all():
        raise file_error(
            source, f"{where} feasible sets leave a unit no arm, or exclude its observed arm"
        )
    reward = _array(ds, "reward", ("obs",), "f", source, where)
    if reward.shape != (n,):
        raise file_error(source, f"{where} reward has {reward.shape[0]} entries for {n} units")
    kind = attr_str(a_, "propensity_kind", source, where)
    ptext = attr_str(a_, "propensity_formula", source, where, empty=True)
    X_prop, prop_terms, known, propensity = None, [], None, None
    if kind == "formula":
        X_prop = _array(ds, "X_prop", ("unit", "propensity_term"), "f", source, where)
        prop_terms = _names(ds, "propensity_term", source, where)
        propensity = ptext or "<formula>"
    elif kind == "known":
        known = _array(ds, "known_propensity", ("arm",), "f", source, where)
        if np.any(known <= 0) or np.any(known >= 1) or abs(known.sum() - 1) > 1e-6:
            raise file_error(
                source,
                f"{where} known propensities {known.tolist()} must lie in (0, 1) and sum to 1",
            )
        propensity = KnownPropensity(dict(zip(arms, known.tolist(), strict=True)))
    elif kind != "none":
        raise file_error(
            source,
            f"{where} propensity_kind {kind!r:.40} is not one of ['formula', 'known', 'none']",
        )
    reward_col = attr_str(a_, "reward_column", source, where, empty=True)
    if reward_col and reward_col not in columns:
        raise file_error(
            source, f"{where}: reward column {reward_col!r:.60} is not a column of /data"
        )
    stage = StoredStage(
        treatment=treatment,
        main=attr_str(a_, "main_formula", source, where, empty=True),
        contrast=attr_str(a_, "contrast_formula", source, where, empty=True),
        propensity=propensity,
        reward=reward_col or None,
        source=source,
        q=_stored_q(a_, source, where),
    )
    return StageDesign(
        stage=stage,  # type: ignore[arg-type]
        position=k + 1,
        arms=arms,
        units=units,
        a=a,
        X_main=_with_layout(ds, "X_main", X_main),
        X_contrast=_with_layout(ds, "X_contrast", X_contrast),
        main_terms=main_terms,
        contrast_terms=contrast_terms,
        main_spec=None,
        contrast_spec=None,
        feasible=np.ascontiguousarray(feasible),
        reward=reward.astype(float),
        X_prop=None if X_prop is None else _with_layout(ds, "X_prop", X_prop),
        prop_terms=prop_terms,
        known_propensity=known,
    )


def design_from_tree(tree: xr.DataTree, source: str) -> DTRDesign:
    """Rebuild a :class:`DTRDesign` from the typed arrays of a file (no formula is parsed).

    Parameters
    ----------
    tree : xarray.DataTree
        The file's tree (nodes ``/data``, ``/design`` and ``/stage_k/design``).
    source : str
        The file's name, for messages.

    Returns
    -------
    DTRDesign
        Its stages hold :class:`StoredStage` records and no formula specs, so they evaluate the
        stored units only.

    Raises
    ------
    FileFormatError
        Missing nodes, shapes, dtypes, non-finite values, codes out of range, or data that do not
        match the stored outcome and group codes.
    """
    for node in ("data", "design"):
        if node not in tree.children:
            raise file_error(source, f"the file has no /{node} group")
    df = decode_frame(node_dataset(tree, "data", source), source)
    n = len(df)
    if n == 0:
        raise file_error(source, "/data has no rows")
    ds = node_dataset(tree, "design", source)
    where = "/design"
    outcome = attr_str(ds.attrs, "outcome", source, where)
    family = attr_str(ds.attrs, "family", source, where)
    group = attr_str(ds.attrs, "group", source, where, empty=True) or None
    id_ = attr_str(ds.attrs, "id", source, where, empty=True) or None
    treatments = parse_json(ds.attrs.get("treatments"), source, "/design treatments")
    columns = set(df.columns)
    families = ("gaussian", "bernoulli", *SURVIVAL_FAMILIES)
    if family not in families:
        raise file_error(source, f"/design family {family!r:.40} is not one of {list(families)}")
    # files written before survival families were stored have no 'event' attribute: uncensored
    event_col = (
        attr_str(ds.attrs, "event", source, where, empty=True) if "event" in ds.attrs else None
    ) or None
    if (event_col is None) != (family not in SURVIVAL_FAMILIES):
        raise file_error(
            source,
            f"/design family {family!r} with event column {event_col!r:.60}: a survival family "
            f"({list(SURVIVAL_FAMILIES)}) needs its event column and no other family has one",
        )
    for what, col in (("outcome", outcome), ("group", group), ("id", id_), ("event", event_col)):
        if col is not None and col not in columns:
            raise file_error(source, f"/design {what} column {col!r:.60} is not a column of /data")
    if (
        not isinstance(treatments, list)
        or not treatments
        or not all(isinstance(t, str) for t in treatments)
    ):
        raise file_error(source, "/design treatments must be a non-empty list of column names")
    y = _array(ds, "y", ("obs",), "f", source, where)
    if y.shape != (n,):
        raise file_error(source, f"/design y has {y.shape[0]} entries for {n} units")
    group_levels: list[Any] = []
    group_codes = None
    if group is not None:
        cat = pd.Categorical(df[group])
        group_levels = list(cat.categories)
        group_codes = np.asarray(cat.codes, dtype=np.int64)
        stored = _array(ds, "group_code", ("obs",), "iu", source, where)
        if not np.array_equal(stored, group_codes) or len(group_levels) < 2:
            raise file_error(
                source, f"/design group codes do not match the group column {group!r} of /data"
            )
    stages, dropout = [], []
    for k, t in enumerate(treatments):
        node = f"stage_{k + 1}"
        if node not in tree.children or "design" not in tree[node].children:
            raise file_error(source, f"the file has no /{node}/design group")
        sds = node_dataset(tree, f"{node}/design", source)
        sd = _stage_from_dataset(sds, k, n, columns, source)
        if sd.treatment != t:
            raise file_error(
                source, f"/{node}/design is treatment {sd.treatment!r} but /design lists {t!r}"
            )
        stages.append(sd)
        dropout.append(_censoring_from(sds, sd, n, source))
    if dropout[0] is not None:
        raise file_error(source, "/stage_1/design has a censoring design (dropout before stage 1)")
    # the outcome of the units that dropped out is missing in /data and 0 in y
    dropped = np.zeros(n, dtype=bool)
    for cd in dropout:
        if cd is not None:
            dropped[cd.dropped] = True
    column = pd.to_numeric(df[outcome], errors="coerce").to_numpy(dtype=float)
    if not np.array_equal(y[~dropped], column[~dropped]) or np.any(y[dropped] != 0):
        raise file_error(
            source, f"/design y does not match the outcome column {outcome!r} of /data"
        )
    event = _event_from(ds, df, event_col, y, source)
    return DTRDesign(
        data=df,
        stages=stages,
        outcome=outcome,
        family=family,
        y=y.astype(float),
        group=group,
        group_levels=group_levels,
        group_codes=group_codes,
        id=id_,
        data_hash=data_hash(df),
        event=event,
        event_column=event_col,
        dropout=None if all(cd is None for cd in dropout) else dropout,
    )


def _event_from(
    ds: xr.Dataset, df: pd.DataFrame, event_col: str | None, y: np.ndarray, source: str
) -> np.ndarray | None:
    """The stored 0/1 event indicator of a survival design, checked against ``/data`` (None if
    the outcome is not censored)."""
    if event_col is None:
        if "event" in ds.variables:
            raise file_error(source, "/design has an event variable but no event column")
        return None
    event = _array(ds, "event", ("obs",), "f", source, "/design")
    column = pd.to_numeric(df[event_col], errors="coerce").to_numpy(dtype=float)
    if not np.array_equal(event, column) or not np.all(np.isin(event, (0.0, 1.0))):
        raise file_error(
            source, f"/design event does not match the 0/1 event column {event_col!r} of /data"
        )
    if not np.all(y > 0):
        raise file_error(source, "/design y holds survival times, which must all be > 0")
    return event.astype(float)


# --------------------------------------------------------------------------- live stages


def rebuild_design(stored: DTRDesign, stages: Any, source: str) -> DTRDesign:
    """Designs rebuilt from the caller's own ``stages`` on the stored data.

    Parameters
    ----------
    stored : DTRDesign
        The design read from the file (:func:`design_from_tree`).
    stages : list of Stage
        The caller's stages, matched by treatment name (any order).
    source : str
        The file's name, for messages.

    Returns
    -------
    DTRDesign
        A live design (formula specs included) equal to the stored one.

    Raises
    ------
    SpecificationError
        ``stages`` is not a list of ``bd.Stage``, names other treatments, or does not reproduce
        every stored array exactly (arms, units, terms, design matrices, propensity design,
        known probabilities, feasible sets, rewards).
    """
    if isinstance(stages, Stage) or not isinstance(stages, Sequence) or isinstance(stages, str):
        raise SpecificationError(
            f"bd.load({source}, stages=...) must be a list of bd.Stage; got {type(stages).__name__}. "
            "Pass the stages the posterior was fitted with, e.g. stages=[bd.Stage('A1', ...), ...]."
        )
    by_name: dict[str, Stage] = {}
    for i, st in enumerate(stages):
        if not isinstance(st, Stage):
            raise SpecificationError(
                f"bd.load({source}, stages=...): stages[{i}] is a {type(st).__name__}, not a bd.Stage. "
                "Pass your own bd.Stage objects (formulas read from a file are never evaluated)."
            )
        if st.treatment in by_name:
            raise SpecificationError(
                f"bd.load({source}, stages=...) names treatment {st.treatment!r} twice."
            )
        by_name[st.treatment] = st
    if set(by_name) != set(stored.treatments):
        raise SpecificationError(
            f"bd.load({source}, stages=...) gives treatments {sorted(by_name)}, but the posterior "
            f"was fitted with {stored.treatments}. Stages are matched by treatment name; pass one "
            "bd.Stage per fitted treatment."
        )
    ordered = [by_name[t] for t in stored.treatments]
    live = build_design(
        stored.data,
        ordered,
        outcome=stored.outcome,
        family=stored.family,
        group=stored.group,
        id=stored.id,
        event=stored.event_column,
    )
    for old, new in zip(stored.stages, live.stages, strict=True):
        _check_same(old, new, source)
    for k, t in enumerate(stored.treatments):
        was = None if stored.dropout is None else stored.dropout[k]
        now = None if live.dropout is None else live.dropout[k]
        same = (was is None and now is None) or (
            was is not None
            and now is not None
            and np.array_equal(was.at_risk, now.at_risk)
            and np.array_equal(was.a, now.a)
            and was.prop_terms == now.prop_terms
            and np.array_equal(was.X_prop, now.X_prop)
        )
        if not same:
            raise SpecificationError(
                f"bd.load({source}, stages=...): stage {t!r} does not reproduce the fitted dropout "
                f"design (file: censoring={None if was is None else was.formula!r}; your stage: "
                f"censoring={None if now is None else now.formula!r}, or other units or values). "
                "Pass the bd.Stage objects the posterior was fitted with."
            )
    live.ipcw = stored.ipcw
    return live


def _check_same(old: StageDesign, new: StageDesign, source: str) -> None:
    def same(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return x is None and y is None
        return np.shape(x) == np.shape(y) and bool(np.array_equal(np.asarray(x), np.asarray(y)))

    checks = [
        ("arms", old.arms == new.arms, old.arms, new.arms),
        (
            "units that reach the stage (applies=)",
            same(old.units, new.units),
            f"{old.n_units} units",
            f"{new.n_units} units",
        ),
        ("main terms", old.main_terms == new.main_terms, old.main_terms, new.main_terms),
        ("main design matrix", same(old.X_main, new.X_main), "stored values", "different values"),
        (
            "contrast terms",
            old.contrast_terms == new.contrast_terms,
            old.contrast_terms,
            new.contrast_terms,
        ),
        (
            "contrast design matrix",
            same(old.X_contrast, new.X_contrast),
            "stored values",
            "different values",
        ),
        ("propensity terms", old.prop_terms == new.prop_terms, old.prop_terms, new.prop_terms),
        ("propensity design matrix", same(old.X_prop, new.X_prop), "stored", "different"),
        (
            "known propensities",
            same(old.known_propensity, new.known_propensity),
            old.known_propensity,
            new.known_propensity,
        ),
        ("feasible sets", same(old.feasible, new.feasible), "stored sets", "different sets"),
        ("rewards", same(old.reward, new.reward), old.stage.reward, new.stage.reward),
    ]
    for what, ok, was, now in checks:
        if not ok:
            raise SpecificationError(
                f"bd.load({source}, stages=...): stage {new.treatment!r} does not reproduce the "
                f"fitted design: its {what} differ (file: {was!s:.120}; your stage: {now!s:.120}). "
                "The stored coefficients belong to the fitted design, so a different formula would "
                "attach them to the wrong covariates. Pass the bd.Stage objects the posterior was "
                "fitted with."
            )
