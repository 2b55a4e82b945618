"""Dropout before a later stage (``bd.Stage(..., censoring=...)``): data layer, weights, values,
the ``dropout_smart`` scenario, and IPCW against complete case on known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr import DataError, FitError, SpecificationError
from bayesdtr.data.design import build_design
from bayesdtr.inference.draws import PropensityDraws
from bayesdtr.inference.dropout import IPCWeights

SCN = bd.scenario("dropout_smart")
STATIC = {f"({a1},{a2})": bd.Regime.static(A1=a1, A2=a2) for a1 in (0, 1) for a2 in (0, 1)}
FAST = dict(draws=150, tune=150, chains=2, progressbar=False, warn=False)


def _cc_stages() -> list[bd.Stage]:
    return [
        bd.Stage(s.treatment, main=s.main, contrast=s.contrast, propensity=s.propensity)
        for s in SCN.stages
    ]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return SCN.sample(400, seed=3)


@pytest.fixture(scope="module")
def post(df):
    return bd.DTRModel(df, SCN.stages, outcome="Y").fit(random_seed=5, **FAST)


# --------------------------------------------------------------------------- declaring dropout
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (3, "censoring= must be a right-hand-side formula"),
        ("  ", "censoring= must be"),
        ("R ~ X1", "contains '~'"),
    ],
)
def test_censoring_argument_is_checked(value, match):
    with pytest.raises(SpecificationError, match=match):
        bd.Stage("A2", censoring=value)


def test_stage_repr_shows_censoring():
    assert "censoring='X1 + X2'" in repr(bd.Stage("A2", censoring="X1 + X2"))


def test_undeclared_dropout_is_an_error_that_says_how_to_declare_it(df):
    stages = _cc_stages()
    with pytest.raises(
        DataError, match=r"Column 'Y'.*missing.*declare it: bd.Stage\('A2', \.\.\., censoring="
    ):
        bd.DTRModel(df, stages, outcome="Y")
    filled = df.assign(Y=df["Y"].fillna(0.0))
    with pytest.raises(
        DataError, match=r"Treatment column 'A2' is missing.*censoring='<covariates"
    ):
        bd.DTRModel(filled, stages, outcome="Y")


def test_censoring_on_the_first_stage_is_refused(df):
    stages = [bd.Stage("A1", censoring="X1"), SCN.stages[1]]
    with pytest.raises(SpecificationError, match="first stage.*never entered the study"):
        bd.DTRModel(df, stages, outcome="Y")


@pytest.mark.parametrize("formula", ["X1 + Y", "X1 + A2"])
def test_censoring_formula_cannot_look_ahead(df, formula):
    stages = [
        SCN.stages[0],
        bd.Stage("A2", main="X1 + A1 + X2", contrast="1 + X2", censoring=formula),
    ]
    with pytest.raises(SpecificationError, match=r"censoring=.*not known when a unit drops out"):
        bd.DTRModel(df, stages, outcome="Y")


def test_censoring_covariates_must_be_observed_for_units_at_risk(df):
    bad = df.copy()
    bad.loc[bad.index[bad["A2"].isna()][:2], "X2"] = np.nan
    with pytest.raises(
        DataError,
        match=r"Column 'X2' \(used by Stage 'A2' censoring=.*including those that dropped out",
    ):
        bd.DTRModel(bad, SCN.stages, outcome="Y")


def test_everyone_dropping_out_is_an_error(df):
    gone = df.assign(A2=np.nan, Y=np.nan)
    with pytest.raises(DataError, match="every one of the 400 units at risk dropped out"):
        bd.DTRModel(gone, SCN.stages, outcome="Y")


def test_design_keeps_every_unit_and_removes_dropouts_from_later_stages(df):
    design = build_design(df, SCN.stages, outcome="Y")
    dropped = np.flatnonzero(df["A2"].isna().to_numpy())
    assert design.n == len(df) == 400 and len(dropped) > 40
    assert design.stages[0].n_units == 400
    assert not np.isin(dropped, design.stages[1].units).any()
    assert design.stages[1].n_units == 400 - len(dropped)
    cd = design.dropout[1]
    np.testing.assert_array_equal(cd.dropped, dropped)
    assert cd.prop_terms == ["Intercept", "X1", "A1", "X2"] and design.dropout[0] is None
    assert np.isfinite(design.y).all()


def test_print_model_shows_the_dropout(df):
    text = str(bd.DTRModel(df, SCN.stages, outcome="Y"))
    n_gone = int(df["A2"].isna().sum())
    assert f"dropout:    {n_gone} of 400 units at risk; P(remain) = logit^-1(X1 + A1 + X2)" in text
    assert "post.value('optimal') (the plug-in posterior" in text


def test_no_dropout_in_the_data_means_no_weights(df):
    full = bd.scenario("dropout_smart", dropout=False).sample(200, seed=1)
    design = build_design(full, SCN.stages, outcome="Y")
    assert design.dropout is None


def test_weights_multiply_over_stages_and_are_zero_after_dropout():
    df = pd.DataFrame(
        {
            "X": [0.0, 1.0, -1.0, 0.5, 2.0, -0.5],
            "A1": [0, 1, 0, 1, 0, 1],
            "A2": [0, 1, None, 1, 0, 1],
            "A3": [1, None, None, 0, 1, 0],
            "Y": [1.0, None, None, 0.5, 1.5, 2.0],
        }
    )
    stages = [bd.Stage("A1"), bd.Stage("A2", censoring="X"), bd.Stage("A3", censoring="1")]
    design = build_design(df, stages, outcome="Y")
    np.testing.assert_array_equal(design.dropout[2].at_risk, [0, 1, 3, 4, 5])  # unit 2 left earlier
    # censoring draws: stage 2 P(remain) = expit(0 + 0 * X) = 1/2, stage 3 expit(log 3) = 3/4
    w = IPCWeights(
        design,
        [
            None,
            PropensityDraws(gamma=np.zeros((1, 1, 2))),
            PropensityDraws(gamma=np.full((1, 1, 1), np.log(3.0))),
        ],
    )
    np.testing.assert_allclose(w.value_weights(np.arange(1))[0], [8 / 3, 0, 0, 8 / 3, 8 / 3, 8 / 3])
    np.testing.assert_allclose(w.q_weights(0), [8 / 3, 0, 0, 8 / 3, 8 / 3, 8 / 3])
    np.testing.assert_allclose(w.q_weights(1), [4 / 3, 0, 4 / 3, 4 / 3, 4 / 3])  # stage 2's 5 units
    assert w.q_weights(2) is None


# --------------------------------------------------------------------------- fitting
def test_weighted_stage_fit_is_the_weighted_nig_posterior(post):
    """Stage 1's posterior is the NIG posterior of T ~ N(x'theta, sigma^2 / w) on the units that
    remained (w: the IPC weights, mean 1 there): the mean of its draws matches the average over
    draws of the exact posterior mean m_n^(s) of each draw's targets, and not the unweighted one."""
    from bayesdtr.models.priors import nig_hyper

    ind = post.induction_for(bd.Regime.static(A1=0, A2=1))
    sd = post.design.stages[0]
    w = post.design.ipcw.q_weights(0)
    keep = w > 0
    assert np.all(w[post.design.dropout[1].dropped] == 0)  # the dropouts' targets are never used
    T = ind.target_for_fit(0, np.arange(post.n_samples))  # one target vector per stage-2 draw
    hyper = nig_hyper(
        sd.X_main[keep], sd.X_contrast[keep], sd.n_arms, ind.observed_return()[sd.units][keep]
    )

    def mean_of_m_n(weights):
        X = sd.X_centered * np.sqrt(weights)[:, None]
        lam = X.T @ X + np.diag(1 / hyper.tau**2)
        rhs = (T * np.sqrt(weights)) @ X + hyper.m0 / hyper.tau**2
        return sd.uncenter(np.linalg.solve(lam, rhs.T).T).mean(axis=0)

    got = ind.fits[0].theta.mean(axis=0)
    weighted = mean_of_m_n(w / w[keep].mean())
    unweighted = mean_of_m_n(keep.astype(float))
    sd_post = ind.fits[0].theta.std(axis=0)
    # 300 draws: the draws' mean is within about 3 Monte Carlo SEs (sd / sqrt(300)) of it
    assert np.all(np.abs(got - weighted) < 4 * sd_post / np.sqrt(post.n_samples)), (got, weighted)
    assert np.max(np.abs(weighted - unweighted) / sd_post) > 0.5


