"""Posteriors with dropout (``censoring=``) in files: the censoring models' designs and draws are
stored, and ``bd.load`` recomputes the same weights, so every value equals the one before saving."""

from __future__ import annotations

import dataclasses
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd

SCN = bd.scenario("dropout_smart")
REG = bd.Regime.static(A1=1, A2=0)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return SCN.sample(300, seed=3)


@pytest.fixture(scope="module")
def saved(df, tmp_path_factory):
    post = bd.DTRModel(df, SCN.stages, outcome="Y").fit(
        draws=60, tune=100, chains=2, random_seed=5, progressbar=False, warn=False
    )
    path = tmp_path_factory.mktemp("drop") / "post.nc"
    post.to_netcdf(path)
    return post, path


def _answers(post: bd.DTRPosterior) -> list[np.ndarray]:
    out = [post.value(r, method=m).values for m in ("q", "ipw", "aipw") for r in ("optimal", REG)]
    out.append(post.design.ipcw.value_weights(np.arange(post.n_samples)))
    out.append(post.design.ipcw.q_weights(0))
    for k in (1, 2):
        out += [post.prob_optimal(k).to_numpy(), post.coef(k)["psi"].values]
    return out


def test_dropout_posterior_answers_the_same_after_loading(saved, df, tmp_path):
    post, path = saved
    back = bd.load(path)
    cd, was = back.design.dropout[1], post.design.dropout[1]
    assert back.design.dropout[0] is None and cd.formula == was.formula
    np.testing.assert_array_equal(cd.at_risk, was.at_risk)
    np.testing.assert_array_equal(cd.a, was.a)
    assert int((cd.a == 0).sum()) == int(df["A2"].isna().sum()) > 0  # the units that dropped out
    for a, b in zip(_answers(back), _answers(post), strict=True):
        np.testing.assert_array_equal(a, b)
    again = tmp_path / "again.nc"  # a loaded posterior saves again, unchanged
    back.to_netcdf(again)
    for a, b in zip(_answers(bd.load(again)), _answers(post), strict=True):
        np.testing.assert_array_equal(a, b)
    live = bd.load(path, stages=SCN.stages)  # the caller's stages reproduce the dropout design
    np.testing.assert_array_equal(
        live.value(REG, method="aipw").values, post.value(REG, method="aipw").values
    )


def test_stages_without_the_fitted_dropout_are_refused(saved):
    _, path = saved
    other = [SCN.stages[0], dataclasses.replace(SCN.stages[1], censoring="X1")]
    with pytest.raises(
        bd.SpecificationError, match=r"stage 'A2' does not reproduce the fitted dropout design"
    ):
        bd.load(path, stages=other)


def _edit(src, dst, fn) -> None:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)


def _delete(name):
    def fn(f):
        del f[name]

    return fn


def _set(name, fn_values):
    def fn(f):
        f[name][...] = fn_values(f[name][...])

    return fn


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            _delete("stage_2/censoring"),
            r"no /stage_2/censoring group, but stage 'A2' has dropout \(censoring='X1 \+ A1 \+ X2'\)",
        ),
        (
            _set("stage_2/censoring/censoring_coef", lambda v: v * np.nan),
            r"'censoring_coef' has NaN or infinite draws",
        ),
        (
            _set("stage_2/design/censoring_remained", lambda v: np.ones_like(v)),
            r"censoring design: units at risk must be increasing",
        ),
        (
            _set("design/y", lambda v: np.where(v == 0, 1.0, v)),
            r"/design y does not match the outcome column 'Y'",
        ),
    ],
)
def test_a_dropout_file_without_what_values_need_is_refused(saved, tmp_path, edit, match):
    _, path = saved
    dst = tmp_path / "bad.nc"
    _edit(path, dst, edit)
    with pytest.raises(bd.FileFormatError, match=match):
        bd.load(dst)


PAYLOADS = (  # forms formulaic evaluates (tests/test_io_files.py shows they run there)
    "X1 + {{__import__('os').system('touch {m}')}}",
    "I(__import__('os').system('touch {m}') + X1)",
)


@pytest.mark.parametrize("form", PAYLOADS)
def test_a_poisoned_censoring_formula_or_term_never_runs(saved, tmp_path, form):
    """The censoring formula and term names are text for reading only: loading and every value
    query on a file carrying a payload there either work or raise a bayesdtr error, and no payload
    runs."""
    _, path = saved
    marker = tmp_path / "pwned"
    text = form.format(m=marker)

    def formula(f):
        f["stage_2/design"].attrs["censoring_formula"] = text

    def term(f):
        f["stage_2/design/censoring_term"][1] = text

    for edit in (formula, term):
        dst = tmp_path / "poisoned.nc"
        _edit(path, dst, edit)
        try:
            back = bd.load(dst)
            back.value(REG, method="aipw"), back.value("optimal", method="q")
        except bd.BayesDTRError:
            pass
        assert not marker.exists()
