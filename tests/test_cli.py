"""The command line: ``bayesdtr fit | report | compare`` on the adhd SMART, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.cli import main
from bayesdtr.report import SECTIONS
from bayesdtr.spec_file import FIT_KEYS, load_spec

# adhd (DTRlearn2): a1, a2 in {-1, 1}; r = 1 for responders, who are not re-randomized in the
# trial, so stage 2 applies to non-responders only (o21 is empty for responders).
SPEC = """
outcome = "y"
id = "id"

[fit]
draws = 100
chains = 2
random_seed = 3

[[stages]]
treatment = "a1"
main = "o11 + o12 + o13 + o14"
contrast = "1 + o11"
propensity = { "-1" = 0.5, "1" = 0.5 }

[[stages]]
treatment = "a2"
main = "o11 + o12 + a1 + o21 + o22"
contrast = "1 + a1 + o22"
propensity = { "-1" = 0.5, "1" = 0.5 }
applies = "r == 0"
"""

REGIMES = """
[regimes]
best = "optimal"
[regimes.always_1]
a1 = 1
a2 = 1
[regimes."-1 then 1"]
a1 = "-1"
a2 = 1
"""


def _stages() -> list[bd.Stage]:
    half = bd.KnownPropensity({-1: 0.5, 1: 0.5})
    return [
        bd.Stage("a1", main="o11 + o12 + o13 + o14", contrast="1 + o11", propensity=half),
        bd.Stage("a2", main="o11 + o12 + a1 + o21 + o22", contrast="1 + a1 + o22", propensity=half, applies="r == 0"),
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    bd.load_data("adhd").to_csv(d / "adhd.csv", index=False)
    (d / "spec.toml").write_text(SPEC, encoding="utf-8")
    (d / "regimes.toml").write_text(REGIMES, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def fitted(files):
    """Run ``bayesdtr fit`` once (with progress) and keep its exit status and stderr."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["fit", str(files / "adhd.csv"), "--spec", str(files / "spec.toml"), "--out", str(files / "out")])
    return rc, err.getvalue(), files / "out"


def test_fit_writes_posterior_summary_and_report(fitted):
    rc, err, out = fitted
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["posterior.nc", "report.html", "summary.csv"]
    summ = pd.read_csv(out / "summary.csv", index_col=0)
    assert summ.index.str.contains("psi").any() and {"mean", "r_hat"} <= set(summ.columns)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Regime comparison" in html and "<img" in html
    assert "reading" in err and "building the report" in err  # progress of the long steps


def test_fit_equals_the_python_api(fitted):
    """The spec file means the same model as the Python call, down to the draws."""
    _, _, out = fitted
    post = bd.load(out / "posterior.nc")
    assert post.design.stages[1].n_units == 99  # stage 2: non-responders only
    assert list(post.design.stages[0].arms) == [-1, 1]  # "-1" in the TOML matched the integer arm
    ref = bd.DTRModel(bd.load_data("adhd"), _stages(), outcome="y", id="id").fit(
        draws=100, chains=2, random_seed=3, progressbar=False
    )
    np.testing.assert_allclose(post.value("optimal").values, ref.value("optimal").values)


