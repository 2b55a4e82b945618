"""Validation of DTR specifications: every bad input raises a bayesdtr error that names the problem.

No test here samples: ``fit`` is only called with arguments that fail before sampling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr import (
    BayesDTRError,
    DataError,
    FitError,
    KnownPropensity,
    PriorError,
    Regime,
    RegimeError,
    SpecificationError,
    Stage,
)
from bayesdtr.data.design import build_design

N = 60


def make_df(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Two-stage wide data: x1 (baseline), A1 in {0,1}, R, x2, A2 in {0,1}, reward r1, outcome y."""
    rng = np.random.default_rng(seed)
    a1 = np.tile([0, 1], n // 2)
    a2 = np.repeat([0, 1], n // 2)
    df = pd.DataFrame(
        {
            "pid": np.arange(100, 100 + n),
            "site": np.repeat(["s1", "s2", "s3"], n // 3 + 1)[:n],
            "x1": rng.normal(size=n),
            "A1": a1,
            "R": rng.integers(0, 2, n),
            "x2": rng.normal(size=n),
            "A2": a2,
            "r1": rng.normal(size=n),
        }
    )
    df["y"] = df.x1 + df.A1 * df.x1 + df.A2 + rng.normal(size=n)
    return df


def two_stages(**kw2) -> list[Stage]:
    return [
        Stage("A1", main="x1", contrast="1 + x1", propensity="1"),
        Stage("A2", **({"main": "x1 + A1 + x2", "contrast": "1 + x2"} | kw2)),
    ]


def design(df: pd.DataFrame | None = None, stages: list[Stage] | None = None, **kw):
    df = make_df() if df is None else df
    return build_design(
        df, two_stages() if stages is None else stages, outcome=kw.pop("outcome", "y"), **kw
    )


def test_errors_are_value_errors():
    for exc in (DataError, SpecificationError, PriorError, RegimeError, FitError):
        assert issubclass(exc, BayesDTRError)
        assert issubclass(exc, ValueError)


def test_valid_design_builds_and_keeps_every_row():
    d = design()
    assert d.n == N
    assert [s.n_units for s in d.stages] == [N, N]
    assert d.stages[0].arms == [0, 1]
    assert d.stages[0].main_terms == ["Intercept", "x1"]
    assert d.stages[1].X.shape == (N, 4 + 2)


# --------------------------------------------------------------------------- missing columns


@pytest.mark.parametrize(
    ("stages", "kw", "pattern"),
    [
        (
            [Stage("A9")],
            {},
            r"Stage 'A9' \(treatment\) uses column\(s\) \['A9'\] that are not in the data\. Available columns: .*'A1'.*Fix the name",
        ),
        (
            None,
            {"outcome": "yy"},
            r"outcome= uses column\(s\) \['yy'\] that are not in the data.*Fix the name",
        ),
        (
            [Stage("A1", main="x1 + x9")],
            {},
            r"Stage 'A1' main= uses column\(s\) \['x9'\].*Available columns",
        ),
        ([Stage("A1", contrast="1 + z")], {}, r"Stage 'A1' contrast= uses column\(s\) \['z'\]"),
        ([Stage("A1", propensity="1 + w")], {}, r"Stage 'A1' propensity= uses column\(s\) \['w'\]"),
        ([Stage("A1", main="center(x9)")], {}, r"main= uses column\(s\) \['x9'\]"),
        ([Stage("A1", reward="r9")], {}, r"Stage 'A1' reward= uses column\(s\) \['r9'\]"),
        (None, {"id": "patient"}, r"id= uses column\(s\) \['patient'\].*not in the data"),
        (None, {"group": "clinic"}, r"group= uses column\(s\) \['clinic'\].*not in the data"),
    ],
    ids=[
        "treatment",
        "outcome",
        "main",
        "contrast",
        "propensity",
        "stateful-transform",
        "reward",
        "id",
        "group",
    ],
)
def test_missing_column(stages, kw, pattern):
    with pytest.raises(DataError, match=pattern):
        design(stages=stages, **kw)


# --------------------------------------------------------------------------- missing values


def test_nan_treatment_where_stage_applies():
    df = make_df()
    df["A2"] = df["A2"].astype(float)
    df.loc[[3, 7], "A2"] = np.nan
    with pytest.raises(
        DataError, match=r"Treatment column 'A2' is missing in rows \[3, 7\] \(2 rows\).*applies="
    ):
        design(df)


def test_nan_treatment_outside_applies_is_fine():
    df = make_df()
    df["A2"] = df["A2"].astype(float)
    df.loc[df.R == 1, "A2"] = np.nan
    d = design(df, two_stages(applies="R == 0"))
    s2 = d.stages[1]
    assert s2.n_units == int((df.R == 0).sum())
    assert s2.arms == [0, 1]  # float column with NaN still gives integer labels
    np.testing.assert_array_equal(s2.units, np.flatnonzero(df.R == 0))
    assert d.n == N


def test_nan_covariate_names_column_and_rows():
    df = make_df()
    df.loc[[5, 11, 12], "x2"] = np.nan
    with pytest.raises(
        DataError,
        match=r"Column 'x2' \(used by Stage 'A2'\) has missing values in rows \[5, 11, 12\] \(3 rows\)\. bayesdtr never drops rows",
    ):
        design(df)


def test_nan_in_stateful_transform_argument_is_caught():
    df = make_df()
    df.loc[4, "x2"] = np.nan
    with pytest.raises(DataError, match=r"Column 'x2'.*rows \[4\]"):
        design(df, two_stages(main="x1 + scale(x2)"))


def test_nan_covariate_outside_applies_is_fine_and_no_row_dropped():
    df = make_df()
    df.loc[df.R == 1, "x2"] = np.nan
    d = design(df, two_stages(applies="R == 0"))
    assert d.n == len(df)
    assert d.stages[0].n_units == len(df)
    assert d.stages[1].n_units == int((df.R == 0).sum())
    assert d.stages[1].X_main.shape[0] == d.stages[1].n_units


def test_nan_outcome():
    df = make_df()
    df.loc[2, "y"] = np.nan
    with pytest.raises(
        DataError, match=r"Column 'y' \(used by outcome=\) has missing values in rows \[2\]"
    ):
        design(df)


def test_nan_reward():
    df = make_df()
    df.loc[9, "r1"] = np.nan
    stages = [Stage("A1", main="x1", reward="r1"), Stage("A2")]
    with pytest.raises(DataError, match=r"Column 'r1'.*rows \[9\]"):
        design(df, stages)


def test_nan_group():
    df = make_df()
    df.loc[0, "site"] = None
    with pytest.raises(
        DataError, match=r"Column 'site' \(used by group=\) has missing values in rows \[0\]"
    ):
        design(df, group="site")


# --------------------------------------------------------------------------- feasible sets


def _feasible_only_0_when_x1_high(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {0: np.ones(len(df), bool), 1: (df["x1"] <= 0.5).to_numpy()}, index=df.index
    )


def test_feasible_rule_builds_and_is_stored():
    df = make_df()
    df.loc[df.x1 > 0.5, "A1"] = 0
    d = design(df, [Stage("A1", main="x1", feasible=_feasible_only_0_when_x1_high), Stage("A2")])
    feas = d.stages[0].feasible
    assert feas.shape == (N, 2)
    np.testing.assert_array_equal(feas[:, 1], df.x1.to_numpy() <= 0.5)


def test_observed_arm_outside_feasible_set():
    df = make_df()
    high = df.index[(df.x1 > 0.5) & (df.A1 == 1)]
    assert len(high)
    with pytest.raises(
        DataError,
        match=rf"Treatment column 'A1': the observed arm is outside the unit's feasible set in rows \[{high[0]}, .*\(e\.g\. row {high[0]} got 1; its feasible arms are \[0\]\)\. Fix the data or the feasible= rule",
    ):
        design(df, [Stage("A1", feasible=_feasible_only_0_when_x1_high), Stage("A2")])


@pytest.mark.parametrize(
    ("rule", "exc", "pattern"),
    [
        (
            lambda d: pd.DataFrame({0: np.ones(len(d), bool)}),
            SpecificationError,
            r"feasible= returned columns \[0\].*one column per arm \[0, 1\] \(missing \[1\]\)",
        ),
        (
            lambda d: pd.DataFrame({"a": np.ones(len(d), bool), "b": np.ones(len(d), bool)}),
            SpecificationError,
            r"missing \[0, 1\]",
        ),
        (
            lambda d: pd.DataFrame({0: np.ones(3, bool), 1: np.ones(3, bool)}),
            SpecificationError,
            r"and 3 rows.*one row per unit \(60\)",
        ),
        (
            lambda d: pd.DataFrame({0: np.ones(len(d)), 1: np.ones(len(d))}),
            SpecificationError,
            r"must return booleans.*got dtype float64.*astype\(bool\)",
        ),
        (
            lambda d: np.ones((len(d), 2), bool),
            SpecificationError,
            r"must return a boolean DataFrame with one column per arm \[0, 1\]; got ndarray",
        ),
        (
            lambda d: pd.DataFrame({0: np.zeros(len(d), bool), 1: np.zeros(len(d), bool)}),
            DataError,
            r"leaves no feasible arm for rows \[0, 1, 2,.*\(60 rows\).*restrict applies=",
        ),
        (lambda d: 1 / 0, SpecificationError, r"feasible= raised ZeroDivisionError"),
        (
            lambda d: pd.DataFrame(
                {0: np.ones(len(d), bool), 1: np.ones(len(d), bool), 2: np.ones(len(d), bool)}
            ),
            DataError,
            r"marks arm\(s\) \[2\] feasible.*no unit.*received them.*positivity",
        ),
    ],
    ids=[
        "missing-arm",
        "wrong-labels",
        "wrong-rows",
        "non-bool",
        "not-a-frame",
        "no-feasible-arm",
        "raises",
        "unobserved-arm",
    ],
)
def test_bad_feasible_rule(rule, exc, pattern):
    with pytest.raises(exc, match=pattern):
        design(stages=[Stage("A1", feasible=rule), Stage("A2")])


def test_feasible_extra_all_false_column_is_fine():
    rule = lambda d: pd.DataFrame({0: True, 1: True, 2: False}, index=d.index)  # noqa: E731
    d = design(stages=[Stage("A1", feasible=rule), Stage("A2")])
    assert d.stages[0].arms == [0, 1]


def test_feasible_must_be_callable():
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A1': feasible= must be a callable df -> boolean DataFrame.*got list",
    ):
        Stage("A1", feasible=[0, 1])


def _arm0_only_if_low(d: pd.DataFrame) -> pd.DataFrame:
    """Arm 0 is allowed only for x1 <= 0; arm 1 for everyone."""
    return pd.DataFrame({0: (d["x1"] <= 0).to_numpy(), 1: True}, index=d.index)


def test_positivity_holds_when_every_feasible_arm_is_observed():
    df = make_df()
    low = df.x1 <= 0
    df.loc[~low, "A1"] = 1  # only arm 1 is feasible there
    df.loc[low, "A1"] = np.tile([0, 1], N)[: int(low.sum())]  # both arms given where both feasible
    sd = design(df, [Stage("A1", feasible=_arm0_only_if_low), Stage("A2")]).stages[0]
    np.testing.assert_array_equal(sd.feasible[:, 0], low.to_numpy())


def test_positivity_violation_in_a_subgroup():
    df = make_df()
    low = df.x1 <= 0
    df.loc[~low, "A1"] = 1
    df.loc[low, "A1"] = 0  # arm 1 is feasible for the x1 <= 0 units, but none of them got it
    n_low = int(low.sum())
    with pytest.raises(
        DataError,
        match=rf"Positivity violation at stage 'A1': arm 1 is feasible for {n_low} units \(feasible set \[0, 1\]\) but none of them received it.*Mark it infeasible for these units with feasible=, or collect data",
    ):
        design(df, [Stage("A1", feasible=_arm0_only_if_low), Stage("A2")])


# --------------------------------------------------------------------------- formulas and time order


@pytest.mark.parametrize("arg", ["main", "contrast", "propensity"])
@pytest.mark.parametrize(
    ("stage", "formula", "bad"),
    [
        (1, "x1 + A2", "A2"),  # later treatment
        (1, "x1 + A1", "A1"),  # own treatment
        (2, "x1 + A2", "A2"),  # own treatment
        (1, "x1 + y", "y"),  # final outcome
        (2, "center(y)", "y"),  # final outcome inside a stateful transform
        (1, "x1 + r1", "r1"),  # this stage's reward
    ],
)
def test_formula_uses_future_information(arg, stage, formula, bad):
    stages = [Stage("A1", main="x1", reward="r1"), Stage("A2", main="x1 + x2")]
    stages[stage - 1] = Stage(
        stages[stage - 1].treatment, **{arg: formula}, reward=stages[stage - 1].reward
    )
    tr = stages[stage - 1].treatment
    with pytest.raises(
        SpecificationError,
        match=rf"Stage '{tr}' {arg}=.* uses \['{bad}'\], which is not known before decision '{tr}'.*Use only baseline covariates, earlier treatments",
    ):
        design(stages=stages)


def test_earlier_treatment_and_reward_are_allowed_later():
    stages = [
        Stage("A1", main="x1", reward="r1"),
        Stage("A2", main="x1 + A1 + r1", contrast="1 + A1"),
    ]
    d = design(stages=stages)
    assert d.stages[1].main_terms == ["Intercept", "x1", "A1", "r1"]


def test_unparsable_formula():
    with pytest.raises(
        SpecificationError,
        match=r"(?s)Stage 'A1' main=: cannot parse formula 'x1 \+ \(': .*Give a right-hand-side formula",
    ):
        design(stages=[Stage("A1", main="x1 + ("), Stage("A2")])


@pytest.mark.parametrize("arg", ["main", "contrast", "propensity"])
def test_formula_with_tilde(arg):
    with pytest.raises(
        SpecificationError,
        match=rf"Stage 'A1': {arg}='y ~ x1' contains '~'\. Give only the right-hand side",
    ):
        Stage("A1", **{arg: "y ~ x1"})


@pytest.mark.parametrize("arg", ["main", "contrast", "propensity"])
def test_empty_formula(arg):
    with pytest.raises(SpecificationError, match=rf"Stage 'A1': {arg}=.*formula.*'1 \+ x1'"):
        Stage("A1", **{arg: "  "})


def test_stage_argument_types():
    with pytest.raises(
        SpecificationError, match=r"Stage\(treatment=\.\.\.\) must be a column name \(str\); got 3"
    ):
        Stage(3)
    with pytest.raises(
        SpecificationError,
        match=r"propensity= must be a formula string, a bd.KnownPropensity or None; got dict",
    ):
        Stage("A1", propensity={0: 0.5, 1: 0.5})
    with pytest.raises(SpecificationError, match=r"reward= must be a column name or None; got 1"):
        Stage("A1", reward=1)


def test_stages_not_a_list():
    df = make_df()
    with pytest.raises(
        SpecificationError, match=r"stages must be a non-empty list of bd.Stage objects.*got Stage"
    ):
        build_design(df, Stage("A1"), outcome="y")
    with pytest.raises(SpecificationError, match=r"stages must be a non-empty list.*got str 'A1'"):
        build_design(df, "A1", outcome="y")
    with pytest.raises(SpecificationError, match=r"stages must be a non-empty list.*got list"):
        build_design(df, [], outcome="y")
    with pytest.raises(
        SpecificationError, match=r"stages\[1\] must be a bd.Stage; got str 'A2'.*bd.Stage\('A1'"
    ):
        build_design(df, [Stage("A1"), "A2"], outcome="y")


def test_duplicate_treatment_across_stages():
    with pytest.raises(
        SpecificationError,
        match=r"Treatment column\(s\) \['A1'\] appear in more than one stage.*own treatment column",
    ):
        design(stages=[Stage("A1"), Stage("A1")])


def test_column_roles_clash():
    with pytest.raises(
        SpecificationError, match=r"Stage 'y': the treatment column is also outcome='y'"
    ):
        design(stages=[Stage("A1"), Stage("y")])
    with pytest.raises(SpecificationError, match=r"Stage 'A1' reward='y' is the final outcome"):
        design(stages=[Stage("A1", reward="y"), Stage("A2")])
    with pytest.raises(
        SpecificationError, match=r"reward='r1' is used by stages 'A1' and 'A2'.*counted twice"
    ):
        design(stages=[Stage("A1", reward="r1"), Stage("A2", reward="r1")])


# --------------------------------------------------------------------------- arms


def test_single_observed_arm():
    df = make_df()
    df["A2"] = 1
    with pytest.raises(
        DataError,
        match=r"Treatment column 'A2' has a single observed arm \[1\] among the 60 units.*at least 2 observed arms",
    ):
        design(df)


def test_single_observed_arm_within_applies():
    df = make_df()
    df.loc[df.R == 0, "A2"] = 0
    with pytest.raises(
        DataError, match=r"single observed arm \[0\] among the \d+ units.*check applies="
    ):
        design(df, two_stages(applies="R == 0"))


def test_mixed_arm_label_types():
    df = make_df()
    df["A1"] = pd.Series(["a", 3] * (N // 2), dtype=object)
    with pytest.raises(
        DataError,
        match=r"Treatment column 'A1' mixes arm label types \['int', 'str'\]\. Use one type",
    ):
        design(df)


def test_non_integer_numeric_arms():
    df = make_df()
    df["A1"] = df["A1"] + 0.5
    with pytest.raises(
        DataError,
        match=r"Treatment column 'A1' has non-integer numeric labels \[0.5, 1.5\].*recode",
    ):
        design(df)


def test_arm_labels_integers():
    df = make_df()
    df["A1"] = df["A1"].map({0: 5, 1: -2})
    sd = design(df).stages[0]
    assert sd.arms == [-2, 5]
    assert all(type(a) is int for a in sd.arms)
    np.testing.assert_array_equal(np.asarray(sd.arms)[sd.a], df["A1"].to_numpy())


def test_arm_labels_strings():
    df = make_df()
    df["A1"] = df["A1"].map({0: "MR", 1: "CD"})
    sd = design(df).stages[0]
    assert sd.arms == ["CD", "MR"]
    assert sd.contrast_terms == ["Intercept", "x1"]
    np.testing.assert_array_equal(np.asarray(sd.arms, dtype=object)[sd.a], df["A1"].to_numpy())


def test_arm_labels_categorical_order_sets_reference():
    df = make_df()
    df["A1"] = pd.Categorical(
        df["A1"].map({0: "low", 1: "high"}), categories=["unused", "low", "high"]
    )
    sd = design(df).stages[0]
    assert sd.arms == ["low", "high"]
    assert sd.arms[0] == "low"  # reference: first category present, not alphabetical
    np.testing.assert_array_equal(sd.a, (df["A1"] == "high").to_numpy().astype(int))


def test_three_arm_stage_has_two_contrast_blocks():
    df = make_df()
    df["A1"] = np.tile(["a", "b", "c"], N // 3)
    sd = design(df).stages[0]
    assert sd.arms == ["a", "b", "c"]
    assert sd.n_arms == 3
    pm, pc = sd.X_main.shape[1], sd.X_contrast.shape[1]
    assert sd.X.shape == (N, pm + 2 * pc)
    assert sd.n_coef == pm + 2 * pc
    X = sd.X
    for j, arm in enumerate(["b", "c"], start=1):
        block = X[:, pm + (j - 1) * pc : pm + j * pc]
        np.testing.assert_array_equal(block, sd.X_contrast * (df["A1"] == arm).to_numpy()[:, None])


# --------------------------------------------------------------------------- applies


def test_applies_query_and_mask_agree():
    df = make_df()
    by_query = design(df, two_stages(applies="R == 0 and x1 > -1")).stages[1]
    mask = ((df.R == 0) & (df.x1 > -1)).to_numpy()
    by_mask = design(df, two_stages(applies=mask)).stages[1]
    by_series = design(df, two_stages(applies=(df.R == 0) & (df.x1 > -1))).stages[1]
    for sd in (by_mask, by_series):
        np.testing.assert_array_equal(sd.units, by_query.units)
        np.testing.assert_array_equal(sd.X, by_query.X)
    np.testing.assert_array_equal(by_query.units, np.flatnonzero(mask))


def test_applies_empty_subset():
    with pytest.raises(
        DataError,
        match=r"Stage 'A2' applies='x1 > 100' selects no unit \(empty subset\)\. Check the condition",
    ):
        design(stages=two_stages(applies="x1 > 100"))
    with pytest.raises(DataError, match=r"applies='<mask>' selects no unit"):
        design(stages=two_stages(applies=np.zeros(N, bool)))


def test_applies_invalid_query():
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A2' applies='Rx == 0' could not be evaluated as a DataFrame.query string.*columns \[.*'R'.*e\.g\. 'R == 0'",
    ):
        design(stages=two_stages(applies="Rx == 0"))
    with pytest.raises(SpecificationError, match=r"applies='R ==' could not be evaluated"):
        design(stages=two_stages(applies="R =="))


@pytest.mark.parametrize(
    ("mask", "pattern"),
    [
        (np.ones(N - 1, bool), r"one entry per row \(60 rows\); got dtype bool and shape \(59,\)"),
        (np.ones(N, int), r"got dtype int64 and shape \(60,\).*applies='R == 0'"),
        ("x1 + 1", r"got dtype float64"),
    ],
    ids=["wrong-length", "not-bool", "query-not-bool"],
)
def test_applies_bad_mask(mask, pattern):
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A2' applies= must be a query string or a boolean mask.*" + pattern,
    ):
        design(stages=two_stages(applies=mask))


def test_applies_series_with_foreign_index():
    df = make_df()
    mask = (df.R == 0).reset_index(drop=True)
    mask.index = mask.index + 1000
    with pytest.raises(
        SpecificationError,
        match=r"applies= is a boolean Series whose index does not match the data's index",
    ):
        design(df, two_stages(applies=mask))


def test_applies_nullable_boolean_with_missing():
    df = make_df()
    mask = pd.Series(df.R == 0, dtype="boolean")
    mask.iloc[4] = pd.NA
    with pytest.raises(DataError, match=r"applies= has missing values in rows \[4\].*Fill them"):
        design(df, two_stages(applies=mask))
    mask.iloc[4] = False
    assert design(df, two_stages(applies=mask)).stages[1].n_units == int((mask).sum())


# --------------------------------------------------------------------------- ids, outcome


def test_duplicate_ids():
    df = make_df()
    df.loc[7, "pid"] = df.loc[3, "pid"]
    with pytest.raises(
        DataError,
        match=r"id column 'pid' has duplicate values \[103\] in rows \[3, 7\] \(2 rows\).*one row per unit.*reshape long data",
    ):
        design(df, id="pid")


def test_duplicate_index_without_id():
    df = make_df()
    df.index = [0] * N
    with pytest.raises(DataError, match=r"index has duplicate labels.*reset_index\(drop=True\)"):
        design(df)


def test_unique_ids_build():
    assert design(id="pid").id == "pid"


def test_non_numeric_outcome():
    df = make_df()
    df["y"] = np.where(df.y > 0, "good", "bad")
    with pytest.raises(
        DataError, match=r"Outcome column 'y' has dtype (object|str).*must be numeric\. Convert it"
    ):
        design(df)


def test_infinite_outcome():
    df = make_df()
    df.loc[1, "y"] = np.inf
    with pytest.raises(
        DataError, match=r"Outcome column 'y' has infinite values in rows \[1\].*finite"
    ):
        design(df)


def test_bernoulli_outcome_not_binary():
    with pytest.raises(
        DataError,
        match=r"family='bernoulli' needs outcome 'y' coded 0/1; saw values .*Recode it, or use family='gaussian'",
    ):
        design(family="bernoulli")


def test_bernoulli_outcome_binary_builds():
    df = make_df()
    df["y"] = (df.y > 0).astype(int)
    assert design(df, family="bernoulli").family == "bernoulli"


def test_bad_family_and_outcome_argument():
    with pytest.raises(
        SpecificationError,
        match=r"family='poisson' is not supported; use 'gaussian', 'bernoulli'",
    ):
        design(family="poisson")
    with pytest.raises(SpecificationError, match=r"outcome= must be a column name; got \['y'\]"):
        design(outcome=["y"])


def test_data_not_a_frame_or_empty():
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame.*got dict"):
        build_design(make_df().to_dict(), two_stages(), outcome="y")
    with pytest.raises(DataError, match=r"data has no rows"):
        build_design(make_df().iloc[:0], two_stages(), outcome="y")


def test_non_numeric_reward():
    df = make_df()
    df["r1"] = "high"
    with pytest.raises(
        DataError, match=r"Stage 'A1' reward column 'r1' has dtype .* must be numeric"
    ):
        design(df, [Stage("A1", reward="r1"), Stage("A2")])


def test_reward_column_included():
    df = make_df()
    df.loc[df.R == 1, "A2"] = -1  # value outside applies: ignored
    d = design(
        df, [Stage("A1", main="x1", reward="r1"), Stage("A2", main="x1 + r1", applies="R == 0")]
    )
    np.testing.assert_allclose(d.stages[0].reward, df["r1"].to_numpy())
    assert not d.stages[1].reward.any()
    assert d.stages[1].arms == [0, 1]


def test_reward_only_on_reaching_units():
    df = make_df()
    d = design(df, [Stage("A1", main="x1"), Stage("A2", reward="r1", applies="R == 0")])
    r = d.stages[1].reward
    np.testing.assert_allclose(r[df.R == 0], df.loc[df.R == 0, "r1"])
    assert not r[(df.R == 1).to_numpy()].any()


# --------------------------------------------------------------------------- rank


def test_rank_deficient_collinear_covariate():
    df = make_df()
    df["x1b"] = 2 * df["x1"]
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A1': the design of main='x1 \+ x1b'.*rank deficient \(rank \d+ < \d+ columns; first redundant column 'x1b'\).*Remove the redundant term",
    ):
        design(df, [Stage("A1", main="x1 + x1b"), Stage("A2")])


def test_rank_deficient_constant_within_stage():
    df = make_df()
    df["c"] = np.where(df.R == 0, 3.0, 1.0)  # varies overall, constant among R == 0
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A2'.*contrast='1 \+ c'.*rank deficient.*first redundant column 'c:1'.*on the \d+ units that reach the stage",
    ):
        design(df, two_stages(contrast="1 + c", applies="R == 0"))
    assert design(df, two_stages(contrast="1 + c")).stages[1].contrast_terms == ["Intercept", "c"]


# --------------------------------------------------------------------------- KnownPropensity


@pytest.mark.parametrize(
    ("probs", "pattern"),
    [
        ({0: 0.5, 1: 0.6}, r"must sum to 1; got \{0: 0.5, 1: 0.6\} \(sum 1.1\)\. Rescale them"),
        ({0: 0.0, 1: 1.0}, r"must lie in \(0, 1\); got \{0: 0.0, 1: 1.0\}.*positive probability"),
        ({0: -0.5, 1: 1.5}, r"must lie in \(0, 1\)"),
        ({0: np.nan, 1: 0.5}, r"must lie in \(0, 1\)"),
        ({}, r"must be a non-empty dict \{arm: probability\}; got \{\}"),
        ([0.5, 0.5], r"must be a non-empty dict.*got \[0.5, 0.5\]"),
    ],
    ids=["sum", "zero", "negative", "nan", "empty", "list"],
)
def test_known_propensity_invalid(probs, pattern):
    with pytest.raises(SpecificationError, match=pattern):
        KnownPropensity(probs)


def test_known_propensity_arms_must_match_data():
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A2': KnownPropensity arms \['CD', 'MR'\] do not match the observed arms \[0, 1\]\. Give one probability per arm label",
    ):
        design(stages=two_stages(propensity=KnownPropensity({"CD": 0.5, "MR": 0.5})))
    with pytest.raises(SpecificationError, match=r"KnownPropensity arms \[0, 1, 2\] do not match"):
        design(stages=two_stages(propensity=KnownPropensity({0: 0.25, 1: 0.25, 2: 0.5})))


