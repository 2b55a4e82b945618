"""Bad input raises a bayesdtr error naming the column or argument, or works (issue 10).

Fits here use the closed-form (conjugate) engine and take a fraction of a second; the one test
that needs NUTS is marked ``integration``.
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr import DataError, FitError, RegimeError, SpecificationError, Stage
from bayesdtr.data.validate import MAX_ABS, new_group_codes

N = 60


def make_df(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "site": np.repeat(["s1", "s2", "s3"], n // 3 + 1)[:n],
            "x1": rng.normal(size=n),
            "A1": np.tile([0, 1], n // 2),
            "R": rng.integers(0, 2, n),
            "x2": rng.normal(size=n),
            "A2": np.repeat([0, 1], n // 2),
        }
    )
    df["y"] = df.x1 + df.A1 * df.x1 + df.A2 + rng.normal(size=n)
    return df


def stages(main1: str = "x1", main2: str = "x1 + A1 + x2", **kw) -> list[Stage]:
    return [
        Stage("A1", main=main1, contrast="1 + x1", **kw),
        Stage("A2", main=main2, contrast="1 + x2"),
    ]


def model(df: pd.DataFrame | None = None, st: list[Stage] | None = None, **kw) -> bd.DTRModel:
    return bd.DTRModel(
        make_df() if df is None else df, stages() if st is None else st, outcome="y", **kw
    )


def fit(m: bd.DTRModel, **kw) -> bd.DTRPosterior:
    return m.fit(**({"draws": 50, "chains": 2, "random_seed": 1, "progressbar": False} | kw))


@pytest.fixture(scope="module")
def post() -> bd.DTRPosterior:
    return fit(model(st=stages(main2="x1 + C(A1) + x2 + site")))


@pytest.fixture(scope="module")
def bmi():
    df = bd.load_data("bmi")
    df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
    return df


TIMELINE = {
    "baseline": ["gender", "race", "parentBMI", "baselineBMI"],
    "A1": ["month4BMI"],
    "A2": ["month12BMI"],
}


# --------------------------------------------------------------------------- raw exceptions


def test_inf_in_used_covariate():
    df = make_df()
    df.loc[3, "x1"] = np.inf
    with pytest.raises(
        DataError, match=r"Column 'x1' \(used by Stage 'A1'\) has infinite values in rows \[3\]"
    ):
        model(df)


def test_inf_in_unused_covariate_is_fine():
    df = make_df()
    df["z"] = np.inf
    assert model(df).design.n == N


def test_nonfinite_transform_is_caught():
    df = make_df()
    df["pos"] = np.abs(df.x1)
    df.loc[5, "pos"] = 0.0
    with pytest.raises(DataError, match=r"non-finite entries .* rows \[5\]"):
        model(df, stages(main1="np.log(pos)"))


@pytest.mark.parametrize("value", [1e154, -1e101, 1e300])
def test_huge_outcome_is_refused(value):
    df = make_df()
    df.loc[2, "y"] = value
    with pytest.raises(
        DataError,
        match=r"Column 'y' \(used by outcome=\) has values up to .* accepts magnitudes up to 1e\+100.*Rescale",
    ):
        model(df)


def test_large_outcome_below_the_bound_fits():
    df = make_df()
    df["y"] = df["y"] * 1e90
    p = fit(model(df))
    assert np.all(np.isfinite(p.value().values))
    assert MAX_ABS == 1e100


def test_huge_covariate_is_refused():
    df = make_df()
    df["x2"] = df["x2"] * 1e120
    with pytest.raises(DataError, match=r"Column 'x2' .*magnitudes up to 1e\+100"):
        model(df)


def test_duplicated_column_names():
    df = make_df()
    df.columns = ["site", "x1", "A1", "R", "x1", "A2", "y"]
    with pytest.raises(DataError, match=r"duplicated column names \['x1'\].*Rename or drop"):
        model(df)


def test_multiindex_columns():
    df = make_df()
    df.columns = pd.MultiIndex.from_tuples([(c, "v") for c in df.columns])
    with pytest.raises(DataError, match=r"MultiIndex columns .*Flatten them"):
        model(df)


def test_lists_in_an_unused_column_are_fine_and_hashed():
    df = make_df()
    df["notes"] = [[i] for i in range(N)]
    df["meta"] = [{"k": i} for i in range(N)]
    assert len(model(df).design.data_hash) == 64


@pytest.mark.parametrize("col", ["x1", "A1"])
def test_lists_in_a_used_column(col):
    df = make_df()
    df[col] = df[col].astype(object)
    df.at[4, col] = [1, 2]
    with pytest.raises(DataError, match=rf"Column '{col}' .*holds containers \(list.*rows \[4\]"):
        model(df)


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "string", "category", object])
def test_string_treatment_dtypes_work(dtype):
    df = make_df()
    df["A1"] = df["A1"].map({0: "ctl", 1: "trt"}).astype(dtype)
    p = fit(model(df))
    assert list(p.design.stages[0].arms) == ["ctl", "trt"]
    assert np.isfinite(p.value(bd.Regime.static(A1="trt", A2=1)).values).all()
    new = make_df(seed=3)
    new["A1"] = new["A1"].map({0: "ctl", 1: "trt"}).astype(dtype)
    assert p.prob_optimal(2, new).shape == (N, 2)


def test_formula_with_bar():
    with pytest.raises(
        SpecificationError, match=r"formula 'x1 \| site' has several parts .*'\|'.*use group="
    ):
        model(st=stages(main1="x1 | site"))


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (pd.to_timedelta(np.arange(N), unit="D"), "timedelta"),
        (pd.date_range("2020-01-01", periods=N), "datetime"),
        (pd.date_range("2020-01-01", periods=N, tz="UTC"), "datetime"),
        (pd.period_range("2020-01", periods=N, freq="M"), "period"),
    ],
)
def test_dates_and_durations_are_not_covariates(values, dtype):
    df = make_df()
    df["t"] = values
    with pytest.raises(DataError, match=rf"Column 't' .*has dtype {dtype}.*Convert it to a number"):
        model(df, stages(main1="x1 + t"))


@pytest.mark.parametrize("col", ["x1", "y"])
def test_complex_numbers_are_refused(col):
    df = make_df()
    df[col] = df[col] + 0j
    with pytest.raises(
        DataError, match=rf"Column '{col}' .*holds complex numbers; values must be real"
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ComplexWarning on the way
            model(df)


def test_argument_checks(post):
    regimes = {"optimal": "optimal"}
    for bad in (2, 0, 1.0, -0.5, "0.9", True, np.nan):
        with pytest.raises(FitError, match=r"hdi_prob= must be a number in \(0, 1\)"):
            post.compare(regimes, hdi_prob=bad)
        with pytest.raises(FitError, match=r"hdi_prob= must be a number in \(0, 1\)"):
            post.summary(hdi_prob=bad)
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(FitError, match=r"max_draws= must be an integer >= 1; got"):
            post.rule(max_draws=bad)
    assert post.rule(max_draws=1) is not None


@pytest.mark.parametrize("cutoff", ["a", None, np.nan, np.inf, [0, 1], True])
def test_threshold_cutoff(cutoff):
    with pytest.raises(RegimeError, match=r"cutoff=...\) must be a finite real number"):
        bd.Regime.threshold(stage="A1", column="x1", cutoff=cutoff, above=1, below=0)


def test_threshold_missing_value_is_not_below():
    d = bd.Regime.threshold(stage="A1", column="x1", cutoff=0, above=1, below=0)
    with pytest.raises(RegimeError, match=r"column 'x1' is missing in rows \[1\]"):
        d.assign("A1", pd.DataFrame({"x1": [1.0, np.nan]}))


@pytest.mark.parametrize("name", [3, ["a"], b"x"])
def test_regime_names_are_strings(name):
    with pytest.raises(RegimeError, match=r"name=...\) must be a string or None"):
        bd.Regime.static(A1=1, name=name)
    with pytest.raises(RegimeError, match=r"name= must be a string"):
        bd.Regime.dynamic({"A1": lambda d: 1}, name=name)


def test_absurd_draws_are_refused_with_the_memory_needed():
    with pytest.raises(
        FitError, match=r"draws=1000000000000 x chains=4 .*would need at least [\d,.]+ GiB"
    ):
        model().fit(draws=10**12, progressbar=False)


# --------------------------------------------------------------------------- wrong answers


@pytest.mark.parametrize("label", ["XX", "cd", ""])
def test_unseen_treatment_label_in_new_data_bmi(bmi, label):
    m = bd.DTRModel(
        bmi,
        [
            bd.Stage("A1", main="race + baselineBMI", contrast="1 + baselineBMI"),
            bd.Stage("A2", main="A1 + month4BMI", contrast="1 + A1 + month4BMI"),
        ],
        outcome="y",
    )
    p = fit(m)
    new = bmi.head(4).copy()
    new.loc[new.index[1], "A1"] = label
    with pytest.raises(
        DataError,
        match=rf"column 'A1' has label\(s\) '{label}' in rows \[1\].*never saw.*\['CD', 'MR'\]",
    ):
        p.prob_optimal(2, new)
    with pytest.raises(DataError, match=r"column 'A1'"):
        p.q_values(2, new)


@pytest.mark.parametrize(
    ("col", "value", "known"),
    [("A1", 7, r"\[0, 1\]"), ("A1", "1", r"\[0, 1\]"), ("site", "s9", r"\['s1', 's2', 's3'\]")],
)
def test_unseen_level_in_new_data(post, col, value, known):
    new = make_df(seed=5)
    new[col] = new[col].astype(object)
    new.at[2, col] = value
    with pytest.raises(
        DataError, match=rf"column '{col}' has label\(s\) {value!r} in rows \[2\].*{known}"
    ):
        post.optimal_treatment(2, new)


def test_earlier_numeric_treatment_must_be_an_arm():
    p = fit(model())
    new = make_df(seed=5)
    new.loc[0, "A1"] = 7
    with pytest.raises(
        DataError, match=r"column 'A1' has label\(s\) 7 .*arms of that earlier stage are \[0, 1\]"
    ):
        p.q_values(2, new)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, None])
def test_nonfinite_new_data(post, value):
    new = make_df(seed=5)
    new["x2"] = new["x2"].astype(object) if value is None else new["x2"]
    new.at[1, "x2"] = value
    with pytest.raises(
        DataError,
        match=r"(column 'x2' is missing in rows \[1\])|(Column 'x2' .*infinite values in rows \[1\])",
    ):
        post.prob_optimal(2, new)


def test_new_data_keeps_rows_and_order(post):
    new = make_df(seed=5).sample(frac=1.0, random_state=1)
    out = post.prob_optimal(2, new)
    assert list(out.index) == list(new.index)
    assert list(post.q_values(2, new).obs.values) == list(new.index)


def test_group_labels_in_new_data():
    levels = [1, 2, 5]
    key = lambda v: 17  # noqa: E731
    codes = new_group_codes(pd.Series([5, 5.0, 2, 99], name="site"), levels, "site", "data=", key)
    assert list(codes) == [2, 2, 1, -18]  # numbers match numbers; 99 is a new group
    for bad in ([np.nan, 1], [None, 1], [pd.NA, 1]):
        with pytest.raises(DataError, match=r"group column 'site' is missing in rows \[0\]"):
            new_group_codes(pd.Series(bad, name="site", dtype=object), levels, "site", "data=", key)
    with pytest.raises(
        DataError,
        match=r"group label '5' in row 0 is a str, but the fitted levels of 'site' are numbers.*astype\(int\)",
    ):
        new_group_codes(pd.Series(["5"], name="site"), levels, "site", "data=", key)
    with pytest.raises(
        DataError, match=r"group label 5 .* is a int, but the fitted levels of 'site' are strings"
    ):
        new_group_codes(pd.Series([5], name="site"), ["3", "5"], "site", "data=", key)


@pytest.mark.parametrize(
    ("setup", "formula", "term"),
    [
        (lambda d: d.assign(s="k"), "x1 + s", "s"),
        (lambda d: d.assign(s=pd.Categorical(["k"] * N, categories=["k", "m"])), "x1 + s", "s"),
        (lambda d: d.assign(g=5), "x1 + C(g)", "C(g)"),
    ],
)
def test_constant_categorical_is_refused_like_a_constant_number(setup, formula, term):
    df = setup(make_df())
    with pytest.raises(
        SpecificationError,
        match=rf"term '{re.escape(term)}' is constant \(a single category level\) on the {N} units",
    ):
        model(df, stages(main1=formula))
    with pytest.raises(SpecificationError, match=r"rank deficient.*first redundant column 'c'"):
        model(df.assign(c=1.0), stages(main1="x1 + c"))


def test_site_constant_among_a_stage_units():
    df = make_df()
    df["R"] = (df["site"] == "s2").astype(int)
    with pytest.raises(
        SpecificationError, match=r"Stage 'A2' main='x1 \+ C\(site\)': term 'C\(site\)' is constant"
    ):
        model(df, [Stage("A1"), Stage("A2", main="x1 + C(site)", applies="R == 1")])


def test_series_rule_is_aligned_by_index():
    df = pd.DataFrame({"x1": [-1.0, 2.0, -3.0]}, index=[10, 11, 12])
    shuffled = bd.Regime.dynamic({"A1": lambda d: (d.x1 > 0).astype(int).iloc[::-1]})
    assert list(shuffled.assign("A1", df)) == [0, 1, 0]
    foreign = bd.Regime.dynamic({"A1": lambda d: (d.x1 > 0).astype(int).reset_index(drop=True)})
    with pytest.raises(
        RegimeError,
        match=r"returned a Series whose index does not match .*labels not in the data: \[0, 1, 2\]",
    ):
        foreign.assign("A1", df)
    frame = bd.Regime.dynamic({"A1": lambda d: d[["x1"]]})
    with pytest.raises(RegimeError, match=r"returned a DataFrame"):
        frame.assign("A1", df)


def test_series_rule_value_matches_array_rule(post):
    arr = bd.Regime.dynamic(
        {"A1": lambda d: (d.x1 > 0).astype(int).to_numpy(), "A2": lambda d: np.ones(len(d), int)}
    )
    ser = bd.Regime.dynamic(
        {"A1": lambda d: (d.x1 > 0).astype(int).sample(frac=1, random_state=2), "A2": lambda d: 1}
    )
    np.testing.assert_allclose(post.value(arr).values, post.value(ser).values)


def test_ties_in_p_best_are_split(post):
    same = bd.Regime.static(A1=1, A2=1)
    tab = post.compare(
        {"a": same, "b": bd.Regime.static(A1=1, A2=1), "never": bd.Regime.static(A1=0, A2=0)}
    )
    assert tab.loc["a", "p_best"] == pytest.approx(tab.loc["b", "p_best"])
    # by hand: a draw where "a" (= "b") beats "never" gives each copy 1/2, a three-way tie 1/3
    va = post.value(same).values.ravel()
    vn = post.value(bd.Regime.static(A1=0, A2=0)).values.ravel()
    share = np.where(va > vn, 0.5, np.where(va == vn, 1 / 3, 0.0))
    assert tab.loc["a", "p_best"] == pytest.approx(share.mean(), abs=1e-12)
    assert tab.loc["never", "p_best"] == pytest.approx(np.mean((vn > va) + (va == vn) / 3), abs=1e-12)
    assert 0 < tab.loc["a", "p_best"] < 0.5  # both outcomes occur: the check is not vacuous


# --------------------------------------------------------------------------- the hang


@pytest.mark.parametrize("n", [200, 400])
def test_categorical_around_a_continuous_covariate_fails_fast(n):
    df = bd.scenario("two_stage_cont").sample(n, seed=1)
    t0 = time.perf_counter()
    with pytest.raises(
        SpecificationError,
        match=rf"categorical 'C\(X1\)' has {n} levels among the {n} units .*drop C\(...\)",
    ):
        bd.DTRModel(df, [bd.Stage("A1", main="C(X1)"), bd.Stage("A2", main="X1 + X2")], outcome="Y")
    # guards against the old hang (minutes), not a speed claim: generous for a loaded machine
    assert time.perf_counter() - t0 < 60.0


def test_rank_check_of_a_wide_deficient_design_is_one_qr():
    df = bd.scenario("two_stage_cont").sample(400, seed=1)
    df["g"] = np.arange(400) % 150  # 150 levels: allowed, but the contrast block is deficient
    df["A1"] = np.where(df["g"] == 3, 0, df["A1"])
    t0 = time.perf_counter()
    with pytest.raises(
        SpecificationError, match=r"rank deficient .*first redundant column 'C\(g\)\[T\.\d+\]:1'"
    ):
        bd.DTRModel(
            df,
            [bd.Stage("A1", main="X1 + C(g)", contrast="1 + C(g)"), bd.Stage("A2", main="X1")],
            outcome="Y",
        )
    # guards against the old hang (minutes), not a speed claim: generous for a loaded machine
    assert time.perf_counter() - t0 < 60.0


# --------------------------------------------------------------------------- time order


def test_timeline_accepts_a_causal_specification(bmi):
    m = bd.DTRModel(
        bmi,
        [
            bd.Stage(
                "A1",
                main="race + baselineBMI",
                contrast="1 + baselineBMI",
                propensity=bd.KnownPropensity({"CD": 0.5, "MR": 0.5}),
            ),
            bd.Stage("A2", main="A1 + month4BMI", contrast="1 + month4BMI"),
        ],
        outcome="y",
        timeline=TIMELINE,
    )
    assert m.design.timeline["month4BMI"] == 1 and m.design.timeline["A2"] == 2
    assert "timeline: {'baseline'" in str(m)
    with pytest.raises(FitError, match=r"strict= must be True or False; got 'yes'"):
        m.fit(strict="yes")


@pytest.mark.parametrize(
    ("stage", "arg", "formula", "pattern"),
    [
        (
            1,
            "main",
            "baselineBMI + month4BMI",
            r"Stage 'A1' main=.* uses \['month4BMI'\], measured after decision\(s\) \{'month4BMI': 'A1'\}",
        ),
        (1, "propensity", "month4BMI", r"Stage 'A1' propensity='month4BMI' uses \['month4BMI'\]"),
        (
            2,
            "main",
            "month4BMI + month12BMI",
            r"Stage 'A2' main=.* uses \['month12BMI'\].*\['month12BMI'\] are measured after the last decision \(outcome ingredients\).*under \['A1'\]",
        ),
        (
            2,
            "contrast",
            "1 + gender + weight",
            r"uses \['weight'\], which timeline= does not place in time",
        ),
    ],
)
def test_timeline_refuses_later_or_undeclared_covariates(bmi, stage, arg, formula, pattern):
    df = bmi.assign(weight=1.0)
    st = [bd.Stage("A1", main="baselineBMI"), bd.Stage("A2", main="month4BMI")]
    st[stage - 1] = bd.Stage(st[stage - 1].treatment, **{arg: formula})
    with pytest.raises(SpecificationError, match=pattern):
        bd.DTRModel(df, st, outcome="y", timeline=TIMELINE)
    if arg != "contrast":  # without a timeline, today's behaviour: the look-ahead is not known
        bd.DTRModel(df, st, outcome="y")


@pytest.mark.parametrize(
    ("timeline", "exc", "pattern"),
    [
        (
            {"baseline": ["race"], "A3": ["x"]},
            SpecificationError,
            r"timeline= has key\(s\) \['A3'\]; the keys are 'baseline'",
        ),
        (
            {"baseline": "race"},
            SpecificationError,
            r"timeline\['baseline'\] must be a list of column names",
        ),
        (
            {"baseline": ["race"], "A1": ["race"]},
            SpecificationError,
            r"lists column 'race' under both 'baseline' and 'A1'",
        ),
        ({"baseline": ["y"]}, SpecificationError, r"lists 'y', which is the outcome"),
        ({"baseline": ["A2"]}, SpecificationError, r"lists 'A2', which is a treatment"),
        (
            {"baseline": ["nope"]},
            DataError,
            r"timeline= lists column\(s\) \['nope'\] that are not in the data",
        ),
        (["race"], SpecificationError, r"timeline= must be a dict"),
    ],
)
def test_bad_timelines(bmi, timeline, exc, pattern):
    with pytest.raises(exc, match=pattern):
        bd.DTRModel(bmi, [bd.Stage("A1"), bd.Stage("A2")], outcome="y", timeline=timeline)


# --------------------------------------------------------------------------- quoting


@pytest.mark.parametrize(
    "ref", ["`parent.BMI`", "Q('parent.BMI')", 'Q("parent.BMI")', "center(`parent.BMI`)"]
)
def test_dotted_and_spaced_column_names_can_be_quoted(bmi, ref):
    df = bmi.rename(columns={"parentBMI": "parent.BMI", "baselineBMI": "baseline BMI"})
    m = bd.DTRModel(
        df, [bd.Stage("A1", main=f"{ref} + `baseline BMI`"), bd.Stage("A2", main=ref)], outcome="y"
    )
    assert m.design.stages[0].columns == ["baseline BMI", "parent.BMI"]


def test_unquoted_dotted_name_says_how_to_quote(bmi):
    df = bmi.rename(columns={"parentBMI": "parent.BMI"})
    bd.DTRModel(
        df, [bd.Stage("A1", main="parent.BMI"), bd.Stage("A2")], outcome="y"
    )  # a plain lookup
    hint = r"Column 'parent.BMI' has a dot or a space in its name: quote it in formulas with backticks, e.g. `parent.BMI`"
    with pytest.raises(
        DataError, match=r"column\(s\) \['parent'\] that are not in the data.*" + hint
    ):
        bd.DTRModel(df, [bd.Stage("A1", main="parent"), bd.Stage("A2")], outcome="y")
    with pytest.raises(
        SpecificationError,
        match=r"cannot build the design of 'np.log\(parent.BMI\)'.*name 'parent' is not defined.*"
        + hint,
    ):
        bd.DTRModel(df, [bd.Stage("A1", main="np.log(parent.BMI)"), bd.Stage("A2")], outcome="y")


# --------------------------------------------------------------------------- positivity and fit quality


def test_positivity_and_weight_ess_warnings():
    df = make_df()
    df["A1"] = (np.arange(N) % 20 == 0).astype(int)  # 3 of 60 units got arm 1
    st = [
        Stage("A1", main="x1", contrast="1", propensity=bd.KnownPropensity({0: 0.99, 1: 0.01})),
        Stage("A2", main="x1 + x2", contrast="1", propensity=bd.KnownPropensity({0: 0.5, 1: 0.5})),
    ]
    with pytest.warns(
        bd.PositivityWarning,
        match=r"Stage 'A1': the propensity posterior puts units near 0 or 1 for an arm \(P\(arm 1\) < 0.02 for 60 unit\(s\), of 60 units\)",
    ):
        p = fit(model(df, st))
    with pytest.warns(
        bd.PositivityWarning,
        match=r"method='ipw' for regime 'static\(A1=1, A2=1\)': .*Kish effective sample size of [\d.]+ \(posterior median\) out of 60 units",
    ):
        v = p.value(bd.Regime.static(A1=1, A2=1), method="ipw")
    assert 0 < v.attrs["weight_ess"] < 6 and v.attrs["n_units"] == N
    with warnings.catch_warnings():
        warnings.simplefilter("error", bd.PositivityWarning)
        v0 = p.value(bd.Regime.static(A1=0, A2=1), method="aipw")
    assert v0.attrs["weight_ess"] > 0.1 * N


def test_strict_passes_for_exact_draws():
    with warnings.catch_warnings():
        warnings.simplefilter("error", bd.ConvergenceWarning)
        assert fit(model(), strict=True, chains=1) is not None


@pytest.mark.integration
def test_strict_raises_on_failed_diagnostics():
    df = make_df(n=120)
    st = [
        Stage("A1", main="x1", contrast="1 + x1", propensity="1 + x1"),
        Stage("A2", main="x1 + x2", contrast="1"),
    ]
    with pytest.raises(
        FitError,
        match=r"fit\(strict=True\): .*bulk ESS down to \d+ \(< 400\); chains=1, so R-hat is undefined",
    ):
        fit(model(df, st), draws=30, tune=30, chains=1, strict=True)
    with pytest.warns(bd.ConvergenceWarning, match=r"chains=1, so R-hat is undefined"):
        p = fit(model(df, st), draws=30, tune=30, chains=1)
    assert set(p.diagnostics()["model"]) == {"outcome", "propensity"}


@pytest.mark.integration
def test_group_labels_in_queries_match_fitting():
    df = make_df(n=90)
    df["clinic"] = np.repeat([1, 2, 5], 30)
    st = [Stage("A1", main="x1", contrast="1 + x1"), Stage("A2", main="x1 + x2", contrast="1")]
    p = fit(
        bd.DTRModel(df, st, outcome="y", group="clinic"), draws=20, tune=50, chains=2, warn=False
    )
    new = make_df(n=6, seed=4).assign(clinic=[1, 2, 5, 5.0, 9, 9])
    new.loc[3, ["x1", "x2"]] = new.loc[2, ["x1", "x2"]]  # same history, site 5 spelled 5 and 5.0
    out = p.prob_optimal(1, new)  # 9 is a new clinic; 5.0 is clinic 5
    assert list(out.index) == list(new.index)
    q = p.q_values(1, new).values
    np.testing.assert_allclose(q[:, :, 2], q[:, :, 3])
    for bad, pattern in (
        (np.nan, r"group column 'clinic' is missing in rows \[1\]"),
        ("5", r"group label '5' in row 1 is a str, but the fitted levels of 'clinic' are numbers"),
    ):
        wrong = new.astype({"clinic": object})
        wrong.at[1, "clinic"] = bad
        with pytest.raises(DataError, match=pattern):
            p.prob_optimal(1, wrong)
