"""Tests of bayesdtr.baselines.qlearning: OLS Q-learning and its vectorized bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.baselines import QLearningResult, qlearning
from bayesdtr.exceptions import FitError


def linear_two_stage(n: int, seed: int) -> pd.DataFrame:
    """Two stages with linear true Q-functions; stage 2 has a reward-free non-responder subset."""
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    a1 = rng.integers(0, 2, n)
    x2 = 0.5 * x1 + rng.standard_normal(n)
    r = rng.normal(0.5 + 0.2 * x1, 1.0)  # intermediate reward
    a2 = rng.integers(0, 3, n)
    y = (
        1.0
        + 0.5 * x1
        + 0.3 * a1
        + 0.8 * x2
        + (a2 == 1) * (0.5 - x2)
        + (a2 == 2) * (0.2 + 0.4 * x2)
        + rng.standard_normal(n)
    )
    return pd.DataFrame(
        {"X1": x1, "A1": a1, "R": r, "X2": x2, "A2": a2, "Y": y, "resp": (x2 > 1.0).astype(int)}
    )


STAGES = [
    bd.Stage("A1", main="X1", contrast="1 + X1"),
    bd.Stage("A2", main="X1 + A1 + X2", contrast="1 + X2"),
]


@pytest.fixture(scope="module")
def small_df() -> pd.DataFrame:
    return linear_two_stage(400, seed=3)


@pytest.fixture(scope="module")
def small_model(small_df) -> bd.DTRModel:
    return bd.DTRModel(small_df, STAGES, outcome="Y")


def lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(X, y, rcond=None)[0]


def arm_q(sd, theta: np.ndarray) -> np.ndarray:
    """Q of every arm for the stage's units: (n_k, m)."""
    n_k = sd.n_units
    return np.column_stack(
        [
            sd.full_design(sd.X_main, sd.X_contrast, np.full(n_k, j)) @ theta
            for j in range(sd.n_arms)
        ]
    )


# --------------------------------------------------------------------------- point estimates


def test_estimates_match_lstsq_backward(small_model, small_df):
    res = qlearning(small_model)
    assert isinstance(res, QLearningResult)
    s1, s2 = small_model.design.stages
    y = small_df["Y"].to_numpy()
    th2 = lstsq(s2.X, y)
    np.testing.assert_allclose(res.coef("A2").to_numpy(), th2, rtol=1e-10, atol=1e-12)
    pseudo = arm_q(s2, th2).max(axis=1)
    th1 = lstsq(s1.X, pseudo)
    np.testing.assert_allclose(res.coef(1).to_numpy(), th1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.stages[0].target, pseudo)
    np.testing.assert_allclose(res.value, np.mean(arm_q(s1, th1).max(axis=1)))
    assert list(res.coef("A2").index) == [
        "beta[Intercept]",
        "beta[X1]",
        "beta[A1]",
        "beta[X2]",
        "psi[1, Intercept]",
        "psi[1, X2]",
        "psi[2, Intercept]",
        "psi[2, X2]",
    ]
    # the true stage-2 blips are recovered roughly
    assert res.coef("A2")["psi[1, X2]"] == pytest.approx(-1.0, abs=0.3)


def test_ols_standard_errors_classical(small_model, small_df):
    res = qlearning(small_model)
    s2 = small_model.design.stages[1]
    X, y = s2.X, small_df["Y"].to_numpy()
    th = lstsq(X, y)
    n, p = X.shape
    sigma2 = np.sum((y - X @ th) ** 2) / (n - p)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    np.testing.assert_allclose(res.se(2).to_numpy(), se, rtol=1e-8)
    assert res.stage(2).df_resid == n - p
    assert res.stage("A2").sigma == pytest.approx(np.sqrt(sigma2))