def test_known_propensity_builds():
    sd = design(stages=two_stages(propensity=KnownPropensity({1: 0.3, 0: 0.7}))).stages[1]
    np.testing.assert_allclose(sd.known_propensity, [0.7, 0.3])  # ordered as sd.arms
    assert repr(KnownPropensity({0: 0.5, 1: 0.5})) == "KnownPropensity({0: 0.5, 1: 0.5})"


# --------------------------------------------------------------------------- DTRModel: group, priors, print


def _model(**kw) -> bd.DTRModel:
    return bd.DTRModel(make_df(), two_stages(), outcome="y", **kw)


def test_group_needs_two_levels():
    df = make_df()
    df["one"] = "s"
    with pytest.raises(
        DataError, match=r"group column 'one' has a single level \['s'\].*Drop group="
    ):
        bd.DTRModel(df, two_stages(), outcome="y", group="one")


def test_group_contrast_without_group():
    with pytest.raises(SpecificationError, match=r"group_contrast=True needs group="):
        _model(group_contrast=True)


def test_unknown_prior_name_lists_valid_names():
    from pymc_extras.prior import Prior

    with pytest.raises(
        PriorError,
        match=r"Unknown prior name 'gamma' in priors\. Valid names: \['beta', 'psi', 'sigma', 'group_sd'.*'propensity_coef'",
    ):
        _model(priors={"gamma": Prior("Normal", mu=0, sigma=1)})
    with pytest.raises(
        PriorError, match=r"Unknown prior name 'gamma' in priors\['A2'\]\. Valid names"
    ):
        _model(priors={"A2": {"gamma": Prior("Normal", mu=0, sigma=1)}})
    with pytest.raises(
        PriorError,
        match=r"priors key 'A9' is neither a prior name .* nor a treatment column \['A1', 'A2'\]",
    ):
        _model(priors={"A9": {"psi": Prior("Normal", mu=0, sigma=1)}})


