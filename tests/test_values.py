"""Values of regimes (q, ipw, aipw), comparisons, patient-level predictions and point rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.exceptions import RegimeError


def _static_regimes(scn) -> dict[str, bd.Regime]:
    a1, a2 = (scn.arms[t] for t in scn.treatments)
    return {f"static({x},{y})": bd.Regime.static(**{scn.treatments[0]: x, scn.treatments[1]: y}) for x in a1 for y in a2}


def _covered(tab: pd.DataFrame, truth: dict[str, float]) -> pd.Series:
    t = pd.Series(truth)
    return (tab["hdi94_lb"] <= t) & (t <= tab["hdi94_ub"])


@pytest.fixture(scope="module")
def cont():
    scn = bd.scenario("two_stage_cont")
    df = scn.sample(2000, seed=2000)
    regimes = {"optimal": "optimal", **_static_regimes(scn)}
    truth = {k: scn.true_value(r) for k, r in regimes.items()}
    return scn, df, regimes, truth


#: Two-sided band for the coverage of 100 nominal-94% intervals (20 replicates x 5 regimes).
#: Were they independent: a calibrated method falls below 0.85 with probability 0.0003 and covers
#: all 100 with probability 0.94**100 = 0.002 (scipy.stats.binom); the replicate's shared covariate
#: sample correlates its 5 intervals, which widens both tails somewhat. An over-wide method
#: (coverage 0.999) covers all 100 with probability 0.90 and fails; one covering 0.80 fails with
#: probability 0.87.
COVERAGE_BAND = (0.85, 0.99)


def _coverage_over_seeds(scn, stages, seeds, **model_kw) -> dict[str, float]:
    """Fraction of (regime, seed) 94% HDIs that contain the true value, per method.

    One data set gives five strongly correlated intervals per method (they share the covariate
    sample: e.g. two_stage_cont seed 2001 draws X1 with mean 2.5 SEs below 0, and every value,
    by q and by aipw alike, lands 1-3 posterior SDs low), so a single seed cannot test coverage.
    The check pools 20 seeded replicates against the nominal 94%, leaving room for the
    within-replicate correlation (benchmarks/bench_calibration.py runs the full study).
    """
    regimes = {"optimal": "optimal", **_static_regimes(scn)}
    truth = {k: scn.true_value(r) for k, r in regimes.items()}
    hits: dict[str, list[bool]] = {"q": [], "aipw": []}
    for seed in seeds:
        df = scn.sample(2000, seed=seed)
        post = bd.DTRModel(df, stages, outcome=scn.outcome, **model_kw).fit(draws=500, random_seed=seed, progressbar=False)
        for method in hits:
            # the plug-in for "optimal" (regular scenario, n = 2,000); sample splitting of learned
            # rules has its own calibration tests (tests/test_calibration.py)
            hits[method].extend(_covered(post.compare(regimes, method=method, crossfit=0), truth))
    return {m: float(np.mean(h)) for m, h in hits.items()}


@pytest.mark.integration
def test_known_truth_two_stage_cont_q_and_aipw():
    """Correct outcome models (exp() main effects) and correct propensity models, n = 2,000."""
    scn = bd.scenario("two_stage_cont")
    cover = _coverage_over_seeds(scn, scn.stages, range(2000, 2020))
    assert all(COVERAGE_BAND[0] <= c <= COVERAGE_BAND[1] for c in cover.values()), cover


@pytest.mark.integration
def test_known_truth_multisite_q_and_aipw():
    """Multi-site SMART with the correct fixed-site-effects model (conjugate engine), n = 2,000."""
    scn = bd.scenario("multisite_smart")
    half = bd.KnownPropensity({-1: 0.5, 1: 0.5})
    stages = [
        bd.Stage("A1", main="X0 + X1 + C(site)", contrast="1 + X1 + C(site)", propensity=half),
        bd.Stage(
            "A2",
            main="X0 + X1 + A1:X1 + X2 + C(site):A1 + C(site)",
            contrast="1 + X2 + C(site)",
            propensity=half,
            applies="R == 0",
        ),
    ]
    cover = _coverage_over_seeds(scn, stages, range(2000, 2020))
    assert all(COVERAGE_BAND[0] <= c <= COVERAGE_BAND[1] for c in cover.values()), cover


def _z_scores(post, truth: dict[str, float], method: str) -> pd.Series:
    """(posterior mean - truth) / posterior SD of the static regimes' values (closed-form truth)."""
    static = {k: r for k, r in _static_regimes(bd.scenario("two_stage_cont")).items()}
    tab = post.compare(static, method=method, crossfit=0)
    return (tab["mean"] - pd.Series(truth)[tab.index]) / tab["sd"]


