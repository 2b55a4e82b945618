"""Posterior files: the DataTree layout, atomic netCDF writes, and reading typed arrays back.

A file holds arrays and plain attributes only (never pickle), and reading it evaluates no text:
the designs come back as stored matrices (:mod:`bayesdtr.data.stored`), priors as plain
dictionaries rebuilt through an allowlist, seeds and settings as checked JSON. This module knows
no ``DTRModel`` or ``DTRPosterior``: it reads and writes :class:`PosteriorParts`.

Layout (format 2)::

    /                       attrs: bayesdtr_version, format_version, random_seed (decimal text),
                            seeds (JSON), settings (JSON), data_hash
    /data                   the input data: column_<i> (obs), attrs column (the name) and encoding
    /design                 y (obs), group_code (obs, with group=); attrs outcome, family, group,
                            id, treatments
    /stage_k/design         units, a (unit), X_main (unit, main_term), X_contrast
                            (unit, contrast_term), X_prop (unit, propensity_term) or
                            known_propensity (arm), feasible (unit, arm), reward (obs);
                            attrs treatment, position, *_formula (text for reading only),
                            propensity_kind, reward_column, feasible_rule, note, priors (JSON)
    /stage_k/posterior      beta (chain, draw, main_term), psi (chain, draw, arm, contrast_term),
                            sigma, group effects, ancestor; a BART stage: q_units instead of
                            beta and psi, and /stage_k/forests (:mod:`bayesdtr.bart_io`)
    /stage_k/sample_stats   diverging, n_steps (MCMC stages)
    /stage_k/propensity     propensity_coef (chain, draw, contrast_arm, propensity_term) or known (arm)
    /policy/stage_k         prob_optimal (obs, arm) of the units that reach stage k
    /value                  optimal (chain, draw): the value posterior of the optimal regime;
                            absent for a censored survival outcome (its value needs a horizon)

A censored survival outcome (``family`` lognormal or weibull) adds ``event`` (obs) to
``/design`` and its column name as the attribute ``event``; each stage's ``reward`` holds its
time to the next decision, and every stage's ``/posterior`` has ``sigma``, the AFT scale draws.
Dropout before stage k (``censoring=``) adds to ``/stage_k/design`` the censoring model's
design: ``censoring_at_risk`` and ``censoring_remained`` (risk), ``X_censoring`` (risk,
censoring_term), attrs ``censoring_formula`` (for reading only), and its draws as
``/stage_k/censoring``: ``censoring_coef`` (chain, draw, censoring_term), ``stat_<name>``. The
inverse-probability-of-censoring weights are recomputed from them exactly as the fit did.
Files without the ``event`` attribute (written before survival outcomes were stored) read as
uncensored, as they were written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr._version import __version__
from bayesdtr.bart_io import q_units_layout, stored_q
from bayesdtr.constants import ENGINES, PROPAGATIONS, SAMPLERS
from bayesdtr.data.design import DTRDesign, StageDesign, arm_array
from bayesdtr.data.frames import attr_text, file_error, node_dataset, parse_json
from bayesdtr.data.spec import Stage
from bayesdtr.data.stored import design_datasets, design_from_tree, rebuild_design
from bayesdtr.exceptions import FileFormatError
from bayesdtr.inference.backward import FitSettings
from bayesdtr.inference.draws import PropensityDraws, StageDraws
from bayesdtr.inference.engines.bart import q_units_of
from bayesdtr.models.priors import StagePriors
from bayesdtr.prior_io import priors_from, priors_json

__all__ = [
    "FORMAT_VERSION",
    "check_path",
    "PosteriorParts",
    "stage_posterior_dataset",
    "build_tree",
    "write_netcdf",
    "read_netcdf",
]

#: Version of the file layout; files of a newer format are refused.
FORMAT_VERSION = 2
_DIGITS = re.compile(r"[0-9]{1,200}")
_ENGINES = ("conjugate", "gibbs", "mcmc", "robust", "bart")


@dataclass
class PosteriorParts:
    """Everything a posterior is made of, as plain data: what files store and restore."""

    design: DTRDesign
    priors: dict[str, StagePriors]
    settings: FitSettings
    fits: list[StageDraws]
    propensities: list[PropensityDraws | None]
    random_seed: int
    seed: np.random.SeedSequence
    induction_seed: np.random.SeedSequence
    tree: xr.DataTree | None = None
    source: str | None = None


# --------------------------------------------------------------------------- writing


def stage_posterior_dataset(
    sd: StageDesign, fit: StageDraws, group_levels: Sequence[Any]
) -> xr.Dataset:
    """Stage draws as a Dataset with the fixed dim names (reference arm's psi = 0)."""
    C, D = fit.chains, fit.draws
    coords: dict[str, Any] = {
        "chain": np.arange(C),
        "draw": np.arange(D),
        "main_term": np.asarray(sd.main_terms, dtype=object),
        "contrast_term": np.asarray(sd.contrast_terms, dtype=object),
        "arm": arm_array(sd.arms),
    }
    q_units = q_units_of(fit)
    if q_units is not None:  # a BART stage: its units' Q evaluations instead of coefficients
        data: dict[str, Any] = {
            "q_units": (("chain", "draw", "arm", "unit"), q_units_layout(q_units, C, D))
        }
    else:
        data = _coefficients(sd, fit)
    if fit.sigma is not None:
        data["sigma"] = (("chain", "draw"), fit.sigma.reshape(C, D))
    G = len(group_levels)
    if fit.group_intercept is not None:
        coords["group"] = np.asarray([str(g) for g in group_levels], dtype=object)
        data["group_intercept"] = (("chain", "draw", "group"), fit.group_intercept.reshape(C, D, G))
    if fit.group_contrast is not None:
        gc = np.zeros((C, D, G, sd.n_arms))
        gc[..., 1:] = fit.group_contrast.reshape(C, D, G, sd.n_arms - 1)
        data["group_contrast"] = (("chain", "draw", "group", "arm"), gc)
    for name, arr in fit.extras.items():
        arr = arr.reshape((C, D) + arr.shape[1:])
        dims = ("chain", "draw") + (("contrast_arm",) if arr.ndim == 3 else ())
        data[name] = (dims, arr)
        if arr.ndim == 3:
            coords["contrast_arm"] = arm_array(sd.arms[1:])
    if fit.ancestor is not None:
        data["ancestor"] = (("chain", "draw"), fit.ancestor.reshape(C, D).astype(np.int64))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        treatment=sd.treatment, engine=fit.engine, family=fit.family, reference_arm=str(sd.arms[0])
    )
    return ds


