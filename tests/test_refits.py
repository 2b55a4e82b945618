"""Regime and chunk refits: reuse what a regime leaves unchanged, refit conjugate stages without NUTS.

``post.value(regime)`` and the sample-split value refit stages. A stage whose targets the regime
does not change (the last stage; any stage after which the regime follows the optimal rule) reuses
the posterior's draws; a stage the fit sampled by NUTS that is conditionally conjugate is refitted
by the conjugate or Gibbs engine (:func:`bayesdtr.inference.engines.refit_engines`), which sample
the same model (checked here: the NUTS model's default prior is the conjugate engine's NIG prior,
and, in an integration test, the refitted value agrees with a NUTS refit).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.exceptions import FitError
from bayesdtr.inference.backward import FitSettings, Induction, refit_engines, reusable_stages
from bayesdtr.inference.engines import ENGINES
from bayesdtr.inference.engines.mcmc import MCMCEngine, stage_problem

FIT = dict(draws=300, chains=2, random_seed=7, progressbar=False)


@pytest.fixture(scope="module")
def ex3():
    scn = bd.scenario("chakraborty_ex3")  # known propensities: no NUTS in the fit
    return bd.DTRModel(scn.sample(300, seed=3), scn.stages, outcome="Y")


@pytest.fixture(scope="module")
def multisite():
    scn = bd.scenario("multisite_smart")
    df = scn.sample(300, seed=2)
    return bd.DTRModel(df, scn.stages, outcome=scn.outcome, group="site", group_contrast=True)


def _as_if_mcmc(post):
    """The posterior, as if fitted with engine="mcmc" (its draws untouched): what refits see."""
    post.settings = dataclasses.replace(post.settings, engine="mcmc")
    for f in post.fits:
        f.engine = "mcmc"
    return post


def _no_nuts(monkeypatch):
    def refuse(self, induction, k):
        raise AssertionError(f"NUTS refit of stage {k + 1}")

    monkeypatch.setattr(MCMCEngine, "fit", refuse)


def _names(engines):
    return [e.name for e in engines]


# ---------------------------------------------------------------------- which engine refits
def test_refit_engines_swap_nuts_for_conjugate_or_gibbs_only_where_the_model_is_conjugate(
    ex3, multisite
):
    mcmc = FitSettings(engine="mcmc")
    assert _names(refit_engines(ex3.design, mcmc, ex3.stage_priors)) == ["conjugate", "conjugate"]
    assert _names(refit_engines(ex3.design, FitSettings(), ex3.stage_priors)) == [
        "conjugate",
        "conjugate",
    ]
    assert _names(refit_engines(multisite.design, mcmc, multisite.stage_priors)) == [
        "gibbs",
        "gibbs",
    ]
    # robust stays robust (another model: dWOLS)
    robust = FitSettings(robust=True)
    assert _names(refit_engines(ex3.design, robust, ex3.stage_priors)) == ["robust", "robust"]


def test_refit_engines_keep_nuts_for_user_priors_and_bernoulli():
    from pymc_extras.prior import Prior

    scn = bd.scenario("chakraborty_ex3")
    df = scn.sample(200, seed=4)
    priors = {"A1": {"psi": Prior("Normal", mu=0, sigma=1, dims=("contrast_arm", "contrast_term"))}}
    m = bd.DTRModel(df, scn.stages, outcome="Y", priors=priors)
    got = _names(refit_engines(m.design, FitSettings(engine="mcmc"), m.stage_priors))
    assert got == ["mcmc", "conjugate"]  # stage 1's user prior is not the NIG model
    df["Yb"] = (df["Y"] > df["Y"].median()).astype(int)
    b = bd.DTRModel(df.drop(columns="Y"), scn.stages, outcome="Yb", family="bernoulli")
    # the Bernoulli last stage keeps NUTS; the Gaussian pseudo-outcome stage before it does not
    assert _names(refit_engines(b.design, FitSettings(engine="mcmc"), b.stage_priors)) == [
        "conjugate",
        "mcmc",
    ]


def test_nuts_default_prior_is_the_conjugate_engines_prior(ex3):
    """The refit changes the sampler, not the model: the NUTS engine's stage model (what
    ``stage_problem`` builds) has the conjugate engine's centred design and NIG hyperparameters."""
    post = ex3.fit(**FIT)
    ind = Induction(
        post.design,
        post.settings,
        post.priors,
        post.propensities,
        bd.Regime.optimal(),
        np.random.SeedSequence(2),
    )
    ind.fits = list(post.fits)
    for k, sd in enumerate(post.design.stages):
        om = stage_problem(ind, k).om
        X, hyper, _, sw, n_fit = ENGINES["conjugate"].setup(ind, k)
        assert sw is None and n_fit == sd.n_units
        p = sd.X_main.shape[1]
        np.testing.assert_array_equal(om.W, X, err_msg=f"stage {k + 1}")
        np.testing.assert_array_equal(om.data["beta_mu"], hyper.m0[:p])
        np.testing.assert_array_equal(om.data["beta_tau"], hyper.tau[:p])
        np.testing.assert_array_equal(np.ravel(om.data["psi_mu"]), hyper.m0[p:])
        np.testing.assert_array_equal(np.ravel(om.data["psi_tau"]), hyper.tau[p:])
        np.testing.assert_array_equal(om.data["sigma2_ab"], [hyper.a0, hyper.b0])
        assert om.key == stage_problem(ind, k).om.key  # no user prior in the compiled structure


