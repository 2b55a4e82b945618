"""The Lunceford-Davidian-Tsiatis RMST baseline against the exact truth of its own simulation design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.baselines import ldt_rmst
from bayesdtr.exceptions import DataError

# the DTR package's ?LDT.mean.estimator example (its sim.LDT.data design; LDT 2002)
L, MAX_C, PI_R, PI_Z, LAM, ALPHA, B1, B2 = 1.5, 2.5, 0.5, 0.5, 1.33, 6.67, 0.29, -0.67


def ldt_design(n: int, rng: np.random.Generator, censor: bool = True) -> pd.DataFrame:
    """Two stage-1 arms with the same law: non-responders die at Exp(LAM); responders at
    Exp(ALPHA) + Exp(e^B1) under Z=0, or + Exp(e^(B1 + B2 T11)) under Z=1; T restricted at L,
    censoring Uniform(0, MAX_C)."""
    x = rng.integers(0, 2, n)
    r = rng.binomial(1, PI_R, n)
    z = np.where(r == 1, rng.binomial(1, PI_Z, n), 0)
    t_lam = rng.exponential(1 / LAM, n)
    t_alpha = rng.exponential(1 / ALPHA, n)
    t11 = rng.exponential(1 / np.exp(B1), n)
    t12 = rng.exponential(1 / np.exp(B1 + B2 * t11))
    t_b1 = np.minimum(np.where(r == 1, t_alpha + t11, t_lam), L)
    t_b2 = np.minimum(np.where(r == 1, t_alpha + t12, t_lam), L)
    t = np.where(z == 1, t_b2, t_b1)
    c = rng.uniform(0, MAX_C, n) if censor else np.full(n, np.inf)
    return pd.DataFrame({"X": x, "R": r, "Z": z, "U": np.minimum(t, c), "delta": (t < c).astype(int),
                         "T_B1": t_b1, "T_B2": t_b2})


@pytest.fixture(scope="module")
def truth() -> dict[int, float]:
    big = ldt_design(2_000_000, np.random.default_rng(0), censor=False)
    return {0: float(big.T_B1.mean()), 1: float(big.T_B2.mean())}


def test_estimate_is_unbiased_at_large_n(truth):
    df = ldt_design(3000, np.random.default_rng(1))
    tab = ldt_rmst(df, horizon=L)
    for (x, z), row in tab.set_index(["X", "Z"]).iterrows():
        assert abs(row.estimate - truth[z]) < 4 * row.se, (x, z, row.estimate, truth[z], row.se)
        assert 0.005 < row.se < 0.05


def test_wald_interval_covers_over_replicates(truth):
    rng = np.random.default_rng(2)
    est, se, cov = [], [], []
    for _ in range(300):
        row = ldt_rmst(ldt_design(300, rng), horizon=L).loc["X=0, Z=1"]
        est.append(row.estimate)
        se.append(row.se)
        cov.append(row.lower <= truth[1] <= row.upper)
    # 300 replicates: MC SE of a 0.95 coverage is 0.013
    assert 0.91 <= np.mean(cov) <= 0.99, np.mean(cov)
    assert 0.85 < np.mean(se) / np.std(est) < 1.15
    assert abs(np.mean(est) - truth[1]) < 3 * np.std(est) / np.sqrt(300)


def test_restriction_at_a_shorter_horizon_matches_the_truth():
    tau = 0.8
    big = ldt_design(1_000_000, np.random.default_rng(3), censor=False)
    exact = float(np.minimum(big.T_B1, tau).mean())
    row = ldt_rmst(ldt_design(3000, np.random.default_rng(4)), horizon=tau).loc["X=1, Z=0"]
    assert abs(row.estimate - exact) < 4 * row.se


def test_shipped_ldt_data():
    tab = ldt_rmst(bd.load_data("ldt"), horizon=1.5)
    assert list(tab.columns) == ["X", "Z", "estimate", "se", "lower", "upper", "n"]
    assert tab.n.sum() == 2 * 200
    assert ((tab.se > 0) & (tab.lower < tab.estimate) & (tab.estimate < tab.upper)).all()


@pytest.mark.parametrize(
    ("change", "kwargs", "match"),
    [
        (lambda d: d, {"horizon": 0}, r"horizon= must be a positive finite number; got 0"),
        (lambda d: d, {"horizon": "1.5"}, r"horizon= must be a positive number .* got '1.5'"),
        (lambda d: d, {"horizon": 1.5, "time": "T"}, r"time='T' is not a column of data"),
        (lambda d: d.assign(delta=2), {"horizon": 1.5}, r"Column 'delta' \(event=\) must be 0/1; saw \[2\]"),
        (lambda d: d.assign(U=-d.U), {"horizon": 1.5}, r"'U' \(time=\) must hold non-negative finite"),
        (lambda d: d.assign(R=np.where(d.X == 1, 0, d.R)), {"horizon": 1.5}, r"X=1 has no responders"),
        (lambda d: d.assign(X=d.X.astype(float).where(d.index > 0)), {"horizon": 1.5}, r"'X' \(first=\) has 1 missing"),
    ],
)
def test_errors(change, kwargs, match):
    with pytest.raises(DataError, match=match):
        ldt_rmst(change(bd.load_data("ldt")), **kwargs)