def _coefficients(sd: StageDesign, fit: StageDraws) -> dict[str, Any]:
    C, D = fit.chains, fit.draws
    pm_, pc = sd.X_main.shape[1], sd.X_contrast.shape[1]
    beta = fit.theta[:, :pm_].reshape(C, D, pm_)
    psi = np.zeros((C, D, sd.n_arms, pc))
    psi[:, :, 1:, :] = fit.theta[:, pm_:].reshape(C, D, sd.n_arms - 1, pc)
    return {
        "beta": (("chain", "draw", "main_term"), beta),
        "psi": (("chain", "draw", "arm", "contrast_term"), psi),
    }


def _propensity_dataset(
    sd: StageDesign, pr: PropensityDraws, group_levels: Sequence[Any]
) -> xr.Dataset:
    if pr.known is not None:
        return xr.Dataset({"known": (("arm",), pr.known)}, coords={"arm": arm_array(sd.arms)})
    assert pr.gamma is not None
    C, D = pr.chains, pr.draws
    data: dict[str, Any] = {
        "propensity_coef": (
            ("chain", "draw", "contrast_arm", "propensity_term"),
            pr.gamma.reshape(C, D, *pr.gamma.shape[1:]),
        )
    }
    coords: dict[str, Any] = {
        "chain": np.arange(C),
        "draw": np.arange(D),
        "contrast_arm": arm_array(sd.arms[1:]),
        "propensity_term": np.asarray(sd.prop_terms, dtype=object),
    }
    if pr.group_effect is not None:
        data["propensity_group"] = (
            ("chain", "draw", "group", "contrast_arm"),
            pr.group_effect.reshape(C, D, *pr.group_effect.shape[1:]),
        )
        coords["group"] = np.asarray([str(g) for g in group_levels], dtype=object)
    for name, arr in pr.stats.items():
        data[f"stat_{name}"] = (("chain", "draw"), arr.reshape(C, D))
    return xr.Dataset(data, coords=coords)


