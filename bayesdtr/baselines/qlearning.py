r"""Frequentist Q-learning by ordinary least squares, with a nonparametric bootstrap.

This is the classical baseline (DynTxRegime's ``qLearn``, DTRreg's Q-learning) for the same
:class:`~bayesdtr.DTRModel` specification, so that Bayesian and frequentist answers can be put
side by side in one run. Priors, propensity models and the engine settings of the model are
ignored; only the stage formulas, feasible sets, ``applies=`` subsets and rewards are used.

**Backward induction.** With :math:`V_{K+1} = Y`, going backwards over the stages
:math:`k = K, \dots, 1`, stage k's target for the :math:`n_k` units that reach it is
:math:`T_k = R_k + V_{k+1}`, and the Q-function

.. math::

    Q_k(h, a) = \mathrm{main}_k(h)^\top\beta_k
        + \sum_{a' \ne \mathrm{ref}} 1\{a = a'\}\,\mathrm{contrast}_k(h)^\top\psi_{k,a'}
              = x_k(h, a)^\top\theta_k

is fitted by OLS, :math:`\hat\theta_k = (X_k^\top X_k)^{-1} X_k^\top T_k`, where row i of
:math:`X_k` is :math:`x_k(H_{k,i}, A_{k,i})` (the observed arm). The pseudo-outcome carried to
stage k-1 is the maximum of the fitted Q-function over the unit's feasible arms,

.. math::

    V_k(H_{k,i}) = \max_{a \in \mathcal{A}_k(H_{k,i})} x_k(H_{k,i}, a)^\top\hat\theta_k,

for units that reach stage k, while a unit that skips stage k carries its target,
:math:`V_k = T_k` (e.g. responders who are not re-randomized keep their observed outcome).

**Standard errors.** Classical OLS standard errors at each stage,
:math:`\widehat{\mathrm{Var}}(\hat\theta_k) = \hat\sigma_k^2 (X_k^\top X_k)^{-1}` with
:math:`\hat\sigma_k^2 = \lVert T_k - X_k\hat\theta_k\rVert^2 / (n_k - p_k)`. Before the last
stage they treat the pseudo-outcome as data, which ignores the estimation of the later stages and
the non-smooth max (Chakraborty, Murphy and Strecher 2010): use the bootstrap there.

**Value.** The plug-in value of the estimated optimal regime is the mean over all n units of
:math:`V_1` (the max of :math:`\hat Q_1`, or :math:`T_1` for a unit that skips stage 1).

**One backward induction.** The point fit and every bootstrap block run the package's own
:class:`~bayesdtr.inference.backward.Induction` (the same pseudo-outcomes, feasible sets,
``applies=`` subsets and rewards as the Bayesian fit) with ``propagation="mean"`` and the
least-squares stage engine :class:`~bayesdtr.inference.engines.ols.OLSEngine`, whose "draws"
are the bootstrap replicates.

**Bootstrap.** ``bootstrap=B`` resamples units with replacement B times and redoes the whole
backward induction on each resample. A resample is the same as integer frequency weights
:math:`w^{(b)} \sim \mathrm{Multinomial}(n, 1/n, \dots, 1/n)`, so every replicate is a weighted
least squares fit, :math:`\hat\theta_k^{(b)} = (X_k^\top W^{(b)} X_k)^{-1} X_k^\top W^{(b)}
T_k^{(b)}`, and the replicate value is :math:`\sum_i w_i^{(b)} V_{1,i}^{(b)} / n`. All B
replicates are computed together with batched matrix products, in blocks of replicates that
keep the memory bounded. The percentile bootstrap is known to under-cover the stage-1
contrasts near the decision boundary (non-regularity; Chakraborty, Laber and Zhao 2013).

References
----------
Chakraborty, B., Murphy, S. A. and Strecher, V. (2010). Inference for non-regular parameters in
optimal dynamic treatment regimes. *Statistical Methods in Medical Research* 19, 317-343.

Chakraborty, B., Laber, E. B. and Zhao, Y. (2013). Inference for optimal dynamic treatment
regimes using an adaptive m-out-of-n bootstrap scheme. *Biometrics* 69, 714-723.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from bayesdtr.data.design import DTRDesign, StageDesign
from bayesdtr.exceptions import FitError
from bayesdtr.inference.backward import FitSettings, Induction
from bayesdtr.inference.engines.ols import OLSEngine
from bayesdtr.regimes import Regime

__all__ = ["QLearningResult", "QLearningStage", "m_out_of_n", "nonregularity", "qlearning"]

#: Upper bound on replicates x units held in one bootstrap block (float64 elements).
_BLOCK_ELEMENTS = 4_000_000

#: Share of bootstrap replicates with a singular design above which no interval is reported.
MAX_SINGULAR_SHARE = 0.01


@dataclass
class QLearningStage:
    """OLS fit of one stage.

    Attributes
    ----------
    treatment : str
        Treatment column of the stage.
    arms : list
        Arm labels, reference first.
    units : ndarray of int
        Positions (0..n-1) of the units that reach the stage.
    coef : pandas.Series
        Estimates, indexed ``beta[term]`` then ``psi[arm, term]``.
    se : pandas.Series
        Classical OLS standard errors, same index.
    sigma : float
        Residual standard deviation (``n_units - n_coef`` degrees of freedom).
    df_resid : int
        Residual degrees of freedom.
    target : ndarray
        The regression target T_k of the stage's units (final outcome plus rewards at the last
        stage, the pseudo-outcome before).
    q : ndarray
        Fitted Q_k(h, a) of the stage's units for every arm, shape (n_units, n_arms); infeasible
        arms are included (use ``feasible`` to mask them).
    feasible : ndarray of bool
        (n_units, n_arms) feasible sets.
    boot_coef : pandas.DataFrame or None
        Bootstrap replicates of the coefficients (replicate x coefficient).
    """

    treatment: str
    arms: list[Any]
    units: np.ndarray
    coef: pd.Series
    se: pd.Series
    sigma: float
    df_resid: int
    target: np.ndarray
    q: np.ndarray
    feasible: np.ndarray
    boot_coef: pd.DataFrame | None = None
    contrast_design: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def optimal_codes(self) -> np.ndarray:
        """Arm codes of the estimated optimal rule for the stage's units."""
        return np.argmax(np.where(self.feasible, self.q, -np.inf), axis=1)


