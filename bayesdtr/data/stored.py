"""A validated design as typed arrays, and back, without evaluating any text.

A :class:`~bayesdtr.data.design.DTRDesign` is stored as the input data plus, per stage, the
arrays every query on the fitted units needs: design matrices and their term names, arm labels,
the units that reach the stage, their observed arm codes, feasible sets, rewards and the
propensity design or known probabilities. Reading them back needs no formula: formula text is
kept in the attributes for people to read, and nothing here (or anywhere in bayesdtr) parses it.

Formulas are code. formulaic evaluates Python inside a formula (``I(...)``, ``{...}``, any
function call), as every formula library does, so bayesdtr evaluates only the formulas that the
caller passes in their own ``bd.Stage`` objects. To query *new* data after loading, the caller
passes ``stages=``; the designs are rebuilt from the caller's formulas and must reproduce the
stored design matrices on the stored data, or loading is refused.

Column encodings (variable ``column_<i>`` of ``/data``, attribute ``kind``):

- ``native``: numeric, boolean, datetime64 and timedelta64 arrays; ``pandas_dtype`` restores the exact
  dtype (from an allowlist of names);
- ``string``: strings; the rows that were missing are True in ``missing_<i>`` (dim ``obs``);
- ``categorical``: integer codes (-1 = missing), ``categories`` (a JSON list of strings, numbers
  or booleans) and ``ordered``;
- ``extension``: pandas nullable numbers and booleans, as float with NaN for missing;
- ``object-native``: object columns of Python integers (within 64 bits), booleans or floats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr.data.design import DTRDesign, StageDesign, arm_array, build_design, data_hash
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import DataError, FileFormatError, SpecificationError

__all__ = [
    "StoredStage",
    "encode_frame",
    "decode_frame",
    "design_datasets",
    "design_from_tree",
    "rebuild_design",
    "parse_json",
    "file_error",
    "attr_text",
    "node_dataset",
]

_INT64 = (-(2**63), 2**63 - 1)
_NATIVE_DTYPE = re.compile(
    r"(bool|u?int(8|16|32|64)|float(16|32|64)|complex(64|128)|(datetime|timedelta)64\[(s|ms|us|ns)\])"
)
_EXTENSION_DTYPES = {f"{s}Int{b}" for s in ("", "U") for b in (8, 16, 32, 64)} | {
    "Float32",
    "Float64",
    "boolean",
}
_STRING_DTYPES = {"object", "str", "string", "string[python]", "string[pyarrow]"}
_JSON_MAX = 100_000_000  # characters of one JSON attribute


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


# --------------------------------------------------------------------------- small checks


def file_error(source: str, what: str, fix: str = "") -> FileFormatError:
    """A :class:`FileFormatError` naming the file and what is wrong in it."""
    tail = (
        f" {fix}"
        if fix
        else " The file is damaged or was altered after bayesdtr wrote it; write it again from the fitted posterior."
    )
    return FileFormatError(f"{source}: {what}.{tail}")


def parse_json(text: Any, source: str, what: str) -> Any:
    """Parse a JSON attribute (no evaluation) or raise :class:`FileFormatError`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise file_error(source, f"attribute {what} should be JSON text; got {type(text).__name__}")
    if len(text) > _JSON_MAX:
        raise file_error(
            source, f"attribute {what} is {len(text)} characters long, more than bayesdtr writes"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise file_error(
            source, f"attribute {what} is not valid JSON ({type(err).__name__}: {str(err)[:120]})"
        ) from None


def attr_text(attrs: dict, key: str) -> str | None:
    """A text attribute, or None when it is missing or not text (an array, a number)."""
    v = attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    return v if isinstance(v, str) else None


def node_dataset(tree: xr.DataTree, path: str, source: str) -> xr.Dataset:
    """The Dataset of node ``path``, or :class:`FileFormatError` if it is missing or malformed."""
    try:
        return tree[path].to_dataset()
    except (KeyError, ValueError, TypeError) as err:
        raise file_error(
            source, f"node /{path} is missing or malformed ({str(err)[:100]})"
        ) from None


def _attr_str(attrs: dict, key: str, source: str, where: str, *, empty: bool = False) -> str:
    v = attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if not isinstance(v, str) or (not empty and not v):
        raise file_error(
            source, f"{where} attribute {key!r} is missing or not a string (got {v!r:.60})"
        )
    return v


def _attr_int(attrs: dict, key: str, source: str, where: str) -> int:
    v = attrs.get(key)
    if isinstance(v, np.ndarray) and v.shape == (1,):
        v = v[0]
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer):
        raise file_error(
            source, f"{where} attribute {key!r} is missing or not an integer (got {v!r:.60})"
        )
    return int(v)


