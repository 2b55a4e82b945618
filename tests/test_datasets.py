"""Shipped datasets: names, shapes, the bmiData columns, and unknown-name errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr import DataError
from bayesdtr.data.datasets import DATASETS

#: name -> (rows, columns), from ../shared/data/README.md
EXPECTED = {
    "bmi": (
        210,
        ["gender", "race", "parentBMI", "baselineBMI", "month4BMI", "month12BMI", "A1", "A2"],
    ),
    "adhd": (150, ["id", "o11", "o12", "o13", "o14", "a1", "r", "o21", "o22", "a2", "y"]),
    "two_stage_cont": (1000, ["X1", "A1", "X2", "A2", "Y"]),
    "two_stage_cens": (1000, ["X11", "X12", "A1", "X21", "X22", "A2", "delta", "T1", "T2"]),
    "two_stage_surv": (1000, ["X11", "X12", "A1", "X21", "X22", "A2", "delta", "T1", "T2"]),
    "codiacs": (108, ["ID", "A1", "O2", "A2", "Y", "group"]),
    "ldt": (200, ["X", "R", "Z", "U", "delta"]),
    "wrse": (200, ["X", "TR", "R", "Z", "U", "delta"]),
    "lr": (100, ["X", "TR", "R", "Z", "U", "delta"]),
    "ph": (400, ["X", "TR", "R", "Z", "U", "delta", "V"]),
    "chr": (200, ["X", "R", "Z", "U", "delta", "V1", "V2"]),
}


def test_list_datasets_returns_all_names():
    table = bd.list_datasets()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["name", "file", "description"]
    assert sorted(table["name"]) == sorted(EXPECTED)
    assert table["name"].is_unique
    assert table["description"].str.len().min() > 20  # every dataset has its provenance


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_dataset_loads_with_documented_shape(name):
    df = bd.load_data(name)
    rows, cols = EXPECTED[name]
    assert isinstance(df, pd.DataFrame)
    assert len(df) == rows
    assert list(df.columns) == cols
    assert df.index.equals(pd.RangeIndex(rows))


def test_bmi_columns_and_arms():
    df = bd.load_data("bmi")
    assert df.shape == (210, 8)
    assert set(df.columns) == {
        "gender",
        "race",
        "parentBMI",
        "baselineBMI",
        "month4BMI",
        "month12BMI",
        "A1",
        "A2",
    }
    assert set(df["A1"]) == {"CD", "MR"}
    assert set(df["A2"]) == {"CD", "MR"}
    assert df["A1"].value_counts().to_dict() == {"CD": 109, "MR": 101}
    assert df["A2"].value_counts().to_dict() == {"CD": 105, "MR": 105}
    assert not df.isna().any().any()
    for col in ("parentBMI", "baselineBMI", "month4BMI", "month12BMI"):
        assert pd.api.types.is_float_dtype(df[col])
    assert set(df["gender"]) <= {0, 1} and set(df["race"]) <= {0, 1}


def test_bmi_builds_the_documented_model():
    df = bd.load_data("bmi")
    df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
    model = bd.DTRModel(
        df,
        [
            bd.Stage(
                "A1",
                main="race + parentBMI + baselineBMI",
                contrast="1 + race + parentBMI + baselineBMI",
                propensity=bd.KnownPropensity({"CD": 0.5, "MR": 0.5}),
            ),
            bd.Stage(
                "A2",
                main="race + parentBMI + month4BMI",
                contrast="1 + race + parentBMI + month4BMI",
            ),
        ],
        outcome="y",
    )
    assert [sd.arms for sd in model.design.stages] == [["CD", "MR"], ["CD", "MR"]]
    assert [sd.n_units for sd in model.design.stages] == [210, 210]


def test_documented_missing_values():
    adhd = bd.load_data("adhd")
    assert adhd["o21"].isna().sum() == 51
    assert (adhd.loc[adhd["o21"].isna(), "r"] == 1).all()  # empty for responders
    cens = bd.load_data("two_stage_cens")
    assert cens["T2"].isna().sum() == 191
    assert bd.load_data("two_stage_surv").notna().all().all()


def test_codiacs_sequence_means():
    df = bd.load_data("codiacs")
    means = df.groupby("group")["Y"].agg(["size", "mean"])
    assert means["size"].tolist() == [25, 2, 24, 5, 5, 19, 2, 26]
    np.testing.assert_allclose(
        means["mean"], [1.320, 10.500, 10.875, 5.200, 7.800, 5.158, 22.000, 10.885], atol=1e-3
    )


def test_load_returns_a_fresh_copy():
    a = bd.load_data("bmi")
    a.loc[0, "A1"] = "XX"
    assert bd.load_data("bmi").loc[0, "A1"] != "XX"


@pytest.mark.parametrize("name", ["bmidata", "nope", "BMI"])
def test_unknown_name_lists_valid_names(name):
    valid = r"\['adhd', 'bmi', 'chr', 'codiacs', 'ldt', 'lr', 'ph', 'two_stage_cens', 'two_stage_cont', 'two_stage_surv', 'wrse'\]"
    with pytest.raises(
        DataError,
        match=rf"Unknown dataset name='{name}'\. Valid names: {valid}\..*bd.list_datasets\(\)",
    ):
        bd.load_data(name)


def test_unknown_name_suggests_close_match():
    with pytest.raises(DataError, match=r"Did you mean 'two_stage_cont'\?"):
        bd.load_data("two_stage_con")


@pytest.mark.parametrize("name", [None, 3, ["bmi"]])
def test_non_string_name(name):
    with pytest.raises(DataError, match=r"Unknown dataset name=.*Valid names: \['adhd'"):
        bd.load_data(name)


def test_registry_matches_list():
    assert set(DATASETS) == set(bd.list_datasets()["name"])
