"""DTRPosterior: the posterior of the optimal rule, Q-functions and regime values."""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Hashable
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr import comparison
from bayesdtr.bart_io import with_forests
from bayesdtr.cluster import check_client
from bayesdtr.constants import HDI_PROB
from bayesdtr.crossfit import DEFAULT_FOLDS, CrossFit, online_start
from bayesdtr.data.design import DTRDesign, StageDesign, StageRows
from bayesdtr.data.validate import (
    check_probability,
)
from bayesdtr.diagnostics import weight_ess_message
from bayesdtr.exceptions import (
    FileFormatError,
    FitError,
    PositivityWarning,
)
from bayesdtr.inference.backward import FitSettings, Induction, refit_engines, reusable_stages
from bayesdtr.inference.draws import (
    PropensityDraws,
    StageDraws,
    best_arm,
    q_arms,
    q_linear,
    q_response,
)
from bayesdtr.inference.survival import induction_class
from bayesdtr.io import (
    PosteriorParts,
    build_tree,
    check_path,
    stage_posterior_dataset,
    write_netcdf,
)
from bayesdtr.models.priors import StagePriors
from bayesdtr.regimes import Regime, as_regime
from bayesdtr.survival_values import check_survival_value, survival_method, survival_value
from bayesdtr.values import BootstrapWeights, q_value, weighted_value

__all__ = ["DTRPosterior"]


