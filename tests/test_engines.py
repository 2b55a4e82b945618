"""Stage engines and outcome families as plug-ins (issue 11, items 2 and 4)."""

from __future__ import annotations

import numpy as np
import pytest

import bayesdtr as bd
from bayesdtr.constants import FAMILIES as FAMILY_NAMES
from bayesdtr.exceptions import FitError, SpecificationError
from bayesdtr.inference.backward import FitSettings, Induction
from bayesdtr.inference.engines import AUTO, ENGINES, stage_engines
from bayesdtr.inference.engines.ols import OLSEngine
from bayesdtr.models.families import FAMILIES, GAUSSIAN, Bernoulli, family_of


@pytest.fixture(scope="module")
def model():
    scn = bd.scenario("two_stage_cont")
    return bd.DTRModel(scn.sample(200, seed=1), scn.stages, outcome=scn.outcome)


def test_family_registry_matches_the_public_names():
    assert tuple(FAMILIES) == FAMILY_NAMES
    assert family_of("gaussian") is GAUSSIAN and family_of(GAUSSIAN) is GAUSSIAN
    with pytest.raises(
        SpecificationError, match="family='poisson' is not supported; use 'gaussian', 'bernoulli'"
    ):
        family_of("poisson")


def test_family_maps_and_predictive_draws():
    lin = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(GAUSSIAN.response(lin), lin)
    np.testing.assert_allclose(Bernoulli().response(lin), 1 / (1 + np.exp(-lin)))
    # the same random stream as the draws written out by hand
    g = GAUSSIAN.predictive(np.random.default_rng(3), lin, np.array([2.0]))
    np.testing.assert_array_equal(
        g, lin + 2.0 * np.random.default_rng(3).standard_normal(lin.shape)
    )
    p = np.array([[0.1, 0.5, 0.9]])
    b = Bernoulli().predictive(np.random.default_rng(3), p, None)
    np.testing.assert_array_equal(b, (np.random.default_rng(3).random(p.shape) < p).astype(float))
    assert GAUSSIAN.closed_form and not Bernoulli().closed_form


def test_engine_table(model):
    assert set(AUTO) <= set(ENGINES) and {"conjugate", "robust", "mcmc"} <= set(ENGINES)
    pri = model.stage_priors
    assert stage_engines(model.design, FitSettings(), pri) == ["conjugate", "conjugate"]
    assert stage_engines(model.design, FitSettings(engine="mcmc"), pri) == ["mcmc", "mcmc"]
    with pytest.raises(FitError, match="engine='mcmc' cannot be combined with it"):
        stage_engines(model.design, FitSettings(engine="mcmc", robust=True), pri)
    for e in ENGINES.values():
        # "bart" fits only stages declared q=bd.BART(...)
        assert e.refusal(model.design, FitSettings(), pri, 0) is None or e.name in ("robust", "bart")
    assert "engine='bart' fits only stages declared with q=bd.BART" in ENGINES["bart"].refusal(
        model.design, FitSettings(), pri, 0
    )


def test_ols_engine_point_fit_is_least_squares(model):
    d = model.design
    ind = Induction(
        d,
        FitSettings(draws=1, chains=1, propagation="mean"),
        {},
        [None, None],
        bd.Regime.optimal(),
        np.random.SeedSequence(0),
        engines=[OLSEngine()] * 2,
    )
    fits = ind.run()
    sd = d.stages[-1]
    T = (d.y + sd.reward)[sd.units]
    np.testing.assert_allclose(
        fits[-1].theta[0], np.linalg.lstsq(sd.X, T, rcond=None)[0], rtol=1e-10
    )
    assert ind.engines == ["ols", "ols"] and fits[0].ancestor.tolist() == [0]
