r"""Methods of a simulation study: the one callable protocol every estimator goes through.

A *method* is any callable

.. code-block:: python

    f(df, scenario, seed_sequence, *, stages, level, **options) -> MethodResult

called once per replicate by :func:`bayesdtr.simulation_study`:

- ``df`` is the replicate's simulated data frame;
- ``scenario`` is the scenario object (use it for ``outcome``, ``group``, ``family``; never for
  the truth);
- ``seed_sequence`` is a :class:`numpy.random.SeedSequence` of this method in this replicate
  (derived from the study's seed, the replicate number and the method's label, so adding a
  method never changes the others' numbers); derive every random number from it;
- ``stages`` is the list of :class:`~bayesdtr.Stage` the study analyses the data with (the
  scenario's default, or ``simulation_study(stages=...)``);
- ``level`` is the nominal coverage of the intervals to return (e.g. 0.95).

It returns a :class:`MethodResult`: ``estimates`` maps estimand names (``"value_optimal"``,
``"value_rule"`` and :func:`psi_name` of each contrast coefficient) to ``(estimate, lower,
upper)``, and optionally ``rule`` (the estimated rule as a :class:`~bayesdtr.Regime`, whose true
value, regret and correct decisions the study then scores) and ``decisions`` (arm labels per
stage for the rows of ``df``; computed from ``rule`` when absent).

:class:`BayesFit` turns fit settings into such a callable, and the baselines registry
(:data:`bayesdtr.baselines.registry.BASELINES`) holds the frequentist ones, so the runner knows
nothing about any particular estimator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.exceptions import SpecificationError
from bayesdtr.simulate.protocol import MethodResult, equal_tailed, model_for, psi_name, seed_int

__all__ = [
    "BayesFit",
    "MethodResult",
    "equal_tailed",
    "psi_name",
    "resolve_methods",
    "seed_int",
]

#: Keys of a bayesdtr fit spec that are not arguments of ``DTRModel.fit``.
_SPEC_KEYS = ("value", "value_rule", "rule")


class BayesFit:
    """A bayesdtr fit as a study method: ``DTRModel(...).fit(**settings)`` plus value queries.

    Parameters
    ----------
    spec : dict
        Keyword arguments of :meth:`bayesdtr.DTRModel.fit` (``propagation``, ``robust``,
        ``engine``, ``draws``, ``chains``, ...) plus three optional keys: ``value`` (keyword
        arguments of :meth:`~bayesdtr.DTRPosterior.value` for both value estimands, e.g.
        ``{"method": "aipw"}``), ``value_rule`` (overrides for the value of the estimated rule
        only) and ``rule`` (keyword arguments of :meth:`~bayesdtr.DTRPosterior.rule`, e.g.
        ``{"kind": "mean"}``).
    label : str
        The method's label (for error messages).

    Notes
    -----
    Intervals are equal-tailed at the study's ``level``: ``psi`` from ``post.coef(stage)``,
    ``value_optimal`` from ``post.value("optimal", **value)``, ``value_rule`` from
    ``post.value(post.rule(**rule), **value_rule)``. The fit's ``random_seed`` comes from the
    method's seed sequence.

    Scoring the estimated rule calls ``scenario.true_value(rule)``, which for scenarios without
    an exact formula (e.g. ``two_stage_cont``) is a Monte Carlo over a million units: 2.6 s a
    replicate with the default ``post.rule()`` (``"map"`` over 200 draws), 0.5 s with
    ``rule={"kind": "mean"}``. Drop ``value_rule``, ``rule_value`` and ``regret`` from the
    estimands to skip it.

    Examples
    --------
    >>> f = BayesFit({"propagation": "augmented", "value": {"method": "aipw"}}, label="aug")
    >>> f.fit_kwargs["propagation"]
    'augmented'
    """

    def __init__(self, spec: Mapping[str, Any], *, label: str = "bayes") -> None:
        from bayesdtr.model import DTRModel

        allowed = [p for p in inspect.signature(DTRModel.fit).parameters if p != "self"]
        allowed = [p for p in allowed if p != "random_seed"]
        bad = sorted(set(spec) - set(allowed) - set(_SPEC_KEYS))
        if bad:
            raise SpecificationError(
                f"methods[{label!r}] has unknown fit setting(s) {bad}. Allowed: "
                f"{allowed + list(_SPEC_KEYS)} (random_seed is set by the study). Fix the "
                "key, or name a baseline with the string 'qlearning' or {'baseline': ...}."
            )
        for key in _SPEC_KEYS:
            if key in spec and not isinstance(spec[key], Mapping):
                raise SpecificationError(
                    f"methods[{label!r}][{key!r}] must be a dict of keyword arguments, e.g. "
                    f"{{'method': 'aipw'}}; got {spec[key]!r}."
                )
        self.label = label
        self.spec = dict(spec)
        self.fit_kwargs = {"progressbar": False, "warn": False}
        self.fit_kwargs |= {k: v for k, v in spec.items() if k not in _SPEC_KEYS}
        self.value_kwargs = dict(spec.get("value", {}))
        self.value_rule_kwargs = self.value_kwargs | dict(spec.get("value_rule", {}))
        self.rule_kwargs = dict(spec.get("rule", {}))

    def __call__(
        self,
        df: pd.DataFrame,
        scenario: Any,
        seed_sequence: np.random.SeedSequence,
        *,
        stages: list,
        level: float,
    ) -> MethodResult:
        post = model_for(df, scenario, stages).fit(random_seed=seed_int(seed_sequence), **self.fit_kwargs)
        est: dict[str, tuple[float, float, float]] = {}
        for sd in post.design.stages:
            psi = post.coef(sd.treatment)["psi"]
            for arm in psi.coords["arm"].values[1:]:
                for term in psi.coords["contrast_term"].values:
                    draws = psi.sel(arm=arm, contrast_term=term).values
                    est[psi_name(sd.treatment, term, arm)] = equal_tailed(draws, level)
        est["value_optimal"] = equal_tailed(post.value("optimal", **self.value_kwargs).values, level)
        rule = post.rule(**self.rule_kwargs)
        est["value_rule"] = equal_tailed(post.value(rule, **self.value_rule_kwargs).values, level)
        return MethodResult(estimates=est, rule=rule)

    def __repr__(self) -> str:
        return f"BayesFit({self.spec!r})"


def describe(label: str, spec: Any) -> Any:
    """A JSON-able description of a method spec (for a store's manifest)."""
    if isinstance(spec, str):
        return {"baseline": spec}
    if isinstance(spec, BayesFit):
        return describe(label, spec.spec)
    if isinstance(spec, Mapping):
        return {k: (v if isinstance(v, str | int | float | bool | type(None)) else describe(k, v) if isinstance(v, Mapping) else repr(v)) for k, v in sorted(spec.items())}
    fn = spec.func if isinstance(spec, partial) else spec
    return {"callable": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"}


def _check_callable(label: str, fn: Callable) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        sig.bind(None, None, None, stages=[], level=0.95)
    except TypeError as err:
        raise SpecificationError(
            f"methods[{label!r}] is a callable whose signature {sig} cannot be called as "
            f"f(df, scenario, seed_sequence, *, stages, level) ({err}). Add the keyword-only "
            "parameters stages and level (or **kwargs) and return a MethodResult."
        ) from None


def resolve_methods(methods: Any) -> dict[str, Callable[..., MethodResult]]:
    """Turn the ``methods=`` argument of a study into ``{label: callable}``.

    Accepted forms: a dict ``{label: spec}``, or a list of specs (a string is its own label;
    others are labelled ``method1``, ``method2``, ...). A spec is a baseline name (a key of
    :data:`~bayesdtr.baselines.registry.BASELINES`), a dict ``{"baseline": name, **options}``, a
    dict of bayesdtr fit settings (:class:`BayesFit`), or a callable (see the module docstring).

    Raises
    ------
    SpecificationError
        For an empty or malformed ``methods``, a bad label, an unknown baseline or fit
        setting, or a callable with the wrong signature.

    Examples
    --------
    >>> sorted(resolve_methods({"bayes": {}, "ols": "qlearning"}))
    ['bayes', 'ols']
    """
    from bayesdtr.baselines.registry import BASELINES

    if isinstance(methods, str | bytes) or not isinstance(methods, Mapping | list | tuple) or not methods:
        raise SpecificationError(
            f"methods must be a non-empty dict {{label: spec}} or list of specs; got {methods!r}. "
            "Example: methods={'bayes': {}, 'bayes_aug': {'propagation': 'augmented'}, "
            "'ols': 'qlearning'}."
        )
    if not isinstance(methods, Mapping):
        items = {}
        for i, spec in enumerate(methods, 1):
            label = spec if isinstance(spec, str) else f"method{i}"
            if label in items:
                raise SpecificationError(
                    f"methods lists {label!r} twice; give a dict {{label: spec}} with distinct labels."
                )
            items[label] = spec
        methods = items
    out: dict[str, Callable[..., MethodResult]] = {}
    for label, spec in methods.items():
        if not isinstance(label, str) or not label or any(c in label for c in "\n\r\t,"):
            raise SpecificationError(
                f"method labels must be non-empty strings without commas or line breaks; got "
                f"{label!r}. Use e.g. 'bayes_aug'."
            )
        if isinstance(spec, str) or (isinstance(spec, Mapping) and "baseline" in spec):
            name = spec if isinstance(spec, str) else spec["baseline"]
            if name not in BASELINES:
                raise SpecificationError(
                    f"methods[{label!r}] names the baseline {name!r}, which is not registered. "
                    f"Registered baselines: {sorted(BASELINES)}. For a bayesdtr fit pass a dict "
                    "of fit settings, e.g. {'propagation': 'mean'}."
                )
            opts = {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "baseline"}
            fn: Callable[..., MethodResult] = partial(BASELINES[name], **opts) if opts else BASELINES[name]
        elif isinstance(spec, Mapping):
            fn = BayesFit(spec, label=label)
        elif callable(spec):
            _check_callable(label, spec)
            fn = spec
        else:
            raise SpecificationError(
                f"methods[{label!r}] must be a baseline name, a dict of fit settings or a "
                f"callable f(df, scenario, seed_sequence, *, stages, level); got {spec!r}."
            )
        out[label] = fn
    return out
