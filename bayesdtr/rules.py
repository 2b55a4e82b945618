r"""Readable estimated rules: the rule of each stage in words and math, with P(optimal).

:meth:`DTRPosterior.rule` returns an :class:`EstimatedRule`, a :class:`~bayesdtr.Regime` whose
``print()`` shows, per stage, the linear decision rule of the posterior-mean contrasts, e.g.

    MR if 1.64·race + 0.40·parentBMI − 0.12·baselineBMI > 14.5, otherwise CD

(for more than two arms: the arm with the largest linear score, scores listed), how often the
posterior draws agree with the rule's arm for each unit, and the share of units whose
recommendation is clear-cut (P(optimal) > 0.9). :meth:`EstimatedRule.table` gives the
recommended arm and P(optimal) per unit and stage.

With a two-arm stage and contrast :math:`\psi_0 + \sum_j \psi_j x_j` (arm vs reference), the
posterior-mean rule gives the non-reference arm where :math:`\sum_j \bar\psi_j x_j > -\bar\psi_0`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from bayesdtr.data.design import StageDesign
from bayesdtr.data.validate import check_positive_int
from bayesdtr.exceptions import DataError, FitError, SpecificationError
from bayesdtr.inference.draws import best_arm, posterior_mean, q_arms
from bayesdtr.regimes import Regime, Rule

if TYPE_CHECKING:
    from bayesdtr.posterior import DTRPosterior

__all__ = ["EstimatedRule", "PointRule", "StageRule", "estimate_rule", "stage_rule", "format_number", "linear_text"]

#: P(optimal) above which a unit's recommendation counts as clear-cut.
CLEAR_CUT = 0.9


def format_number(v: float) -> str:
    """Three significant digits, without scientific notation for ordinary magnitudes."""
    if v == 0 or not np.isfinite(v):
        return f"{v:g}"
    if 1e-3 <= abs(v) < 1e5:
        digits = max(0, 2 - int(np.floor(np.log10(abs(v)))))
        text = f"{abs(v):.{digits}f}"
    else:
        text = f"{abs(v):.3g}"
    return ("−" if v < 0 else "") + text


def linear_text(coefs: Sequence[float], terms: Sequence[str]) -> str:
    """``"1.64·race − 0.4·x"`` from coefficients and term names (intercept written alone)."""
    parts: list[str] = []
    for c, t in zip(coefs, terms, strict=True):
        mag = format_number(abs(float(c)))
        piece = mag if t == "Intercept" else f"{mag}·{t}"
        if not parts:
            parts.append(("−" if c < 0 else "") + piece)
        else:
            parts.append(("− " if c < 0 else "+ ") + piece)
    return " ".join(parts) if parts else "0"


@dataclass
class StageRule:
    """The estimated rule of one stage, summarized (see :func:`stage_rule`)."""

    treatment: str
    position: int
    arms: list[Any]
    reference: Any
    n_units: int
    formula: str
    scores: dict[Any, str]
    rule_arm: pd.Series
    prob_optimal: pd.DataFrame
    agreement: pd.Series
    formula_agreement: float
    clear_cut: float
    tailoring: list[tuple[str, float]] = field(default_factory=list)
    sentence: str = ""

    def lines(self, kind: str) -> list[str]:
        """Text lines of this stage for ``print(rule)``."""
        arms = ", ".join(f"{a!s}{' (reference)' if a == self.reference else ''}" for a in self.arms)
        out = [f"Stage {self.position} ({self.treatment}): {self.n_units} units, arms {arms}"]
        out.append(f"  rule:  {self.formula}")
        if len(self.arms) > 2:
            out.extend(f"          {a!s}: {s}" for a, s in self.scores.items())
        src = "posterior-mean Q" if self.formula == BART_RULE else "posterior-mean contrasts"
        if kind == "map":
            out.append(
                f"         ({src}; gives the rule's arm to {self.formula_agreement:.0%} of the units, "
                "the rule itself takes the arm most often optimal across draws)"
            )
        else:
            out.append(f"         ({src})")
        counts = self.rule_arm.value_counts()
        out.append(
            "  recommended: "
            + ", ".join(
                f"{a!s} for {int(counts.get(a, 0))} ({counts.get(a, 0) / max(len(self.rule_arm), 1):.0%})"
                for a in self.arms
            )
        )
        ag = self.agreement
        out.append(
            f"  P(optimal) of the recommended arm (agreement of the draws with the rule, per unit): "
            f"median {ag.median():.2f}, min {ag.min():.2f}; > {CLEAR_CUT} for {self.clear_cut:.0%} of units, "
            f"not for {1 - self.clear_cut:.0%}"
        )
        return out


def _rule_formula(
    sd: StageDesign, psi: np.ndarray, group_contrast: bool
) -> tuple[str, dict[Any, str]]:
    """Formula text of the posterior-mean rule; psi is (arm, contrast_term) with a zero reference row."""
    terms = sd.contrast_terms
    arms = sd.arms
    extra = " + the group's own effect" if group_contrast else ""
    feas = " among the unit's feasible arms" if sd.stage.feasible is not None else ""
    if len(arms) == 2:
        coefs = psi[1]
        a1, a0 = arms[1], arms[0]
        if "Intercept" in terms:
            j0 = terms.index("Intercept")
            rest = [(c, t) for i, (c, t) in enumerate(zip(coefs, terms, strict=True)) if i != j0]
            cut = -float(coefs[j0])
        else:
            rest, cut = list(zip(coefs, terms, strict=True)), 0.0
        if not rest:
            better = a1 if -cut > 0 else a0
            return (
                f"{better!s} for every unit{extra} (contrast {a1!s} − {a0!s} = {format_number(-cut)})",
                {},
            )
        lhs = linear_text([c for c, _ in rest], [t for _, t in rest])
        return f"{a1!s} if {lhs}{extra} > {format_number(cut)}, otherwise {a0!s}", {}
    scores = {arms[0]: "0 (reference)"}
    for j in range(1, len(arms)):
        scores[arms[j]] = linear_text(psi[j], terms) + extra
    return f"the arm with the largest score{feas} (ties to the first listed):", scores


def _tailoring(post: DTRPosterior, sd: StageDesign, psi: np.ndarray) -> list[tuple[str, float]]:
    """Terms ranked by |mean contrast coefficient| x SD of the term over the stage's units."""
    sdev = sd.X_contrast.std(axis=0)
    weight = np.abs(psi[1:]).max(axis=0) * sdev
    order = np.argsort(-weight)
    return [
        (sd.contrast_terms[i], float(weight[i])) for i in order if sdev[i] > 0 and weight[i] > 0
    ]


