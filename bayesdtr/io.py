"""The posterior as an :class:`xarray.DataTree`, and netCDF files (never pickle).

Layout::

    /                       attrs: bayesdtr version, seed, settings, data hash, spec (JSON)
    /data                   the input data (dim obs), so that a loaded posterior can answer queries
    /stage_k/posterior      beta (chain, draw, main_term), psi (chain, draw, arm, contrast_term),
                            sigma, group effects, ancestor
    /stage_k/sample_stats   diverging, n_steps (MCMC stages)
    /stage_k/propensity     propensity_coef (chain, draw, contrast_arm, propensity_term) or known (arm)
    /policy/stage_k         prob_optimal (obs, arm) of the units that reach stage k
    /value                  optimal (chain, draw): the value posterior of the optimal regime
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr.data.design import arm_array
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import DataError, SpecificationError
from bayesdtr.inference.backward import FitSettings, Induction
from bayesdtr.inference.draws import PropensityDraws, StageDraws

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = ["stage_posterior_dataset", "build_tree", "write_netcdf", "load"]

FORMAT_VERSION = 1


def stage_posterior_dataset(post: DTRPosterior, k: int) -> xr.Dataset:
    """Stage k's outcome-model draws as a Dataset with the fixed dim names."""
    sd = post.design.stages[k]
    fit = post.fits[k]
    C, D = post.chains, post.draws
    pm_, pc = sd.X_main.shape[1], sd.X_contrast.shape[1]
    beta = fit.theta[:, :pm_].reshape(C, D, pm_)
    psi = np.zeros((C, D, sd.n_arms, pc))
    psi[:, :, 1:, :] = fit.theta[:, pm_:].reshape(C, D, sd.n_arms - 1, pc)
    coords = {
        "chain": np.arange(C),
        "draw": np.arange(D),
        "main_term": sd.main_terms,
        "contrast_term": sd.contrast_terms,
        "arm": arm_array(sd.arms),
    }
    data = {"beta": (("chain", "draw", "main_term"), beta), "psi": (("chain", "draw", "arm", "contrast_term"), psi)}
    if fit.sigma is not None:
        data["sigma"] = (("chain", "draw"), fit.sigma.reshape(C, D))
    if fit.group_intercept is not None:
        coords["group"] = np.asarray([str(g) for g in post.design.group_levels], dtype=object)
        data["group_intercept"] = (("chain", "draw", "group"), fit.group_intercept.reshape(C, D, -1))
    if fit.group_contrast is not None:
        gc = np.zeros((C, D, len(post.design.group_levels), sd.n_arms))
        gc[..., 1:] = fit.group_contrast.reshape(C, D, len(post.design.group_levels), sd.n_arms - 1)
        data["group_contrast"] = (("chain", "draw", "group", "arm"), gc)
    for name, arr in fit.extras.items():
        arr = arr.reshape((C, D) + arr.shape[1:])
        dims = ("chain", "draw") + (("contrast_arm",) if arr.ndim == 3 else ())
        data[name] = (dims, arr)
        if arr.ndim == 3:
            coords["contrast_arm"] = arm_array(sd.arms[1:])
    if fit.ancestor is not None:
        data["ancestor"] = (("chain", "draw"), fit.ancestor.reshape(C, D))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(treatment=sd.treatment, engine=fit.engine, family=fit.family, reference_arm=str(sd.arms[0]))
    return ds


def _propensity_dataset(post: DTRPosterior, k: int) -> xr.Dataset | None:
    pr = post.propensities[k]
    sd = post.design.stages[k]
    if pr is None:
        return None
    if pr.known is not None:
        return xr.Dataset({"known": (("arm",), pr.known)}, coords={"arm": arm_array(sd.arms)})
    assert pr.gamma is not None
    C, D = pr.chains, pr.draws
    data = {"propensity_coef": (("chain", "draw", "contrast_arm", "propensity_term"), pr.gamma.reshape(C, D, *pr.gamma.shape[1:]))}
    coords = {
        "chain": np.arange(C),
        "draw": np.arange(D),
        "contrast_arm": arm_array(sd.arms[1:]),
        "propensity_term": sd.prop_terms,
    }
    if pr.group_effect is not None:
        data["propensity_group"] = (("chain", "draw", "group", "contrast_arm"), pr.group_effect.reshape(C, D, *pr.group_effect.shape[1:]))
        coords["group"] = np.asarray([str(g) for g in post.design.group_levels], dtype=object)
    for name, arr in pr.stats.items():
        data[f"stat_{name}"] = (("chain", "draw"), arr.reshape(C, D))
    return xr.Dataset(data, coords=coords)


