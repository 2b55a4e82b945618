"""Convergence diagnostics and summary tables of a :class:`~bayesdtr.DTRPosterior`.

Closed-form stages (conjugate, robust) draw independently, so their R-hat is about 1 and their
ESS about the number of draws; they are still reported, to be checked the same way. MCMC stages
report divergences, R-hat and ESS over the pooled chains (with multiple imputation, every chain
holds draws of every imputation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayesdtr.constants import HDI_PROB, SAMPLED_ENGINES

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = [
    "summary_table",
    "diagnostics_table",
    "diagnostics_message",
    "positivity_messages",
    "weight_ess_message",
    "RHAT_MAX",
    "ESS_MIN",
    "PROPENSITY_MIN",
    "WEIGHT_ESS_MIN",
]

#: R-hat above this is reported.
RHAT_MAX = 1.01
#: Bulk or tail ESS below this (per stage, all chains) is reported.
ESS_MIN = 400
#: Posterior-mean propensities below this (or above 1 minus this) for a feasible arm are reported.
PROPENSITY_MIN = 0.02
#: Kish effective sample size of IPW/AIPW weights below this fraction of the units is reported.
WEIGHT_ESS_MIN = 0.10


def summary_dataset(post: DTRPosterior, k: int):
    """Stage k's posterior without the ancestor index and the reference arm's structural zeros."""
    ds = post.stage_posterior(k + 1).drop_vars("ancestor", errors="ignore")
    ref = post.design.stages[k].arm_coord[0]
    return ds.drop_sel(arm=[ref]) if "arm" in ds.dims else ds


def summary_table(post: DTRPosterior, *, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Posterior summary of every stage's outcome parameters (reference-arm zeros left out)."""
    import arviz as az  # imported when needed: `import bayesdtr` stays light

    frames = []
    for k, sd in enumerate(post.design.stages):
        ds = summary_dataset(post, k)
        s = az.summary(ds, ci_prob=hdi_prob, ci_kind="hdi", round_to="none")
        s = s.apply(pd.to_numeric, errors="coerce")
        s.index = [f"{sd.treatment}::{i}" for i in s.index]
        s.insert(0, "stage", sd.treatment)
        frames.append(s)
    return pd.concat(frames)


def diagnostics_table(post: DTRPosterior) -> pd.DataFrame:
    """One row per stage (and propensity model): engine, divergences, max R-hat, min ESS."""
    import arviz as az

    rows = []
    summ = post.summary()
    for k, (sd, fit) in enumerate(zip(post.design.stages, post.fits, strict=True)):
        s = summ[summ["stage"] == sd.treatment]
        div = int(np.sum(fit.stats["diverging"])) if "diverging" in fit.stats else 0
        rows.append(
            {
                "stage": sd.treatment,
                "model": "outcome",
                "engine": fit.engine,
                "fits": max(fit.n_fits, 1),
                "divergences": div,
                "max_r_hat": float(s["r_hat"].max()),
                "min_ess_bulk": float(s["ess_bulk"].min()),
                "min_ess_tail": float(s["ess_tail"].min()),
                "compile_s": fit.compile_seconds,
                "sample_s": fit.sample_seconds,
            }
        )
        pr = post.propensities[k]
        if pr is not None and pr.gamma is not None:
            g = pr.gamma.reshape((pr.chains, pr.draws) + pr.gamma.shape[1:])
            r = float(np.nanmax(az.rhat(np.asarray(g))))
            e = float(np.nanmin(az.ess(np.asarray(g))))
            rows.append(
                {
                    "stage": sd.treatment,
                    "model": "propensity",
                    "engine": "mcmc",
                    "fits": 1,
                    "divergences": int(np.sum(pr.stats.get("diverging", 0))),
                    "max_r_hat": r,
                    "min_ess_bulk": e,
                    "min_ess_tail": np.nan,
                    "compile_s": pr.compile_seconds,
                    "sample_s": pr.sample_seconds,
                }
            )
    return pd.DataFrame(rows)