def test_prior_value_not_a_prior():
    with pytest.raises(
        PriorError, match=r"Prior 'psi' in priors must be a pymc_extras.prior.Prior; got float"
    ):
        _model(priors={"psi": 1.0})
    with pytest.raises(
        PriorError, match=r"priors\['A1'\] must be a dict name -> Prior for stage 'A1'; got float"
    ):
        _model(priors={"A1": 1.0})


def test_priors_not_a_dict():
    with pytest.raises(PriorError, match=r"priors= must be a dict name -> Prior; got list"):
        _model(priors=["psi"])


def test_print_model_mentions_stages_formulas_priors_and_fit(capsys):
    from pymc_extras.prior import Prior

    model = _model(priors={"A2": {"psi": Prior("Normal", mu=0, sigma=2)}})
    print(model)
    text = capsys.readouterr().out
    for part in (
        "2 stage(s)",
        "60 units",
        "'A1'",
        "'A2'",
        "main:",
        "x1 + A1 + x2",
        "contrast:",
        "1 + x2",
        "propensity: logit(1)",
        "priors:",
        "psi=",
        "defaults",
        "prior names",
        "model.fit(",
    ):
        assert part in text, part
    assert repr(model) == str(model)


# --------------------------------------------------------------------------- fit arguments (fail before sampling)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"draws": 0}, r"draws= must be an integer >= 1; got 0"),
        ({"draws": 10.5}, r"draws= must be an integer >= 1; got 10.5"),
        ({"tune": -1}, r"tune= must be an integer >= 0; got -1"),
        ({"chains": "4"}, r"chains= must be an integer >= 1; got '4'"),
        ({"chains": True}, r"chains= must be an integer >= 1; got True"),
        ({"imputations": 0}, r"imputations= must be an integer >= 1; got 0"),
        (
            {"propagation": "bogus"},
            r"propagation='bogus' is not one of \['mean', 'predictive', 'augmented', 'modal'\]",
        ),
        ({"engine": "bogus"}, r"engine='bogus' is not one of \['auto', 'conjugate', 'gibbs', 'mcmc'\]"),
        ({"sampler": "bogus"}, r"sampler='bogus' is not one of \['nutpie', 'nutpie-jax', 'pymc', 'numpyro'\]"),
        ({"random_seed": -1}, r"random_seed= must be a non-negative integer or None; got -1"),
        ({"random_seed": 1.5}, r"random_seed= must be a non-negative integer or None; got 1.5"),
    ],
)
def test_fit_argument_errors(kw, pattern):
    with pytest.raises(FitError, match=pattern):
        _model().fit(**kw)


