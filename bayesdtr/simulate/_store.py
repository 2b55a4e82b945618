"""Checkpoint store of a simulation study: one netCDF file per finished replicate.

Layout of a store directory::

    manifest.json        {"format": "bayesdtr-simulation-study", "version": 1, "settings": {...}}
    rep-000000.nc        the tidy rows of replicate 0 (dimension ``row``)
    rep-000001.nc        ...

Each replicate file is written to a temporary name in the same directory and moved into place
with :func:`os.replace`, so a file either is complete or does not exist (a study killed while
writing leaves only a temporary file, which is removed on the next run). Reading uses
``xarray.open_dataset(engine="h5netcdf")``: plain arrays and strings, no pickle, nothing
evaluated.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesdtr.exceptions import SpecificationError

__all__ = ["StudyStore", "COLUMNS"]

#: Columns of the tidy replicate table, in order.
COLUMNS = [
    "replicate",
    "method",
    "estimand",
    "estimate",
    "lower",
    "upper",
    "truth",
    "covered",
    "width",
    "seconds",
    "error",
]
_STR = ("method", "estimand", "error")
_FORMAT = "bayesdtr-simulation-study"
_VERSION = 1
_REP = re.compile(r"^rep-(\d{6,})\.nc$")


class StudyStore:
    """A directory holding a study's manifest and one file per finished replicate.

    Parameters
    ----------
    path : str or Path
        The directory (created if missing).
    settings : dict
        JSON-able settings of the study. An existing store must have been written with the
        same settings, except ``reps`` (a study may be extended with more replicates).
    """

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise SpecificationError(
                f"store={str(path)!r} is a file; a study store is a directory. Pass a new "
                "directory path, e.g. store='study_store'."
            )
        manifest = self.path / "manifest.json"
        wanted = json.loads(json.dumps(settings, default=str))
        if manifest.exists():
            old = json.loads(manifest.read_text())
            if old.get("format") != _FORMAT:
                raise SpecificationError(
                    f"store={str(path)!r} has a manifest.json that is not a bayesdtr study "
                    "manifest. Use another directory."
                )
            have = {k: v for k, v in old.get("settings", {}).items() if k != "reps"}
            want = {k: v for k, v in wanted.items() if k != "reps"}
            diff = sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k))
            if diff:
                shown = "; ".join(f"{k}: stored {have.get(k)!r}, now {want.get(k)!r}" for k in diff)
                raise SpecificationError(
                    f"store={str(path)!r} holds a study with different settings ({shown}). "
                    "Resume with the same settings (only reps may change), or pass a new store path."
                )
        else:
            if self.path.exists() and any(self.path.iterdir()):
                raise SpecificationError(
                    f"store={str(path)!r} is a non-empty directory without a study manifest. "
                    "Pass a new or empty directory."
                )
            self.path.mkdir(parents=True, exist_ok=True)
            payload = {"format": _FORMAT, "version": _VERSION, "settings": wanted}
            self._atomic_write_text(manifest, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        for tmp in self.path.glob(".rep-*.tmp"):
            tmp.unlink(missing_ok=True)  # left by a study killed while writing

    # ------------------------------------------------------------------ reading
    def finished(self) -> list[int]:
        """Replicate numbers with a file in the store, sorted."""
        out = []
        for p in self.path.iterdir():
            m = _REP.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def read(self, replicate: int) -> list[tuple]:
        """The rows of one finished replicate, as tuples in :data:`COLUMNS` order."""
        with xr.open_dataset(self._file(replicate), engine="h5netcdf") as ds:
            ds = ds.load()
        if ds.sizes.get("row", 0) == 0:
            return []
        cols = []
        for c in COLUMNS:
            v = ds[c].values
            if c in _STR:
                cols.append(["" if x is None else str(x) for x in v.tolist()])
            elif c == "replicate":
                cols.append([int(x) for x in v.tolist()])
            else:
                cols.append([float(x) for x in v.tolist()])
        return list(zip(*cols, strict=True))

    # ------------------------------------------------------------------ writing
    def write(self, replicate: int, rows: list[tuple]) -> None:
        """Write one replicate's rows atomically (temporary file, then :func:`os.replace`)."""
        data: dict[str, Any] = {}
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in COLUMNS]
        for c, v in zip(COLUMNS, cols, strict=True):
            if c in _STR:
                data[c] = ("row", np.asarray(list(v), dtype=object).astype(str) if v else np.array([], dtype=str))
            elif c == "replicate":
                data[c] = ("row", np.asarray(v, dtype=np.int64))
            else:
                data[c] = ("row", np.asarray(v, dtype=np.float64))
        ds = xr.Dataset(data, attrs={"replicate": int(replicate)})
        final = self._file(replicate)
        tmp = self.path / f".rep-{replicate:06d}.{uuid.uuid4().hex}.tmp"
        try:
            ds.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _file(self, replicate: int) -> Path:
        return self.path / f"rep-{replicate:06d}.nc"

    def _atomic_write_text(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