def _censoring_dataset(terms: Sequence[str], cr: PropensityDraws) -> xr.Dataset:
    """The draws of a stage's censoring (dropout) model: P(remain) = logit^-1(z' gamma)."""
    assert cr.gamma is not None
    C, D = cr.chains, cr.draws
    data: dict[str, Any] = {
        "censoring_coef": (("chain", "draw", "censoring_term"), cr.gamma.reshape(C, D, -1))
    }
    for name, arr in cr.stats.items():
        data[f"stat_{name}"] = (("chain", "draw"), arr.reshape(C, D))
    coords = {
        "chain": np.arange(C),
        "draw": np.arange(D),
        "censoring_term": np.asarray(list(terms), dtype=object),
    }
    return xr.Dataset(data, coords=coords)


def _seed_json(seed: np.random.SeedSequence) -> dict[str, Any]:
    ent = seed.entropy
    entropy = (
        [str(int(e)) for e in ent] if isinstance(ent, Sequence | np.ndarray) else str(int(ent))
    )  # type: ignore[arg-type]
    return {"entropy": entropy, "spawn_key": [int(k) for k in seed.spawn_key]}


def build_tree(
    parts: PosteriorParts, *, prob_optimal: Sequence[pd.DataFrame], value: xr.DataArray | None
) -> xr.DataTree:
    """Assemble the full DataTree of a posterior (layout in the module docstring).

    Parameters
    ----------
    parts : PosteriorParts
        The posterior's design, draws, priors, seeds and settings.
    prob_optimal : list of pandas.DataFrame
        P(arm optimal) of each stage's units (obs x arm), one per stage.
    value : xarray.DataArray or None
        The value posterior of the optimal regime (chain, draw); None writes no ``/value`` node
        (a censored survival outcome, whose value needs a horizon).

    Returns
    -------
    xarray.DataTree

    Raises
    ------
    DataError, PriorError
        A column, label or prior that a file cannot hold; the message says how to convert it.
    """
    design = parts.design
    nodes = design_datasets(design)
    index = nodes["/data"]["obs"].values
    for k, sd in enumerate(design.stages):
        base = f"/stage_{k + 1}"
        nodes[f"{base}/design"].attrs["priors"] = priors_json(
            parts.priors[sd.treatment], sd.treatment
        )
        fit = parts.fits[k]
        nodes[f"{base}/posterior"] = stage_posterior_dataset(sd, fit, design.group_levels)
        if fit.stats:
            C, D = fit.chains, fit.draws
            nodes[f"{base}/sample_stats"] = xr.Dataset(
                {n: (("chain", "draw"), v.reshape(C, D)) for n, v in fit.stats.items()},
                coords={"chain": np.arange(C), "draw": np.arange(D)},
            )
        pr = parts.propensities[k]
        if pr is not None:
            nodes[f"{base}/propensity"] = _propensity_dataset(sd, pr, design.group_levels)
        cr = None if design.ipcw is None else design.ipcw.draws[k]
        if cr is not None:
            nodes[f"{base}/censoring"] = _censoring_dataset(design.ipcw.stages[k].prop_terms, cr)
        nodes[f"/policy/stage_{k + 1}"] = xr.Dataset(
            {"prob_optimal": (("obs", "arm"), prob_optimal[k].to_numpy())},
            coords={"obs": index[sd.units], "arm": arm_array(sd.arms)},
            attrs={"treatment": sd.treatment},
        )
    if value is not None:
        nodes["/value"] = xr.Dataset({"optimal": value})
    tree = xr.DataTree.from_dict(nodes)
    tree.attrs.update(
        {
            "bayesdtr_version": __version__,
            "format_version": FORMAT_VERSION,
            "random_seed": str(int(parts.random_seed)),
            "seeds": json.dumps(
                {"posterior": _seed_json(parts.seed), "induction": _seed_json(parts.induction_seed)}
            ),
            "data_hash": design.data_hash,
            "settings": json.dumps(dataclasses.asdict(parts.settings)),
        }
    )
    return tree


