"""Posterior draws of each stage's propensity model (NUTS), or its known probabilities."""

from __future__ import annotations

import numpy as np

from bayesdtr.data.design import DTRDesign
from bayesdtr.inference.draws import PropensityDraws, flatten_draws
from bayesdtr.inference.progress import Progress
from bayesdtr.inference.sampling import cached_sampler, is_cached
from bayesdtr.models.priors import StagePriors
from bayesdtr.models.propensity import build_propensity_model

__all__ = ["fit_propensities"]


def fit_propensities(
    design: DTRDesign,
    priors: dict[str, StagePriors],
    *,
    draws: int,
    tune: int,
    chains: int,
    sampler: str,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> list[PropensityDraws | None]:
    """One :class:`PropensityDraws` per stage (None where the stage declares no propensity)."""
    out: list[PropensityDraws | None] = []
    for sd in design.stages:
        seed = int(rng.integers(0, 2**31 - 1))
        if sd.known_propensity is not None:
            out.append(PropensityDraws(known=sd.known_propensity))
            continue
        if sd.X_prop is None:
            out.append(None)
            continue
        key, data, build = build_propensity_model(
            sd,
            priors=priors[sd.treatment],
            group_codes=design.groups_of(sd),
            n_groups=len(design.group_levels),
        )
        name = f"propensity model of stage {sd.position} ({sd.treatment})"
        if not is_cached(key, sampler):  # type: ignore[arg-type]
            Progress.note(f"compiling {name}…", enabled=progressbar)
        Progress.note(f"sampling {name}…", enabled=progressbar)
        smp, created = cached_sampler(key, build, sampler)  # type: ignore[arg-type]
        res = smp.run(data, draws=draws, tune=tune, chains=chains, seed=seed, progressbar=progressbar)
        out.append(
            PropensityDraws(
                gamma=flatten_draws(res.draws["propensity_coef"]),
                group_effect=flatten_draws(res.draws["propensity_group"]) if "propensity_group" in res.draws else None,
                stats={k: flatten_draws(v) for k, v in res.stats.items()},
                chains=chains,
                draws=draws,
                compile_seconds=smp.compile_seconds if created else 0.0,
                sample_seconds=res.seconds,
            )
        )
    return out