def test_rewards_subsets_and_feasible_sets():
    """Units skipping stage 2 carry their target; rewards are added; max is over feasible arms."""
    df = linear_two_stage(600, seed=5)

    def feasible(d: pd.DataFrame) -> pd.DataFrame:  # arm 2 only for X1 > 0
        return pd.DataFrame({0: True, 1: True, 2: d["X1"].to_numpy() > 0}, index=d.index)

    df.loc[df["X1"] <= 0, "A2"] = df.loc[df["X1"] <= 0, "A2"].replace(2, 1)
    df.loc[df["resp"] == 1, "A2"] = np.nan
    model = bd.DTRModel(
        df,
        [
            bd.Stage("A1", main="X1", contrast="1 + X1", reward="R"),
            bd.Stage(
                "A2", main="X1 + A1 + X2", contrast="1 + X2", applies="resp == 0", feasible=feasible
            ),
        ],
        outcome="Y",
    )
    res = qlearning(model)
    s1, s2 = model.design.stages
    y = df["Y"].to_numpy()
    th2 = lstsq(s2.X, y[s2.units])
    np.testing.assert_allclose(res.coef(2).to_numpy(), th2, rtol=1e-10)
    q2 = np.where(s2.feasible, arm_q(s2, th2), -np.inf)
    V2 = y.copy()
    V2[s2.units] = q2.max(axis=1)
    T1 = df["R"].to_numpy() + V2
    np.testing.assert_allclose(res.pseudo_outcomes[1], V2)
    th1 = lstsq(s1.X, T1)
    np.testing.assert_allclose(res.coef(1).to_numpy(), th1, rtol=1e-10)
    assert res.value == pytest.approx(np.mean(arm_q(s1, th1).max(axis=1)))
    # the estimated rule never picks an infeasible arm
    opt = res.optimal_treatment(2)
    assert not np.any((opt.to_numpy() == 2) & (df.loc[opt.index, "X1"].to_numpy() <= 0))
    assert res.q_values(2).shape == (s2.n_units, 3)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_equals_explicit_resampling(small_model, small_df):
    """Frequency-weighted replicates equal Q-learning on the resampled data frames."""
    B, seed = 3, 17
    res = qlearning(small_model, bootstrap=B, seed=seed)
    idx = np.random.default_rng(seed).integers(0, len(small_df), size=(B, len(small_df)))
    for b in range(B):
        boot_df = small_df.iloc[idx[b]].reset_index(drop=True)
        ref = qlearning(bd.DTRModel(boot_df, STAGES, outcome="Y"))
        for k in (1, 2):
            np.testing.assert_allclose(
                res.stage(k).boot_coef.iloc[b].to_numpy(),
                ref.coef(k).to_numpy(),
                rtol=1e-7,
                atol=1e-9,
            )
        assert res.boot_value[b] == pytest.approx(ref.value, rel=1e-9)


def test_bootstrap_se_close_to_ols_se_last_stage():
    df = linear_two_stage(3000, seed=11)
    res = qlearning(bd.DTRModel(df, STAGES, outcome="Y"), bootstrap=1000, seed=2)
    ratio = res.boot_se("A2") / res.se("A2")
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    tab = res.summary()
    assert {"estimate", "se", "boot_se", "boot_0.025", "boot_0.975"} <= set(tab.columns)
    assert tab.loc["value", "boot_se"] > 0
    assert res.n_singular == 0


def test_bootstrap_seed_reproducible(small_model):
    a = qlearning(small_model, bootstrap=50, seed=4)
    b = qlearning(small_model, bootstrap=50, seed=4)
    c = qlearning(small_model, bootstrap=50, seed=5)
    np.testing.assert_array_equal(a.boot_value, b.boot_value)
    pd.testing.assert_frame_equal(a.stage(1).boot_coef, b.stage(1).boot_coef)
    assert not np.array_equal(a.boot_value, c.boot_value)
    assert a.boot_value.shape == (50,)
    assert a.stage(2).boot_coef.shape == (50, 8)


def test_bootstrap_blocks_do_not_change_replicates(small_model, monkeypatch):
    import sys

    ql = sys.modules["bayesdtr.baselines.qlearning"]  # the attribute is shadowed by the function
    whole = qlearning(small_model, bootstrap=30, seed=9)
    monkeypatch.setattr(ql, "_BLOCK_ELEMENTS", 400 * 7)  # blocks of 7 replicates
    blocked = qlearning(small_model, bootstrap=30, seed=9)
    np.testing.assert_allclose(whole.boot_value, blocked.boot_value, rtol=1e-12)


