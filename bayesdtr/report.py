"""A self-contained HTML report of a fitted :class:`~bayesdtr.DTRPosterior`.

:func:`write_report` writes one HTML file with every figure embedded as a base64 PNG and no
external resource (no scripts, fonts or style sheets to fetch), so it can be mailed or archived.
Its sections, in order, are :data:`SECTIONS`: the data and model specification; sampling
diagnostics (problems in red); the stage contrasts; the estimated optimal rule in words with
its value; the regime comparison; and a short plain-language summary.

:func:`render_report` returns the HTML text; :meth:`DTRPosterior.report` is a thin wrapper of
:func:`write_report`, which a command line (``bayesdtr report posterior.nc``) can call as is.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesdtr.constants import HDI_PROB, SAMPLED_ENGINES
from bayesdtr.exceptions import FitError, RegimeError, SpecificationError

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior
    from bayesdtr.regimes import Regime

__all__ = ["SECTIONS", "render_report", "write_report", "default_regimes"]

#: Section headings of the report, in order (each is an ``<h2>`` with the given id).
SECTIONS: dict[str, str] = {
    "specification": "Data and model specification",
    "diagnostics": "Sampling diagnostics",
    "contrasts": "Stage contrasts",
    "rule": "The estimated optimal rule and its value",
    "comparison": "Regime comparison",
    "summary": "Summary in plain language",
}

#: Static regimes are added to the default comparison only up to this many.
MAX_STATIC = 16

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1000px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; font-size: 0.85em; white-space: pre-wrap; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
.problem { color: #b00020; font-weight: 600; } .bad { color: #b00020; font-weight: 600; background: #fde8ec; }
.ok { color: #1b5e20; } .muted { color: #666; font-size: 0.9em; }
nav ol { columns: 2; } .summary li { margin: 0.35em 0; }
"""


# --------------------------------------------------------------------------- pieces
def _esc(x: Any) -> str:
    return html.escape(str(x))


def _figure_html(fig: Any, alt: str) -> str:
    """A matplotlib figure as an embedded PNG ``<img>`` (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _table_html(df: pd.DataFrame, *, index: bool = True, bad: pd.DataFrame | None = None) -> str:
    """A small DataFrame as an HTML table; cells flagged in ``bad`` are red."""
    cols = list(df.columns)
    head = "".join(f'<th class="text">{_esc(df.index.name or "")}</th>' for _ in [0] if index)
    head += "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = []
    for i, (idx, row) in enumerate(df.iterrows()):
        cells = f'<td class="text">{_esc(idx)}</td>' if index else ""
        for j, c in enumerate(cols):
            v = row[c]
            text = _fmt(v)
            klass = "text" if isinstance(v, str) else ""
            if bad is not None and bool(bad.iloc[i, j]):
                klass += " bad"
            cells += f'<td class="{klass.strip()}">{_esc(text)}</td>'
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            return "–"
        a = abs(float(v))
        return f"{v:.3g}" if (a >= 1e4 or (0 < a < 1e-3)) else f"{v:.3f}".rstrip("0").rstrip(".") if a < 1 else f"{v:.2f}"
    return str(v)


def _hdi(x: np.ndarray) -> tuple[float, float]:
    from bayesdtr.plotting import hdi_bounds as hdi

    return hdi(x)


def default_regimes(post: DTRPosterior) -> dict[str, Regime | str]:
    """Regimes the report compares when none are given.

    The optimal regime, plus every static regime (all combinations of each stage's arms, at
    most :data:`MAX_STATIC`) when every earlier stage refits without NUTS: a static regime's
    value refits the stages before the last, which is instant where the conjugate or Gibbs
    engine accepts the stage (also after ``engine="mcmc"``) but costs a multiple-imputation
    NUTS refit per stage otherwise (Bernoulli and survival stages, user priors). Static regimes
    that some unit cannot follow (feasible sets) are left out.
    """
    from bayesdtr.inference.engines import refit_engines
    from bayesdtr.regimes import Regime

    out: dict[str, Regime | str] = {"optimal": "optimal"}
    earlier = refit_engines(post.design, post.settings, post.priors)[:-1]
    if any(engine.name == "mcmc" for engine in earlier):
        return out
    stages = post.design.stages
    combos = list(itertools.product(*[sd.arms for sd in stages]))
    if len(combos) > MAX_STATIC:
        return out
    for combo in combos:
        if any(not sd.feasible[:, sd.arms.index(a)].all() for sd, a in zip(stages, combo, strict=True)):
            continue
        label = "always " + str(combo[0]) if len(set(combo)) == 1 else " then ".join(str(a) for a in combo)
        out[label] = Regime.static(**{sd.treatment: a for sd, a in zip(stages, combo, strict=True)})
    return out


def _tailoring_column(post: DTRPosterior, sr: Any) -> str | None:
    """The numeric data column that drives a stage's decision most (for its decision plot)."""
    sd = post.design.stage(sr.treatment)
    cols = getattr(sd.contrast_spec, "required_variables", set())
    data = post.design.data
    ranked = [t for t, _ in sr.tailoring if t in cols and t in data.columns]
    numeric = [t for t in ranked if pd.api.types.is_numeric_dtype(data[t]) and not pd.api.types.is_bool_dtype(data[t])]
    continuous = [t for t in numeric if data[t].nunique() > 10]
    return (continuous or numeric or [None])[0]