@dataclass
class QLearningResult:
    """Result of :func:`qlearning`.

    Attributes
    ----------
    stages : list of QLearningStage
        One OLS fit per stage, in time order.
    value : float
        Plug-in value of the estimated optimal regime.
    pseudo_outcomes : list of ndarray
        Value-to-go :math:`V_k` of all n units, one vector per stage (``pseudo_outcomes[k]``
        is what stage k-1 regresses on, minus its reward).
    boot_value : ndarray or None
        Bootstrap replicates of the value, shape (B,).
    n_singular : int
        Bootstrap replicates in which some stage's resampled design was singular (solved by
        minimum-norm least squares; a warning is issued when this is not 0).
    seconds : float
        Wall time of the whole computation (point fit plus bootstrap).
    """

    stages: list[QLearningStage]
    value: float
    pseudo_outcomes: list[np.ndarray]
    index: pd.Index
    boot_value: np.ndarray | None = None
    bootstrap: int = 0
    seed: int | None = None
    resample_size: int = 0
    nonregularity: float | None = None
    n_singular: int = 0
    seconds: float = 0.0
    _names: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._names = {s.treatment: i for i, s in enumerate(self.stages)}

    def stage(self, stage: int | str) -> QLearningStage:
        """Look up a stage by 1-based number or treatment name."""
        if isinstance(stage, str) and stage in self._names:
            return self.stages[self._names[stage]]
        if (
            isinstance(stage, Integral)
            and not isinstance(stage, bool)
            and 1 <= int(stage) <= len(self.stages)
        ):
            return self.stages[int(stage) - 1]
        raise FitError(
            f"stage={stage!r} is not a stage of this fit; use 1..{len(self.stages)} or one of "
            f"{list(self._names)}."
        )

    def coef(self, stage: int | str) -> pd.Series:
        """OLS estimates of a stage, indexed ``beta[term]`` and ``psi[arm, term]``."""
        return self.stage(stage).coef

    def se(self, stage: int | str) -> pd.Series:
        """Classical OLS standard errors of a stage."""
        return self.stage(stage).se

    def boot_se(self, stage: int | str) -> pd.Series:
        """Bootstrap standard errors (SD over replicates) of a stage's coefficients."""
        st = self.stage(stage)
        if st.boot_coef is None:
            raise FitError("boot_se() needs a bootstrap; call qlearning(model, bootstrap=1000).")
        return st.boot_coef.std(axis=0, ddof=1).rename("boot_se")

    def q_values(self, stage: int | str) -> pd.DataFrame:
        """Fitted Q_k(h, a) of the stage's units: DataFrame obs x arm."""
        st = self.stage(stage)
        out = pd.DataFrame(st.q, index=self.index[st.units], columns=pd.Index(st.arms, name="arm"))
        out.index.name = "obs"
        return out

    def optimal_treatment(self, stage: int | str) -> pd.Series:
        """Estimated optimal arm (argmax of fitted Q over feasible arms) of the stage's units."""
        st = self.stage(stage)
        labels = [st.arms[c] for c in st.optimal_codes]
        return pd.Series(
            labels, index=pd.Index(self.index[st.units], name="obs"), name=f"optimal_{st.treatment}"
        )

    def summary(self, *, level: float = 0.95) -> pd.DataFrame:
        """Table of estimates, OLS SEs and, with a bootstrap, bootstrap SEs and percentile CIs.

        Parameters
        ----------
        level : float, default 0.95
            Coverage of the percentile intervals.

        Returns
        -------
        pandas.DataFrame
            One row per coefficient (index ``"A1::psi[1, X1]"``) plus a ``"value"`` row.
        """
        if not 0 < level < 1:
            raise FitError(f"level= must be in (0, 1); got {level!r}.")
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        rows = []
        for st in self.stages:
            tab = pd.DataFrame({"estimate": st.coef, "se": st.se})
            if st.boot_coef is not None:
                tab["boot_se"] = st.boot_coef.std(axis=0, ddof=1) * self._shrink
                low, high = self._interval(st.coef.to_numpy(), st.boot_coef.to_numpy(), lo, hi)
                tab[f"boot_{lo:.3g}"], tab[f"boot_{hi:.3g}"] = low, high
            tab.index = [f"{st.treatment}::{i}" for i in tab.index]
            rows.append(tab)
        val = {"estimate": self.value, "se": np.nan}
        if self.boot_value is not None:
            low, high = self._interval(np.array([self.value]), self.boot_value[:, None], lo, hi)
            val |= {
                "boot_se": float(np.std(self.boot_value, ddof=1)) * self._shrink,
                f"boot_{lo:.3g}": float(low[0]),
                f"boot_{hi:.3g}": float(high[0]),
            }
        rows.append(pd.DataFrame(val, index=["value"]))
        return pd.concat(rows)

    @property
    def _shrink(self) -> float:
        """sqrt(m / n): the scale of an m-out-of-n replicate's deviation at sample size n."""
        n = len(self.index)
        return float(np.sqrt((self.resample_size or n) / n))

    def _interval(self, est: np.ndarray, boot: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        r"""Percentile interval (m = n), or the m-out-of-n interval of Chakraborty et al. (2013):
        :math:`[\hat\theta - c_{hi}/\sqrt n, \hat\theta - c_{lo}/\sqrt n]` with :math:`c` the
        quantiles of :math:`\sqrt m(\theta^*_m - \hat\theta)`."""
        if not self.resample_size or self.resample_size == len(self.index):
            return np.quantile(boot, lo, axis=0), np.quantile(boot, hi, axis=0)
        dev = (boot - est[None, :]) * self._shrink
        return est - np.quantile(dev, hi, axis=0), est - np.quantile(dev, lo, axis=0)

    def __repr__(self) -> str:
        boot = f", bootstrap B={self.bootstrap}" if self.bootstrap else ""
        return f"QLearningResult({len(self.stages)} stages, value {self.value:.4g}{boot})"


# --------------------------------------------------------------------------- helpers


def coef_names(sd: StageDesign) -> list[str]:
    """Coefficient labels of a stage: ``beta[term]`` then ``psi[arm, term]`` per non-reference arm."""
    names = [f"beta[{t}]" for t in sd.main_terms]
    names += [f"psi[{arm}, {t}]" for arm in sd.arms[1:] for t in sd.contrast_terms]
    return names


def _check_model(model: Any) -> DTRDesign:
    design = getattr(model, "design", None)
    if not isinstance(design, DTRDesign):
        raise FitError(f"model must be a bd.DTRModel; got {type(model).__name__}.")
    why = OLSEngine().refusal(design)
    if why is not None:
        raise FitError(why)
    return design


def _induction(design: DTRDesign, engine: OLSEngine, n_draws: int) -> Induction:
    """Q-learning as the package's backward induction: OLS stages, pseudo-outcomes "mean"."""
    settings = FitSettings(
        draws=n_draws, chains=1, propagation="mean", max_chunk_elements=_BLOCK_ELEMENTS
    )
    K = len(design.stages)
    return Induction(
        design,
        settings,
        {},
        [None] * K,
        Regime.optimal(),
        np.random.SeedSequence(0),  # unused: OLS draws no random numbers
        engines=[engine] * K,
    )


def _point_fit(design: DTRDesign) -> tuple[list[QLearningStage], list[np.ndarray]]:
    """OLS fits of every stage and the value-to-go V_k of all units, one vector per stage."""
    ind = _induction(design, OLSEngine(), 1)
    fits = ind.run()
    one = np.zeros(1, dtype=np.int64)
    stages, pseudo = [], []
    for k, (sd, fit) in enumerate(zip(design.stages, fits, strict=True)):
        names = coef_names(sd)
        stages.append(
            QLearningStage(
                treatment=sd.treatment,
                arms=list(sd.arms),
                units=sd.units,
                coef=pd.Series(fit.theta[0], index=names, name="estimate"),
                se=pd.Series(fit.extras["se"][0], index=names, name="se"),
                sigma=float(fit.sigma[0]),  # type: ignore[index]
                df_resid=int(fit.extras["df_resid"][0]),
                target=ind.target_for_fit(k, None if k == ind.K - 1 else one)[0],
                q=ind.q_observed(k, one)[:, 0, :].T,
                feasible=sd.feasible,
                contrast_design=sd.X_contrast,
            )
        )
        pseudo.append(ind.value_to_go(k, one, "mean")[0])
    return stages, pseudo


def _bootstrap(
    design: DTRDesign, B: int, m: int, seed: int | None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Coefficient replicates per stage (B, p_k), replicate values (B,), singular flags (B, K).

    Replicates come in blocks of at most ``_BLOCK_ELEMENTS`` weights; each block is one
    induction whose draws are the block's replicates.
    """
    n = design.n
    rng = np.random.default_rng(seed)
    block = max(1, min(B, _BLOCK_ELEMENTS // max(n, 1)))
    thetas: list[list[np.ndarray]] = [[] for _ in design.stages]
    values, singular = [], []
    for start in range(0, B, block):
        b = min(block, B - start)
        idx = rng.integers(0, n, size=(b, m))
        w = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        w = w.astype(float) * (n / m)
        ind = _induction(design, OLSEngine(w), b)
        fits = ind.run()
        for k, f in enumerate(fits):
            thetas[k].append(f.theta)
        values.append(np.sum(w * ind.stage1_values(np.arange(b)), axis=1) / n)
        singular.append(np.column_stack([f.stats["singular"] for f in fits]))
    return [np.concatenate(t) for t in thetas], np.concatenate(values), np.concatenate(singular)


# --------------------------------------------------------------------------- public


def qlearning(
    model: Any, *, bootstrap: int = 0, seed: int | None = None, resample_size: int | None = None
) -> QLearningResult:
    r"""Frequentist Q-learning (OLS backward induction) of a :class:`~bayesdtr.DTRModel`.

    Fits each stage's Q-function by ordinary least squares, from the last stage back to the
    first, on pseudo-outcomes :math:`R_k + \max_{a \in \text{feasible}} \hat Q_{k+1}(H_{k+1}, a)`
    (see :mod:`bayesdtr.baselines.qlearning` for the formulas). With ``bootstrap=B``, units
    are resampled with replacement B times and the whole backward induction is redone on each
    resample, all replicates vectorized with numpy.

    Parameters
    ----------
    model : DTRModel
        The specification: stage formulas, feasible sets, ``applies=`` subsets and rewards are
        used; priors and propensity models are ignored.
    bootstrap : int, default 0
        Number B of nonparametric bootstrap replicates (0 for none).
    seed : int or None
        Seed of the bootstrap resampling (``numpy.random.default_rng``); the same seed gives
        identical replicates.
    resample_size : int or None
        Units m drawn (with replacement) per replicate; None for n (the ordinary bootstrap).
        See :func:`m_out_of_n` for the adaptive choice of Chakraborty, Laber and Zhao (2013).

    Returns
    -------
    QLearningResult
        Per-stage OLS estimates (``result.coef(stage)``), standard errors (``result.se``),
        pseudo-outcomes, the plug-in value, and the bootstrap replicates.

    Raises
    ------
    FitError
        If the model has a non-Gaussian outcome or ``group=`` (not supported by this
        baseline), or ``bootstrap``/``seed`` are not non-negative integers.

    See Also
    --------
    bayesdtr.DTRModel.fit : the Bayesian backward induction of the same specification.

    Notes
    -----
    A bootstrap replicate that leaves out every unit of an arm (or of a cell of a fixed-effect
    term such as ``C(site):A1``) at some stage has a singular design; it is solved by
    minimum-norm least squares, counted in ``n_singular`` and warned about. If more than 1% of
    the replicates are singular, their coefficients are not identified often enough for
    percentile intervals to mean anything, and a :class:`~bayesdtr.FitError` is raised instead
    (this happened with the m-out-of-n bootstrap on ``multisite_smart`` with fixed site
    effects: 41 columns, resamples of about 200 units, intervals 1e8 wide).

    Examples
    --------
    >>> import bayesdtr as bd
    >>> from bayesdtr.baselines import qlearning
    >>> df = bd.scenario("two_stage_cont").sample(500, seed=1)
    >>> model = bd.DTRModel(df, [
    ...     bd.Stage("A1", main="np.exp(X1)", contrast="1 + X1"),
    ...     bd.Stage("A2", main="np.exp(X1) + np.exp(X2) + A1 + A1:X1", contrast="1 + X2")],
    ...     outcome="Y")
    >>> res = qlearning(model, bootstrap=200, seed=1)
    >>> round(float(res.coef("A2")["psi[1, Intercept]"]), 1)  # true stage-2 blip (1, 1)
    1.0
    >>> list(res.coef(1).index)
    ['beta[Intercept]', 'beta[np.exp(X1)]', 'psi[1, Intercept]', 'psi[1, X1]']
    >>> res.boot_value.shape
    (200,)
    >>> round(res.value, 1)  # true optimal value 5.46
    5.2
    """
    t0 = time.perf_counter()
    design = _check_model(model)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, Integral) or int(bootstrap) < 0:
        raise FitError(
            f"bootstrap= must be a non-negative integer (replicates, 0 for none); got {bootstrap!r}."
        )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0
    ):
        raise FitError(f"seed= must be a non-negative integer or None; got {seed!r}.")
    B = int(bootstrap)
    n = design.n
    if resample_size is None:
        m = n
    elif isinstance(resample_size, bool) or not isinstance(resample_size, Integral) or not 2 <= int(resample_size) <= n:
        raise FitError(f"resample_size= must be an integer in [2, n={n}] or None; got {resample_size!r}.")
    else:
        m = int(resample_size)
    fits, pseudo = _point_fit(design)
    value = float(np.mean(pseudo[0]))
    boot_value = None
    n_singular = 0
    if B:
        boot_theta, boot_value, singular = _bootstrap(design, B, m, None if seed is None else int(seed))
        for f, th in zip(fits, boot_theta, strict=True):
            f.boot_coef = pd.DataFrame(th, columns=f.coef.index)
            f.boot_coef.index.name = "replicate"
        n_singular = int(singular.any(axis=1).sum())
        if n_singular > MAX_SINGULAR_SHARE * B:
            worst = int(np.argmax(singular.sum(axis=0)))
            sd = design.stages[worst]
            raise FitError(
                f"{n_singular} of {B} bootstrap replicates (resample size m={m}) had a singular "
                f"design at stage {sd.treatment!r} ({sd.X_main.shape[1] + sd.X_contrast.shape[1] * (sd.n_arms - 1)} "
                "columns): a resample left out every unit of some arm or of some cell of a "
                "fixed-effect term, so its coefficients are not identified and percentile "
                f"intervals would be meaningless (more than {MAX_SINGULAR_SHARE:.0%} of replicates). "
                "Use fewer columns (e.g. no per-site contrasts), more units, or a larger resample_size."
            )
        if n_singular:
            warnings.warn(
                f"{n_singular} of {B} bootstrap replicates had a singular design (a resample left "
                "out every unit of some arm or fixed-effect cell); their coefficients are "
                "minimum-norm solutions. The arms are very small for a bootstrap.",
                UserWarning,
                stacklevel=2,
            )
    return QLearningResult(
        stages=fits,
        value=value,
        pseudo_outcomes=pseudo,
        index=design.data.index,
        boot_value=boot_value,
        bootstrap=B,
        seed=None if seed is None else int(seed),
        resample_size=m,
        n_singular=n_singular,
        seconds=time.perf_counter() - t0,
    )


def nonregularity(result: QLearningResult, stage: int | str = 2, *, level: float = 0.95) -> float:
    r"""Estimated share of units near the decision boundary at ``stage``, :math:`\hat p`.

    A unit counts when the interval of its estimated contrast, built from the stage's OLS
    coefficient intervals by interval arithmetic, contains 0 (DTRreg's non-regularity
    estimate; with more than two arms, any non-reference contrast).
    """
    st = result.stage(stage)
    z = float(ndtri(1 - (1 - level) / 2))
    coef, se = st.coef.to_numpy(), st.se.to_numpy()
    # contrasts are q[:, j] - q[:, 0] = x' psi_j: rebuild the contrast design from the fitted Q
    names = list(st.coef.index)
    near = np.zeros(st.n_units, dtype=bool)
    for arm in st.arms[1:]:
        cols = [i for i, nm in enumerate(names) if nm.startswith(f"psi[{arm}, ")]
        H = st.contrast_design  # (n_k, terms)
        lo_c, hi_c = coef[cols] - z * se[cols], coef[cols] + z * se[cols]
        pos, neg = np.maximum(H, 0.0), np.minimum(H, 0.0)
        blip_lo = pos @ lo_c + neg @ hi_c
        blip_hi = pos @ hi_c + neg @ lo_c
        near |= (blip_lo < 0) & (blip_hi > 0)
    return float(near.mean())


def m_out_of_n(
    model: Any, *, bootstrap: int = 1000, alpha: float = 0.1, seed: int | None = None
) -> QLearningResult:
    r"""Q-learning with the adaptive m-out-of-n bootstrap (Chakraborty, Laber and Zhao 2013).

    Resamples :math:`m = \lfloor n^{(1 + \alpha(1 - \hat p))/(1 + \alpha)} \rfloor` units per
    replicate, where :math:`\hat p` is the estimated share of units whose stage-2 contrast
    may be 0 (:func:`nonregularity`), so m = n in a regular problem and shrinks as the
    non-regularity grows. ``result.summary()`` then reports the m-out-of-n intervals
    :math:`[\hat\theta - c_{0.975}/\sqrt n,\ \hat\theta - c_{0.025}/\sqrt n]`, with :math:`c`
    the quantiles of :math:`\sqrt m(\theta^*_m - \hat\theta)`.

    Parameters
    ----------
    model : DTRModel
        As for :func:`qlearning` (two or more stages).
    bootstrap : int, default 1000
        Replicates.
    alpha : float, default 0.1
        Tuning constant. DTRreg's ``chooseM`` picks it by a double bootstrap (B1 x B2 refits,
        the smallest value on a 0.025 grid whose estimated coverage reaches 95%); this
        baseline fixes it (0.1 by default), which the double bootstrap's cost would otherwise
        dominate in a simulation study.
    seed : int or None
        Seed of the resampling.

    Returns
    -------
    QLearningResult
        With ``resample_size`` m and ``nonregularity`` :math:`\hat p` set.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> from bayesdtr.baselines import m_out_of_n
    >>> scn = bd.scenario("chakraborty_ex1")
    >>> res = m_out_of_n(bd.DTRModel(scn.sample(300, seed=1), scn.stages, outcome="Y"), bootstrap=200, seed=1)
    >>> res.resample_size < 300
    True
    """
    if not (isinstance(alpha, float | int) and not isinstance(alpha, bool) and alpha > 0):
        raise FitError(f"alpha= must be a positive number (e.g. 0.1); got {alpha!r}.")
    point = qlearning(model)
    if len(point.stages) < 2:
        raise FitError("m_out_of_n needs at least two stages (the non-regularity is at stage 2).")
    p = nonregularity(point, 2)
    n = len(point.index)
    m = max(2, min(n, int(np.floor(n ** ((1 + alpha * (1 - p)) / (1 + alpha))))))
    res = qlearning(model, bootstrap=bootstrap, seed=seed, resample_size=m)
    res.nonregularity = p
    return res