def test_fit_conjugate_with_group():
    model = _model(group="site")
    with pytest.raises(
        FitError,
        match=r"engine='conjugate' is exact only for linear Gaussian stages without groups.*stage 'A1' is not: group='site' adds hierarchical effects.*Use engine='auto' or 'mcmc'",
    ):
        model.fit(engine="conjugate", random_seed=1)


def test_fit_conjugate_with_bernoulli():
    df = make_df()
    df["y"] = (df.y > 0).astype(int)
    model = bd.DTRModel(df, two_stages(), outcome="y", family="bernoulli")
    with pytest.raises(
        FitError,
        match=r"engine='conjugate'.*stage 'A2' is not: the final outcome family is 'bernoulli'",
    ):
        model.fit(engine="conjugate", random_seed=1)


def test_fit_robust_needs_propensity_everywhere():
    with pytest.raises(
        FitError,
        match=r"robust=True needs a propensity model at every stage; stage 'A2' has propensity=None",
    ):
        _model().fit(robust=True, random_seed=1)


# --------------------------------------------------------------------------- regimes


def test_regime_static_empty():
    with pytest.raises(
        RegimeError,
        match=r"Regime.static\(\) needs at least one stage=arm pair, e.g. Regime.static\(A1=1, A2=0\)",
    ):
        Regime.static()