def check_path(path: Any, verb: str) -> str:
    """``path`` as a string, or :class:`FileFormatError` if it is not a file path."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise FileFormatError(
            f"path={path!r:.80} is not a file path; {verb} needs a str or pathlib.Path, e.g. "
            "post.to_netcdf('posterior.nc')."
        )
    text = os.fspath(path)
    if not text or "\x00" in text:
        raise FileFormatError(
            f"path={text!r:.80} is not a valid file path; give e.g. 'posterior.nc'."
        )
    return text


def write_netcdf(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write ``tree`` to ``path`` atomically (h5netcdf).

    The file is written to a temporary file in the same folder, flushed to disk (fsync), then
    renamed over ``path`` (``os.replace``). A crash or kill leaves either no file or the previous
    complete one at ``path`` (and possibly a stray ``.<name>.<hex>.tmp`` file next to it).

    Parameters
    ----------
    tree : xarray.DataTree
        What to write (see :func:`build_tree`).
    path : str or os.PathLike
        The file to create or replace.

    Raises
    ------
    FileFormatError
        ``path`` is not a file path, is a folder, its folder does not exist or is not writable,
        or the writer failed (the temporary file is removed).
    """
    target = check_path(path, "to_netcdf")
    folder, tmp = _temporary_file(target)
    try:
        tree.to_netcdf(tmp, engine="h5netcdf")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError | ValueError | TypeError) and not isinstance(
            err, FileFormatError
        ):
            raise FileFormatError(
                f"Cannot write {target!r}: {type(err).__name__}: {str(err)[:200]}"
            ) from err
        raise
    _fsync_folder(folder)


def _temporary_file(target: str) -> tuple[str, str]:
    """Check ``target``'s folder and create an empty temporary file next to it: (folder, tmp)."""
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise FileFormatError(
            f"{target!r} is a folder; give a file name inside it, e.g. {os.path.join(target, 'posterior.nc')!r}."
        )
    if not os.path.isdir(folder):
        raise FileFormatError(
            f"Cannot write {target!r}: the folder {folder!r} does not exist. Create it first (os.makedirs)."
        )
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    try:  # created with the usual permissions (umask applies), unlike mkstemp's 0600
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise FileFormatError(
            f"Cannot write {target!r}: {err.strerror or err} (check the folder's permissions)."
        ) from None
    return folder, tmp


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# --------------------------------------------------------------------------- reading