def _spec_json(post: DTRPosterior) -> str:
    stages = []
    for sd in post.design.stages:
        st = sd.stage
        prop: Any = st.propensity
        if isinstance(prop, KnownPropensity):
            prop = {"known": [[_jsonable(a), float(p)] for a, p in prop.probabilities.items()]}
        stages.append(
            {
                "treatment": st.treatment,
                "main": st.main,
                "contrast": st.contrast,
                "propensity": prop,
                "reward": st.reward,
                "units": sd.units.tolist(),
                "feasible": sd.feasible.astype(int).tolist() if st.feasible is not None else None,
                "arms": [_jsonable(a) for a in sd.arms],
            }
        )
    return json.dumps(
        {
            "stages": stages,
            "outcome": post.design.outcome,
            "family": post.design.family,
            "group": post.design.group,
            "group_contrast": post.model.group_contrast,
            "id": post.design.id,
            "has_prior_overrides": bool(post.model.priors_input),
        }
    )


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _encode_column(col: pd.Series, name: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """A data column as a netCDF-storable array plus the attributes that restore it exactly."""
    if not isinstance(name, str) or "/" in name:
        raise DataError(
            f"Column name {name!r} cannot be written to netCDF (names must be strings without '/'). "
            "Rename the column before fitting, e.g. df.rename(columns=str)."
        )
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = [_jsonable(v) for v in col.cat.categories]
        return np.asarray(col.cat.codes, dtype=np.int64), {"kind": "categorical", "categories": json.dumps(cats), "ordered": int(col.cat.ordered)}
    if pd.api.types.is_extension_array_dtype(col.dtype) and pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), {"kind": "extension", "dtype": str(col.dtype)}
    if col.dtype != object and not pd.api.types.is_string_dtype(col.dtype):
        return col.to_numpy(), {"kind": "native"}
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    na = col.isna().to_numpy()
    if inferred in ("string", "empty"):
        vals = np.asarray(["" if m else str(v) for v, m in zip(col, na, strict=True)], dtype=object)
        return vals, {"kind": "string", "string_na": json.dumps(np.flatnonzero(na).tolist()), "dtype": str(col.dtype)}
    if inferred in ("integer", "boolean") and not na.any():
        return col.to_numpy(dtype=np.int64 if inferred == "integer" else bool), {"kind": "object-native"}
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return col.to_numpy(dtype=float, na_value=np.nan), {"kind": "object-native"}
    raise DataError(
        f"Column {name!r} holds values of mixed types ({inferred}); it cannot be written faithfully "
        "to netCDF. Convert it to one type (e.g. df[col].astype(str))."
    )


def _decode_column(var: xr.DataArray) -> pd.Series | pd.Categorical:
    kind = var.attrs.get("kind", "native")
    vals = var.values
    if kind == "categorical":
        cats = json.loads(var.attrs["categories"])
        return pd.Categorical.from_codes(vals.astype(np.int64), categories=cats, ordered=bool(var.attrs.get("ordered", 0)))
    if kind == "extension":
        return pd.Series(vals).astype(var.attrs["dtype"])
    if kind == "string":
        ser = pd.Series(vals.astype(object), dtype=object)
        na = json.loads(var.attrs.get("string_na", "[]"))
        if na:
            ser.iloc[na] = np.nan
        dtype = var.attrs.get("dtype", "object")
        return ser if dtype == "object" else ser.astype(dtype)
    if kind == "object-native":
        return pd.Series(vals, dtype=object)
    return pd.Series(vals)


