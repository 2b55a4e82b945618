r"""What a user declares for a nonparametric (BART) Q-function: :class:`BART`.

The stage's Q-function is a sum of regression trees on the history covariates and the arm,

.. math::

    Q_k(h, a) = \sum_{j=1}^{m} g(x(h), 1\{a = a_1\}, \ldots, 1\{a = a_{M-1}\}; T_j, \mu_j),
    \qquad y = Q_k(h, a) + \varepsilon, \quad \varepsilon \sim N(0, \sigma^2),

with the usual BART priors on the trees :math:`T_j`, leaf values :math:`\mu_j` and
:math:`\sigma^2` (Chipman, George and McCulloch 2010), as in the BART Q-functions of Murray,
Yuan and Thall (2018, JASA 113:1255). The arm enters as covariates (one indicator per
non-reference arm), so the trees can split on it anywhere and the contrast may be any function
of the history. With a Bernoulli final outcome (``DTRModel(..., family="bernoulli")``) the last
stage is a probit BART (Chipman, George and McCulloch 2010, Section 4; the latent-variable
sampler of Albert and Chib 1993, as stochtree implements it):

.. math::

    P(Y = 1 \mid h, a) = \Phi\big(Q^{\mathrm{latent}}_K(h, a)\big),

whose posterior draws of :math:`P(Y = 1 \mid h, a)` are the stage-K Q-function; earlier stages are
Gaussian BART fits to the pseudo-outcomes, as with a Gaussian outcome. Fitted by
:mod:`bayesdtr.inference.engines.bart`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bayesdtr.exceptions import SpecificationError

__all__ = ["BART"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BART:
    """A BART Q-function for one stage: ``bd.Stage("A1", q=bd.BART(covariates=[...]))``.

    Parameters
    ----------
    covariates : sequence of str
        History columns the trees may split on (numeric, bool or categorical; categoricals are
        dummy-coded). The arm is added by bayesdtr.
    trees : int, default 50
        Number of trees.
    burn : int, default 0
        MCMC sweeps discarded after the 10 grow-from-root (XBART) sweeps that start each fit.
        The grow-from-root forest is already a good start (the warm-start BART of He and Hahn,
        as stochtree recommends): measured on ``nonlinear_band`` (n = 1,000, 50 trees, 2 x 100
        draws, 20 imputations), burn 0 fitted both stages in 8.4 s against 25.0 s with burn
        100, with the same rule accuracy (99.4% vs 99.6% of units at stage 1).
    imputations : int, default 20
        Multiple imputations M at a stage before the last: the forest is refitted on M
        pseudo-outcome vectors (one per ancestor draw of the later stage) and the draws pooled.
    warm_start : bool, default False
        Start imputation j's sampler from the last forest of imputation j-1 (``warm_burn``
        sweeps discarded) instead of a cold start. Off by default: stochtree warm-starts through
        a JSON round trip of the previous model, which costs more than the grow-from-root
        sweeps it replaces (``benchmarks/bench_bart_warm.py``, ``nonlinear_band``, n = 1,000,
        50 trees, 20 imputations, 3 data sets: stage-1 refits median 10.0 s warm against 6.3 s
        cold, rule accuracy 0.992 both).
    warm_burn : int, default 20
        Sweeps discarded after a warm start.

    Notes
    -----
    Propagation (``fit(propagation=...)``), measured by ``benchmarks/bench_bart_propagation.py``
    on ``nonlinear_band`` (n = 1,000, 50 trees, 2 x 100 draws, 10 seeded replicates, the same
    data for every mode; ``benchmarks/results/bart_propagation.md``): ``modal`` (the default),
    ``mean`` and ``predictive`` (Murray, Yuan and Thall's choice) did not separate. The
    posterior-mode rule matched the true optimal arm for 99.2%, 99.1% and 99.0% of units at
    stage 1 (worst replicate 98.4%, 97.8%, 97.0%), 99.0% at stage 2 in all three (the last
    stage does not depend on the mode); the 95% interval of ``value(post.rule())`` covered the
    estimated rule's true value in 10/10 replicates for each mode (mean widths 0.368, 0.372,
    0.371). The measurements favour no mode over another, so the default stays ``modal``, which
    had the best worst-replicate rule; ``predictive`` did not improve coverage here. The plug-in
    ``value("optimal", method="q", crossfit=0)`` covered the optimal value 4/3 in only 4/10,
    4/10 and 3/10 replicates (mean bias -0.14, -0.13, -0.15) in every mode: use the default
    sample-split value for BART stages.

    With a Bernoulli outcome (``nonlinear_band`` with ``family="bernoulli"``, n = 1,000, 10
    replicates, ``benchmarks/results/bart_nonlinear_bernoulli.csv``) the probit-BART rule
    matched the true optimal arm for 97.8% (stage 1) and 96.3% (stage 2) of units; the
    interval of ``value(post.rule())`` covered the value of the rule learned from all the data
    in only 5/10 replicates (mean -0.06 below it, width 0.15): the online estimand values rules
    learned on 40-90% of the units, which are worse with a 0/1 outcome (not verified further).

    Examples
    --------
    >>> import bayesdtr as bd
    >>> bd.BART(covariates=["X1", "X2"], trees=50)
    BART(covariates=['X1', 'X2'], trees=50)
    """

    covariates: Sequence[str]
    trees: int = 50
    burn: int = 0
    imputations: int = 20
    warm_start: bool = False
    warm_burn: int = 20

    def __post_init__(self) -> None:
        cov = self.covariates
        if isinstance(cov, str) or not isinstance(cov, Sequence) or not cov:
            raise SpecificationError(
                f"BART(covariates=...) must be a non-empty list of column names, e.g. "
                f"covariates=['X1', 'X2']; got {cov!r}."
            )
        bad = [c for c in cov if not isinstance(c, str) or not c]
        if bad:
            raise SpecificationError(
                f"BART(covariates=...) must hold column names (str); got {bad!r}."
            )
        if len(set(cov)) != len(cov):
            raise SpecificationError(
                f"BART(covariates={list(cov)!r}) names a column twice; list each once."
            )
        object.__setattr__(self, "covariates", tuple(cov))
        for name, lo in (("trees", 1), ("burn", 0), ("imputations", 1), ("warm_burn", 0)):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise SpecificationError(
                    f"BART({name}=...) must be an integer >= {lo}; got {val!r}."
                )
        if not isinstance(self.warm_start, bool):
            raise SpecificationError(
                f"BART(warm_start=...) must be True or False; got {self.warm_start!r}."
            )

    def formula(self) -> str:
        """The main-effect formula whose design columns the trees split on (intercept dropped)."""
        return "1 + " + " + ".join(c if _PLAIN.match(c) else f"`{c}`" for c in self.covariates)

    def to_json(self) -> str:
        """The settings as JSON text (stored in files; read back with :meth:`from_json`)."""
        return json.dumps({"kind": "bart", **{k: getattr(self, k) for k in _FIELDS}}, default=list)

    @classmethod
    def from_json(cls, text: str) -> BART:
        """Settings from :meth:`to_json` text (plain JSON: nothing is evaluated)."""
        d: Any = json.loads(text)
        if not isinstance(d, dict) or d.get("kind") != "bart" or set(d) - {"kind", *_FIELDS}:
            raise SpecificationError(f"not a stored BART specification: {text[:80]!r}")
        return cls(**{k: v for k, v in d.items() if k != "kind"})

    def __repr__(self) -> str:
        return f"BART(covariates={list(self.covariates)!r}, trees={self.trees})"


_FIELDS = ("covariates", "trees", "burn", "imputations", "warm_start", "warm_burn")