# --------------------------------------------------------------------------- sections
def _section_specification(post: DTRPosterior) -> str:
    d = post.design
    s = post.settings
    rows = []
    for sd, fit in zip(d.stages, post.fits, strict=True):
        st = sd.stage
        prop = st.propensity
        rows.append(
            {
                "stage": f"{sd.position}: {sd.treatment}",
                "arms": ", ".join(str(a) for a in sd.arms) + f" (reference {sd.arms[0]})",
                "units": sd.n_units,
                "main": st.main,
                "contrast": st.contrast,
                "propensity": "none" if prop is None else str(prop),
                "feasible": "rule" if st.feasible is not None else "all arms",
                "engine": fit.engine,
            }
        )
    tab = pd.DataFrame(rows).set_index("stage")
    facts = [
        f"{d.n} units; outcome <code>{_esc(d.outcome)}</code> ({_esc(d.family)}, larger is better)",
        f"group: <code>{_esc(d.group)}</code> ({len(d.group_levels)} levels)" if d.group else "no group effects",
        f"unit id column: <code>{_esc(d.id)}</code>" if d.id else "units labelled by the data's row index",
        f"{s.chains} chains × {s.draws} draws per stage; propagation <code>{_esc(s.propagation)}</code>; "
        f"seed {post.random_seed}; fitted in {post.fit_seconds:.1f} s",
    ]
    return (
        "<ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>"
        + _table_html(tab)
        + "<details><summary>The model as printed</summary><pre>" + _esc(str(post.model)) + "</pre></details>"
    )


def _section_diagnostics(post: DTRPosterior) -> str:
    from bayesdtr.diagnostics import ESS_MIN, RHAT_MAX, diagnostics_message
    from bayesdtr.plotting import plot_diagnostics

    tab = post.diagnostics()
    mcmc = tab["engine"].isin(SAMPLED_ENGINES)
    bad = pd.DataFrame(False, index=tab.index, columns=tab.columns)
    bad["divergences"] = mcmc & (tab["divergences"] > 0)
    bad["max_r_hat"] = mcmc & (tab["max_r_hat"] > RHAT_MAX)
    bad["min_ess_bulk"] = mcmc & (tab["min_ess_bulk"] < ESS_MIN)
    bad["min_ess_tail"] = mcmc & (tab["min_ess_tail"] < ESS_MIN)
    msg = diagnostics_message(post)
    if msg:
        head = f'<p class="problem">{_esc(msg)}</p>'
    elif mcmc.any():
        head = f'<p class="ok">No divergences; R-hat ≤ {RHAT_MAX} and ESS ≥ {ESS_MIN} for every sampled parameter.</p>'
    else:
        head = '<p class="ok">Every stage was drawn in closed form (independent, exact draws): there is no sampler to check.</p>'
    out = head + _table_html(tab, index=False, bad=bad.reset_index(drop=True))
    out += f'<p class="muted">Red: divergences, R-hat above {RHAT_MAX} or ESS below {ESS_MIN} (MCMC fits only).</p>'
    for sd, fit in zip(post.design.stages, post.fits, strict=True):
        if fit.engine in SAMPLED_ENGINES:
            fig = plot_diagnostics(post, stage=sd.treatment, kind="rank")
            out += f"<h3>Stage {sd.position} ({_esc(sd.treatment)}): rank plots</h3>" + _figure_html(fig, f"rank plots of stage {sd.treatment}")
    return out


