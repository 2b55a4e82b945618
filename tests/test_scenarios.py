"""Tests of bayesdtr.simulate.scenarios: generators, true values and true optimal rules."""

from __future__ import annotations

import formulaic
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from bayesdtr import KnownPropensity, Regime, RegimeError, SpecificationError, Stage
from bayesdtr.simulate.scenarios import (
    Scenario,
    enumerate_static,
    list_scenarios,
    scenario,
)

N_BIG = 200_000

#: The Gaussian scenarios share this contract; survival_smart (RMST truth) is tested in
#: test_survival.py, dropout_smart (missing A2 and Y for the units that drop out) in test_dropout.py.
GAUSSIAN = [
    name for name in list_scenarios() if scenario(name).family == "gaussian" and name != "dropout_smart"
]
CASES = [(name, {}) for name in GAUSSIAN] + [
    ("k_stage", {"K": 2}),
    ("k_stage", {"K": 4}),
    ("multisite_smart", {"n_sites": 8, "site_seed": 7}),
]
IDS = [name + "".join(f"-{k}{v}" for k, v in kw.items()) for name, kw in CASES]


def _build(name: str, kw: dict) -> Scenario:
    return scenario(name, **kw)


def _within(sc: Scenario, df: pd.DataFrame, value: float, k: float = 4.0) -> None:
    y = df[sc.outcome].to_numpy(float)
    se = y.std(ddof=1) / np.sqrt(len(y))
    assert abs(y.mean() - value) < k * se, (sc.name, y.mean(), value, se)


# --------------------------------------------------------------------------- registry
def test_list_scenarios() -> None:
    names = list_scenarios()
    assert names[0] == "two_stage_cont"
    assert [f"chakraborty01_{i}" for i in range(1, 10)] == [n for n in names if n.startswith("chakraborty01_")]
    assert [f"chakraborty_ex{e}" for e in "123456ABC"] == [n for n in names if n.startswith("chakraborty_ex")]
    assert {"k_stage", "multisite_smart"} <= set(names)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(SpecificationError, match=r"Unknown scenario 'nope'.*two_stage_cont"):
        scenario("nope")


def test_bad_kwargs_and_arguments() -> None:
    with pytest.raises(SpecificationError, match="unsupported keyword"):
        scenario("two_stage_cont", K=3)
    with pytest.raises(SpecificationError, match="K must be an integer"):
        scenario("k_stage", K=0)
    with pytest.raises(SpecificationError, match="n_sites"):
        scenario("multisite_smart", n_sites=1)


@pytest.mark.parametrize("n", [0, -5, 2.5, "10", True, None])
def test_invalid_n(n: object) -> None:
    with pytest.raises(SpecificationError, match="n must be a positive integer"):
        scenario("two_stage_cont").sample(n, seed=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, "a", None, True])