def _settings_from(attrs: dict, source: str) -> FitSettings:
    raw = parse_json(attrs.get("settings"), source, "settings")
    fields = {f.name for f in dataclasses.fields(FitSettings)}
    if not isinstance(raw, dict) or set(raw) != fields:
        got = set(raw) if isinstance(raw, dict) else set()
        raise file_error(
            source,
            f"settings must have exactly the keys {sorted(fields)}; missing {sorted(fields - got)}, unexpected {sorted(got - fields)[:6]}",
        )

    def integer(name: str, lo: int, none: bool = False) -> None:
        v = raw[name]
        if (v is None and none) or (
            isinstance(v, int) and not isinstance(v, bool) and lo <= v < 2**53
        ):
            return
        raise file_error(source, f"setting {name}={v!r:.40} must be an integer >= {lo}")

    for name, lo in (
        ("draws", 1),
        ("tune", 0),
        ("chains", 1),
        ("imputations", 1),
        ("max_chunk_elements", 1),
    ):
        integer(name, lo)
    integer("imputation_tune", 0, none=True)
    for name, allowed in (
        ("propagation", PROPAGATIONS),
        ("engine", ENGINES),
        ("sampler", SAMPLERS),
    ):
        if raw[name] not in allowed:
            raise file_error(
                source, f"setting {name}={raw[name]!r:.40} is not one of {list(allowed)}"
            )
    for name in ("robust", "progressbar", "group_contrast"):
        if not isinstance(raw[name], bool):
            raise file_error(source, f"setting {name}={raw[name]!r:.40} must be true or false")
    return FitSettings(**raw)


def _seed_from(obj: Any, source: str, what: str) -> np.random.SeedSequence:
    ok = isinstance(obj, dict) and set(obj) == {"entropy", "spawn_key"}
    ent = obj.get("entropy") if ok else None
    key = obj.get("spawn_key") if ok else None
    if ok:
        ents = ent if isinstance(ent, list) else [ent]
        ok = bool(ents) and all(isinstance(e, str) and _DIGITS.fullmatch(e) for e in ents)
        ok = (
            ok
            and isinstance(key, list)
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63 for x in key)
        )
    if not ok:
        raise file_error(source, f"seed {what} must be decimal entropy and a list of spawn keys")
    entropy = [int(e) for e in ent] if isinstance(ent, list) else int(ent)
    return np.random.SeedSequence(entropy=entropy, spawn_key=tuple(key))


def _draws(
    ds: xr.Dataset, name: str, shape: tuple[int, ...], source: str, where: str, kinds: str = "f"
) -> np.ndarray:
    if name not in ds:
        raise file_error(source, f"{where} has no variable {name!r}")
    vals = ds[name].values
    if vals.shape != shape or vals.dtype.kind not in kinds:
        raise file_error(
            source,
            f"{where} variable {name!r} has shape {vals.shape} and dtype {vals.dtype}; expected shape {shape}",
        )
    if vals.dtype.kind == "f" and not np.all(np.isfinite(vals)):
        raise file_error(source, f"{where} variable {name!r} has NaN or infinite draws")
    return vals


def _stage_draws(
    tree: xr.DataTree, k: int, design: DTRDesign, C: int, D: int, source: str
) -> StageDraws:
    sd = design.stages[k]
    node = f"stage_{k + 1}"
    where = f"/{node}/posterior"
    if "posterior" not in tree[node].children:
        raise file_error(source, f"the file has no {where} group")
    ds = node_dataset(tree, f"{node}/posterior", source)
    S, m = C * D, sd.n_arms
    last = k == len(design.stages) - 1
    engine, family = attr_text(ds.attrs, "engine"), attr_text(ds.attrs, "family")
    if engine not in _ENGINES:
        raise file_error(source, f"{where} engine {engine!r:.40} is not one of {list(_ENGINES)}")
    survival = design.event is not None  # every stage of a survival design is a censored AFT
    if family != (design.family if last or survival else "gaussian"):
        raise file_error(source, f"{where} family {family!r:.40} does not match the design")
    q_model = None
    if engine == "bart":  # a BART stage stores its units' Q evaluations, not coefficients
        q = _draws(ds, "q_units", (C, D, m, sd.n_units), source, where)
        q_model = stored_q(tree, k, sd, q, str(family), source)
        theta = np.empty((S, 0))
    else:
        beta = _draws(ds, "beta", (C, D, sd.X_main.shape[1]), source, where)
        psi = _draws(ds, "psi", (C, D, m, sd.X_contrast.shape[1]), source, where)
        if np.any(psi[:, :, 0, :] != 0):
            raise file_error(source, f"{where} psi of the reference arm must be 0")
        theta = np.concatenate([beta.reshape(S, -1), psi[:, :, 1:, :].reshape(S, -1)], axis=1)
    sigma = None
    if family == "gaussian" or survival:  # a survival stage: its AFT scale
        sigma = _draws(ds, "sigma", (C, D), source, where).reshape(S)
        if np.any(sigma <= 0):
            raise file_error(source, f"{where} sigma must be positive")
    gi, gc, extras = _group_draws(ds, design, m, C, D, source, where)
    ancestor = None
    if not last:
        ancestor = (
            _draws(ds, "ancestor", (C, D), source, where, kinds="iu").reshape(S).astype(np.int64)
        )
        if np.any((ancestor < 0) | (ancestor >= S)):
            raise file_error(source, f"{where} ancestor indices must lie in 0..{S - 1}")
    return StageDraws(
        theta=theta,
        sigma=sigma,
        chains=C,
        draws=D,
        engine=str(engine),
        family=str(family),
        group_intercept=gi,
        group_contrast=gc,
        extras=extras,
        ancestor=ancestor,
        stats=_sample_stats(tree, node, C, D, source),
        q_model=q_model,
    )