def _section_contrasts(post: DTRPosterior) -> str:
    from bayesdtr.plotting import plot_contrasts, plot_contrasts_data, plot_shrinkage

    bart = [sd.treatment for sd, fit in zip(post.design.stages, post.fits, strict=True) if fit.q_model is not None]
    if bart:  # sums of trees have no contrast coefficients
        return (
            f"<p>Stage(s) {_esc(', '.join(bart))} have nonparametric (BART) Q-functions, which have no "
            "contrast coefficients: see the estimated rule and P(optimal) per unit below.</p>"
        )
    axes = plot_contrasts(post)
    data = plot_contrasts_data(post).set_index("stage")
    out = (
        "<p>Coefficients ψ of the contrast Q(h, arm) − Q(h, reference): a positive value favours the "
        f"arm as the term grows. Points are posterior means, bars {HDI_PROB:.0%} HDIs.</p>"
        + _figure_html(axes[0].figure, "stage contrast coefficients")
        + _table_html(data)
    )
    for sd, fit in zip(post.design.stages, post.fits, strict=True):
        if fit.group_contrast is not None:  # hierarchical treatment effects: show the pooling
            out += f"<h3>Stage {sd.position} ({_esc(sd.treatment)}): group contrasts</h3>"
            out += _figure_html(plot_shrinkage(post, stage=sd.treatment).figure, f"group contrasts of stage {sd.treatment}")
    return out


def _section_rule(post: DTRPosterior, rule: Any) -> str:
    from bayesdtr.plotting import plot_decision

    val = post.value("optimal")
    v = val.values.ravel()
    lo, hi = _hdi(v)
    out = (
        f"<p>Value of the learned rule (mean outcome if everyone followed it): "
        f"<b>{v.mean():.3g}</b> ({HDI_PROB:.0%} HDI {lo:.3g} to {hi:.3g}). Estimand: "
        f"{_esc(val.attrs.get('estimand', ''))}; method {_esc(str(val.attrs.get('method', '')))}.</p>"
        "<pre>" + _esc(rule.text()) + "</pre>"
    )
    for sr in rule.summaries():
        x = _tailoring_column(post, sr)
        if x is None:
            out += f'<p class="muted">Stage {sr.position}: no numeric tailoring variable to plot against.</p>'
            continue
        axes = plot_decision(post, stage=sr.treatment, x=x)
        out += f"<h3>Stage {sr.position} ({_esc(sr.treatment)}): the decision against {_esc(x)}</h3>"
        out += _figure_html(axes[0].figure, f"decision plot of stage {sr.treatment} against {x}")
    return out


def _section_comparison(post: DTRPosterior, regimes: Mapping[str, Any]) -> tuple[str, pd.DataFrame]:
    from bayesdtr.plotting import plot_regret, plot_value

    tab = post.compare(dict(regimes))
    out = "<p>Values of the regimes under the same posterior draws and Bayesian-bootstrap weights (method “q”).</p>"
    out += _table_html(tab)
    if len(regimes) > 1:
        out += _figure_html(plot_value(post, regimes).figure, "regime values")
        out += _figure_html(plot_regret(post, regimes).figure, "regret of each regime")
    else:
        out += '<p class="muted">Only the optimal regime is listed; pass regimes= to compare others.</p>'
    out += (
        '<p class="muted">The “optimal” regime is the argmax per posterior draw, so its P(best) is close '
        "to 1 by construction; compare the rule a clinic would adopt with post.value(post.rule(), method=\"aipw\").</p>"
    )
    return out, tab


def _section_summary(post: DTRPosterior, rule: Any, tab: pd.DataFrame) -> str:
    from bayesdtr.diagnostics import diagnostics_message

    items = [sr.sentence for sr in rule.summaries()]
    v = post.value("optimal").values.ravel()
    lo, hi = _hdi(v)
    items.append(
        f"Following the optimal rule, the mean outcome would be {v.mean():.3g} ({HDI_PROB:.0%} HDI {lo:.3g} to {hi:.3g})."
    )
    others = tab.drop(index="optimal", errors="ignore")
    if len(others):
        best = others["mean"].idxmax()
        items.append(
            f"Of the other regimes compared, {best} has the highest value ({others.loc[best, 'mean']:.3g}); "
            f"its expected regret against the best regime of each draw is {others.loc[best, 'expected_regret']:.3g}."
        )
    msg = diagnostics_message(post)
    items.append(f'<span class="problem">{_esc(msg)}</span>' if msg else "The sampling diagnostics show no problem.")
    lis = "".join(f"<li>{i if i.startswith('<span') else _esc(i)}</li>" for i in items)
    return f'<ul class="summary">{lis}</ul>'