def build_tree(post: DTRPosterior) -> xr.DataTree:
    """Assemble the full DataTree of a posterior."""
    from bayesdtr import __version__

    nodes: dict[str, xr.Dataset] = {}
    df = post.design.data
    data_vars = {str(c): ("obs", *_encode_column(df[c], c)) for c in df.columns}
    index = df.index.to_numpy()
    if index.dtype == object:
        index = np.asarray([str(i) for i in index], dtype=object)
    nodes["/data"] = xr.Dataset(data_vars, coords={"obs": index})
    for k, sd in enumerate(post.design.stages):
        base = f"/stage_{k + 1}"
        nodes[f"{base}/posterior"] = stage_posterior_dataset(post, k)
        fit = post.fits[k]
        if fit.stats:
            nodes[f"{base}/sample_stats"] = xr.Dataset(
                {n: (("chain", "draw"), v.reshape(post.chains, post.draws)) for n, v in fit.stats.items()},
                coords={"chain": np.arange(post.chains), "draw": np.arange(post.draws)},
            )
        pds = _propensity_dataset(post, k)
        if pds is not None:
            nodes[f"{base}/propensity"] = pds
        po = post.prob_optimal(k + 1)
        nodes[f"/policy/stage_{k + 1}"] = xr.Dataset(
            {"prob_optimal": (("obs", "arm"), po.to_numpy())},
            coords={"obs": index[sd.units], "arm": arm_array(sd.arms)},
            attrs={"treatment": sd.treatment},
        )
    nodes["/value"] = xr.Dataset({"optimal": post.value("optimal")})
    tree = xr.DataTree.from_dict(nodes)
    s = post.settings
    tree.attrs.update(
        {
            "bayesdtr_version": __version__,
            "format_version": FORMAT_VERSION,
            "random_seed": post.random_seed,
            "seed_entropy": str(post._seed.entropy),
            "seed_spawn_key": json.dumps(list(post._seed.spawn_key)),
            "data_hash": post.design.data_hash,
            "settings": json.dumps(dataclasses.asdict(s)),
            "spec": _spec_json(post),
        }
    )
    return tree


def write_netcdf(post: DTRPosterior, path: str) -> None:
    """Write ``post.tree`` with h5netcdf."""
    post.tree.to_netcdf(path, engine="h5netcdf")


def _restore_data(ds: xr.Dataset) -> pd.DataFrame:
    df = pd.DataFrame({name: _decode_column(var) for name, var in ds.data_vars.items()})
    df.index = pd.Index(ds["obs"].values)
    return df


