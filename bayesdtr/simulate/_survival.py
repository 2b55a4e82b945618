r"""The ``"survival_smart"`` scenario: a two-stage survival SMART with censoring, known RMST."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.data.survival import mark_censored
from bayesdtr.exceptions import SpecificationError
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario

__all__ = ["SurvivalSmart"]

#: Time of the stage-2 decision (response assessment), from the stage-1 decision.
T0 = 1.0
#: Horizon of the restricted mean survival time that :meth:`SurvivalSmart.true_value` returns.
HORIZON = 10.0
#: Stage-1 death time: log D1 = D_INT + D_X1 X1 + D_A1 A1 + D_SD e1.
D_INT, D_X1, D_A1, D_SD = 1.4, 0.3, 0.3, 0.8
#: Stage-2 covariate: X2 = X2_X1 X1 + X2_A1 A1 + X2_SD e2.
X2_X1, X2_A1, X2_SD = 0.5, -0.3, 0.8
#: Time after the stage-2 decision: log T2 = B0 + B_X1 X1 + B_X2 X2 + B_A1 A1 + A2 (P0 + P1 X2) + S2 e3.
B0, B_X1, B_X2, B_A1, P0, P1, S2 = 1.8, 0.3, 0.2, 0.2, 0.3, -0.6, 0.7
#: Censoring time C ~ Uniform(0, C_MAX), independent of everything.
C_MAX = 30.0
#: Gauss-Hermite nodes for the integrals over X1 (and X2) ~ Normal.
_GH_NODES = 80


def _ln_rmst(mu: np.ndarray, sd: np.ndarray | float, tau: float) -> np.ndarray:
    """E[min(T, tau)] for log T ~ N(mu, sd^2)."""
    from scipy.special import ndtr  # with the truth, not with the scenario registry (issue 13)

    lt = np.log(tau)
    return np.exp(mu + sd**2 / 2) * ndtr((lt - mu - sd**2) / sd) + tau * ndtr((mu - lt) / sd)


def _gh() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(Z)], Z ~ N(0, 1) (probabilists' Gauss-Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    return x, w / np.sqrt(2 * np.pi)


def _stage1_part(x1: np.ndarray, a1: float) -> tuple[np.ndarray, np.ndarray]:
    """E[D1 1{D1 < T0} | x1, a1] and P(D1 >= T0 | x1, a1)."""
    from scipy.special import ndtr

    m1 = D_INT + D_X1 * x1 + D_A1 * a1
    early = np.exp(m1 + D_SD**2 / 2) * ndtr((np.log(T0) - m1 - D_SD**2) / D_SD)
    reach = ndtr((m1 - np.log(T0)) / D_SD)
    return early, reach


def _rmst_static_given_x1(x1: np.ndarray, a1: float, a2: float, tau: float) -> np.ndarray:
    """E[min(T, tau) | X1, static (a1, a2)] in closed form (log T2 | X1 is normal)."""
    early, reach = _stage1_part(x1, a1)
    slope = B_X2 + a2 * P1
    mean_x2 = X2_X1 * x1 + X2_A1 * a1
    m2 = B0 + B_X1 * x1 + B_A1 * a1 + a2 * P0 + slope * mean_x2
    sd2 = np.sqrt(S2**2 + (slope * X2_SD) ** 2)
    return early + reach * (T0 + _ln_rmst(m2, sd2, tau - T0))


def _rmst_optimal2_given_x1(x1: float, a1: float, tau: float) -> float:
    """E[min(T, tau) | X1, a1, optimal stage 2]: a 1-D integral over X2 split at the kink."""
    early, reach = _stage1_part(np.asarray(x1), a1)
    mean_x2 = X2_X1 * x1 + X2_A1 * a1
    base = B0 + B_X1 * x1 + B_A1 * a1

    def f(x2: float) -> float:
        m2 = base + B_X2 * x2 + max(0.0, P0 + P1 * x2)
        dens = np.exp(-0.5 * ((x2 - mean_x2) / X2_SD) ** 2) / (X2_SD * np.sqrt(2 * np.pi))
        return float(_ln_rmst(np.asarray(m2), S2, tau - T0)) * dens

    from scipy import integrate  # only the exact truth needs quadrature (issue 13: import time)

    kink = -P0 / P1
    lo, hi = mean_x2 - 10 * X2_SD, mean_x2 + 10 * X2_SD
    pts = sorted({lo, min(max(kink, lo), hi), hi})
    val = sum(
        integrate.quad(f, a, b, epsabs=1e-12, epsrel=1e-11)[0]
        for a, b in zip(pts[:-1], pts[1:], strict=True)
    )
    return float(early + reach * (T0 + val))


@lru_cache(maxsize=64)
def _static_rmst(a1: float, a2: float, tau: float) -> float:
    x, w = _gh()
    return float(np.sum(w * _rmst_static_given_x1(x, a1, a2, tau)))


@lru_cache(maxsize=16)
def _optimal_rmst(tau: float) -> float:
    x, w = _gh()
    best = [
        max(
            _rmst_optimal2_given_x1(float(xi), 0.0, tau),
            _rmst_optimal2_given_x1(float(xi), 1.0, tau),
        )
        for xi in x
    ]
    return float(np.sum(w * np.asarray(best)))


class SurvivalSmart(Scenario):
    r"""A two-stage survival SMART with right censoring and a known RMST of every regime.

    Time 0 is the stage-1 decision (randomized, :math:`A_1 \in \{0, 1\}` with probability 1/2).
    A unit dies during stage 1 at :math:`D_1` if :math:`D_1 < t_0 = 1`; otherwise it reaches the
    stage-2 decision at :math:`t_0`, where :math:`X_2` is measured and :math:`A_2 \in \{0, 1\}` is
    randomized (1/2), and lives :math:`T_2` more:

    .. math::

        X_1 &\sim N(0, 1), \qquad \log D_1 = 1.4 + 0.3 X_1 + 0.3 A_1 + 0.8\,\varepsilon_1,\\
        X_2 &= 0.5 X_1 - 0.3 A_1 + 0.8\,\varepsilon_2,\\
        \log T_2 &= 1.8 + 0.3 X_1 + 0.2 X_2 + 0.2 A_1 + A_2 (0.3 - 0.6 X_2) + 0.7\,\varepsilon_3,

    with independent standard normal :math:`\varepsilon`. The total time is
    :math:`T = D_1` (death in stage 1) or :math:`t_0 + T_2`. Censoring
    :math:`C \sim \mathrm{Uniform}(0, 30)` is independent; observed are :math:`\min(T, C)`
    (column ``T``), ``delta`` :math:`= 1\{T \le C\}`, the stage-1 time ``T1`` (time to the
    stage-2 decision, or to death/censoring before it) and ``R`` (1 if the unit reached the
    stage-2 decision uncensored). ``X2`` and ``A2`` are drawn for every unit but mean something
    only where ``R == 1`` (the default stage 2 has ``applies="R == 1"``). ``T`` and ``T1`` are
    marked censored (``df.attrs["bayesdtr_censored"]``), so a Gaussian fit of them is refused. About 30% of the times
    are censored and 3-4% of the units die in stage 1.

    **Truth.** :meth:`true_value` is the restricted mean survival time
    :math:`E[\min(T^d, \tau)]` at :attr:`horizon` :math:`\tau = 10` (another horizon:
    :meth:`true_rmst`). For a static regime :math:`(a_1, a_2)`, :math:`\log T_2` given
    :math:`X_1` is normal (:math:`X_2` enters linearly), so

    .. math::

        E[\min(T, \tau) \mid X_1] = E[D_1 1\{D_1 < t_0\}] + P(D_1 \ge t_0)
            \big(t_0 + \mathrm{RMST}_{LN}(m_2, s_2; \tau - t_0)\big)

    in closed form (lognormal partial expectations), integrated over :math:`X_1` by
    80-node Gauss-Hermite quadrature: exact to about 1e-12. The optimal regime
    (:math:`d_2 = 1\{0.3 - 0.6 X_2 > 0\}`, which maximizes :math:`S_2(t)` for every t, and
    :math:`d_1(X_1)` the arm with the larger conditional RMST under :math:`d_2`) adds an
    integral over :math:`X_2` (adaptive quadrature split at the kink). Other regimes: Monte
    Carlo over :attr:`MC_UNITS` = 1e6 uncensored units (seeded).

    True Q-functions (:meth:`true_q`): stage 2 on the log-time scale (the AFT location
    :math:`1.8 + 0.3 X_1 + 0.2 X_2 + 0.2 A_1 + a_2(0.3 - 0.6 X_2)`); stage 1 on the RMST scale
    (the conditional RMST at the horizon under the optimal stage 2), the scale of its decision.

    The default :attr:`stages` are a correctly specified stage 2 and a working log-normal
    stage 1 (the stage-1 total time is a mixture of stage-1 deaths and :math:`t_0 + T_2`, not
    exactly log-normal): ``Stage("A1", main="X1", contrast="1 + X1", reward="T1")``,
    ``Stage("A2", main="X1 + X2 + A1", contrast="1 + X2", applies="R == 1")``, each with its
    known randomization ``propensity=KnownPropensity({0: 0.5, 1: 0.5})`` (so the default survival
    value is the stage-1 AIPW, which does not rest on the misspecified stage-1 contrast); fit with
    ``DTRModel(df, scn.stages, outcome="T", event="delta", family="lognormal")``.
    """

    def __init__(self, horizon: float = HORIZON) -> None:
        self.name = "survival_smart"
        self.description = (
            "Two-stage survival SMART, right-censored (about 30%), log-normal stage-2 times; "
            "true RMST by closed form and quadrature."
        )
        self.outcome = "T"
        self.event = "delta"
        self.treatments = ["A1", "A2"]
        self.arms = {"A1": [0, 1], "A2": [0, 1]}
        self.group = None
        self.family = "lognormal"
        self.horizon = float(horizon)

    @property
    def stages(self) -> list[Stage]:
        """Stage 2 correctly specified, stage 1 a log-normal working model (see the class docstring)."""
        half = KnownPropensity({0: 0.5, 1: 0.5})  # both decisions randomized 1:1
        return [
            Stage("A1", main="X1", contrast="1 + X1", reward="T1", propensity=half),
            Stage("A2", main="X1 + X2 + A1", contrast="1 + X2", applies="R == 1", propensity=half),
        ]

    @property
    def truth(self) -> dict[str, Any]:
        """True stage-2 AFT coefficients, horizon, and the RMST of the static regimes."""
        return {
            "psi": {"A2": np.array([P0, P1])},
            "contrast_terms": {"A2": ["1", "X2"]},
            "horizon": self.horizon,
            "static_rmst": {
                (a1, a2): _static_rmst(float(a1), float(a2), self.horizon)
                for a1 in (0, 1)
                for a2 in (0, 1)
            },
            "optimal_value": self._optimal_value(),
            "optimal_rule": {"A2": "1{0.3 - 0.6 X2 > 0}"},
        }

    def true_rmst(self, regime: Regime | str, horizon: float) -> float:
        """True RMST of ``regime`` at ``horizon`` (exact for static and optimal regimes)."""
        reg = self._check_regime(regime)
        if reg.is_optimal:
            return _optimal_rmst(float(horizon))
        static = reg.static_arms
        if static is not None:
            return _static_rmst(float(static["A1"]), float(static["A2"]), float(horizon))
        return self._mc_rmst(reg, float(horizon))

    # ------------------------------------------------------------------ generator
    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        df, _ = self._draw(n, rng, regime)
        return df

    def _draw(
        self, n: int, rng: np.random.Generator, regime: Regime | None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The observed frame and the uncensored total times."""
        x1 = rng.standard_normal(n)
        u1 = rng.random(n)
        e1, e2, e3 = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
        u2 = rng.random(n)
        c = rng.uniform(0.0, C_MAX, n)
        df = pd.DataFrame({"X1": x1})
        a1 = self._choose(regime, "A1", df.copy(), (u1 < 0.5).astype(np.int64))
        df["A1"] = a1
        d1 = np.exp(D_INT + D_X1 * x1 + D_A1 * a1 + D_SD * e1)
        df["X2"] = X2_X1 * x1 + X2_A1 * a1 + X2_SD * e2
        a2 = self._choose(regime, "A2", df.copy(), (u2 < 0.5).astype(np.int64))
        df["A2"] = a2
        t2 = np.exp(self._q2(df, a2) + S2 * e3)
        total = np.where(d1 < T0, d1, T0 + t2)
        reached = (d1 >= T0) & (c >= T0)
        df["R"] = reached.astype(np.int64)
        df["T1"] = np.where(reached, T0, np.minimum(total, c))
        df["T"] = np.minimum(total, c)
        df["delta"] = (total <= c).astype(np.int64)
        mark_censored(df, {"T": "delta", "T1": "delta"})
        return df, total

    def _q2(self, df: pd.DataFrame, a2: np.ndarray | float) -> np.ndarray:
        x1, x2, a1 = (df[c].to_numpy(float) for c in ("X1", "X2", "A1"))
        return B0 + B_X1 * x1 + B_X2 * x2 + B_A1 * a1 + np.asarray(a2, dtype=float) * (P0 + P1 * x2)

    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        if k == 1:
            return np.column_stack([self._q2(df, 0.0), self._q2(df, 1.0)])
        x1 = df["X1"].to_numpy(float)
        return np.array(
            [[_rmst_optimal2_given_x1(float(v), a, self.horizon) for a in (0.0, 1.0)] for v in x1]
        ).reshape(len(x1), 2)

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        raise SpecificationError(
            "survival_smart has no conditional mean outcome: its values are restricted mean "
            "survival times; use true_value(regime) or true_rmst(...)."
        )

    def _optimal_value(self) -> float:
        return _optimal_rmst(self.horizon)

    def _static_value(self, arms: dict[str, Any]) -> float:
        return _static_rmst(float(arms["A1"]), float(arms["A2"]), self.horizon)

    def _general_value(self, regime: Regime) -> float:
        return self._mc_rmst(regime, self.horizon)

    def _mc_rmst(self, regime: Regime, horizon: float) -> float:
        _, total = self._draw(self.MC_UNITS, np.random.default_rng(self.MC_SEED), regime)
        return float(np.mean(np.minimum(total, horizon)))
