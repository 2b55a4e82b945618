"""BART Q-functions (``Stage(q=bd.BART(...))``): declaration, errors, tiny fits, files.

Fits use few trees, few draws and small n (stochtree, seconds). Tests that fit skip cleanly when
the optional dependency stochtree is not installed (``pip install "bayesdtr[bart]"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.exceptions import DataError, FileFormatError, FitError, SpecificationError

TINY = {"trees": 10, "burn": 20, "imputations": 3}
FIT = {"draws": 30, "chains": 2, "random_seed": 3, "progressbar": False, "warn": False}


@pytest.fixture(scope="module")
def band():
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band")
    df = scn.sample(300, seed=11)
    post = bd.DTRModel(df, scn.bart_stages(**TINY), outcome="Y").fit(**FIT)
    return scn, df, post


# ---------------------------------------------------------------- declaration and errors


def test_stage_with_bart_reads_its_columns_through_main():
    st = bd.Stage("A1", q=bd.BART(covariates=["X1", "my col"]), propensity="1")
    assert st.main == "1 + X1 + `my col`" and st.contrast == "1"
    assert "q=BART(covariates=['X1', 'my col'], trees=50)" in repr(st)
    assert bd.BART.from_json(st.q.to_json()) == st.q


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"covariates": "X1"}, r"covariates=.*non-empty list of column names.*got 'X1'"),
        ({"covariates": []}, r"covariates=.*non-empty list"),
        ({"covariates": ["X1", "X1"]}, r"names a column twice"),
        ({"covariates": ["X1"], "trees": 0}, r"trees=.*integer >= 1; got 0"),
        ({"covariates": ["X1"], "warm_start": "yes"}, r"warm_start=.*True or False"),
    ],
)
def test_bad_bart_settings_are_refused(kwargs, match):
    with pytest.raises(SpecificationError, match=match):
        bd.BART(**kwargs)


def test_bart_with_main_or_contrast_is_refused():
    with pytest.raises(
        SpecificationError, match=r"q=bd.BART\(...\) replaces main= and contrast=.*main='X1'"
    ):
        bd.Stage("A1", main="X1", q=bd.BART(covariates=["X1"]))
    with pytest.raises(SpecificationError, match=r"q= must be a bd.BART\(...\) or None; got str"):
        bd.Stage("A1", q="bart")  # type: ignore[arg-type]


def test_missing_bart_covariate_is_named():
    scn = bd.scenario("nonlinear_band")
    df = scn.sample(50, seed=1)
    stages = [bd.Stage("A1", q=bd.BART(covariates=["X1", "X9"])), scn.bart_stages()[1]]
    with pytest.raises(
        DataError, match=r"Stage 'A1' q=bd.BART\(covariates=...\) uses column\(s\) \['X9'\]"
    ):
        bd.DTRModel(df, stages, outcome="Y")


def test_bart_refuses_other_families_groups_and_engines():
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band")
    df = scn.sample(60, seed=1)
    df["site"] = np.arange(60) % 3
    df["T"], df["ev"], df["R1"] = np.exp(df["Y"]) + 1, 1, 0.5  # a censored-time outcome
    stages = scn.bart_stages()
    stages[0] = bd.Stage("A1", q=stages[0].q, propensity=stages[0].propensity, reward="R1")
    with pytest.raises(
        FitError,
        match=r"Stage 'A2': q=bd.BART\(...\) supports family='gaussian' or 'bernoulli'.*'weibull'",
    ):
        bd.DTRModel(df, stages, outcome="T", event="ev", family="weibull").fit(**FIT)
    df["Y1"] = 1
    with pytest.raises(
        FitError, match=r"Bernoulli outcome 'Y1' takes the single value 1 on all 60 units"
    ):
        bd.DTRModel(df, scn.bart_stages(), outcome="Y1", family="bernoulli").fit(**FIT)
    with pytest.raises(FitError, match=r"has no group effects; group='site'"):
        bd.DTRModel(df, scn.bart_stages(), outcome="Y", group="site").fit(**FIT)
    with pytest.raises(FitError, match=r"only the BART engine fits; engine='conjugate'"):
        bd.DTRModel(df, scn.bart_stages(), outcome="Y").fit(engine="conjugate", **FIT)
    with pytest.raises(FitError, match=r"only the BART engine fits; robust=True"):
        bd.DTRModel(df, scn.bart_stages(), outcome="Y").fit(robust=True, **FIT)


# ---------------------------------------------------------------- fits


def test_queries_on_a_bart_posterior(band):
    scn, df, post = band
    assert [f.engine for f in post.fits] == ["bart", "bart"]
    q = post.q_values(2)
    assert q.shape == (2, 30, 300, 2) and np.isfinite(q.values).all()
    p1 = post.prob_optimal(1)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0)
    # new histories are predicted from the forests in memory; the stage's own rows agree
    new = scn.sample(40, seed=99)
    p_new = post.prob_optimal(2, data=new)
    assert p_new.shape == (40, 2)
    np.testing.assert_allclose(
        post.prob_optimal(2, data=df).to_numpy(), post.prob_optimal(2).to_numpy()
    )
    assert post.optimal_treatment(1, data=new).shape == (2, 30, 40)
    for method in ("q", "aipw"):
        v = post.value(bd.Regime.static(A1=1, A2=1), method=method)
        assert np.isfinite(v.values).all()
    tab = post.compare({"optimal": "optimal", "never": bd.Regime.static(A1=0, A2=0)}, crossfit=0)
    assert list(tab.index) == ["optimal", "never"]
    assert post.predict_outcome("optimal", new).shape == (2, 30, 40)
    assert "nonparametric (BART Q-function)" in str(post.rule())
    assert post.rule().table().shape[0] == 300
    with pytest.raises(
        FitError,
        match=r"Stage 'A1' has a nonparametric \(BART\) Q-function: it has no coefficients",
    ):
        post.coef("A1")


def test_bart_finds_the_band_the_linear_model_misses():
    """Known truth: stage-2 rule 1{|X2| < 1/2}; a linear contrast is right for about half."""
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band")
    df = scn.sample(500, seed=5)
    truth = scn.true_optimal_treatment(df, 2)

    def match(post):
        p = post.prob_optimal(2)
        return np.mean(np.asarray(p.columns)[np.argmax(p.to_numpy(), axis=1)] == truth)

    bart = match(
        bd.DTRModel(df, scn.bart_stages(trees=20, burn=50, imputations=2), outcome="Y").fit(**FIT)
    )
    linear = match(bd.DTRModel(df, scn.linear_stages(), outcome="Y").fit(**FIT))
    assert bart >= 0.85 and linear <= 0.75, (bart, linear)


@pytest.mark.parametrize("propagation", ["mean", "predictive", "augmented"])
def test_bart_propagation_modes(propagation):
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band")
    df = scn.sample(120, seed=2)
    post = bd.DTRModel(df, scn.bart_stages(**TINY), outcome="Y").fit(propagation=propagation, **FIT)
    assert post.fits[0].ancestor is not None and np.isfinite(post.q_values(1).values).all()


def test_same_seed_same_bart_posterior():
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band")
    df = scn.sample(100, seed=4)
    a, b = (bd.DTRModel(df, scn.bart_stages(**TINY), outcome="Y").fit(**FIT) for _ in range(2))
    np.testing.assert_array_equal(a.q_values(1).values, b.q_values(1).values)


def test_bart_posterior_saves_and_loads(band, tmp_path):
    scn, df, post = band
    path = tmp_path / "bart.nc"
    post.to_netcdf(path)
    back = bd.load(path)
    assert [f.engine for f in back.fits] == ["bart", "bart"]
    np.testing.assert_array_equal(back.q_values(2).values, post.q_values(2).values)
    np.testing.assert_allclose(back.prob_optimal(1).to_numpy(), post.prob_optimal(1).to_numpy())
    assert back.design.stages[0].stage.q == post.design.stages[0].stage.q
    # new histories need the caller's stages (as for every posterior read from a file); the
    # forests come back from their JSON and give the same Q as the forests in memory
    again = bd.load(path, stages=scn.bart_stages(**TINY))
    np.testing.assert_allclose(again.prob_optimal(2).to_numpy(), post.prob_optimal(2).to_numpy())
    new = scn.sample(25, seed=1)
    for k in (1, 2):
        np.testing.assert_array_equal(
            again.optimal_treatment(k, data=new).values, post.optimal_treatment(k, data=new).values
        )
        np.testing.assert_array_equal(
            again.prob_optimal(k, data=new).to_numpy(), post.prob_optimal(k, data=new).to_numpy()
        )
    # saved again from the loaded posterior: the same forests
    again.to_netcdf(tmp_path / "again.nc")
    third = bd.load(tmp_path / "again.nc", stages=scn.bart_stages(**TINY))
    np.testing.assert_array_equal(
        third.prob_optimal(2, data=new).to_numpy(), post.prob_optimal(2, data=new).to_numpy()
    )
    # without the forests, queries on new histories say why they cannot be answered
    post.to_netcdf(tmp_path / "small.nc", forests=False)
    small = bd.load(tmp_path / "small.nc", stages=scn.bart_stages(**TINY))
    np.testing.assert_array_equal(small.q_values(2).values, post.q_values(2).values)
    with pytest.raises(
        FitError, match=r"BART Q-function and this posterior was read from a file.*not the forests"
    ):
        small.prob_optimal(2, data=new)
    with pytest.raises(FileFormatError, match=r"forests=\.\.\.\) must be True or False; got 'yes'"):
        post.to_netcdf(tmp_path / "x.nc", forests="yes")  # type: ignore[arg-type]


def _tampered(path, out, change):
    import xarray as xr

    tree = xr.open_datatree(path, engine="h5netcdf").load()
    ds = tree["stage_2/forests"].to_dataset()
    tree["stage_2/forests"] = xr.DataTree(change(ds))
    tree.to_netcdf(out, engine="h5netcdf")
    return out


def test_damaged_bart_forests_are_refused(band, tmp_path):
    """Stored forests are checked: offsets and link when loading, the JSON when first parsed
    (it must reproduce the stored Q evaluations of the stage's units)."""
    scn, df, post = band
    path = tmp_path / "bart.nc"
    post.to_netcdf(path)
    stages = scn.bart_stages(**TINY)
    new = scn.sample(5, seed=2)

    def offsets(ds):
        return ds.assign(offset=ds["offset"] + 1)

    with pytest.raises(FileFormatError, match=r"/stage_2/forests offset must rise from 0"):
        bd.load(_tampered(path, tmp_path / "a.nc", offsets))

    def link(ds):
        return ds.assign_attrs(link="probit")

    with pytest.raises(FileFormatError, match=r"link 'probit' does not match.*'gaussian'"):
        bd.load(_tampered(path, tmp_path / "b.nc", link))

    def leaf(ds):  # one digit of the outcome mean changed: still JSON, other predictions
        data = ds["json"].values.copy()
        text = data.tobytes()
        at = text.index(b'"outcome_mean"')
        digit = next(i for i in range(at, len(text)) if chr(text[i]).isdigit() and text[i] != 57)
        data[digit] += 1
        return ds.assign(json=("forest_byte", data))

    back = bd.load(_tampered(path, tmp_path / "c.nc", leaf), stages=stages)
    np.testing.assert_array_equal(back.q_values(2).values, post.q_values(2).values)
    with pytest.raises(FileFormatError, match=r"do not reproduce the stored Q evaluations"):
        back.prob_optimal(2, data=new)

    def garbage(ds):
        data = ds["json"].values.copy()
        data[:5] = np.frombuffer(b"\xff\xfeab", dtype=np.uint8)[0]
        return ds.assign(json=("forest_byte", data))

    back = bd.load(_tampered(path, tmp_path / "d.nc", garbage), stages=stages)
    with pytest.raises(FileFormatError, match=r"stage 'A2' forest 0 is not UTF-8 JSON text"):
        back.prob_optimal(2, data=new)


def test_bart_with_three_arms_feasible_sets_rewards_and_applies():
    pytest.importorskip("stochtree")
    rng = np.random.default_rng(0)
    n = 150
    df = pd.DataFrame({"X1": rng.normal(size=n)})
    df["A1"] = rng.choice(["a", "b", "c"], n)
    df.loc[df["X1"] <= -1.5, "A1"] = "a"
    df["R1"] = rng.normal(size=n)
    df["resp"] = rng.random(n) < 0.4
    df["A2"] = rng.integers(0, 2, n)
    df["Y"] = df["X1"] + (df["A1"] == "b") * df["X1"] + 0.5 * df["A2"] + rng.normal(size=n)

    def feasible(d):
        ok = d["X1"] > -1.5
        return pd.DataFrame({"a": True, "b": ok, "c": ok}, index=d.index)

    stages = [
        bd.Stage("A1", q=bd.BART(covariates=["X1"], **TINY), feasible=feasible, reward="R1"),
        bd.Stage("A2", q=bd.BART(covariates=["X1", "A1", "R1"], **TINY), applies="~resp"),
    ]
    post = bd.DTRModel(df, stages, outcome="Y").fit(**FIT)
    p1 = post.prob_optimal(1)
    assert list(p1.columns) == ["a", "b", "c"]
    only_a = (df["X1"] <= -1.5).to_numpy()
    assert only_a.any() and (p1.to_numpy()[only_a, 1:] == 0).all()
    assert post.prob_optimal(2).shape == (int((~df["resp"]).sum()), 2)
    assert np.isfinite(post.value(bd.Regime.static(A1="a", A2=0)).values).all()


# ---------------------------------------------------------------- Bernoulli final outcome


@pytest.fixture(scope="module")
def band01():
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band", family="bernoulli")
    df = scn.sample(1000, seed=0)
    stages = scn.bart_stages(trees=30, imputations=3)
    post = bd.DTRModel(df, stages, outcome="Y", family="bernoulli").fit(
        **(FIT | {"draws": 40, "random_seed": 0})
    )
    return scn, df, post


def test_bernoulli_band_truth():
    """The Bernoulli variant's exact truth: Q2 is P(Y=1), Q1 its mean over X2 under the best A2."""
    scn = bd.scenario("nonlinear_band", family="bernoulli")
    df = scn.sample(200_000, seed=1)
    assert set(df["Y"].unique()) == {0, 1}
    q1 = scn.true_q(df, 1).to_numpy()
    for a1 in (0, 1):
        d = df.assign(A1=a1, A2=(np.abs(df["X2"]) < 0.5).astype(int))
        p = scn._conditional_mean(d)  # noqa: SLF001 (the scenario's own probability)
        band = (np.abs(df["X1"]) < 0.5).to_numpy()
        for part in (band, ~band):  # Q1 is the mean of the best-A2 probability over X2
            assert abs(p[part].mean() - q1[part, a1].mean()) < 0.003
    opt = scn.sample(200_000, seed=2, regime="optimal")["Y"].mean()
    assert abs(opt - scn.true_value("optimal")) < 0.005 and scn.true_value("optimal") == 0.8
    assert scn.true_value(bd.Regime.static(A1=1, A2=0)) == 0.5
    with pytest.raises(
        SpecificationError, match=r"family=.*'gaussian' or 'bernoulli'; got 'poisson'"
    ):
        bd.scenario("nonlinear_band", family="poisson")


def test_probit_bart_q_is_a_probability_that_finds_the_band(band01):
    """Known truth: Q2 = P(Y=1 | H2, A2) in [0.08, 0.96]; rules 1{|X_k| < 1/2} at both stages."""
    scn, df, post = band01
    assert [f.family for f in post.fits] == ["gaussian", "bernoulli"] and post.fits[1].sigma is None
    q2 = post.q_values(2)
    assert 0 < float(q2.min()) and float(q2.max()) < 1
    q_mean = q2.mean(("chain", "draw")).to_numpy()
    truth_q = scn.true_q(df, 2).to_numpy()
    null = np.abs(truth_q - df["Y"].mean()).mean()  # about 0.18
    assert np.abs(q_mean - truth_q).mean() < 0.75 * null
    for k in (1, 2):
        p = post.prob_optimal(k)
        rule = np.asarray(p.columns)[np.argmax(p.to_numpy(), axis=1)]
        assert np.mean(rule == scn.true_optimal_treatment(df, k)) >= 0.85, k


def test_queries_on_a_bernoulli_bart_posterior(band01, tmp_path):
    scn, df, post = band01
    always = bd.Regime.static(A1=1, A2=1)
    for method in ("q", "ipw", "aipw"):
        v = post.value(always, method=method).values
        assert np.isfinite(v).all() and (0 <= v).all() and (v <= 1).all(), method
    new = scn.sample(20, seed=5)
    assert post.prob_optimal(2, data=new).shape == (20, 2)
    pred = post.predict_outcome("optimal", new)
    assert set(np.unique(pred.values)) <= {0.0, 1.0}
    path = tmp_path / "bart01.nc"
    post.to_netcdf(path)
    back = bd.load(path)
    np.testing.assert_array_equal(back.q_values(2).values, post.q_values(2).values)
    np.testing.assert_allclose(back.prob_optimal(1).to_numpy(), post.prob_optimal(1).to_numpy())
    # the probit forests come back from the file: the same P(Y=1 | h, a) on new histories
    again = bd.load(path, stages=scn.bart_stages(trees=30, imputations=3))
    np.testing.assert_array_equal(
        again.prob_optimal(2, data=new).to_numpy(), post.prob_optimal(2, data=new).to_numpy()
    )


@pytest.mark.parametrize("propagation", ["mean", "predictive"])
def test_bernoulli_bart_propagation(propagation):
    """Predictive pseudo-outcomes of a Bernoulli last stage are 0/1 draws (or observed)."""
    pytest.importorskip("stochtree")
    scn = bd.scenario("nonlinear_band", family="bernoulli")
    df = scn.sample(150, seed=3)
    post = bd.DTRModel(df, scn.bart_stages(**TINY), outcome="Y", family="bernoulli").fit(
        propagation=propagation, **FIT
    )
    q1 = post.q_values(1).values
    assert np.isfinite(q1).all() and -0.5 < q1.mean() < 1.5
