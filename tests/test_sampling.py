"""The NUTS sampler front end: sampler choices and the safety of the on-disk compile cache."""

from __future__ import annotations

import os
import sys

import pytest

import bayesdtr as bd
from bayesdtr.exceptions import BayesDTRWarning, FitError
from bayesdtr.inference.sampling import NUTSSampler, check_cache_dir

pytensor = pytest.importorskip("pytensor")
posix_owner = pytest.mark.skipif(
    not hasattr(os, "getuid") or sys.platform == "win32", reason="POSIX modes"
)


@pytest.fixture
def numba_cache():
    """Restore PyTensor's cache switch after a test turned it off."""
    before = pytensor.config.numba__cache
    yield
    pytensor.config.numba__cache = before


@posix_owner
def test_a_private_cache_folder_is_used(tmp_path, numba_cache):
    (tmp_path / "numba").mkdir()
    tmp_path.chmod(0o700)
    (tmp_path / "numba").chmod(0o700)
    assert check_cache_dir(tmp_path) is None
    assert pytensor.config.numba__cache


@posix_owner
@pytest.mark.parametrize("which", [".", "numba"])
def test_a_cache_folder_others_can_write_is_not_loaded(tmp_path, numba_cache, which):
    """Numba loads its cache index with pickle: a folder others can write turns the cache off."""
    (tmp_path / "numba").mkdir()
    tmp_path.chmod(0o700)
    (tmp_path / "numba").chmod(0o700)
    (tmp_path / which).chmod(0o777)
    with pytest.warns(
        BayesDTRWarning, match=r"can be written by its group or by others \(mode 777\).*pickle"
    ):
        why = check_cache_dir(tmp_path)
    assert why is not None and "mode 777" in why
    assert pytensor.config.numba__cache is False


def test_unknown_sampler_names_the_choices():
    with pytest.raises(
        FitError, match=r"sampler='stan' is not supported; use 'nutpie', 'nutpie-jax', 'pymc'"
    ):
        NUTSSampler(model=None, sampler="stan")  # type: ignore[arg-type]


def test_fit_lists_nutpie_jax_among_the_samplers():
    scn = bd.scenario("two_stage_cont")
    model = bd.DTRModel(scn.sample(60, seed=1), scn.stages, outcome="Y")
    with pytest.raises(
        FitError, match=r"sampler='jax' is not one of \['nutpie', 'nutpie-jax', 'pymc', 'numpyro'\]"
    ):
        model.fit(sampler="jax")  # type: ignore[arg-type]


@pytest.mark.integration
def test_nutpie_jax_agrees_with_numba_on_a_propensity_model():
    """The JAX backend samples the same posterior (propensity coefficients of two_stage_cont),
    with the same draws for the same seed."""
    pytest.importorskip("jax")
    import numpy as np

    scn = bd.scenario("two_stage_cont")
    model = bd.DTRModel(scn.sample(200, seed=3), scn.stages, outcome="Y")
    kw = dict(engine="conjugate", draws=300, tune=300, chains=2, progressbar=False, warn=False)
    gam = {}
    for sampler in ("nutpie", "nutpie-jax"):
        post = model.fit(sampler=sampler, random_seed=5, **kw)
        gam[sampler] = post.propensities[0].gamma
    again = model.fit(sampler="nutpie-jax", random_seed=5, **kw)
    np.testing.assert_array_equal(again.propensities[0].gamma, gam["nutpie-jax"])
    sd = gam["nutpie"].std(axis=0)
    gap = np.abs(gam["nutpie"].mean(axis=0) - gam["nutpie-jax"].mean(axis=0)) / sd
    assert gap.max() < 0.35, gap
    ratio = gam["nutpie-jax"].std(axis=0) / sd
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


TOY = """
import numpy as np
import pymc as pm

rng = np.random.default_rng(0)
with pm.Model() as toy:
    y = pm.Data("y", rng.normal(0.0, 1.0, size=40))
    shift = pm.Data("shift", 0.0)  # a 0-d container, as the models' counts are
    mu = pm.Normal("mu", 0.0, 100.0)
    sigma = pm.HalfNormal("sigma", 5.0)
    pm.Normal("obs", mu + shift, sigma, observed=y)
"""


@pytest.mark.integration
def test_cached_callbacks_give_nutpie_draws_and_swap_data():
    """The disk-cacheable C callbacks give the draws of nutpie's own (compiled with the same
    IEEE arithmetic), and ``run`` swaps a vector and a 0-d data container."""
    import numpy as np
    import nutpie

    from bayesdtr.inference.cached_cfunc import compile_cached

    env: dict = {}
    exec(TOY, env)
    toy = env["toy"]
    kw = dict(draws=100, tune=100, chains=2, seed=3, progress_bar=False)
    ours = nutpie.sample(compile_cached(toy), **kw)
    with pytensor.config.change_flags(numba__fastmath=False):  # as compile_cached compiles
        theirs = nutpie.sample(nutpie.compile_pymc_model(toy, freeze_model=False), **kw)
    for name in ("mu", "sigma"):
        np.testing.assert_array_equal(ours.posterior[name].values, theirs.posterior[name].values)

    smp = NUTSSampler(toy)
    shifted = np.random.default_rng(1).normal(10.0, 1.0, size=60)
    res = smp.run({"y": shifted, "shift": 2}, draws=200, tune=200, chains=2, seed=1)
    assert abs(res.draws["mu"].mean() - (shifted.mean() - 2.0)) < 0.3
    assert res.draws["sigma"].shape == (2, 200) and np.all(res.draws["sigma"] > 0)


@pytest.mark.integration
def test_a_new_process_loads_the_callbacks_from_disk_and_draws_the_same(tmp_path):
    """The second process finds both callbacks in PyTensor's Numba cache, and the first (which
    compiled everything) drew the same: with fast-math flags it did not
    (``benchmarks/diag_cold_warm.py``)."""
    import subprocess

    code = TOY + (
        "import hashlib, nutpie\n"
        "from bayesdtr.inference.cached_cfunc import compile_cached\n"
        "m = compile_cached(toy)\n"
        "t = nutpie.sample(m, draws=100, tune=100, chains=2, seed=3, progress_bar=False)\n"
        "h = hashlib.md5(t.posterior['mu'].values.tobytes()).hexdigest()\n"
        "print(m.compiled_logp_func.cache_hits, m.compiled_expand_func.cache_hits, h)\n"
    )
    env = os.environ | {"PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'pytensor'}"}
    hits = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        hits.append(out.stdout.split()[-3:])
    assert [h[:2] for h in hits] == [["0", "0"], ["1", "1"]], hits
    assert hits[0][2] == hits[1][2], hits


@pytest.mark.integration
def test_cached_callbacks_compile_without_a_disk_cache(numba_cache):
    """Where ``check_cache_dir`` turned PyTensor's cache off, the callbacks are compiled in the
    process (nothing is written or read) and still sample."""
    import nutpie

    from bayesdtr.inference.cached_cfunc import compile_cached

    env: dict = {}
    exec(TOY, env)
    pytensor.config.numba__cache = False
    m = compile_cached(env["toy"])
    assert m.compiled_logp_func.cache_hits == 0
    t = nutpie.sample(m, draws=50, tune=50, chains=1, seed=1, progress_bar=False)
    assert t.posterior["mu"].shape == (1, 50)
