"""Plots: tidy data behind each figure, smoke tests on Agg, argument errors, and fit progress."""

from __future__ import annotations

import contextlib
import io
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest

import bayesdtr as bd
from bayesdtr import plotting
from bayesdtr.constants import HDI_PROB

#: Set BAYESDTR_PLOT_DIR to keep the PNGs (to look at them); otherwise they go to tmp_path.
PLOT_DIR = os.environ.get("BAYESDTR_PLOT_DIR")


def _save(fig, tmp_path, name: str) -> None:
    out = os.path.join(PLOT_DIR or str(tmp_path), f"{name}.png")
    fig.savefig(out, dpi=80)
    assert os.path.getsize(out) > 5_000
    plt.close(fig)


@pytest.fixture(scope="module")
def post(bmi_conjugate):
    return bmi_conjugate


@pytest.fixture(scope="module")
def regimes():
    return {
        "optimal": "optimal",
        "always CD": bd.Regime.static(A1="CD", A2="CD"),
        "CD then MR": bd.Regime.static(A1="CD", A2="MR"),
    }


# --------------------------------------------------------------------------- value and regret
def test_value_data_matches_compare(post, regimes):
    data = plotting.plot_value_data(post, regimes)
    assert list(data["regime"]) == list(regimes)
    tab = post.compare(regimes)
    np.testing.assert_allclose(data["p_best"], tab["p_best"].to_numpy())  # the same draws
    assert (data["hdi_lb"] < data["mean"]).all() and (data["mean"] < data["hdi_ub"]).all()
    v = post.value(regimes["CD then MR"]).values.ravel()
    assert np.isclose(data.set_index("regime").loc["CD then MR", "mean"], v.mean())


def test_plot_value(post, regimes, tmp_path):
    ax = bd.plot_value(post, regimes, method="q")
    pos = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    assert sorted(pos, key=pos.get, reverse=True) == list(regimes)  # first regime on top
    texts = [t.get_text() for t in ax.texts]
    assert "P(best)" in texts
    _save(ax.figure, tmp_path, "value")


def test_plot_value_on_given_axes(post, regimes):
    fig, ax = plt.subplots()
    assert bd.plot_value(post, regimes, ax=ax) is ax
    plt.close(fig)


def test_regret_data(post, regimes):
    data = plotting.plot_regret_data(post, regimes)
    assert len(data) == len(regimes) * post.n_samples
    assert (data["regret"] >= 0).all()
    # P(regret = 0) is P(best) of compare()
    p0 = data.groupby("regime", observed=True)["regret"].apply(lambda r: np.mean(r == 0))
    tab = post.compare(regimes)
    assert np.allclose(p0.loc[list(regimes)].to_numpy(), tab["p_best"].to_numpy())


def test_plot_regret(post, regimes, tmp_path):
    ax = bd.plot_regret(post, regimes)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(any(t.startswith(name) for t in legend) for name in regimes)
    _save(ax.figure, tmp_path, "regret")


# --------------------------------------------------------------------------- decision
def test_decision_data(post):
    d = plotting.plot_decision_data(post, stage=1, x="baselineBMI")
    grid = d[d["source"] == "grid"]
    obs = d[d["source"] == "observed"]
    # P(optimal) sums to one over arms at each grid point and each unit
    assert np.allclose(grid.groupby("obs")["p_optimal"].sum(), 1.0)
    assert np.allclose(obs.groupby("obs")["p_optimal"].sum(), 1.0)
    mr = grid[grid["arm"] == "MR"]
    assert (mr["contrast_lb"] <= mr["contrast_mean"]).all() and (
        mr["contrast_mean"] <= mr["contrast_ub"]
    ).all()
    assert (
        grid[grid["arm"] == "CD"]["contrast_mean"].isna().all()
    )  # the reference arm has no contrast
    # the contrast grows with baselineBMI at stage 1 (its coefficient is positive)
    assert mr["contrast_mean"].iloc[-1] > mr["contrast_mean"].iloc[0]
    assert set(d.attrs["profile"]) >= {"race", "parentBMI"}
    # observed units use their own P(optimal)
    po = post.prob_optimal(1)
    assert np.allclose(obs[obs["arm"] == "MR"]["p_optimal"].to_numpy(), po["MR"].to_numpy())


def test_decision_reference_profile_is_used(post):
    lo = plotting.plot_decision_data(post, stage=1, x="baselineBMI", reference={"parentBMI": 25.0})
    hi = plotting.plot_decision_data(post, stage=1, x="baselineBMI", reference={"parentBMI": 40.0})
    p = lambda d: d[(d.source == "grid") & (d.arm == "MR")]["p_optimal"].mean()  # noqa: E731
    assert p(lo) > p(hi)  # parentBMI's contrast coefficient is negative


