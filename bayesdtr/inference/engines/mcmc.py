"""The MCMC stage engine: NUTS at the last stage, multiple imputation before.

Earlier stages are refitted on M pseudo-outcome vectors, each built from one draw of the later
stage (the ancestor). The stage model is compiled once; each imputation swaps the data
(:class:`~bayesdtr.inference.sampling.NUTSSampler`). The M fits, each ``ceil(draws / M)`` draws
per chain, are pooled along the draw axis: the pooled draws sample the cut posterior
:math:`\\int p(\\theta_k \\mid T_k(\\theta_{k+1}))\\, p(\\theta_{k+1} \\mid \\text{data})\\, d\\theta_{k+1}`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayesdtr.data.design import DTRDesign
from bayesdtr.inference.draws import StageDraws, flatten_draws
from bayesdtr.inference.progress import Progress
from bayesdtr.inference.sampling import cached_sampler, is_cached
from bayesdtr.models.outcome import OutcomeModel, build_outcome_model
from bayesdtr.models.priors import StagePriors

if TYPE_CHECKING:
    from bayesdtr.inference.backward import FitSettings, Induction

__all__ = ["MCMCEngine", "StageProblem", "fit_stage_mcmc", "n_blocks", "pooled_stage_draws", "stage_problem"]


class MCMCEngine:
    """NUTS (multiple imputation before the last stage): any family, groups, user priors."""

    name = "mcmc"

    def refusal(
        self, design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors], k: int
    ) -> str | None:
        return None

    def fit(self, induction: Induction, k: int) -> StageDraws:
        return fit_stage_mcmc(induction, k)


def n_blocks(draws: int, imputations: int) -> tuple[int, int]:
    """Imputations M and draws per chain per imputation so that M * per >= draws."""
    m = max(1, min(imputations, draws))
    return m, math.ceil(draws / m)


@dataclass
class StageProblem:
    """What a sampling engine fits at stage k: the stage model (data, structure) and its M
    targets, one per ancestor draw of the later stage (one target at the last stage), with
    ``per`` draws per chain and target."""

    k: int
    last: bool
    om: OutcomeModel
    targets: np.ndarray  # (M, n_k)
    ancestors: np.ndarray | None  # (M,) or None at the last stage
    per: int
    label: str

    @property
    def m(self) -> int:
        return len(self.targets)


def stage_problem(ind: Induction, k: int) -> StageProblem:
    """Targets (multiple imputation before the last stage) and the stage model of stage ``k``.

    Consumes ``ind.rngs[k]`` for the ancestors, exactly as the NUTS engine always has.
    """
    design, st = ind.design, ind.settings
    sd = design.stages[k]
    family = ind.outcome_family(k)
    last = k == ind.K - 1
    rng = ind.rngs[k]
    g_obs = ind.observed_return()[sd.units]
    hyper = family.hyper(sd, g_obs)
    if last:
        targets = ind.target_for_fit(k, None)
        ancestors = None
        per = st.draws
    else:
        m, per = n_blocks(st.draws, st.imputations)
        n_next = ind.fits[k + 1].n  # type: ignore[union-attr]
        ancestors = rng.choice(n_next, size=m, replace=m > n_next)
        targets = ind.target_for_fit(k, ancestors)
    om = build_outcome_model(
        sd,
        targets[0],
        family=family,
        priors=ind.priors[sd.treatment],
        hyper=hyper,
        group_codes=design.groups_of(sd),
        n_groups=len(design.group_levels),
        group_contrast=st.group_contrast,
        target_scale=float(np.std(g_obs)) or 1.0,
    )
    label = f"stage {sd.position} ({sd.treatment})"
    if not ind.regime.is_optimal:
        label += f", regime {ind.regime.name!r}"
    return StageProblem(k=k, last=last, om=om, targets=targets, ancestors=ancestors, per=per, label=label)


def pooled_stage_draws(
    ind: Induction,
    prob: StageProblem,
    post: dict[str, np.ndarray],
    stats: dict[str, np.ndarray],
    *,
    engine: str,
    compile_seconds: float,
    sample_seconds: float,
) -> StageDraws:
    """StageDraws from pooled draws ``post`` (name -> (chains, M * per, ...), target j's draws
    in block j), keeping the first ``draws`` of each chain and recording ancestors."""
    st = ind.settings
    sd = ind.design.stages[prob.k]
    post = {name: v[:, : st.draws] for name, v in post.items()}
    stats = {name: v[:, : st.draws] for name, v in stats.items()}
    beta = flatten_draws(post["beta"])
    psi = flatten_draws(post["psi"])
    theta = sd.uncenter(np.concatenate([beta, psi.reshape(psi.shape[0], -1)], axis=1))
    anc = None
    if prob.ancestors is not None:
        block_of_draw = np.repeat(np.arange(prob.m), prob.per)[: st.draws]
        anc = np.tile(prob.ancestors[block_of_draw], st.chains)
    extras = {name: flatten_draws(post[name]) for name in ("group_sd", "group_contrast_sd") if name in post}
    return StageDraws(
        theta=theta,
        sigma=flatten_draws(post["sigma"]) if "sigma" in post else None,
        chains=st.chains,
        draws=st.draws,
        engine=engine,
        family=ind.outcome_family(prob.k).name,
        group_intercept=flatten_draws(post["group_intercept"]) if "group_intercept" in post else None,
        group_contrast=flatten_draws(post["group_contrast"]) if "group_contrast" in post else None,
        extras=extras,
        ancestor=anc,
        stats={name: flatten_draws(v) for name, v in stats.items()},
        compile_seconds=compile_seconds,
        sample_seconds=sample_seconds,
        n_fits=prob.m,
    )


def fit_stage_mcmc(ind: Induction, k: int) -> StageDraws:
    """Fit stage ``k`` of ``ind`` by NUTS (multiple imputation when k is not the last stage)."""
    st = ind.settings
    prob = stage_problem(ind, k)
    om, m, per, last, name = prob.om, prob.m, prob.per, prob.last, prob.label
    rng = ind.rngs[k]
    show = st.progressbar
    if show and not is_cached(om.key, st.sampler):  # type: ignore[arg-type]
        Progress.note(f"compiling {name} model…", enabled=show)
    sampler, created = cached_sampler(om.key, om.build, st.sampler)  # type: ignore[arg-type]
    seeds = rng.integers(0, 2**31 - 1, size=m)
    blocks = []
    seconds = 0.0
    tune = st.tune if last else st.tune_per_imputation
    if last:
        # one run: the sampler's own bar shows its draws
        Progress.note(f"sampling {name}: {st.chains} chains x ({tune} tune + {per} draws)…", enabled=show)
    bar = Progress(f"sampling {name}: imputations", m, enabled=show and not last).start()
    for j in range(m):
        res = sampler.run(
            om.data_for(prob.targets[j]),
            draws=per,
            tune=tune,
            chains=st.chains,
            seed=int(seeds[j]),
            progressbar=show and last,
        )
        seconds += res.seconds
        blocks.append(res)
        bar.update()
    bar.close()
    post = {name: np.concatenate([b.draws[name] for b in blocks], axis=1) for name in blocks[0].draws}
    stats = {name: np.concatenate([b.stats[name] for b in blocks], axis=1) for name in blocks[0].stats}
    # the compile time is charged to the fit that built the sampler (0 when it is reused, e.g. by
    # a regime's refit; sampler="pymc" compiles inside every run: in sample_seconds)
    return pooled_stage_draws(
        ind,
        prob,
        post,
        stats,
        engine="mcmc",
        compile_seconds=sampler.compile_seconds if created else 0.0,
        sample_seconds=seconds,
    )
