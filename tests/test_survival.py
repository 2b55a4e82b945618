"""Censored survival outcomes: validation, marks on the shipped data, AFT formulas, pseudo-outcomes,
the survival_smart truth, and (integration) tiny real fits."""

from __future__ import annotations

import dataclasses
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.stats import norm

import bayesdtr as bd
from bayesdtr.data.survival import CENSORED_ATTR
from bayesdtr.exceptions import DataError, FitError, SpecificationError
from bayesdtr.inference.backward import FitSettings
from bayesdtr.inference.draws import PropensityDraws, StageDraws
from bayesdtr.inference.survival import SurvivalInduction
from bayesdtr.models.priors import resolve_priors
from bayesdtr.models.survival import rmst, survival_at
from bayesdtr.simulate._survival import _rmst_optimal2_given_x1
from bayesdtr.survival_values import (
    aipw_terms,
    augmented_terms,
    check_survival_value,
    survival_method,
    survival_value,
)
from bayesdtr.values import BootstrapWeights

STAGES = [
    bd.Stage("A1", main="X11 + X12", contrast="1 + X11", reward="T1"),
    bd.Stage("A2", main="X21 + X22", contrast="1 + X21", applies="R == 1"),
]


def cens_data() -> pd.DataFrame:
    df = bd.load_data("two_stage_cens")
    df["T"] = df["T1"] + df["T2"].fillna(0.0)
    df["R"] = df["T2"].notna().astype(int)
    return df


# --------------------------------------------------------------------------- no silent misuse
def test_censored_time_as_gaussian_outcome_is_refused():
    df = bd.load_data("two_stage_cens").dropna(subset=["T2"])
    assert df.attrs[CENSORED_ATTR] == {"T1": "delta", "T2": "delta"}
    stages = [
        bd.Stage("A1", main="X11", contrast="1 + X11"),
        bd.Stage("A2", main="X21", contrast="1 + X21"),
    ]
    with pytest.raises(
        DataError,
        match=r"outcome= 'T2' is a right-censored time .*event='delta'.*family='lognormal'",
    ):
        bd.DTRModel(df, stages, outcome="T2")
    # a censored stage time used as a reward is refused too
    with pytest.raises(DataError, match=r"reward= 'T1' is a right-censored time"):
        bd.DTRModel(df.assign(y=1.0), [bd.Stage("A1", reward="T1"), bd.Stage("A2")], outcome="y")
    # the explicit opt-out: drop the mark
    df.attrs[CENSORED_ATTR].pop("T2")
    bd.DTRModel(df, stages, outcome="T2")


@pytest.mark.parametrize(
    "op",
    [
        lambda d: d.dropna(subset=["T2"]),
        lambda d: d[["X11", "A1", "X21", "A2", "T2", "delta"]],
        lambda d: d.loc[d["X11"] > 0.5],
        lambda d: d.query("delta == 1 or delta == 0"),
        lambda d: d.copy().reset_index(drop=True),
        lambda d: pd.concat([d.iloc[:10], d.iloc[10:]]),
    ],
)
def test_marks_survive_what_users_do_to_a_frame(op):
    out = op(bd.load_data("two_stage_cens"))
    assert out.attrs.get(CENSORED_ATTR, {}).get("T2") == "delta"


@pytest.mark.parametrize("name", ["ldt", "wrse", "lr", "ph", "chr"])
def test_dtr_package_survival_datasets_are_marked(name):
    df = bd.load_data(name)
    assert df.attrs[CENSORED_ATTR] == {"U": "delta"}
    with pytest.raises(DataError, match="'U' is a right-censored time"):
        bd.DTRModel(df, [bd.Stage("X")], outcome="U")


# --------------------------------------------------------------------------- validation
def test_event_and_family_go_together():
    df = cens_data()
    with pytest.raises(SpecificationError, match=r"family='lognormal' .*needs event="):
        bd.DTRModel(df, STAGES, outcome="T", family="lognormal")
    with pytest.raises(
        SpecificationError, match=r"event='delta' declares .*family='gaussian' has no censoring"
    ):
        bd.DTRModel(df, STAGES, outcome="T", event="delta")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda d: d.assign(delta=d["delta"] * 2),
            r"event column 'delta' must be coded 0/1 \(1 = event, 0 = censored\); saw values \[2.0\]",
        ),
        (lambda d: d.assign(delta=d["delta"].where(d.index != 3)), r"event=.*NaN|event=.*missing"),
        (lambda d: d.assign(delta=d["delta"].astype(str)), r"event column 'delta' has dtype"),
        (
            lambda d: d.assign(T=d["T"].where(d.index != 5, 0.0)),
            r"outcome 'T' is a survival time and must be > 0; saw \[0.0\] in rows \[5\]",
        ),
    ],
)
def test_event_and_time_errors(change, match):
    with pytest.raises(DataError, match=match):
        bd.DTRModel(change(cens_data()), STAGES, outcome="T", event="delta", family="lognormal")