def test_regime_static_non_scalar_arm():
    with pytest.raises(
        RegimeError,
        match=r"Regime.static\(A1=\.\.\.\) needs one arm label; got \[0, 1\].*Regime.dynamic",
    ):
        Regime.static(A1=[0, 1])


def test_regime_dynamic_rule_not_callable():
    with pytest.raises(
        RegimeError,
        match=r"Regime rule for stage 'A1' must be a callable df -> arm labels or the string 'optimal'; got 3\. For a fixed arm use Regime.static",
    ):
        Regime.dynamic({"A1": 3})
    with pytest.raises(RegimeError, match=r"rule for stage 'A1' must be a callable.*got array"):
        Regime.dynamic({"A1": np.array([0, 1])})
    with pytest.raises(RegimeError, match=r"got 'best'"):
        Regime.dynamic({"A1": "best"})
    with pytest.raises(RegimeError, match=r"Regime.dynamic\(rules\) needs a non-empty dict"):
        Regime.dynamic({})
    with pytest.raises(
        RegimeError, match=r"Regime.dynamic\(rules\) needs a non-empty dict.*got \[.*\]"
    ):
        Regime.dynamic([lambda d: 0])
    with pytest.raises(
        RegimeError, match=r"Regime stages must be treatment column names \(str\); got 1"
    ):
        Regime.dynamic({1: lambda d: 0})