def _is_one(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) and int(v) == 1


def _scalar_list(values: Any, source: str, what: str) -> list[Any]:
    """A JSON list of strings, numbers or booleans (nothing else is a label)."""
    if not isinstance(values, list) or not all(
        isinstance(v, str | int | float | bool) and v is not None for v in values
    ):
        raise file_error(
            source, f"{what} must be a list of strings, numbers or booleans; got {values!r:.80}"
        )
    return values


def _labels_for_file(
    values: Sequence[Any], what: str, fix: str, *, floats: bool = True
) -> list[Any]:
    """Labels as JSON-safe scalars of one kind: all str, all int (64-bit), all bool or (if
    ``floats``) all finite float."""
    vals = [v.item() if isinstance(v, np.generic) else v for v in values]
    kinds = {bool if isinstance(v, bool) else type(v) for v in vals}
    allowed = {str, int, bool, float} if floats else {str, int, bool}
    ok = len(kinds) <= 1 and kinds <= allowed
    if ok and kinds == {int}:
        ok = all(_INT64[0] <= v <= _INT64[1] for v in vals)
    if ok and kinds == {float}:
        ok = all(np.isfinite(v) for v in vals)
    if not ok:
        shown = ", ".join(f"{v!r} ({type(v).__name__})" for v in vals[:4])
        raise DataError(
            f"{what} has labels {shown}{', ...' if len(vals) > 4 else ''}; a posterior file stores "
            f"labels of one type: strings, 64-bit integers{', finite floats' if floats else ''} or "
            f"booleans. {fix}"
        )
    return vals


# --------------------------------------------------------------------------- data frame