def test_plot_decision(post, tmp_path):
    axes = bd.plot_decision(post, stage=2, x="month4BMI")
    assert len(axes) == 2
    assert axes[0].get_ylabel() == "P(arm optimal)"
    assert axes[1].get_xlabel() == "month4BMI"
    assert any("MR" in t.get_text() for t in axes[0].get_legend().get_texts())
    _save(axes[0].figure, tmp_path, "decision")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": "nope"}, bd.DataError, "x='nope' is not a column"),
        ({"x": "month4BMI"}, bd.SpecificationError, "does not enter stage 'A1'"),
        ({"x": "baselineBMI", "reference": {"zzz": 1}}, bd.DataError, "reference= names"),
        (
            {"x": "baselineBMI", "reference": [1]},
            bd.SpecificationError,
            "reference= must be a dict",
        ),
        ({"x": "baselineBMI", "data": [1, 2]}, bd.DataError, "data= must be a non-empty"),
        ({"x": "baselineBMI", "stage": 3}, bd.SpecificationError, "stage=3 is out of range"),
    ],
)
def test_decision_errors(post, kwargs, error, match):
    kw = {"stage": 1, **kwargs}
    with pytest.raises(error, match=match):
        plotting.plot_decision_data(post, **kw)


def test_decision_ax_error(post):
    fig, ax = plt.subplots()
    with pytest.raises(bd.SpecificationError, match="ax= must be a pair"):
        bd.plot_decision(post, stage=1, x="baselineBMI", ax=ax)
    plt.close(fig)


# --------------------------------------------------------------------------- contrasts
def test_contrasts_data_leaves_out_reference(post):
    data = plotting.plot_contrasts_data(post)
    assert set(data["arm"]) == {"MR"}  # CD is the reference arm: its zeros are not rows
    assert len(data) == 8  # 2 stages x 4 contrast terms
    psi = post.coef("A2")["psi"].sel(arm="MR", contrast_term="race").values.ravel()
    row = data[(data.stage == "A2") & (data.term == "race")].iloc[0]
    assert np.isclose(row["mean"], psi.mean())
    assert np.isclose(row["p_positive"], np.mean(psi > 0))
    assert row["hdi_ub"] - row["hdi_lb"] < np.ptp(psi)
    assert HDI_PROB == 0.94


def test_plot_contrasts(post, tmp_path):
    axes = bd.plot_contrasts(post)
    assert len(axes) == 2
    pos = {
        t.get_text(): y
        for t, y in zip(axes[0].get_yticklabels(), axes[0].get_yticks(), strict=True)
    }
    assert sorted(pos, key=pos.get, reverse=True) == [
        "Intercept",
        "race",
        "parentBMI",
        "baselineBMI",
    ]
    assert "MR vs CD" in axes[0].get_title(loc="left")
    _save(axes[0].figure, tmp_path, "contrasts")
    fig, ax = plt.subplots()
    assert bd.plot_contrasts(post, stage=2, ax=ax)[0] is ax
    with pytest.raises(bd.SpecificationError, match="ax= draws one stage"):
        bd.plot_contrasts(post, ax=ax)
    plt.close(fig)


# --------------------------------------------------------------------------- errors shared by all
def test_argument_errors(post, regimes):
    with pytest.raises(bd.RegimeError, match="regimes must be a non-empty dict"):
        bd.plot_value(post, ["optimal"])
    with pytest.raises(bd.FitError, match="method='mean' is not one of"):
        bd.plot_regret(post, regimes, method="mean")
    with pytest.raises(bd.FitError, match="post must be a fitted bd.DTRPosterior"):
        bd.plot_contrasts("posterior.nc")
    with pytest.raises(bd.SpecificationError, match="ax= must be a matplotlib Axes"):
        bd.plot_value(post, regimes, ax="left")
    with pytest.raises(bd.SpecificationError, match="group_contrast=True"):
        bd.plot_shrinkage(post, stage=1)
    with pytest.raises(bd.SpecificationError, match="kind='pair' is not one of"):
        bd.plot_diagnostics(post, stage=1, kind="pair")
    with pytest.raises(bd.SpecificationError, match=r"unknown parameter\(s\) \['theta'\]"):
        bd.plot_diagnostics(post, stage=1, var_names=["theta"])


# --------------------------------------------------------------------------- diagnostics
def test_diagnostics_data(post):
    d = plotting.plot_diagnostics_data(post, stage=1)
    assert len(d) == 9 * post.n_samples  # 4 beta + 4 psi (MR only) + sigma
    assert "psi[MR, baselineBMI]" in set(d["parameter"])
    assert not any("CD" in p for p in d["parameter"])


