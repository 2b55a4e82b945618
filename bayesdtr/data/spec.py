"""User-facing specification objects: :class:`Stage` and :class:`KnownPropensity`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesdtr.data.bart_spec import BART
from bayesdtr.exceptions import SpecificationError

__all__ = ["Stage", "KnownPropensity"]


@dataclass(frozen=True)
class KnownPropensity:
    """Treatment probabilities fixed by design (a randomized stage).

    Parameters
    ----------
    probabilities : mapping of arm label to float
        P(A_k = arm) for every arm of the stage. The values must be in (0, 1) and sum to 1.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> bd.KnownPropensity({"CD": 0.5, "MR": 0.5})
    KnownPropensity({'CD': 0.5, 'MR': 0.5})
    """

    probabilities: Mapping[Any, float]

    def __post_init__(self) -> None:
        if not isinstance(self.probabilities, Mapping) or not self.probabilities:
            raise SpecificationError(
                "KnownPropensity(probabilities=...) must be a non-empty dict {arm: probability}; "
                f"got {self.probabilities!r}."
            )
        p = np.asarray(list(self.probabilities.values()), dtype=float)
        if np.any(~np.isfinite(p)) or np.any(p <= 0) or np.any(p >= 1):
            raise SpecificationError(
                f"KnownPropensity probabilities must lie in (0, 1); got {dict(self.probabilities)}. "
                "Every arm needs a positive probability (positivity)."
            )
        if abs(p.sum() - 1.0) > 1e-6:
            raise SpecificationError(
                f"KnownPropensity probabilities must sum to 1; got {dict(self.probabilities)} "
                f"(sum {p.sum():.6g}). Rescale them."
            )
        object.__setattr__(self, "probabilities", dict(self.probabilities))

    def __repr__(self) -> str:
        return f"KnownPropensity({dict(self.probabilities)!r})"


@dataclass(frozen=True)
class Stage:
    r"""One decision point of a dynamic treatment regime.

    The stage-k Q-function is

    .. math::

        Q_k(h, a) = \mathrm{main}_k(h)^\top \beta_k
            + \sum_{a' \neq \mathrm{ref}} 1\{a = a'\}\, \mathrm{contrast}_k(h)^\top \psi_{k,a'}

    where ``main`` and ``contrast`` are right-hand-side formulas (formulaic syntax) evaluated on
    the history available just before the decision.

    Formulas are code: formulaic evaluates Python inside them (``I(...)``, ``{...}``, function
    calls), as any formula library does. Write your own formulas; never build a ``Stage`` from
    text you do not trust. bayesdtr never evaluates formula text read from a posterior file.

    Parameters
    ----------
    treatment : str
        Column holding the arm received at this stage. Labels are kept as given (ints, strings
        or categoricals); the first level in sorted (or categorical) order is the reference arm.
    main : str, default "1"
        Formula of the treatment-free (main-effect) part of Q_k.
    contrast : str, default "1"
        Formula of the treatment contrast; one coefficient vector per non-reference arm.
    propensity : str, KnownPropensity or None, default None
        Formula of the propensity model of ``treatment`` on the history, a
        :class:`KnownPropensity` for randomized stages, or None for no propensity model
        (then IPW/AIPW values and robust contrasts are unavailable for this stage).
    feasible : callable or None, default None
        ``feasible(df)`` returns a boolean DataFrame with one column per arm label and one row
        per unit: True where the arm is allowed for that unit. None allows every arm.
    applies : str, array-like of bool or None, default None
        Units that reach this stage: a ``DataFrame.query`` string or a boolean mask. Units that
        do not reach it carry their outcome through unchanged. None means every unit.
    reward : str or None, default None
        Column of an intermediate outcome observed after this stage's treatment and added to the
        return. The quantity optimized is the sum of rewards plus the final outcome.
    q : BART or None, default None
        A nonparametric Q-function (:class:`~bayesdtr.BART`) instead of ``main``/``contrast``
        (leave those at their defaults): sums of trees on the covariates and the arm.
    censoring : str or None, default None
        Dropout before this stage's decision (not allowed on the first stage). A
        right-hand-side formula of the probability of remaining in the study up to this
        decision, :math:`\Pr(\text{remain}_k = 1 \mid H) = \operatorname{logit}^{-1}(z(H)^\top\gamma_k)`,
        fitted by Bayesian logistic regression on the units at risk (those that reached the
        previous stage and to which this stage applies), on covariates observed for every one
        of them, including those measured after the previous decision. A unit at risk whose
        treatment column is missing has dropped out: it is neither dropped silently nor
        treated as reaching the stage. Its later columns and the outcome may be missing; the
        units that remain are reweighted by inverse probability of censoring weights
        (:mod:`bayesdtr.inference.dropout`). None: a missing treatment where the stage applies
        is an error.

    Examples
    --------
    >>> import bayesdtr as bd
    >>> bd.Stage("A1", main="x1", contrast="1 + x1", propensity="1")
    Stage('A1', main='x1', contrast='1 + x1', propensity='1')
    """

    treatment: str
    main: str = "1"
    contrast: str = "1"
    propensity: str | KnownPropensity | None = None
    feasible: Callable[[pd.DataFrame], pd.DataFrame] | None = field(default=None, repr=False)
    applies: str | np.ndarray | pd.Series | None = field(default=None, repr=False)
    reward: str | None = None
    q: BART | None = None
    censoring: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.treatment, str) or not self.treatment:
            raise SpecificationError(
                f"Stage(treatment=...) must be a column name (str); got {self.treatment!r}."
            )
        if self.q is not None:
            if not isinstance(self.q, BART):
                raise SpecificationError(
                    f"Stage {self.treatment!r}: q= must be a bd.BART(...) or None; got {type(self.q).__name__}."
                )
            if (self.main, self.contrast) not in (("1", "1"), (self.q.formula(), "1")):
                raise SpecificationError(
                    f"Stage {self.treatment!r}: q=bd.BART(...) replaces main= and contrast=; got "
                    f"main={self.main!r}, contrast={self.contrast!r}. Put the columns in "
                    "BART(covariates=[...]) and leave main/contrast out."
                )
            # the design reads the covariates' columns through the main-effect formula
            object.__setattr__(self, "main", self.q.formula())
        for arg in ("main", "contrast"):
            val = getattr(self, arg)
            if not isinstance(val, str) or not val.strip():
                raise SpecificationError(
                    f"Stage {self.treatment!r}: {arg}= must be a right-hand-side formula string "
                    f"such as '1 + x1'; got {val!r}."
                )
            if "~" in val:
                raise SpecificationError(
                    f"Stage {self.treatment!r}: {arg}={val!r} contains '~'. Give only the "
                    "right-hand side (e.g. '1 + x1'); the response is built by bayesdtr."
                )
        if self.propensity is not None and not isinstance(self.propensity, str | KnownPropensity):
            raise SpecificationError(
                f"Stage {self.treatment!r}: propensity= must be a formula string, a "
                f"bd.KnownPropensity or None; got {type(self.propensity).__name__}."
            )
        if isinstance(self.propensity, str):
            if not self.propensity.strip():
                raise SpecificationError(
                    f"Stage {self.treatment!r}: propensity='' is empty. Give a right-hand-side "
                    "formula such as '1 + x1' ('1' for a constant probability) or None."
                )
            if "~" in self.propensity:
                raise SpecificationError(
                    f"Stage {self.treatment!r}: propensity={self.propensity!r} contains '~'. Give "
                    "only the right-hand side (e.g. '1 + x1'); the treatment is the response."
                )
        if self.censoring is not None and (
            not isinstance(self.censoring, str) or not self.censoring.strip()
        ):
            raise SpecificationError(
                f"Stage {self.treatment!r}: censoring= must be a right-hand-side formula string of "
                "the probability of remaining up to this decision, such as 'X1 + A1 + X2' ('1' for "
                f"a constant probability), or None; got {self.censoring!r}."
            )
        if isinstance(self.censoring, str) and "~" in self.censoring:
            raise SpecificationError(
                f"Stage {self.treatment!r}: censoring={self.censoring!r} contains '~'. Give only "
                "the right-hand side (e.g. 'X1 + A1 + X2'); remaining in the study is the response."
            )
        if self.feasible is not None and not callable(self.feasible):
            raise SpecificationError(
                f"Stage {self.treatment!r}: feasible= must be a callable df -> boolean DataFrame "
                f"(one column per arm); got {type(self.feasible).__name__}."
            )
        if self.reward is not None and not isinstance(self.reward, str):
            raise SpecificationError(
                f"Stage {self.treatment!r}: reward= must be a column name or None; "
                f"got {self.reward!r}."
            )

    def __repr__(self) -> str:
        parts = [repr(self.treatment), f"main={self.main!r}", f"contrast={self.contrast!r}"]
        if self.q is not None:
            parts[1:] = [f"q={self.q!r}"]
        if self.propensity is not None:
            parts.append(f"propensity={self.propensity!r}")
        if self.feasible is not None:
            parts.append("feasible=<callable>")
        if self.applies is not None:
            shown = self.applies if isinstance(self.applies, str) else "<mask>"
            parts.append(f"applies={shown!r}")
        if self.reward is not None:
            parts.append(f"reward={self.reward!r}")
        if self.censoring is not None:
            parts.append(f"censoring={self.censoring!r}")
        return f"Stage({', '.join(parts)})"