def _group_draws(
    ds: xr.Dataset, design: DTRDesign, m: int, C: int, D: int, source: str, where: str
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, np.ndarray]]:
    """A stage's group effects (intercepts, contrasts) and their scales, if it has any."""
    S, G = C * D, len(design.group_levels)
    gi = gc = None
    extras = {}
    if "group_intercept" in ds:
        gi = _draws(ds, "group_intercept", (C, D, G), source, where).reshape(S, G)
        extras["group_sd"] = _draws(ds, "group_sd", (C, D), source, where).reshape(S)
    if "group_contrast" in ds:
        gc = _draws(ds, "group_contrast", (C, D, G, m), source, where)[..., 1:].reshape(S, G, m - 1)
        extras["group_contrast_sd"] = _draws(
            ds, "group_contrast_sd", (C, D, m - 1), source, where
        ).reshape(S, m - 1)
    if (gi is not None or gc is not None) and design.group is None:
        raise file_error(source, f"{where} has group effects but the design has no group column")
    return gi, gc, extras


def _sample_stats(
    tree: xr.DataTree, node: str, C: int, D: int, source: str
) -> dict[str, np.ndarray]:
    """The sampler statistics of a stage (MCMC stages), flat over draws; empty if none."""
    if "sample_stats" not in tree[node].children:
        return {}
    st = node_dataset(tree, f"{node}/sample_stats", source)
    return {
        str(n_): _draws(st, str(n_), (C, D), source, f"/{node}/sample_stats", kinds="biuf").reshape(
            C * D
        )
        for n_ in st.data_vars
    }


def _propensity_draws(
    tree: xr.DataTree, k: int, design: DTRDesign, C: int, D: int, source: str
) -> PropensityDraws | None:
    sd = design.stages[k]
    node = f"stage_{k + 1}"
    where = f"/{node}/propensity"
    has_model = sd.known_propensity is not None or sd.X_prop is not None
    if "propensity" not in tree[node].children:
        if has_model:
            raise file_error(
                source,
                f"the file has no {where} group, but stage {sd.treatment!r} has a propensity model",
            )
        return None
    if not has_model:
        raise file_error(
            source, f"{where} exists but stage {sd.treatment!r} has no propensity model"
        )
    p = node_dataset(tree, f"{node}/propensity", source)
    if sd.known_propensity is not None:
        known = _draws(p, "known", (sd.n_arms,), source, where)
        if not np.array_equal(known, sd.known_propensity):
            raise file_error(source, f"{where} known probabilities differ from the stage design")
        return PropensityDraws(known=known)
    assert sd.X_prop is not None
    S, G = C * D, len(design.group_levels)
    g = _draws(p, "propensity_coef", (C, D, sd.n_arms - 1, sd.X_prop.shape[1]), source, where)
    ge = None
    if "propensity_group" in p:
        if design.group is None:
            raise file_error(
                source, f"{where} has group effects but the design has no group column"
            )
        ge = _draws(p, "propensity_group", (C, D, G, sd.n_arms - 1), source, where).reshape(
            S, G, sd.n_arms - 1
        )
    stats = {
        str(n_)[5:]: _draws(p, str(n_), (C, D), source, where, kinds="biuf").reshape(S)
        for n_ in p.data_vars
        if str(n_).startswith("stat_")
    }
    return PropensityDraws(
        gamma=g.reshape((S,) + g.shape[2:]), group_effect=ge, stats=stats, chains=C, draws=D
    )


