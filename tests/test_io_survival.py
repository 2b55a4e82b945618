"""Survival posteriors in files: ``to_netcdf`` then ``bd.load`` answers exactly as before saving.

The fast tests build a censored survival posterior from fixed draws (no MCMC: the file layer does
not care where draws come from); the integration test saves and loads a tiny real NUTS fit.
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.inference.backward import FitSettings
from bayesdtr.inference.draws import PropensityDraws, StageDraws
from bayesdtr.io import PosteriorParts
from bayesdtr.models.priors import resolve_priors
from bayesdtr.posterior import DTRPosterior

SCN = bd.scenario("survival_smart")
C, D = 2, 15
TAU = 10.0


def _posterior(df: pd.DataFrame, family: str = "lognormal") -> DTRPosterior:
    """A survival posterior of ``survival_smart`` from random draws around plausible values."""
    design = bd.DTRModel(df, SCN.stages, outcome="T", event="delta", family=family).design
    rng = np.random.default_rng(4)
    S = C * D
    fits = [
        StageDraws(  # stage 1: main 1, X1; contrast 1, X1
            theta=np.array([2.2, 0.2, 0.3, 0.0]) + 0.05 * rng.standard_normal((S, 4)),
            sigma=0.9 + 0.02 * rng.random(S),
            chains=C,
            draws=D,
            engine="mcmc",
            family=family,
            ancestor=rng.permutation(S),
        ),
        StageDraws(  # stage 2: main 1, X1, X2, A1; contrast 1, X2
            theta=np.array([1.5, 0.2, 0.1, 0.2, 0.3, -0.4]) + 0.05 * rng.standard_normal((S, 6)),
            sigma=0.7 + 0.02 * rng.random(S),
            chains=C,
            draws=D,
            engine="mcmc",
            family=family,
        ),
    ]
    parts = PosteriorParts(
        design=design,
        priors=resolve_priors(None, design.treatments),
        settings=FitSettings(draws=D, chains=C),
        fits=fits,
        propensities=[PropensityDraws(known=sd.known_propensity) for sd in design.stages],
        random_seed=7,
        seed=np.random.SeedSequence(7),
        induction_seed=np.random.SeedSequence(8),
    )
    return DTRPosterior.from_parts(parts)


def _answers(post: DTRPosterior) -> list[np.ndarray]:
    """Every query that needs no refit: values (each method and estimand), coefficients,
    scales, P(optimal), Q-values and the summary table."""
    out = [
        post.value("optimal", horizon=TAU, method=m, estimand=e).values
        for m in ("aipw", "augmented", "q")
        for e in ("rmst", "survival")
    ]
    for k in (1, 2):
        out += [post.coef(k)["beta"].values, post.coef(k)["psi"].values]
        out += [post.stage_posterior(k)["sigma"].values, post.prob_optimal(k).to_numpy()]
        out.append(post.q_values(k).values)
    out.append(post.summary().to_numpy())
    return out


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return SCN.sample(150, seed=2)


@pytest.fixture(scope="module", params=["lognormal", "weibull"])
def saved(df, request, tmp_path_factory):
    post = _posterior(df, request.param)
    path = tmp_path_factory.mktemp("surv") / "post.nc"
    post.to_netcdf(path)
    return post, path


def test_survival_posterior_answers_the_same_after_loading(saved, df):
    post, path = saved
    back = bd.load(path)
    assert back.design.event_column == "delta" and back.design.family == post.design.family
    np.testing.assert_array_equal(back.design.event, df["delta"].to_numpy(float))
    for k in range(2):  # stage times (rewards), the total time
        np.testing.assert_array_equal(back.design.stages[k].reward, post.design.stages[k].reward)
    np.testing.assert_array_equal(back.design.y, post.design.y)
    for a, b in zip(_answers(back), _answers(post), strict=True):
        np.testing.assert_array_equal(a, b)
    # the value needs a horizon: no /value node, and a loaded posterior still asks for one
    assert "value" not in back.tree.children and "policy" in back.tree.children
    with pytest.raises(bd.FitError, match="needs a horizon"):
        back.value("optimal")


def test_a_loaded_survival_posterior_saves_again_and_takes_stages(saved, df, tmp_path):
    post, path = saved
    back = bd.load(path)
    again = tmp_path / "again.nc"
    back.to_netcdf(again)
    for a, b in zip(_answers(bd.load(again)), _answers(post), strict=True):
        np.testing.assert_array_equal(a, b)
    live = bd.load(path, stages=SCN.stages)  # rebuilt with event= from the file
    new = df.head(5)
    np.testing.assert_array_equal(
        live.q_values(2, data=new[new.R == 1]).values, post.q_values(2, data=new[new.R == 1]).values
    )


def _edit(src, dst, fn) -> None:
    import shutil

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)


def _del_attr(node, key):
    def fn(f):
        del f[node].attrs[key]

    return fn


def _flip_event(f):
    f["design/event"][0] = 1.0 - f["design/event"][0]


def _del_var(name):
    def fn(f):
        del f[name]

    return fn


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_del_attr("design", "event"), r"a survival family .* needs its event column"),
        (_flip_event, r"/design event does not match the 0/1 event column 'delta'"),
        (_del_var("stage_1/posterior/sigma"), r"/stage_1/posterior has no variable 'sigma'"),
        (_del_var("design/event"), r"/design has no variable 'event'"),
    ],
)
def test_a_survival_file_without_what_queries_need_is_refused(saved, tmp_path, edit, match):
    _, path = saved
    dst = tmp_path / "bad.nc"
    _edit(path, dst, edit)
    with pytest.raises(bd.FileFormatError, match=match):
        bd.load(dst)


def test_files_without_the_event_attribute_still_load(tmp_path):
    """A file written before survival outcomes were stored has no /design 'event' attribute:
    it loads as the uncensored posterior it is."""
    df = bd.scenario("two_stage_cont").sample(120, seed=1)
    stages = [
        bd.Stage("A1", main="X1", contrast="1 + X1"),
        bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2"),
    ]
    post = bd.DTRModel(df, stages, outcome="Y").fit(
        draws=20, chains=2, engine="conjugate", random_seed=1, progressbar=False
    )
    path, old = tmp_path / "new.nc", tmp_path / "old.nc"
    post.to_netcdf(path)
    _edit(path, old, _del_attr("design", "event"))
    with h5py.File(old, "r") as f:
        assert "event" not in f["design"].attrs
    back = bd.load(old)
    assert back.design.event is None
    np.testing.assert_array_equal(back.value("optimal").values, post.value("optimal").values)
    # a censored-looking family without its event column is refused, not read as uncensored
    bad = tmp_path / "bad.nc"
    _edit(old, bad, lambda f: f["design"].attrs.__setitem__("family", "weibull"))
    with pytest.raises(bd.FileFormatError, match="needs its event column"):
        bd.load(bad)


@pytest.mark.integration
def test_a_real_survival_fit_round_trips(tmp_path):
    df = SCN.sample(200, seed=3)
    model = bd.DTRModel(df, SCN.stages, outcome="T", event="delta", family="lognormal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.fit(
            draws=30, tune=60, chains=2, imputations=2, random_seed=5, progressbar=False
        )
    reg = bd.Regime.static(A1=1, A2=1)
    before = post.value(reg, horizon=TAU).values  # aipw: stage 1 is randomized
    path = tmp_path / "post.nc"
    post.to_netcdf(path)
    back = bd.load(path)
    np.testing.assert_array_equal(back.value(reg, horizon=TAU).values, before)
    for m in ("augmented", "q"):  # refits stage 1 for the regime by NUTS, seeded the same
        np.testing.assert_array_equal(
            back.value(reg, horizon=TAU, method=m).values,
            post.value(reg, horizon=TAU, method=m).values,
        )
    for a, b in zip(_answers(back), _answers(post), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "form",
    [
        "X1 + {{__import__('os').system('touch {m}')}}",
        "I(__import__('os').system('touch {m}') + X1)",
    ],
)
def test_a_poisoned_event_column_name_never_runs(saved, tmp_path, form):
    """The event attribute names a column; a payload there is refused (not a column of /data)
    and never reaches an evaluator."""
    _, path = saved
    marker = tmp_path / "pwned"
    dst = tmp_path / "poisoned.nc"
    _edit(path, dst, lambda f: f["design"].attrs.__setitem__("event", form.format(m=marker)))
    with pytest.raises(
        bd.FileFormatError, match="/design event column .* is not a column of /data"
    ):
        bd.load(dst)
    assert not marker.exists()


def test_the_report_refuses_a_survival_posterior_and_says_what_works(saved, tmp_path):
    post = bd.load(saved[1])
    with pytest.raises(bd.FitError, match=r"report\(\) does not cover censored survival.*horizon=tau"):
        post.report(tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()