def test_regime_check_covers():
    reg = Regime.static(A1=1, A9=0)
    with pytest.raises(
        RegimeError,
        match=r"Regime 'static\(A1=1, A9=0\)' names stage\(s\) \['A9'\] that are not treatments of the model; the treatments are \['A1', 'A2'\]",
    ):
        reg.check_covers(["A1", "A2"])
    with pytest.raises(
        RegimeError,
        match=r"gives no rule for stage\(s\) \['A2'\]\. Add them, e.g. `regime \| bd.Regime.static\(A2=\.\.\.\)`",
    ):
        Regime.static(A1=1).check_covers(["A1", "A2"])
    Regime.static(A1=1, A2=0).check_covers(["A1", "A2"])
    Regime.optimal().check_covers(["A1", "A2"])
    assert not Regime.static(A1=1).covers(["A1", "A2"])


def test_regime_combine_overlapping():
    with pytest.raises(
        RegimeError,
        match=r"Regimes 'static\(A1=1\)' and 'static\(A1=0, A2=1\)' both give rules for \['A1'\]; each stage may have one rule",
    ):
        Regime.static(A1=1) | Regime.static(A1=0, A2=1)
    with pytest.raises(RegimeError, match=r"Cannot combine the optimal regime with '\|'"):
        Regime.optimal() | Regime.static(A1=1)