def _encode_column(col: pd.Series, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """A data column as a netCDF-storable array plus the attributes that restore it exactly."""
    fix_str = f"Convert it before fitting, e.g. df[{name!r}] = df[{name!r}].astype(str)."
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = _labels_for_file(list(dtype.categories), f"Categorical column {name!r}", fix_str)
        return np.asarray(col.cat.codes, dtype=np.int64), {
            "kind": "categorical",
            "categories": json.dumps(cats),
            "ordered": int(dtype.ordered),
        }
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise DataError(
            f"Column {name!r} holds timezone-aware datetimes ({dtype}); a posterior file stores "
            f"naive datetimes only. Convert it before fitting, e.g. df[{name!r}] = "
            f"df[{name!r}].dt.tz_convert('UTC').dt.tz_localize(None)."
        )
    if isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype | pd.SparseDtype):
        raise DataError(
            f"Column {name!r} has dtype {dtype}, which a posterior file cannot store. Convert it "
            f"before fitting: to strings (df[{name!r}].astype(str)) or numbers (e.g. "
            f"df[{name!r}].dt.start_time for periods, .array.left for intervals)."
        )
    if str(dtype) in _EXTENSION_DTYPES:
        return col.to_numpy(dtype=float, na_value=np.nan), {
            "kind": "extension",
            "pandas_dtype": str(dtype),
        }
    if isinstance(dtype, np.dtype) and _NATIVE_DTYPE.fullmatch(str(dtype)):
        return col.to_numpy(), {"kind": "native", "pandas_dtype": str(dtype)}
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        inferred = pd.api.types.infer_dtype(col, skipna=True)
        na = col.isna().to_numpy()
        if inferred in ("string", "empty"):
            vals = np.asarray(
                ["" if m else str(v) for v, m in zip(col, na, strict=True)], dtype=object
            )
            kept = str(dtype) if str(dtype) in _STRING_DTYPES else "object"
            return vals, {"kind": "string", "pandas_dtype": kept, "missing": na}
        if inferred in ("integer", "boolean") and not na.any():
            if inferred == "integer" and not all(_INT64[0] <= int(v) <= _INT64[1] for v in col):
                raise DataError(
                    f"Column {name!r} holds integers outside the 64-bit range (e.g. "
                    f"{next(v for v in col if not _INT64[0] <= int(v) <= _INT64[1])!r}); a "
                    f"posterior file stores 64-bit integers. Convert it before fitting, e.g. "
                    f"df[{name!r}] = df[{name!r}].astype(float) or .astype(str)."
                )
            return col.to_numpy(dtype=np.int64 if inferred == "integer" else bool), {
                "kind": "object-native"
            }
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            try:
                return col.to_numpy(dtype=float, na_value=np.nan), {"kind": "object-native"}
            except (OverflowError, TypeError, ValueError):
                pass
        raise DataError(
            f"Column {name!r} holds values of type {inferred!r} (dtype {dtype}); a posterior file "
            f"stores numbers, booleans, strings, categoricals and naive datetimes. {fix_str}"
        )
    raise DataError(
        f"Column {name!r} has dtype {dtype}, which a posterior file cannot store. Convert it to "
        f"numbers, strings or a categorical before fitting. {fix_str}"
    )


def encode_frame(df: pd.DataFrame) -> xr.Dataset:
    """The data as a Dataset: variables ``column_<i>`` (dim ``obs``) holding the column named by
    their ``column`` attribute, so any string is a valid column name."""
    names = list(df.columns)
    for name in names:
        if not isinstance(name, str):
            raise DataError(
                f"Column name {name!r} ({type(name).__name__}) cannot be written to a posterior "
                "file: column names must be strings. Rename the columns before fitting, e.g. "
                "df.rename(columns=str)."
            )
    data_vars = {}
    for i, name in enumerate(names):
        vals, attrs = _encode_column(df.iloc[:, i], name)
        missing = attrs.pop("missing", None)
        if missing is not None and missing.any():
            data_vars[f"missing_{i}"] = xr.Variable(("obs",), missing.astype(bool))
            attrs["missing"] = 1
        data_vars[f"column_{i}"] = xr.Variable(("obs",), vals, attrs={"column": name, **attrs})
    index = df.index.to_numpy()
    if index.dtype == object:
        index = np.asarray([str(i) for i in index], dtype=object)
    elif not _NATIVE_DTYPE.fullmatch(str(index.dtype)):
        raise DataError(
            f"The data's index has dtype {index.dtype}, which a posterior file cannot store. Reset it (df.reset_index(drop=True)) before fitting."
        )
    return xr.Dataset(data_vars, coords={"obs": index}, attrs={"columns": json.dumps(names)})


