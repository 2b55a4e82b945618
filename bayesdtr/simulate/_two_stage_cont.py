r"""The ``"two_stage_cont"`` scenario: DTRreg's toy two-stage generator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import Stage
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario, expit

__all__ = ["TwoStageCont"]

#: E[(1 + X)^+] for X ~ N(0, 1): the expected optimal stage blip.
#: Phi(1) + phi(1); Phi from math.erfc (bit-identical to scipy's ndtr(1.0), without importing scipy)
_EPLUS = float(0.5 * math.erfc(-1 / math.sqrt(2)) + np.exp(-0.5) / np.sqrt(2 * np.pi))
#: E[exp(X)] for X ~ N(0, 1).
_EEXP = float(np.exp(0.5))


class TwoStageCont(Scenario):
    r"""DTRreg's ``twoStageCont`` generator (confounded two-stage, continuous outcome).

    Source: CRAN package DTRreg, ``R/data_generate.R``, function ``.generateTwoStageCont``
    (read in the stored copy ``cran/DTRreg``). The generating equations are

    .. math::

        X_1 &\sim N(0, 1), \qquad A_1 \mid X_1 \sim \mathrm{Bern}(\operatorname{expit}(X_1)),\\
        X_2 &\sim N(0, 1), \qquad A_2 \mid X_2 \sim \mathrm{Bern}(\operatorname{expit}(X_2)),\\
        Y &= e^{X_1} + e^{X_2} + A_1 (1 + X_1) + A_2 (1 + X_2) + \varepsilon,
        \qquad \varepsilon \sim N(0, 1),

    with :math:`X_2` independent of :math:`(X_1, A_1)`. Arms are 0/1 (reference 0).

    True Q-functions and optimal rules (exact):

    - :math:`Q_2 = e^{X_1} + e^{X_2} + A_1(1 + X_1) + A_2(1 + X_2)`, optimal
      :math:`A_2 = 1\{1 + X_2 > 0\}`, true blip :math:`\psi_2 = (1, 1)`;
    - :math:`Q_1 = e^{X_1} + A_1(1 + X_1) + e^{1/2} + \Phi(1) + \varphi(1)`, optimal
      :math:`A_1 = 1\{1 + X_1 > 0\}`, true blip :math:`\psi_1 = (1, 1)`,

    using :math:`E[(1 + X)^+] = \Phi(1) + \varphi(1)` for :math:`X \sim N(0, 1)`.

    True values: optimal :math:`2[e^{1/2} + \Phi(1) + \varphi(1)] \approx 5.4641` (closed form);
    static :math:`(a_1, a_2)`: :math:`2e^{1/2} + a_1 + a_2` (closed form, since
    :math:`E[X_k] = 0`); any other regime: :math:`2e^{1/2}` plus a Monte Carlo over :attr:`MC_UNITS`
    units (seeded) of the mean blip :math:`A_1(1 + X_1) + A_2(1 + X_2)`.

    The default :attr:`stages` are correctly specified: stage 1 main ``np.exp(X1)`` (plus the
    implicit intercept), contrast ``1 + X1``, logistic propensity on ``X1``; stage 2 main
    ``np.exp(X1) + np.exp(X2) + A1 + A1:X1``, contrast ``1 + X2``, logistic propensity on
    ``X2``.
    """

    def __init__(self) -> None:
        self.name = "two_stage_cont"
        self.description = (
            "DTRreg twoStageCont: confounded two-stage trial, exp() main effects, "
            "linear blips A_k(1 + X_k)."
        )
        self.outcome = "Y"
        self.treatments = ["A1", "A2"]
        self.arms = {"A1": [0, 1], "A2": [0, 1]}
        self.group = None
        self.family = "gaussian"

    @property
    def stages(self) -> list[Stage]:
        """Correctly specified default stages (see the class docstring)."""
        return [
            Stage("A1", main="np.exp(X1)", contrast="1 + X1", propensity="X1"),
            Stage(
                "A2",
                main="np.exp(X1) + np.exp(X2) + A1 + A1:X1",
                contrast="1 + X2",
                propensity="X2",
            ),
        ]

    @property
    def truth(self) -> dict[str, Any]:
        """True blip coefficients (intercept, slope) per stage and the optimal value."""
        return {
            "psi": {"A1": np.array([1.0, 1.0]), "A2": np.array([1.0, 1.0])},
            "contrast_terms": {"A1": ["1", "X1"], "A2": ["1", "X2"]},
            "optimal_value": self._optimal_value(),
            "optimal_rule": {"A1": "1{1 + X1 > 0}", "A2": "1{1 + X2 > 0}"},
        }

    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        x1 = rng.standard_normal(n)
        u1 = rng.random(n)
        x2 = rng.standard_normal(n)
        u2 = rng.random(n)
        eps = rng.standard_normal(n)
        df = pd.DataFrame({"X1": x1})
        a1 = self._choose(regime, "A1", df.copy(), (u1 < expit(x1)).astype(np.int64))
        df["A1"] = a1
        df["X2"] = x2
        a2 = self._choose(regime, "A2", df.copy(), (u2 < expit(x2)).astype(np.int64))
        df["A2"] = a2
        df["Y"] = self._conditional_mean(df) + eps
        return df

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
        a1, a2 = df["A1"].to_numpy(float), df["A2"].to_numpy(float)
        return np.exp(x1) + np.exp(x2) + a1 * (1 + x1) + a2 * (1 + x2)

    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        x1 = df["X1"].to_numpy(float)
        if k == 0:
            base = np.exp(x1) + _EEXP + _EPLUS
            return np.column_stack([base, base + 1 + x1])
        x2 = df["X2"].to_numpy(float)
        a1 = df["A1"].to_numpy(float)
        base = np.exp(x1) + np.exp(x2) + a1 * (1 + x1)
        return np.column_stack([base, base + 1 + x2])

    def _general_value(self, regime: Regime) -> float:
        # E[exp(X1) + exp(X2)] = 2 e^{1/2} whatever the regime (X1, X2 do not depend on the
        # treatments), so the Monte Carlo only averages the blips (smaller variance).
        df = self.sample(self.MC_UNITS, seed=self.MC_SEED, regime=regime)
        x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
        blips = df["A1"].to_numpy(float) * (1 + x1) + df["A2"].to_numpy(float) * (1 + x2)
        return 2.0 * _EEXP + float(np.mean(blips))

    def _optimal_value(self) -> float:
        return 2.0 * (_EEXP + _EPLUS)

    def _static_value(self, arms: dict[str, Any]) -> float:
        return 2.0 * _EEXP + float(arms["A1"]) + float(arms["A2"])