def test_double_robustness_outcome_model_wrong(cont):
    """Linear (wrong) main effects, correct propensities: q is off by 3-6 posterior SDs for the
    static regimes and overstates the optimal value; aipw stays within 3 SDs of the exact truth
    (measured |z| <= 1.4). Fails if aipw ignored its propensity terms (it would behave like q)."""
    scn, df, _, truth = cont
    stages = [
        bd.Stage("A1", main="X1", contrast="1 + X1", propensity="X1"),
        bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2", propensity="X2"),
    ]
    post = bd.DTRModel(df, stages, outcome="Y").fit(random_seed=3, progressbar=False)
    assert _z_scores(post, truth, "q").abs().max() > 3  # the wrong outcome model matters
    z = _z_scores(post, truth, "aipw")
    assert (z.abs() < 3).all(), z
    q = post.value("optimal", method="q", crossfit=0).values.ravel()  # the plug-in, on all the data
    assert np.percentile(q, 3) > truth["optimal"]  # biased upwards: the 94% interval lies above the truth
    # (the single-seed "aipw's HDI covers the optimal value" is gone: one interval says nothing
    # about coverage; tests/test_calibration.py checks it over replicates)


def test_double_robustness_propensity_wrong(cont):
    """Correct outcome models, wrong propensities (declared 1/2, truly expit(X_k)): ipw is off by
    2-17 posterior SDs, aipw stays within 3 SDs of the exact truth (measured |z| <= 0.8). Fails if
    aipw leaned on the propensities (it would behave like ipw)."""
    scn, df, _, truth = cont
    half = bd.KnownPropensity({0: 0.5, 1: 0.5})
    stages = [bd.Stage(s.treatment, main=s.main, contrast=s.contrast, propensity=half) for s in scn.stages]
    post = bd.DTRModel(df, stages, outcome="Y").fit(draws=250, chains=2, random_seed=3, progressbar=False)
    assert _z_scores(post, truth, "ipw").abs().max() > 3  # the wrong propensities matter
    z = _z_scores(post, truth, "aipw")
    assert (z.abs() < 3).all(), z


def test_compare_table_and_differences(cont):
    scn, df, regimes, _ = cont
    stages = [bd.Stage(s.treatment, main=s.main, contrast=s.contrast) for s in scn.stages]
    post = bd.DTRModel(df, stages, outcome="Y").fit(random_seed=4, progressbar=False)
    tab = post.compare(regimes)
    assert list(tab.index) == list(regimes)
    assert np.isnan(tab["p_better_than_first"].iloc[0])
    # P(best) and expected regret by hand from the value draws (a sum of 1 and a regret >= 0
    # hold for any table; these fail if a column is computed on other draws or misassigned)
    v = {k: post.value(r).values.ravel() for k, r in regimes.items()}
    best = np.max(list(v.values()), axis=0)
    for k in regimes:
        assert tab.loc[k, "p_best"] == pytest.approx(np.mean(v[k] == best), abs=1e-12)
        assert tab.loc[k, "expected_regret"] == pytest.approx(np.mean(best - v[k]), rel=1e-12)
    assert tab.loc["static(1,0)", "p_best"] < 1 and tab["expected_regret"].max() > 0.1
    # a regime listed twice ties with itself in every draw: each copy gets half its P(best)
    twice = post.compare({"a": regimes["static(1,1)"], "b": regimes["static(1,1)"], "c": regimes["static(0,0)"]})
    wins = np.mean(v["static(1,1)"] >= v["static(0,0)"])
    assert twice.loc["a", "p_best"] == twice.loc["b", "p_best"] == pytest.approx(wins / 2)
    diff = post.differences(regimes)
    assert diff.dims == ("regime", "regime_other", "chain", "draw")
    v = {k: post.value(r).values for k, r in regimes.items()}
    np.testing.assert_allclose(diff.sel(regime="static(1,1)", regime_other="static(0,0)").values, v["static(1,1)"] - v["static(0,0)"])
    np.testing.assert_allclose(tab.loc["static(1,0)", "p_better_than_first"], np.mean(v["static(1,0)"] > v["optimal"]))