def test_invalid_seed(seed: object) -> None:
    with pytest.raises(SpecificationError, match="seed must be a non-negative integer"):
        scenario("two_stage_cont").sample(10, seed=seed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- common contract
@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_attributes_and_frame(name: str, kw: dict) -> None:
    sc = _build(name, kw)
    assert sc.family == "gaussian" and sc.outcome == "Y"
    stages = sc.stages
    assert [s.treatment for s in stages] == sc.treatments
    assert all(isinstance(s, Stage) for s in stages)
    df = sc.sample(2_000, seed=11)
    assert len(df) == 2_000
    for t in sc.treatments:
        assert t in df.columns
        vals = df[t].dropna().unique()
        assert set(vals.tolist()) <= set(sc.arms[t])
    assert sc.outcome in df.columns and df[sc.outcome].notna().all()
    if sc.group is not None:
        assert sc.group in df.columns
    for s in stages:
        mask = np.ones(len(df), bool) if s.applies is None else df.eval(s.applies).to_numpy()
        sub = df.loc[mask]
        assert sub[s.treatment].notna().all()
        for f in (s.main, s.contrast):
            assert np.isfinite(formulaic.model_matrix(f, sub).to_numpy(float)).all()
        if isinstance(s.propensity, KnownPropensity):
            assert set(s.propensity.probabilities) == set(sc.arms[s.treatment])


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_seed_reproducible(name: str, kw: dict) -> None:
    sc = _build(name, kw)
    pd.testing.assert_frame_equal(sc.sample(500, seed=3), sc.sample(500, seed=3))
    pd.testing.assert_frame_equal(
        sc.sample(500, seed=3, regime="optimal"), sc.sample(500, seed=3, regime="optimal")
    )
    assert not sc.sample(500, seed=3).equals(sc.sample(500, seed=4))


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_optimal_value_matches_simulation(name: str, kw: dict) -> None:
    sc = _build(name, kw)
    df = sc.sample(N_BIG, seed=101, regime="optimal")
    _within(sc, df, sc.true_value("optimal"))
    assert sc.true_value(Regime.optimal()) == sc.true_value("optimal")


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_static_values_match_simulation(name: str, kw: dict) -> None:
    sc = _build(name, kw)
    all_static = enumerate_static(sc.treatments, sc.arms)
    for i, arms in enumerate([all_static[0], all_static[-1]]):
        reg = Regime.static(**arms)
        _within(sc, sc.sample(N_BIG, seed=202 + i, regime=reg), sc.true_value(reg))


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_optimal_beats_every_static(name: str, kw: dict) -> None:
    sc = _build(name, kw)
    best = sc.true_value("optimal")
    for arms in enumerate_static(sc.treatments, sc.arms):
        assert best >= sc.true_value(Regime.static(**arms)) - 1e-12, arms


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_true_optimal_treatment_is_the_rule_used_by_sample(name: str, kw: dict) -> None:
    sc = _build(name, kw)
    df = sc.sample(20_000, seed=5, regime="optimal")
    for s in sc.stages:
        mask = np.ones(len(df), bool) if s.applies is None else df.eval(s.applies).to_numpy()
        sub = df.loc[mask]
        got = sc.true_optimal_treatment(sub, s.treatment)
        np.testing.assert_array_equal(got, sub[s.treatment].to_numpy())
        # integer stage numbers work too, and the rule maximises the true Q-function
        k = sc.treatments.index(s.treatment) + 1
        np.testing.assert_array_equal(sc.true_optimal_treatment(sub, k), got)
        q = sc.true_q(sub, s.treatment)
        picked = q.to_numpy()[np.arange(len(sub)), [sc.arms[s.treatment].index(a) for a in got]]
        np.testing.assert_allclose(picked, q.max(axis=1).to_numpy())


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_default_stages_are_correctly_specified(name: str, kw: dict) -> None:
    """Backward OLS with the default formulas recovers the true contrasts."""
    sc = _build(name, kw)
    df = sc.sample(N_BIG, seed=303)
    y = df[sc.outcome].to_numpy(float)
    for k in reversed(range(len(sc.treatments))):
        s = sc.stages[k]
        mask = np.ones(len(df), bool) if s.applies is None else df.eval(s.applies).to_numpy()
        d = df.loc[mask]
        main = formulaic.model_matrix(s.main, d).to_numpy(float)
        con = formulaic.model_matrix(s.contrast, d).to_numpy(float)
        ind = (d[s.treatment].to_numpy() == sc.arms[s.treatment][1]).astype(float)[:, None]
        blocks = [main, ind * con]
        if sc.group is not None:
            dummies = pd.get_dummies(d[sc.group]).to_numpy(float)[:, 1:]
            blocks += [dummies, ind * dummies]
            if k > 0:  # site-specific A1 coefficient in the stage-2 main part (see docstring)
                blocks.append(d["A1"].to_numpy(float)[:, None] * dummies)
        beta = np.linalg.lstsq(np.hstack(blocks), y[mask], rcond=None)[0]
        p, c = main.shape[1], con.shape[1]
        fitted = con @ beta[p : p + c]
        if sc.group is not None:
            g = dummies.shape[1]
            fitted = fitted + dummies @ beta[p + c + g : p + c + 2 * g]
        truth = sc.true_contrast(d, s.treatment)
        assert np.mean(np.abs(fitted - truth)) < 0.03, (s.treatment, fitted[:5], truth[:5])
        y = y.copy()
        y[mask] = sc.true_q(d, s.treatment).max(axis=1).to_numpy()


# --------------------------------------------------------------------------- regimes
def test_regime_errors() -> None:
    sc = scenario("two_stage_cont")
    with pytest.raises(RegimeError, match="gives no rule"):
        sc.true_value(Regime.static(A1=1))
    with pytest.raises(RegimeError, match="gives no rule"):
        sc.sample(10, seed=1, regime=Regime.static(A1=1))
    with pytest.raises(RegimeError, match="assigns arm"):
        sc.true_value(Regime.static(A1=1, A2=5))
    with pytest.raises(RegimeError, match="assigns arm"):
        sc.sample(10, seed=1, regime=Regime.static(A1=2, A2=0))
    with pytest.raises(RegimeError, match="regime must be"):
        sc.true_value("best")


# --------------------------------------------------------------------------- two_stage_cont
def test_two_stage_cont_values() -> None:
    sc = scenario("two_stage_cont")
    v = sc.true_value("optimal")
    assert round(v, 3) == round(5.4641, 3)
    assert v == pytest.approx(2 * (np.exp(0.5) + norm.cdf(1) + norm.pdf(1)), abs=1e-12)
    assert sc.true_value(Regime.static(A1=1, A2=1)) == pytest.approx(2 * np.exp(0.5) + 2)
    # dynamic regime (Monte Carlo, 1e6 units) against its closed form
    reg = Regime.threshold(stage="A1", column="X1", cutoff=0.0, above=1, below=0)
    reg = reg | Regime.static(A2=1)
    closed = 2 * np.exp(0.5) + (0.5 + norm.pdf(0)) + 1
    assert sc.true_value(reg) == pytest.approx(closed, abs=0.006)
    # the natural mechanism is confounded: P(A1 = 1 | X1) = expit(X1)
    df = sc.sample(50_000, seed=9)
    assert df.loc[df.X1 > 1, "A1"].mean() > 0.75 > 0.25 > df.loc[df.X1 < -1, "A1"].mean()
    np.testing.assert_allclose(sc.truth["psi"]["A1"], [1.0, 1.0])


# --------------------------------------------------------------------------- chakraborty
#: psi_10 as stated in the replication scripts the parameters were taken from.
SOURCE_PSI10 = {3: -1.0, 4: -1.48, 5: -1.0, 6: -0.0814, 7: 0.2998, 8: -1.0, 9: -0.24}


@pytest.mark.parametrize("index", sorted(SOURCE_PSI10))
def test_chakraborty_stage1_blip_matches_source(index: int) -> None:
    psi = scenario(f"chakraborty01_{index}").truth["psi"]["A1"]
    assert psi[0] == pytest.approx(SOURCE_PSI10[index], abs=5e-5)


def test_chakraborty_exact_values() -> None:
    sc = scenario("chakraborty01_6")
    reg = Regime.dynamic(
        {
            "A1": lambda d: (d["X1"] > 0).astype(int).to_numpy(),
            "A2": lambda d: (d["X2"] > 0).astype(int).to_numpy(),
        }
    )
    _within(sc, sc.sample(N_BIG, seed=17, regime=reg), sc.true_value(reg))
    # exact enumeration agrees with the closed-form static value
    for arms in enumerate_static(sc.treatments, sc.arms):
        dyn = Regime.dynamic({t: (lambda d, a=a: np.full(len(d), a)) for t, a in arms.items()})
        assert sc.true_value(dyn) == pytest.approx(sc.true_value(Regime.static(**arms)))
    assert scenario("chakraborty01_1").true_value("optimal") == 0.0
    assert scenario("chakraborty01_3").truth["nonregular"]


# --------------------------------------------------------------------------- k_stage
def test_k_stage_value_is_k() -> None:
    for K in (1, 3, 5):
        sc = scenario("k_stage", K=K)
        assert sc.true_value("optimal") == float(K)
        assert sc.treatments == [f"A{k}" for k in range(1, K + 1)]
    sc = scenario("k_stage")
    assert sc.stages[2].main == "S1:A1 + S2:A2 + S3"
    reg = Regime.dynamic({"A1": "optimal", "A2": lambda d: -d["S2"].to_numpy(), "A3": "optimal"})
    assert sc.true_value(reg) == pytest.approx(1.0, abs=0.01)


# --------------------------------------------------------------------------- multisite
def test_multisite_structure() -> None:
    sc = scenario("multisite_smart")
    assert sc.group == "site" and sc.n_sites == 12
    df = sc.sample(20_000, seed=1)
    assert set(df["site"].unique()) == set(range(12))
    assert df.loc[df.R == 1, "A2"].isna().all() and df.loc[df.R == 0, "A2"].notna().all()
    eff = sc.site_effects
    assert len(eff) == 12 and {"u", "b1", "b2", "stage1_contrast_x1_pos"} <= set(eff.columns)
    assert sc.truth["stage1_site_structure_exact"]
    # site effects are fixed by site_seed, not by the sampling seed
    again = scenario("multisite_smart")
    pd.testing.assert_frame_equal(eff, again.site_effects)
    assert sc.true_value("optimal") == again.true_value("optimal")
    other = scenario("multisite_smart", site_seed=99)
    assert not np.allclose(eff["u"], other.site_effects["u"])
    assert 8 <= scenario("multisite_smart", n_sites=20).site_effects.shape[0] == 20


# --------------------------------------------------------------------------- published designs
#: The "type" column of Chakraborty, Laber & Zhao (2013)'s table.
PUBLISHED_TYPE = {
    "1": "non-regular", "2": "near non-regular", "3": "non-regular", "4": "near non-regular",
    "5": "non-regular", "6": "regular", "A": "regular", "B": "non-regular", "C": "near non-regular",
}


@pytest.mark.parametrize("example", sorted(PUBLISHED_TYPE))
def test_published_regularity_follows_from_the_table(example: str) -> None:
    """Non-regular iff gamma5 + gamma6 O2 + gamma7 A1 = 0 for some (O2, A1) in {-1, 1}^2."""
    sc = scenario(f"chakraborty_ex{example}")
    g = sc.gamma
    contrasts = [g[4] + g[5] * o2 + g[6] * a1 for o2 in (-1, 1) for a1 in (-1, 1)]
    assert sc.truth["nonregular"] == (min(abs(c) for c in contrasts) == 0)
    assert sc.truth["nonregular"] == (PUBLISHED_TYPE[example] == "non-regular")
    # "near non-regular": some contrast within 0.02 of zero but none exactly zero
    near = 0 < min(abs(c) for c in contrasts) <= 0.02
    assert near == (PUBLISHED_TYPE[example] == "near non-regular")


def test_published_example_3_is_the_qlearn_example() -> None:
    """qLearn.Rd: Y = -0.5 A1 + 0.5 A2 + 0.5 A1 A2 + e, P(O2 = 1) = expit(0.5 O1 + 0.5 A1)."""
    sc = scenario("chakraborty_ex3")
    df = sc.sample(20, seed=1)
    assert set(df["A1"]) <= {-1, 1} and set(df["O2"]) <= {-1, 1}
    mean = -0.5 * df.A1 + 0.5 * df.A2 + 0.5 * df.A1 * df.A2
    np.testing.assert_allclose(sc._conditional_mean(df), mean)
    # both stage-1 arms have value 0.5 under optimal stage-2 play: psi_10 = psi_11 = 0
    np.testing.assert_allclose(sc.truth["psi"]["A1"], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(sc.truth["psi"]["A2"], [1.0, 0.0, 1.0])  # 2 x (gamma5, gamma6, gamma7)
    np.testing.assert_allclose(sc.truth["psi_published"]["A2"], [0.5, 0.0, 0.5])
    assert sc.true_value("optimal") == pytest.approx(0.5)
    # static values in closed form: E[Y] = gamma3 a1 + a2 (gamma5 + gamma7 a1)
    for a1 in (-1, 1):
        for a2 in (-1, 1):
            assert sc.true_value(Regime.static(A1=a1, A2=a2)) == pytest.approx(-0.5 * a1 + a2 * (0.5 + 0.5 * a1))


def test_old_chakraborty_names_point_to_both_families() -> None:
    with pytest.raises(SpecificationError, match=r"renamed 'chakraborty01_3'.*chakraborty_ex1"):
        scenario("chakraborty_3")