# --------------------------------------------------------------------------- public
def render_report(
    post: DTRPosterior, *, regimes: Mapping[str, Regime | str] | None = None, title: str | None = None
) -> str:
    """The report as one HTML string (see :func:`write_report`)."""
    import matplotlib.pyplot as plt

    if not (hasattr(post, "design") and hasattr(post, "value") and hasattr(post, "fits")):
        raise SpecificationError(f"post must be a fitted bd.DTRPosterior; got {type(post).__name__}.")
    if post.design.event is not None:
        raise FitError(
            f"post.report() does not cover censored survival outcomes yet (family={post.design.family!r}, "
            f"event={post.design.event_column!r}): their values need a horizon. Use "
            "post.value(regime, horizon=tau) for values; post.coef(stage), post.prob_optimal(stage) "
            "and post.summary() work as usual."
        )
    if regimes is None:
        regimes = default_regimes(post)
    elif not isinstance(regimes, Mapping) or not regimes:
        raise RegimeError(
            "regimes= must be None or a non-empty dict {label: regime}, e.g. "
            f"{{'optimal': 'optimal', 'always 1': bd.Regime.static(A1=1, A2=1)}}; got {regimes!r:.80}."
        )
    if title is not None and not isinstance(title, str):
        raise SpecificationError(f"title= must be a string or None; got {type(title).__name__}.")
    title = title or f"bayesdtr report: {len(post.design.stages)}-stage regime for {post.design.outcome!r}"
    t0 = time.perf_counter()
    rule = post.rule()
    with plt.rc_context({"figure.max_open_warning": 0}):
        parts = {
            "specification": _section_specification(post),
            "diagnostics": _section_diagnostics(post),
            "contrasts": _section_contrasts(post),
            "rule": _section_rule(post, rule),
        }
        parts["comparison"], tab = _section_comparison(post, regimes)
        parts["summary"] = _section_summary(post, rule, tab)
    from bayesdtr._version import __version__

    nav = "<nav><ol>" + "".join(f'<li><a href="#{k}">{_esc(v)}</a></li>' for k, v in SECTIONS.items()) + "</ol></nav>"
    body = "".join(f'<section><h2 id="{k}">{_esc(SECTIONS[k])}</h2>{parts[k]}</section>' for k in SECTIONS)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p class=\"muted\">bayesdtr {__version__}, {stamp}; "
        f"{_esc(repr(post))}; report built in {time.perf_counter() - t0:.1f} s.</p>"
        f"{nav}{body}</body></html>\n"
    )


def write_report(
    post: DTRPosterior,
    path: str | os.PathLike[str],
    *,
    regimes: Mapping[str, Regime | str] | None = None,
    title: str | None = None,
) -> Path:
    """Write a self-contained HTML report of ``post`` to ``path``.

    Parameters
    ----------
    post : DTRPosterior
        A fitted (or loaded) posterior.
    path : str or path-like
        The ``.html`` file to write; its folder must exist.
    regimes : dict of str to Regime or "optimal", or None
        Regimes of the comparison section; None: see :func:`default_regimes`.
    title : str or None
        Heading of the report.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    SpecificationError
        If ``path`` is not a path, or its folder does not exist.
    RegimeError
        If ``regimes`` is not a non-empty dict of regimes.
    FitError
        For a censored survival outcome (its values need a horizon; not in the report yet).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> out = bd.write_report(post, pathlib.Path(tempfile.mkdtemp()) / "report.html")
    >>> "Regime comparison" in out.read_text()
    True
    """
    if not isinstance(path, str | os.PathLike):
        raise SpecificationError(f"path= must be a file path (str or pathlib.Path); got {type(path).__name__}.")
    target = Path(path)
    if not target.parent.exists():
        raise SpecificationError(f"path={str(path)!r}: its folder {str(target.parent)!r} does not exist; create it first.")
    if target.is_dir():
        raise SpecificationError(f"path={str(path)!r} is a folder; give a file name such as 'report.html'.")
    text = render_report(post, regimes=regimes, title=title)
    target.write_text(text, encoding="utf-8")
    return target