def diagnostics_message(post: DTRPosterior) -> str:
    """A warning text listing problems, or "" when none."""
    sampled = any(f.engine in SAMPLED_ENGINES for f in post.fits) or any(p is not None and p.gamma is not None for p in post.propensities)
    if not sampled:
        return ""  # closed-form draws only: independent and exact, nothing to check
    tab = diagnostics_table(post)
    problems = []
    for _, r in tab.iterrows():
        if r["engine"] not in SAMPLED_ENGINES:
            continue  # closed-form draws are independent and exact: nothing to converge
        label = f"stage {r['stage']!r} ({r['model']})"
        if r["divergences"] > 0:
            problems.append(f"{label}: {int(r['divergences'])} divergent transitions")
        if np.isfinite(r["max_r_hat"]) and r["max_r_hat"] > RHAT_MAX:
            problems.append(f"{label}: R-hat up to {r['max_r_hat']:.3f} (> {RHAT_MAX})")
        if np.isfinite(r["min_ess_bulk"]) and r["min_ess_bulk"] < ESS_MIN:
            problems.append(f"{label}: bulk ESS down to {r['min_ess_bulk']:.0f} (< {ESS_MIN})")
    if post.chains == 1:
        problems.append(
            "chains=1, so R-hat is undefined (it compares chains) and convergence cannot be "
            "checked; use chains >= 2"
        )
    if not problems:
        return ""
    return (
        "Sampling diagnostics need attention: "
        + "; ".join(problems)
        + ". Increase tune/draws, or see post.diagnostics() and post.summary()."
    )


def positivity_messages(post: DTRPosterior, *, low: float = PROPENSITY_MIN, max_draws: int = 200) -> list[str]:
    """One text per stage whose propensity posterior puts units near 0 or 1 for an arm.

    Uses the posterior-mean propensity of each unit (over at most ``max_draws`` thinned
    draws), renormalized over its feasible set; units with a single feasible arm are left out
    (their propensity is 1 by design). Inverse-probability weights of such units are huge, so
    IPW/AIPW values lean on few units and Q-values extrapolate there.
    """
    from bayesdtr.inference.draws import propensity_for

    out = []
    idx = np.unique(np.linspace(0, post.n_samples - 1, min(max_draws, post.n_samples)).astype(int))
    for sd, pr in zip(post.design.stages, post.propensities, strict=True):
        if pr is None:
            continue
        prop = np.asarray(propensity_for(pr, sd, post.design, idx)).mean(axis=1)  # (m, n_k)
        choice = sd.feasible.sum(axis=1) >= 2
        parts = []
        for j, arm in enumerate(sd.arms):
            ok = choice & sd.feasible[:, j]
            n_low = int(np.sum(ok & (prop[j] < low)))
            if n_low:
                parts.append(f"P(arm {arm!r}) < {low:g} for {n_low} unit(s)")
        if parts:
            out.append(
                f"Stage {sd.treatment!r}: the propensity posterior puts units near 0 or 1 for an arm ("
                + "; ".join(parts)
                + f", of {sd.n_units} units). Positivity is doubtful there: IPW/AIPW weights "
                "explode and Q-values extrapolate. Check the overlap (e.g. restrict applies= or "
                "feasible= to units that could get each arm), or simplify propensity=."
            )
    return out


def weight_ess_message(ess: np.ndarray, n: int, method: str, regime: str) -> str:
    """A warning text when the median Kish ESS of IPW/AIPW weights is below 10% of the units."""
    med = float(np.median(ess))
    if med >= WEIGHT_ESS_MIN * n:
        return ""
    return (
        f"method={method!r} for regime {regime!r}: the inverse-probability weights have a Kish "
        f"effective sample size of {med:.1f} (posterior median) out of {n} units, below "
        f"{WEIGHT_ESS_MIN:.0%}: the value rests on few units and its interval is unreliable. "
        "Compare with method='q', or check overlap (post.diagnostics(), PositivityWarning)."
    )