class DTRPosterior:
    """Posterior of a fitted :class:`~bayesdtr.DTRModel`.

    Draws of every stage, aligned through the backward induction, plus the propensity draws.
    Queries return xarray objects with dims ``chain``, ``draw``, ``obs``, ``arm`` or pandas
    tables. ``tree`` holds everything as an :class:`xarray.DataTree`.

    Notes
    -----
    The posterior mean of stage-1 coefficients differs slightly from OLS Q-learning even with
    vague priors: Q-learning regresses on the max of the *estimated* stage-2 Q-function, whereas
    the cut posterior averages over the max of each *draw*, and the posterior mean of a max is not
    the max of posterior means (it is larger where arms are close).
    """

    def __init__(
        self,
        *,
        design: DTRDesign,
        priors: dict[str, StagePriors],
        settings: FitSettings,
        induction: Induction,
        propensities: list[PropensityDraws | None],
        random_seed: int,
        seed: np.random.SeedSequence,
        induction_seed: np.random.SeedSequence,
        fit_seconds: float = 0.0,
        model: Any = None,
    ) -> None:
        self.model = model  # the DTRModel that was fitted; None for a posterior read from a file
        self.design = design
        self.priors = priors
        self.settings = settings
        self.induction = induction
        self.fits: list[StageDraws] = induction.fits  # type: ignore[assignment]
        self.propensities = propensities
        self.random_seed = random_seed
        self._seed = seed
        self._induction_seed = induction_seed
        self.source: str | None = None  # the file a loaded posterior came from
        self.fit_seconds = fit_seconds
        # caches keyed by Regime.key (a regime's definition; rule objects by identity, kept
        # alive by the key itself, so no key is ever reused by another regime)
        self._inductions: dict[Hashable, Induction] = {Regime.optimal().key: induction}
        self._values: dict[tuple[Hashable, str, int, str], xr.DataArray] = {}
        self._crossfits: dict[tuple[int, str], CrossFit] = {}
        self._tree: xr.DataTree | None = None
        #: The Bayesian-bootstrap weights every value of this posterior uses (same draw, same weights).
        self.bootstrap = BootstrapWeights(seed, design.n, settings.total)

    # ------------------------------------------------------------------ basics
    @property
    def chains(self) -> int:
        return self.settings.chains

    @property
    def draws(self) -> int:
        return self.settings.draws

    @property
    def n_samples(self) -> int:
        return self.settings.total

    def _coords(self) -> dict[str, np.ndarray]:
        return {"chain": np.arange(self.chains), "draw": np.arange(self.draws)}

    def _reshape(self, flat: np.ndarray) -> np.ndarray:
        return flat.reshape((self.chains, self.draws) + flat.shape[1:])

    def _stage(self, stage: int | str) -> tuple[int, StageDesign]:
        sd = self.design.stage(stage)
        return sd.position - 1, sd

    def rows(self, stage: int | str, data: pd.DataFrame | None = None) -> StageRows:
        """Design rows of ``stage`` for ``data`` (None: the stage's units); see :meth:`StageDesign.evaluate`."""
        sd = self.design.stage(stage)
        return sd.evaluate(data, self.design, source=self.source)

    def _chunks(self, n_rows: int, n_arms: int):
        step = max(
            1, min(self.n_samples, self.settings.max_chunk_elements // max(1, n_rows * n_arms))
        )
        for start in range(0, self.n_samples, step):
            yield np.arange(start, min(self.n_samples, start + step))

    # ------------------------------------------------------------------ Q and rules
    def q_values(self, stage: int | str, data: pd.DataFrame | None = None) -> xr.DataArray:
        """Posterior of Q_k(h, a) for every arm: DataArray (chain, draw, obs, arm).

        On the outcome scale (probabilities for a Bernoulli final stage). ``data=None`` uses the
        units that reach the stage; new histories must have the stage's formula columns.
        """
        k, sd = self._stage(stage)
        rows, Xm, Xc, g, _ = self.rows(stage, data)
        q = q_linear(
            sd, self.fits[k], np.arange(self.n_samples), Xm, Xc, g, self.child_seed(f"newgroup/{k}")
        )
        q = q_response(q, self.induction.family(k))
        return xr.DataArray(
            self._reshape(q),
            dims=("chain", "draw", "obs", "arm"),
            coords={**self._coords(), "obs": self.design.obs_labels(rows), "arm": sd.arm_coord},
            name=f"Q_{sd.treatment}",
        )

    def _optimal_codes(self, k: int, sd: StageDesign, data: pd.DataFrame | None):
        rows, Xm, Xc, g, feas = self.rows(k + 1, data)
        new_groups = self.child_seed(f"newgroup/{k}")
        out = np.empty((self.n_samples, len(rows)), dtype=np.int64)
        for idx in self._chunks(len(rows), sd.n_arms):
            out[idx] = best_arm(q_arms(sd, self.fits[k], idx, Xm, Xc, g, new_groups), feas)[0]
        return rows, out

    def optimal_treatment(self, stage: int | str, data: pd.DataFrame | None = None) -> xr.DataArray:
        """Per-draw optimal arm labels: DataArray (chain, draw, obs), argmax of Q over feasible arms."""
        k, sd = self._stage(stage)
        rows, codes = self._optimal_codes(k, sd, data)
        labels = sd.arm_coord[codes]
        return xr.DataArray(
            self._reshape(labels),
            dims=("chain", "draw", "obs"),
            coords={**self._coords(), "obs": self.design.obs_labels(rows)},
            name=f"optimal_{sd.treatment}",
        )

    def prob_optimal(
        self, stage: int | str, data: pd.DataFrame | None = None, *, client: Any = None
    ) -> pd.DataFrame:
        """P(arm a is optimal | data) for each unit: DataFrame obs x arm (rows sum to 1).

        For the observed units this reuses the decisions tallied during the backward induction.
        ``client`` (None, ``"local"``, a ``distributed.Client`` or a scheduler address; see
        :mod:`bayesdtr.cluster`) counts the optimal arms of the stage's units block by block of
        draws on a dask cluster, with the same (integer) counts as in this process; only for the
        fitted units (``data=None``).
        """
        k, sd = self._stage(stage)
        check_client(client)
        if client is not None and (data is not None or self.design.event is not None):
            raise FitError(
                "prob_optimal(client=...) counts the fitted units' optimal arms on a cluster; "
                "with data= (new histories) or a survival outcome it runs in this process: "
                "leave client=None."
            )
        if data is None:
            rows = self.design.data.iloc[sd.units]
            if client is not None:
                self.induction.tally_all(k, client)
            if k == 0 and self.design.event is None and self.induction.decision_counts(k) is None:
                # its pass over the stage-1 draws tallies the decisions
                self.value("optimal", crossfit=0)
            if self.induction.decision_counts(k) is None:
                for idx in self._chunks(sd.n_units, sd.n_arms):
                    self.induction.decide(k, self.induction.q_observed(k, idx), idx)
            counts = self.induction.decision_counts(k) / self.n_samples  # type: ignore[operator]
        else:
            rows, codes = self._optimal_codes(k, sd, data)
            counts = np.stack([(codes == j).mean(axis=0) for j in range(sd.n_arms)], axis=1)
        out = pd.DataFrame(
            counts,
            index=pd.Index(self.design.obs_labels(rows)),
            columns=pd.Index(sd.arms, name="arm"),
        )
        out.index.name = "obs"
        return out

    def coef(self, stage: int | str) -> xr.Dataset:
        """Posterior of a stage's coefficients: ``beta`` (main_term) and ``psi`` (arm, contrast_term)."""
        k, sd = self._stage(stage)
        if self.fits[k].q_model is not None:
            raise FitError(
                f"Stage {sd.treatment!r} has a nonparametric (BART) Q-function: it has no coefficients. "
                "Use post.q_values(), post.prob_optimal() or post.rule().table() instead."
            )
        return self.stage_posterior(stage)[["beta", "psi"]]

    # ------------------------------------------------------------------ values
    def child_seed(self, key: str) -> np.random.SeedSequence:
        """A child of the posterior's seed named by ``key`` (the same key gives the same seed)."""
        h = zlib.crc32(key.encode())
        return np.random.SeedSequence(
            entropy=self._seed.entropy, spawn_key=tuple(self._seed.spawn_key) + (h,)
        )

    def induction_for(self, regime: Regime) -> Induction:
        """Backward induction that follows ``regime``.

        Stages whose targets the regime leaves unchanged (the last stage, and every stage after
        which it follows the optimal rule) share the posterior's draws; the others are refitted
        by :func:`~bayesdtr.inference.engines.refit_engines`: by the closed-form or Gibbs engine
        where the stage is conditionally conjugate, even if the fit used NUTS (the same model),
        else by the fit's engine. ``origins`` on the result records which.
        """
        if regime.is_optimal:
            return self.induction
        key = regime.key
        if key in self._inductions:
            return self._inductions[key]
        ind = induction_class(self.design)(
            self.design,
            self.settings,
            self.priors,
            self.propensities,
            regime,
            self.child_seed(f"regime/{regime.name}"),
            self.induction.samplers,
            engines=refit_engines(self.design, self.settings, self.priors),
        )
        reuse = reusable_stages(self.design, regime)
        ind.run(reuse=[f if r else None for f, r in zip(self.fits, reuse, strict=True)])
        self._inductions[key] = ind
        return ind

    def value(
        self,
        regime: Regime | str = "optimal",
        *,
        method: Literal["q", "ipw", "aipw"] | None = None,
        crossfit: int | Literal["auto"] | None = "auto",
        split: Literal["online", "cross"] = "online",
        horizon: float | None = None,
        estimand: Literal["rmst", "survival"] = "rmst",
        client: Any = None,
    ) -> xr.DataArray:
        r"""Posterior of the value V(d) = E[sum of rewards + Y] if everyone followed ``regime``.

        Which estimand the interval covers depends on where the rule comes from:

        - **a rule fixed in advance** (static, dynamic, threshold): its value :math:`V(d)`.
          ``method="q"`` (the default for such rules) averages
          :math:`Q_1^{d,(s)}(H_1, d_1(H_1))` over units with Bayesian-bootstrap
          Dirichlet(1, ..., 1) weights drawn per posterior draw, the earlier stages refitted on
          pseudo-outcomes that follow the regime; ``"ipw"`` and ``"aipw"`` use the propensity
          draws (see :mod:`bayesdtr.values`).
        - **a rule learned from these data** (``"optimal"``, a stage that follows the optimal
          rule, or ``post.rule()``): with ``crossfit="auto"`` (the default) the units are split
          in 10 random chunks; the rule is learned on the first chunks and valued on the next
          one, in turn, from 40% of the units on (``split="online"``, the online construction
          of Luedtke and van der Laan 2016; :mod:`bayesdtr.crossfit`). The estimand is the value
          of the rule the data would have you adopt, :math:`V(\hat d)` (learned on 40-90% of
          the units); for ``"optimal"`` it is also the optimal value :math:`V(d^*)` wherever the
          optimal rule is not unique or well separated (near, but not at, a decision boundary
          it is below :math:`V(d^*)` by the learned rules' regret). The default method for
          learned rules is ``"aipw"`` when every stage has a propensity model, else ``"q"``.

        Measured (95% equal-tailed intervals, ``benchmarks/calibration``, 200 replicates per
        design and n, each cell with its own seeds): on the nine published
        Chakraborty-Laber-Zhao designs the default covered :math:`V(d^*)` in 0.910-0.960 of
        replicates at n = 300 and 0.925-0.970 at n = 1,000, and the true value of
        ``post.rule()`` in 0.915-0.970 and 0.920-0.965; the plug-in posterior of
        ``"optimal"`` (``crossfit=0``) in as little as 0.53 and 0.51 (example 1, no effects),
        the OLS percentile bootstrap in 0.275 and 0.215, the m-out-of-n bootstrap in 0.85-0.95.
        Below 0.92: example B at n = 300, 0.910 and 0.915 (MC SE 0.020; 0.930 and 0.925 on an
        earlier, independent set of 200 replicates). In the null example 1 the mean posterior
        SD equals the SD of the estimates over replicates (ratio 0.997 at n = 300, 1.002 at
        n = 1,000) and, at n = 1,000, the exact sampling SD :math:`\sqrt{4 / 600} = 0.082` of
        the online inverse-weighted estimator that it tracks (correlation 0.99 over
        replicates). An earlier table gave replicate r the same data seed in all nine designs
        (``cells_shared_seeds/``); its n = 1,000 cells over-covered in examples 3-5
        (0.985-1.00), which independent seeds do not reproduce (0.930-0.970). 10-fold cross-fitting
        (``split="cross"``) was unbiased too but its posterior SD was 12-25% too small
        (coverage 0.84-0.95), because with a non-unique optimal rule each unit's value depends
        on rules learned from the others. Beyond the published designs (200
        replicates): ``two_stage_cont`` (estimated propensities) 0.930 for :math:`V(d^*)` and
        0.935 for :math:`V(\hat d)` at n = 300, 0.950 and 0.960 at n = 1,000; ``k_stage``
        (K = 3, randomized) 0.915 and 0.905 at n = 300 (0.910 and 0.915 on an independent set
        of 200 replicates), 0.01 below the band with no bias and an interval SD equal to the
        replicate SD (ratio 0.96-1.02): the percentile interval of a skewed posterior (a
        three-stage AIPW with 1/8 propensity weights), whose width is 1.9 times the plug-in
        posterior's (which covered 0.950 there: no arm is near a tie); 0.965 and 0.965 at
        n = 1,000; the hierarchical ``multisite_smart`` 0.945 and 0.950 at n = 300 (199
        replicates) and 0.935 and 0.940 at n = 1,000 (200 replicates). The shape of the
        interval, not its width, costs the cells below the band: an interval of the same width
        centred at the posterior mean covered 0.925 and 0.925 on ``k_stage`` at n = 300,
        and 0.947 on average over all 48 value cells, none outside 0.92-0.98
        (equal-tailed: 0.940, 4 outside; ``calibration_interval_shape.csv``). Sample
        splitting is the price of honesty at ties: where every arm is well separated the
        plug-in is narrower and also calibrated.

        **Refits.** A regime's value refits only the stages whose targets it changes (those
        before a stage where it departs from the optimal rule); the others, and always the
        last stage, reuse the posterior's draws. Refits, and the sample-split chunks' fits, use
        the conjugate (no groups) or Gibbs (groups) engine wherever the stage is a Gaussian
        stage with the default priors, also when the posterior was sampled with
        ``engine="mcmc"``: NUTS's default Gaussian stage model is the same Normal-Inverse-Gamma
        model (same hyperparameters and centred design; ``tests/test_refits.py``), so this
        changes the sampler, not the posterior. NUTS refits Bernoulli and survival stages, stages
        with user priors, and the chunks' propensity models. ``attrs["stage_fits"]`` records
        which engine refitted (or reused) each stage.

        Parameters
        ----------
        regime : Regime or "optimal"
            The regime to value.
        method : {"q", "ipw", "aipw"} or None
            Value estimator (None: see above). With sample splitting, ``"q"`` fits the learned
            rule's Q-functions on the chunk it values; ``"ipw"``/``"aipw"`` use Q-functions and
            propensities fitted on the chunks the rule was learned on.
        crossfit : int, "auto" or None
            Number of chunks (>= 2) for a learned rule; ``"auto"`` uses 10 for learned rules and
            none for fixed ones; 0 or None gives the plug-in posterior on all the data (for
            ``"optimal"``: the posterior of :math:`\frac1n\sum_i \max_a Q_1(H_i, a)`,
            optimistic near decision boundaries). With dropout (``censoring=`` on a stage)
            ``"auto"`` means 0: sample splitting is not available there yet.
        split : {"online", "cross"}
            ``"online"``: chunk f is valued by the rule learned on chunks before it (from 40% of
            the units on); ``"cross"``: every chunk is valued by the rule learned on all the
            others (cross-fitting).
        horizon : float or None
            Censored survival outcomes only (``family="lognormal"``/``"weibull"``), and required
            there: the value is the restricted mean survival time up to ``horizon``,
            :math:`E[\min(T^d, \tau)]` (see :mod:`bayesdtr.survival_values`): ``method``
            ``"aipw"`` (the default when stage 1 has a propensity), ``"augmented"`` (the default
            otherwise) or ``"q"``; ``"ipw"`` and sample splitting are refused, and ``"optimal"``
            is the plug-in posterior.
        estimand : {"rmst", "survival"}
            With ``horizon=``: the RMST, or the probability of surviving past ``horizon``.
        client : None, "local", distributed.Client or scheduler address
            Where the blocks of draws of a value without sample splitting (a fixed regime, or
            ``crossfit=0``) run: None in this process; ``"local"`` an embedded dask
            ``LocalCluster`` of threads; a ``distributed.Client`` or an address such as
            ``"tcp://host:8786"`` an existing cluster (:mod:`bayesdtr.cluster`). The draws are
            identical wherever they run. Sample-split values and survival values run in this
            process (a ``client`` there is refused).

        Returns
        -------
        xarray.DataArray
            Dims (chain, draw); ``attrs["estimand"]`` says what it covers. For ``"ipw"``/``"aipw"``
            without sample splitting, ``attrs["weight_ess"]`` is the posterior median of the Kish
            effective sample size of the weights (out of ``attrs["n_units"]``); below 10% of the
            units a :class:`~bayesdtr.PositivityWarning` is issued.

        Examples
        --------
        >>> import bayesdtr as bd
        >>> scn = bd.scenario("chakraborty_ex3")
        >>> post = bd.DTRModel(scn.sample(300, seed=1), scn.stages, outcome="Y").fit(
        ...     draws=200, chains=2, random_seed=1, progressbar=False)
        >>> v = post.value("optimal")            # learned rule: online sample splitting, AIPW
        >>> v.attrs["estimand"]
        'V(d_hat): value of the rule learned from the data (online, 10 chunks); V(d*) where the optimal rule is not unique or well separated'
        >>> plug_in = post.value("optimal", crossfit=0)
        """
        reg = as_regime(regime)
        check_client(client)
        if client is not None and (horizon is not None or self.design.event is not None):
            raise FitError(
                "client= is not supported for survival values (horizon=) yet: leave client=None."
            )
        if horizon is not None or self.design.event is not None:
            return self._survival_value(reg, horizon, estimand, method, crossfit)
        if self.design.dropout is not None and isinstance(crossfit, str) and crossfit == "auto":
            # no sample splitting with dropout yet: the plug-in, as attrs["estimand"] says
            crossfit = 0
        folds = self._folds(reg, crossfit)
        if folds and self.design.dropout is not None:
            raise FitError(
                f"Sample splitting (crossfit={crossfit!r}) is not supported yet with dropout "
                "(censoring= on a stage). Use crossfit=0 (the default there): for a fixed regime "
                f"that is its value V(d); for {reg.name!r} learned from the data, the plug-in "
                "posterior (optimistic near decision boundaries)."
            )
        if split not in ("online", "cross"):
            raise FitError(f"split={split!r} is not one of ['online', 'cross'].")
        if method is None:
            has_prop = all(p is not None for p in self.propensities)
            method = "aipw" if folds and has_prop else "q"
        if folds and client is not None:
            raise FitError(
                f"client= runs the blocks of a value without sample splitting; {reg.name!r} "
                f"would be valued by sample splitting (crossfit={crossfit!r}), which runs in this "
                "process. Pass crossfit=0 (the plug-in posterior for a learned rule) or client=None."
            )
        if method not in ("q", "ipw", "aipw"):
            raise FitError(
                f"method={method!r} is not one of ['q', 'ipw', 'aipw'] (or None for the default)."
            )
        key = (reg.key, method, folds, split if folds else "")
        if key not in self._values:
            attrs: dict = {"method": method, "crossfit": folds, "split": split if folds else "none"}
            if folds:
                cf = self._crossfit(folds, split)
                vals = cf.value(reg, method, reg.learned or "map")
                attrs["stage_fits"] = cf.refits(
                    reg, method, reg.learned or "map", self._fit_engines()
                )
                how = (
                    f"online, {folds} chunks" if split == "online" else f"{folds}-fold cross-fitted"
                )
                attrs["estimand"] = (
                    f"V(d_hat): value of the rule learned from the data ({how}); V(d*) where the "
                    "optimal rule is not unique or well separated"
                )
            else:
                ind = self.induction_for(reg)
                attrs["stage_fits"] = ind.refits(self._fit_engines())
                if method == "q":
                    vals = q_value(self.bootstrap, ind, client)
                else:
                    ess = np.empty(self.n_samples)
                    vals = weighted_value(self, ind, method, ess=ess, client=client)
                    attrs |= {"weight_ess": float(np.median(ess)), "n_units": self.design.n}
                    msg = weight_ess_message(ess, self.design.n, method, reg.name)
                    if msg:
                        warnings.warn(msg, PositivityWarning, stacklevel=2)
                attrs["estimand"] = (
                    "plug-in posterior on all the data (optimistic for a rule learned from them)"
                    if reg.learned_from_data
                    else f"V(d) of the fixed regime {reg.name!r}"
                )
            self._values[key] = xr.DataArray(
                self._reshape(vals),
                dims=("chain", "draw"),
                coords=self._coords(),
                name=f"value[{reg.name}]",
                attrs=attrs,
            )
        return self._values[key]

    def _fit_engines(self) -> list[str]:
        """The engine that fitted each stage (``"mcmc"``, ``"conjugate"``, ``"gibbs"``, ...)."""
        return [f.engine for f in self.fits]

    def _survival_value(self, reg: Regime, horizon, estimand, method, crossfit) -> xr.DataArray:
        tau = check_survival_value(
            self, reg, horizon=horizon, estimand=estimand, method=method, crossfit=crossfit
        )
        how = survival_method(self, method)
        key = (reg.key, "survival", estimand, tau, how)
        if key not in self._values:
            vals = survival_value(
                self, self.induction_for(reg), horizon=tau, estimand=estimand, method=how
            )  # type: ignore[arg-type]
            what = "restricted mean survival time" if estimand == "rmst" else "survival probability"
            learned = (
                " (plug-in posterior of a rule learned from these data)"
                if reg.learned_from_data
                else ""
            )
            self._values[key] = xr.DataArray(
                self._reshape(vals),
                dims=("chain", "draw"),
                coords=self._coords(),
                name=f"{estimand}[{reg.name}]",
                attrs={
                    "method": how,
                    "crossfit": 0,
                    "horizon": tau,
                    "estimand": f"{what} at {tau:g} of {reg.name!r}{learned}",
                },
            )
        return self._values[key]

    def _folds(self, reg: Regime, crossfit: int | str | None) -> int:
        if crossfit == "auto":
            return DEFAULT_FOLDS if reg.learned_from_data else 0
        if crossfit is None:
            return 0
        if (
            isinstance(crossfit, bool)
            or not isinstance(crossfit, int | np.integer)
            or crossfit == 1
            or crossfit < 0
        ):
            raise FitError(
                f"crossfit={crossfit!r} must be 'auto', None/0 (no sample splitting) or a number of "
                "chunks >= 2, e.g. crossfit=10."
            )
        return int(crossfit)

    def _crossfit(self, folds: int, split: str) -> CrossFit:
        if (folds, split) not in self._crossfits:
            start = online_start(folds) if split == "online" else 0
            self._crossfits[(folds, split)] = CrossFit(
                self, folds, "online" if split == "online" else "crossfit", start
            )
        return self._crossfits[(folds, split)]

    # ------------------------------------------------------------------ comparisons (bayesdtr.comparison)
    def differences(
        self, regimes: dict[str, Regime | str], *, method: Literal["q", "ipw", "aipw"] = "q"
    ) -> xr.DataArray:
        """Pairwise value differences (regime, regime_other, chain, draw); see :func:`bayesdtr.comparison.differences`."""
        return comparison.differences(self, regimes, method=method)

    def compare(
        self,
        regimes: dict[str, Regime | str],
        *,
        method: Literal["q", "ipw", "aipw"] = "q",
        hdi_prob: float = HDI_PROB,
        crossfit: int | Literal["auto"] | None = "auto",
        client: Any = None,
    ) -> pd.DataFrame:
        """Compare regimes by their value posteriors (mean, sd, HDI, P(best), expected regret).

        See :func:`bayesdtr.comparison.compare`.

        Examples
        --------
        >>> import bayesdtr as bd
        >>> scn = bd.scenario("two_stage_cont")
        >>> df = scn.sample(300, seed=1)
        >>> stages = [bd.Stage("A1", main="X1", contrast="1 + X1"),
        ...           bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")]
        >>> post = bd.DTRModel(df, stages, outcome="Y").fit(draws=200, chains=2, random_seed=1)
        >>> tab = post.compare({"optimal": "optimal", "never": bd.Regime.static(A1=0, A2=0)})
        >>> list(tab.columns)[:3]
        ['mean', 'sd', 'hdi94_lb']
        """
        return comparison.compare(
            self, regimes, method=method, hdi_prob=hdi_prob, crossfit=crossfit, client=client
        )

    def predict_outcome(
        self, regime: Regime | str, data: pd.DataFrame | None = None
    ) -> xr.DataArray:
        """Posterior predictive of each unit's return under ``regime``: (chain, draw, obs).

        See :func:`bayesdtr.comparison.predict_outcome`.
        """
        return comparison.predict_outcome(self, regime, data)

    def prob_better(
        self, regime_a: Regime | str, regime_b: Regime | str, data: pd.DataFrame | None = None
    ) -> pd.Series:
        """P(G under regime_a > G under regime_b) for each unit; see :func:`bayesdtr.comparison.prob_better`."""
        return comparison.prob_better(self, regime_a, regime_b, data)

    def rule(self, kind: Literal["map", "mean"] = "map", *, max_draws: int = 200) -> Regime:
        """A point rule from the posterior, as a :class:`~bayesdtr.Regime` that prints.

        ``"map"`` gives each history the arm most often optimal across posterior draws (thinned
        to at most ``max_draws``); ``"mean"`` maximizes the posterior-mean Q-function. Use it
        e.g. with ``scenario.true_value(post.rule())`` to report the true value of the estimated
        rule. ``print(post.rule())`` shows each stage's rule in words and math with P(optimal)
        summaries, and ``post.rule().table()`` the recommended arm per unit (see
        :class:`bayesdtr.rules.EstimatedRule`).
        """
        from bayesdtr.rules import estimate_rule

        return estimate_rule(self, kind, max_draws=max_draws)

    # ------------------------------------------------------------------ tables
    def stage_posterior(self, stage: int | str) -> xr.Dataset:
        """Every posterior variable of one stage's outcome model (coefficients, sigma, group
        effects, ancestor), dims ``chain``, ``draw``; as stored under ``/stage_k/posterior``."""
        k, sd = self._stage(stage)
        return stage_posterior_dataset(sd, self.fits[k], self.design.group_levels)

    def summary(self, *, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior summary of every stage's parameters: mean, sd, HDI, ESS and R-hat."""
        from bayesdtr.diagnostics import summary_table

        check_probability(hdi_prob, "hdi_prob=", FitError)
        return summary_table(self, hdi_prob=hdi_prob)

    def diagnostics(self) -> pd.DataFrame:
        """Per-stage convergence report: engine, divergences, max R-hat, min bulk/tail ESS."""
        from bayesdtr.diagnostics import diagnostics_table

        return diagnostics_table(self)

    def diagnostics_message(self) -> str:
        from bayesdtr.diagnostics import diagnostics_message

        return diagnostics_message(self)

    def report(
        self, path, *, regimes: dict[str, Regime | str] | None = None, title: str | None = None
    ):
        """Write a self-contained HTML report; see :func:`bayesdtr.report.write_report`."""
        from bayesdtr.report import write_report

        return write_report(self, path, regimes=regimes, title=title)

    @property
    def tree(self) -> xr.DataTree:
        """Everything as an :class:`xarray.DataTree` (one node per stage, plus policy and value).

        A censored survival outcome has no ``/value`` node: its value needs a horizon
        (``post.value(regime, horizon=tau)``, computed on demand, also after loading a file).
        """
        if self._tree is None:
            self._tree = build_tree(
                self.parts(),
                prob_optimal=[self.prob_optimal(k + 1) for k in range(len(self.fits))],
                # the plug-in posterior (cheap; its attrs say so): the sample-split value of
                # post.value("optimal") refits the model per chunk and is recomputed on demand
                value=None if self.design.event is not None else self.value("optimal", crossfit=0),
            )
        return self._tree

    def to_netcdf(self, path: str | os.PathLike, *, forests: bool = True) -> None:
        """Write the posterior to a netCDF file (arrays and plain attributes; no pickle).

        The file holds the data, every stage's design matrices and draws, the propensity draws,
        priors, seeds and settings (layout in :mod:`bayesdtr.io`). A BART stage stores the Q
        evaluations of its units and, with ``forests=True``, its forests as stochtree JSON text
        (:mod:`bayesdtr.bart_io`; about 0.85 MB per 100 draws of 50 trees, compressed), so
        that queries on new histories work after :func:`bayesdtr.load`; ``forests=False``
        writes a smaller file, much faster (measured at 4,000 draws: 10 s against 190 s),
        whose BART stages answer only about their fitted units. A censored survival outcome
        stores its event column, stage times and AFT scale draws, and no ``/value`` node (its
        value needs a horizon; ``bd.load(path).value(regime, horizon=tau)`` recomputes it). Dropout
        (``censoring=``) stores the censoring models' designs and draws, from which loading
        recomputes the same weights. It is
        written atomically: to a
        temporary file in the same folder, flushed to disk, then renamed over ``path``, so a crash
        never leaves a damaged file under ``path`` nor destroys the file it replaces.

        Raises
        ------
        FileFormatError
            ``path`` is not a writable file path.
        DataError, PriorError
            A column, label or prior that a file cannot store (the message says how to convert it).
        """
        check_path(path, "to_netcdf")  # before building the tree
        if not isinstance(forests, bool):
            raise FileFormatError(f"to_netcdf(forests=...) must be True or False; got {forests!r}.")
        write_netcdf(with_forests(self.tree, self.fits) if forests else self.tree, path)

    def parts(self) -> PosteriorParts:
        """The posterior as plain data (design, draws, priors, seeds): what a file stores."""
        return PosteriorParts(
            design=self.design,
            priors=self.priors,
            settings=self.settings,
            fits=self.fits,
            propensities=self.propensities,
            random_seed=self.random_seed,
            seed=self._seed,
            induction_seed=self._induction_seed,
            tree=self._tree,
            source=self.source,
        )

    @classmethod
    def from_parts(cls, parts: PosteriorParts) -> DTRPosterior:
        """A posterior from stored parts (a design plus draws), without a :class:`DTRModel`."""
        ind = induction_class(parts.design)(
            parts.design,
            parts.settings,
            parts.priors,
            parts.propensities,
            Regime.optimal(),
            parts.induction_seed,
        )
        ind.fits = list(parts.fits)
        ind.origins = [f.engine for f in parts.fits]
        post = cls(
            design=parts.design,
            priors=parts.priors,
            settings=parts.settings,
            induction=ind,
            propensities=parts.propensities,
            random_seed=parts.random_seed,
            seed=parts.seed,
            induction_seed=parts.induction_seed,
        )
        post.source = parts.source
        post._tree = parts.tree
        return post

    def __repr__(self) -> str:
        engines = ", ".join(
            f"{sd.treatment}: {f.engine}"
            for sd, f in zip(self.design.stages, self.fits, strict=True)
        )
        return (
            f"DTRPosterior({len(self.fits)} stages, {self.chains} chains x {self.draws} draws, "
            f"propagation={self.settings.propagation!r}, engines [{engines}], seed {self.random_seed})"
        )
