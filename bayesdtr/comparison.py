"""Comparisons of regimes over a posterior: values side by side, differences, P(best), regret,
and per-unit posterior predictive outcomes under a regime.

Every function takes a :class:`~bayesdtr.DTRPosterior`; the posterior's methods of the same
names (``post.compare``, ``post.differences``, ``post.predict_outcome``, ``post.prob_better``)
delegate here. All regimes share the posterior draws and the Bayesian-bootstrap weights, so
differences between regimes are draws of their joint posterior.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from bayesdtr.constants import HDI_PROB
from bayesdtr.data.validate import check_probability
from bayesdtr.exceptions import FitError, RegimeError
from bayesdtr.inference.backward import regime_codes
from bayesdtr.inference.draws import best_arm, q_arms, q_response, select_arm
from bayesdtr.regimes import Regime, as_regime

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = ["compare", "differences", "predict_outcome", "prob_better", "values_of"]


def _reshape(post: DTRPosterior, flat: np.ndarray) -> np.ndarray:
    return flat.reshape((post.chains, post.draws) + flat.shape[1:])


def _coords(post: DTRPosterior) -> dict[str, np.ndarray]:
    return {"chain": np.arange(post.chains), "draw": np.arange(post.draws)}


def values_of(
    post: DTRPosterior,
    regimes: dict[str, Regime | str],
    method: str | None,
    crossfit: int | str | None = "auto",
    client: Any = None,
) -> xr.DataArray:
    """Value posteriors of ``regimes`` stacked along a ``regime`` dim: (regime, chain, draw).

    Each is ``post.value(regime, method=method, crossfit=crossfit, client=client)``; the draws
    are joint.
    """
    if not isinstance(regimes, dict) or not regimes:
        raise RegimeError(
            "regimes must be a non-empty dict {label: regime}, e.g. "
            "{'optimal': 'optimal', 'always 1': bd.Regime.static(A1=1, A2=1)}."
        )
    vals = [
        post.value(r, method=method, crossfit=crossfit, client=client) for r in regimes.values()
    ]  # type: ignore[arg-type]
    return xr.concat(vals, dim=xr.DataArray(list(regimes), dims="regime", name="regime")).rename(
        "value"
    )


def differences(
    post: DTRPosterior,
    regimes: dict[str, Regime | str],
    *,
    method: Literal["q", "ipw", "aipw"] = "q",
) -> xr.DataArray:
    """Pairwise value differences V(regime) - V(regime_other): dims (regime, regime_other, chain, draw).

    All regimes share the posterior draws and the Bayesian-bootstrap weights, so the
    differences are draws of the joint posterior.
    """
    v = values_of(post, regimes, method)
    other = v.rename(regime="regime_other")
    return (v - other).transpose("regime", "regime_other", "chain", "draw").rename("difference")


def compare(
    post: DTRPosterior,
    regimes: dict[str, Regime | str],
    *,
    method: Literal["q", "ipw", "aipw"] = "q",
    hdi_prob: float = HDI_PROB,
    crossfit: int | Literal["auto"] | None = "auto",
    client: Any = None,
) -> pd.DataFrame:
    """Compare regimes by their value posteriors.

    ``crossfit`` and ``client`` are passed to :meth:`DTRPosterior.value`: learned rules
    (``"optimal"``, ``post.rule()``) are valued by sample splitting unless ``crossfit=0``;
    ``client`` runs the values' blocks of draws on a dask cluster (only without sample splitting).

    Returns
    -------
    pandas.DataFrame
        One row per regime (in the given order): posterior ``mean``, ``sd``, the HDI,
        ``p_best`` (P(regime has the highest value); a draw in which several regimes tie
        for the highest value counts 1/t for each of the t tied regimes, so identical
        regimes share it evenly), ``expected_regret``
        (E[max_r V(r) - V(regime)], against the per-draw best), and ``p_better_than_first``
        (P(V(regime) > V(first regime))). See :func:`differences` for the joint draws.

    Notes
    -----
    ``"optimal"`` is the per-draw argmax, which nearly dominates any fixed regime draw by
    draw: its P(best) against static regimes is close to 1 by construction, and with
    ``method="q"`` its value is optimistic when the outcome models are wrong. Compare with
    ``method="aipw"``, or, in simulations, with ``scenario.true_value(post.rule())``.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> scn = bd.scenario("two_stage_cont")
    >>> df = scn.sample(300, seed=1)
    >>> stages = [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...           bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")]
    >>> post = bd.DTRModel(df, stages, outcome="Y").fit(draws=200, chains=2, random_seed=1)
    >>> tab = compare(post, {"always": bd.Regime.static(A1=1, A2=1), "never": bd.Regime.static(A1=0, A2=0)})
    >>> list(tab.columns)[:3]
    ['mean', 'sd', 'hdi94_lb']
    """
    import arviz as az

    check_probability(hdi_prob, "hdi_prob=", FitError)
    v = values_of(post, regimes, method, crossfit, client)
    flat = v.values.reshape(len(regimes), -1)
    best = flat.max(axis=0)
    tied = flat == best[None, :]
    share = tied / tied.sum(axis=0, keepdims=True)  # a tie splits the draw evenly
    lab = f"hdi{round(hdi_prob * 100)}"
    rows = []
    for i, name in enumerate(regimes):
        lo, hi = np.asarray(az.hdi(flat[i], prob=hdi_prob)).ravel()[:2]
        rows.append(
            {
                "regime": name,
                "mean": flat[i].mean(),
                "sd": flat[i].std(ddof=1),
                f"{lab}_lb": float(lo),
                f"{lab}_ub": float(hi),
                "p_best": float(np.mean(share[i])),
                "expected_regret": float(np.mean(best - flat[i])),
                "p_better_than_first": float(np.mean(flat[i] > flat[0])) if i else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("regime")


# ------------------------------------------------------------------ patient level
def predict_outcome(
    post: DTRPosterior, regime: Regime | str, data: pd.DataFrame | None = None
) -> xr.DataArray:
    r"""Posterior predictive of each unit's return (rewards + final outcome) under ``regime``.

    For draw s, :math:`G^{*(s)} = Q_1^{d,(s)}(H_1, d_1(H_1)) + \varepsilon^{(s)}` with
    Gaussian noise whose SD is the stage-1 residual SD (pseudo-outcomes ``"predictive"`` and
    ``"augmented"`` keep the later stages' noise in them), or the root sum of squares of the
    stages' residual SDs (``"mean"``, whose pseudo-outcomes drop it). A Bernoulli outcome is
    drawn as Bernoulli(Q_1) (Q_1 is then a probability). ``data=None`` predicts for the observed units from their
    baseline history; ``data`` gives new stage-1 histories.

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, obs).
    """
    if post.design.event is not None:
        raise FitError(
            f"predict_outcome is not available for a censored survival outcome "
            f"(family={post.design.family!r}): the stage-1 model describes the total time only "
            "through the working model. Use post.value(regime, horizon=tau)."
        )
    reg = as_regime(regime)
    ind = post.induction_for(reg)
    sd = post.design.stages[0]
    if sd.n_units != post.design.n and data is None:
        raise FitError("predict_outcome needs stage 1 to apply to every unit.")
    rows, Xm, Xc, g, feas = post.rows(1, data)
    rng = np.random.default_rng(post.child_seed(f"predict/{reg.name}"))
    idx = np.arange(post.n_samples)
    q = q_response(
        q_arms(sd, ind.fits[0], idx, Xm, Xc, g, post.child_seed("newgroup/0")), ind.family(0)
    )
    if reg.follows_optimal(sd.treatment):
        mean = best_arm(q, feas)[1]
    else:
        mean = select_arm(q, regime_codes(reg, sd, rows, feas))
    if post.design.family == "bernoulli":
        draw = (rng.random(mean.shape) < np.clip(mean, 0.0, 1.0)).astype(float)
    else:
        if post.settings.propagation == "mean":
            # pseudo-outcomes drop later stages' noise: add it back, following the ancestors
            var = np.zeros(post.n_samples)
            anc = idx
            for k, f in enumerate(ind.fits):
                var += f.sigma[anc] ** 2  # type: ignore[index]
                if k < ind.K - 1:
                    anc = f.ancestor[anc]  # type: ignore[index]
        else:
            var = ind.fits[0].sigma ** 2  # type: ignore[operator]
        draw = mean + np.sqrt(var)[:, None] * rng.standard_normal(mean.shape)
    return xr.DataArray(
        _reshape(post, draw),
        dims=("chain", "draw", "obs"),
        coords={**_coords(post), "obs": post.design.obs_labels(rows)},
        name=f"predicted[{reg.name}]",
    )


def prob_better(
    post: DTRPosterior,
    regime_a: Regime | str,
    regime_b: Regime | str,
    data: pd.DataFrame | None = None,
) -> pd.Series:
    """P(G under regime_a > G under regime_b) for each unit (posterior predictive)."""
    a = predict_outcome(post, regime_a, data)
    b = predict_outcome(post, regime_b, data)
    out = (a > b).mean(("chain", "draw")).to_series()
    out.name = "prob_better"
    return out
