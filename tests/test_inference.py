"""Backward induction against closed forms (OLS), between engines, and against known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.exceptions import FitError


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ b
    s2 = r @ r / (len(y) - X.shape[1])
    return b, np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))


def _ols_qlearning(design):
    """Textbook OLS Q-learning for a two-stage design without subsets or rewards."""
    s1, s2 = design.stages
    b2, se2 = _ols(s2.X, design.y)
    q2 = np.stack([s2.full_design(s2.X_main, s2.X_contrast, np.full(design.n, a)) @ b2 for a in range(s2.n_arms)], 1)
    b1, se1 = _ols(s1.X, q2.max(axis=1))
    return (b1, se1), (b2, se2)


@pytest.fixture(scope="module")
def bmi_large(bmi_model):
    # 100,000 exact draws: Monte Carlo error of a posterior mean is ~0.3% of its SD; "mean"
    # propagation is what OLS Q-learning does (its max of the fitted Q is the pseudo-outcome)
    return bmi_model.fit(draws=25_000, chains=4, random_seed=5, progressbar=False, propagation="mean")


def test_bmi_stage2_equals_ols(bmi_model, bmi_large):
    (_, _), (b2, se2) = _ols_qlearning(bmi_model.design)
    th = bmi_large.fits[1].theta
    assert np.all(np.abs(th.mean(axis=0) - b2) <= 0.02 * se2)
    assert np.all(np.abs(th.std(axis=0) / se2 - 1) <= 0.05)


def test_bmi_stage1_agrees_with_ols_qlearning(bmi_model, bmi_large):
    (b1, se1), _ = _ols_qlearning(bmi_model.design)
    th = bmi_large.fits[0].theta
    z = (th.mean(axis=0) - b1) / se1
    assert np.all(np.abs(z) <= 0.5), z
    # the cut posterior carries stage-2 uncertainty, so stage 1 is wider than OLS says
    assert np.all(th.std(axis=0) >= 0.95 * se1)


def test_q_values_are_the_linear_predictor(bmi_model, bmi_conjugate):
    sd = bmi_model.design.stage("A2")
    q = bmi_conjugate.q_values("A2")
    assert q.dims == ("chain", "draw", "obs", "arm")
    assert list(q.arm.values) == ["CD", "MR"]
    th = bmi_conjugate.fits[1].theta[7]
    for j in range(2):
        X = sd.full_design(sd.X_main, sd.X_contrast, np.full(sd.n_units, j))
        np.testing.assert_allclose(q.values.reshape(-1, sd.n_units, 2)[7, :, j], X @ th)


def test_new_histories(bmi_model, bmi_conjugate):
    new = bmi_model.data.iloc[:5].copy()
    new.index = [f"p{i}" for i in range(5)]
    q_new = bmi_conjugate.q_values(2, data=new)
    q_old = bmi_conjugate.q_values(2).isel(obs=slice(0, 5))
    np.testing.assert_allclose(q_new.values, q_old.values)
    po = bmi_conjugate.prob_optimal(1, data=new)
    assert list(po.index) == list(new.index)
    np.testing.assert_allclose(po.sum(axis=1), 1.0)
    ot = bmi_conjugate.optimal_treatment(1, data=new)
    assert set(np.unique(ot.values)) <= {"CD", "MR"}
    with pytest.raises(bd.DataError, match="missing values|month4BMI"):
        bmi_conjugate.q_values(2, data=new.drop(columns="month4BMI"))


def test_same_seed_same_posterior(bmi_model):
    a = bmi_model.fit(draws=200, chains=2, random_seed=3, progressbar=False)
    b = bmi_model.fit(draws=200, chains=2, random_seed=3, progressbar=False)
    c = bmi_model.fit(draws=200, chains=2, random_seed=4, progressbar=False)
    for k in range(2):
        np.testing.assert_array_equal(a.fits[k].theta, b.fits[k].theta)
    np.testing.assert_array_equal(a.value().values, b.value().values)
    assert not np.array_equal(a.fits[0].theta, c.fits[0].theta)


def test_value_is_bayesian_bootstrap_average(bmi_conjugate):
    v = bmi_conjugate.value("optimal", crossfit=0)  # the plug-in posterior: a Bayesian-bootstrap average
    assert v.dims == ("chain", "draw")
    q1 = bmi_conjugate.q_values(1).max("arm")
    plug_in = q1.mean("obs")
    # same centre as the plain average over units, wider because the covariate mix is uncertain
    assert abs(float(v.mean() - plug_in.mean())) < 0.05 * float(v.std())
    assert float(v.std()) > float(plug_in.std())


def test_netcdf_round_trip(tmp_path, bmi_conjugate):
    path = tmp_path / "post.nc"
    bmi_conjugate.to_netcdf(str(path))
    back = bd.load(str(path))
    for k in range(2):
        np.testing.assert_array_equal(back.fits[k].theta, bmi_conjugate.fits[k].theta)
        np.testing.assert_array_equal(back.fits[k].sigma, bmi_conjugate.fits[k].sigma)
    np.testing.assert_array_equal(back.value().values, bmi_conjugate.value().values)
    pd.testing.assert_frame_equal(back.prob_optimal(1), bmi_conjugate.prob_optimal(1))
    np.testing.assert_array_equal(back.q_values(2).values, bmi_conjugate.q_values(2).values)
    assert back.tree.attrs["data_hash"] == bmi_conjugate.tree.attrs["data_hash"]
    assert set(back.tree.children) >= {"stage_1", "stage_2", "policy", "value", "data"}


def test_summary_and_diagnostics(bmi_conjugate):
    s = bmi_conjugate.summary()
    assert {"mean", "sd", "ess_bulk", "r_hat"} <= set(s.columns)
    assert "A2::psi[MR, month4BMI]" in s.index
    d = bmi_conjugate.diagnostics()
    assert list(d["engine"]) == ["conjugate", "conjugate"]


def test_diagnostics_flag_chains_that_disagree(bmi_conjugate):
    """R-hat comes from the stored chains: shift chain 2 of stage 2's draws by 3 posterior SDs
    (chains that have not mixed) and the diagnostics must flag that stage, and only it.

    (R-hat < 1.01 on independent exact draws holds whatever the diagnostics compute; this fails
    if R-hat were computed on pooled draws, on one chain, or on the wrong stage.)"""
    import dataclasses

    parts = bmi_conjugate.parts()
    fit = parts.fits[1]
    theta = fit.theta.reshape(fit.chains, fit.draws, -1).copy()
    theta[1] += 3 * theta.std(axis=(0, 1))
    # labelled MCMC: the warning checks sampled stages only (closed-form draws cannot fail to mix)
    broken = dataclasses.replace(fit, theta=theta.reshape(fit.n, -1), engine="mcmc")
    post = bd.DTRPosterior.from_parts(dataclasses.replace(parts, fits=[parts.fits[0], broken], tree=None))
    d = post.diagnostics().set_index("stage")["max_r_hat"]
    assert d["A2"] > 1.2  # rank-normalized split R-hat of two chains 3 SDs apart: ~1.5
    assert d["A1"] < 1.01
    msg = post.diagnostics_message()
    assert "stage 'A2' (outcome): R-hat up to" in msg and "'A1'" not in msg, msg


def test_engine_request_errors(bmi_model):
    with pytest.raises(FitError, match="robust=True needs a propensity model at every stage"):
        bmi_model.fit(robust=True, random_seed=1)
    with pytest.raises(FitError, match=r"method='bogus' is not one of"):
        bmi_model.fit(draws=50, chains=1, random_seed=1, progressbar=False).value(method="bogus")


def test_applies_subset_carries_outcome_and_rewards():
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"x": rng.normal(size=n), "A1": rng.integers(0, 2, n), "R": rng.integers(0, 2, n)})
    df["r1"] = rng.normal(size=n)
    df["A2"] = np.where(df.R == 0, rng.integers(0, 2, n), np.nan)
    df["y"] = df.x + df.A1 * 0.5 + np.where(df.R == 0, df.A2.fillna(0) * (1 - df.x), 0) + rng.normal(size=n)
    model = bd.DTRModel(
        df,
        [bd.Stage("A1", main="x", contrast="1 + x", reward="r1"), bd.Stage("A2", main="x + A1", contrast="1 + x", applies="R == 0")],
        outcome="y",
    )
    post = model.fit(draws=50, chains=2, random_seed=2, progressbar=False, propagation="mean")
    T1 = post.induction.target_for_fit(0, np.arange(5))
    resp = np.flatnonzero(df.R.to_numpy() == 1)
    # responders skip stage 2: their stage-1 target is reward + observed outcome, in every draw
    np.testing.assert_allclose(T1[:, resp], np.broadcast_to((df.r1 + df.y).to_numpy()[resp], (5, len(resp))))
    non = np.flatnonzero(df.R.to_numpy() == 0)
    q2 = post.q_values(2).values.reshape(-1, len(non), 2)[:5].max(axis=2)
    np.testing.assert_allclose(T1[:, non], df.r1.to_numpy()[non] + q2)


@pytest.mark.parametrize("propagation", ["modal", "predictive", "augmented"])
def test_other_propagations_recover_truth(propagation):
    scn = bd.scenario("two_stage_cont")
    df = scn.sample(2000, seed=21)
    stages = [bd.Stage(s.treatment, main=s.main, contrast=s.contrast) for s in scn.stages]
    post = bd.DTRModel(df, stages, outcome="Y").fit(random_seed=21, propagation=propagation, progressbar=False)
    for k in (1, 2):
        psi = post.coef(k)["psi"].sel(arm=1).values.reshape(-1, 2)
        lo, hi = np.percentile(psi, [0.5, 99.5], axis=0)
        assert np.all((lo < 1) & (1 < hi)), (k, lo, hi)
    v = post.value().values
    assert np.percentile(v, 0.5) < scn.true_value("optimal") < np.percentile(v, 99.5)


def test_k_stage_recovers_rule_and_value():
    scn = bd.scenario("k_stage", K=3)
    df = scn.sample(1500, seed=7)
    post = bd.DTRModel(df, scn.stages, outcome=scn.outcome).fit(random_seed=7, progressbar=False)
    for k, t in enumerate(scn.treatments, start=1):
        sd = post.design.stage(t)
        po = post.prob_optimal(k)
        mode = np.asarray(sd.arms)[po.to_numpy().argmax(axis=1)]
        truth = scn.true_optimal_treatment(df.iloc[sd.units], k)
        assert np.mean(mode == truth) >= 0.9
    lo, hi = np.percentile(post.value().values, [2.5, 97.5])
    assert lo <= scn.true_value("optimal") == 3 <= hi


def test_nonregular_scenario_is_not_overconfident():
    """Chakraborty et al. scenario 1: no treatment effect anywhere.

    A calibrated posterior puts P(A1 = 1 optimal) in the extreme 5% tails in about 5% of
    replicates; an overconfident one in most of them.
    """
    scn = bd.scenario("chakraborty01_1")
    stages = [bd.Stage(s.treatment, main=s.main, contrast=s.contrast) for s in scn.stages]
    extreme = []
    for rep in range(50):
        df = scn.sample(300, seed=1000 + rep)
        post = bd.DTRModel(df, stages, outcome=scn.outcome).fit(draws=500, chains=2, random_seed=rep, progressbar=False)
        p = post.prob_optimal(1)[1].mean()
        extreme.append(p > 0.975 or p < 0.025)
    assert np.mean(extreme) <= 0.10


@pytest.mark.integration
def test_mcmc_engine_agrees_with_conjugate(bmi_model, bmi_large):
    # 500 imputations: the Monte Carlo error of a stage-1 mean, driven by the number of
    # pseudo-outcome vectors, is then ~0.04 posterior SD (measured: 0.06-0.07 at M=500, ~0.1 at M=100)
    post = bmi_model.fit(random_seed=2, engine="mcmc", imputations=500, progressbar=False, warn=False, propagation="mean")
    assert list(post.diagnostics()["engine"]) == ["mcmc", "mcmc"]
    for k in range(2):
        conj, mc = bmi_large.fits[k].theta, post.fits[k].theta
        z = np.abs(mc.mean(axis=0) - conj.mean(axis=0)) / conj.std(axis=0)
        assert np.all(z <= 0.1), (k, z)
    assert post.diagnostics()["max_r_hat"].max() < 1.02


@pytest.mark.integration
def test_robust_contrasts_survive_a_wrong_main_model():
    """twoStageCont with linear (wrong) main effects and correct propensity models.

    dWOLS-weighted contrasts cover psi = (1, 1); unweighted Q-learning misses the stage-2
    interaction (confounding through exp(X2)).
    """
    scn = bd.scenario("two_stage_cont")
    stages = [
        bd.Stage("A1", main="X1", contrast="1 + X1", propensity="X1"),
        bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2", propensity="X2"),
    ]
    robust_cover, naive_miss = [], []
    for seed in (101, 102, 103):
        df = scn.sample(1000, seed=seed)
        model = bd.DTRModel(df, stages, outcome="Y")
        rob = model.fit(random_seed=seed, robust=True, propagation="augmented", draws=500, tune=500, progressbar=False)
        naive = model.fit(random_seed=seed, draws=500, tune=500, progressbar=False)
        for k in (1, 2):
            lo, hi = np.percentile(rob.coef(k)["psi"].sel(arm=1).values.reshape(-1, 2), [2.5, 97.5], axis=0)
            robust_cover.extend((lo <= 1) & (1 <= hi))
        lo, hi = np.percentile(naive.coef(2)["psi"].sel(arm=1, contrast_term="X2").values, [2.5, 97.5])
        naive_miss.append(not lo <= 1 <= hi)
    assert np.mean(robust_cover) >= 10 / 12
    assert all(naive_miss)


@pytest.mark.integration
def test_bernoulli_final_outcome():
    """Binary final outcome: logistic last stage by NUTS, Gaussian pseudo-outcome stage before."""
    rng = np.random.default_rng(8)
    n = 800
    df = pd.DataFrame({"x1": rng.normal(size=n), "A1": rng.integers(0, 2, n)})
    df["x2"] = 0.5 * df.x1 + rng.normal(size=n)
    df["A2"] = rng.integers(0, 2, n)
    logit = -0.3 + 0.5 * df.x2 + df.A2 * (1.5 * df.x2) + 0.4 * df.A1
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = bd.DTRModel(
        df, [bd.Stage("A1", main="x1", contrast="1 + x1"), bd.Stage("A2", main="x1 + x2 + A1", contrast="1 + x2")],
        outcome="y", family="bernoulli",
    )
    post = model.fit(draws=300, tune=300, chains=2, random_seed=8, progressbar=False, warn=False)
    assert [f.engine for f in post.fits] == ["conjugate", "mcmc"]
    q = post.q_values(2)
    assert float(q.min()) >= 0 and float(q.max()) <= 1
    psi = post.coef(2)["psi"].sel(arm=1, contrast_term="x2").values
    lo, hi = np.percentile(psi, [1, 99])
    assert lo < 1.5 < hi
    po = post.prob_optimal(2)
    strong = df.x2.abs().to_numpy() > 1.5
    truth = (df.x2.to_numpy() > 0).astype(int)
    assert np.mean(po.to_numpy().argmax(axis=1)[strong] == truth[strong]) > 0.95
    # the plug-in value of the optimal regime is the bootstrap-weighted mean over units of
    # max_a Q_1 on the probability scale (by hand, from the Q draws and the weights) ...
    S = post.n_samples
    q1max = post.q_values(1).values.reshape(S, n, 2).max(axis=2)
    w = np.concatenate([post.bootstrap.weights(idx) for idx in post.bootstrap.chunks()]).astype(float)
    v = post.value(crossfit=0, method="q").values.ravel()
    np.testing.assert_allclose(v, np.sum(w * q1max, axis=1) / np.sum(w, axis=1), rtol=1e-6)
    # ... and lies near the exact truth: d* = (A1 = 1, A2 = 1{x2 > 0}), x2 ~ N(0, 1.25), so
    # V* = E[expit(0.1 + 0.5 x2 + 1.5 max(x2, 0))] = 0.6128 (numerical integral). Averaged on the
    # logit scale it would be 0.77; A1 = 1 with always A2 = 1 gives 0.51, always A2 = 0 0.52
    # (3 posterior SDs ~ 0.075 at n = 800).
    x = np.linspace(-12, 12, 240_001) * np.sqrt(1.25)
    dens = np.exp(-(x**2) / 2.5) / np.sqrt(2 * np.pi * 1.25)
    vstar = np.trapezoid(dens / (1 + np.exp(-(0.1 + 0.5 * x + 1.5 * np.maximum(x, 0)))), x)
    assert abs(vstar - 0.6128) < 5e-4
    assert abs(v.mean() - vstar) < 3 * v.std(), (v.mean(), v.std(), vstar)
    pred = post.predict_outcome("optimal")
    assert set(np.unique(pred.values)) <= {0.0, 1.0}


@pytest.mark.integration
def test_pymc_sampler_matches_nutpie(bmi_model):
    one = [bmi_model.stages[1]]
    m = bd.DTRModel(bmi_model.data, one, outcome="y")
    a = m.fit(draws=500, tune=500, chains=2, random_seed=1, engine="mcmc", progressbar=False, warn=False)
    b = m.fit(draws=500, tune=500, chains=2, random_seed=1, engine="mcmc", sampler="pymc", progressbar=False, warn=False)
    sd = a.fits[0].theta.std(axis=0)
    assert np.all(np.abs(a.fits[0].theta.mean(axis=0) - b.fits[0].theta.mean(axis=0)) < 0.2 * sd)
    # the same seed reproduces the NUTS draws exactly
    c = m.fit(draws=500, tune=500, chains=2, random_seed=1, engine="mcmc", progressbar=False, warn=False)
    np.testing.assert_array_equal(a.fits[0].theta, c.fits[0].theta)


def test_numpyro_missing_is_a_clear_error(bmi_model, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "numpyro":
            raise ImportError("no numpyro")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(FitError, match=r"sampler='numpyro' needs the optional numpyro/JAX extra"):
        bmi_model.fit(engine="mcmc", sampler="numpyro", draws=10, tune=10, chains=1, random_seed=1, progressbar=False)


def test_netcdf_keeps_column_types(tmp_path):
    rng = np.random.default_rng(2)
    n = 200
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "A1": pd.Categorical(rng.choice([3, 1], n), categories=[3, 1]),
            "site": pd.Categorical(rng.choice([7, 8, 9], n)),
            "k": pd.Series(rng.integers(0, 5, n), dtype=object),
            "s": rng.choice(["a", "b"], n),
        }
    )
    df["y"] = df.x + (df.A1 == 1) * 0.5 + rng.normal(size=n)
    post = bd.DTRModel(df, [bd.Stage("A1", main="x", contrast="1 + x")], outcome="y").fit(draws=50, chains=1, random_seed=1, progressbar=False)
    post.to_netcdf(str(tmp_path / "t.nc"))
    back = bd.load(str(tmp_path / "t.nc"))
    pd.testing.assert_frame_equal(back.design.data, df, check_dtype=False, check_categorical=True)
    assert list(back.prob_optimal(1).columns) == [3, 1]
    # names that are not valid netCDF variable names are stored as attributes, so they survive
    odd = df.rename(columns={"s": "a/b", "k": "obs"}).assign(**{"": 1.0})
    post_odd = bd.DTRModel(odd, [bd.Stage("A1", main="x", contrast="1 + x")], outcome="y").fit(draws=20, chains=1, random_seed=1, progressbar=False)
    post_odd.to_netcdf(str(tmp_path / "odd.nc"))
    pd.testing.assert_frame_equal(bd.load(str(tmp_path / "odd.nc")).design.data, odd, check_dtype=False)


@pytest.mark.integration
def test_user_sigma_prior_with_imputations():
    """A user sigma prior leaves the default NIG data unused; the imputation refits swap data
    into the compiled model and must not ask for it (was: KeyError 'sigma2_ab' from nutpie)."""
    from pymc_extras.prior import Prior

    scn = bd.scenario("chakraborty_ex3")
    model = bd.DTRModel(scn.sample(200, seed=1), scn.stages, outcome="Y", priors={"sigma": Prior("HalfNormal", sigma=2.0)})
    post = model.fit(draws=50, tune=50, chains=2, imputations=2, random_seed=1, progressbar=False, warn=False)
    assert list(post.diagnostics()["engine"]) == ["mcmc", "mcmc"]
    assert np.all(np.isfinite(post.fits[0].theta))