def test_stage_time_errors():
    df = cens_data()
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A2' is reached by 809 units, but stage 'A1' has no reward=",
    ):
        bd.DTRModel(df, [bd.Stage("A1"), STAGES[1]], outcome="T", event="delta", family="lognormal")
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A2' reward='T2': with a survival family the last stage has no reward",
    ):
        bd.DTRModel(
            df.fillna({"T2": 0.0}),
            [STAGES[0], bd.Stage("A2", reward="T2")],
            outcome="T",
            event="delta",
            family="lognormal",
        )
    bad = df.assign(T1=np.where(df.index == 0, df["T"] + 1.0, df["T1"]))
    with pytest.raises(
        DataError, match=r"Stage 'A2': 1 units reach it with no time left .*rows \[0\]"
    ):
        bd.DTRModel(bad, STAGES, outcome="T", event="delta", family="lognormal")


def test_engines_and_propagations_that_cannot_censor_are_refused():
    m = bd.DTRModel(cens_data(), STAGES, outcome="T", event="delta", family="lognormal")
    with pytest.raises(
        FitError,
        match=r"engine='conjugate' .*stage 'A1' is not: the outcome 'T' is a censored time",
    ):
        m.fit(engine="conjugate")
    with pytest.raises(FitError, match=r"engine='gibbs' .*censored time"):
        m.fit(engine="gibbs")
    with pytest.raises(FitError, match="robust=True"):
        m.fit(robust=True)
    with pytest.raises(FitError, match=r"propagation='mean' cannot carry a censored time back"):
        m.fit(propagation="mean", draws=5, tune=5, chains=1, progressbar=False)


def test_horizon_on_a_gaussian_posterior_is_refused():
    scn = bd.scenario("two_stage_cont")
    stages = [dataclasses.replace(s, propensity=None) for s in scn.stages]
    post = bd.DTRModel(scn.sample(200, seed=1), stages, outcome="Y").fit(
        draws=50, chains=2, random_seed=1, progressbar=False
    )
    with pytest.raises(FitError, match=r"horizon=5.0 is for censored survival outcomes"):
        post.value(bd.Regime.static(A1=1, A2=1), horizon=5.0)


# --------------------------------------------------------------------------- AFT formulas
@pytest.mark.parametrize("family", ["lognormal", "weibull"])
@pytest.mark.parametrize(
    ("mu", "sigma", "tau"), [(0.3, 0.8, 2.0), (2.0, 0.5, 5.0), (-1.0, 1.5, 0.7)]
)
def test_rmst_and_survival_match_numerical_integration(family, mu, sigma, tau):
    def surv(t):
        z = (np.log(t) - mu) / sigma
        return norm.sf(z) if family == "lognormal" else np.exp(-np.exp(z))

    want = integrate.quad(surv, 0.0, tau, epsabs=1e-12)[0]
    assert rmst(family, np.array(mu), np.array(sigma), tau) == pytest.approx(want, rel=1e-8)
    assert survival_at(family, np.array(mu), np.array(sigma), tau) == pytest.approx(
        surv(tau), rel=1e-12
    )


@pytest.mark.parametrize("family", ["lognormal", "weibull"])
def test_augmented_terms_with_an_affine_map(family):
    # total time alpha + beta U, U censored at u: E[min(alpha + beta U, tau) | U > u] by integration
    mu, sigma, tau, alpha, beta, u = 1.2, 0.6, 9.0, 1.5, 1.3, 2.0

    def surv(v):
        z = (np.log(v) - mu) / sigma
        return norm.sf(z) if family == "lognormal" else np.exp(-np.exp(z))

    h = (tau - alpha) / beta
    want = alpha + beta * (u + integrate.quad(surv, u, h)[0] / surv(u))
    ell = np.log(np.array([alpha + beta * u]))
    got = augmented_terms(
        family,
        ell,
        np.array(mu),
        np.array(sigma),
        np.array([False]),
        tau,
        "rmst",
        alpha=alpha,
        beta=beta,
    )
    np.testing.assert_allclose(got, [want], rtol=1e-8)
    got = augmented_terms(
        family,
        ell,
        np.array(mu),
        np.array(sigma),
        np.array([False]),
        tau,
        "survival",
        alpha=alpha,
        beta=beta,
    )
    np.testing.assert_allclose(got, [surv(h) / surv(u)], rtol=1e-8)


