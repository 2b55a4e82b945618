r"""The ``"dropout_smart"`` scenario: a two-stage SMART whose units drop out before stage 2."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario, check_int, expit

__all__ = ["DropoutSmart"]

#: Intermediate covariate: X2 = X2_X1 X1 + X2_A1 A1 + e2, e2 ~ N(0, 1).
X2_X1, X2_A1 = 0.5, 0.5
#: Outcome: Y = B0 + B_X1 X1 + B_X2 X2 + B_A1 A1 + A2 (P0 + P1 X2) + eps, eps ~ N(0, 1).
B0, B_X1, B_X2, B_A1, P0, P1 = 1.0, 1.0, 1.5, 0.5, 0.3, -1.0
#: Remaining to stage 2: P(remain | X2) = expit(C0 + C_X2 X2).
C0, C_X2 = 1.5, 1.0
#: Gauss-Hermite nodes for the optimal value's integral over X1 ~ N(0, 1).
_GH_NODES = 120


def _eplus(d: np.ndarray) -> np.ndarray:
    """E[(d - Z)^+] = E[(d + Z)^+] for Z ~ N(0, 1): d Phi(d) + phi(d)."""
    from scipy.special import ndtr  # lazily: importing the scenario registry stays light

    return d * ndtr(d) + np.exp(-0.5 * d * d) / np.sqrt(2 * np.pi)


class DropoutSmart(Scenario):
    r"""A randomized two-stage SMART in which units drop out before the second decision (MAR).

    Designed for bayesdtr (issue 15). The generating equations:

    .. math::

        X_1 &\sim N(0, 1), \qquad A_1 \sim \mathrm{Bern}(1/2), \\
        X_2 &= 0.5 X_1 + 0.5 A_1 + e_2, \qquad e_2 \sim N(0, 1), \\
        R_2 \mid X_1, A_1, X_2 &\sim \mathrm{Bern}(\operatorname{expit}(1.5 + X_2))
            \quad \text{(1: remains to stage 2)}, \\
        A_2 &\sim \mathrm{Bern}(1/2), \\
        Y &= 1 + X_1 + 1.5 X_2 + 0.5 A_1 + A_2 (0.3 - X_2) + \varepsilon,
            \qquad \varepsilon \sim N(0, 1).

    About 20% of the units drop out, more often those with a low :math:`X_2`, which also
    predicts a low outcome: dropout is missing at random given :math:`X_2` (observed for every
    unit, measured after the first decision and before the dropout), not completely at random,
    so complete-case analysis overstates every regime's value (by about 0.3 to 0.45 at these
    parameters). For a unit that drops out, ``A2`` and ``Y`` are missing (NaN) in
    :meth:`sample`; ``sample(..., regime=...)`` returns the full data under the regime with no
    dropout, the population the values refer to.

    True Q-functions (exact), with :math:`m = 0.5 X_1 + 0.5 A_1`:

    - :math:`Q_2 = 1 + X_1 + 1.5 X_2 + 0.5 A_1 + A_2 (0.3 - X_2)`, optimal
      :math:`A_2 = 1\{X_2 < 0.3\}`;
    - :math:`Q_1 = 1 + X_1 + 1.5 m + 0.5 A_1 + E[(0.3 - X_2)^+ \mid X_1, A_1]`, with
      :math:`E[(0.3 - X_2)^+ \mid X_1, A_1] = d\Phi(d) + \varphi(d)`, :math:`d = 0.3 - m`.

    True values: static :math:`(a_1, a_2)`: :math:`1 + 1.25 a_1 + a_2 (0.3 - 0.5 a_1)`
    (closed form: 1, 1.3, 2.25 and 2.05); optimal: :math:`E_{X_1}[\max_{a_1} Q_1(X_1, a_1)]`
    by Gauss-Hermite quadrature (120 nodes, exact to rounding); other regimes: a seeded Monte
    Carlo over :attr:`MC_UNITS` units.

    The default :attr:`stages` are correctly specified for the static regimes (whose stage-1
    Q-functions are linear in :math:`X_1` and :math:`A_1`), randomized with known propensities,
    and declare the dropout: ``bd.Stage("A2", ..., censoring="X1 + A1 + X2")``.

    Parameters
    ----------
    dropout : bool, default True
        False: nobody drops out (the full data, for checks).

    Examples
    --------
    >>> import bayesdtr as bd
    >>> scn = bd.scenario("dropout_smart")
    >>> df = scn.sample(1000, seed=1)
    >>> round(float(df["A2"].isna().mean()), 2)
    0.2
    >>> scn.true_value(bd.Regime.static(A1=1, A2=1))
    2.05
    """

    def __init__(self, dropout: bool = True) -> None:
        self.name = "dropout_smart"
        self.description = (
            "Randomized two-stage SMART with dropout before stage 2 that depends on an "
            "intermediate covariate predicting the outcome (MAR): complete case is biased."
        )
        self.outcome = "Y"
        self.treatments = ["A1", "A2"]
        self.arms = {"A1": [0, 1], "A2": [0, 1]}
        self.group = None
        self.family = "gaussian"
        self.dropout = bool(check_int(int(dropout), "dropout", low=0, high=1))

    @property
    def stages(self) -> list[Stage]:
        """Correctly specified stages with the dropout declared (see the class docstring)."""
        half = KnownPropensity({0: 0.5, 1: 0.5})
        return [
            Stage("A1", main="X1", contrast="1 + X1", propensity=half),
            Stage(
                "A2",
                main="X1 + A1 + X2",
                contrast="1 + X2",
                propensity=half,
                censoring="X1 + A1 + X2",
            ),
        ]

    @property
    def truth(self) -> dict[str, Any]:
        """True stage-2 blip, dropout model and values."""
        return {
            "psi": {"A2": np.array([P0, P1])},
            "contrast_terms": {"A2": ["1", "X2"]},
            "dropout": {"intercept": C0, "X2": C_X2},
            "optimal_value": self._optimal_value(),
            "optimal_rule": {"A1": "argmax of Q_1 (nonlinear in X1)", "A2": "1{X2 < 0.3}"},
        }

    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        x1 = rng.standard_normal(n)
        u1 = rng.random(n)
        e2 = rng.standard_normal(n)
        ud = rng.random(n)
        u2 = rng.random(n)
        eps = rng.standard_normal(n)
        df = pd.DataFrame({"X1": x1})
        df["A1"] = self._choose(regime, "A1", df.copy(), (u1 < 0.5).astype(np.int64))
        df["X2"] = X2_X1 * x1 + X2_A1 * df["A1"].to_numpy(float) + e2
        df["A2"] = self._choose(regime, "A2", df.copy(), (u2 < 0.5).astype(np.int64))
        df["Y"] = self._conditional_mean(df) + eps
        if regime is None and self.dropout:
            gone = ud >= expit(C0 + C_X2 * df["X2"].to_numpy(float))
            df["A2"] = df["A2"].astype("float64").where(~gone)
            df["Y"] = df["Y"].where(~gone)
        return df

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
        a1, a2 = df["A1"].to_numpy(float), df["A2"].to_numpy(float)
        return B0 + B_X1 * x1 + B_X2 * x2 + B_A1 * a1 + a2 * (P0 + P1 * x2)

    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        x1 = df["X1"].to_numpy(float)
        a1 = df["A1"].to_numpy(float) if k == 1 else None
        if k == 0:
            return np.column_stack([self._q1(x1, 0.0), self._q1(x1, 1.0)])
        x2 = df["X2"].to_numpy(float)
        base = B0 + B_X1 * x1 + B_X2 * x2 + B_A1 * a1
        return np.column_stack([base, base + P0 + P1 * x2])

    @staticmethod
    def _q1(x1: np.ndarray, a1: float) -> np.ndarray:
        """Q_1 under the optimal stage-2 rule (P1 = -1: the blip is P0 - X2)."""
        m = X2_X1 * x1 + X2_A1 * a1
        return B0 + B_X1 * x1 + B_X2 * m + B_A1 * a1 + _eplus(P0 - m)

    def _optimal_value(self) -> float:
        x, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
        best = np.maximum(self._q1(x, 0.0), self._q1(x, 1.0))
        return float(np.sum(w * best) / np.sqrt(2 * np.pi))

    def _static_value(self, arms: dict[str, Any]) -> float:
        a1, a2 = float(arms["A1"]), float(arms["A2"])
        m = X2_A1 * a1  # E[X2] under a1 (E[X1] = 0)
        return B0 + B_X2 * m + B_A1 * a1 + a2 * (P0 + P1 * m)