def test_nonregular_p_best_is_not_overconfident():
    """Chakraborty et al. scenario 1 (no effects): among the four static regimes the top P(best)
    exceeds 0.95 in at most 10% of 50 replicates."""
    scn = bd.scenario("chakraborty01_1")
    stages = [bd.Stage(s.treatment, main=s.main, contrast=s.contrast) for s in scn.stages]
    regimes = _static_regimes(scn)
    confident = []
    for rep in range(50):
        df = scn.sample(300, seed=5000 + rep)
        post = bd.DTRModel(df, stages, outcome=scn.outcome).fit(draws=500, chains=2, random_seed=rep, progressbar=False)
        confident.append(post.compare(regimes)["p_best"].max() > 0.95)
    assert np.mean(confident) <= 0.10


def test_true_value_of_estimated_rule():
    scn = bd.scenario("two_stage_cont")
    df = scn.sample(3000, seed=7)
    post = bd.DTRModel(df, scn.stages, outcome="Y").fit(random_seed=7, progressbar=False)
    opt = scn.true_value("optimal")
    # True regret (opt - V) of rules that are optimal at stage 1 and wrong at stage 2: always
    # A2 = 1 loses E[(1 + X2)^-] = 0.083, the threshold X2 > -0.5 instead of -1 loses 0.041 (the
    # old bound, opt - 0.1 < V, let both pass). The exact rule scores 0.0013 (Monte Carlo error
    # of true_value); estimated rules at n = 3,000 score 0.001-0.004 (seeds 7-9), so 0.015 passes
    # a good rule and fails each of these.
    stage1 = lambda d: (1 + d.X1 > 0).astype(int)  # noqa: E731
    wrong_at_stage_2 = {
        "always A2 = 1": bd.Regime.dynamic({"A1": stage1, "A2": lambda d: np.ones(len(d), int)}),
        "A2 threshold -0.5": bd.Regime.dynamic({"A1": stage1, "A2": lambda d: (d.X2 > -0.5).astype(int)}),
    }
    for name, wrong in wrong_at_stage_2.items():
        assert opt - scn.true_value(wrong) > 0.03, name
    for kind, kw in (("map", {"max_draws": 50}), ("mean", {})):
        rule = post.rule(kind, **kw)
        assert isinstance(rule, bd.Regime)
        v = scn.true_value(rule)
        # a good estimated rule is close to, and cannot beat, the true optimum
        assert opt - 0.015 < v <= opt + 1e-3, (kind, opt - v)


def test_predict_outcome_single_stage_matches_posterior():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame({"x": rng.normal(size=n), "A": rng.integers(0, 2, n)})
    df["y"] = df.x + df.A * (1 - 2 * df.x) + rng.normal(size=n)
    post = bd.DTRModel(df, [bd.Stage("A", main="x", contrast="1 + x")], outcome="y").fit(random_seed=1, progressbar=False)
    new = pd.DataFrame({"x": [-1.0, 0.0, 1.0]})
    pred = post.predict_outcome(bd.Regime.static(A=1), new)
    assert pred.dims == ("chain", "draw", "obs")
    q = post.q_values(1, data=new).sel(arm=1)
    sigma = post.tree["stage_1/posterior"]["sigma"]
    np.testing.assert_allclose(pred.mean(("chain", "draw")), q.mean(("chain", "draw")), atol=0.1)
    expected_sd = np.sqrt((sigma**2).mean() + q.var(("chain", "draw")))
    np.testing.assert_allclose(pred.std(("chain", "draw")), expected_sd, rtol=0.05)
    # x = -1: A = 1 adds 3, so treatment very likely gives the better outcome; x = 1: it costs 1
    pb = post.prob_better(bd.Regime.static(A=1), bd.Regime.static(A=0), new)
    assert pb.iloc[0] > 0.9 and pb.iloc[2] < 0.5
    po = post.predict_outcome("optimal", new)
    assert float(po.isel(obs=0).mean()) == pytest.approx(float(pred.isel(obs=0).mean()), abs=0.15)


def test_ipw_matches_hajek_estimator_with_known_propensities():
    """With known propensities, one draw's IPW value is the Bayesian-bootstrap-weighted Hajek
    estimator over units consistent with the regime."""
    m = __import__("bayesdtr.cli", fromlist=["bmi_model"]).bmi_model()
    post = m.fit(draws=100, chains=1, random_seed=3, progressbar=False)
    reg = bd.Regime.static(A1="MR", A2="CD")
    v = post.value(reg, method="ipw").values.ravel()
    df = m.data
    consistent = ((df.A1 == "MR") & (df.A2 == "CD")).to_numpy()
    w = post.bootstrap.weights(np.arange(3))
    expect = (w * consistent * df["y"].to_numpy()).sum(1) / (w * consistent).sum(1)
    np.testing.assert_allclose(v[:3], expect, rtol=1e-6)