def _sentence(
    sd: StageDesign, psi: np.ndarray, rule_arm: pd.Series, agreement: pd.Series, tailoring
) -> str:
    """A plain-language sentence about the stage's recommendation."""
    pos = sd.position
    n = len(rule_arm)
    terms = sd.contrast_terms
    counts = rule_arm.value_counts()
    if len(counts) == 1:
        arm = counts.index[0]
        return (
            f"At stage {pos}, {arm!s} is recommended for every unit (P(optimal) median "
            f"{agreement.median():.2f}, above {CLEAR_CUT} for {np.mean(agreement > CLEAR_CUT):.0%})."
        )
    non_int = [t for t in terms if t != "Intercept"]
    if len(sd.arms) == 2 and len(non_int) == 1 and psi[1, terms.index(non_int[0])] != 0:
        t = non_int[0]
        b = float(psi[1, terms.index(t)])
        b0 = float(psi[1, terms.index("Intercept")]) if "Intercept" in terms else 0.0
        cut = -b0 / b
        side = "above" if b > 0 else "below"
        units = rule_arm == sd.arms[1]
        return (
            f"At stage {pos}, {sd.arms[1]!s} is recommended for units with {t} {side} "
            f"{format_number(cut)} and {sd.arms[0]!s} otherwise ({int(units.sum())} of {n} units get "
            f"{sd.arms[1]!s}; P(optimal) of the recommended arm: median {agreement.median():.2f})."
        )
    parts = ", ".join(
        f"{a!s} for {int(counts.get(a, 0))} of {n} units" for a in sd.arms if counts.get(a, 0)
    )
    top = [t for t, _ in tailoring[:2]]
    if len(sd.arms) == 2 and top:
        words = [f"{'higher' if psi[1, terms.index(t)] > 0 else 'lower'} {t}" for t in top]
        drive = f"; {sd.arms[1]!s} is favoured by {' and '.join(words)}"
    else:
        drive = f"; the decision depends most on {', '.join(top)}" if top else ""
    return (
        f"At stage {pos}, the rule recommends {parts}{drive}. P(optimal) of the recommended arm is "
        f"above {CLEAR_CUT} for {np.mean(agreement > CLEAR_CUT):.0%} of units (median {agreement.median():.2f})."
    )