def load(path: str, *, stages: list[Stage] | None = None) -> DTRPosterior:
    """Load a posterior written by :meth:`DTRPosterior.to_netcdf`.

    Parameters
    ----------
    path : str
        A netCDF file.
    stages : list of Stage or None
        The original stages, needed only to evaluate ``feasible`` rules (callables are not
        saved) on new data.

    Returns
    -------
    DTRPosterior
    """
    from bayesdtr.model import DTRModel
    from bayesdtr.posterior import DTRPosterior

    tree = xr.open_datatree(path, engine="h5netcdf").load()
    if "spec" not in tree.attrs:
        raise DataError(f"{path!r} is not a bayesdtr posterior file (no 'spec' attribute).")
    spec = json.loads(tree.attrs["spec"])
    settings_d = json.loads(tree.attrs["settings"])
    df = _restore_data(tree["data"].to_dataset())
    n = len(df)
    built = []
    for i, s in enumerate(spec["stages"]):
        prop = s["propensity"]
        if isinstance(prop, dict):
            prop = KnownPropensity({a: p for a, p in prop["known"]})
        mask = np.zeros(n, dtype=bool)
        mask[s["units"]] = True
        feasible = None
        if s["feasible"] is not None:
            if stages is not None:
                feasible = stages[i].feasible
            else:
                feasible = _stored_feasible(df.iloc[s["units"]].index, np.asarray(s["feasible"], dtype=bool), s["arms"], s["treatment"])
        built.append(
            Stage(s["treatment"], main=s["main"], contrast=s["contrast"], propensity=prop, feasible=feasible, applies=None if mask.all() else mask, reward=s["reward"])
        )
    if spec.get("has_prior_overrides"):
        import warnings

        warnings.warn(
            "The saved posterior used prior overrides, which are not stored; the loaded draws are "
            "exact, but values of new regimes refit earlier stages with default priors.",
            UserWarning,
            stacklevel=2,
        )
    model = DTRModel(df, built, outcome=spec["outcome"], family=spec["family"], group=spec["group"], group_contrast=spec["group_contrast"], id=spec["id"])
    settings = FitSettings(**settings_d)
    C, D = settings.chains, settings.draws
    fits, props = [], []
    for k, sd in enumerate(model.design.stages):
        node = tree[f"stage_{k + 1}"]
        ds = node["posterior"].to_dataset()
        pm_ = sd.X_main.shape[1]
        beta = ds["beta"].values.reshape(C * D, pm_)
        psi = ds["psi"].values[:, :, 1:, :].reshape(C * D, -1)
        extras = {}
        for name in ("group_sd", "group_contrast_sd"):
            if name in ds:
                arr = ds[name].values
                extras[name] = arr.reshape((C * D,) + arr.shape[2:])
        stats = {}
        if "sample_stats" in node.children:
            st = node["sample_stats"].to_dataset()
            stats = {n_: st[n_].values.reshape(C * D) for n_ in st.data_vars}
        fits.append(
            StageDraws(
                theta=np.concatenate([beta, psi], axis=1),
                sigma=ds["sigma"].values.reshape(C * D) if "sigma" in ds else None,
                chains=C,
                draws=D,
                engine=ds.attrs["engine"],
                family=ds.attrs["family"],
                group_intercept=ds["group_intercept"].values.reshape(C * D, -1) if "group_intercept" in ds else None,
                group_contrast=ds["group_contrast"].values[..., 1:].reshape(C * D, len(model.design.group_levels), -1) if "group_contrast" in ds else None,
                extras=extras,
                ancestor=ds["ancestor"].values.reshape(C * D).astype(np.int64) if "ancestor" in ds else None,
                stats=stats,
            )
        )
        if "propensity" in node.children:
            p = node["propensity"].to_dataset()
            if "known" in p:
                props.append(PropensityDraws(known=p["known"].values))
            else:
                g = p["propensity_coef"].values
                ge = p["propensity_group"].values if "propensity_group" in p else None
                pstats = {n_[5:]: p[n_].values.reshape(-1) for n_ in p.data_vars if n_.startswith("stat_")}
                props.append(
                    PropensityDraws(
                        gamma=g.reshape((g.shape[0] * g.shape[1],) + g.shape[2:]),
                        group_effect=None if ge is None else ge.reshape((ge.shape[0] * ge.shape[1],) + ge.shape[2:]),
                        stats=pstats,
                        chains=g.shape[0],
                        draws=g.shape[1],
                    )
                )
        else:
            props.append(None)
    seed = np.random.SeedSequence(
        entropy=int(tree.attrs["seed_entropy"]), spawn_key=tuple(json.loads(tree.attrs["seed_spawn_key"]))
    )
    from bayesdtr.regimes import Regime

    ind_seed = np.random.SeedSequence(int(tree.attrs["random_seed"])).spawn(3)[1]  # as in DTRModel.fit
    ind = Induction(model.design, settings, model.stage_priors, props, Regime.optimal(), ind_seed)
    ind.fits = fits
    post = DTRPosterior(model=model, settings=settings, induction=ind, propensities=props, random_seed=int(tree.attrs["random_seed"]), seed=seed)
    post._values[("optimal", "q")] = tree["value"]["optimal"].copy()
    post._tree = tree
    return post


def _stored_feasible(index: pd.Index, matrix: np.ndarray, arms: list[Any], treatment: str):
    """The saved feasible sets of the fitted units, usable once: to rebuild the design on load.

    Any later call (new data) raises, since the original rule is a callable that is not saved;
    matching new rows to saved ones by index label would silently give them wrong sets.
    """
    frame = pd.DataFrame(matrix, index=index, columns=arms)
    calls = {"n": 0}

    def feasible(d: pd.DataFrame) -> pd.DataFrame:
        calls["n"] += 1
        if calls["n"] > 1:
            raise SpecificationError(
                f"Stage {treatment!r} had a feasible= rule, which is a callable and is not saved "
                "in the file; pass stages= (the original bd.Stage list) to bd.load to evaluate it "
                "on new data."
            )
        return frame.loc[d.index]

    return feasible
