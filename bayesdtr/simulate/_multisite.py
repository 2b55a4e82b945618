r"""The ``"multisite_smart"`` scenario: a two-stage SMART run across G sites."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.regimes import Regime
from bayesdtr.simulate._base import Scenario, check_int, expit

__all__ = ["MultisiteSmart"]

_HALF = KnownPropensity({-1: 0.5, 1: 0.5})


class MultisiteSmart(Scenario):
    r"""Two-stage SMART across G sites with site-specific treatment effects (designed here).

    This generator is not taken from a publication; it was designed for bayesdtr to exercise
    hierarchical (partial-pooling) models. Site effects are drawn ONCE from ``site_seed`` when
    the scenario is built, so every true value is a fixed number; :meth:`sample` then draws
    units, uniformly over sites.

    Site effects (:math:`g = 0, \dots, G-1`):
    :math:`u_g \sim N(0, 0.5^2)` (random intercept), :math:`b_{1g} \sim N(0, 0.3^2)` and
    :math:`b_{2g} \sim N(0, 0.3^2)` (site deviations of the stage-1 and stage-2 treatment
    effects). Units:

    .. math::

        \text{site} &\sim \mathrm{Uniform}\{0, \dots, G - 1\}, \quad
        X_0 \sim N(0, 1), \quad X_1 \in \{-1, 1\},\ P(X_1 = 1) = 1/2,\\
        A_1 &\in \{-1, 1\},\ P(A_1 = 1) = 1/2,\\
        R &\sim \mathrm{Bern}(\operatorname{expit}(\rho_0 + \rho_1 X_1 + \rho_2 A_1))
            \quad\text{(response after stage 1)},\\
        X_2 &\in \{-1, 1\},\ P(X_2 = 1) = 1/2 \quad\text{(measured at the end of stage 1)},\\
        A_2 &\in \{-1, 1\},\ P(A_2 = 1) = 1/2 \text{ if } R = 0;
            \ A_2 = \mathrm{NaN} \text{ if } R = 1 \text{ (responders are not re-randomized)},\\
        Y &= \mu + u_g + \beta_0 X_0 + \beta_1 X_1 + A_1(\psi_{10} + b_{1g} + \psi_{11} X_1)
            + \theta R\\
          &\quad + (1 - R)\,[\beta_2 X_2 + A_2(\psi_{20} + b_{2g} + \psi_{21} X_2)]
            + \varepsilon, \qquad \varepsilon \sim N(0, 1),

    with :math:`\mu = 1, \beta_0 = 0.5, \beta_1 = 0.5, \psi_{10} = 0.1, \psi_{11} = 0.4,
    \theta = 1, \rho = (-0.5, 0.5, 0.4), \beta_2 = 0.3, \psi_{20} = 0.25, \psi_{21} = 1`.

    True Q-functions (exact). For non-responders, with :math:`c_g = \psi_{20} + b_{2g}`:
    :math:`Q_2 = \mu + u_g + \beta_0 X_0 + \beta_1 X_1 + A_1(\psi_{10} + b_{1g} + \psi_{11}X_1)
    + \beta_2 X_2 + A_2(c_g + \psi_{21} X_2)`, optimal :math:`A_2 = \operatorname{sign}
    (c_g + \psi_{21} X_2)` (ties to -1). Since :math:`X_2 = \pm 1` with probability 1/2,
    :math:`E_{X_2}[\max_{a_2} a_2(c_g + \psi_{21}X_2)] = V_g = \max(|c_g|, \psi_{21})`, so

    .. math::

        Q_1 = \mu + u_g + \beta_0 X_0 + \beta_1 X_1 + A_1(\psi_{10} + b_{1g} + \psi_{11}X_1)
              + \theta p_R(X_1, A_1) + (1 - p_R(X_1, A_1))\, V_g,

    :math:`p_R = \operatorname{expit}(\rho_0 + \rho_1 X_1 + \rho_2 A_1)`. True values are exact
    closed forms given the site effects, averaging over sites (uniform) and the binary
    :math:`X_1` (:math:`E[X_0] = E[X_2] = 0`): optimal
    :math:`G^{-1}\sum_g \sum_{x_1} \tfrac12 \max_{a_1} Q_1`, static :math:`(a_1, a_2)`:
    :math:`G^{-1}\sum_g\sum_{x_1}\tfrac12[\mu + u_g + \beta_1 x_1
    + a_1(\psi_{10} + b_{1g} + \psi_{11}x_1) + \theta p_R + (1 - p_R) a_2 c_g]`. Other regimes:
    Monte Carlo over :attr:`MC_UNITS` units averaging :math:`E[Y \mid \text{all columns}]`.

    Default stages and how far they are correct. Stage 1: main ``X0 + X1``, contrast
    ``1 + X1``; stage 2: main ``X0 + X1 + A1:X1 + X2 + C(site):A1``, contrast ``1 + X2``,
    ``applies="R == 0"``; both randomized (``KnownPropensity({-1: .5, 1: .5})``), with
    ``group = "site"`` for the library's site effects (fit with ``group="site",
    group_contrast=True`` to get site-specific contrast intercepts). The fixed parts are exact (stage 1 is
    saturated in the binary :math:`X_1`). Site structure: stage-1 Q has a site intercept and a
    site-specific contrast intercept (:math:`2 b_{1g}`) exactly when :math:`|c_g| \le \psi_{21}`
    for every site (then :math:`V_g = \psi_{21}` is site-free; true for the default
    ``site_seed``; see ``truth["stage1_site_structure_exact"]``). Stage-2 Q has a site
    intercept :math:`u_g - c_g` and a site-specific contrast intercept :math:`2 b_{2g}`, but
    also a site-specific coefficient :math:`\psi_{10} + b_{1g}` on ``A1`` in its main part,
    which the default stage-2 main formula carries as fixed effects (``C(site):A1``). Leaving it
    out does not bias the stage-2 contrast (:math:`A_2` is randomized independently of
    :math:`A_1`) but biases the stage-2 Q-values by :math:`\pm b_{1g}`, and through the
    pseudo-outcomes the stage-1 site contrasts and the value (measured: value posterior
    2.50 [2.41, 2.58] against the true 2.654 at n = 2,000).

    Parameters
    ----------
    n_sites : int, default 12
        Number of sites G (2..100; 8..20 is the intended range).
    site_seed : int, default 20240601
        Seed of the site effects.
    """

    MU = 1.0
    BETA0 = 0.5
    BETA1 = 0.5
    PSI10 = 0.1
    PSI11 = 0.4
    THETA = 1.0
    RHO = (-0.5, 0.5, 0.4)
    BETA2 = 0.3
    PSI20 = 0.25
    PSI21 = 1.0
    SD_U = 0.5
    SD_B = 0.3

    def __init__(self, n_sites: int = 12, *, site_seed: int = 20240601) -> None:
        self.n_sites = check_int(n_sites, "n_sites", low=2, high=100)
        self.site_seed = check_int(site_seed, "site_seed", low=0)
        rng = np.random.default_rng(self.site_seed)
        self._u = self.SD_U * rng.standard_normal(self.n_sites)
        self._b1 = self.SD_B * rng.standard_normal(self.n_sites)
        self._b2 = self.SD_B * rng.standard_normal(self.n_sites)
        self.name = "multisite_smart"
        self.description = (
            f"Two-stage SMART across {self.n_sites} sites: site random intercepts and "
            "site-specific stage-1/stage-2 treatment effects; only non-responders re-randomized."
        )
        self.outcome = "Y"
        self.treatments = ["A1", "A2"]
        self.arms = {"A1": [-1, 1], "A2": [-1, 1]}
        self.group = "site"
        self.family = "gaussian"

    # ------------------------------------------------------------------ public extras
    @property
    def stages(self) -> list[Stage]:
        """Default stages (see the class docstring for what they capture)."""
        return [
            Stage("A1", main="X0 + X1", contrast="1 + X1", propensity=_HALF),
            Stage(
                "A2",
                main="X0 + X1 + A1:X1 + X2 + C(site):A1",
                contrast="1 + X2",
                propensity=_HALF,
                applies="R == 0",
            ),
        ]

    @property
    def site_effects(self) -> pd.DataFrame:
        """True per-site effects and contrasts (arm 1 minus arm -1).

        Columns: ``site``, ``u`` (random intercept), ``b1``, ``b2`` (treatment-effect
        deviations), ``stage1_contrast_x1_neg`` / ``_pos`` (true Q_1 contrast at X1 = -1 / +1,
        averaged over X0), ``stage2_contrast_x2_neg`` / ``_pos`` (true Q_2 contrast at
        X2 = -1 / +1).
        """
        sites = np.arange(self.n_sites)
        out = pd.DataFrame({"site": sites, "u": self._u, "b1": self._b1, "b2": self._b2})
        for x1, tag in ((-1, "neg"), (1, "pos")):
            h = pd.DataFrame({"site": sites, "X0": 0.0, "X1": x1})
            out[f"stage1_contrast_x1_{tag}"] = self.true_contrast(h, "A1")
        c = self.PSI20 + self._b2
        out["stage2_contrast_x2_neg"] = 2.0 * (c - self.PSI21)
        out["stage2_contrast_x2_pos"] = 2.0 * (c + self.PSI21)
        return out

    @property
    def truth(self) -> dict[str, Any]:
        """Fixed parameters, site effects, and the optimal value."""
        c = self.PSI20 + self._b2
        return {
            "mu": self.MU,
            "beta0": self.BETA0,
            "beta1": self.BETA1,
            "psi1": np.array([self.PSI10, self.PSI11]),
            "theta": self.THETA,
            "rho": np.array(self.RHO),
            "beta2": self.BETA2,
            "psi2": np.array([self.PSI20, self.PSI21]),
            "sd_u": self.SD_U,
            "sd_b": self.SD_B,
            "u": self._u.copy(),
            "b1": self._b1.copy(),
            "b2": self._b2.copy(),
            "stage1_site_structure_exact": bool(np.all(np.abs(c) <= self.PSI21)),
            "optimal_value": self._optimal_value(),
        }

    # ------------------------------------------------------------------ generator
    def _p_r(self, x1: np.ndarray, a1: np.ndarray) -> np.ndarray:
        r0, r1, r2 = self.RHO
        return expit(r0 + r1 * x1 + r2 * a1)

    def _simulate(self, n: int, rng: np.random.Generator, regime: Regime | None) -> pd.DataFrame:
        site = rng.integers(0, self.n_sites, size=n)
        x0 = rng.standard_normal(n)
        u_x1, u_a1, u_r, u_x2, u_a2 = (rng.random(n) for _ in range(5))
        eps = rng.standard_normal(n)
        df = pd.DataFrame({"site": site, "X0": x0, "X1": np.where(u_x1 < 0.5, 1, -1)})
        a1 = self._choose(regime, "A1", df.copy(), np.where(u_a1 < 0.5, 1, -1))
        df["A1"] = a1
        df["R"] = (u_r < self._p_r(df["X1"].to_numpy(float), np.asarray(a1, float))).astype(
            np.int64
        )
        df["X2"] = np.where(u_x2 < 0.5, 1, -1)
        nr = (df["R"] == 0).to_numpy()
        a2 = np.full(n, np.nan)
        if nr.any():
            hist = df.loc[nr].reset_index(drop=True)
            natural = np.where(u_a2[nr] < 0.5, 1, -1)
            a2[nr] = np.asarray(self._choose(regime, "A2", hist, natural), dtype=float)
        df["A2"] = a2
        df["Y"] = self._conditional_mean(df) + eps
        return df

    def _conditional_mean(self, df: pd.DataFrame) -> np.ndarray:
        g = df["site"].to_numpy()
        x0, x1 = df["X0"].to_numpy(float), df["X1"].to_numpy(float)
        a1, r = df["A1"].to_numpy(float), df["R"].to_numpy(float)
        x2 = df["X2"].to_numpy(float)
        a2 = np.nan_to_num(df["A2"].to_numpy(float))
        stage2 = self.BETA2 * x2 + a2 * (self.PSI20 + self._b2[g] + self.PSI21 * x2)
        return (
            self.MU + self._u[g] + self.BETA0 * x0 + self.BETA1 * x1
            + a1 * (self.PSI10 + self._b1[g] + self.PSI11 * x1)
            + self.THETA * r + (1.0 - r) * stage2
        )

    # ------------------------------------------------------------------ truth
    def _q(self, k: int, df: pd.DataFrame) -> np.ndarray:
        g = df["site"].to_numpy()
        x0 = df["X0"].to_numpy(float) if "X0" in df.columns else np.zeros(len(df))
        x1 = df["X1"].to_numpy(float)
        base = self.MU + self._u[g] + self.BETA0 * x0 + self.BETA1 * x1
        if k == 1:
            a1, x2 = df["A1"].to_numpy(float), df["X2"].to_numpy(float)
            base = base + a1 * (self.PSI10 + self._b1[g] + self.PSI11 * x1) + self.BETA2 * x2
            w = self.PSI20 + self._b2[g] + self.PSI21 * x2
            return np.column_stack([base - w, base + w])
        v = np.maximum(np.abs(self.PSI20 + self._b2[g]), self.PSI21)
        cols = []
        for a in (-1.0, 1.0):
            p = self._p_r(x1, np.full_like(x1, a))
            blip = a * (self.PSI10 + self._b1[g] + self.PSI11 * x1)
            cols.append(base + blip + self.THETA * p + (1.0 - p) * v)
        return np.column_stack(cols)

    def _grid(self) -> pd.DataFrame:
        """All (site, X1) cells with X0 = 0, each of weight 1 / (2G)."""
        sites = np.repeat(np.arange(self.n_sites), 2)
        return pd.DataFrame({"site": sites, "X0": 0.0, "X1": np.tile([-1, 1], self.n_sites)})

    def _optimal_value(self) -> float:
        return float(np.mean(self._q(0, self._grid()).max(axis=1)))

    def _static_value(self, arms: dict[str, Any]) -> float:
        grid = self._grid()
        g = grid["site"].to_numpy()
        x1 = grid["X1"].to_numpy(float)
        a1, a2 = float(arms["A1"]), float(arms["A2"])
        p = self._p_r(x1, np.full_like(x1, a1))
        vals = (
            self.MU + self._u[g] + self.BETA1 * x1
            + a1 * (self.PSI10 + self._b1[g] + self.PSI11 * x1)
            + self.THETA * p + (1.0 - p) * a2 * (self.PSI20 + self._b2[g])
        )
        return float(np.mean(vals))