#: The rule text of a BART stage (sums of trees have no closed-form rule).
BART_RULE = "nonparametric (BART Q-function): no formula; see the recommended arm per unit in rule.table()"


def stage_rule(rule: EstimatedRule, stage: int | str) -> StageRule:
    """Summarize the estimated rule at ``stage`` on the units that reach it."""
    post = rule.post
    sd = post.design.stage(stage)
    k = sd.position - 1
    bart = post.fits[k].q_model is not None  # a BART stage: no coefficients, no rule formula
    if bart:
        psi = np.zeros((sd.n_arms, sd.X_contrast.shape[1]))
    else:
        psi = post.coef(sd.treatment)["psi"].mean(("chain", "draw")).values
    rows = post.design.data.iloc[sd.units]
    labels = pd.Index(post.design.obs_labels(rows), name="obs")
    arm = pd.Series(np.asarray(rule.assign(sd.treatment, rows)), index=labels, name=sd.treatment)
    po = post.prob_optimal(sd.treatment)
    po.index = labels
    codes = np.array([sd.arms.index(a.item() if isinstance(a, np.generic) else a) for a in arm])
    agreement = pd.Series(
        po.to_numpy()[np.arange(len(codes)), codes], index=labels, name="agreement"
    )
    if bart:
        # the argmax of the posterior-mean Q (the forests' average) on the same units
        one = np.zeros(1, dtype=np.int64)
        mean_q = q_arms(sd, posterior_mean(post.fits[k]), one, sd.X_main, sd.X_contrast, None)
        lin_codes = best_arm(mean_q, sd.feasible)[0][0]
        formula, scores, tail = BART_RULE, {}, []
    else:
        # the posterior-mean linear rule on the same units (with feasible sets; no group effects)
        lin = psi @ sd.X_contrast.T  # (arm, unit)
        lin_codes = best_arm(lin[:, None, :], sd.feasible)[0][0]
        group_contrast = post.fits[k].group_contrast is not None
        formula, scores = _rule_formula(sd, psi, group_contrast)
        tail = _tailoring(post, sd, psi)
    return StageRule(
        treatment=sd.treatment,
        position=sd.position,
        arms=list(sd.arms),
        reference=sd.arms[0],
        n_units=sd.n_units,
        formula=formula,
        scores=scores,
        rule_arm=arm,
        prob_optimal=po,
        agreement=agreement,
        formula_agreement=float(np.mean(lin_codes == codes)),
        clear_cut=float(np.mean(po.max(axis=1).to_numpy() > CLEAR_CUT)),
        tailoring=tail,
        sentence=_sentence(sd, psi, arm, agreement, tail),
    )