@pytest.mark.parametrize("family", ["lognormal", "weibull"])
def test_augmented_terms(family):
    mu, sigma, tau = np.array(1.0), np.array(0.7), 4.0
    # events: min(t, tau) and 1{t > tau}
    ell = np.log(np.array([2.0, 6.0]))
    ev = np.array([True, True])
    np.testing.assert_allclose(augmented_terms(family, ell, mu, sigma, ev, tau, "rmst"), [2.0, 4.0])
    np.testing.assert_allclose(
        augmented_terms(family, ell, mu, sigma, ev, tau, "survival"), [0.0, 1.0]
    )
    # censored at c < tau: E[min(T, tau) | T > c] by integration; censored beyond tau: tau
    c = 1.5

    def surv(t):
        z = (np.log(t) - 1.0) / 0.7
        return norm.sf(z) if family == "lognormal" else np.exp(-np.exp(z))

    want = c + integrate.quad(surv, c, tau)[0] / surv(c)
    got = augmented_terms(
        family, np.log(np.array([c, 9.0])), mu, sigma, np.array([False, False]), tau, "rmst"
    )
    np.testing.assert_allclose(got, [want, tau], rtol=1e-8)
    got = augmented_terms(
        family, np.log(np.array([c, 9.0])), mu, sigma, np.array([False, False]), tau, "survival"
    )
    np.testing.assert_allclose(got, [surv(tau) / surv(c), 1.0], rtol=1e-8)


# --------------------------------------------------------------------------- pseudo-outcomes
def test_stage1_pseudo_outcome_is_dwsurv_accumulated_time_and_keeps_censoring():
    df = pd.DataFrame(
        {
            "x": [0.1, -0.4, 0.9, 1.3, -1.0, 0.2, 0.5, -0.3],
            "A1": [0, 1, 0, 1, 0, 1, 0, 1],
            "A2": [1, 0, 0, 1, 1, 0, 1, 0],
            "T1": [1.0, 1.0, 1.0, 1.0, 0.4, 1.0, 0.7, 1.0],
            "T": [3.0, 5.0, 2.5, 9.0, 0.4, 4.0, 0.7, 6.0],
            "delta": [1, 0, 1, 1, 1, 0, 0, 1],
            "R": [1, 1, 1, 1, 0, 1, 0, 1],
        }
    )
    stages = [
        bd.Stage("A1", main="x", contrast="1", reward="T1"),
        bd.Stage("A2", main="x", contrast="1 + x", applies="R == 1"),
    ]
    model = bd.DTRModel(df, stages, outcome="T", event="delta", family="lognormal")
    design = model.design
    settings = FitSettings(draws=3, chains=1, propagation="augmented")
    ind = SurvivalInduction(
        design,
        settings,
        resolve_priors(None, design.treatments),
        [None, None],
        bd.Regime.static(A1=0, A2=1),
        np.random.SeedSequence(1),
    )
    theta = np.array(
        [[0.5, 0.2, 0.3, -0.4], [1.0, 0.0, -0.2, 0.1], [0.0, 0.5, 0.6, 0.0]]
    )  # beta0, beta_x, psi0, psi_x
    ind.fits[1] = StageDraws(
        theta=theta, sigma=np.ones(3), chains=1, draws=3, engine="test", family="lognormal"
    )
    got = ind.target_for_fit(0, np.arange(3))  # (3 draws, 8 units)
    x, a2, t1, t = (df[c].to_numpy(float) for c in ("x", "A2", "T1", "T"))
    reach = df["R"].to_numpy() == 1
    for s in range(3):
        blip = theta[s, 2] + theta[s, 3] * x  # Q2(1) - Q2(0)
        shift = (1 - a2) * blip  # the regime gives A2 = 1
        with np.errstate(divide="ignore"):
            want = np.where(reach, np.log(t1 + np.exp(np.log(t - t1) + shift)), np.log(t))
        np.testing.assert_allclose(got[s], want, rtol=1e-12)
    # the value's parts: each unit's total time under the regime as alpha + beta * (time left at
    # the last stage it reached), the tail from that stage's model
    theta1 = np.array([[1.0, 0.1, 0.4], [0.5, 0.0, -0.2], [0.2, 0.3, 0.1]])  # beta0, beta_x, psi0
    anc = np.array([2, 0, 1])
    ind.fits[0] = StageDraws(
        theta=theta1,
        sigma=np.full(3, 0.9),
        chains=1,
        draws=3,
        engine="test",
        family="lognormal",
        ancestor=anc,
    )
    parts = ind.tail_parts(0, np.arange(3))
    a1 = df["A1"].to_numpy(float)
    for s in range(3):
        s1 = (0 - a1) * theta1[s, 2]  # the regime gives A1 = 0
        s2 = (1 - a2) * (theta[anc[s], 2] + theta[anc[s], 3] * x)
        alpha = np.where(reach, np.exp(s1) * t1, 0.0)
        beta = np.where(reach, np.exp(s1 + s2), np.exp(s1))
        u = np.where(reach, t - t1, t)
        np.testing.assert_allclose(parts["alpha"][s], alpha, rtol=1e-12)
        np.testing.assert_allclose(parts["beta"][s], beta, rtol=1e-12)
        np.testing.assert_allclose(np.exp(parts["ell"][s]), alpha + beta * u, rtol=1e-12)
        # U is the time left under the observed arm (beta carries the shift to the regime's arm)
        q2_a = (
            theta[anc[s], 0] + theta[anc[s], 1] * x + a2 * (theta[anc[s], 2] + theta[anc[s], 3] * x)
        )
        q1_a = theta1[s, 0] + theta1[s, 1] * x + a1 * theta1[s, 2]
        np.testing.assert_allclose(parts["mu"][s], np.where(reach, q2_a, q1_a), rtol=1e-12)
        np.testing.assert_allclose(parts["sigma"][s], np.where(reach, 1.0, 0.9))
    # stage 1's family carries the units' own censoring
    np.testing.assert_array_equal(ind.outcome_family(0).event, df["delta"].to_numpy(float))
    np.testing.assert_array_equal(ind.outcome_family(1).event, df["delta"].to_numpy(float)[reach])
    np.testing.assert_allclose(ind.outcome_family(1).log_time, np.log((t - t1)[reach]))


