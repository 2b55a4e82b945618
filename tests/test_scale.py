"""Bounded memory at scale: the chunk-size setting bounds memory and never changes a result.

``fit(chunk_elements=)`` bounds the (draws x units) arrays built while propagating draws,
tallying P(optimal) and computing values. These tests check that a tiny setting (a few draws,
or one draw, per chunk) gives the same posterior, P(optimal) and values as the default, and that
the analysis after the fit allocates far less than one dense (draws x units) array.
"""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

import bayesdtr as bd
from bayesdtr.exceptions import FitError

RTOL = 1e-9


@pytest.fixture(scope="module")
def ex3():
    scn = bd.scenario("chakraborty_ex3")  # known propensities: AIPW without MCMC
    return bd.DTRModel(scn.sample(300, seed=3), scn.stages, outcome="Y")


def _analysis(post):
    static = bd.Regime.static(A1=1, A2=1)
    return {
        "theta1": post.fits[0].theta,
        "theta2": post.fits[1].theta,
        "sigma1": post.fits[0].sigma,
        "prob1": post.prob_optimal(1).to_numpy(),
        "prob2": post.prob_optimal(2).to_numpy(),
        "q_opt": post.value("optimal", method="q", crossfit=0).values,
        "q_static": post.value(static, method="q").values,
        "aipw_static": post.value(static, method="aipw").values,
        "ipw_opt": post.value("optimal", method="ipw", crossfit=0).values,
    }


@pytest.mark.parametrize("propagation", ["modal", "mean", "predictive"])
def test_chunk_size_changes_no_result(ex3, propagation):
    kw = dict(draws=150, chains=2, random_seed=5, progressbar=False, propagation=propagation)
    ref = _analysis(ex3.fit(**kw))
    # 1,000 elements: one or two draws per chunk at n = 300 (the default holds all 300 draws)
    small = _analysis(ex3.fit(**kw, chunk_elements=1_000))
    for key, want in ref.items():
        np.testing.assert_allclose(small[key], want, rtol=RTOL, atol=1e-12, err_msg=key)


def test_chunk_size_is_used(ex3):
    """The setting reaches the induction: chunks of one draw, against all draws at once."""
    post = ex3.fit(draws=50, chains=2, random_seed=5, progressbar=False, chunk_elements=10)
    assert post.settings.max_chunk_elements == 10
    assert post.induction.chunk_size(0) == 1
    default = ex3.fit(draws=50, chains=2, random_seed=5, progressbar=False)
    assert default.induction.chunk_size(0) == 100


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "big"])
def test_chunk_elements_must_be_a_positive_integer(ex3, bad):
    with pytest.raises(FitError, match=r"chunk_elements= must be None or an integer >= 1.*got"):
        ex3.fit(draws=10, chains=1, random_seed=1, chunk_elements=bad)


def _analysis_peak(model, draws):
    post = model.fit(draws=draws, chains=2, random_seed=1, progressbar=False, chunk_elements=40_000)
    tracemalloc.start()
    try:
        post.prob_optimal(1)
        post.prob_optimal(2)
        post.value("optimal", method="q", crossfit=0)
        post.value(bd.Regime.static(A1=0, A2=1), method="q")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, post.n_samples * post.design.n * 8


def test_analysis_memory_does_not_grow_with_draws_x_units():
    """P(optimal) of both stages and two value posteriors (one refitting stage 1 for a static
    regime): four times the draws, the same peak allocation, a fraction of one dense
    (draws x units) float64 array (n = 4,000 units x 4,000 draws: 128 MB)."""
    scn = bd.scenario("two_stage_cont")
    stages = [dataclasses.replace(s, propensity=None) for s in scn.stages]  # all conjugate
    model = bd.DTRModel(scn.sample(4_000, seed=2), stages, outcome="Y")
    peak_small, _ = _analysis_peak(model, 500)
    peak_big, dense = _analysis_peak(model, 2000)
    # what remains is the Bayesian-bootstrap weights, generated in fixed blocks of 256 draws
    assert peak_big < 1.25 * peak_small, (peak_small, peak_big)
    assert peak_big < dense / 5, (peak_big, dense)


def _whole_rule(cf, f, kind):
    """A fold rule's arm codes per stage from one Q array over every unit (no chunks)."""
    from bayesdtr.crossfit import RULE_DRAWS
    from bayesdtr.inference.draws import best_arm, posterior_mean, q_arms

    post = cf.post
    S = post.n_samples
    idx = np.unique(np.linspace(0, S - 1, min(RULE_DRAWS, S)).astype(np.int64))
    out = []
    for k, sd in enumerate(post.design.stages):
        fit = cf.fold_list[f].fits[k]
        g = post.design.groups_of(sd)
        if kind == "mean":
            q = q_arms(
                sd, posterior_mean(fit), np.zeros(1, dtype=np.int64), sd.X_main, sd.X_contrast, g
            )
            out.append(best_arm(q, sd.feasible)[0][0].astype(np.int64))
            continue
        best = best_arm(q_arms(sd, fit, idx, sd.X_main, sd.X_contrast, g), sd.feasible)[0]
        counts = np.stack([np.count_nonzero(best == j, axis=0) for j in range(sd.n_arms)])
        out.append(np.argmax(np.where(sd.feasible.T, counts, -1), axis=0))
    return out


def test_fold_rules_and_online_values_do_not_depend_on_the_chunk_size(ex3):
    """The fold rules of the sample-split value go over the units in chunks (at n = 1e6 one Q
    array of 200 draws would take 3.2 GB): 1,000 elements (two units per chunk) give every
    unit exactly the arm of one whole array, and the value draws of the default setting."""
    kw = dict(draws=100, chains=2, random_seed=5, progressbar=False)
    small = ex3.fit(**kw, chunk_elements=1_000)
    cf = small._crossfit(10, "online")
    for kind in ("map", "mean"):
        for f in range(len(cf.fold_list)):
            rule = cf.fold_rule(f, bd.Regime.optimal(), kind)
            for sd, want in zip(small.design.stages, _whole_rule(cf, f, kind), strict=True):
                got = rule.assign(sd.treatment, small.design.data.iloc[sd.units])
                np.testing.assert_array_equal(got, sd.arm_coord[want], err_msg=f"{kind} {f}")
    # end to end: the fold posteriors themselves were propagated in chunks of a few draws, which
    # moves the last bit of a sum (RTOL, as above); no arm changes, or a draw would move by O(1)
    ref = ex3.fit(**kw)
    for method in ("aipw", "q"):
        np.testing.assert_allclose(
            small.value("optimal", method=method).values,
            ref.value("optimal", method=method).values,
            rtol=RTOL,
            atol=1e-12,
        )
    np.testing.assert_allclose(
        small.value(small.rule(kind="mean")).values,
        ref.value(ref.rule(kind="mean")).values,
        rtol=RTOL,
        atol=1e-12,
    )