class EstimatedRule(Regime):
    """A point rule estimated from a posterior: a callable :class:`~bayesdtr.Regime` that prints.

    Returned by :meth:`DTRPosterior.rule`; it assigns arms like any regime
    (``scenario.true_value(post.rule())``, ``post.value(post.rule())``). ``print(rule)`` shows per
    stage the rule in words and math and the P(optimal) summaries; :meth:`table` the recommended
    arm and P(optimal) of every unit.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> df = bd.scenario("two_stage_cont").sample(200, seed=1)
    >>> post = bd.DTRModel(df, [bd.Stage("A1", main="X1", contrast="1 + X1"),
    ...     bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2")], outcome="Y"
    ...     ).fit(draws=100, chains=2, random_seed=1, progressbar=False)
    >>> rule = post.rule()
    >>> "Stage 1 (A1)" in str(rule)
    True
    >>> rule.table().columns[:2].tolist()
    ['A1', 'A1: P(optimal)']
    """

    def __init__(
        self, post: DTRPosterior, rules: Mapping[str, Rule], *, kind: str, n_draws: int
    ) -> None:
        super().__init__(rules, name=f"estimated rule ({kind})")
        self.learned = kind  # cross-fitting re-learns the rule on each fold the same way
        self.post = post
        self.kind = kind
        self.n_draws = n_draws
        self._stage_rules: dict[str, StageRule] = {}

    def stage(self, stage: int | str) -> StageRule:
        """The :class:`StageRule` summary of one stage (cached)."""
        sd = self.post.design.stage(stage)
        if sd.treatment not in self._stage_rules:
            self._stage_rules[sd.treatment] = stage_rule(self, sd.treatment)
        return self._stage_rules[sd.treatment]

    def summaries(self) -> list[StageRule]:
        """One :class:`StageRule` per stage, in time order."""
        return [self.stage(t) for t in self.post.design.treatments]

    def table(
        self, data: pd.DataFrame | None = None, *, stages: Sequence[int | str] | None = None
    ) -> pd.DataFrame:
        """Recommended arm and P(optimal) per unit and stage.

        Parameters
        ----------
        data : pandas.DataFrame or None
            Histories to evaluate. None: the observed units (a stage's columns are missing, NaN,
            for units that do not reach it).
        stages : sequence of int or str, or None
            Stages to include. None: every stage whose formula columns ``data`` has (all stages
            when ``data`` is None).

        Returns
        -------
        pandas.DataFrame
            Index ``obs`` (the model's ``id=`` column when given). Per stage ``T``: ``T`` (the
            recommended arm), ``"T: P(optimal)"`` (share of posterior draws in which that arm
            is optimal: the agreement of the rule with the draws) and ``"P(T=a)"`` per arm.

        Raises
        ------
        DataError
            If ``data`` is not a DataFrame or lacks the columns of a requested stage.
        """
        post = self.post
        design = post.design
        if stages is None:
            wanted = list(design.stages)
            if data is not None:
                if not isinstance(data, pd.DataFrame):
                    raise DataError(
                        f"data= must be a pandas DataFrame of histories; got {type(data).__name__}."
                    )
                wanted = [
                    sd for sd in wanted if _stage_columns(sd, design.group) <= set(data.columns)
                ]
                if not wanted:
                    raise DataError(
                        f"data= has none of the stages' formula columns (stage 1 needs "
                        f"{sorted(_stage_columns(design.stages[0], design.group))}); columns seen: {list(data.columns)[:12]}."
                    )
        else:
            if isinstance(stages, str | int) or not isinstance(stages, Sequence):
                raise SpecificationError(
                    f"stages= must be a list of stage numbers or treatment names; got {stages!r}."
                )
            wanted = [design.stage(s) for s in stages]
        index = pd.Index(post.design.obs_labels(design.data if data is None else data), name="obs")
        frames = []
        for sd in wanted:
            if data is None:
                sr = self.stage(sd.treatment)
                arm, po = sr.rule_arm, sr.prob_optimal
            else:
                missing = sorted(_stage_columns(sd, design.group) - set(data.columns))
                if missing:
                    raise DataError(
                        f"data= lacks column(s) {missing} of stage {sd.treatment!r}; add them or leave it out of stages=."
                    )
                arm = pd.Series(np.asarray(self.assign(sd.treatment, data)), index=index)
                po = post.prob_optimal(sd.treatment, data)
                po.index = index
            codes = np.array(
                [sd.arms.index(a.item() if isinstance(a, np.generic) else a) for a in arm]
            )
            block = pd.DataFrame(
                {
                    sd.treatment: pd.Series(arm.to_numpy(), index=arm.index, dtype=object),
                    f"{sd.treatment}: P(optimal)": pd.Series(
                        po.to_numpy()[np.arange(len(codes)), codes], index=arm.index
                    ),
                    **{f"P({sd.treatment}={a!s})": po[a] for a in sd.arms},
                }
            )
            frames.append(block.reindex(index))
        return pd.concat(frames, axis=1)

    def text(self) -> str:
        """The text that ``print(rule)`` shows."""
        how = {
            "map": f"each history gets the arm most often optimal across {self.n_draws} posterior draws",
            "mean": "each history gets the arm that maximizes the posterior-mean Q-function",
        }[self.kind]
        lines = [f"Estimated rule ({self.kind}: {how})"]
        for sr in self.summaries():
            lines.append("")
            lines.extend(sr.lines(self.kind))
        lines.append("")
        lines.append(
            "Per unit: rule.table(); value: post.value(rule); in words: [s.sentence for s in rule.summaries()]."
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython / Jupyter display
        p.text(self.text())


def estimate_rule(post: DTRPosterior, kind: Literal["map", "mean"] = "map", *, max_draws: int = 200) -> EstimatedRule:
    """The point rule of :meth:`DTRPosterior.rule`: per stage a :class:`PointRule` over thinned draws.

    ``"map"`` gives each history the arm most often optimal across at most ``max_draws`` evenly
    spaced posterior draws; ``"mean"`` maximizes the posterior-mean Q-function.

    Raises
    ------
    FitError
        ``kind`` is not ``"map"`` or ``"mean"``, or ``max_draws`` is not a positive integer.
    """
    if kind not in ("map", "mean"):
        raise FitError(f"kind={kind!r} is not one of ['map', 'mean'].")
    check_positive_int(max_draws, "max_draws=", FitError)
    idx = np.unique(np.linspace(0, post.n_samples - 1, min(max_draws, post.n_samples)).astype(int))
    rules = {}
    for k, sd in enumerate(post.design.stages):
        rules[sd.treatment] = PointRule(post, k, sd, idx, kind)
    return EstimatedRule(post, rules, kind=kind, n_draws=len(idx))


class PointRule:
    """Callable rule df -> arm labels of one stage from a posterior (see :func:`estimate_rule`)."""

    def __init__(self, post: DTRPosterior, k: int, sd: StageDesign, idx: np.ndarray, kind: str) -> None:
        self.post, self.k, self.sd, self.idx, self.kind = post, k, sd, idx, kind

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        post, sd = self.post, self.sd
        rows, Xm, Xc, g, feas = post.rows(self.k + 1, df)
        new_groups: np.random.SeedSequence | None = post.child_seed(f"newgroup/{self.k}")
        fit = post.fits[self.k]
        idx = self.idx
        if self.kind == "mean":
            new_groups = None  # a new group's effect at its mean, 0
            # the linear predictor is linear in the parameters: its posterior mean is its value at
            # the posterior means (on the probability scale of a Bernoulli stage, approximately)
            fit = posterior_mean(fit)
            idx = np.zeros(1, dtype=np.int64)
        codes = np.zeros(len(rows), dtype=np.int64)
        step = max(1, 4_000_000 // max(1, len(idx) * sd.n_arms))
        for start in range(0, len(rows), step):
            sl = slice(start, start + step)
            gg = None if g is None else g[sl]
            best = best_arm(q_arms(sd, fit, idx, Xm[sl], Xc[sl], gg, new_groups), feas[sl])[0]
            if self.kind == "mean":
                codes[sl] = best[0]
            else:
                counts = np.stack([np.count_nonzero(best == j, axis=0) for j in range(sd.n_arms)])[:, None, :]
                codes[sl] = best_arm(counts.astype(float), np.ones_like(feas[sl]))[0][0]
        return sd.arm_coord[codes]


def _stage_columns(sd: StageDesign, group: str | None = None) -> set[str]:
    cols: set[str] = set() if group is None else {group}
    for spec in (sd.main_spec, sd.contrast_spec):
        cols |= set(getattr(spec, "required_variables", set()))
    return cols