def _value_with_stage_draws(df, reg, theta1, sigma1, method, draws=2):
    """Survival value draws of ``reg`` on ``df`` (survival_smart) with stage 2 at its TRUE
    coefficients and stage 1 at ``theta1`` (beta0, beta_X1, psi0, psi_X1), no MCMC."""
    from bayesdtr.simulate import _survival as S

    scn = bd.scenario("survival_smart")
    design = bd.DTRModel(df, scn.stages, outcome="T", event="delta", family="lognormal").design
    props = [PropensityDraws(known=sd.known_propensity) for sd in design.stages]
    ind = SurvivalInduction(
        design,
        FitSettings(draws=draws, chains=1),
        resolve_priors(None, design.treatments),
        props,
        reg,
        np.random.SeedSequence(1),
    )
    true2 = [S.B0, S.B_X1, S.B_X2, S.B_A1, S.P0, S.P1]  # main 1, X1, X2, A1; contrast 1, X2
    ind.fits[1] = StageDraws(
        theta=np.tile(true2, (draws, 1)),
        sigma=np.full(draws, S.S2),
        chains=1,
        draws=draws,
        engine="test",
        family="lognormal",
    )
    ind.fits[0] = StageDraws(
        theta=np.tile(theta1, (draws, 1)),
        sigma=np.full(draws, sigma1),
        chains=1,
        draws=draws,
        engine="test",
        family="lognormal",
        ancestor=np.arange(draws),
    )
    post = types.SimpleNamespace(
        design=design,
        n_samples=draws,
        propensities=props,
        bootstrap=BootstrapWeights(np.random.SeedSequence(2), n_units=design.n, n_samples=draws),
    )
    return survival_value(post, ind, horizon=10.0, estimand="rmst", method=method)