# --------------------------------------------------------------------------- errors


def test_errors(small_model, small_df):
    with pytest.raises(FitError, match="bootstrap= must be a non-negative integer"):
        qlearning(small_model, bootstrap=-1)
    with pytest.raises(FitError, match="bootstrap= must be a non-negative integer"):
        qlearning(small_model, bootstrap=True)
    with pytest.raises(FitError, match="seed= must be a non-negative integer"):
        qlearning(small_model, bootstrap=2, seed="a")
    with pytest.raises(FitError, match="model must be a bd.DTRModel; got DataFrame"):
        qlearning(small_df)
    with pytest.raises(FitError, match="boot_se\\(\\) needs a bootstrap"):
        qlearning(small_model).boot_se(1)
    with pytest.raises(FitError, match="stage=3 is not a stage"):
        qlearning(small_model).coef(3)


def test_groups_not_supported():
    df = bd.scenario("multisite_smart").sample(300, seed=1)
    model = bd.DTRModel(df, bd.scenario("multisite_smart").stages, outcome="Y", group="site")
    with pytest.raises(FitError, match="groups .* are not supported by the OLS"):
        qlearning(model)


def test_bernoulli_not_supported(small_df):
    df = small_df.assign(Yb=(small_df["Y"] > 1).astype(int))
    model = bd.DTRModel(df, STAGES, outcome="Yb", family="bernoulli")
    with pytest.raises(
        FitError, match="supports only Gaussian outcomes; this model has family='bernoulli'"
    ):
        qlearning(model)


def test_crossfit_aipw_names_a_rank_deficient_training_chunk():
    """Per-site contrasts on 300 units: an early online chunk lacks a site-by-arm cell. That is a
    FitError naming the stage and the column, not numpy's LinAlgError."""
    from bayesdtr.baselines import crossfit_aipw

    half = bd.KnownPropensity({-1: 0.5, 1: 0.5})
    stages = [
        bd.Stage("A1", main="X0 + X1 + C(site)", contrast="1 + X1 + C(site)", propensity=half),
        bd.Stage("A2", main="X0 + X1 + A1:X1 + X2 + C(site):A1 + C(site)", contrast="1 + X2 + C(site)",
                 propensity=half, applies="R == 0"),
    ]
    model = bd.DTRModel(bd.scenario("multisite_smart").sample(300, seed=1), stages, outcome="Y")
    with pytest.raises(bd.FitError, match=r"OLS Q-learning cannot fit stage 'A2'.*rank-deficient.*C\(site\)"):
        crossfit_aipw(model, seed=0)


def test_bootstrap_with_mostly_singular_resamples_is_refused():
    """Per-site fixed contrasts on 300 units: many resamples miss a site x arm cell. np.linalg.solve
    does not always raise on such a numerically singular system (it returned values of 1e30);
    the eigenvalue check flags them and the bootstrap refuses to report intervals."""
    scn = bd.scenario("multisite_smart")
    df = scn.sample(300, seed=1)
    half = bd.KnownPropensity({-1: 0.5, 1: 0.5})
    stages = [
        bd.Stage("A1", main="X0 + X1 + C(site)", contrast="1 + X1 + C(site)", propensity=half),
        bd.Stage("A2", main="X0 + X1 + A1:X1 + X2 + C(site):A1 + C(site)", contrast="1 + X2 + C(site)",
                 propensity=half, applies="R == 0"),
    ]
    model = bd.DTRModel(df, stages, outcome="Y")
    with pytest.raises(FitError, match=r"bootstrap replicates \(resample size m=300\) had a singular design at stage 'A2'.*fewer columns"):
        qlearning(model, bootstrap=100, seed=1)
    # the common-contrast specification has no singular resamples
    res = qlearning(bd.DTRModel(df, [bd.Stage("A1", main="X0 + X1 + C(site)", contrast="1 + X1", propensity=half),
                                     bd.Stage("A2", main="X0 + X1 + A1:X1 + X2 + C(site)", contrast="1 + X2",
                                              propensity=half, applies="R == 0")], outcome="Y"),
                    bootstrap=100, seed=1)
    assert res.n_singular == 0
    assert np.all(np.abs(res.boot_value) < 100)
