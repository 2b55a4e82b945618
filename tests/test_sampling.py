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
        FitError,
        match=r"sampler='stan' is not supported; use 'nutpie', 'nutpie-jax', 'nutpie-cached', 'pymc'",
    ):
        NUTSSampler(model=None, sampler="stan")  # type: ignore[arg-type]


def test_fit_lists_nutpie_jax_among_the_samplers():
    scn = bd.scenario("two_stage_cont")
    model = bd.DTRModel(scn.sample(60, seed=1), scn.stages, outcome="Y")
    with pytest.raises(
        FitError,
        match=r"sampler='jax' is not one of \['nutpie', 'nutpie-jax', 'nutpie-cached', 'pymc', 'numpyro'\]",
    ):
        model.fit(sampler="jax")  # type: ignore[arg-type]


@pytest.mark.integration
@pytest.mark.parametrize("other", ["nutpie-jax", "nutpie-cached"])
def test_other_nutpie_backends_sample_the_numba_posterior(other):
    """nutpie's JAX backend, and Python callbacks around PyTensor's cached Numba functions, sample
    the posterior of the C callbacks (propensity coefficients of two_stage_cont), with the same
    draws for the same seed."""
    import numpy as np

    if other == "nutpie-jax":
        pytest.importorskip("jax")
    scn = bd.scenario("two_stage_cont")
    model = bd.DTRModel(scn.sample(200, seed=3), scn.stages, outcome="Y")
    kw = dict(engine="conjugate", draws=300, tune=300, chains=2, progressbar=False, warn=False)
    gam = {}
    for sampler in ("nutpie", other):
        post = model.fit(sampler=sampler, random_seed=5, **kw)
        gam[sampler] = post.propensities[0].gamma
    again = model.fit(sampler=other, random_seed=5, **kw)
    np.testing.assert_array_equal(again.propensities[0].gamma, gam[other])
    sd = gam["nutpie"].std(axis=0)
    gap = np.abs(gam["nutpie"].mean(axis=0) - gam[other].mean(axis=0)) / sd
    assert gap.max() < 0.35, gap
    ratio = gam[other].std(axis=0) / sd
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


@pytest.mark.integration
def test_nutpie_cached_swaps_data():
    """A data container swapped by ``run`` (a vector and a 0-d one): the posterior follows the
    new data."""
    import numpy as np
    import pymc as pm

    rng = np.random.default_rng(0)
    with pm.Model() as toy:
        y = pm.Data("y", rng.normal(0.0, 1.0, size=40))
        shift = pm.Data("shift", 0.0)  # a 0-d container, as the models' counts are
        mu = pm.Normal("mu", 0.0, 100.0)
        sigma = pm.HalfNormal("sigma", 5.0)
        pm.Normal("obs", mu + shift, sigma, observed=y)
    smp = NUTSSampler(toy, sampler="nutpie-cached")
    shifted = rng.normal(10.0, 1.0, size=60)
    res = smp.run({"y": shifted, "shift": 2}, draws=200, tune=200, chains=2, seed=1)
    assert abs(res.draws["mu"].mean() - (shifted.mean() - 2.0)) < 0.3
    assert res.draws["sigma"].shape == (2, 200) and np.all(res.draws["sigma"] > 0)
