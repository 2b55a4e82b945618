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
    """The JAX backend samples the same posterior (propensity coefficients of two_stage_cont)."""
    pytest.importorskip("jax")
    import numpy as np

    scn = bd.scenario("two_stage_cont")
    model = bd.DTRModel(scn.sample(200, seed=3), scn.stages, outcome="Y")
    kw = dict(engine="conjugate", draws=300, tune=300, chains=2, progressbar=False, warn=False)
    gam = {}
    for sampler in ("nutpie", "nutpie-jax"):
        post = model.fit(sampler=sampler, random_seed=5, **kw)
        gam[sampler] = post.propensities[0].gamma
        if sampler == "nutpie-jax":
            again = model.fit(sampler=sampler, random_seed=5, **kw)
            np.testing.assert_array_equal(again.propensities[0].gamma, gam[sampler])
    sd = gam["nutpie"].std(axis=0)
    gap = np.abs(gam["nutpie"].mean(axis=0) - gam["nutpie-jax"].mean(axis=0)) / sd
    assert gap.max() < 0.35, gap
    ratio = gam["nutpie-jax"].std(axis=0) / sd
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