def _decode_column(var: xr.DataArray, missing: np.ndarray | None, source: str, where: str) -> Any:
    attrs = var.attrs
    kind = _attr_str(attrs, "kind", source, where)
    vals = var.values
    if vals.ndim != 1:
        raise file_error(source, f"{where} has shape {vals.shape}; a column is one-dimensional")
    if kind == "categorical":
        cats = _scalar_list(
            parse_json(attrs.get("categories"), source, f"{where} categories"),
            source,
            f"{where} categories",
        )
        if (
            vals.dtype.kind not in "iu"
            or (len(vals) and (vals.min() < -1 or vals.max() >= len(cats)))
            or len(set(cats)) != len(cats)
        ):
            raise file_error(
                source,
                f"{where} has category codes outside -1..{len(cats) - 1} or repeated categories",
            )
        ordered = _attr_int(attrs, "ordered", source, where)
        return pd.Categorical.from_codes(
            vals.astype(np.int64), categories=cats, ordered=bool(ordered)
        )
    if kind == "extension":
        dtype = _attr_str(attrs, "pandas_dtype", source, where)
        if dtype not in _EXTENSION_DTYPES or vals.dtype.kind != "f":
            raise file_error(source, f"{where} has an unknown nullable dtype {dtype!r:.40}")
        try:
            return pd.Series(vals).astype(dtype)
        except (TypeError, ValueError) as err:
            raise file_error(source, f"{where} cannot be restored as {dtype} ({err})") from None
    if kind == "string":
        dtype = _attr_str(attrs, "pandas_dtype", source, where)
        if dtype not in _STRING_DTYPES or vals.dtype.kind not in "OU":
            raise file_error(source, f"{where} has an unknown string dtype {dtype!r:.40}")
        ser = pd.Series(vals.astype(object), dtype=object)
        if missing is not None:
            ser[missing] = np.nan
        return ser if dtype == "object" else ser.astype(dtype)
    if kind == "object-native":
        if vals.dtype.kind not in "biuf":
            raise file_error(source, f"{where} should hold numbers; it holds dtype {vals.dtype}")
        return pd.Series(vals, dtype=object)
    if kind == "native":
        dtype = _attr_str(attrs, "pandas_dtype", source, where)
        if not _NATIVE_DTYPE.fullmatch(dtype):
            raise file_error(source, f"{where} has an unknown dtype {dtype!r:.40}")
        want = np.dtype(dtype)
        if want.kind != vals.dtype.kind:
            raise file_error(source, f"{where} holds dtype {vals.dtype} but says {dtype}")
        return pd.Series(vals.astype(want))
    raise file_error(source, f"{where} has an unknown encoding {kind!r:.40}")


def decode_frame(ds: xr.Dataset, source: str) -> pd.DataFrame:
    """Restore the data written by :func:`encode_frame`."""
    names = parse_json(ds.attrs.get("columns"), source, "/data columns")
    if (
        not isinstance(names, list)
        or not all(isinstance(c, str) for c in names)
        or len(set(names)) != len(names)
    ):
        raise file_error(source, "/data attribute 'columns' must list distinct column names")
    flagged = [
        i
        for i in range(len(names))
        if f"column_{i}" in ds.data_vars and _is_one(ds[f"column_{i}"].attrs.get("missing"))
    ]
    expected = {f"column_{i}" for i in range(len(names))} | {f"missing_{i}" for i in flagged}
    if set(ds.data_vars) != expected:
        raise file_error(
            source,
            f"/data holds variables {sorted(ds.data_vars)[:6]} but its column list names {len(names)} columns",
        )
    cols = {}
    for i, name in enumerate(names):
        var = ds[f"column_{i}"]
        if var.dims != ("obs",) or attr_text(var.attrs, "column") != name:
            raise file_error(
                source, f"/data column_{i} does not match column {name!r} of the column list"
            )
        missing = None
        if i in flagged:
            missing = ds[f"missing_{i}"].values
            if missing.dtype.kind != "b" or missing.shape != var.shape:
                raise file_error(source, f"/data missing_{i} must be one boolean per row")
        cols[name] = _decode_column(var, missing, source, f"/data column {name!r}")
    if "obs" not in ds.coords:
        raise file_error(source, "/data has no 'obs' coordinate")
    df = pd.DataFrame(cols)
    df.index = pd.Index(ds["obs"].values)
    return df


# --------------------------------------------------------------------------- design


