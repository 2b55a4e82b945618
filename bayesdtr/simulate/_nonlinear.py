r"""The ``"nonlinear_band"`` scenario: treatment helps only in a band of a covariate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.bart_spec import BART
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import SpecificationError
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario

__all__ = ["NonlinearBand"]

#: Half-width of the band where treatment helps.
HALF_WIDTH = 0.5


#: Coefficients of the Bernoulli variant's success probability (see :class:`NonlinearBand`).
BINARY = {"base": 0.5, "sin": 0.08, "x2sq": 0.12, "arm": 0.15}


def band_contrast(x: np.ndarray) -> np.ndarray:
    """+1 inside the band |x| < 1/2, -1 outside."""
    return np.where(np.abs(x) < HALF_WIDTH, 1.0, -1.0)


class NonlinearBand(Scenario):
    r"""Two randomized stages whose contrasts are +1 inside a band of a covariate, -1 outside.

    .. math::

        X_1, X_2 &\sim U(-1, 1) \text{ independent}, \qquad A_1, A_2 \sim \mathrm{Bern}(1/2),\\
        Y &= \sin(\pi X_1) + X_2^2 + A_1 c(X_1) + A_2 c(X_2) + \varepsilon, \qquad
        c(x) = 2 \cdot 1\{|x| < 1/2\} - 1, \quad \varepsilon \sim N(0, 1).

    :math:`X_2` is measured after :math:`A_1`. Exact truth:

    - :math:`Q_2 = \sin(\pi X_1) + X_2^2 + A_1 c(X_1) + A_2 c(X_2)`, optimal
      :math:`A_2 = 1\{|X_2| < 1/2\}`;
    - :math:`Q_1 = \sin(\pi X_1) + 1/3 + 1/2 + A_1 c(X_1)` (:math:`E[X_2^2] = 1/3`,
      :math:`E[c(X_2)^+] = P(|X_2| < 1/2) = 1/2`), optimal :math:`A_1 = 1\{|X_1| < 1/2\}`;
    - value of the optimal regime :math:`1/3 + 1/2 + 1/2 = 4/3`; of every static regime
      :math:`1/3` (:math:`E[\sin(\pi X_1)] = E[c(X_k)] = 0`); any other regime by midpoint
      quadrature over a :attr:`GRID` x :attr:`GRID` grid of :math:`(X_1, X_2)` (the regime's
      arms assigned stage by stage): the smooth terms are exact to about :math:`10^{-5}`, and a
      rule whose switch points fall between grid points is off by at most :math:`2/`:attr:`GRID`
      per switch point.

    A contrast linear in :math:`X_k` cannot represent the band: its best linear fit is about 0
    (the band is symmetric and :math:`E[c] = 0`), so its rule matches the optimal one for about
    half of the units. :attr:`stages` are the correctly specified linear model (the band
    indicators and :math:`\sin(\pi X_1)`, :math:`X_2^2` written in the formulas);
    :meth:`linear_stages` the misspecified one a user would write (linear in :math:`X_1`,
    :math:`X_2`); :meth:`bart_stages` BART Q-functions on the same columns. All with known
    propensities 1/2.

    ``scenario("nonlinear_band", family="bernoulli")`` is the same design with a 0/1 outcome
    whose success probability is linear in the same terms (so the truth stays exact):

    .. math::

        P(Y = 1 \mid H_2, A_2) = \tfrac12 + 0.08 \sin(\pi X_1) + 0.12 (X_2^2 - \tfrac13)
        + 0.15 (2A_1 - 1) c(X_1) + 0.15 (2A_2 - 1) c(X_2) \in [0.08, 0.96].

    - :math:`Q_2` is that probability, optimal :math:`A_2 = 1\{|X_2| < 1/2\}` (contrast
      :math:`\pm 0.3`);
    - :math:`Q_1 = 0.65 + 0.08 \sin(\pi X_1) + 0.15 (2A_1 - 1) c(X_1)`
      (:math:`E \max_{a_2} 0.15 (2a_2 - 1) c(X_2) = 0.15`), optimal :math:`A_1 = 1\{|X_1| < 1/2\}`;
    - value of the optimal regime :math:`0.8`, of every static regime :math:`0.5`, others by the
      same quadrature.

    Its :attr:`stages` are logistic with the band indicators in the contrasts: their contrasts'
    signs, hence their rules, can be right, but the probability is not logit-linear.
    """

    #: Points per axis of the quadrature grid of other regimes' values.
    GRID = 200

    def __init__(self, family: str = "gaussian") -> None:
        if family not in ("gaussian", "bernoulli"):
            raise SpecificationError(
                f"scenario('nonlinear_band', family=...) must be 'gaussian' or 'bernoulli'; got "
                f"{family!r}."
            )
        self.name = "nonlinear_band"
        self.description = (
            "Two randomized stages; treatment helps (+1) only for |X_k| < 1/2 and harms (-1) "
            "outside: a linear contrast gets the rule wrong for about half of the units."
        )
        self.outcome = "Y"
        self.treatments = ["A1", "A2"]
        self.arms = {"A1": [0, 1], "A2": [0, 1]}
        self.group = None
        self.family = family

    @property
    def stages(self) -> list[Stage]:
        """Correctly specified linear stages: band indicators in the contrasts."""
        known = KnownPropensity({0: 0.5, 1: 0.5})
        band1, band2 = "I(1.0 * (np.abs(X1) < 0.5))", "I(1.0 * (np.abs(X2) < 0.5))"
        sin1 = "np.sin(np.pi * X1)"
        return [
            Stage("A1", main=sin1, contrast=f"1 + {band1}", propensity=known),
            Stage(
                "A2",
                main=f"{sin1} + I(X2**2) + A1 + A1:{band1}",
                contrast=f"1 + {band2}",
                propensity=known,
            ),
        ]

    def linear_stages(self) -> list[Stage]:
        """The misspecified linear model: mains and contrasts linear in X1, X2."""
        known = KnownPropensity({0: 0.5, 1: 0.5})
        return [
            Stage("A1", main="X1", contrast="1 + X1", propensity=known),
            Stage("A2", main="X1 + X2 + A1", contrast="1 + X2", propensity=known),
        ]

    def bart_stages(self, **bart: Any) -> list[Stage]:
        """BART Q-functions on the history columns (``bart``: settings of :class:`~bayesdtr.BART`)."""
        known = KnownPropensity({0: 0.5, 1: 0.5})
        return [
            Stage("A1", q=BART(covariates=["X1"], **bart), propensity=known),
            Stage("A2", q=BART(covariates=["X1", "A1", "X2"], **bart), propensity=known),
        ]

    @property
    def truth(self) -> dict[str, Any]:
        return {
            "optimal_value": self._optimal_value(),
            "optimal_rule": {"A1": "1{|X1| < 1/2}", "A2": "1{|X2| < 1/2}"},
        }

    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        x1 = rng.uniform(-1, 1, n)
        u1 = rng.random(n)
        x2 = rng.uniform(-1, 1, n)
        u2 = rng.random(n)
        noise = rng.standard_normal(n) if self.family == "gaussian" else rng.random(n)
        df = pd.DataFrame({"X1": x1})
        df["A1"] = self._choose(regime, "A1", df.copy(), (u1 < 0.5).astype(np.int64))
        df["X2"] = x2
        df["A2"] = self._choose(regime, "A2", df.copy(), (u2 < 0.5).astype(np.int64))
        if self.family == "gaussian":
            df["Y"] = self._conditional_mean(df) + noise
        else:
            df["Y"] = (noise < self._conditional_mean(df)).astype(np.int64)
        return df

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
        a1, a2 = df["A1"].to_numpy(float), df["A2"].to_numpy(float)
        if self.family == "bernoulli":
            b = BINARY
            return (
                b["base"]
                + b["sin"] * np.sin(np.pi * x1)
                + b["x2sq"] * (x2**2 - 1 / 3)
                + b["arm"] * ((2 * a1 - 1) * band_contrast(x1) + (2 * a2 - 1) * band_contrast(x2))
            )
        return np.sin(np.pi * x1) + x2**2 + a1 * band_contrast(x1) + a2 * band_contrast(x2)

    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        x1 = df["X1"].to_numpy(float)
        if self.family == "bernoulli":
            if k == 0:
                b = BINARY
                base = b["base"] + b["arm"] + b["sin"] * np.sin(np.pi * x1)
                c = b["arm"] * band_contrast(x1)
                return np.column_stack([base - c, base + c])
            arms = [df.assign(A2=a) for a in (0, 1)]
            return np.column_stack([self._conditional_mean(d) for d in arms])
        if k == 0:
            base = np.sin(np.pi * x1) + 1 / 3 + 0.5
            return np.column_stack([base, base + band_contrast(x1)])
        x2 = df["X2"].to_numpy(float)
        base = np.sin(np.pi * x1) + x2**2 + df["A1"].to_numpy(float) * band_contrast(x1)
        return np.column_stack([base, base + band_contrast(x2)])

    def _optimal_value(self) -> float:
        if self.family == "bernoulli":
            return BINARY["base"] + 2 * BINARY["arm"]
        return 1 / 3 + 0.5 + 0.5

    def _general_value(self, regime: Regime) -> float:
        g = (np.arange(self.GRID) + 0.5) / self.GRID * 2 - 1
        x1, x2 = np.repeat(g, self.GRID), np.tile(g, self.GRID)
        df = pd.DataFrame({"X1": x1})
        df["A1"] = self._choose(regime, "A1", df.copy(), None)
        df["X2"] = x2
        df["A2"] = self._choose(regime, "A2", df.copy(), None)
        return float(np.mean(self._conditional_mean(df)))

    def _static_value(self, arms: dict[str, Any]) -> float:
        return BINARY["base"] if self.family == "bernoulli" else 1 / 3
