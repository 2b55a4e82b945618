r"""The ``"k_stage"`` scenario: a K-stage SMART in the spirit of DTRlearn2's ``sim_Kstage``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario, check_int, expit

__all__ = ["KStage"]

_HALF = KnownPropensity({-1: 0.5, 1: 0.5})


class KStage(Scenario):
    r"""K-stage SMART whose optimal value is exactly K.

    Source and differences. DTRlearn2's ``sim_Kstage`` (CRAN package DTRlearn2,
    ``R/sim_Kstage.R`` and ``man/sim_Kstage.Rd``, read in the stored copy ``cran/DTRlearn2``)
    draws units from ``n_cluster`` latent groups with Gaussian centroids, gives each group an
    optimal sequence :math:`A_k^* = 2(\lfloor g / (2k - 1) \rfloor \bmod 2) - 1`, randomizes
    :math:`A_k \in \{-1, 1\}` with probability 1/2 and sets
    :math:`R = \sum_k A_k A_k^* + N(0, 1)`, so the optimal regime earns 1 per stage and has
    value K. There, :math:`A_k^*` is a function of an unobserved cluster label, so no Q-model
    of the observed covariates (linear or not) is correctly specified. This variant keeps the
    outcome :math:`\sum_k A_k A_k^* + N(0,1)`, the ±1 randomized treatments, the noise
    covariates and the value K, but makes :math:`A_k^*` an OBSERVED binary tailoring variable
    :math:`S_k` revealed just before decision k and evolving with the treatment history:

    .. math::

        Z_1, \dots, Z_p &\sim N(0, 1) \text{ (noise covariates, unrelated to anything)},\\
        S_1 &\in \{-1, 1\}, \quad P(S_1 = 1) = 1/2,\\
        A_k &\in \{-1, 1\}, \quad P(A_k = 1) = 1/2 \quad (k = 1, \dots, K),\\
        P(S_{k+1} = 1 \mid \text{past}) &= \operatorname{expit}(\alpha S_k + \beta A_k),\\
        Y &= \sum_{k=1}^K A_k S_k + \varepsilon, \quad \varepsilon \sim N(0, 1),

    with :math:`\alpha` = ``persistence`` (0.5) and :math:`\beta` = ``carryover`` (0.5). The true
    Q-functions are linear in the history,

    .. math::

        Q_k(h_k, a) = \sum_{j<k} A_j S_j + a S_k + (K - k),

    because every future stage earns exactly 1 under optimal play. The optimal rule is
    :math:`A_k = S_k` and its value is exactly K. With indicator coding of the arm (reference
    -1), :math:`a S_k = -S_k + 2\cdot 1\{a = 1\} S_k`, so the default stages (main
    ``S1:A1 + ... + S{k-1}:A{k-1} + S{k}``, contrast ``1 + S{k}``, randomized) are correctly
    specified, with true contrast coefficients :math:`(0, 2)`.

    True values: optimal = K exactly; static :math:`(a_1, \dots, a_K)`:
    :math:`\sum_k a_k (2p_k - 1)` with :math:`p_1 = 1/2`,
    :math:`p_{k+1} = p_k\operatorname{expit}(\alpha + \beta a_k)
    + (1 - p_k)\operatorname{expit}(-\alpha + \beta a_k)` (exact recursion); other regimes:
    Monte Carlo over :attr:`MC_UNITS` units averaging :math:`\sum_k A_k S_k`.

    Parameters
    ----------
    K : int, default 3
        Number of stages (1..20).
    p_noise : int, default 2
        Number of noise covariates ``Z1..Zp`` (0..50).
    persistence, carryover : float, default 0.5
        :math:`\alpha` and :math:`\beta` of the tailoring-variable transition.
    """

    def __init__(
        self,
        K: int = 3,
        *,
        p_noise: int = 2,
        persistence: float = 0.5,
        carryover: float = 0.5,
    ) -> None:
        self.K = check_int(K, "K", low=1, high=20)
        self.p_noise = check_int(p_noise, "p_noise", low=0, high=50)
        self.persistence = float(persistence)
        self.carryover = float(carryover)
        self.name = "k_stage"
        self.description = (
            f"K-stage SMART (K={self.K}) after DTRlearn2 sim_Kstage, with observed tailoring "
            "variables S_k; Y = sum_k A_k S_k + N(0,1); optimal value K."
        )
        self.outcome = "Y"
        self.treatments = [f"A{k}" for k in range(1, self.K + 1)]
        self.arms = {t: [-1, 1] for t in self.treatments}
        self.group = None
        self.family = "gaussian"

    @property
    def stages(self) -> list[Stage]:
        """Correctly specified default stages (see the class docstring)."""
        out = []
        for k in range(1, self.K + 1):
            main = " + ".join([f"S{j}:A{j}" for j in range(1, k)] + [f"S{k}"])
            out.append(Stage(f"A{k}", main=main, contrast=f"1 + S{k}", propensity=_HALF))
        return out

    @property
    def truth(self) -> dict[str, Any]:
        """True contrast coefficients per stage (on ``1 + S_k``) and the optimal value."""
        return {
            "psi": {t: np.array([0.0, 2.0]) for t in self.treatments},
            "contrast_terms": {t: ["1", f"S{k}"] for k, t in enumerate(self.treatments, 1)},
            "optimal_rule": {t: f"A{k} = S{k}" for k, t in enumerate(self.treatments, 1)},
            "optimal_value": float(self.K),
        }

    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        K = self.K
        z = rng.standard_normal((n, self.p_noise))
        u_s = rng.random((n, K))
        u_a = rng.random((n, K))
        eps = rng.standard_normal(n)
        df = pd.DataFrame({f"Z{j + 1}": z[:, j] for j in range(self.p_noise)})
        s = np.where(u_s[:, 0] < 0.5, 1, -1).astype(np.int64)
        for k in range(K):
            df[f"S{k + 1}"] = s
            natural = np.where(u_a[:, k] < 0.5, 1, -1).astype(np.int64)
            a = self._choose(regime, f"A{k + 1}", df.copy(), natural)
            df[f"A{k + 1}"] = a
            if k + 1 < K:
                p = expit(self.persistence * s + self.carryover * np.asarray(a, dtype=float))
                s = np.where(u_s[:, k + 1] < p, 1, -1).astype(np.int64)
        df["Y"] = self._conditional_mean(df) + eps
        return df

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        total = np.zeros(len(df))
        for k in range(1, self.K + 1):
            total += df[f"A{k}"].to_numpy(float) * df[f"S{k}"].to_numpy(float)
        return total

    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        past = np.zeros(len(df))
        for j in range(1, k + 1):
            past += df[f"A{j}"].to_numpy(float) * df[f"S{j}"].to_numpy(float)
        s = df[f"S{k + 1}"].to_numpy(float)
        rest = float(self.K - k - 1)
        return np.column_stack([past - s + rest, past + s + rest])

    def _optimal_value(self) -> float:
        return float(self.K)

    def _static_value(self, arms: dict[str, Any]) -> float:
        p, total = 0.5, 0.0
        for k, t in enumerate(self.treatments):
            a = float(arms[t])
            total += a * (2.0 * p - 1.0)
            if k + 1 < self.K:
                up = float(expit(self.persistence + self.carryover * a))
                down = float(expit(-self.persistence + self.carryover * a))
                p = p * up + (1.0 - p) * down
        return total
