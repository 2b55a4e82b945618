"""Spec files (``bayesdtr fit --spec``) for survival outcomes and dropout: ``event =`` at the top,
``censoring =`` per stage, each checked with an error that names the key."""

from __future__ import annotations

import dataclasses

import pytest

import bayesdtr as bd
from bayesdtr.exceptions import SpecificationError
from bayesdtr.spec_file import load_spec, parse_spec

SURVIVAL_TOML = """
outcome = "T"
family = "lognormal"
event = "delta"

[[stages]]
treatment = "A1"
main = "X1"
contrast = "1 + X1"
reward = "T1"
propensity = { "0" = 0.5, "1" = 0.5 }

[[stages]]
treatment = "A2"
main = "X1 + X2 + A1"
contrast = "1 + X2"
applies = "R == 1"
"""

DROPOUT_TOML = """
outcome = "Y"

[[stages]]
treatment = "A1"
main = "X1"
contrast = "1 + X1"

[[stages]]
treatment = "A2"
main = "X1 + A1 + X2"
contrast = "1 + X2"
censoring = "X1 + A1 + X2"
"""


def test_survival_spec_builds_the_same_model_as_the_python_api(tmp_path):
    scn = bd.scenario("survival_smart")
    df = scn.sample(200, seed=1)
    path = tmp_path / "surv.toml"
    path.write_text(SURVIVAL_TOML)
    stages, model_kw, fit_kw = load_spec(path, data=df)
    assert model_kw == {"outcome": "T", "family": "lognormal", "event": "delta"} and fit_kw == {}
    assert stages[0].propensity == bd.KnownPropensity({0: 0.5, 1: 0.5})
    model = bd.DTRModel(df, stages, **model_kw)
    assert model.design.event is not None
    assert (model.design.event == df["delta"].to_numpy()).all()


def test_dropout_spec_declares_censoring_per_stage(tmp_path):
    scn = bd.scenario("dropout_smart")
    df = scn.sample(300, seed=2)
    path = tmp_path / "drop.toml"
    path.write_text(DROPOUT_TOML)
    stages, model_kw, _ = load_spec(path, data=df)
    assert stages[0].censoring is None and stages[1].censoring == "X1 + A1 + X2"
    model = bd.DTRModel(df, stages, **model_kw)
    assert model.design.dropout is not None
    # without the declaration the same data are refused with a hint that names censoring=
    undeclared = [stages[0], dataclasses.replace(stages[1], censoring=None)]
    with pytest.raises(bd.DataError, match="censoring="):
        bd.DTRModel(df, undeclared, **model_kw)


@pytest.mark.parametrize(
    ("stage", "top", "match"),
    [
        ({"censoring": 3}, {}, r"stage 'A2' censoring must be a right-hand-side formula .*got 3"),
        ({"censoring": "  "}, {}, r"stage 'A2' censoring must be a right-hand-side formula"),
        ({"censoring": "y ~ X1"}, {}, r"censoring='y ~ X1' contains '~'"),
        ({}, {"event": 1}, r"spec: event must be a string .*got 1"),
        ({"censor": "X1"}, {}, r"unknown key\(s\) \['censor'\]; allowed keys are .*'censoring'"),
    ],
)
def test_bad_survival_and_dropout_keys_are_refused(stage, top, match):
    spec = {
        "outcome": "Y",
        **top,
        "stages": [
            {"treatment": "A1", "contrast": "1"},
            {"treatment": "A2", "contrast": "1", **stage},
        ],
    }
    with pytest.raises(SpecificationError, match=match):
        parse_spec(spec)