def test_same_seed_same_posterior_and_values(df, post):
    again = bd.DTRModel(df, SCN.stages, outcome="Y").fit(random_seed=5, **FAST)
    np.testing.assert_array_equal(again.fits[0].theta, post.fits[0].theta)
    reg = STATIC["(1,1)"]
    for method in ("q", "ipw", "aipw"):
        np.testing.assert_array_equal(
            again.value(reg, method=method).values, post.value(reg, method=method).values
        )


def test_unsupported_combinations_are_refused(df, post, tmp_path):
    with pytest.raises(
        FitError, match="Sample splitting.*not supported yet with dropout.*crossfit=0"
    ):
        post.value("optimal", crossfit=5)
    plug_in = post.value("optimal")  # "auto" is the plug-in with dropout, and says so
    assert plug_in.attrs["crossfit"] == 0 and plug_in.attrs["estimand"].startswith("plug-in")
    np.testing.assert_array_equal(plug_in.values, post.value("optimal", crossfit=0).values)
    with pytest.raises(FitError, match="conjugate engine only.*stage 'A2' would use 'mcmc'"):
        bd.DTRModel(df, SCN.stages, outcome="Y").fit(engine="mcmc", random_seed=1, **FAST)


# --------------------------------------------------------------------------- scenario
def test_scenario_truth_matches_a_large_simulation():
    for reg in STATIC.values():
        full = SCN.sample(400_000, seed=11, regime=reg)
        assert abs(full["Y"].mean() - SCN.true_value(reg)) < 4 * full["Y"].std() / np.sqrt(
            len(full)
        )
    opt = SCN.sample(400_000, seed=12, regime="optimal")
    assert abs(opt["Y"].mean() - SCN.true_value("optimal")) < 4 * opt["Y"].std() / np.sqrt(len(opt))
    assert SCN.true_value("optimal") > max(SCN.true_value(r) for r in STATIC.values())