def test_regime_combine_and_assign():
    reg = Regime.threshold(stage="A1", column="x1", cutoff=0.0, above=1, below=0) | Regime.static(
        A2="MR"
    )
    df = pd.DataFrame({"x1": [-1.0, 2.0]})
    np.testing.assert_array_equal(reg.assign("A1", df), [0, 1])
    assert list(reg.assign("A2", df)) == ["MR", "MR"]
    assert reg.covers(["A1", "A2"])
    mixed = Regime.dynamic({"A1": "optimal", "A2": lambda d: np.ones(len(d), int)})
    assert mixed.follows_optimal("A1") and not mixed.follows_optimal("A2")
    assert not mixed.is_optimal and Regime.optimal().is_optimal
    with pytest.raises(RegimeError, match=r"Stage 'A1' of regime .* follows the optimal rule"):
        mixed.assign("A1", df)


def test_regime_assign_errors():
    reg = Regime.dynamic({"A1": lambda d: [0, 1, 0]})
    with pytest.raises(
        RegimeError,
        match=r"Rule for stage 'A1' of regime .* returned shape \(3,\); it must return one arm label per row \(2 rows\)",
    ):
        reg.assign("A1", pd.DataFrame({"x1": [0.0, 1.0]}))
    with pytest.raises(
        RegimeError,
        match=r"Threshold rule for stage 'A1' uses column 'x5', which is not in the data",
    ):
        Regime.threshold(stage="A1", column="x5", cutoff=0, above=1, below=0).assign(
            "A1", pd.DataFrame({"x1": [0.0]})
        )