def test_regime_errors(bmi_model, bmi_conjugate):
    with pytest.raises(RegimeError, match=r"gives no rule for stage\(s\) \['A2'\]"):
        bmi_conjugate.value(bd.Regime.static(A1="MR"))
    with pytest.raises(RegimeError, match=r"assigns arm 'XX' at stage 'A1' to unit 0"):
        bmi_conjugate.value(bd.Regime.static(A1="XX", A2="CD"))
    with pytest.raises(RegimeError, match="regime must be 'optimal' or a bd.Regime"):
        bmi_conjugate.value("best")
    with pytest.raises(RegimeError, match="non-empty dict"):
        bmi_conjugate.compare({})


def test_infeasible_arm_in_regime_names_stage_unit_and_arm():
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"x": rng.normal(size=n), "R": rng.integers(0, 2, n)})
    df["A1"] = rng.integers(0, 2, n)
    df["A2"] = np.where(df.R == 1, 0, rng.integers(0, 2, n))  # responders stay on arm 0
    df["y"] = df.x + df.A1 + df.A2 * df.x + rng.normal(size=n)

    def feasible(d):
        return pd.DataFrame({0: np.ones(len(d), bool), 1: (d["R"] == 0).to_numpy()}, index=d.index)

    stages = [bd.Stage("A1", main="x", contrast="1 + x"), bd.Stage("A2", main="x + A1", contrast="1 + x", feasible=feasible)]
    post = bd.DTRModel(df, stages, outcome="y").fit(draws=100, chains=1, random_seed=1, progressbar=False)
    first = int(np.flatnonzero(df.R.to_numpy() == 1)[0])
    with pytest.raises(RegimeError, match=rf"infeasible arm 1 at stage 'A2' to unit {first} "):
        post.value(bd.Regime.static(A1=1, A2=1))
    # optimal decisions respect the feasible sets
    assert (post.prob_optimal(2).loc[df.R == 1, 1] == 0).all()
    threshold = bd.Regime.threshold(stage="A1", column="x", cutoff=0.0, above=1, below=0) | bd.Regime.dynamic(
        {"A2": lambda d: np.where(d["R"] == 0, 1, 0)}
    )
    assert post.value(threshold).shape == (1, 100)