def _censoring_draws(
    tree: xr.DataTree, design: DTRDesign, C: int, D: int, source: str
) -> list[PropensityDraws | None]:
    """Every stage's censoring-model draws (None where it has no dropout), as the fit used them."""
    out: list[PropensityDraws | None] = []
    for k, sd in enumerate(design.stages):
        node = f"stage_{k + 1}"
        where = f"/{node}/censoring"
        cd = None if design.dropout is None else design.dropout[k]
        if "censoring" not in tree[node].children:
            if cd is not None:
                raise file_error(
                    source,
                    f"the file has no {where} group, but stage {sd.treatment!r} has dropout "
                    f"(censoring={cd.formula!r}): its weights need the censoring model's draws",
                )
            out.append(None)
            continue
        if cd is None:
            raise file_error(source, f"{where} exists but stage {sd.treatment!r} has no dropout")
        ds = node_dataset(tree, f"{node}/censoring", source)
        q = cd.X_prop.shape[1]
        g = _draws(ds, "censoring_coef", (C, D, q), source, where)
        stats = {
            str(n_)[5:]: _draws(ds, str(n_), (C, D), source, where, kinds="biuf").reshape(C * D)
            for n_ in ds.data_vars
            if str(n_).startswith("stat_")
        }
        out.append(PropensityDraws(gamma=g.reshape(C * D, 1, q), stats=stats, chains=C, draws=D))
    return out


def _open(path: Any) -> tuple[xr.DataTree, str]:
    text = check_path(path, "bd.load")
    source = repr(text)
    if not os.path.exists(text):
        raise FileFormatError(
            f"{source}: no such file. Check the path (the current folder is {os.getcwd()!r})."
        )
    if os.path.isdir(text):
        raise FileFormatError(
            f"{source} is a folder, not a posterior file. Give the path of the .nc file written by post.to_netcdf."
        )
    try:
        tree = xr.open_datatree(text, engine="h5netcdf")
        tree = tree.load()
        tree.close()
    except Exception as err:  # h5py/h5netcdf/xarray raise many types for damaged files
        raise FileFormatError(
            f"{source} is not a readable posterior file ({type(err).__name__}: {str(err)[:160]}). "
            "It may be truncated, empty or not netCDF; write it again with post.to_netcdf."
        ) from None
    return tree, source


def read_netcdf(
    path: str | os.PathLike, *, stages: Sequence[Stage] | None = None
) -> PosteriorParts:
    """Read a posterior file into :class:`PosteriorParts`, checking every part.

    No text from the file is evaluated: designs are stored matrices, priors plain dictionaries
    rebuilt through an allowlist, settings and seeds checked JSON.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`write_netcdf`.
    stages : list of Stage or None
        The caller's own stages (matched by treatment name). Their formulas are evaluated on the
        stored data and must reproduce the stored design matrices; the rebuilt designs can then
        evaluate new data.

    Returns
    -------
    PosteriorParts

    Raises
    ------
    FileFormatError
        Missing path, folder, unreadable or damaged file, newer or older format, inconsistent
        contents; the message names the file and what is wrong.
    SpecificationError
        ``stages`` that do not match the fitted treatments or design.
    """
    tree, source = _open(path)
    _check_format_version(tree.attrs, source)
    settings = _settings_from(tree.attrs, source)
    design = design_from_tree(tree, source)
    random_seed, seeds = _seeds_from(tree.attrs, design, source)
    fits, props, priors = _stages_from(tree, design, settings, source)
    if design.dropout is not None:  # the weights the fit used, from the stored censoring draws
        from bayesdtr.inference.dropout import IPCWeights

        censoring = _censoring_draws(tree, design, settings.chains, settings.draws, source)
        design.ipcw = IPCWeights(design, censoring)
    elif any("censoring" in tree[f"stage_{k + 1}"].children for k in range(len(design.stages))):
        raise file_error(source, "the file has censoring draws but no stage has dropout")
    if stages is not None:
        design = rebuild_design(design, stages, source)
    return PosteriorParts(
        design=design,
        priors=priors,
        settings=settings,
        fits=fits,
        propensities=props,
        random_seed=random_seed,
        seed=seeds["posterior"],
        induction_seed=seeds["induction"],
        tree=tree,
        source=source,
    )


