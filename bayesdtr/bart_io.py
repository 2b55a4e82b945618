"""BART stages in posterior files: their units' Q evaluations and their forests as JSON.

A BART stage (``Stage(q=bd.BART(...))``) has no coefficients. Its ``/stage_k/posterior`` node
holds ``q_units`` (chain, draw, arm, unit): Q of every draw, arm and unit of the stage, which is
all that queries on the fitted units read. ``post.to_netcdf(path)`` also writes the forests, so
that queries on new histories (``prob_optimal(data=new)``) work after ``bd.load``::

    /stage_k/forests        json (forest_byte; uint8, zlib-compressed): stochtree's JSON text of
                            each fit's model, one after the other; offset (fit_edge): where fit j
                            starts and ends; attrs per (draws per fit), link ("identity" or
                            "probit"), format ("stochtree-json")

The JSON is parsed only when a query needs the forests (Python's ``json``, then stochtree's C++
JSON reader; never pickle, nothing evaluated), and the parsed forests must reproduce the stored Q
evaluations of the stage's first units, or the query raises :class:`~bayesdtr.FileFormatError`.
Cost, measured by ``benchmarks/bench_bart_files.py`` (``nonlinear_band``, n = 1,000, two BART
stages of 50 trees, the default 4 x 1,000 draws; a 2-core machine at load average about 10, so
read the ratios): the file is 191 MB with the forests against 122 MB without (``q_units`` is most
of both), written in 190 s against 10 s (stochtree's ``to_json`` took 0.45 s per 100 draws of
50 trees in a separate measurement); ``bd.load`` 19 s against 6 s; the first query on new
histories after loading 152 s (it parses stage 2's 4 models of 1,000 draws), later ones 0.15 s.
Use ``to_netcdf(path, forests=False)`` when new histories will not be asked about.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesdtr.data.design import StageDesign
from bayesdtr.data.frames import attr_int, attr_text, file_error, node_dataset
from bayesdtr.inference.draws import StageDraws
from bayesdtr.inference.engines.bart import LINKS, ForestText, StoredQ, forest_text_of

__all__ = ["FOREST_FORMAT", "q_units_layout", "stored_q", "with_forests"]

#: The ``format`` attribute of a ``/stage_k/forests`` node.
FOREST_FORMAT = "stochtree-json"

#: zlib level of the forests' JSON bytes (4: about 5.5x smaller, 0.1 s per 4 MB).
COMPRESSION = 4


def q_units_layout(q: np.ndarray, C: int, D: int) -> np.ndarray:
    """(arm, draw, unit) -> (chain, draw, arm, unit), the file's layout of ``q_units``."""
    return np.moveaxis(q, 0, 1).reshape((C, D) + (q.shape[0], q.shape[2]))


def forests_dataset(fit: StageDraws) -> xr.Dataset | None:
    """The ``/stage_k/forests`` node of a BART stage, or None (linear stage, no forests)."""
    text = forest_text_of(fit)
    if text is None:
        return None
    ds = xr.Dataset(
        {"json": (("forest_byte",), text.data), "offset": (("fit_edge",), text.offsets)},
        attrs={"per": int(text.per), "link": text.link, "format": FOREST_FORMAT},
    )
    ds["json"].encoding = {"zlib": True, "complevel": COMPRESSION}
    return ds


def with_forests(tree: xr.DataTree, fits: list[StageDraws]) -> xr.DataTree:
    """A copy of ``tree`` with a ``/stage_k/forests`` node for every BART stage of ``fits``."""
    out = tree.copy()
    for k, fit in enumerate(fits):
        ds = forests_dataset(fit)
        if ds is not None:
            out[f"stage_{k + 1}/forests"] = xr.DataTree(ds)
    return out


def stored_q(
    tree: xr.DataTree, k: int, sd: StageDesign, q: np.ndarray, family: str, source: str
) -> StoredQ:
    """The Q model of BART stage ``k`` read from a file: ``q`` (chain, draw, arm, unit) and,
    if the file has them, the forests' JSON text (checked here, parsed when first needed)."""
    C, D, m, n = q.shape
    forests = None
    if "forests" in tree[f"stage_{k + 1}"].children:
        forests = _forest_text(tree, k, C * D, family, source)
    q_arm_first = np.ascontiguousarray(np.moveaxis(q.reshape(C * D, m, n), 1, 0))
    return StoredQ(q_arm_first, sd.X_main, forests)


def _forest_text(tree: xr.DataTree, k: int, S: int, family: str, source: str) -> ForestText:
    where = f"/stage_{k + 1}/forests"
    ds = node_dataset(tree, f"stage_{k + 1}/forests", source)
    if attr_text(ds.attrs, "format") != FOREST_FORMAT:
        raise file_error(source, f"{where} format is not {FOREST_FORMAT!r}")
    link = attr_text(ds.attrs, "link")
    if link != LINKS.get(family):
        raise file_error(
            source, f"{where} link {link!r:.40} does not match the stage's family {family!r}"
        )
    per = attr_int(ds.attrs, "per", source, where)
    if "json" not in ds or "offset" not in ds:
        raise file_error(source, f"{where} needs the variables 'json' and 'offset'")
    data, offsets = ds["json"].values, ds["offset"].values
    if data.ndim != 1 or data.dtype != np.uint8:
        raise file_error(source, f"{where} json must be bytes (uint8), got {data.dtype}")
    if (
        offsets.ndim != 1
        or offsets.dtype.kind not in "iu"
        or len(offsets) < 2
        or offsets[0] != 0
        or offsets[-1] != len(data)
        or np.any(np.diff(offsets) <= 0)
    ):
        raise file_error(
            source, f"{where} offset must rise from 0 to the length of json ({len(data)})"
        )
    fits = len(offsets) - 1
    if per < 1 or per * fits < S or per * (fits - 1) >= S:
        raise file_error(
            source, f"{where} holds {fits} fits of {per} draws, which do not make {S} draws"
        )
    return ForestText(np.ascontiguousarray(data), offsets.astype(np.int64), per, str(link), source)