def _smart_with_responders(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    a1 = rng.integers(0, 2, n)
    r = (rng.random(n) < 0.5).astype(int)
    a2 = np.where(r == 1, 0, rng.integers(0, 2, n))  # responders continue on arm 0
    y = 1 + x + a1 + np.where(r == 1, 3, 2 * a2) + rng.normal(size=n)
    df = pd.DataFrame({"x": x, "A1": a1, "R": r, "A2": a2, "y": y})

    def feasible(d):
        return pd.DataFrame({0: np.ones(len(d), bool), 1: (d["R"] == 0).to_numpy()}, index=d.index)

    return df, feasible


def test_weights_respect_feasible_sets():
    """Responders cannot switch, so they follow any regime's stage 2 with probability 1; a
    known 1:1 randomization applies to non-responders only. True value of (A1=1, A2=1 if
    non-responder) is 1 + 0 + 1 + 0.5 * 3 + 0.5 * 2 = 4.5."""
    df, feasible = _smart_with_responders()
    half = bd.KnownPropensity({0: 0.5, 1: 0.5})
    stages = [
        bd.Stage("A1", main="x", contrast="1", propensity=half),
        bd.Stage("A2", main="x + A1 + R", contrast="1", propensity=half, feasible=feasible),
    ]
    post = bd.DTRModel(df, stages, outcome="y").fit(random_seed=1, progressbar=False)
    reg = bd.Regime.dynamic({"A1": lambda d: np.ones(len(d), int), "A2": lambda d: np.where(d["R"] == 0, 1, 0)})
    for method in ("q", "ipw", "aipw"):
        v = post.value(reg, method=method).values
        assert abs(v.mean() - 4.5) < 3 * v.std() + 0.02, (method, v.mean())


def test_saved_feasible_sets_are_not_matched_by_index_label(tmp_path):
    df, feasible = _smart_with_responders(400, seed=1)
    stages = [bd.Stage("A1", main="x", contrast="1"), bd.Stage("A2", main="x + A1 + R", contrast="1", feasible=feasible)]
    post = bd.DTRModel(df, stages, outcome="y").fit(draws=100, chains=1, random_seed=1, progressbar=False)
    post.to_netcdf(str(tmp_path / "p.nc"))
    back = bd.load(str(tmp_path / "p.nc"))
    pd.testing.assert_frame_equal(back.prob_optimal(2), post.prob_optimal(2))
    # the stored units themselves (same labels, same values) are answered from the stored design
    units = df.index[df["R"] == 0][:5]
    pd.testing.assert_frame_equal(back.prob_optimal(2, data=df.loc[units]), post.prob_optimal(2, data=df.loc[units]))
    # the same labels with other values are new data: never matched by label
    changed = df.loc[units].assign(x=df.loc[units, "x"] + 1.0)
    with pytest.raises(bd.SpecificationError, match=r"without stages=.*bd.load\(path, stages="):
        back.prob_optimal(2, data=changed)
    again = bd.load(str(tmp_path / "p.nc"), stages=stages)
    pd.testing.assert_frame_equal(again.prob_optimal(2, data=df.iloc[:5]), post.prob_optimal(2, data=df.iloc[:5]))


def test_aipw_by_hand_from_the_q_draws():
    """AIPW per draw, computed with numpy from the posterior's Q draws, known propensities and the
    Bayesian-bootstrap weights (the module docstring of bayesdtr/values.py):
    V = sum_i w_i [C2 Y / pi1 pi2 + (1 - C1 / pi1) mu1 + (C1 / pi1 - C2 / pi1 pi2) mu2] / sum_i w_i,
    with mu_k = Q_k(H_k, d_k). Catches a wrong augmentation sign, a missing stage term, propensities
    of the wrong arm, weights not aligned with the draws, or d taken from another draw."""
    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"x1": rng.normal(size=n), "A1": rng.integers(0, 2, n)})
    df["x2"] = 0.5 * df.x1 + rng.normal(size=n)
    df["A2"] = (rng.random(n) < 0.7).astype(int)
    df["y"] = df.x1 + df.A1 * (0.5 - df.x1) + df.A2 * (0.3 + df.x2) + rng.normal(size=n)
    pi1, pi2 = {0: 0.5, 1: 0.5}, {0: 0.3, 1: 0.7}
    stages = [
        bd.Stage("A1", main="x1", contrast="1 + x1", propensity=bd.KnownPropensity(pi1)),
        bd.Stage("A2", main="x1 + x2 + A1", contrast="1 + x2", propensity=bd.KnownPropensity(pi2)),
    ]
    post = bd.DTRModel(df, stages, outcome="y").fit(draws=50, chains=2, random_seed=5, progressbar=False)
    assert post.fits[0].ancestor is not None and np.array_equal(post.fits[0].ancestor, np.arange(100))
    S = post.n_samples
    q1 = post.q_values(1).values.reshape(S, n, 2)
    q2 = post.q_values(2).values.reshape(S, n, 2)
    a1, a2, y = df.A1.to_numpy(), df.A2.to_numpy(), df.y.to_numpy()
    p1 = np.where(a1 == 1, pi1[1], pi1[0])
    p2 = np.where(a2 == 1, pi2[1], pi2[0])
    w = np.concatenate([post.bootstrap.weights(idx) for idx in post.bootstrap.chunks()]).astype(float)
    d2 = q2.argmax(axis=2)
    mu2 = np.take_along_axis(q2, d2[..., None], axis=2)[..., 0]
    # the optimal regime: d_k is each draw's argmax, so mu_k = max_a Q_k (a regime that departs
    # from it has its own stage-1 Q-functions, from its own backward induction)
    d1 = q1.argmax(axis=2)
    mu1 = q1.max(axis=2)
    c1 = (d1 == a1) / p1
    c2 = c1 * (d2 == a2) / p2
    terms = c2 * y + (1 - c1) * mu1 + (c1 - c2) * mu2
    by_hand = np.sum(w * terms, axis=1) / np.sum(w, axis=1)
    got = post.value("optimal", method="aipw", crossfit=0).values.ravel()
    # the weights are float32 (and summed in float32): agreement to ~1e-7 relative
    np.testing.assert_allclose(got, by_hand, rtol=1e-6)
    # each part matters: without the augmentation (IPW), or with the stage-1 and stage-2
    # terms swapped, the hand computation is far from the value
    no_aug = np.sum(w * c2 * y, axis=1) / np.sum(w, axis=1)
    swapped = np.sum(w * (c2 * y + (1 - c1) * mu2 + (c1 - c2) * mu1), axis=1) / np.sum(w, axis=1)
    assert np.max(np.abs(got - no_aug)) > 0.05 and np.max(np.abs(got - swapped)) > 0.05
