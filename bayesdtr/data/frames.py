"""Input data frames and file attributes as typed arrays, and back, without evaluating text.

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
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr.exceptions import DataError, FileFormatError

__all__ = [
    "attr_int",
    "attr_str",
    "attr_text",
    "decode_frame",
    "encode_frame",
    "file_error",
    "labels_for_file",
    "node_dataset",
    "parse_json",
    "scalar_list",
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


def attr_str(attrs: dict, key: str, source: str, where: str, *, empty: bool = False) -> str:
    v = attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if not isinstance(v, str) or (not empty and not v):
        raise file_error(
            source, f"{where} attribute {key!r} is missing or not a string (got {v!r:.60})"
        )
    return v


def attr_int(attrs: dict, key: str, source: str, where: str) -> int:
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


def scalar_list(values: Any, source: str, what: str) -> list[Any]:
    """A JSON list of strings, numbers or booleans (nothing else is a label)."""
    if not isinstance(values, list) or not all(
        isinstance(v, str | int | float | bool) and v is not None for v in values
    ):
        raise file_error(
            source, f"{what} must be a list of strings, numbers or booleans; got {values!r:.80}"
        )
    return values


def labels_for_file(
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
        cats = labels_for_file(list(dtype.categories), f"Categorical column {name!r}", fix_str)
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
    kind = attr_str(attrs, "kind", source, where)
    vals = var.values
    if vals.ndim != 1:
        raise file_error(source, f"{where} has shape {vals.shape}; a column is one-dimensional")
    if kind == "categorical":
        cats = scalar_list(
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
        ordered = attr_int(attrs, "ordered", source, where)
        return pd.Categorical.from_codes(
            vals.astype(np.int64), categories=cats, ordered=bool(ordered)
        )
    if kind == "extension":
        dtype = attr_str(attrs, "pandas_dtype", source, where)
        if dtype not in _EXTENSION_DTYPES or vals.dtype.kind != "f":
            raise file_error(source, f"{where} has an unknown nullable dtype {dtype!r:.40}")
        try:
            return pd.Series(vals).astype(dtype)
        except (TypeError, ValueError) as err:
            raise file_error(source, f"{where} cannot be restored as {dtype} ({err})") from None
    if kind == "string":
        dtype = attr_str(attrs, "pandas_dtype", source, where)
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
        dtype = attr_str(attrs, "pandas_dtype", source, where)
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