def test_report_from_saved_posterior(fitted, files, capsys):
    _, _, out = fitted
    target = files / "again.html"
    rc = main(["report", str(out / "posterior.nc"), "--out", str(target), "--spec", str(files / "spec.toml"), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert cap.err == ""  # --no-progress is silent
    html = target.read_text(encoding="utf-8")
    assert all(f'id="{key}"' in html for key in SECTIONS)
    assert str(target) in cap.out


def test_compare_with_regimes_file(fitted, files, capsys):
    _, _, out = fitted
    csv = files / "compare.csv"
    rc = main(["compare", str(out / "posterior.nc"), "--regimes", str(files / "regimes.toml"), "--out", str(csv), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    tab = pd.read_csv(csv, index_col=0)
    assert list(tab.index) == ["best", "always_1", "-1 then 1"]
    assert "always_1" in cap.out
    post = bd.load(out / "posterior.nc")
    direct = post.compare({"best": "optimal", "always_1": bd.Regime.static(name="always_1", a1=1, a2=1),
                           "-1 then 1": bd.Regime.static(name="-1 then 1", a1=-1, a2=1)})
    pd.testing.assert_frame_equal(tab, direct, check_names=False, check_index_type=False, atol=1e-9)


def test_compare_ipw_method_changes_the_answer(fitted, files, capsys):
    _, _, out = fitted
    args = ["compare", str(out / "posterior.nc"), "--regimes", str(files / "regimes.toml"), "--no-progress"]
    assert main(args + ["--method", "ipw", "--out", str(files / "ipw.csv")]) == 0
    assert main(args + ["--method", "q", "--out", str(files / "q.csv")]) == 0
    capsys.readouterr()
    ipw, q = pd.read_csv(files / "ipw.csv", index_col=0), pd.read_csv(files / "q.csv", index_col=0)
    assert not np.allclose(ipw["mean"], q["mean"])


BAD_SPECS = {
    "unknown column": (SPEC.replace('contrast = "1 + o11"', 'contrast = "1 + o11 + nope"'), ["nope", "not in the data"]),
    "bad formula": (SPEC.replace('main = "o11 + o12 + o13 + o14"', 'main = "o11 + ("'), ["cannot parse formula", "o11 + ("]),
    "unknown prior name": (SPEC + '[priors]\nsigmaa = { dist = "HalfNormal", sigma = 2.0 }\n', ["sigmaa", "valid names"]),
    "unknown distribution": (SPEC + '[priors]\nsigma = { dist = "Nope", sigma = 2.0 }\n', ["sigma", "Nope"]),
    "prior without dist": (SPEC + "[priors]\nsigma = { sigma = 2.0 }\n", ["dist", "HalfNormal"]),
    "stage without treatment": (SPEC.replace('treatment = "a2"\n', ""), ["#2", "has no treatment"]),
    "no stages": ('outcome = "y"\n', ["no stages", "[[stages]]"]),
    "bad TOML": (SPEC.replace('outcome = "y"', 'outcome = "y'), ["not valid TOML", "line"]),
    "unknown top-level key": ("draws = 100\n" + SPEC, ["unknown top-level key", "draws", "[fit]"]),
    "unknown stage key": (SPEC.replace('applies = "r == 0"', 'applied = "r == 0"'), ["applied", "allowed keys"]),
    "unknown fit key": (SPEC.replace("draws = 100", "samples = 100"), ["samples", "allowed keys"]),
    "bad applies column": (SPEC.replace('applies = "r == 0"', 'applies = "resp == 0"'), ["applies", "resp"]),
    "bad feasible query": (
        SPEC.replace('applies = "r == 0"', 'applies = "r == 0"\nfeasible = { when = "resp == 1", arms = ["-1"] }'),
        ["feasible.when='resp == 1'", "o11"],
    ),
    "unknown arm": (SPEC.replace('{ "-1" = 0.5, "1" = 0.5 }', '{ "-1" = 0.5, "2" = 0.5 }', 1), ["arm '2'", "[-1, 1]"]),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_malformed_spec_is_one_line_and_status_2(case, files, tmp_path, capsys):
    text, needles = BAD_SPECS[case]
    spec = tmp_path / "bad.toml"
    spec.write_text(text, encoding="utf-8")
    rc = main(["fit", str(files / "adhd.csv"), "--spec", str(spec), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesdtr: error: "), err
    assert str(spec) in lines[0]  # names the file
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_bad_spec_in_a_real_process_has_no_traceback(files, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text("outcome = [\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(bd.__file__).parents[1])}
    res = subprocess.run(
        [sys.executable, "-m", "bayesdtr", "fit", str(files / "adhd.csv"), "--spec", str(spec), "--out", str(tmp_path / "o"), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("bayesdtr: error: ") and "not valid TOML" in res.stderr


@pytest.mark.parametrize(
    ("regimes", "needles"),
    [
        ('[regimes.half]\na1 = 1\n', ["half", "missing ['a2']"]),
        ('[regimes.odd]\na1 = 1\na2 = 7\n', ["arm 7", "[-1, 1]"]),
        ("[regime]\nbest = \"optimal\"\n", ["[regimes]", "regime"]),
    ],
)
def test_malformed_regimes_file(fitted, tmp_path, capsys, regimes, needles):
    _, _, out = fitted
    path = tmp_path / "regimes.toml"
    path.write_text(regimes, encoding="utf-8")
    rc = main(["compare", str(out / "posterior.nc"), "--regimes", str(path), "--no-progress"])
    line = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in line and line.startswith("bayesdtr: error: ")
    for needle in needles:
        assert needle in line, (needle, line)


def test_load_spec_priors_by_name(tmp_path):
    from pymc_extras.prior import Prior

    p = tmp_path / "s.toml"
    p.write_text(
        SPEC + '[priors]\nsigma = { dist = "HalfNormal", sigma = 2.0 }\n'
        '[priors.a2]\npsi = { dist = "Normal", mu = 0.0, sigma = { dist = "HalfNormal", sigma = 1.0 } }\n',
        encoding="utf-8",
    )
    df = bd.load_data("adhd")
    stages, model_kw, fit_kw = load_spec(p, data=df)
    assert [s.treatment for s in stages] == ["a1", "a2"]
    assert model_kw["priors"]["sigma"] == Prior("HalfNormal", sigma=2.0)
    assert model_kw["priors"]["a2"]["psi"] == Prior("Normal", mu=0.0, sigma=Prior("HalfNormal", sigma=1.0))
    assert fit_kw == {"draws": 100, "chains": 2, "random_seed": 3}
    model = bd.DTRModel(df, stages, **model_kw)  # the model takes them as given
    assert set(model.stage_priors["a2"].overrides) == {"sigma", "psi"}
    assert set(model.stage_priors["a1"].overrides) == {"sigma"}


def test_feasible_table_restricts_matching_units(tmp_path):
    """``feasible = { when, arms }``: units matching ``when`` may only get ``arms``."""
    df = bd.load_data("adhd")
    df.loc[df.r == 1, "a2"] = -1  # responders continue their treatment (recoded here)
    spec = (
        'outcome = "y"\n[[stages]]\ntreatment = "a1"\ncontrast = "1 + o11"\n'
        '[[stages]]\ntreatment = "a2"\nmain = "o11 + a1 + r"\ncontrast = "1 + a1"\n'
        'feasible = { when = "r == 1", arms = ["-1"] }\n'
    )
    p = tmp_path / "s.toml"
    p.write_text(spec, encoding="utf-8")
    stages, model_kw, _ = load_spec(p, data=df)
    model = bd.DTRModel(df, stages, **model_kw)
    feas = model.design.stages[1].feasible
    assert feas.shape == (150, 2)
    np.testing.assert_array_equal(feas[:, 0], True)
    np.testing.assert_array_equal(feas[:, 1], (df.r == 0).to_numpy())
    bad = tmp_path / "bad.toml"
    bad.write_text(spec.replace('arms = ["-1"]', "arms = []"), encoding="utf-8")
    with pytest.raises(bd.SpecificationError, match=r"feasible\.arms must be a non-empty list"):
        load_spec(bad, data=df)


def test_fit_keys_are_fit_keywords():
    import inspect

    keywords = set(inspect.signature(bd.DTRModel.fit).parameters) - {"self"}
    assert set(FIT_KEYS) <= keywords
    assert keywords - set(FIT_KEYS) == {"progressbar"}  # the command line's --no-progress


def test_missing_spec_option_is_a_usage_error(files, capsys):
    rc = main(["fit", str(files / "adhd.csv"), "--out", str(files / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("bayesdtr: error: ") and "--spec" in err


def test_help_lists_the_five_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "fit", "report", "compare", "simulate"):
        assert f"  {name} " in out, out


def test_library_warnings_are_one_line_each(files, tmp_path, capsys):
    spec = tmp_path / "lopsided.toml"
    spec.write_text(SPEC.replace('{ "-1" = 0.5, "1" = 0.5 }', '{ "-1" = 0.99, "1" = 0.01 }', 1), encoding="utf-8")
    rc = main(["fit", str(files / "adhd.csv"), "--spec", str(spec), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0
    warned = [ln for ln in err.splitlines() if ln.startswith("bayesdtr: warning: ")]
    assert warned and any("0.99" in ln or "ropensit" in ln for ln in warned), err
    assert "Warning:" not in err  # not Python's multi-line warning format
