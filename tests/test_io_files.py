"""Posterior files: loading never evaluates text, damaged files fail clearly, writes are atomic.

Payloads below are the three forms that formulaic evaluates when they reach it (issue 10). Each
one would create a marker file; a test first shows that formulaic does run it (so the test can
fail), then that ``bd.load`` and every query on a file carrying it never do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pymc_extras.prior import Prior

import bayesdtr as bd
from bayesdtr.inference.draws import PropensityDraws
from bayesdtr.io import write_netcdf

PRIORS = {"group_sd": Prior("HalfNormal", sigma=1.5)}  # stored, so its JSON is poisoned too
PAYLOADS = (
    "X1 + {{__import__('os').system('touch {m}')}}",
    "I(__import__('os').system('touch {m}') + X1)",
    "I(np.__dict__['__builtins__']['__import__']('os').system('touch {m}') + X1)",
)
# HDF5/netCDF bookkeeping read by h5netcdf itself, not by bayesdtr
_H5_INTERNAL = {
    "CLASS",
    "NAME",
    "REFERENCE_LIST",
    "DIMENSION_LIST",
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_NCProperties",
}


def _data(n: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"X1": rng.normal(size=n), "A1": rng.choice(["ctl", "trt"], n)})
    df["site"] = pd.Categorical(rng.choice(["north", "south"], n))
    df["note"] = pd.Series(rng.choice(["a", "b"], n), dtype=object).where(rng.random(n) > 0.1)
    df["Y"] = df.X1 + (df.A1 == "trt") * (0.5 - df.X1) + rng.normal(size=n)
    return df


def _stages() -> list[bd.Stage]:
    return [bd.Stage("A1", main="X1 + C(site)", contrast="1 + X1", propensity="X1")]


def _fake_propensities(design, stage_priors, *, draws, chains, rng, **_):
    """Propensity draws without MCMC (the file layer does not care where draws come from)."""
    out = []
    for sd in design.stages:
        if sd.X_prop is None:
            out.append(
                None if sd.known_propensity is None else PropensityDraws(known=sd.known_propensity)
            )
            continue
        gamma = 0.1 * rng.standard_normal((chains * draws, sd.n_arms - 1, sd.X_prop.shape[1]))
        out.append(PropensityDraws(gamma=gamma, chains=chains, draws=draws))
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr("bayesdtr.model.fit_propensities", _fake_propensities)
    try:
        post = bd.DTRModel(_data(), _stages(), outcome="Y", priors=PRIORS).fit(
            draws=40, chains=2, random_seed=3, progressbar=False
        )
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("saved") / "post.nc"
    post.to_netcdf(path)
    return post, path


def _queries(post: bd.DTRPosterior) -> list[np.ndarray]:
    reg = bd.Regime.static(A1="trt")
    out = [post.q_values(1).values, post.prob_optimal(1).to_numpy(), post.value("optimal").values]
    out += [post.value(reg, method=m).values for m in ("q", "ipw", "aipw")]
    out.append(post.value(post.rule()).values)
    out.append(post.compare({"optimal": "optimal", "trt": reg}).to_numpy())
    return out


def test_loaded_posterior_answers_like_the_fitted_one(saved):
    post, path = saved
    back = bd.load(path)
    for a, b in zip(_queries(back), _queries(post), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        back.value("optimal", crossfit=0).values, back.tree["value"]["optimal"].values
    )
    assert back.propensities[0].gamma is not None and back.model is None
    with pytest.raises(bd.SpecificationError, match=r"without stages=.*bd.load\(path, stages="):
        back.q_values(1, data=_data(5, seed=9))
    live = bd.load(path, stages=_stages())
    new = _data(5, seed=9)
    np.testing.assert_array_equal(
        live.q_values(1, data=new).values, post.q_values(1, data=new).values
    )


def test_loading_and_stored_queries_call_no_evaluator(saved, monkeypatch):
    import builtins

    import formulaic

    _, path = saved

    def refuse(*args, **kwargs):
        raise AssertionError("an evaluator was called while loading a file")

    for target, name in (
        (builtins, "eval"),
        (builtins, "exec"),
        (formulaic, "model_matrix"),
        (pd, "eval"),
    ):
        monkeypatch.setattr(target, name, refuse)
    monkeypatch.setattr(formulaic.ModelSpec, "get_model_matrix", refuse)
    monkeypatch.setattr(formulaic.Formula, "__new__", refuse)
    assert len(_queries(bd.load(path))) == 8


def _string_slots(path) -> list[tuple[str, str | None, str | None]]:
    """(object path, attribute or None for a string array, JSON leaf path or None)."""
    slots: list[tuple[str, str | None, str | None]] = []

    def json_leaves(obj, prefix=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from json_leaves(v, f"{prefix}/{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from json_leaves(v, f"{prefix}/{i}")
        elif isinstance(obj, str):
            yield prefix

    kinds_seen: set[tuple[str, str]] = set()

    def visit(name, obj):
        if re.fullmatch(r"data/(column|missing)_[0-9]+", name):
            column = obj.parent[re.sub("missing_", "column_", name.split("/")[-1])]
            kind = column.attrs.get("kind")
            if (kind, name.split("/")[-1].split("_")[0]) in kinds_seen:
                return  # a column of an encoding already covered goes through the same code
            kinds_seen.add((kind, name.split("/")[-1].split("_")[0]))
        for key, val in obj.attrs.items():
            if key in _H5_INTERNAL or not isinstance(val, str | bytes):
                continue
            slots.append((name, key, None))
            text = val.decode() if isinstance(val, bytes) else val
            if text[:1] in ("[", "{"):
                leaves = json_leaves(json.loads(text))  # one entry per list is enough
                slots.extend(
                    (name, key, leaf)
                    for leaf in leaves
                    if not re.search(r"/[1-9][0-9]*(/|$)", leaf)
                )
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O" and obj.size:
            slots.append((name, None, None))

    with h5py.File(path) as f:
        visit("/", f)
        f.visititems(visit)
    return slots


def _poison(src, dst, slot, text: str) -> None:
    shutil.copyfile(src, dst)
    name, key, leaf = slot
    with h5py.File(dst, "r+") as f:
        obj = f[name]
        if key is None:
            obj[0] = text
            return
        if leaf is None:
            obj.attrs[key] = text
            return
        val = obj.attrs[key]
        doc = json.loads(val.decode() if isinstance(val, bytes) else val)
        parts = [p for p in leaf.split("/") if p]
        holder = doc
        for p in parts[:-1]:
            holder = holder[int(p)] if isinstance(holder, list) else holder[p]
        last = parts[-1]
        holder[int(last) if isinstance(holder, list) else last] = text
        obj.attrs[key] = json.dumps(doc)


def test_payloads_are_live_in_formulaic(tmp_path):
    """Control: each payload runs when it reaches formulaic, so the tests below can fail."""
    import formulaic

    for i, form in enumerate(PAYLOADS):
        marker = tmp_path / f"ran{i}"
        try:
            formulaic.model_matrix(form.format(m=marker), _data(5))
        except Exception:
            pass
        assert marker.exists(), form


def test_poisoned_files_never_run_code(saved, tmp_path):
    """Every string attribute, JSON string and string array of a file, poisoned one at a time
    (payload forms in turn), and all attributes at once per form: bd.load and every query either
    work or raise a bayesdtr error, and no payload runs."""
    _, path = saved
    marker = tmp_path / "pwned"
    slots = _string_slots(path)
    assert len(slots) > 30  # formulas, names, encodings, settings, seeds, priors, term names
    loaded = refused = 0
    for i, slot in enumerate(slots):
        text = PAYLOADS[i % 3].format(m=marker)
        dst = tmp_path / f"p{i}.nc"
        _poison(path, dst, slot, text)
        try:
            back = bd.load(dst)
            reg = bd.Regime.static(A1="trt")
            back.q_values(1), back.prob_optimal(1), back.value(reg, method="aipw")
            if slot[1] in ("main_formula", "contrast_formula", "propensity_formula"):
                bd.load(dst, stages=_stages()).q_values(1, data=_data(5, seed=9))
            loaded += 1
        except bd.BayesDTRError:
            refused += 1
        assert not marker.exists(), f"payload ran from {slot}"
        dst.unlink()
    for j, form in enumerate(PAYLOADS):
        dst = tmp_path / f"all{j}.nc"
        shutil.copyfile(path, dst)
        with h5py.File(dst, "r+") as f:
            for name, key, leaf in slots:
                if key is not None and leaf is None:
                    f[name].attrs[key] = form.format(m=marker)
        with pytest.raises(bd.FileFormatError):
            bd.load(dst)
        assert not marker.exists()
    assert loaded > 5 and refused > 5, (loaded, refused)


# --------------------------------------------------------------------------- damaged files


def _rewrite(src, dst, edit) -> None:
    """Copy a file and edit it in place with h5py (attributes, values), or rewrite it with xarray."""
    if getattr(edit, "xarray", False):
        tree = xr.open_datatree(src, engine="h5netcdf").load()
        edit(tree)
        tree.to_netcdf(dst, engine="h5netcdf")
        return
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)


def _attrs(node: str, **values):
    def edit(f):
        for k, v in values.items():
            if v is None:
                del f[node].attrs[k]
            else:
                f[node].attrs[k] = v

    return edit


def _values(name: str, fn):
    def edit(f):
        f[name][...] = fn(f[name][...])

    return edit


def _settings(change):
    def edit(f):
        s = json.loads(f.attrs["settings"])
        change(s)
        f.attrs["settings"] = json.dumps(s)

    return edit


def _shorter_sigma(tree):
    ds = tree["stage_1/posterior"].to_dataset()
    tree["stage_1/posterior"].dataset = ds.drop_vars("sigma").assign(
        sigma=(("chain", "draw10"), ds["sigma"].values[:, :10])
    )


_shorter_sigma.xarray = True  # type: ignore[attr-defined]


def _shorter_column(f):
    del f["data/column_0"]
    f["data/column_0"] = np.zeros(7)


def _nan_at(index):
    def fn(v):
        v = v.astype(float)
        v[index] = np.nan
        return v

    return fn


DAMAGE = {
    "bad JSON": (_attrs("/", settings="{draws: 40"), r"attribute settings is not valid JSON"),
    "missing setting": (_settings(lambda s: s.pop("propagation")), r"missing \['propagation'\]"),
    "extra setting": (_settings(lambda s: s.update(shiny=True)), r"unexpected \['shiny'\]"),
    "bad propagation": (
        _settings(lambda s: s.update(propagation="os.system")),
        r"propagation='os.system' is not one of",
    ),
    "future version": (_attrs("/", format_version=99), r"file format 99, newer than this bayesdtr"),
    "old version": (_attrs("/", format_version=1), r"format 1, which stored formulas as text"),
    "no version": (_attrs("/", format_version=None), r"not a bayesdtr posterior file"),
    "NaN coefficients": (
        _values("stage_1/posterior/beta", _nan_at((0, 3, 0))),
        r"'beta' has NaN or infinite draws",
    ),
    "shape mismatch": (_shorter_sigma, r"'sigma' has shape \(2, 10\)"),
    "NaN design": (_values("stage_1/design/X_main", _nan_at((0, 0))), r"'X_main' has NaN"),
    "arm codes": (_values("stage_1/design/a", lambda v: v + 5), r"arm codes must lie in 0..1"),
    "data changed": (
        _values("data/column_0", lambda v: v + 1.0),
        r"do not match the file's data_hash",
    ),
    "bad seed": (
        _attrs("/", random_seed="1e9"),
        r"random_seed '1e9' must be a non-negative integer",
    ),
    "bad prior": (
        _attrs("stage_1/design", priors='{"psi": {"dist": "__import__"}}'),
        r"not a PyMC distribution",
    ),
    "array attribute": (
        _attrs("stage_1/posterior", engine=np.array([1, 2])),
        r"engine None is not one of",
    ),
    "column of another length": (
        _shorter_column,
        r"node /data is missing or malformed \(conflicting sizes",
    ),
    "bad encoding": (_attrs("data/column_0", pandas_dtype="object; rm -rf"), r"unknown dtype"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_tampered_files_raise_one_clear_error(saved, tmp_path, case):
    _, path = saved
    edit, match = DAMAGE[case]
    dst = tmp_path / "tampered.nc"
    _rewrite(path, dst, edit)
    with pytest.raises(bd.FileFormatError, match=rf"'{dst}'.*{match}"):
        bd.load(dst)


def test_ancestors_out_of_range_are_refused(tmp_path):
    df = _data()
    df["A2"] = np.random.default_rng(5).choice([0, 1], len(df))
    stages = [bd.Stage("A1", main="X1", contrast="1"), bd.Stage("A2", main="X1 + A1", contrast="1")]
    post = bd.DTRModel(df, stages, outcome="Y").fit(
        draws=20, chains=1, random_seed=1, progressbar=False
    )
    post.to_netcdf(tmp_path / "two.nc")
    _rewrite(
        tmp_path / "two.nc",
        tmp_path / "bad.nc",
        _values("stage_1/posterior/ancestor", lambda v: v + 20),
    )
    with pytest.raises(bd.FileFormatError, match=r"ancestor indices must lie in 0..19"):
        bd.load(tmp_path / "bad.nc")


def test_unreadable_paths_raise_one_clear_error(saved, tmp_path):
    _, path = saved
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.nc"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    cut = tmp_path / "cut.nc"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cases = {
        tmp_path / "missing.nc": r"missing.nc': no such file",
        tmp_path: r"is a folder, not a posterior file",
        empty: r"empty.nc' is not a readable posterior file",
        noise: r"noise.nc' is not a readable posterior file",
        cut: r"cut.nc' is not a readable posterior file",
    }
    for p, match in cases.items():
        with pytest.raises(bd.FileFormatError, match=match):
            bd.load(p)
    for bad in (None, 3, b"post.nc", ""):
        with pytest.raises(
            bd.FileFormatError, match=r"path=.* (is not a file path|is not a valid file path)"
        ):
            bd.load(bad)  # type: ignore[arg-type]


def test_to_netcdf_refuses_bad_paths(saved, tmp_path):
    post, _ = saved
    with pytest.raises(
        bd.FileFormatError,
        match=r"path=None is not a file path; to_netcdf needs a str or pathlib.Path",
    ):
        post.to_netcdf(None)  # type: ignore[arg-type]
    with pytest.raises(bd.FileFormatError, match=r"is a folder; give a file name inside it"):
        post.to_netcdf(tmp_path)
    with pytest.raises(bd.FileFormatError, match=r"the folder .*nowhere' does not exist"):
        post.to_netcdf(tmp_path / "nowhere" / "p.nc")
    assert os.listdir(tmp_path) == []
    # a written file gets the usual permissions (the umask's), not a temporary file's 0600
    umask = os.umask(0)
    os.umask(umask)
    post.to_netcdf(tmp_path / "ok.nc")
    assert (tmp_path / "ok.nc").stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["ok.nc"]


def test_stages_are_matched_by_name_and_must_reproduce_the_design(saved):
    post, path = saved
    st = _stages()[0]
    with pytest.raises(
        bd.SpecificationError,
        match=r"gives treatments \['B1'\], but the posterior was fitted with \['A1'\]",
    ):
        bd.load(path, stages=[bd.Stage("B1")])
    swapped = bd.Stage("A1", main="X1 + C(site)", contrast="1 + C(site)", propensity="X1")
    with pytest.raises(
        bd.SpecificationError,
        match=r"stage 'A1' does not reproduce the fitted design: its contrast terms differ",
    ):
        bd.load(path, stages=[swapped])
    shifted = bd.Stage("A1", main="I(X1 + 1) + C(site)", contrast="1 + X1", propensity="X1")
    with pytest.raises(bd.SpecificationError, match=r"its main (terms|design matrix) differ"):
        bd.load(path, stages=[shifted])
    with pytest.raises(bd.SpecificationError, match=r"must be a list of bd.Stage"):
        bd.load(path, stages=st)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- what a file can hold


def _fit_one(df: pd.DataFrame, **kw) -> bd.DTRPosterior:
    return bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1")], outcome="Y").fit(
        draws=10, chains=1, progressbar=False, **kw
    )


@pytest.mark.parametrize(
    ("column", "match"),
    [
        (
            pd.Series(pd.date_range("2020-01-01", periods=120, tz="UTC")),
            r"Column 'bad' holds timezone-aware datetimes.*tz_localize\(None\)",
        ),
        (
            pd.Series(pd.period_range("2020-01", periods=120, freq="M")),
            r"Column 'bad' has dtype period\[M\].*Convert it",
        ),
        (pd.Series(pd.interval_range(0, 120)), r"Column 'bad' has dtype interval.*Convert it"),
        (
            pd.Series([2**70] + [1] * 119, dtype=object),
            r"Column 'bad' holds integers outside the 64-bit range \(e.g. 1180591620717411303424\)",
        ),
    ],
)
def test_unstorable_columns_raise_at_to_netcdf(tmp_path, column, match):
    df = _data().assign(bad=column.to_numpy())
    post = _fit_one(df, random_seed=1)
    with pytest.raises(bd.DataError, match=match):
        post.to_netcdf(tmp_path / "p.nc")
    assert not (tmp_path / "p.nc").exists() and not os.listdir(tmp_path)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (
            pd.to_datetime(["2020-01-01", "2021-01-01"]),
            r"Treatment column 'A1' has labels Timestamp",
        ),
        (
            np.array([1 + 1j, 2 + 0j]),
            r"Treatment column 'A1' has labels \(1\+1j\) \(complex\), \(2\+0j\) \(complex\); a posterior file stores labels of one type: strings, 64-bit integers or booleans",
        ),
        (
            np.array([2**70, 1], dtype=object),
            r"Column 'A1' holds integers outside the 64-bit range",
        ),
    ],
)
def test_unstorable_treatment_labels_raise_at_to_netcdf(tmp_path, labels, match):
    df = _data()
    df["A1"] = pd.Series(labels[np.arange(len(df)) % 2], dtype=getattr(labels, "dtype", None))
    try:
        post = _fit_one(df, random_seed=1)
    except bd.BayesDTRError:
        pytest.skip("refused at model construction (input validation), before any file")
    with pytest.raises(bd.DataError, match=match):
        post.to_netcdf(tmp_path / "p.nc")


def test_any_nonnegative_seed_is_stored_as_decimal_text(tmp_path):
    df = _data()
    post = _fit_one(df, random_seed=2**64)
    post.to_netcdf(tmp_path / "p.nc")
    back = bd.load(tmp_path / "p.nc")
    assert back.random_seed == 2**64 and back.tree.attrs["random_seed"] == str(2**64)
    reg = bd.Regime.static(A1="trt")
    np.testing.assert_array_equal(back.value(reg).values, post.value(reg).values)


# --------------------------------------------------------------------------- atomic writes


def test_killed_writer_never_leaves_a_damaged_file(saved, tmp_path):
    """A child process rewrites the posterior in a loop and is SIGKILLed: right after a temporary
    file appears (mid-write, deterministic) or at a random time. The target is then absent or a
    complete loadable file, and an overwrite never destroys the previous good file."""
    post, _ = saved
    target = tmp_path / "p.nc"
    rng = np.random.default_rng(7)
    tree = post.tree  # build once; the child only writes
    mid_write = 0
    for round_ in range(6):
        if round_ == 1 and not target.exists():
            write_netcdf(tree, target)  # from now on every kill interrupts an overwrite
        pid = os.fork()
        if pid == 0:  # child: write forever until killed
            try:
                for _ in range(1000):
                    write_netcdf(tree, target)
            finally:
                os._exit(0)
        had_good = target.exists()
        if round_ % 2 == 0:  # kill as soon as a temporary file shows up
            t0 = time.monotonic()
            while (
                not any(n.endswith(".tmp") for n in os.listdir(tmp_path))
                and time.monotonic() - t0 < 20
            ):
                time.sleep(0.0005)
            mid_write += any(n.endswith(".tmp") for n in os.listdir(tmp_path))
        else:
            time.sleep(float(rng.uniform(0.0, 1.5)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if target.exists():
            np.testing.assert_array_equal(bd.load(target).fits[0].theta, post.fits[0].theta)
        else:
            assert not had_good, "an overwrite destroyed the previous good file"
        for n in os.listdir(tmp_path):
            if n.endswith(".tmp"):
                os.unlink(tmp_path / n)
    assert mid_write >= 2  # the kills did land while a write was under way


def test_priors_are_stored_as_plain_data(tmp_path):
    priors = {
        "group_sd": Prior("HalfNormal", sigma=2.0),
        "A1": {"propensity_coef": Prior("Normal", mu=0.0, sigma=[1.0, 2.0])},
    }
    post = bd.DTRModel(
        _data(), [bd.Stage("A1", main="X1", contrast="1")], outcome="Y", priors=priors
    ).fit(draws=10, chains=1, random_seed=1, progressbar=False)
    post.to_netcdf(tmp_path / "p.nc")
    back = bd.load(tmp_path / "p.nc")
    assert {k: v.to_dict() for k, v in back.priors["A1"].overrides.items()} == {
        "group_sd": {"dist": "HalfNormal", "kwargs": {"sigma": 2.0}},
        "propensity_coef": {"dist": "Normal", "kwargs": {"mu": 0.0, "sigma": [1.0, 2.0]}},
    }

    class Custom:
        def create_variable(self, name):
            raise NotImplementedError

    other = bd.DTRModel(
        _data(),
        [bd.Stage("A1", main="X1", contrast="1")],
        outcome="Y",
        priors={"group_sd": Custom()},
    )
    with pytest.raises(
        bd.PriorError,
        match=r"Prior 'group_sd' of stage 'A1' .* cannot be stored in a posterior file",
    ):
        other.fit(draws=10, chains=1, random_seed=1, progressbar=False).to_netcdf(tmp_path / "q.nc")
    assert not (tmp_path / "q.nc").exists()


@pytest.mark.integration
def test_group_effects_round_trip(tmp_path):
    """MCMC stage with site intercepts and contrasts: draws, group codes and new-site queries
    (through the caller's stages) come back identical."""
    df = _data(160)
    stages = [bd.Stage("A1", main="X1", contrast="1 + X1")]
    post = bd.DTRModel(df, stages, outcome="Y", group="site", group_contrast=True).fit(
        draws=30, tune=30, chains=1, random_seed=4, progressbar=False, warn=False
    )
    post.to_netcdf(tmp_path / "g.nc")
    back = bd.load(tmp_path / "g.nc", stages=stages)
    for name in ("theta", "group_intercept", "group_contrast"):
        np.testing.assert_array_equal(getattr(back.fits[0], name), getattr(post.fits[0], name))
    np.testing.assert_array_equal(back.design.group_codes, post.design.group_codes)
    new = _data(4, seed=8).assign(site=["north", "east", "east", "south"])
    np.testing.assert_array_equal(
        back.q_values(1, data=new).values, post.q_values(1, data=new).values
    )
    reg = bd.Regime.static(A1="trt")
    np.testing.assert_array_equal(back.value(reg).values, post.value(reg).values)


def test_stages_in_any_order_and_a_loaded_posterior_saves_again(tmp_path):
    df = _data()
    df["A2"] = np.random.default_rng(5).choice([0, 1], len(df))
    stages = [
        bd.Stage("A1", main="X1", contrast="1 + X1"),
        bd.Stage("A2", main="X1 + C(A1)", contrast="1 + X1"),
    ]
    post = bd.DTRModel(df, stages, outcome="Y").fit(
        draws=30, chains=2, random_seed=6, progressbar=False
    )
    post.to_netcdf(tmp_path / "a.nc")
    bd.load(tmp_path / "a.nc").to_netcdf(tmp_path / "b.nc")
    live = bd.load(tmp_path / "b.nc", stages=stages[::-1])  # matched by treatment name
    assert live.design.treatments == ["A1", "A2"]
    new = _data(6, seed=2).assign(A1=["ctl", "trt"] * 3)
    np.testing.assert_array_equal(
        live.prob_optimal(2, data=new).to_numpy(), post.prob_optimal(2, data=new).to_numpy()
    )
    reg = bd.Regime.static(A1="trt", A2=1)
    np.testing.assert_array_equal(live.value(reg).values, post.value(reg).values)


def test_storable_columns_round_trip_exactly(tmp_path):
    """Every encoding a file knows comes back with its values, missing entries and dtype."""
    n = 120
    rng = np.random.default_rng(3)
    df = _data(n).assign(
        text_na=pd.Series(rng.choice(["u", "v"], n), dtype=object).where(rng.random(n) > 0.2),
        text_str=pd.array(rng.choice(["p", None], n), dtype="str"),
        nullable=pd.array(
            np.where(rng.random(n) > 0.3, rng.integers(0, 9, n), None), dtype="Int64"
        ),
        flag=rng.random(n) > 0.5,
        when=pd.date_range("2024-01-01", periods=n, freq="h"),
        gap=pd.to_timedelta(rng.integers(0, 100, n), unit="s"),
        small=rng.integers(0, 9, n).astype(np.uint8),
        ordered=pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "hi"], ordered=True),
        mixed_ints=pd.Series(rng.integers(0, 5, n), dtype=object),
        **{"": 1.0, "obs": 2.0, "a/b": 3.0},
    )
    post = _fit_one(df, random_seed=2)
    post.to_netcdf(tmp_path / "p.nc")
    back = bd.load(tmp_path / "p.nc")
    pd.testing.assert_frame_equal(back.design.data, df, check_exact=True)
    assert back.design.data_hash == post.design.data_hash