def test_as_regime():
    from bayesdtr.regimes import as_regime

    assert as_regime("optimal").is_optimal
    with pytest.raises(RegimeError, match=r"regime must be 'optimal' or a bd.Regime.*got 'best'"):
        as_regime("best")


def test_formula_error_has_no_terminal_colour_codes():
    with pytest.raises(SpecificationError) as info:
        design(stages=[Stage("A1", main="x1 + ("), Stage("A2")])
    assert "\x1b[" not in str(info.value)


def test_categorical_covariate_with_unused_levels():
    df = make_df()
    df["sev"] = pd.Categorical(
        np.where(df.x2 > 0, "mild", "severe"), categories=["none", "mild", "severe"]
    )
    sd = design(df, [Stage("A1", main="x1 + sev"), Stage("A2")]).stages[0]
    assert sd.main_terms == ["Intercept", "x1", "sev[T.severe]"]


def test_bad_formula_term():
    with pytest.raises(
        SpecificationError,
        match=r"Stage 'A1' main=: cannot build the design of 'nosuchfn\(x1\)'.*Check the formula",
    ):
        design(stages=[Stage("A1", main="nosuchfn(x1)"), Stage("A2")])


def test_applies_query_on_a_column_with_missing_values():
    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"x": rng.normal(size=n), "A1": rng.integers(0, 2, n), "A2": rng.integers(0, 2, n), "y": rng.normal(size=n)})
    df["R"] = rng.integers(0, 2, n).astype(float)
    df.loc[[4, 9], "R"] = np.nan
    stages = [bd.Stage("A1", main="x", contrast="1"), bd.Stage("A2", main="x", contrast="1", applies="R == 0")]
    with pytest.raises(bd.DataError, match=r"applies='R == 0' uses column 'R', which is missing in rows \[4, 9\]"):
        bd.DTRModel(df, stages, outcome="y")


def test_robust_refuses_engine_and_priors():
    from pymc_extras.prior import Prior

    rng = np.random.default_rng(4)
    n = 80
    df = pd.DataFrame({"x": rng.normal(size=n), "A1": rng.integers(0, 2, n), "y": rng.normal(size=n)})
    stage = bd.Stage("A1", main="x", contrast="1", propensity=bd.KnownPropensity({0: 0.5, 1: 0.5}))
    with pytest.raises(bd.FitError, match=r"engine='mcmc' cannot be combined with it"):
        bd.DTRModel(df, [stage], outcome="y").fit(robust=True, engine="mcmc", random_seed=1)
    model = bd.DTRModel(df, [stage], outcome="y", priors={"psi": Prior("Normal", mu=0, sigma=1)})
    with pytest.raises(bd.FitError, match=r"robust=True uses no outcome priors"):
        model.fit(robust=True, random_seed=1)