def test_aipw_survival_value_is_right_with_a_wrong_stage1_contrast_and_augmented_is_not():
    # double robustness against known truth: the true stage 2 and the known randomization of
    # stage 1, but stage-1 AFT models with a wrong treatment contrast (none, or double the one a
    # maximum-likelihood fit gives, 0.35; intercept, X1 slope and scale near that fit's, so the
    # tails of the ~3% of units censored before stage 2, which still come from it, are sensible)
    scn = bd.scenario("survival_smart")
    df = scn.sample(40_000, seed=11)
    for reg in (bd.Regime.static(A1=0, A2=1), bd.Regime.static(A1=1, A2=1)):
        truth = scn.true_value(reg)
        for psi in (0.0, 0.7):
            theta1 = [2.16, 0.2, psi, 0.0]
            aipw = _value_with_stage_draws(df, reg, theta1, 0.88, "aipw")
            augmented = _value_with_stage_draws(df, reg, theta1, 0.88, "augmented")
            # Monte Carlo SD of each value draw here: about 0.15 * sqrt(1000 / 40000) = 0.025
            assert np.all(np.abs(aipw - truth) < 0.1), (reg.name, psi, aipw, truth)
            assert np.all(np.abs(augmented - truth) > 0.3), (reg.name, psi, augmented, truth)


def test_aipw_survival_value_without_a_stage1_propensity_is_refused():
    scn = bd.scenario("survival_smart")
    stages = [dataclasses.replace(st, propensity=None) for st in scn.stages]
    design = bd.DTRModel(
        scn.sample(200, seed=1), stages, outcome="T", event="delta", family="lognormal"
    ).design
    post = types.SimpleNamespace(design=design, propensities=[None, None])
    kw = dict(horizon=5.0, estimand="rmst", crossfit="auto")
    reg = bd.Regime.static(A1=0, A2=1)
    with pytest.raises(FitError, match=r"method='aipw' needs the propensity of stage 1 \('A1'\)"):
        check_survival_value(post, reg, method="aipw", **kw)
    assert survival_method(post, None) == "augmented"
    assert survival_method(types.SimpleNamespace(propensities=[object(), None]), None) == "aipw"


def test_aipw_terms_weight_only_the_followers():
    m = np.array([[2.0, 2.0, 2.0]])
    g = np.array([[3.0, 9.0, 1.0]])
    follows = np.array([[True, False, True]])
    pi = np.array([[0.25, 0.5, 0.5]])
    np.testing.assert_allclose(aipw_terms(m, g, follows, pi), [[6.0, 2.0, 0.0]])


# --------------------------------------------------------------------------- the scenario's truth
def test_survival_smart_static_truth_matches_a_fresh_monte_carlo():
    scn = bd.scenario("survival_smart")
    assert scn.family == "lognormal" and scn.event == "delta" and scn.horizon == 10.0
    for a1, a2 in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        reg = bd.Regime.static(A1=a1, A2=a2)
        _, total = scn._draw(200_000, np.random.default_rng(99 + 2 * a1 + a2), reg)
        m = np.minimum(total, scn.horizon)
        se = m.std() / np.sqrt(len(m))
        assert abs(m.mean() - scn.true_value(reg)) < 4 * se, (
            a1,
            a2,
            m.mean(),
            scn.true_value(reg),
            se,
        )
    # the regimes differ by far more than the Monte Carlo error: the test can fail
    assert (
        scn.true_value(bd.Regime.static(A1=1, A2=1)) - scn.true_value(bd.Regime.static(A1=0, A2=0))
        > 1.5
    )


def test_survival_smart_dynamic_truth_matches_quadrature():
    # A1 = 1 for all, A2 by the true optimal stage-2 rule: Monte Carlo (1e6 units) vs quadrature
    scn = bd.scenario("survival_smart")
    reg = bd.Regime.dynamic(
        {
            "A1": lambda d: np.ones(len(d), dtype=int),
            "A2": lambda d: (0.3 - 0.6 * d["X2"] > 0).astype(int),
        }
    )
    x, w = np.polynomial.hermite_e.hermegauss(60)
    quad = float(
        np.sum(
            w
            / np.sqrt(2 * np.pi)
            * np.array([_rmst_optimal2_given_x1(float(v), 1.0, 10.0) for v in x])
        )
    )
    assert scn.true_value(reg) == pytest.approx(quad, abs=0.012)  # 4 Monte Carlo SEs at 1e6 units
    assert scn.true_value("optimal") >= quad - 1e-9