# ---------------------------------------------------------------------- reuse
def test_reusable_stages_are_those_after_which_the_regime_follows_the_optimal_rule():
    scn = bd.scenario("k_stage")
    m = bd.DTRModel(scn.sample(200, seed=1), scn.stages, outcome=scn.outcome)
    t = m.design.treatments
    assert reusable_stages(m.design, bd.Regime.optimal()) == [True, True, True]
    assert reusable_stages(m.design, bd.Regime.static(**{x: 0 for x in t})) == [False, False, True]
    mixed = bd.Regime.dynamic(
        {t[0]: "optimal", t[1]: lambda df: np.zeros(len(df), dtype=int), t[2]: "optimal"}
    )
    assert reusable_stages(m.design, mixed) == [False, True, True]
    later = bd.Regime.dynamic(
        {t[0]: lambda df: np.zeros(len(df), dtype=int), t[1]: "optimal", t[2]: "optimal"}
    )
    assert reusable_stages(m.design, later) == [True, True, True]


def test_regime_that_follows_the_optimal_rule_later_reuses_every_fit(ex3):
    post = ex3.fit(**FIT)
    regime = bd.Regime.dynamic(
        {"A1": lambda df: np.ones(len(df), dtype=int), "A2": "optimal"}, name="one then best"
    )
    ind = post.induction_for(regime)
    assert ind.origins == ["reused", "reused"]
    assert all(a is b for a, b in zip(ind.fits, post.fits, strict=True))
    v = post.value(regime, method="q", crossfit=0)
    assert v.attrs["stage_fits"] == "A1: fit reused, A2: fit reused"
    # its value is the optimal posterior's Q1 of arm 1, averaged with the posterior's weights
    sd = post.design.stages[0]
    from bayesdtr.inference.draws import q_arms

    q1 = q_arms(sd, post.fits[0], np.arange(post.n_samples), sd.X_main, sd.X_contrast, None)[1]
    omega = post.bootstrap.weights(np.arange(post.n_samples))
    want = (omega * q1).sum(1) / post.design.n  # float32 weights of mean 1
    np.testing.assert_allclose(v.values.ravel(), want, rtol=1e-6)
    # not the optimal value, nor another arm's
    assert abs(float(v.mean()) - float(post.value("optimal", crossfit=0).mean())) > 0.01


def test_run_refuses_a_reused_stage_before_a_refitted_one(ex3):
    post = ex3.fit(**FIT)
    ind = Induction(
        post.design,
        post.settings,
        post.priors,
        post.propensities,
        bd.Regime.static(A1=1, A2=1),
        np.random.SeedSequence(1),
    )
    with pytest.raises(FitError, match="reuse= gives stage 1's draws but stage 2 is refitted"):
        ind.run(reuse=[post.fits[0], None])


# ---------------------------------------------------------------------- refits without NUTS
def test_static_regime_of_an_mcmc_fit_is_refitted_by_the_conjugate_engine(ex3, monkeypatch):
    _no_nuts(monkeypatch)
    post = _as_if_mcmc(ex3.fit(**FIT))
    static = bd.Regime.static(A1=1, A2=-1)
    v = post.value(static, method="aipw")
    assert v.attrs["stage_fits"] == "A1: conjugate (the fit used mcmc; same model), A2: fit reused"
    ind = post.induction_for(static)
    assert ind.origins == ["conjugate", "reused"] and ind.fits[1] is post.fits[1]
    # the conjugate refit is the one a conjugate fit's posterior makes (same seed): same values
    same = ex3.fit(**FIT).value(static, method="aipw")
    np.testing.assert_allclose(v.values, same.values, rtol=1e-12)
    # same seed, same values
    again = _as_if_mcmc(ex3.fit(**FIT)).value(static, method="aipw")
    np.testing.assert_array_equal(v.values, again.values)


