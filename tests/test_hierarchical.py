"""Hierarchical (multi-site) models: recovery of the optimal rule, its value and site contrasts."""

from __future__ import annotations

import numpy as np
import pytest

import bayesdtr as bd

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scn():
    return bd.scenario("multisite_smart")


def test_multisite_rule_and_value(scn):
    """Posterior-mode rules match the true rules for >= 90% of units at both stages, and the
    value posterior's 95% interval covers the true optimal value (in at least 2 of 3 seeded
    replicates: a calibrated interval misses about 1 time in 20)."""
    truth = scn.true_value("optimal")
    covered = []
    for seed in (11, 12, 13):
        df = scn.sample(2000, seed=seed)
        model = bd.DTRModel(df, scn.stages, outcome=scn.outcome, group="site", group_contrast=True)
        post = model.fit(random_seed=seed, progressbar=False)
        for k in (1, 2):
            sd = model.design.stage(k)
            mode = np.asarray(sd.arms)[post.prob_optimal(k).to_numpy().argmax(axis=1)]
            assert np.mean(mode == scn.true_optimal_treatment(df.iloc[sd.units], k)) >= 0.9
        lo, hi = np.percentile(post.value().values, [2.5, 97.5])
        covered.append(lo <= truth <= hi)
        diag = post.diagnostics()
        assert diag["divergences"].sum() == 0
        assert diag["max_r_hat"].max() < 1.03
    assert sum(covered) >= 2


def _site_contrasts_fixed(df, *, pooled: bool) -> np.ndarray:
    """Stage-2 contrast intercept per site by OLS-limit conjugate fits: no or complete pooling."""
    nonresp = df[df["R"] == 0].copy()
    contrast = "1 + X2" if pooled else "1 + X2 + C(site)"
    stage = bd.Stage("A2", main="X0 + X1 + A1:X1 + X2 + C(site):A1 + C(site)", contrast=contrast)
    post = bd.DTRModel(nonresp, [stage], outcome="Y").fit(random_seed=1, progressbar=False)
    psi = post.coef(1)["psi"].sel(arm=1).mean(("chain", "draw"))
    sites = np.sort(nonresp["site"].unique())
    out = np.full(len(sites), float(psi.sel(contrast_term="Intercept")))
    if not pooled:
        for i, g in enumerate(sites[1:], start=1):
            out[i] += float(psi.sel(contrast_term=f"C(site)[T.{g}]"))
    return out


def test_partial_pooling_beats_no_and_complete_pooling(scn):
    """Stage-2 site contrasts with tens of non-responders per site (n = 800, 12 sites).

    Partial pooling gains most when a site's own estimate is noisy relative to the spread of
    site effects; with hundreds of units per site it converges to no pooling (measured at
    n = 2,000: RMSE 0.20 partial, 0.18 none, 0.42 complete on one seed). RMSEs are averaged
    over three seeded replicates.
    """
    eff = scn.site_effects
    true = (eff["stage2_contrast_x2_neg"] + eff["stage2_contrast_x2_pos"]).to_numpy() / 2
    rmse = {"partial": [], "none": [], "complete": []}
    for seed in (21, 22, 23):
        df = scn.sample(800, seed=seed)
        nonresp = df[df["R"] == 0]
        stage = bd.Stage("A2", main="X0 + X1 + A1:X1 + X2 + C(site):A1", contrast="1 + X2")
        post = bd.DTRModel(nonresp, [stage], outcome="Y", group="site", group_contrast=True).fit(
            random_seed=seed, progressbar=False
        )
        ds = post.tree["stage_1/posterior"]
        hier = (ds["psi"].sel(arm=1, contrast_term="Intercept") + ds["group_contrast"].sel(arm=1)).mean(("chain", "draw"))
        rmse["partial"].append(np.sqrt(np.mean((hier.values - true) ** 2)))
        rmse["none"].append(np.sqrt(np.mean((_site_contrasts_fixed(df, pooled=False) - true) ** 2)))
        rmse["complete"].append(np.sqrt(np.mean((_site_contrasts_fixed(df, pooled=True) - true) ** 2)))
    mean = {k: float(np.mean(v)) for k, v in rmse.items()}
    assert mean["partial"] < mean["none"], rmse
    assert mean["partial"] < mean["complete"], rmse
