"""Model specifications as TOML files, for the command line (``bayesdtr fit --spec SPEC.toml``).

A spec file mirrors the Python API (``bd.DTRModel(df, stages, ...)`` and ``model.fit(...)``)::

    outcome = "y"            # required: the final outcome column
    family = "gaussian"      # optional: "gaussian" | "bernoulli" | "lognormal" | "weibull"
    event = "delta"          # with a survival family: the 0/1 event column (0 = censored)
    id = "id"                # optional: unit id column
    group = "site"           # optional: cluster column (random intercepts)
    group_contrast = false   # optional: also random contrasts per group

    [fit]                    # optional: keyword arguments of model.fit()
    draws = 1000
    chains = 4
    random_seed = 1
    propagation = "modal"
    engine = "auto"

    [[stages]]               # one table per decision, in time order
    treatment = "A1"
    main = "x1"
    contrast = "1 + x1"
    propensity = { CD = 0.5, MR = 0.5 }     # known probabilities, or a formula string
    [[stages]]
    treatment = "A2"
    main = "x1 + x2"
    contrast = "1 + x2"
    propensity = "1 + x1"
    applies = "R == 0"                      # units that reach this stage (DataFrame.query)
    reward = "r2"                           # intermediate outcome column
    feasible = { when = "site == 'B'", arms = ["MR"] }
    censoring = "x1 + A1"                   # dropout before this stage: the censoring model

    [priors]                 # by name, for every stage ...
    sigma = { dist = "HalfNormal", sigma = 2.0 }
    [priors.A2]              # ... or for one stage (its treatment column)
    psi = { dist = "Normal", mu = 0.0, sigma = 1.0 }

``feasible`` restricts the arms of the units that match the query ``when`` to the list ``arms``;
every other unit may get any arm. A list of such tables applies each restriction in turn.
Arm labels are written as in the data; since TOML table keys are strings, a known propensity
of integer arms is written ``propensity = { "-1" = 0.5, "1" = 0.5 }`` and matched to the
data's labels when ``data=`` is given. A prior table needs ``dist`` (a PyMC distribution name);
its other keys are the distribution's parameters (numbers, lists, ``dims``, or a nested prior
table), passed to :class:`pymc_extras.prior.Prior`.

Text in a spec file is code in the same sense as formulas are (formulaic and
``DataFrame.query`` evaluate it): read only spec files you trust.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.spec import KnownPropensity, Stage
from bayesdtr.exceptions import FitError, PriorError, SpecificationError
from bayesdtr.models.priors import PRIOR_NAMES

__all__ = ["load_spec", "parse_spec", "FeasibleWhen", "SPEC_KEYS", "STAGE_KEYS", "FIT_KEYS"]

#: Top-level keys of a spec file.
SPEC_KEYS = (
    "outcome", "family", "event", "group", "group_contrast", "id", "timeline", "fit", "stages", "priors"
)
#: Keys of one ``[[stages]]`` table.
STAGE_KEYS = ("treatment", "main", "contrast", "propensity", "applies", "reward", "feasible", "censoring")
#: Keys of ``[fit]``: the keyword arguments of ``DTRModel.fit`` (the command line owns ``progressbar``).
FIT_KEYS = ("draws", "tune", "chains", "random_seed", "propagation", "engine", "sampler",
            "imputations", "imputation_tune", "robust", "warn", "strict", "chunk_elements")


class FeasibleWhen:
    """A ``feasible=`` rule from a spec table: units matching ``when`` may only get ``arms``.

    Parameters
    ----------
    treatment : str
        The stage's treatment column.
    rules : list of (str, list)
        ``(query, allowed arms)`` pairs, applied in turn.
    stage_arms : list or None
        The stage's arm labels; None takes the labels observed in the data it is called on.

    Examples
    --------
    >>> import pandas as pd
    >>> f = FeasibleWhen("A2", [("R == 1", ["MR"])], ["CD", "MR"])
    >>> f(pd.DataFrame({"R": [0, 1], "A2": ["CD", "MR"]})).values.tolist()
    [[True, True], [False, True]]
    """

    def __init__(self, treatment: str, rules: list[tuple[str, list[Any]]], stage_arms: list[Any] | None) -> None:
        self.treatment, self.rules, self.stage_arms = treatment, rules, stage_arms

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        arms = self.stage_arms
        if arms is None:
            arms = sorted(pd.unique(df[self.treatment].dropna()).tolist())
        out = pd.DataFrame(True, index=df.index, columns=pd.Index(arms, dtype=object))
        for when, allowed in self.rules:
            try:
                mask = np.asarray(df.eval(when), dtype=bool)
            except Exception as err:
                raise SpecificationError(
                    f"stage {self.treatment!r} feasible.when={when!r} could not be evaluated as a "
                    f"DataFrame.query string ({type(err).__name__}: {err}); write a condition on the "
                    f"data's columns {list(df.columns)}, e.g. \"R == 1\"."
                ) from None
            for a in arms:
                if a not in allowed:
                    out.loc[mask, a] = False
        return out

    def __repr__(self) -> str:
        return f"FeasibleWhen({self.treatment!r}, {self.rules!r})"


def _where(path: str, key: str) -> str:
    return f"{path}: {key}"


def _match_label(label: Any, arms: list[Any] | None, where: str) -> Any:
    """The data's arm label spelled ``label`` (TOML keys are strings; data labels may be ints)."""
    if arms is None or label in arms:
        return label
    hits = [a for a in arms if str(a) == str(label)]
    if len(hits) == 1:
        return hits[0]
    raise SpecificationError(
        f"{where}: arm {label!r} is not an arm of the data; the arms are {arms}. "
        "Spell the label as in the data."
    )