def test_survival_smart_sample_is_coherent():
    df = bd.scenario("survival_smart").sample(5000, seed=4)
    r = df["R"] == 1
    assert np.all(df.loc[r, "T1"] == 1.0) and np.all(df.loc[r, "T"] > 1.0)
    assert np.all(df.loc[~r, "T1"] == df.loc[~r, "T"])
    assert 0.25 < 1 - df["delta"].mean() < 0.45
    with pytest.raises(DataError, match="'T' is a right-censored time"):
        bd.DTRModel(df, bd.scenario("survival_smart").stages[:1], outcome="T")
    bd.DTRModel(
        df, bd.scenario("survival_smart").stages, outcome="T", event="delta", family="lognormal"
    )


# --------------------------------------------------------------------------- real fits
@pytest.mark.integration
def test_survival_smart_tiny_fit_values_and_refusals():
    scn = bd.scenario("survival_smart")
    df = scn.sample(400, seed=3)
    model = bd.DTRModel(df, scn.stages, outcome="T", event="delta", family="lognormal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.fit(
            draws=100, tune=200, chains=2, imputations=4, random_seed=5, progressbar=False
        )
    reg = bd.Regime.static(A1=1, A2=1)
    v = post.value(reg, horizon=10.0)
    assert v.dims == ("chain", "draw") and v.attrs["method"] == "aipw"  # stage 1 randomized
    assert post.value(reg, horizon=10.0, method="augmented").attrs["method"] == "augmented"
    truth = scn.true_value(reg)
    assert abs(float(v.mean()) - truth) < 4 * float(v.std()) + 0.3
    s = post.value(reg, horizon=10.0, estimand="survival")
    assert 0.0 < float(s.mean()) < 1.0
    assert float(post.value("optimal", horizon=10.0).mean()) > float(
        post.value(bd.Regime.static(A1=0, A2=0), horizon=10.0).mean()
    )
    assert post.prob_optimal(2).shape == (int(df["R"].sum()), 2)
    with pytest.raises(FitError, match=r"needs a horizon: post.value\(regime, horizon=tau\)"):
        post.value(reg)
    with pytest.raises(FitError, match=r"method='ipw' does not handle censored outcomes"):
        post.value(reg, horizon=10.0, method="ipw")
    with pytest.raises(FitError, match=r"crossfit=5: sample splitting is not available"):
        post.value("optimal", horizon=10.0, crossfit=5)
    with pytest.raises(FitError, match=r"horizon=100.0 is beyond the longest follow-up"):
        post.value(reg, horizon=100.0)
    with pytest.raises(FitError, match="horizon= must be a positive finite time"):
        post.value(reg, horizon=-1.0)
    assert "value" not in post.tree.children  # needs a horizon (files: tests/test_io_survival.py)
    with pytest.raises(
        FitError, match="predict_outcome is not available for a censored survival outcome"
    ):
        post.predict_outcome(reg)
    with pytest.raises(FitError, match="needs a horizon"):
        post.compare({"a": reg, "b": "optimal"})
    assert {"beta", "psi"} <= set(post.coef(1).data_vars)
    assert len(post.summary()) > 0


@pytest.mark.integration
def test_two_stage_cens_end_to_end_weibull():
    # DTRreg's twoStageCens as DWSurv's ?DWSurv example specifies it (blip X11 / X21, treatment-free
    # X11 + X12 / X21 + X22 + X11), with the censored Weibull AFT instead of IPCW
    df = cens_data()
    stages = [
        bd.Stage("A1", main="X11 + X12", contrast="1 + X11", reward="T1"),
        bd.Stage("A2", main="X21 + X22 + X11", contrast="1 + X21", applies="R == 1"),
    ]
    model = bd.DTRModel(df, stages, outcome="T", event="delta", family="weibull")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.fit(
            draws=100, tune=200, chains=2, imputations=4, random_seed=2, progressbar=False
        )
    assert post.coef(1).attrs["family"] == "weibull"
    sigma = post.stage_posterior(2)["sigma"]
    assert 0.0 < float(sigma.mean()) < 5.0
    tau = float(df["T"].quantile(0.9))
    values = {
        f"({a1},{a2})": post.value(bd.Regime.static(A1=a1, A2=a2), horizon=tau)
        for a1 in (0, 1)
        for a2 in (0, 1)
    }
    for v in values.values():
        assert 0.0 < float(v.min()) and float(v.max()) <= tau
    p = post.prob_optimal(1)
    assert p.shape == (len(df), 2) and np.allclose(p.sum(axis=1), 1.0)
