"""Readable estimated rules (post.rule()), rule tables, and id= labels of posterior outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.rules import EstimatedRule, format_number, linear_text


@pytest.fixture(scope="module")
def post(bmi_conjugate):
    return bmi_conjugate


def test_format_helpers():
    assert format_number(14.5234) == "14.5"
    assert format_number(-0.03991) == "−0.0399"
    assert format_number(1234.5) == "1234"
    assert linear_text([1.64, -0.4, 2.0], ["race", "parentBMI", "Intercept"]) == "1.64·race − 0.400·parentBMI + 2.00"


def test_rule_is_a_callable_regime(post):
    rule = post.rule()
    assert isinstance(rule, bd.Regime) and isinstance(rule, EstimatedRule)
    assert rule.name == "estimated rule (map)"
    rows = post.design.data
    arms = rule.assign("A1", rows)
    assert set(arms) <= {"CD", "MR"} and len(arms) == len(rows)
    # the map rule gives each unit the arm most often optimal (over the thinned draws, which
    # track P(optimal) over all draws closely away from 0.5)
    po = post.prob_optimal(1)
    clear = (po["MR"] - 0.5).abs().to_numpy() > 0.1
    assert np.all(arms[clear] == np.where(po["MR"].to_numpy() > 0.5, "MR", "CD")[clear])
    v = post.value(rule)
    assert v.dims == ("chain", "draw")


def test_rule_text(post):
    text = str(post.rule())
    assert "Stage 1 (A1): 210 units, arms CD (reference), MR" in text
    assert "Stage 2 (A2)" in text
    assert "otherwise CD" in text and "MR if " in text
    assert "·parentBMI" in text and "·month4BMI" in text
    assert "P(optimal) of the recommended arm" in text and "> 0.9 for" in text


def test_rule_formula_is_the_mean_rule(post):
    """The printed formula reproduces the "mean" rule: same threshold, same arm for every unit."""
    rule = post.rule("mean")
    sr = rule.stage(2)
    assert sr.formula_agreement == 1.0
    psi = post.coef(2)["psi"].sel(arm="MR").mean(("chain", "draw"))
    cut = -float(psi.sel(contrast_term="Intercept"))
    assert sr.formula.endswith(f"> {format_number(cut)}, otherwise CD")
    assert sr.formula.startswith(f"MR if {format_number(float(psi.sel(contrast_term='race')))}·race")


def test_rule_table(post):
    rule = post.rule()
    tab = rule.table()
    assert list(tab.columns[:4]) == ["A1", "A1: P(optimal)", "P(A1=CD)", "P(A1=MR)"]
    assert len(tab) == post.design.n
    assert np.allclose(tab[["P(A2=CD)", "P(A2=MR)"]].sum(axis=1), 1.0)
    # agreement = P(the recommended arm is optimal)
    picked = np.where(tab["A2"] == "MR", tab["P(A2=MR)"], tab["P(A2=CD)"])
    assert np.allclose(tab["A2: P(optimal)"], picked)
    # the same summary the text reports
    sr = rule.stage(1)
    assert np.isclose(sr.clear_cut, np.mean(tab[["P(A1=CD)", "P(A1=MR)"]].max(axis=1) > 0.9))


def test_rule_table_new_data(post):
    rule = post.rule()
    new = pd.DataFrame({"race": [0, 1], "parentBMI": [25.0, 40.0], "baselineBMI": [45.0, 32.0]}, index=["p1", "p2"])
    tab = rule.table(new)  # stage 2 columns are absent: only stage 1
    assert list(tab.index) == ["p1", "p2"] and "A2" not in tab.columns
    assert list(tab["A1"]) == list(rule.assign("A1", new))
    with pytest.raises(bd.DataError, match=r"lacks column\(s\) \['month4BMI'\] of stage 'A2'"):
        rule.table(new, stages=[2])
    with pytest.raises(bd.DataError, match="data= has none of the stages' formula columns"):
        rule.table(pd.DataFrame({"z": [1.0]}))
    with pytest.raises(bd.DataError, match="data= must be a pandas DataFrame"):
        rule.table([1, 2])
    with pytest.raises(bd.SpecificationError, match="stages= must be a list"):
        rule.table(new, stages=1)


def test_rule_argument_errors(post):
    with pytest.raises(bd.FitError, match="kind='mode' is not one of"):
        post.rule("mode")
    with pytest.raises(bd.FitError, match="max_draws= must be an integer >= 1; got 0"):
        post.rule(max_draws=0)


def test_single_term_sentence():
    scn = bd.scenario("two_stage_cont")
    df = scn.sample(300, seed=2)
    stages = [bd.Stage("A1", main="X1", contrast="1 + X1"), bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")]
    post = bd.DTRModel(df, stages, outcome="Y").fit(draws=200, chains=2, random_seed=1, progressbar=False)
    sr = post.rule().stage(2)
    psi = post.coef(2)["psi"].sel(arm=1).mean(("chain", "draw"))
    cut = -float(psi.sel(contrast_term="Intercept")) / float(psi.sel(contrast_term="X2"))
    side = "above" if float(psi.sel(contrast_term="X2")) > 0 else "below"
    assert sr.sentence.startswith(f"At stage 2, 1 is recommended for units with X2 {side} {format_number(cut)}")


def test_three_arm_rule_lists_scores():
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    a = rng.choice(["low", "mid", "high"], size=n)
    effect = {"low": 0.0, "mid": 0.5 + x, "high": 1.0 - 2 * x}
    y = x + np.select([a == "low", a == "mid", a == "high"], [np.zeros(n), effect["mid"], effect["high"]]) + rng.normal(size=n)
    df = pd.DataFrame({"x": x, "A": pd.Categorical(a, categories=["low", "mid", "high"]), "y": y})
    post = bd.DTRModel(df, [bd.Stage("A", main="x", contrast="1 + x")], outcome="y").fit(draws=200, chains=2, random_seed=1, progressbar=False)
    text = str(post.rule())
    assert "the arm with the largest score" in text
    sr = post.rule().stage(1)
    assert list(sr.scores) == list(post.design.stage(1).arms)
    assert sr.scores[sr.reference] == "0 (reference)"
    assert all("·x" in sr.scores[arm] for arm in sr.arms[1:])
    assert "the decision depends most on x" in sr.sentence


def test_id_column_labels_outputs():
    scn = bd.scenario("two_stage_cont")
    df = scn.sample(120, seed=4)
    df["pid"] = [f"P{i:03d}" for i in range(len(df))]
    df.index = df.index + 1000  # the index must not leak into outputs
    stages = [bd.Stage("A1", main="X1", contrast="1 + X1"), bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")]
    post = bd.DTRModel(df, stages, outcome="Y", id="pid").fit(draws=50, chains=2, random_seed=1, progressbar=False)
    ids = df["pid"].tolist()
    assert post.prob_optimal(1).index.tolist() == ids
    assert post.prob_optimal(2).index.name == "obs"
    assert post.q_values(2)["obs"].values.tolist() == ids
    assert post.optimal_treatment(1)["obs"].values.tolist() == ids
    assert post.predict_outcome("optimal")["obs"].values.tolist() == ids
    assert post.rule().table().index.tolist() == ids
    # new data: labelled by its id column when it has one, else by its index
    new = df.head(3)
    assert post.prob_optimal(1, new).index.tolist() == ids[:3]
    assert post.prob_optimal(1, new.drop(columns="pid")).index.tolist() == [1000, 1001, 1002]