def test_sample_split_value_of_an_mcmc_fit_refits_its_chunks_without_nuts(ex3, monkeypatch):
    _no_nuts(monkeypatch)
    post = _as_if_mcmc(ex3.fit(**FIT))
    v = post.value("optimal", method="aipw", crossfit=4)
    assert v.attrs["stage_fits"] == (
        "training chunks: A1: conjugate (the fit used mcmc; same model), A2: conjugate (the fit used "
        "mcmc; same model); the learned rule's refits on the training chunks: A1: conjugate (the fit "
        "used mcmc; same model), A2: fit reused"
    )
    q = post.value("optimal", method="q", crossfit=4)
    assert "refits on the valued chunk: A1: conjugate" in q.attrs["stage_fits"]
    again = _as_if_mcmc(ex3.fit(**FIT)).value("optimal", method="aipw", crossfit=4)
    np.testing.assert_array_equal(v.values, again.values)
    assert np.isfinite(v.values).all() and 0 < float(v.std()) < 1


def test_hierarchical_regime_refit_by_gibbs(multisite, monkeypatch):
    _no_nuts(monkeypatch)
    post = _as_if_mcmc(
        multisite.fit(
            draws=200,
            chains=2,
            tune=50,
            imputations=10,
            random_seed=3,
            progressbar=False,
            warn=False,
        )
    )
    arms = {sd.treatment: sd.arms[0] for sd in post.design.stages}
    v = post.value(bd.Regime.static(**arms), method="q")
    assert v.attrs["stage_fits"] == "A1: gibbs (the fit used mcmc; same model), A2: fit reused"
    ind = post.induction_for(bd.Regime.static(**arms))
    assert ind.fits[0].n_fits == 10 and ind.fits[0].group_contrast is not None


def test_plug_in_and_file_posteriors_say_how_their_stages_were_fitted(ex3, tmp_path):
    post = ex3.fit(**FIT)
    assert post.value("optimal", crossfit=0).attrs["stage_fits"] == "A1: conjugate, A2: conjugate"
    post.to_netcdf(tmp_path / "p.nc")
    back = bd.load(tmp_path / "p.nc")
    assert back.value("optimal", crossfit=0).attrs["stage_fits"] == "A1: conjugate, A2: conjugate"
    assert isinstance(back.value(bd.Regime.static(A1=-1, A2=-1)).attrs["stage_fits"], str)
    pd.testing.assert_frame_equal(back.prob_optimal(1), post.prob_optimal(1))


# ---------------------------------------------------------------------- same model as NUTS
@pytest.mark.integration
def test_conjugate_refit_agrees_with_a_nuts_refit_of_a_static_regime(ex3):
    """The value of a static regime on an engine="mcmc" posterior: the conjugate refit (now the
    default) against NUTS refits of stage 1 by multiple imputation (what it replaced).

    The NUTS refit's mean carries the Monte Carlo error of its M imputations (each one draw of
    stage 2), estimated from the spread of its imputation means; the criterion is 0.1 posterior
    SD beyond three of those standard errors, and SDs within 15%.
    """
    post = ex3.fit(
        engine="mcmc",
        draws=1000,
        chains=2,
        tune=300,
        imputations=100,
        random_seed=5,
        progressbar=False,
        warn=False,
    )
    static = bd.Regime.static(A1=1, A2=1)
    fast = post.value(static, method="q").values.ravel()
    nuts = Induction(
        post.design,
        post.settings,
        post.priors,
        post.propensities,
        static,
        np.random.SeedSequence(9),
        post.induction.samplers,
        engines=[ENGINES["mcmc"], ENGINES["mcmc"]],
    )
    nuts.run(last=post.fits[-1])
    from bayesdtr.values import q_value

    slow = q_value(post.bootstrap, nuts)
    sd = slow.std()
    block_means = pd.Series(slow).groupby(nuts.fits[0].ancestor).mean()
    se = block_means.std() / np.sqrt(len(block_means))
    assert len(block_means) == 100
    assert abs(fast.mean() - slow.mean()) < 0.1 * sd + 3 * se, (fast.mean(), slow.mean(), sd, se)
    assert 0.85 < fast.std() / sd < 1.15, (fast.std(), sd)
