"""DTRModel: validate a multi-stage specification, then fit it by Bayesian backward induction."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesdtr.constants import CHUNK_ELEMENTS, ENGINES, PROPAGATIONS, SAMPLERS
from bayesdtr.data.design import build_design
from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.data.validate import check_draws_memory
from bayesdtr.diagnostics import positivity_messages
from bayesdtr.exceptions import ConvergenceWarning, FitError, PositivityWarning, SpecificationError
from bayesdtr.inference.backward import FitSettings, stage_engines
from bayesdtr.inference.propensity_fit import fit_propensities
from bayesdtr.inference.survival import induction_class
from bayesdtr.models.priors import OUTCOME_PRIORS, PROPENSITY_PRIORS, resolve_priors
from bayesdtr.posterior import DTRPosterior
from bayesdtr.regimes import Regime

__all__ = ["DTRModel"]


class DTRModel:
    r"""A Bayesian dynamic treatment regime model.

    Each stage k has an outcome (Q-function) model

    .. math::

        T_k \mid H_k, A_k = a \sim \mathrm{Normal}\Big(\mathrm{main}_k(H_k)^\top\beta_k
            + 1\{a \ne \mathrm{ref}\}\,\mathrm{contrast}_k(H_k)^\top\psi_{k,a}
            + u_{g}, \sigma_k\Big)

    (Bernoulli with a logit link for a binary final outcome), where :math:`T_K` is the final
    outcome and :math:`T_k` for k < K is the pseudo-outcome carried back from stage k+1 (see
    :mod:`bayesdtr.inference.backward`), and optionally a propensity model of :math:`A_k`.
    Construction validates the data and builds every design; :meth:`fit` samples.

    Parameters
    ----------
    data : pandas.DataFrame
        Wide data, one row per unit.
    stages : list of Stage
        Stages in time order.
    outcome : str
        Final outcome column (larger is better).
    family : {"gaussian", "bernoulli", "lognormal", "weibull"}, default "gaussian"
        Family of the final outcome. ``"lognormal"`` and ``"weibull"`` are right-censored
        log-time (AFT) models and need ``event=``; then ``outcome=`` is the total time from
        the first decision and each earlier stage's ``reward=`` its time to the next decision
        (see :mod:`bayesdtr.data.survival`, :mod:`bayesdtr.inference.survival`). Every stage
        is then fitted by NUTS, and values are restricted mean survival times
        (``post.value(regime, horizon=tau)``).
    group : str or None
        Cluster column (site, clinic) for hierarchical random intercepts.
    group_contrast : bool, default False
        Also give each group its own treatment effects (random contrast intercepts per arm),
        partially pooled across groups. Needs ``group``.
    id : str or None
        Unit id column; duplicates are an error.
    priors : dict or None
        Prior overrides by name (see :mod:`bayesdtr.models.priors`).
    event : str or None
        With a survival family: the 0/1 column, 1 where ``outcome`` is an event time, 0 where
        it is censored.
    timeline : dict or None
        When each covariate is measured: ``{"baseline": [...], <treatment>: [...], ...}``. Under
        ``"baseline"`` go the covariates known before the first decision; under a treatment
        go those measured after that decision and before the next one (intermediate outcomes,
        and after the last treatment the ingredients of the final outcome). Treatments, the
        outcome and rewards are placed by ``stages=`` and ``outcome=``. With a timeline, a
        stage's main, contrast and propensity formulas may read only baseline covariates,
        earlier treatments and covariates listed under earlier treatments; a formula that
        reads a later covariate, or one the timeline does not list, is an error. None (the
        default) checks only that formulas do not read the outcome, this or a later
        treatment, or a later reward.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.load_data("bmi")
    >>> df["y"] = -100 * (df.month12BMI - df.baselineBMI) / df.baselineBMI
    >>> model = bd.DTRModel(df, [
    ...     bd.Stage("A1", main="race + parentBMI + baselineBMI",
    ...              contrast="1 + race + parentBMI + baselineBMI"),
    ...     bd.Stage("A2", main="race + parentBMI + month4BMI",
    ...              contrast="1 + race + parentBMI + month4BMI")], outcome="y")
    >>> post = model.fit(draws=200, chains=2, random_seed=1, progressbar=False)
    >>> post.prob_optimal(stage=2).shape
    (210, 2)

    Declaring when each covariate is measured catches a formula that looks ahead:

    >>> timeline = {"baseline": ["race", "parentBMI", "baselineBMI"],
    ...             "A1": ["month4BMI"], "A2": ["month12BMI"]}
    >>> bd.DTRModel(df, [
    ...     bd.Stage("A1", main="baselineBMI + month4BMI"),
    ...     bd.Stage("A2", main="month4BMI")], outcome="y", timeline=timeline)
    Traceback (most recent call last):
    ...
    bayesdtr.exceptions.SpecificationError: Stage 'A1' main='baselineBMI + month4BMI' uses ['month4BMI'], measured after decision(s) {'month4BMI': 'A1'} (timeline=), so not known before decision 'A1'. Use only covariates under 'baseline'.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        stages: Sequence[Stage],
        *,
        outcome: str,
        family: Literal["gaussian", "bernoulli", "lognormal", "weibull"] = "gaussian",
        group: str | None = None,
        group_contrast: bool = False,
        id: str | None = None,
        priors: Mapping[str, Any] | None = None,
        timeline: Mapping[str, Sequence[str]] | None = None,
        event: str | None = None,
    ) -> None:
        if group_contrast and group is None:
            raise SpecificationError("group_contrast=True needs group= (the cluster column).")
        self.design = build_design(
            data, stages, outcome=outcome, family=family, group=group, id=id, timeline=timeline, event=event
        )
        self.timeline = None if timeline is None else {k: list(v) for k, v in timeline.items()}
        self.stages = list(stages)
        self.outcome = outcome
        self.family = family
        self.event = event
        self.group = group
        self.group_contrast = group_contrast
        self.id = id
        self.stage_priors = resolve_priors(priors, self.design.treatments)
        self.priors_input = dict(priors) if priors else {}

    @property
    def data(self) -> pd.DataFrame:
        return self.design.data

    def __str__(self) -> str:
        d = self.design
        lines = [f"DTRModel: {len(d.stages)} stage(s), {d.n} units, outcome {d.outcome!r} ({d.family})"]
        if d.group is not None:
            lines.append(
                f"  groups: {d.group!r} ({len(d.group_levels)} levels), random intercepts"
                + (" and random contrasts" if self.group_contrast else "")
            )
        engines = stage_engines(d, FitSettings(), self.stage_priors)
        if d.timeline is not None:
            lines.append(f"  timeline: {self.timeline} (formulas read only earlier covariates)")
        for sd, eng in zip(d.stages, engines, strict=True):
            st = sd.stage
            lines.append(f"  stage {sd.position}: {st.treatment!r}, arms {sd.arms} (reference {sd.arms[0]!r}), {sd.n_units} units")
            lines.append(f"    main:       {st.main}  -> {sd.main_terms}")
            lines.append(f"    contrast:   {st.contrast}  -> {sd.contrast_terms}")
            prop = st.propensity
            if isinstance(prop, KnownPropensity):
                ptxt = f"known {prop.probabilities}"
            else:
                ptxt = "none" if prop is None else f"logit({prop})"
            lines.append(f"    propensity: {ptxt}")
            if st.reward is not None:
                lines.append(f"    reward:     {st.reward}")
            cd = None if d.dropout is None else d.dropout[sd.position - 1]
            if cd is not None:
                lines.append(
                    f"    dropout:    {len(cd.dropped)} of {len(cd.at_risk)} units at risk; P(remain) = logit^-1({cd.formula})"
                )
            if st.feasible is not None:
                lines.append("    feasible:   rule given")
            over = self.stage_priors[st.treatment].overrides
            lines.append(
                "    priors:     "
                + (", ".join(f"{k}={v}" for k, v in over.items()) if over else "defaults (weakly informative, scaled to the data)")
            )
            lines.append(f"    engine (auto): {eng}")
        lines.append(f"  prior names: {list(OUTCOME_PRIORS) + list(PROPENSITY_PRIORS)}")
        if d.dropout is None:
            lines.append("Next: post = model.fit(random_seed=1); then post.value('optimal'), post.prob_optimal(stage=1).")
        else:
            lines.append(
                "Next: post = model.fit(random_seed=1); then post.value(bd.Regime.static(...)), "
                "post.value('optimal') (the plug-in posterior: no sample splitting with dropout yet), "
                "post.prob_optimal(stage=1)."
            )
        return "\n".join(lines)

    __repr__ = __str__

    def fit(
        self,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        propagation: Literal["modal", "mean", "predictive", "augmented"] = "modal",
        engine: Literal["auto", "conjugate", "gibbs", "mcmc"] = "auto",
        sampler: Literal["nutpie", "nutpie-jax", "pymc", "numpyro"] = "nutpie",
        imputations: int = 200,
        imputation_tune: int | None = None,
        robust: bool = False,
        progressbar: bool = True,
        warn: bool = True,
        strict: bool = False,
        chunk_elements: int | None = None,
    ):
        """Fit every stage by backward induction and return a :class:`~bayesdtr.DTRPosterior`.

        Parameters
        ----------
        draws, tune, chains : int
            Posterior draws per chain, tuning steps (MCMC only) and chains. Every stage ends up
            with ``chains * draws`` draws.
        random_seed : int or None
            Seed of everything random (MCMC, closed-form draws, Bayesian bootstrap). The same seed
            gives identical posteriors. None draws a seed and records it in ``post.tree.attrs``.
        propagation : {"modal", "mean", "predictive", "augmented"}
            Pseudo-outcome rule (see :mod:`bayesdtr.inference.backward`). The default "modal"
            (observed outcome plus the Q-difference between the arm most often optimal across
            the later stage's draws and the observed arm) was chosen by measurement on the nine
            published non-regular designs of Chakraborty, Laber and Zhao (2013), 200
            replicates per design and n, 95% intervals of the stage-1 contrast intercept
            (``benchmarks/calibration``, each cell with its own seeds): "modal" covered
            0.910-0.995 at n = 300 (example 3: 0.910, 4: 0.925, B: 0.945) and 0.920-0.990 at
            n = 1,000, where "mean" (standard Q-learning's pseudo-outcome, what OLS Q-learning
            does) covered 0.870-0.985 (examples 3 and 4: 0.870, B: 0.895) and 0.885-0.990
            (examples 3, 4, B, C: 0.885-0.895), at 3-5% more width on average. Both over-cover
            in the null examples 1 and 2 (up to 0.995 and 0.990; interval SD 1.1-1.4 times the
            replicate SD), as the OLS bootstrap does there (0.985-0.990). Example 3 at n = 300
            is 0.01 below 0.92 (MC SE 0.020; 0.945 on an earlier, independent set of seeds):
            "modal" reduces the hard max's downward bias there without removing it (-0.084
            against -0.117 for "mean"; half a replicate SD).
            The price of "modal" where no arm is near a tie: it keeps the final outcome's noise
            in every stage's pseudo-outcome, where "mean" replaces it by the later stage's
            fitted maximum. On ``k_stage`` (K = 3, n = 300, 200 replicates) its stage-1
            contrast intercept covered 0.940 with intervals 4.3 times as wide as "mean"'s
            (0.479 against 0.112; "mean" covered 0.995, and 0.985 on an independent set of
            seeds); on ``two_stage_cont`` the two agreed
            (widths 1.461 and 1.467).
        engine : {"auto", "conjugate", "gibbs", "mcmc"}
            "conjugate" is exact for linear Gaussian stages without groups and default priors;
            "gibbs" is a blocked Gibbs sampler (NumPy, all imputations at once, nothing to
            compile) for Gaussian stages with default priors and group random intercepts and
            contrasts; "mcmc" is NUTS. "auto" takes the first that applies, in that order: NUTS
            is left for Bernoulli stages and user priors. Against NUTS on ``multisite_smart``
            (n = 400, 4 x 1,500 draws each) the Gibbs posterior means of the coefficients
            were within 0.104 posterior SD (the overall intercept, where the Monte Carlo SE of
            the gap is 0.03 SD; the others within 0.05) and the SDs within 10%
            (``tests/test_gibbs.py``).
        sampler : {"nutpie", "nutpie-jax", "pymc", "numpyro"}
            NUTS implementation for MCMC stages and propensity models. "nutpie" compiles a
            model once per machine (13-23 s on an idle 2-core machine) and loads it from
            PyTensor's disk cache in later processes (about a second). "nutpie-jax" is nutpie
            with its JAX backend (needs JAX): under 2 s to compile even the first time, but it
            samples 18-45 times slower, so it pays only for a model sampled once on a machine
            that has not compiled it (``benchmarks/bench_compile.py``).
        imputations : int, default 200
            Pseudo-outcome vectors M per earlier MCMC stage (multiple imputation).
        robust : bool, default False
            Doubly robust contrasts (dWOLS overlap weights with propensity draws, Bayesian
            bootstrap); needs a propensity model at every stage. Best paired with
            ``propagation="augmented"``, whose pseudo-outcome depends only on the contrasts.
        progressbar : bool
            Show sampler progress.
        warn : bool
            Warn (:class:`~bayesdtr.ConvergenceWarning`) about divergences, R-hat > 1.01 and
            bulk ESS < 400 of sampled stages after fitting, and
            (:class:`~bayesdtr.PositivityWarning`) about propensities below 0.02 or above 0.98.
            With ``chains=1`` R-hat is undefined (it compares chains), which is said too.
        strict : bool, default False
            Raise :class:`~bayesdtr.FitError` instead of warning when the sampling diagnostics
            fail (divergences, R-hat > 1.01, bulk ESS < 400, or R-hat undefined with one
            chain). Closed-form stages draw exactly and always pass.
        chunk_elements : int or None
            Memory bound: the most array elements (draws x units x arms) built at once while
            propagating draws, tallying P(optimal) and computing values (None:
            :data:`~bayesdtr.constants.CHUNK_ELEMENTS`, 1e6, i.e. 8 MB per float64 array).
            Peak memory grows with the number of units and this setting, never with units x
            draws; the results do not depend on it (up to floating-point summation order).

        Returns
        -------
        DTRPosterior

        Raises
        ------
        FitError
            On invalid arguments, on ``draws * chains`` too large to store in memory, and with
            ``strict=True`` on failed diagnostics.
        """
        for name, val, lo in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1), ("imputations", imputations, 1)):
            if isinstance(val, bool) or not isinstance(val, int | np.integer) or val < lo:
                raise FitError(f"{name}= must be an integer >= {lo}; got {val!r}.")
        if imputation_tune is not None and (
            isinstance(imputation_tune, bool) or not isinstance(imputation_tune, int | np.integer) or imputation_tune < 0
        ):
            raise FitError(f"imputation_tune= must be None or an integer >= 0; got {imputation_tune!r}.")
        if propagation not in PROPAGATIONS:
            raise FitError(f"propagation={propagation!r} is not one of {list(PROPAGATIONS)}.")
        if engine not in ENGINES:
            raise FitError(f"engine={engine!r} is not one of {list(ENGINES)}.")
        if sampler not in SAMPLERS:
            raise FitError(f"sampler={sampler!r} is not one of {list(SAMPLERS)}.")
        if not isinstance(strict, bool | np.bool_):
            raise FitError(f"strict= must be True or False; got {strict!r}.")
        if chunk_elements is not None and (
            isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int | np.integer) or chunk_elements < 1
        ):
            raise FitError(
                f"chunk_elements= must be None or an integer >= 1 (array elements per chunk, e.g. "
                f"1_000_000); got {chunk_elements!r}."
            )
        check_draws_memory(
            [sd.n_coef + (len(self.design.group_levels) + 1) * sd.n_arms for sd in self.design.stages],
            [(sd.n_arms - 1) * (len(sd.prop_terms) + len(self.design.group_levels)) for sd in self.design.stages],
            int(chains),
            int(draws),
        )
        if random_seed is None:
            random_seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31))
        elif isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer) or random_seed < 0:
            raise FitError(f"random_seed= must be a non-negative integer or None; got {random_seed!r}.")
        settings = FitSettings(
            draws=int(draws),
            tune=int(tune),
            chains=int(chains),
            propagation=propagation,
            engine=engine,
            sampler=sampler,
            imputations=int(imputations),
            imputation_tune=None if imputation_tune is None else int(imputation_tune),
            robust=bool(robust),
            progressbar=bool(progressbar),
            group_contrast=self.group_contrast,
            max_chunk_elements=CHUNK_ELEMENTS if chunk_elements is None else int(chunk_elements),
        )
        stage_engines(self.design, settings, self.stage_priors)  # fail fast on bad requests
        root = np.random.SeedSequence(int(random_seed))
        s_prop, s_ind, s_post = root.spawn(3)
        t0 = time.perf_counter()
        props = fit_propensities(
            self.design,
            self.stage_priors,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            sampler=sampler,
            rng=np.random.default_rng(s_prop),
            progressbar=settings.progressbar,
        )
        design = self.design
        if design.dropout is not None:
            design = self._with_dropout_weights(settings, root.spawn(1)[0])
        samplers: dict = {}
        ind = induction_class(design)(design, settings, self.stage_priors, props, Regime.optimal(), s_ind, samplers)
        ind.run()
        post = DTRPosterior(
            design=design,
            priors=self.stage_priors,
            settings=settings,
            induction=ind,
            propensities=props,
            random_seed=int(random_seed),
            seed=s_post,
            induction_seed=s_ind,
            fit_seconds=time.perf_counter() - t0,
            model=self,
        )
        msg = post.diagnostics_message()
        if strict and msg:
            raise FitError(f"fit(strict=True): {msg}")
        if warn:
            if msg:
                warnings.warn(msg, ConvergenceWarning, stacklevel=2)
            for text in positivity_messages(post):
                warnings.warn(text, PositivityWarning, stacklevel=2)
        return post

    def _with_dropout_weights(self, settings: FitSettings, seed: np.random.SeedSequence):
        """The design with the censoring models' weights (``censoring=``; see
        :mod:`bayesdtr.inference.dropout`). Only the conjugate engine weights its fits."""
        from bayesdtr.inference.dropout import fit_censoring

        engines = stage_engines(self.design, settings, self.stage_priors)
        bad = [(sd.treatment, e) for sd, e in zip(self.design.stages, engines, strict=True) if e != "conjugate"]
        if bad:
            raise FitError(
                "Dropout (censoring= on a stage) is supported with the conjugate engine only "
                "(linear Gaussian stages, default priors, no groups, robust=False); "
                f"{', '.join(f'stage {t!r} would use {e!r}' for t, e in bad)}. Use those settings, "
                "or analyse without the dropout stage."
            )
        ipcw = fit_censoring(
            self.design,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            sampler=settings.sampler,
            rng=np.random.default_rng(seed),
            progressbar=settings.progressbar,
        )
        return dataclasses.replace(self.design, ipcw=ipcw)
