"""Calibration at the decision boundary (issue 8), on the published non-regular designs.

The full study (all nine published examples and three more scenarios, n = 300 and 1,000, 200
replicates, against the percentile and m-out-of-n bootstraps) is
``benchmarks/calibration/run.py``; here a small version runs in CI: 40 replicates of examples
1 (no treatment effects) and 3 (the qLearn example), n = 300. The bounds are chosen so that a
calibrated method passes with high probability and the plain posterior of the mean of the
max of Q (``crossfit=0``, measured coverage 0.26 and 0.54) fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.baselines import crossfit_aipw, m_out_of_n, nonregularity, qlearning

REPS = 40
N = 300


@pytest.fixture(scope="module")
def replicates():
    """Per replicate of examples 1 and 3: psi intervals and value intervals, default vs plug-in."""
    rows = []
    for name in ("chakraborty_ex1", "chakraborty_ex3"):
        scn = bd.scenario(name)
        vstar = scn.true_value("optimal")
        psi = scn.truth["psi"]["A1"]
        for rep in range(REPS):
            df = scn.sample(N, seed=31_000 + rep)
            post = bd.DTRModel(df, scn.stages, outcome="Y").fit(
                draws=500, chains=2, random_seed=rep, progressbar=False, warn=False
            )
            c = post.coef(1)["psi"].isel(arm=1).values.reshape(-1, 2)
            lo, hi = np.percentile(c, [2.5, 97.5], axis=0)
            row = {"scenario": name, "psi_covered": list((lo <= psi) & (psi <= hi))}
            for label, kw in (("default", {}), ("plugin", {"crossfit": 0})):
                v = post.value("optimal", **kw).values.ravel()
                a, b = np.percentile(v, [2.5, 97.5])
                row[f"{label}_covered"] = a <= vstar <= b
                row[f"{label}_mean"] = v.mean()
                row[f"{label}_sd"] = v.std()
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.integration
def test_optimal_value_is_calibrated_where_the_plug_in_is_not(replicates):
    default = replicates["default_covered"].mean()
    plugin = replicates["plugin_covered"].mean()
    # 80 intervals (Binomial(80, 0.93), scipy.stats.binom): a calibrated method falls below 0.80
    # with probability 3e-5 and covers all 80 (above 0.99) with probability 0.003; an over-wide
    # interval covering every replicate fails
    assert 0.80 <= default <= 0.99, default
    # the plug-in posterior covers about 0.40 here: 0.60 is 3.6 standard errors above that
    assert plugin <= 0.60, plugin
    # per scenario, 40 intervals: below 0.75 with probability 7e-5 at 0.93 (Binomial(40, 0.93));
    # 40 cannot separate 0.93 from 1.0 (0.93**40 = 0.055), so the upper bound is the pooled one
    for name, grp in replicates.groupby("scenario"):
        assert grp["default_covered"].mean() >= 0.75, (name, grp["default_covered"].mean())


@pytest.mark.integration
def test_stage1_contrasts_cover_near_the_boundary(replicates):
    hits = np.array(replicates["psi_covered"].tolist())  # (replicates, [psi10, psi11])
    # 160 nominal-95% intervals (Binomial(160, 0.95), scipy.stats.binom): a calibrated method
    # falls below 0.90 with probability 0.003 and above 0.99 (159 or 160 covered) with 0.003; an
    # over-wide interval (0.995) fails with probability 0.81, a narrow one (0.85) with 0.96.
    # This replaces a one-sided 200-replicate test (>= 0.92) whose own docstring recorded 0.99
    # for one contrast: over-coverage passed unnoticed. The full-size study is
    # benchmarks/calibration/run.py.
    assert 0.90 <= hits.mean() <= 0.99, hits.mean(axis=0)
    ex3 = np.array(replicates.loc[replicates.scenario == "chakraborty_ex3", "psi_covered"].tolist())
    # psi10 of example 3, where "mean" propagation is biased: 40 intervals, below 0.85 with
    # probability 0.003 at 0.95 (Binomial(40, 0.95)); too few to bound it above (0.95**40 = 0.13)
    assert ex3[:, 0].mean() >= 0.85, ex3[:, 0].mean()


@pytest.mark.integration
def test_null_example_posterior_sd_matches_the_spread_of_estimates(replicates):
    """Example 1 (every regime has value 0): the posterior SD of the value estimand is the SD of
    its posterior means over replicates (polle's check of its online estimator). With 40
    replicates the SD of the means is known to about 11%, hence the wide band here; the full
    benchmark measured 0.155 vs 0.157 (80 replicates)."""
    ex1 = replicates[replicates.scenario == "chakraborty_ex1"]
    ratio = ex1["default_sd"].mean() / ex1["default_mean"].std(ddof=1)
    assert 0.75 <= ratio <= 1.35, ratio
    assert abs(ex1["default_mean"].mean()) < 3 * ex1["default_mean"].std(ddof=1) / np.sqrt(len(ex1))


# --------------------------------------------------------------------------- machinery


@pytest.fixture(scope="module")
def ex3_post():
    scn = bd.scenario("chakraborty_ex3")
    df = scn.sample(300, seed=5)
    return bd.DTRModel(df, scn.stages, outcome="Y").fit(draws=200, chains=2, random_seed=5, progressbar=False)


def test_value_estimands_and_arguments(ex3_post):
    v = ex3_post.value("optimal")
    assert v.attrs["method"] == "aipw" and v.attrs["split"] == "online" and v.attrs["crossfit"] == 10
    assert "V(d_hat)" in v.attrs["estimand"]
    fixed = ex3_post.value(bd.Regime.static(A1=1, A2=1))
    assert fixed.attrs["crossfit"] == 0 and "fixed regime" in fixed.attrs["estimand"]
    plug = ex3_post.value("optimal", crossfit=0)
    assert "plug-in" in plug.attrs["estimand"]
    # the same seed gives the same sample-split draws; the rule is re-learned the same way
    again = bd.DTRModel(ex3_post.design.data, bd.scenario("chakraborty_ex3").stages, outcome="Y").fit(
        draws=200, chains=2, random_seed=5, progressbar=False
    )
    np.testing.assert_array_equal(again.value("optimal").values, v.values)
    assert ex3_post.value(ex3_post.rule()).attrs["crossfit"] == 10
    with pytest.raises(bd.FitError, match=r"crossfit=1 must be 'auto', None/0 .* or a number of chunks >= 2"):
        ex3_post.value("optimal", crossfit=1)
    with pytest.raises(bd.FitError, match=r"split='both' is not one of \['online', 'cross'\]"):
        ex3_post.value("optimal", split="both")
    with pytest.raises(bd.FitError, match=r"method='dr' is not one of"):
        ex3_post.value("optimal", method="dr")


def test_online_rules_never_see_the_chunk_they_value(ex3_post):
    """Changing the outcomes of the last chunk changes no rule learned before it."""
    from bayesdtr.crossfit import CrossFit

    cf = CrossFit(ex3_post, 10, "online", 4)
    last = cf.fold_list[-1]
    rule = cf.fold_rule(len(cf.fold_list) - 1, bd.Regime.optimal(), "map")
    assert set(last.train_design.data.index).isdisjoint(last.test_design.data.index)
    assert all(set(f.train_design.data.index).isdisjoint(f.test_design.data.index) for f in cf.fold_list)
    # training sets grow chunk by chunk and never include a later chunk's units
    sizes = [f.train_design.n for f in cf.fold_list]
    assert sizes == sorted(sizes) and sizes[0] >= 0.4 * ex3_post.design.n - 10
    assert rule.assign("A2", last.test_design.data).shape == (last.test_design.n,)


def test_design_subset_keeps_encodings(ex3_post):
    design = ex3_post.design
    rows = np.arange(0, design.n, 3)
    sub = design.subset(rows)
    assert sub.n == len(rows)
    for sd, ss in zip(design.stages, sub.stages, strict=True):
        assert ss.main_terms == sd.main_terms and ss.arms == sd.arms
        np.testing.assert_array_equal(ss.X_main, sd.X_main[rows])
        np.testing.assert_array_equal(ss.a, sd.a[rows])
    with pytest.raises(bd.SpecificationError, match="subset rows must be increasing positions"):
        design.subset(np.array([3, 1]))


def test_m_out_of_n_resample_size_follows_the_nonregularity():
    scn = bd.scenario("chakraborty_ex1")
    model = bd.DTRModel(scn.sample(300, seed=3), scn.stages, outcome="Y")
    res = m_out_of_n(model, bootstrap=100, seed=1)
    p = nonregularity(qlearning(model), 2)
    assert res.nonregularity == p and p > 0.5
    assert res.resample_size == int(np.floor(300 ** ((1 + 0.1 * (1 - p)) / 1.1)))
    # strong, regular effects: no unit near the boundary, m = n (the ordinary bootstrap)
    df = bd.scenario("chakraborty_ex1").sample(300, seed=4)
    df["Y"] = df["Y"] + 3.0 * df["A2"] + 3.0 * df["A1"]
    strong = m_out_of_n(bd.DTRModel(df, scn.stages, outcome="Y"), bootstrap=50, seed=1)
    assert strong.nonregularity == 0.0 and strong.resample_size == 300
    # the m-out-of-n interval is the percentile interval of the rescaled deviations
    tab = res.summary()
    dev = (res.stages[0].boot_coef.iloc[:, 2] - res.stages[0].coef.iloc[2]) * np.sqrt(res.resample_size / 300)
    lo = res.stages[0].coef.iloc[2] - np.quantile(dev, 0.975)
    assert tab.iloc[2]["boot_0.025"] == pytest.approx(lo)
    with pytest.raises(bd.FitError, match=r"alpha= must be a positive number"):
        m_out_of_n(model, alpha=0)
    with pytest.raises(bd.FitError, match=r"resample_size= must be an integer in \[2, n=300\]"):
        qlearning(model, bootstrap=10, resample_size=301)


def test_crossfit_aipw_baseline():
    scn = bd.scenario("chakraborty_ex3")
    model = bd.DTRModel(scn.sample(400, seed=6), scn.stages, outcome="Y")
    res = crossfit_aipw(model, seed=2)
    assert 0.55 * 400 <= len(res.contributions) <= 0.65 * 400  # chunks 5-10 of 10 are valued
    assert res.lower < res.estimate < res.upper
    assert res.se == pytest.approx(res.contributions.std(ddof=1) / np.sqrt(len(res.contributions)))
    stages = [bd.Stage(s.treatment, main=s.main, contrast=s.contrast, propensity="1") for s in scn.stages]
    with pytest.raises(bd.FitError, match=r"needs known randomization probabilities; stage 'A1'"):
        crossfit_aipw(bd.DTRModel(scn.sample(100, seed=1), stages, outcome="Y"))
