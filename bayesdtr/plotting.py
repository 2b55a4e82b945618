"""Plots of a fitted :class:`~bayesdtr.DTRPosterior`, each with the tidy data it draws.

Every plot ``plot_x(post, ...)`` has a ``plot_x_data(post, ...)`` that returns the tidy
:class:`pandas.DataFrame` it draws, so the numbers behind a figure can be tabulated or redrawn
with another library. Arguments after the posterior (and the regimes) are keyword-only; plots
take ``ax=`` where they draw one panel (a pair of axes for :func:`plot_decision`) and return the
matplotlib axes. Intervals are highest-density intervals of probability
:data:`bayesdtr.constants.HDI_PROB` (94%).

=====================  ==============================================================
plot                   shows
=====================  ==============================================================
:func:`plot_value`     value posteriors of regimes (forest: mean, HDI, P(best))
:func:`plot_decision`  P(arm optimal) and the contrast with its band against one variable
:func:`plot_contrasts` contrast coefficients of each stage (reference-arm zeros left out)
:func:`plot_regret`    regret distribution of each regime (ECDF; its jump at 0 is P(best))
:func:`plot_shrinkage` site-level contrasts against the pooled contrast (hierarchical)
:func:`plot_diagnostics`  trace or rank plots of a stage's draws (arviz-plots)
=====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from bayesdtr.comparison import values_of
from bayesdtr.constants import HDI_PROB
from bayesdtr.exceptions import DataError, FitError, RegimeError, SpecificationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayesdtr.posterior import DTRPosterior
    from bayesdtr.regimes import Regime

__all__ = [
    "plot_value",
    "plot_value_data",
    "plot_decision",
    "plot_decision_data",
    "plot_contrasts",
    "plot_contrasts_data",
    "plot_regret",
    "plot_regret_data",
    "plot_shrinkage",
    "plot_shrinkage_data",
    "plot_diagnostics",
    "plot_diagnostics_data",
]

_METHODS = ("q", "ipw", "aipw")


# --------------------------------------------------------------------------- helpers
def hdi_bounds(x: np.ndarray, prob: float = HDI_PROB) -> tuple[float, float]:
    """HDI of the draws along the last axis of ``x`` (flattened)."""
    import arviz as az

    lo, hi = np.asarray(az.hdi(np.asarray(x, dtype=float).ravel(), prob=prob)).ravel()[:2]
    return float(lo), float(hi)


def _hdi_rows(draws: np.ndarray, prob: float = HDI_PROB) -> np.ndarray:
    """HDIs of each row of ``draws`` (rows, samples) -> (rows, 2)."""
    return np.array([hdi_bounds(r, prob) for r in draws]) if len(draws) else np.zeros((0, 2))


def _check_post(post: Any) -> None:
    # duck-typed: plotting sits above the posterior and must not import it (no import circle)
    if not (hasattr(post, "design") and hasattr(post, "value") and hasattr(post, "fits")):
        raise FitError(
            f"post must be a fitted bd.DTRPosterior (model.fit(...) or bd.load(path)); got {type(post).__name__}."
        )


def _check_regimes(regimes: Any) -> dict[str, Regime | str]:
    if not isinstance(regimes, Mapping) or not regimes:
        raise RegimeError(
            "regimes must be a non-empty dict {label: regime}, e.g. {'optimal': 'optimal', "
            f"'always 1': bd.Regime.static(A1=1, A2=1)}}; got {type(regimes).__name__}."
        )
    return dict(regimes)


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise FitError(f"method={method!r} is not one of {list(_METHODS)}.")


def _check_ax(ax: Any, name: str = "ax") -> None:
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise SpecificationError(f"{name}= must be a matplotlib Axes or None; got {type(ax).__name__}.")


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _arm_colors(arms: Sequence[Any]) -> dict[Any, Any]:
    import matplotlib as mpl

    cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2"])
    return {a: cycle[i % len(cycle)] for i, a in enumerate(arms)}


def _diff(arm: Any, ref: Any) -> str:
    """``"MR − CD"``; labels that start with a minus sign are parenthesized (``"1 − (-1)"``)."""

    def lab(a: Any) -> str:
        t = str(a)
        return f"({t})" if t.startswith("-") else t

    return f"{lab(arm)} − {lab(ref)}"


def _hdi_label(prob: float = HDI_PROB) -> str:
    return f"{prob:.0%} HDI"


# --------------------------------------------------------------------------- value
def plot_value_data(
    post: DTRPosterior, regimes: Mapping[str, Regime | str], *, method: Literal["q", "ipw", "aipw"] = "q"
) -> pd.DataFrame:
    """Tidy data of :func:`plot_value`: one row per regime.

    Columns ``regime``, ``mean``, ``hdi_lb``, ``hdi_ub`` (94% HDI), ``p_best`` and
    ``expected_regret``, from :meth:`DTRPosterior.compare`.
    """
    _check_post(post)
    regimes = _check_regimes(regimes)
    _check_method(method)
    tab = post.compare(regimes, method=method, hdi_prob=HDI_PROB)
    lab = f"hdi{round(HDI_PROB * 100)}"
    out = tab.rename(columns={f"{lab}_lb": "hdi_lb", f"{lab}_ub": "hdi_ub"}).reset_index()
    out.insert(1, "method", method)
    return out[["regime", "method", "mean", "hdi_lb", "hdi_ub", "p_best", "expected_regret"]]


def plot_value(
    post: DTRPosterior,
    regimes: Mapping[str, Regime | str],
    *,
    method: Literal["q", "ipw", "aipw"] = "q",
    ax: Axes | None = None,
) -> Axes:
    """Forest plot of the value posterior of several regimes: mean, 94% HDI and P(best).

    Parameters
    ----------
    post : DTRPosterior
    regimes : dict of str to Regime or "optimal"
        Labelled regimes, drawn top to bottom in the given order.
    method : {"q", "ipw", "aipw"}
        Value estimator (see :meth:`DTRPosterior.value`).
    ax : matplotlib.axes.Axes or None
        Axes to draw on; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> ax = bd.plot_value(post, {"optimal": "optimal", "never": bd.Regime.static(A1=0, A2=0)})
    >>> ax.get_xlabel()
    'value (mean outcome if everyone followed the regime)'
    """
    _check_ax(ax)
    data = plot_value_data(post, regimes, method=method)
    ax = _axes(ax, (7.0, 0.7 * len(data) + 1.6))
    y = np.arange(len(data))[::-1]
    ax.hlines(y, data["hdi_lb"], data["hdi_ub"], color="C0", lw=2.5, label=_hdi_label())
    ax.plot(data["mean"], y, "o", color="C0", ms=7, label="posterior mean")
    ax.set_yticks(y, data["regime"])
    ax.set_ylim(-0.7, len(data) - 0.3)
    # P(best) in a column at the right edge, outside the data
    trans = ax.get_yaxis_transform()
    ax.text(1.02, len(data) - 0.45, "P(best)", transform=trans, ha="left", va="bottom", fontsize="small", weight="bold")
    for yi, p in zip(y, data["p_best"], strict=True):
        ax.text(1.02, yi, f"{p:.2f}", transform=trans, ha="left", va="center", fontsize="small")
    ax.set_xlabel("value (mean outcome if everyone followed the regime)")
    ax.set_title(f"Regime values (method {method!r}): posterior mean and {_hdi_label()}", loc="left")
    ax.grid(axis="x", alpha=0.3)
    return ax


# --------------------------------------------------------------------------- decision
def _reference_profile(frame: pd.DataFrame, reference: Mapping[str, Any] | None) -> dict[str, Any]:
    prof: dict[str, Any] = {}
    for col in frame.columns:
        s = frame[col].dropna()
        if len(s) == 0:
            continue
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            prof[col] = float(s.median()) if pd.api.types.is_float_dtype(s) else s.median()
            if pd.api.types.is_integer_dtype(s) and s.nunique() <= 10:
                prof[col] = s.mode().iloc[0]  # a binary/ordinal code: its most common value
        else:
            prof[col] = s.mode().iloc[0]
    if reference:
        prof.update(reference)
    return prof


def plot_decision_data(
    post: DTRPosterior,
    *,
    stage: int | str,
    x: str,
    data: pd.DataFrame | None = None,
    reference: Mapping[str, Any] | None = None,
    n_grid: int = 60,
) -> pd.DataFrame:
    """Tidy data of :func:`plot_decision`.

    Rows with ``source == "grid"`` vary ``x`` over the range of ``data`` with every other column
    at the reference profile (see :func:`plot_decision`); rows with ``source == "observed"`` are
    the units of ``data`` (default: the units that reach the stage) at their own histories.
    Columns: ``source``, ``obs``, ``x`` (the variable's value), ``arm``, ``p_optimal``, and for
    non-reference arms ``contrast_mean``, ``contrast_lb``, ``contrast_ub`` (94% HDI of
    Q(h, arm) - Q(h, reference); grid rows only have the band).
    """
    _check_post(post)
    sd = post.design.stage(stage)
    if isinstance(n_grid, bool) or not isinstance(n_grid, int | np.integer) or n_grid < 2:
        raise SpecificationError(f"n_grid= must be an integer >= 2; got {n_grid!r}.")
    if data is None:
        frame = post.design.data.iloc[sd.units]
    elif not isinstance(data, pd.DataFrame) or len(data) == 0:
        raise DataError(f"data= must be a non-empty pandas DataFrame of histories; got {type(data).__name__}.")
    else:
        frame = data
    tailoring = sorted(getattr(sd.contrast_spec, "required_variables", set()))
    if not isinstance(x, str) or x not in frame.columns:
        raise DataError(f"x={x!r} is not a column of the data; stage {sd.treatment!r} is tailored by {tailoring}.")
    if x not in tailoring:
        raise SpecificationError(
            f"x={x!r} does not enter stage {sd.treatment!r}'s contrast formula {sd.stage.contrast!r}, "
            f"so P(optimal) does not change with it; choose one of {tailoring}."
        )
    if not pd.api.types.is_numeric_dtype(frame[x]) or pd.api.types.is_bool_dtype(frame[x]):
        raise DataError(f"x={x!r} must be a numeric column to draw a curve against; it has dtype {frame[x].dtype}.")
    if reference is not None:
        if not isinstance(reference, Mapping):
            raise SpecificationError(f"reference= must be a dict {{column: value}} or None; got {type(reference).__name__}.")
        unknown = [c for c in reference if c not in frame.columns]
        if unknown:
            raise DataError(f"reference= names column(s) {unknown} that are not in the data.")
    prof = _reference_profile(frame, reference)
    vals = frame[x].to_numpy(dtype=float)
    uniq = np.unique(vals[np.isfinite(vals)])
    grid_x = uniq if len(uniq) <= n_grid else np.linspace(uniq.min(), uniq.max(), n_grid)
    grid = pd.DataFrame({c: [v] * len(grid_x) for c, v in prof.items()})
    for c in grid.columns:
        if c in frame.columns and isinstance(frame[c].dtype, pd.CategoricalDtype):
            grid[c] = pd.Categorical(grid[c], categories=frame[c].cat.categories)
    grid[x] = grid_x.astype(frame[x].dtype) if pd.api.types.is_integer_dtype(frame[x]) and len(uniq) <= n_grid else grid_x
    ref = sd.arms[0]
    rows = []
    for source, rows_df in (("grid", grid), ("observed", frame)):
        q = post.q_values(sd.treatment, rows_df)  # (chain, draw, obs, arm)
        qv = q.values.reshape(-1, q.sizes["obs"], q.sizes["arm"])
        po = post.prob_optimal(sd.treatment, rows_df) if source == "grid" or data is not None else None
        if po is None:
            po = post.prob_optimal(sd.treatment)
        labels = np.asarray(q["obs"].values) if source == "observed" else np.arange(len(rows_df))
        xv = rows_df[x].to_numpy(dtype=float)
        for j, arm in enumerate(sd.arms):
            block = {
                "source": source,
                "obs": labels,
                "x": xv,
                "arm": [arm] * len(xv),
                "p_optimal": po[arm].to_numpy(),
                "contrast_mean": np.nan,
                "contrast_lb": np.nan,
                "contrast_ub": np.nan,
            }
            if j > 0:
                c = qv[:, :, j] - qv[:, :, 0]
                block["contrast_mean"] = c.mean(axis=0)
                if source == "grid":
                    band = _hdi_rows(c.T)
                    block["contrast_lb"], block["contrast_ub"] = band[:, 0], band[:, 1]
            rows.append(pd.DataFrame(block))
    out = pd.concat(rows, ignore_index=True)
    out.attrs.update(stage=sd.treatment, variable=x, reference_arm=ref, profile={c: v for c, v in prof.items() if c != x})
    return out


def plot_decision(
    post: DTRPosterior,
    *,
    stage: int | str,
    x: str,
    data: pd.DataFrame | None = None,
    reference: Mapping[str, Any] | None = None,
    ax: Sequence[Axes] | None = None,
) -> np.ndarray:
    """The decision at one stage against one tailoring variable: P(arm optimal) and the contrast.

    Top panel: P(arm optimal) for each arm as a curve, with the units of ``data`` as points at
    their own histories (their spread around the curve is the effect of the other covariates).
    Bottom panel: the posterior mean of the contrast Q(h, arm) - Q(h, reference) with its 94%
    HDI band; above 0 favours the arm.

    The curves vary ``x`` over its observed range and hold **every other column at a reference
    profile**: the median of numeric columns, the most common value of integer codes with at
    most 10 levels (e.g. 0/1 indicators) and of non-numeric columns (including the group
    column), computed over ``data`` (default: the units that reach the stage). Override any of
    them with ``reference={"race": 1}``; the profile used is in the figure's footnote.

    Parameters
    ----------
    post : DTRPosterior
    stage : int or str
        Stage number (1-based) or treatment column.
    x : str
        A numeric column in the stage's contrast formula.
    data : pandas.DataFrame or None
        Histories for the points and the reference profile; None: the observed units.
    reference : dict or None
        Values of other columns for the curves.
    ax : pair of matplotlib Axes or None
        Axes for the two panels; a new figure when None.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        The two panels.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> axes = bd.plot_decision(post, stage=1, x="X1")
    >>> axes[0].get_ylabel()
    'P(arm optimal)'
    """
    import matplotlib.pyplot as plt

    if ax is not None:
        if not isinstance(ax, Sequence | np.ndarray) or len(ax) != 2:
            raise SpecificationError(f"ax= must be a pair of matplotlib Axes (top, bottom) or None; got {ax!r:.60}.")
        for a in ax:
            _check_ax(a, "ax")
        axes = np.asarray(ax, dtype=object)
    else:
        _, axes = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True, layout="constrained", height_ratios=[1, 1.2])
    d = plot_decision_data(post, stage=stage, x=x, data=data, reference=reference)
    sd = post.design.stage(stage)
    colors = _arm_colors(sd.arms)
    top, bottom = axes
    grid = d[d["source"] == "grid"]
    obs = d[d["source"] == "observed"]
    arms_to_show = sd.arms if len(sd.arms) > 2 else sd.arms[1:]
    for arm in arms_to_show:
        g = grid[grid["arm"] == arm]
        o = obs[obs["arm"] == arm]
        top.plot(g["x"], g["p_optimal"], color=colors[arm], lw=2, label=f"P({arm} optimal), reference profile")
        top.scatter(o["x"], o["p_optimal"], color=colors[arm], s=12, alpha=0.35, lw=0, label="units at their own history")
    top.axhline(0.5, color="0.5", lw=0.8, ls=":")
    top.set_ylim(-0.03, 1.03)
    top.set_ylabel("P(arm optimal)")
    top.legend(fontsize="small", loc="best", framealpha=0.8)
    top.set_title(f"Stage {sd.position} ({sd.treatment}): decision against {x}", loc="left")
    for arm in sd.arms[1:]:
        g = grid[grid["arm"] == arm]
        bottom.fill_between(g["x"], g["contrast_lb"], g["contrast_ub"], color=colors[arm], alpha=0.25, lw=0, label=_hdi_label())
        bottom.plot(g["x"], g["contrast_mean"], color=colors[arm], lw=2, label=f"{_diff(arm, sd.arms[0])}: posterior mean")
    bottom.axhline(0.0, color="0.3", lw=1)
    arm_text = sd.arms[1] if len(sd.arms) == 2 else "arm"
    bottom.set_ylabel(f"contrast Q({arm_text}) − Q({sd.arms[0]})")
    bottom.set_xlabel(x)
    bottom.legend(fontsize="small", loc="best", framealpha=0.8)
    for a in axes:
        a.grid(alpha=0.3)
    prof = d.attrs["profile"]
    shown = [c for c in sorted(getattr(sd.contrast_spec, "required_variables", set())) if c != x and c in prof]
    if shown:
        text = "other covariates at: " + ", ".join(f"{c} = {_short(prof[c])}" for c in shown)
        bottom.annotate(text, xy=(0, 0), xycoords="axes fraction", xytext=(0, -38), textcoords="offset points", fontsize="x-small", color="0.35", va="top")
    return axes


def _short(v: Any) -> str:
    if isinstance(v, float | np.floating):
        from bayesdtr.rules import format_number

        return format_number(float(v))
    return str(v)


# --------------------------------------------------------------------------- contrasts
def plot_contrasts_data(post: DTRPosterior, *, stage: int | str | None = None) -> pd.DataFrame:
    """Tidy data of :func:`plot_contrasts`: one row per stage, non-reference arm and contrast term.

    Columns ``stage``, ``arm``, ``term``, ``mean``, ``hdi_lb``, ``hdi_ub`` (94% HDI) and
    ``p_positive`` (posterior probability that the coefficient is above 0). The reference arm's
    coefficients are structural zeros and are left out.
    """
    _check_post(post)
    stages = post.design.stages if stage is None else [post.design.stage(stage)]
    rows = []
    for sd in stages:
        psi = post.coef(sd.treatment)["psi"]
        for arm in sd.arm_coord[1:]:
            for term in sd.contrast_terms:
                v = psi.sel(arm=arm, contrast_term=term).values.ravel()
                lo, hi = hdi_bounds(v)
                rows.append(
                    {
                        "stage": sd.treatment,
                        "arm": arm.item() if isinstance(arm, np.generic) else arm,
                        "term": term,
                        "mean": float(v.mean()),
                        "hdi_lb": lo,
                        "hdi_ub": hi,
                        "p_positive": float(np.mean(v > 0)),
                    }
                )
    return pd.DataFrame(rows)


def plot_contrasts(post: DTRPosterior, *, stage: int | str | None = None, ax: Axes | None = None) -> np.ndarray:
    """Forest plot of the stage contrast coefficients ψ (arm vs reference), with 94% HDIs.

    One panel per stage (one panel when ``stage`` is given; then ``ax=`` may be passed). Each
    row is a contrast term of a non-reference arm; the reference arm's zeros are left out.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> len(bd.plot_contrasts(post))
    2
    """
    import matplotlib.pyplot as plt

    _check_ax(ax)
    data = plot_contrasts_data(post, stage=stage)
    stages = list(dict.fromkeys(data["stage"]))
    if ax is not None and len(stages) != 1:
        raise SpecificationError("ax= draws one stage; pass stage= as well, or leave ax=None for all stages.")
    if ax is None:
        heights = [max(1.0, 0.42 * (data["stage"] == s).sum() + 0.9) for s in stages]
        _, axes = plt.subplots(len(stages), 1, figsize=(7.0, sum(heights) + 0.4), layout="constrained", height_ratios=heights, squeeze=False)
        axes = axes[:, 0]
    else:
        axes = np.array([ax], dtype=object)
    for a, st in zip(axes, stages, strict=True):
        d = data[data["stage"] == st]
        sd = post.design.stage(st)
        n_arms = d["arm"].nunique()
        labels = [f"{arm}: {term}" if n_arms > 1 else term for arm, term in zip(d["arm"], d["term"], strict=True)]
        y = np.arange(len(d))[::-1]
        colors = _arm_colors(sd.arms)
        c = [colors[arm] for arm in d["arm"]]
        a.hlines(y, d["hdi_lb"], d["hdi_ub"], colors=c, lw=2.5)
        a.scatter(d["mean"], y, color=c, s=30, zorder=3)
        a.axvline(0, color="0.3", lw=1)
        a.set_yticks(y, labels)
        a.set_ylim(-0.7, len(d) - 0.3)
        arms = ", ".join(str(x) for x in dict.fromkeys(d["arm"]))
        a.set_title(f"Stage {sd.position} ({st}): contrast of {arms} vs {sd.arms[0]} (mean, {_hdi_label()})", loc="left", fontsize="medium")
        a.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("coefficient (outcome units per unit of the term)")
    return axes


# --------------------------------------------------------------------------- regret
def plot_regret_data(
    post: DTRPosterior, regimes: Mapping[str, Regime | str], *, method: Literal["q", "ipw", "aipw"] = "q"
) -> pd.DataFrame:
    """Tidy data of :func:`plot_regret`: one row per regime and posterior draw.

    Columns ``regime``, ``chain``, ``draw``, ``regret``: max over the listed regimes of V minus
    the regime's V, for the same draw (0 where the regime is the best of the draw).
    """
    _check_post(post)
    regimes = _check_regimes(regimes)
    _check_method(method)
    v = values_of(post, regimes, method)  # (regime, chain, draw), joint draws
    regret = v.max("regime") - v
    df = regret.rename("regret").to_dataframe().reset_index()
    df["regime"] = pd.Categorical(df["regime"], categories=list(regimes), ordered=True)
    return df[["regime", "chain", "draw", "regret"]]


def plot_regret(
    post: DTRPosterior,
    regimes: Mapping[str, Regime | str],
    *,
    method: Literal["q", "ipw", "aipw"] = "q",
    ax: Axes | None = None,
) -> Axes:
    """Posterior regret of each regime against the best of the listed regimes, as ECDFs.

    The regret of regime r in draw s is max over the listed regimes of V^(s) minus V_r^(s). Each
    curve is the posterior CDF of a regime's regret: its height at 0 is P(regime is best), and
    the legend gives the expected regret.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> ax = bd.plot_regret(post, {"optimal": "optimal", "never": bd.Regime.static(A1=0, A2=0)})
    >>> ax.get_ylabel()
    'P(regret ≤ r)'
    """
    _check_ax(ax)
    d = plot_regret_data(post, regimes, method=method)
    ax = _axes(ax, (7.0, 4.2))
    for i, (name, g) in enumerate(d.groupby("regime", observed=True, sort=False)):
        r = np.sort(g["regret"].to_numpy())
        ecdf = np.arange(1, len(r) + 1) / len(r)
        ax.step(np.concatenate([[0.0], r]), np.concatenate([[0.0], ecdf]), where="post", lw=2, color=f"C{i}", label=f"{name}  (E[regret] {r.mean():.3g}, P(best) {np.mean(r == 0):.2f})")
    ax.set_xlabel("regret: best listed regime's value − this regime's value")
    ax.set_ylabel("P(regret ≤ r)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Posterior regret ({method})", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right", framealpha=0.9)
    return ax


# --------------------------------------------------------------------------- shrinkage
def plot_shrinkage_data(post: DTRPosterior, *, stage: int | str) -> pd.DataFrame:
    """Tidy data of :func:`plot_shrinkage`: one row per group and non-reference arm, plus pooled rows.

    The contrast of arm a in group g is the mean over the group's units at the stage of
    ``contrast(h)'ψ_a + u_{g,a}`` (its random contrast); the pooled contrast (``group`` is
    ``"pooled"``) is the mean over all the stage's units of ``contrast(h)'ψ_a``. Columns ``group``,
    ``arm``, ``n_units``, ``mean``, ``hdi_lb``, ``hdi_ub``.
    """
    _check_post(post)
    sd = post.design.stage(stage)
    k = sd.position - 1
    fit = post.fits[k]
    if post.design.group is None or fit.group_contrast is None:
        raise SpecificationError(
            "plot_shrinkage needs a hierarchical model with group contrasts: "
            "bd.DTRModel(..., group='site', group_contrast=True). This posterior has "
            + ("no group= column." if post.design.group is None else "random intercepts only (group_contrast=False).")
        )
    ds = post.coef(sd.treatment)
    psi = ds["psi"].values.reshape(post.n_samples, sd.n_arms, -1)  # (S, arm, term)
    codes = post.design.group_codes[sd.units]  # type: ignore[index]
    rows = []
    for j in range(1, sd.n_arms):
        arm = sd.arms[j]
        per_unit = psi[:, j, :] @ sd.X_contrast.T  # (S, units)
        pooled = per_unit.mean(axis=1)
        lo, hi = hdi_bounds(pooled)
        rows.append({"group": "pooled", "arm": arm, "n_units": sd.n_units, "mean": float(pooled.mean()), "hdi_lb": lo, "hdi_ub": hi})
        for g, level in enumerate(post.design.group_levels):
            mask = codes == g
            if not mask.any():
                continue
            site = per_unit[:, mask].mean(axis=1) + fit.group_contrast[:, g, j - 1]
            lo, hi = hdi_bounds(site)
            rows.append({"group": str(level), "arm": arm, "n_units": int(mask.sum()), "mean": float(site.mean()), "hdi_lb": lo, "hdi_ub": hi})
    return pd.DataFrame(rows)


def plot_shrinkage(post: DTRPosterior, *, stage: int | str, ax: Axes | None = None) -> Axes:
    """Group-level (site) contrasts against the pooled contrast, for hierarchical models.

    Each row is a group's average contrast (its units' contrast plus its random contrast) with
    its 94% HDI, sorted by the posterior mean; the vertical line and band are the pooled
    contrast over all units. Partial pooling pulls small groups towards the band. Needs
    ``group=`` and ``group_contrast=True``; one panel per non-reference arm is drawn on ``ax``
    only for two-arm stages (more arms: one colour per arm).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> bd.plot_shrinkage(post, stage=1)
    Traceback (most recent call last):
    ...
    bayesdtr.exceptions.SpecificationError: plot_shrinkage needs a hierarchical model with group contrasts: bd.DTRModel(..., group='site', group_contrast=True). This posterior has no group= column.
    """
    _check_ax(ax)
    d = plot_shrinkage_data(post, stage=stage)
    sd = post.design.stage(stage)
    sites = d[d["group"] != "pooled"]
    ax = _axes(ax, (7.0, 0.32 * sites["group"].nunique() * max(1, sd.n_arms - 1) + 1.8))
    colors = _arm_colors(sd.arms)
    order = sites.groupby("group")["mean"].mean().sort_values().index.tolist()
    pos = {g: i for i, g in enumerate(order)}
    n_contrast = sd.n_arms - 1
    for j, arm in enumerate(sd.arms[1:]):
        off = (j - (n_contrast - 1) / 2) * 0.25
        s = sites[sites["arm"] == arm]
        y = np.array([pos[g] for g in s["group"]]) + off
        ax.hlines(y, s["hdi_lb"], s["hdi_ub"], color=colors[arm], lw=2)
        ax.scatter(s["mean"], y, color=colors[arm], s=25, zorder=3, label=f"{_diff(arm, sd.arms[0])}: group (mean, {_hdi_label()})")
        p = d[(d["group"] == "pooled") & (d["arm"] == arm)].iloc[0]
        ax.axvspan(p["hdi_lb"], p["hdi_ub"], color=colors[arm], alpha=0.12, lw=0)
        ax.axvline(p["mean"], color=colors[arm], ls="--", lw=1.2, label=f"{_diff(arm, sd.arms[0])}: pooled over all units")
    counts = sites.drop_duplicates("group").set_index("group")["n_units"]
    ax.set_yticks(range(len(order)), [f"{g} (n={counts[g]})" for g in order])
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(f"average contrast Q(arm) − Q({sd.arms[0]})")
    ax.set_ylabel(post.design.group or "group")
    ax.set_title(f"Stage {sd.position} ({sd.treatment}): group contrasts and the pooled contrast", loc="left")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(0.0, 1.06), ncols=2, frameon=False)
    return ax


# --------------------------------------------------------------------------- diagnostics
def _diagnostics_dataset(post: DTRPosterior, stage: int | str):
    from bayesdtr.diagnostics import summary_dataset

    sd = post.design.stage(stage)
    return sd, summary_dataset(post, sd.position - 1)


def plot_diagnostics_data(post: DTRPosterior, *, stage: int | str) -> pd.DataFrame:
    """Tidy data of :func:`plot_diagnostics`: one row per parameter, chain and draw.

    Columns ``parameter`` (e.g. ``psi[MR, x1]``), ``chain``, ``draw``, ``value``; the reference
    arm's structural zeros and the ancestor index are left out.
    """
    _check_post(post)
    _, ds = _diagnostics_dataset(post, stage)
    frames = []
    for name, var in ds.data_vars.items():
        extra = [d for d in var.dims if d not in ("chain", "draw")]
        df = var.to_dataframe(name="value").reset_index()
        if extra:
            df["parameter"] = [f"{name}[{', '.join(str(r[d]) for d in extra)}]" for _, r in df[extra].iterrows()]
        else:
            df["parameter"] = name
        frames.append(df[["parameter", "chain", "draw", "value"]])
    return pd.concat(frames, ignore_index=True)


def plot_diagnostics(
    post: DTRPosterior,
    *,
    stage: int | str,
    kind: Literal["trace", "rank"] = "trace",
    var_names: Sequence[str] | None = None,
) -> Figure:
    """Trace (with marginal densities) or rank plots of one stage's draws, drawn by arviz-plots.

    ``kind="trace"`` uses :func:`arviz_plots.plot_trace_dist`, ``"rank"`` :func:`arviz_plots.plot_rank`
    (rank ECDFs with a simultaneous envelope: a chain outside it has not mixed). For a stage fitted
    by multiple imputation, each chain's draws run through the imputations in turn. Closed-form
    stages (conjugate, robust) draw independently, so their plots show white noise.

    Parameters
    ----------
    post : DTRPosterior
    stage : int or str
    kind : {"trace", "rank"}
    var_names : list of str or None
        Parameters to show (default: ``psi``, ``sigma``, the group SDs and ``beta``, as many
        as fit in 20 trace or 40 rank panels; group-level vectors only on request).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> fig = bd.plot_diagnostics(post, stage=2, kind="rank")
    >>> len(fig.axes) > 1
    True
    """
    import arviz_plots as azp
    import xarray as xr

    _check_post(post)
    if kind not in ("trace", "rank"):
        raise SpecificationError(f"kind={kind!r} is not one of ['trace', 'rank'].")
    sd, ds = _diagnostics_dataset(post, stage)
    limit = 20 if kind == "trace" else 40  # a trace plot draws two panels per parameter

    def n_panels(names) -> int:
        return sum(int(np.prod([ds.sizes[d] for d in ds[v].dims if d not in ("chain", "draw")])) for v in names)

    if var_names is None:
        # the treatment effects first; group-level vectors (one panel per group) only on request
        chosen: list[str] = []
        for name in ("psi", "sigma", "group_contrast_sd", "group_sd", "beta"):
            if name in ds.data_vars and n_panels([*chosen, name]) <= limit:
                chosen.append(name)
        ds = ds[chosen]
    else:
        if isinstance(var_names, str) or not isinstance(var_names, Sequence):
            raise SpecificationError(f"var_names= must be a list of parameter names; got {var_names!r}.")
        unknown = [v for v in var_names if v not in ds.data_vars]
        if unknown:
            raise SpecificationError(f"var_names= has unknown parameter(s) {unknown}; stage {sd.treatment!r} has {list(ds.data_vars)}.")
        ds = ds[list(var_names)]
        panels = n_panels(list(ds.data_vars))
        if panels > limit:
            raise SpecificationError(
                f"var_names={list(var_names)} needs {panels} {kind} panels for stage {sd.treatment!r}, "
                f"more than {limit}; pass fewer names (the stage has {list(ds.data_vars)})."
            )
    tree = xr.DataTree.from_dict({"posterior": ds})
    panels = n_panels(list(ds.data_vars))
    if kind == "trace":
        size = {"figsize": (10.0, 1.5 * panels + 1.0), "layout": "constrained"}
        pc = azp.plot_trace_dist(tree, backend="matplotlib", compact=False, figure_kwargs=size)
    else:
        rows = int(np.ceil(panels / 4))
        size = {"figsize": (12.0, 2.6 * rows + 0.6), "layout": "constrained"}
        pc = azp.plot_rank(tree, backend="matplotlib", figure_kwargs=size)
    fig = pc.viz["figure"].item()
    fig.suptitle(f"Stage {sd.position} ({sd.treatment}): {kind} plots ({post.fits[sd.position - 1].engine})")
    return fig