def test_plot_diagnostics_conjugate(post, tmp_path):
    fig = bd.plot_diagnostics(post, stage=1, kind="rank", var_names=["psi"])
    assert len([a for a in fig.axes if a.has_data()]) == 4
    _save(fig, tmp_path, "rank_conjugate")


# --------------------------------------------------------------------------- hierarchical (MCMC)
@pytest.fixture(scope="module")
def hier():
    """A tiny multi-site fit with group contrasts by NUTS (engine="auto" would use Gibbs), with
    the progress it printed."""
    from bayesdtr.inference.sampling import clear_cache

    scn = bd.scenario("multisite_smart")
    df = scn.sample(300, seed=5)
    model = bd.DTRModel(df, scn.stages, outcome=scn.outcome, group="site", group_contrast=True)
    clear_cache()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.warns(UserWarning, match="diagnostics"):
        post = model.fit(
            draws=60,
            tune=100,
            chains=2,
            imputations=4,
            random_seed=3,
            progressbar=True,
            engine="mcmc",
        )
    return model, post, err.getvalue()


@pytest.mark.integration
def test_fit_progress(hier):
    model, _, text = hier
    lines = text.split("\n")
    assert "compiling stage 2 (A2) model…" in lines
    assert "compiling stage 1 (A1) model…" in lines
    assert any(
        line.startswith("sampling stage 2 (A2): 2 chains x (100 tune + 60 draws)") for line in lines
    )
    # stage 1: one bar counting its 4 imputations, ending on its own line
    bars = [line for line in lines if "sampling stage 1 (A1): imputations" in line]
    assert len(bars) == 1
    assert bars[0].split("\r")[-1].startswith("sampling stage 1 (A1): imputations 4/4")
    # silent with progressbar=False (the compiled models are reused)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.warns(UserWarning):
        model.fit(
            draws=20,
            tune=20,
            chains=2,
            imputations=2,
            random_seed=4,
            progressbar=False,
            engine="mcmc",
        )
    assert err.getvalue() == ""


@pytest.mark.integration
def test_regime_refit_progress(hier):
    _, post, _ = hier
    post.settings.progressbar = True
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            post.value(bd.Regime.static(A1=1, A2=1, name="always 1"))
    finally:
        post.settings.progressbar = False
    # a NUTS fit's conditionally conjugate stage is refitted by Gibbs (the same model; refit_engines)
    assert (
        "sampling stage 1 (A1), regime 'always 1' by Gibbs: 4 target(s) x 2 chains"
        in err.getvalue()
    )


@pytest.mark.integration
def test_shrinkage(hier, tmp_path):
    _, post, _ = hier
    d = plotting.plot_shrinkage_data(post, stage=2)
    sites = d[d["group"] != "pooled"]
    assert (d["group"] == "pooled").sum() == 1
    assert set(sites["arm"]) == {1}
    assert sites["n_units"].sum() == post.design.stage(2).n_units
    assert (sites["hdi_lb"] < sites["mean"]).all() and (sites["mean"] < sites["hdi_ub"]).all()
    ax = bd.plot_shrinkage(post, stage=2)
    assert len(ax.get_yticklabels()) == len(sites)
    _save(ax.figure, tmp_path, "shrinkage")


@pytest.mark.integration
def test_plot_diagnostics_mcmc(hier, tmp_path):
    _, post, _ = hier
    fig = bd.plot_diagnostics(post, stage=2, kind="trace")
    assert "mcmc" in fig.get_suptitle()
    _save(fig, tmp_path, "trace_mcmc")
    fig = bd.plot_diagnostics(post, stage=1, kind="rank")
    _save(fig, tmp_path, "rank_mcmc")
    with pytest.raises(bd.SpecificationError, match="panels"):
        bd.plot_diagnostics(
            post, stage=2, var_names=["group_intercept", "group_contrast", "beta", "psi"]
        )


@pytest.mark.integration
def test_report_of_hierarchical_mcmc_fit(hier, tmp_path):
    """MCMC stages add rank plots and red problems; group contrasts add shrinkage plots."""
    _, post, _ = hier
    text = bd.write_report(post, tmp_path / "hier.html").read_text()
    for alt in (
        "rank plots of stage A1",
        "rank plots of stage A2",
        "group contrasts of stage A1",
        "group contrasts of stage A2",
    ):
        assert f'<img alt="{alt}"' in text
    assert '<p class="problem">Sampling diagnostics need attention' in text  # a tiny fit
    # engine="mcmc", but its Gaussian stages refit by Gibbs: the static regimes are compared too
    from bayesdtr.report import default_regimes

    labels = list(default_regimes(post))
    assert len(labels) > 1 and "Only the optimal regime is listed" not in text
    for label in labels[1:]:
        assert f">{label}</td>" in text
