r"""Treatment regimes: one decision rule per stage.

A regime :math:`d = (d_1, \dots, d_K)` maps each unit's history at stage k to an arm. bayesdtr
knows four kinds, all represented by :class:`Regime`:

- ``Regime.static(A1=1, A2=0)``: everyone gets the same arm at each stage;
- ``Regime.dynamic({"A1": fn, ...})``: ``fn(df)`` returns one arm label per row of ``df``;
- ``Regime.threshold(stage="A1", column="x1", cutoff=0, above=1, below=0)``;
- ``Regime.optimal()`` (or the string ``"optimal"``): the per-draw argmax of the Q-functions.

Regimes that cover different stages are combined with ``|``; a stage may also be given the
string ``"optimal"`` to follow the argmax there.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.exceptions import RegimeError

__all__ = ["Regime", "as_regime", "OPTIMAL"]

#: Marker of a stage that follows the (per-draw) optimal rule.
OPTIMAL = "optimal"

Rule = Callable[[pd.DataFrame], Any] | str


class Regime:
    """A dynamic treatment regime: one rule per stage.

    Build regimes with the constructors :meth:`static`, :meth:`dynamic`, :meth:`threshold` and
    :meth:`optimal`; combine partial regimes with ``|``.

    Parameters
    ----------
    rules : mapping of treatment column to rule
        Each rule is ``"optimal"`` or a callable ``fn(df) -> arm labels`` (one per row).
    name : str or None
        Label used in tables.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> import pandas as pd
    >>> d = bd.Regime.threshold(stage="A1", column="x1", cutoff=0.0, above=1, below=0)
    >>> d = d | bd.Regime.static(A2=1)
    >>> d.assign("A1", pd.DataFrame({"x1": [-1.0, 2.0]}))
    array([0, 1])
    >>> d.covers(["A1", "A2"])
    True
    """

    def __init__(self, rules: Mapping[str, Rule] | None, *, name: str | None = None) -> None:
        if rules is not None and not isinstance(rules, Mapping):
            raise RegimeError(
                f"Regime rules must be a dict {{treatment column: rule}}; got "
                f"{type(rules).__name__}. Use Regime.static(A1=...) or Regime.dynamic({{...}})."
            )
        self._rules: dict[str, Rule] | None = None if rules is None else dict(rules)
        if self._rules is not None:
            for stage, rule in self._rules.items():
                if not isinstance(stage, str):
                    raise RegimeError(
                        f"Regime stages must be treatment column names (str); got {stage!r}."
                    )
                if not (callable(rule) or (isinstance(rule, str) and rule == OPTIMAL)):
                    raise RegimeError(
                        f"Regime rule for stage {stage!r} must be a callable df -> arm labels or "
                        f"the string 'optimal'; got {rule!r}. For a fixed arm use "
                        "Regime.static(...)."
                    )
        if name is not None and not isinstance(name, str):
            raise RegimeError(
                f"Regime name= must be a string (the label used in tables) or None; got "
                f"{type(name).__name__} {name!r:.40}. Pass e.g. name='treat if x1 > 0'."
            )
        self.name = name or self._default_name()
        # what each stage's rule is, for :attr:`key`: a definition where the constructor knows one
        # (static arm, threshold), else the rule object itself (compared by identity)
        self._rule_keys: dict[str, Hashable] = {
            stage: ("optimal",) if isinstance(rule, str) else rule for stage, rule in (self._rules or {}).items()
        }
        #: How an estimated rule was learned from a posterior ("map" or "mean"; None for a rule
        #: given by the user). Cross-fitting re-learns such a rule on each fold the same way.
        self.learned: str | None = None

    # ----------------------------------------------------------------- constructors
    @classmethod
    def optimal(cls) -> Regime:
        """The per-draw optimal regime (argmax of Q_k over feasible arms at every stage)."""
        return cls(None, name="optimal")

    @classmethod
    def static(cls, *, name: str | None = None, **arms: Any) -> Regime:
        """Give every unit the same arm at each named stage.

        ``name`` (a string) labels the regime in tables; the default lists the arms.

        Examples
        --------
        >>> import bayesdtr as bd
        >>> bd.Regime.static(A1="MR", A2="CD").name
        'static(A1=MR, A2=CD)'
        """
        if name is not None and not isinstance(name, str):
            raise RegimeError(
                f"Regime.static(name=...) must be a string or None; got {type(name).__name__} "
                f"{name!r:.40}. (To give a stage called 'name' an arm, use "
                "Regime.dynamic({'name': lambda df: ...}).)"
            )
        if not arms:
            raise RegimeError(
                "Regime.static() needs at least one stage=arm pair, e.g. Regime.static(A1=1, A2=0)."
            )
        for stage, arm in arms.items():
            if arm is None or np.ndim(arm) != 0:
                raise RegimeError(
                    f"Regime.static({stage}=...) needs one arm label; got {arm!r}. For an arm "
                    "that varies by unit use Regime.dynamic({...}) or Regime.threshold(...)."
                )
        rules = {stage: _constant_rule(arm) for stage, arm in arms.items()}
        reg = cls(rules, name=name or "static(" + ", ".join(f"{k}={v}" for k, v in arms.items()) + ")")
        reg._static_arms = dict(arms)
        for stage, arm in arms.items():
            reg._rule_keys[stage] = _definition(("static", type(arm).__name__, _scalar(arm)), reg._rule_keys[stage])
        return reg

    @classmethod
    def dynamic(cls, rules: Mapping[str, Rule], *, name: str | None = None) -> Regime:
        """A regime from arbitrary rules ``{treatment: fn(df) -> arm labels or "optimal"}``."""
        if not isinstance(rules, Mapping) or not rules:
            raise RegimeError(
                "Regime.dynamic(rules) needs a non-empty dict {treatment column: callable}; "
                f"got {rules!r}."
            )
        return cls(rules, name=name)

    @classmethod
    def threshold(
        cls,
        *,
        stage: str,
        column: str,
        cutoff: float,
        above: Any,
        below: Any,
        name: str | None = None,
    ) -> Regime:
        """Give ``above`` where ``df[column] > cutoff`` and ``below`` elsewhere, at one stage.

        ``cutoff`` must be a finite real number; a history whose ``column`` is missing is an
        error when the rule is applied, not a silent ``below``.
        """
        if (
            isinstance(cutoff, bool)
            or not isinstance(cutoff, int | float | np.integer | np.floating)
            or not np.isfinite(cutoff)
        ):
            raise RegimeError(
                f"Regime.threshold(cutoff=...) must be a finite real number; got "
                f"{type(cutoff).__name__} {cutoff!r:.40}. For a categorical column use "
                "Regime.dynamic({stage: lambda df: ...})."
            )
        for arg, val in (("stage", stage), ("column", column)):
            if not isinstance(val, str):
                raise RegimeError(f"Regime.threshold({arg}=...) must be a column name (str); got {val!r:.40}.")
        if (above is None or np.ndim(above) != 0) or (below is None or np.ndim(below) != 0):
            raise RegimeError(
                f"Regime.threshold(above=..., below=...) need one arm label each; got {above!r:.40} "
                f"and {below!r:.40}."
            )

        def rule(df: pd.DataFrame) -> np.ndarray:
            if column not in df.columns:
                raise RegimeError(
                    f"Threshold rule for stage {stage!r} uses column {column!r}, which is not in "
                    f"the data; available columns: {list(df.columns)}."
                )
            x = df[column]
            if not pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
                raise RegimeError(
                    f"Threshold rule for stage {stage!r} compares column {column!r} (dtype "
                    f"{x.dtype}) with cutoff {cutoff!r}; the column must be numeric."
                )
            na = x.isna().to_numpy()
            if na.any():
                raise RegimeError(
                    f"Threshold rule for stage {stage!r}: column {column!r} is missing in rows "
                    f"{list(x.index[na])[:8]}; the rule cannot decide for them. Fill them first."
                )
            return np.where(x.to_numpy(dtype=float) > cutoff, above, below)

        reg = cls(
            {stage: rule},
            name=name or f"threshold({stage}: {column} > {cutoff:g} -> {above}, else {below})",
        )
        definition = ("threshold", column, _scalar(cutoff), type(above).__name__, _scalar(above),
                      type(below).__name__, _scalar(below))  # fmt: skip
        reg._rule_keys[stage] = _definition(definition, rule)
        return reg

    # ----------------------------------------------------------------- behaviour
    @property
    def key(self) -> Hashable:
        """A hashable key of what the regime does; posteriors cache values and fits under it.

        Two regimes with the same name whose stages have the same definitions share a key: static
        arms and thresholds are compared by value, other rules (callables) by identity (the key
        holds the rule objects, so they stay alive as long as a cache holds the key). Every
        optimal regime has the key ``("optimal",)``.

        Examples
        --------
        >>> import bayesdtr as bd
        >>> bd.Regime.static(A1=1, A2=0).key == bd.Regime.static(A1=1, A2=0).key
        True
        >>> bd.Regime.static(A1=1, A2=0).key == bd.Regime.static(A1=1, A2=1).key
        False
        """
        if self.is_optimal:
            return ("optimal",)
        return (self.name, self.learned, tuple(sorted(self._rule_keys.items(), key=lambda kv: kv[0])))

    @property
    def is_optimal(self) -> bool:
        """True when every stage follows the optimal rule."""
        return self._rules is None or all(isinstance(r, str) and r == OPTIMAL for r in self._rules.values())

    @property
    def static_arms(self) -> dict[str, Any] | None:
        """The arms of a static regime, else None."""
        return getattr(self, "_static_arms", None)

    def covers(self, treatments: Sequence[str]) -> bool:
        """Whether every treatment in ``treatments`` has a rule."""
        return self._rules is None or all(t in self._rules for t in treatments)

    def check_covers(self, treatments: Sequence[str]) -> None:
        """Raise :class:`RegimeError` unless every stage has a rule and no unknown stage is named."""
        if self._rules is None:
            return
        unknown = [t for t in self._rules if t not in treatments]
        if unknown:
            raise RegimeError(
                f"Regime {self.name!r} names stage(s) {unknown} that are not treatments of the "
                f"model; the treatments are {list(treatments)}."
            )
        missing = [t for t in treatments if t not in self._rules]
        if missing:
            raise RegimeError(
                f"Regime {self.name!r} gives no rule for stage(s) {missing}. Add them, e.g. "
                f"`regime | bd.Regime.static({missing[0]}=...)` or "
                f"`bd.Regime.dynamic({{{missing[0]!r}: 'optimal', ...}})`."
            )

    @property
    def learned_from_data(self) -> bool:
        """Whether the regime is (partly) learned from the data it is valued on: a stage follows
        the optimal rule, or it is an estimated rule from :meth:`DTRPosterior.rule`."""
        if self.learned is not None or self._rules is None:
            return True
        return any(isinstance(r, str) and r == OPTIMAL for r in self._rules.values())

    def follows_optimal(self, treatment: str) -> bool:
        """Whether stage ``treatment`` follows the optimal (argmax) rule."""
        rule = None if self._rules is None else self._rules.get(treatment)
        return self._rules is None or (isinstance(rule, str) and rule == OPTIMAL)

    def assign(self, treatment: str, data: pd.DataFrame) -> np.ndarray:
        """Arm labels that this regime gives at stage ``treatment`` to the rows of ``data``.

        Raises
        ------
        RegimeError
            If the stage follows the optimal rule (which depends on a posterior draw), has no rule,
            or the rule returns the wrong number of labels.
        """
        if self.follows_optimal(treatment):
            raise RegimeError(
                f"Stage {treatment!r} of regime {self.name!r} follows the optimal rule, which is "
                "defined per posterior draw; ask the posterior (e.g. post.optimal_treatment)."
            )
        assert self._rules is not None
        if treatment not in self._rules:
            raise RegimeError(
                f"Regime {self.name!r} gives no rule for stage {treatment!r}; it covers "
                f"{list(self._rules)}."
            )
        rule = self._rules[treatment]
        assert callable(rule)
        try:
            out = rule(data)
        except RegimeError:
            raise
        except Exception as err:
            raise RegimeError(
                f"The rule for stage {treatment!r} of regime {self.name!r} raised "
                f"{type(err).__name__}: {err}. It receives the histories as a DataFrame with the "
                f"data's columns ({list(data.columns)[:12]}) and must return one arm label per row."
            ) from err
        if isinstance(out, pd.DataFrame):
            raise RegimeError(
                f"Rule for stage {treatment!r} of regime {self.name!r} returned a DataFrame; it "
                "must return one arm label per row (a Series, an array or a scalar)."
            )
        if isinstance(out, pd.Series):
            out = _align(out, data, treatment, self.name)
        arr = np.asarray(out)
        if arr.ndim == 0:
            arr = np.repeat(arr, len(data))
        if arr.shape != (len(data),):
            raise RegimeError(
                f"Rule for stage {treatment!r} of regime {self.name!r} returned shape {arr.shape}; "
                f"it must return one arm label per row ({len(data)} rows)."
            )
        return arr

    def __or__(self, other: Regime) -> Regime:
        if not isinstance(other, Regime):
            return NotImplemented
        if self._rules is None or other._rules is None:
            raise RegimeError("Cannot combine the optimal regime with '|'; name its stages instead.")
        overlap = set(self._rules) & set(other._rules)
        if overlap:
            raise RegimeError(
                f"Regimes {self.name!r} and {other.name!r} both give rules for {sorted(overlap)}; "
                "each stage may have one rule."
            )
        merged = Regime({**self._rules, **other._rules}, name=f"{self.name} | {other.name}")
        if self.static_arms is not None and other.static_arms is not None:
            merged._static_arms = {**self.static_arms, **other.static_arms}
        merged._rule_keys = {**self._rule_keys, **other._rule_keys}
        return merged

    def _default_name(self) -> str:
        if self._rules is None:
            return "optimal"
        return "dynamic(" + ", ".join(self._rules) + ")"

    def __repr__(self) -> str:
        return f"Regime({self.name!r})"


def _align(out: pd.Series, data: pd.DataFrame, treatment: str, name: str) -> np.ndarray:
    """A rule's Series, matched to the rows of ``data`` by index label (not by position)."""
    if out.index.equals(data.index):
        return out.to_numpy()
    if out.index.is_unique and data.index.is_unique and len(out) == len(data):
        pos = out.index.get_indexer(data.index)
        if (pos >= 0).all():
            return out.to_numpy()[pos]
    extra = [i for i in out.index if i not in data.index][:5]
    lacking = [i for i in data.index if i not in out.index][:5]
    raise RegimeError(
        f"Rule for stage {treatment!r} of regime {name!r} returned a Series whose index does not "
        f"match the histories' index (labels not in the data: {extra}; rows without a label: "
        f"{lacking}). Series are matched by index label: build it from the DataFrame the rule "
        "receives (e.g. (df.x1 > 0).astype(int)), or return .to_numpy() in row order."
    )


def _scalar(value: Any) -> Any:
    """A plain Python scalar for a numpy scalar or 0-d array (hashable), else ``value``."""
    return value.item() if isinstance(value, np.generic | np.ndarray) else value


def _definition(definition: tuple, rule: Hashable) -> Hashable:
    """``definition`` when it is hashable, else the rule object itself (compared by identity)."""
    try:
        hash(definition)
    except TypeError:
        return rule
    return definition


def _constant_rule(arm: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    def rule(df: pd.DataFrame) -> np.ndarray:
        out = np.empty(len(df), dtype=object if isinstance(arm, str) else type(np.asarray(arm).item()))
        out[:] = arm
        return out

    return rule


def as_regime(regime: Regime | str) -> Regime:
    """Turn ``"optimal"`` or a :class:`Regime` into a :class:`Regime`, else raise."""
    if isinstance(regime, Regime):
        return regime
    if isinstance(regime, str) and regime == OPTIMAL:
        return Regime.optimal()
    raise RegimeError(
        f"regime must be 'optimal' or a bd.Regime (static, dynamic, threshold); got {regime!r}."
    )