def _check_format_version(attrs: dict, source: str) -> None:
    """Refuse a file without an integer ``format_version``, or of another format."""
    version = attrs.get("format_version")
    if isinstance(version, np.ndarray) and version.shape == (1,):
        version = version[0]
    if isinstance(version, bool | np.bool_) or not isinstance(version, int | np.integer):
        raise FileFormatError(
            f"{source} is not a bayesdtr posterior file (no integer 'format_version' attribute). "
            "Load files written by post.to_netcdf."
        )
    if version > FORMAT_VERSION:
        raise FileFormatError(
            f"{source} has file format {int(version)}, newer than this bayesdtr {__version__} reads "
            f"(up to {FORMAT_VERSION}). Upgrade bayesdtr to load it."
        )
    if version < FORMAT_VERSION:
        raise FileFormatError(
            f"{source} has file format {int(version)}, which stored formulas as text that loading "
            f"had to evaluate (unsafe); this bayesdtr reads format {FORMAT_VERSION}. Refit and save "
            "again with this version."
        )


def _seeds_from(
    attrs: dict, design: DTRDesign, source: str
) -> tuple[int, dict[str, np.random.SeedSequence]]:
    """The root attributes after the design: the data hash, ``random_seed`` and ``seeds``."""
    stored_hash = attr_text(attrs, "data_hash")
    if stored_hash != design.data_hash:
        raise file_error(source, "the data in /data do not match the file's data_hash")
    seed_text = attr_text(attrs, "random_seed")
    if not (isinstance(seed_text, str) and _DIGITS.fullmatch(seed_text)):
        raise file_error(
            source,
            f"random_seed {seed_text!r:.40} must be a non-negative integer written in decimal",
        )
    seeds = parse_json(attrs.get("seeds"), source, "seeds")
    if not isinstance(seeds, dict) or set(seeds) != {"posterior", "induction"}:
        raise file_error(source, "seeds must hold 'posterior' and 'induction'")
    return int(seed_text), {
        "posterior": _seed_from(seeds["posterior"], source, "posterior"),
        "induction": _seed_from(seeds["induction"], source, "induction"),
    }


def _stages_from(
    tree: xr.DataTree, design: DTRDesign, settings: FitSettings, source: str
) -> tuple[list[StageDraws], list[PropensityDraws | None], dict[str, StagePriors]]:
    """Every stage's outcome draws, propensity draws and priors, checked against the design."""
    C, D = settings.chains, settings.draws
    fits, props, priors = [], [], {}
    for k, sd in enumerate(design.stages):
        fits.append(_stage_draws(tree, k, design, C, D, source))
        props.append(_propensity_draws(tree, k, design, C, D, source))
        priors[sd.treatment] = priors_from(
            tree[f"stage_{k + 1}"]["design"].attrs, sd.treatment, source, f"/stage_{k + 1}/design"
        )
    if fits[-1].ancestor is not None:
        raise file_error(source, "the last stage has ancestors")
    return fits, props, priors