def _stage_arms(data: pd.DataFrame | None, treatment: str, applies: Any) -> list[Any] | None:
    if data is None or treatment not in data.columns:
        return None
    sub = data
    if isinstance(applies, str):
        try:
            sub = data.query(applies)
        except Exception:
            return None  # DTRModel reports the bad query with the data's columns
    return sorted(pd.unique(sub[treatment].dropna()).tolist())


def _check_str(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecificationError(f"{where} must be {what} (a non-empty string); got {value!r}. Quote it in the TOML file.")
    return value


def _feasible(value: Any, treatment: str, arms: list[Any] | None, where: str) -> FeasibleWhen:
    tables = value if isinstance(value, list) else [value]
    rules = []
    for t in tables:
        if not isinstance(t, Mapping) or set(t) != {"when", "arms"}:
            raise SpecificationError(
                f"{where} must be a table {{ when = \"<query>\", arms = [<arm>, ...] }} (or a list of "
                f"them) meaning units matching the query may only get those arms; got {t!r}."
            )
        when = _check_str(t["when"], f"{where}.when", "a DataFrame.query string such as \"R == 1\"")
        allowed = t["arms"]
        if not isinstance(allowed, list) or not allowed:
            raise SpecificationError(f"{where}.arms must be a non-empty list of arm labels, e.g. [\"MR\"]; got {allowed!r}.")
        rules.append((when, [_match_label(a, arms, f"{where}.arms") for a in allowed]))
    return FeasibleWhen(treatment, rules, arms)


def _stage(table: Any, i: int, path: str, data: pd.DataFrame | None) -> Stage:
    where = f"{path}: [[stages]] #{i + 1}"
    if not isinstance(table, Mapping):
        raise SpecificationError(f"{where} must be a table ([[stages]] with treatment = ...); got {table!r}.")
    unknown = [k for k in table if k not in STAGE_KEYS]
    if unknown:
        raise SpecificationError(
            f"{where}: unknown key(s) {unknown}; allowed keys are {list(STAGE_KEYS)}. Fix the spelling or remove them."
        )
    if "treatment" not in table:
        raise SpecificationError(
            f"{where} has no treatment; every stage needs treatment = \"<column>\" (keys seen: {list(table)})."
        )
    treatment = _check_str(table["treatment"], f"{where} treatment", "a column name")
    where = f"{path}: stage {treatment!r}"
    kw: dict[str, Any] = {}
    for key in ("main", "contrast", "reward"):
        if key in table:
            kw[key] = _check_str(table[key], f"{where} {key}", "a formula" if key != "reward" else "a column name")
    applies = table.get("applies")
    if applies is not None:
        kw["applies"] = _check_str(applies, f"{where} applies", "a DataFrame.query string such as \"R == 0\"")
    arms = _stage_arms(data, treatment, applies)
    prop = table.get("propensity")
    if isinstance(prop, Mapping):
        probs = {}
        for k, v in prop.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise SpecificationError(f"{where} propensity: probability of arm {k!r} must be a number; got {v!r}.")
            probs[_match_label(k, arms, f"{where} propensity")] = float(v)
        kw["propensity"] = KnownPropensity(probs)
    elif prop is not None:
        kw["propensity"] = _check_str(
            prop, f"{where} propensity", "a formula such as \"1 + x1\", or a table of known probabilities { CD = 0.5, MR = 0.5 }"
        )
    if "feasible" in table:
        kw["feasible"] = _feasible(table["feasible"], treatment, arms, f"{where} feasible")
    if "censoring" in table:
        kw["censoring"] = _check_str(
            table["censoring"], f"{where} censoring", "a right-hand-side formula such as \"1 + x2\""
        )
    return Stage(treatment, **kw)


def _prior(name: str, table: Any, where: str) -> Any:
    from pymc_extras.prior import Prior

    if not isinstance(table, Mapping) or "dist" not in table:
        raise PriorError(
            f"{where} {name} must be a table with dist = \"<PyMC distribution>\" and its parameters, "
            f"e.g. {name} = {{ dist = \"HalfNormal\", sigma = 2.0 }}; got {table!r}."
        )
    params = {k: (_prior(k, v, where) if isinstance(v, Mapping) else v) for k, v in table.items() if k != "dist"}
    try:
        return Prior(table["dist"], **params)
    except Exception as err:  # pymc_extras raises its own errors for unknown names and parameters
        raise PriorError(
            f"{where} {name} = {dict(table)!r} is not a valid prior: {err}. Give a PyMC distribution "
            "name as dist and that distribution's parameters."
        ) from None


def _priors(table: Any, treatments: list[str], path: str) -> dict[str, Any]:
    where = f"{path}: [priors]"
    if not isinstance(table, Mapping):
        raise PriorError(f"{where} must be a table of name = {{ dist = ..., ... }}; got {table!r}.")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in PRIOR_NAMES:
            out[key] = _prior(key, value, where)
        elif key in treatments and isinstance(value, Mapping) and "dist" not in value:
            for name, sub in value.items():
                if name not in PRIOR_NAMES:
                    raise PriorError(
                        f"{path}: [priors.{key}] unknown prior name {name!r}; valid names are {list(PRIOR_NAMES)}."
                    )
                out.setdefault(key, {})[name] = _prior(name, sub, f"{path}: [priors.{key}]")
        else:
            raise PriorError(
                f"{where} unknown prior name {key!r}; valid names are {list(PRIOR_NAMES)}, or a stage's "
                f"treatment {treatments} as [priors.<treatment>] holding such names."
            )
    return out


def parse_spec(
    spec: Mapping[str, Any], *, data: pd.DataFrame | None = None, source: str = "spec"
) -> tuple[list[Stage], dict[str, Any], dict[str, Any]]:
    """Turn a parsed spec (a dict, as from ``tomllib``) into stages and keyword arguments.

    See :func:`load_spec` for the format; ``source`` names the file in error messages.

    Examples
    --------
    >>> stages, model_kw, fit_kw = parse_spec(
    ...     {"outcome": "y", "stages": [{"treatment": "A1", "contrast": "1 + x1"}]})
    >>> stages, model_kw, fit_kw
    ([Stage('A1', main='1', contrast='1 + x1')], {'outcome': 'y'}, {})
    """
    if not isinstance(spec, Mapping):
        raise SpecificationError(f"{source} must be a table of keys {list(SPEC_KEYS)}; got {type(spec).__name__}.")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise SpecificationError(
            f"{source}: unknown top-level key(s) {unknown}; allowed keys are {list(SPEC_KEYS)}. "
            "Fix the spelling, or move the key into its table ([fit], [[stages]], [priors])."
        )
    if "outcome" not in spec:
        raise SpecificationError(f"{source}: no outcome; add outcome = \"<final outcome column>\" at the top.")
    stages_in = spec.get("stages")
    if not isinstance(stages_in, list) or not stages_in:
        raise SpecificationError(
            f"{source}: no stages; add one [[stages]] table per decision, in time order, each with "
            f"treatment = \"<column>\" (got stages = {stages_in!r})."
        )
    stages = [_stage(t, i, source, data) for i, t in enumerate(stages_in)]
    model_kw: dict[str, Any] = {"outcome": _check_str(spec["outcome"], f"{source}: outcome", "a column name")}
    for key in ("family", "event", "group", "id"):
        if key in spec:
            model_kw[key] = _check_str(spec[key], f"{source}: {key}", "a string")
    if "group_contrast" in spec:
        if not isinstance(spec["group_contrast"], bool):
            raise SpecificationError(f"{source}: group_contrast must be true or false; got {spec['group_contrast']!r}.")
        model_kw["group_contrast"] = spec["group_contrast"]
    if "timeline" in spec:
        tl = spec["timeline"]
        if not isinstance(tl, Mapping) or not all(isinstance(v, list) for v in tl.values()):
            raise SpecificationError(
                f"{source}: [timeline] must map \"baseline\" and treatments to lists of columns; got {tl!r}."
            )
        model_kw["timeline"] = {k: list(v) for k, v in tl.items()}
    if "priors" in spec:
        model_kw["priors"] = _priors(spec["priors"], [s.treatment for s in stages], source)
    fit_in = spec.get("fit", {})
    if not isinstance(fit_in, Mapping):
        raise FitError(f"{source}: [fit] must be a table of fit() arguments {list(FIT_KEYS)}; got {fit_in!r}.")
    bad = [k for k in fit_in if k not in FIT_KEYS]
    if bad:
        hint = " (the command line sets progress with --no-progress)" if "progressbar" in bad else ""
        raise FitError(f"{source}: [fit] unknown key(s) {bad}; allowed keys are {list(FIT_KEYS)}{hint}.")
    return stages, model_kw, dict(fit_in)


def load_spec(
    path: str | os.PathLike[str], *, data: pd.DataFrame | None = None
) -> tuple[list[Stage], dict[str, Any], dict[str, Any]]:
    """Read a TOML model specification (format in :mod:`bayesdtr.spec_file`).

    Parameters
    ----------
    path : str or path-like
        The ``.toml`` file.
    data : pandas.DataFrame or None
        The data the spec will be fitted to. When given, arm labels written in the file
        (known-propensity keys, ``feasible`` arms) are matched to the data's labels, so that
        ``"1"`` in the file means the integer arm 1. Columns and formulas are checked by
        ``DTRModel``.

    Returns
    -------
    stages : list of Stage
    model_kwargs : dict
        Keyword arguments of :class:`~bayesdtr.DTRModel` (``outcome``, ``family``, ``event``, ``group``,
        ``group_contrast``, ``id``, ``timeline``, ``priors``).
    fit_kwargs : dict
        Keyword arguments of :meth:`~bayesdtr.DTRModel.fit` from the ``[fit]`` table.

    Raises
    ------
    SpecificationError
        The file is missing or not valid TOML, or has an unknown key, a stage without a
        treatment, or a value of the wrong type.
    PriorError
        A prior has an unknown name, distribution or parameter.
    FitError
        ``[fit]`` has an unknown key.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "spec.toml"
    >>> _ = p.write_text('outcome = "y"\\n[[stages]]\\ntreatment = "A1"\\ncontrast = "1 + x1"\\n'
    ...                  '[priors]\\nsigma = { dist = "HalfNormal", sigma = 2.0 }\\n')
    >>> stages, model_kw, fit_kw = load_spec(p)
    >>> stages[0], model_kw["priors"]["sigma"]
    (Stage('A1', main='1', contrast='1 + x1'), Prior("HalfNormal", sigma=2.0))
    """
    if not isinstance(path, str | os.PathLike):
        raise SpecificationError(f"path= must be a file path; got {type(path).__name__}.")
    p = Path(path)
    if not p.is_file():
        raise SpecificationError(f"spec file {str(p)!r} does not exist or is not a file; give the path of a .toml file.")
    try:
        spec = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise SpecificationError(f"{p}: not a UTF-8 text file ({err.reason}); save the spec as UTF-8 TOML.") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecificationError(
            f"{p}: not valid TOML: {err}. Check quotes, brackets and '=' on that line."
        ) from None
    return parse_spec(spec, data=data, source=str(p))


def regimes_from_toml(path: str | os.PathLike[str], treatments: Sequence[str], arms: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Read a regimes file: ``[regimes.NAME]`` tables mapping treatment to arm, or ``NAME = "optimal"``.

    Parameters
    ----------
    path : str or path-like
        The ``.toml`` file.
    treatments : sequence of str
        The fitted treatments (every static regime must name each of them).
    arms : mapping of str to list
        The arm labels of each treatment, to match labels written in the file.

    Returns
    -------
    dict of str to Regime or "optimal"
        Ready for ``post.compare``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "regimes.toml"
    >>> _ = p.write_text('[regimes]\\nbest = "optimal"\\n[regimes.always_MR]\\nA1 = "MR"\\n')
    >>> regimes_from_toml(p, ["A1"], {"A1": ["CD", "MR"]})
    {'best': 'optimal', 'always_MR': Regime('always_MR')}
    """
    from bayesdtr.regimes import Regime

    p = Path(path)
    if not p.is_file():
        raise SpecificationError(f"regimes file {str(p)!r} does not exist or is not a file; give the path of a .toml file.")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecificationError(f"{p}: not valid TOML: {err}.") from None
    table = doc.get("regimes")
    if set(doc) != {"regimes"} or not isinstance(table, Mapping) or not table:
        raise SpecificationError(
            f"{p}: must hold only a [regimes] table with one entry per regime, e.g. [regimes.always_MR] "
            f"with treatment = arm lines, or name = \"optimal\"; got top-level keys {list(doc)}."
        )
    out: dict[str, Any] = {}
    for name, value in table.items():
        where = f"{p}: [regimes.{name}]"
        if value == "optimal":
            out[name] = "optimal"
            continue
        if not isinstance(value, Mapping):
            raise SpecificationError(
                f"{where} must be \"optimal\" or a table treatment = arm for every treatment {list(treatments)}; got {value!r}."
            )
        missing = [t for t in treatments if t not in value]
        extra = [t for t in value if t not in treatments]
        if missing or extra:
            raise SpecificationError(
                f"{where} names treatments {list(value)}; it needs exactly {list(treatments)} "
                f"(missing {missing}, unknown {extra})."
            )
        labels = {t: _match_label(value[t], list(arms[t]), f"{where} {t}") for t in treatments}
        out[name] = Regime.static(name=name, **labels)
    return out

