"""Checkpoint store of a simulation study: one small HDF5 file per finished replicate.

Layout of a store directory::

    manifest.json        {"format": "bayesdtr-simulation-study", "version": 1, "settings": {...}}
    rep-000000.h5        the tidy rows of replicate 0
    rep-000001.h5        ...

A replicate file holds three datasets: ``replicate`` (int64, one per row), ``text`` (3 x rows
UTF-8 strings: method, estimand, error) and ``numbers`` (7 x rows float64: estimate, lower,
upper, truth, covered, width, seconds). HDF5 is the container of netCDF-4; the files are written
with h5py directly because xarray's netCDF writer cost 0.46 s per replicate on the project's
machine (h5py: 4 ms), as much as a whole replicate.

Each file is written to a temporary name in the same directory and moved into place with
:func:`os.replace`, so a file either is complete or does not exist (a study killed while
writing leaves only a temporary file, which is removed on the next run). Reading returns plain
arrays and strings: no pickle, nothing evaluated.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np

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
_TEXT = ("method", "estimand", "error")
_NUMBERS = ("estimate", "lower", "upper", "truth", "covered", "width", "seconds")
_FORMAT = "bayesdtr-simulation-study"
_VERSION = 1
_REP = re.compile(r"^rep-(\d{6,})\.h5$")


class StudyStore:
    """A directory holding a study's manifest and one HDF5 file per finished replicate.

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
        import h5py  # imported when needed: `import bayesdtr` stays light

        with h5py.File(self._file(replicate), "r") as f:
            rep = f["replicate"][...].tolist()
            text = f["text"].asstr()[...].tolist() if len(rep) else [[], [], []]
            num = f["numbers"][...].tolist() if len(rep) else [[] for _ in _NUMBERS]
        cols = dict(zip(_TEXT, text, strict=True)) | dict(zip(_NUMBERS, num, strict=True))
        cols["replicate"] = [int(r) for r in rep]
        return list(zip(*(cols[c] for c in COLUMNS), strict=True))

    # ------------------------------------------------------------------ writing
    def write(self, replicate: int, rows: list[tuple]) -> None:
        """Write one replicate's rows atomically (temporary file, then :func:`os.replace`)."""
        import h5py

        cols = dict(zip(COLUMNS, zip(*rows, strict=True), strict=True)) if rows else {c: () for c in COLUMNS}
        final = self._file(replicate)
        tmp = self.path / f".rep-{replicate:06d}.{uuid.uuid4().hex}.tmp"
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["replicate"] = int(replicate)
                f.create_dataset("replicate", data=np.asarray(cols["replicate"], dtype=np.int64))
                text = np.array([list(cols[c]) for c in _TEXT], dtype=object).reshape(3, len(rows))
                f.create_dataset("text", data=text, dtype=h5py.string_dtype())
                num = np.array([list(cols[c]) for c in _NUMBERS], dtype=np.float64).reshape(7, len(rows))
                f.create_dataset("numbers", data=num)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _file(self, replicate: int) -> Path:
        return self.path / f"rep-{replicate:06d}.h5"

    def _atomic_write_text(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