def _arms_for_file(sd: StageDesign) -> np.ndarray:
    fix = (
        f"Recode the treatment before fitting, e.g. df[{sd.treatment!r}] = "
        f"df[{sd.treatment!r}].astype(str)."
    )
    _labels_for_file(sd.arms, f"Treatment column {sd.treatment!r}", fix, floats=False)
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
    return xr.Dataset(data, coords=coords, attrs=attrs)


def design_datasets(design: DTRDesign) -> dict[str, xr.Dataset]:
    """Nodes ``/data``, ``/design`` and ``/stage_k/design`` of a posterior file."""
    nodes = {"/data": encode_frame(design.data)}
    root: dict[str, Any] = {"y": (("obs",), design.y.astype(float))}
    if design.group_codes is not None:
        root["group_code"] = (("obs",), design.group_codes.astype(np.int64))
    nodes["/design"] = xr.Dataset(
        root,
        attrs={
            "outcome": design.outcome,
            "family": design.family,
            "group": design.group or "",
            "id": design.id or "",
            "treatments": json.dumps(design.treatments),
        },
    )
    for sd in design.stages:
        nodes[f"/stage_{sd.position}/design"] = _stage_dataset(sd)
    return nodes


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
    treatment = _attr_str(a_, "treatment", source, where)
    if treatment not in columns:
        raise file_error(source, f"{where}: treatment {treatment!r:.60} is not a column of /data")
    if _attr_int(a_, "position", source, where) != k + 1:
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
    kind = _attr_str(a_, "propensity_kind", source, where)
    ptext = _attr_str(a_, "propensity_formula", source, where, empty=True)
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
    reward_col = _attr_str(a_, "reward_column", source, where, empty=True)
    if reward_col and reward_col not in columns:
        raise file_error(
            source, f"{where}: reward column {reward_col!r:.60} is not a column of /data"
        )
    stage = StoredStage(
        treatment=treatment,
        main=_attr_str(a_, "main_formula", source, where, empty=True),
        contrast=_attr_str(a_, "contrast_formula", source, where, empty=True),
        propensity=propensity,
        reward=reward_col or None,
        source=source,
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
    outcome = _attr_str(ds.attrs, "outcome", source, where)
    family = _attr_str(ds.attrs, "family", source, where)
    group = _attr_str(ds.attrs, "group", source, where, empty=True) or None
    id_ = _attr_str(ds.attrs, "id", source, where, empty=True) or None
    treatments = parse_json(ds.attrs.get("treatments"), source, "/design treatments")
    columns = set(df.columns)
    if family not in ("gaussian", "bernoulli"):
        raise file_error(
            source, f"/design family {family!r:.40} is not one of ['gaussian', 'bernoulli']"
        )
    for what, col in (("outcome", outcome), ("group", group), ("id", id_)):
        if col is not None and col not in columns:
            raise file_error(source, f"/design {what} column {col!r:.60} is not a column of /data")
    if (
        not isinstance(treatments, list)
        or not treatments
        or not all(isinstance(t, str) for t in treatments)
    ):
        raise file_error(source, "/design treatments must be a non-empty list of column names")
    y = _array(ds, "y", ("obs",), "f", source, where)
    if y.shape != (n,) or not np.array_equal(
        y, pd.to_numeric(df[outcome], errors="coerce").to_numpy(dtype=float)
    ):
        raise file_error(
            source, f"/design y does not match the outcome column {outcome!r} of /data"
        )
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
    stages = []
    for k, t in enumerate(treatments):
        node = f"stage_{k + 1}"
        if node not in tree.children or "design" not in tree[node].children:
            raise file_error(source, f"the file has no /{node}/design group")
        sd = _stage_from_dataset(
            node_dataset(tree, f"{node}/design", source), k, n, columns, source
        )
        if sd.treatment != t:
            raise file_error(
                source, f"/{node}/design is treatment {sd.treatment!r} but /design lists {t!r}"
            )
        stages.append(sd)
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
    )


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
    )
    for old, new in zip(stored.stages, live.stages, strict=True):
        _check_same(old, new, source)
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
