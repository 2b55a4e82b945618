r"""Two-stage non-regular SMART scenarios after Chakraborty, Laber and Zhao (2013).

Two families share one generator:

``"chakraborty_ex1"`` ... ``"chakraborty_ex6"``, ``"chakraborty_exA"``, ``"chakraborty_exB"``, ``"chakraborty_exC"``
    The **published** designs (Chakraborty, Laber and Zhao 2013, *Biometrics* 69:714-723,
    "Inference for optimal dynamic treatment regimes using an adaptive m-out-of-n bootstrap
    scheme"; the generative model of Chakraborty, Murphy and Strecher 2010, *SMMR* 19:317, and
    Laber et al. 2014, *EJS* 8:1225). Covariates and treatments are coded **-1/+1**:

    .. math::

        O_1 &\in \{-1, 1\}, \quad P(O_1 = 1) = 1/2, \qquad
        A_1 \in \{-1, 1\}, \quad P(A_1 = 1) = 1/2,\\
        O_2 &\in \{-1, 1\}, \quad P(O_2 = 1 \mid O_1, A_1) = \operatorname{expit}(\delta_1 O_1 + \delta_2 A_1),\\
        A_2 &\in \{-1, 1\}, \quad P(A_2 = 1) = 1/2,\\
        Y &= \gamma_1 + \gamma_2 O_1 + \gamma_3 A_1 + \gamma_4 O_1 A_1 + \gamma_5 A_2
            + \gamma_6 O_2 A_2 + \gamma_7 A_1 A_2 + \varepsilon, \quad \varepsilon \sim N(0, 1).

    The scenario is non-regular when :math:`\gamma_5 + \gamma_6 O_2 + \gamma_7 A_1 = 0` with
    positive probability (the stage-2 treatment then makes no difference for some histories);
    ``truth["nonregular"]`` is computed from that condition, not copied from the table.

    **What was checked.** Example 3 is confirmed first-hand by the authors' R package qLearn
    (``man/qLearn.Rd``: -1/+1 coding, :math:`\operatorname{expit}(0.5 O_1 + 0.5 A_1)`,
    :math:`Y = -0.5 A_1 + 0.5 A_2 + 0.5 A_1 A_2 + \varepsilon`). The other rows are the table as
    it is commonly cited (reproduced in bayesdtr's issue tracker); the paper itself could not be
    read in any stored source, so rows 1, 2 and 4-6, A-C are **not** verified first-hand.

``"chakraborty01_1"`` ... ``"chakraborty01_9"``
    A **0/1-coded adaptation** from public dWOLS replication scripts (headed "reproduce result
    tables in Chakraborty et al. (2013) with dWOLS as method of analysis"; code-index file ids
    27987650317, 27931564058, 29635210691). Treatments enter the outcome as 0/1 (covariates stay
    -1/+1 and the stage-2 covariate model uses :math:`2A_1 - 1`), and some signs are flipped
    (:math:`\gamma_7 = -0.5` in scenario 3) so that a stage-2 contrast is still exactly zero for
    one stage-1 arm. These scripts state the true stage-1 blip intercepts :math:`\psi_{10}`
    (-1, -1.48, -1, -0.0814, 0.2998, -1, -0.24 for scenarios 3-9), which this module
    reproduces exactly (see the tests). This family is NOT the published one: in it the
    percentile bootstrap does not under-cover, so it cannot show non-regularity at work. Scenario
    8 appears in two versions of those scripts; :math:`\gamma = (0, 0, 0, 0, 1, 0, -1)` is used.

Contrasts are stored in bayesdtr's parametrization: :math:`Q_k(h, 1) - Q_k(h, \text{ref})`
with the reference arm -1 (published) or 0 (adaptation). In -1/+1 coding that is **twice**
the published :math:`\psi` (the published model writes :math:`A_k(\psi_{k0} + \psi_{k1} O_k)`);
``truth["psi_published"]`` gives the published scale.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import SpecificationError
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario, check_int, expit

__all__ = [
    "CHAKRABORTY_DELTA",
    "CHAKRABORTY_GAMMA",
    "PUBLISHED_DELTA",
    "PUBLISHED_GAMMA",
    "ChakrabortyScenario",
]

#: (gamma1, ..., gamma7) of the published -1/+1 designs, examples 1-6, A, B, C.
PUBLISHED_GAMMA: dict[str, tuple[float, ...]] = {
    "1": (0, 0, 0, 0, 0, 0, 0),
    "2": (0, 0, 0, 0, 0.01, 0, 0),
    "3": (0, 0, -0.5, 0, 0.5, 0, 0.5),
    "4": (0, 0, -0.5, 0, 0.5, 0, 0.49),
    "5": (0, 0, -0.5, 0, 1, 0.5, 0.5),
    "6": (0, 0, -0.5, 0, 0.25, 0.5, 0.5),
    "A": (0, 0, -0.25, 0, 0.75, 0.5, 0.5),
    "B": (0, 0, 0, 0, 0.25, 0, 0.25),
    "C": (0, 0, 0, 0, 0.25, 0, 0.24),
}

#: (delta1, delta2) of the published designs.
PUBLISHED_DELTA: dict[str, tuple[float, float]] = {
    "1": (0.5, 0.5),
    "2": (0.5, 0.5),
    "3": (0.5, 0.5),
    "4": (0.5, 0.5),
    "5": (1.0, 0.0),
    "6": (0.1, 0.1),
    "A": (0.1, 0.1),
    "B": (0.0, 0.0),
    "C": (0.0, 0.0),
}

#: (gamma1, ..., gamma7) per scenario 1..9 of the 0/1-coded adaptation (see the module docstring).
CHAKRABORTY_GAMMA: dict[int, tuple[float, ...]] = {
    1: (0, 0, 0, 0, 0, 0, 0),
    2: (0, 0, 0, 0, 0.01, 0, 0),
    3: (0, 0, -0.5, 0, 0.5, 0, -0.5),
    4: (0, 0, -0.5, 0, 0.99, 0, -0.98),
    5: (0, 0, -0.5, 0, 1, 0.5, -0.5),
    6: (0, 0, -0.5, 0, 0.25, 0.5, 0.5),
    7: (0, 0, -0.25, 0, 0.75, 0.5, 0.5),
    8: (0, 0, 0, 0, 1, 0, -1),
    9: (0, 0, 0, 0, 0.25, 0, -0.24),
}

#: (delta1, delta2) per scenario 1..9 of the 0/1-coded adaptation.
CHAKRABORTY_DELTA: dict[int, tuple[float, float]] = {
    1: (0.5, 0.5),
    2: (0.5, 0.5),
    3: (0.5, 0.5),
    4: (0.5, 0.5),
    5: (1.0, 0.0),
    6: (0.1, 0.1),
    7: (0.1, 0.1),
    8: (0.0, 0.0),
    9: (0.0, 0.0),
}


class ChakrabortyScenario(Scenario):
    r"""Two-stage SMART with binary covariates (Chakraborty, Laber and Zhao 2013).

    See the module docstring for the generating equations, both parameter tables and their
    provenance. Treatments are randomized with probability 1/2 at both stages.

    True Q-functions (exact, by enumeration over the binary second covariate :math:`O_2`),
    with :math:`c(o_2, a_1) = \gamma_5 + \gamma_6 o_2 + \gamma_7 a_1` and arms :math:`a` coded
    as in the outcome model (-1/+1 or 0/1):

    .. math::

        Q_2 &= \gamma_1 + \gamma_2 O_1 + \gamma_3 A_1 + \gamma_4 O_1 A_1 + A_2\, c(O_2, A_1),\\
        Q_1(o_1, a_1) &= \gamma_1 + \gamma_2 o_1 + \gamma_3 a_1 + \gamma_4 o_1 a_1
               + \sum_{o_2 = \pm 1} P(o_2 \mid o_1, a_1) \max_{a_2} a_2\, c(o_2, a_1).

    The stage-1 contrast is saturated in the binary :math:`O_1`, so the default linear stages
    are correctly specified. True values of every regime (optimal, static, or any rule of the
    observed columns) are exact: the regime's rules are applied to the four histories
    :math:`(O_1, O_2)`, weighted by their probabilities.

    Default stages: stage 1 main ``O1``, contrast ``1 + O1``; stage 2 main
    ``O1 + A1 + O1:A1 + O2``, contrast ``1 + O2 + A1`` (in the 0/1 adaptation ``X1``/``X2`` and no
    ``X2`` main effect: with 0/1 arms :math:`\gamma_6 X_2 A_2` has none, while with -1/+1 arms
    :math:`\gamma_6 O_2 A_2 = 2\gamma_6 O_2 1\{A_2 = 1\} - \gamma_6 O_2`); both randomized
    (``KnownPropensity`` 1/2).

    Parameters
    ----------
    example : str or int
        Published example ``"1"``-``"6"``, ``"A"``, ``"B"``, ``"C"`` (``coding="pm1"``) or
        adaptation scenario 1..9 (``coding="01"``).
    coding : {"pm1", "01"}
        -1/+1 (published) or the 0/1-coded adaptation.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> sc = bd.scenario("chakraborty_ex3")
    >>> sc.truth["nonregular"], sc.true_value("optimal")
    (True, 0.5)
    >>> sc.sample(3, seed=1).columns.tolist()
    ['O1', 'A1', 'O2', 'A2', 'Y']
    """

    def __init__(self, example: str | int, coding: Literal["pm1", "01"] = "pm1") -> None:
        if coding == "pm1":
            key = str(example).upper()
            if key not in PUBLISHED_GAMMA:
                raise SpecificationError(
                    f"example must be one of {list(PUBLISHED_GAMMA)} for the published designs; "
                    f"got {example!r}."
                )
            self.index: str | int = key
            gamma, delta = PUBLISHED_GAMMA[key], PUBLISHED_DELTA[key]
            self.name = f"chakraborty_ex{key}"
            self.lo, self.covariates = -1, ("O1", "O2")
            label = f"Chakraborty, Laber & Zhao (2013) example {key} (published -1/+1 design)"
        elif coding == "01":
            idx = check_int(example, "index", low=1, high=9)
            self.index = idx
            gamma, delta = CHAKRABORTY_GAMMA[idx], CHAKRABORTY_DELTA[idx]
            self.name = f"chakraborty01_{idx}"
            self.lo, self.covariates = 0, ("X1", "X2")
            label = f"0/1-coded adaptation of Chakraborty, Laber & Zhao (2013), scenario {idx}"
        else:
            raise SpecificationError(f"coding must be 'pm1' or '01'; got {coding!r}.")
        self.coding = coding
        self.gamma = np.asarray(gamma, dtype=float)
        self.delta = np.asarray(delta, dtype=float)
        self.description = (
            f"{label}: gamma={tuple(self.gamma.tolist())}, delta={tuple(self.delta.tolist())}"
            + (", non-regular" if self.nonregular else "")
            + "."
        )
        self.outcome = "Y"
        self.treatments = ["A1", "A2"]
        self.arms = {"A1": [self.lo, 1], "A2": [self.lo, 1]}
        self.group = None
        self.family = "gaussian"

    @property
    def nonregular(self) -> bool:
        """True when the stage-2 contrast is exactly zero for a history of positive probability."""
        g = self.gamma
        c = [g[4] + g[5] * o2 + g[6] * a1 for o2 in (-1.0, 1.0) for a1 in (float(self.lo), 1.0)]
        return bool(np.any(np.isclose(c, 0.0, atol=1e-12)))

    @property
    def stages(self) -> list[Stage]:
        """Correctly specified default stages (see the class docstring)."""
        o1, o2 = self.covariates
        half = KnownPropensity({self.lo: 0.5, 1: 0.5})
        # with -1/+1 arms, gamma6 O2 A2 = 2 gamma6 O2 1{A2 = 1} - gamma6 O2: O2 is a main effect
        main2 = f"{o1} + A1 + {o1}:A1" + (f" + {o2}" if self.lo == -1 else "")
        return [
            Stage("A1", main=o1, contrast=f"1 + {o1}", propensity=half),
            Stage("A2", main=main2, contrast=f"1 + {o2} + A1", propensity=half),
        ]

    @property
    def truth(self) -> dict[str, Any]:
        """gamma, delta, true contrasts ``psi`` (bayesdtr's parametrization), ``psi_published``,
        regularity, the optimal value."""
        o1, o2 = self.covariates
        c = self.true_contrast(pd.DataFrame({o1: [-1, 1]}), "A1")
        psi1 = np.array([0.5 * (c[1] + c[0]), 0.5 * (c[1] - c[0])])
        # stage 2: Q(1) - Q(lo) = (1 - lo) * (gamma5 + gamma6 O2 + gamma7 A1)
        psi2 = (1 - self.lo) * self.gamma[4:7].copy()
        scale = 0.5 if self.coding == "pm1" else 1.0
        return {
            "gamma": self.gamma.copy(),
            "delta": self.delta.copy(),
            "psi": {"A1": psi1, "A2": psi2},
            "psi_published": {"A1": scale * psi1, "A2": scale * psi2},
            "contrast_terms": {"A1": ["1", o1], "A2": ["1", o2, "A1"]},
            "nonregular": self.nonregular,
            "optimal_value": self._optimal_value(),
        }

    # ------------------------------------------------------------------ generator
    def _p_o2(self, o1: np.ndarray, a1: np.ndarray) -> np.ndarray:
        a1_pm = a1 if self.lo == -1 else 2.0 * a1 - 1.0
        return expit(self.delta[0] * o1 + self.delta[1] * a1_pm)

    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        o1n, o2n = self.covariates
        u_o1, u_a1, u_o2, u_a2 = (rng.random(n) for _ in range(4))
        eps = rng.standard_normal(n)
        o1 = np.where(u_o1 < 0.5, 1, -1).astype(np.int64)
        df = pd.DataFrame({o1n: o1})
        coin = np.where(u_a1 < 0.5, 1, self.lo).astype(np.int64)
        a1 = self._choose(regime, "A1", df.copy(), coin)
        df["A1"] = a1
        df[o2n] = np.where(u_o2 < self._p_o2(o1, np.asarray(a1, float)), 1, -1).astype(np.int64)
        coin = np.where(u_a2 < 0.5, 1, self.lo).astype(np.int64)
        df["A2"] = self._choose(regime, "A2", df.copy(), coin)
        df["Y"] = self._conditional_mean(df) + eps
        return df

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        g = self.gamma
        o1n, o2n = self.covariates
        o1, a1 = df[o1n].to_numpy(float), df["A1"].to_numpy(float)
        o2, a2 = df[o2n].to_numpy(float), df["A2"].to_numpy(float)
        return g[0] + g[1] * o1 + g[2] * a1 + g[3] * o1 * a1 + a2 * (g[4] + g[5] * o2 + g[6] * a1)

    # ------------------------------------------------------------------ truth
    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        g = self.gamma
        o1n, o2n = self.covariates
        o1 = df[o1n].to_numpy(float)
        arms = (float(self.lo), 1.0)
        if k == 1:
            a1, o2 = df["A1"].to_numpy(float), df[o2n].to_numpy(float)
            base = g[0] + g[1] * o1 + g[2] * a1 + g[3] * o1 * a1
            c = g[4] + g[5] * o2 + g[6] * a1
            return np.column_stack([base + a * c for a in arms])
        cols = []
        for a in arms:
            p = self._p_o2(o1, np.full_like(o1, a))
            best = [max(b * (g[4] + g[5] * o2 + g[6] * a) for b in arms) for o2 in (1.0, -1.0)]
            future = p * best[0] + (1 - p) * best[1]
            cols.append(g[0] + g[1] * o1 + g[2] * a + g[3] * o1 * a + future)
        return np.column_stack(cols)

    def _optimal_value(self) -> float:
        return self._enumerate_value(Regime.optimal())

    def _static_value(self, arms: dict[str, Any]) -> float:
        return self._enumerate_value(Regime.static(**arms))

    def _general_value(self, regime: Regime) -> float:
        return self._enumerate_value(regime)

    def _enumerate_value(self, regime: Regime) -> float:
        """Exact value: apply the regime's rules to the 4 histories, weight by probability."""
        o1n, o2n = self.covariates
        df1 = pd.DataFrame({o1n: np.array([-1, 1], dtype=np.int64)})
        a1 = self._choose(regime, "A1", df1.copy(), None)
        o1 = np.repeat(df1[o1n].to_numpy(), 2)
        a1 = np.repeat(np.asarray(a1), 2)
        o2 = np.tile(np.array([-1, 1], dtype=np.int64), 2)
        p = self._p_o2(o1.astype(float), a1.astype(float))
        w = 0.5 * np.where(o2 == 1, p, 1 - p)
        df2 = pd.DataFrame({o1n: o1, "A1": a1, o2n: o2})
        df2["A2"] = self._choose(regime, "A2", df2.copy(), None)
        return float(np.sum(w * self._conditional_mean(df2)))