def test_scenario_dropout_is_missing_at_random_and_biases_complete_cases():
    obs = SCN.sample(200_000, seed=13)
    full = bd.scenario("dropout_smart", dropout=False).sample(200_000, seed=13)
    gone = obs["A2"].isna()
    assert 0.15 < gone.mean() < 0.25
    assert obs.loc[gone, "Y"].isna().all() and obs.loc[~gone, "Y"].notna().all()
    pd.testing.assert_series_equal(obs["X2"], full["X2"])  # same units, only the dropout differs
    # the units that stay have a higher intermediate covariate and outcome
    assert full.loc[~gone, "X2"].mean() - full["X2"].mean() > 0.15
    assert obs["Y"].mean() - full["Y"].mean() > 0.25


# --------------------------------------------------------------------------- known truth
def test_ipcw_values_are_unbiased_where_complete_case_is_not():
    """Four replicates at n = 2000 (about 400 dropouts each): the default value (method="q") of
    the four embedded static regimes. The complete-case bias is about +0.25 (0.16-0.33 per
    regime), its replicate SD about 0.07; the IPCW estimates' mean bias over the 16 cells has
    an SD of about 0.03 and a mean of about +0.03 (bench_dropout.py measures both over 20 replicates at n = 1000)."""
    ipcw, cc = [], []
    for rep in range(4):
        data = SCN.sample(2000, seed=100 + rep)
        fits = (
            (ipcw, bd.DTRModel(data, SCN.stages, outcome="Y")),
            (cc, bd.DTRModel(data.dropna().reset_index(drop=True), _cc_stages(), outcome="Y")),
        )
        for out, model in fits:
            p = model.fit(random_seed=rep, **FAST)
            out += [
                float(p.value(r, method="q").mean()) - SCN.true_value(r) for r in STATIC.values()
            ]
    assert np.mean(cc) > 0.15, cc
    assert abs(np.mean(ipcw)) < 0.1, ipcw
    assert np.mean(np.abs(ipcw)) < np.mean(np.abs(cc))
