"""Stage engines as plug-ins, and the table that chooses one per stage.

``ENGINES`` maps a name to an engine (:class:`~bayesdtr.inference.engines.base.StageEngine`):
``"conjugate"`` (exact NIG), ``"robust"`` (weighted Bayesian bootstrap of dWOLS), ``"gibbs"``
(blocked Gibbs for Gaussian stages with group effects and default priors, vectorised over
imputations), ``"mcmc"`` (NUTS, multiple imputation). :func:`stage_engines` applies the rules:

- ``robust=True`` asks for ``"robust"`` at every stage (and only with ``engine="auto"``);
- ``engine="conjugate"`` or ``"mcmc"`` asks for that engine at every stage;
- ``engine="auto"`` takes, per stage, the first engine of ``AUTO`` that does not refuse it;
- a stage declared ``q=bd.BART(...)`` is always fitted by ``"bart"`` (which raises if it refuses).

A requested engine that refuses a stage raises its :class:`~bayesdtr.exceptions.FitError`.

:func:`refit_engines` chooses the engines of *refits* (a fixed regime's earlier stages, the
sample-split value's training chunks): the fit's own engines, except that a stage the fit sampled
by NUTS (``"mcmc"``) but which is conditionally conjugate is refitted by ``"conjugate"`` (linear
Gaussian, no groups, default priors) or ``"gibbs"`` (with groups, default priors). Those engines
sample the same model as NUTS there: the default Gaussian stage model of
:mod:`bayesdtr.models.outcome` *is* the Normal-Inverse-Gamma prior of
:func:`~bayesdtr.models.priors.nig_hyper` (same hyperparameters, same centred design), and the
Gibbs sampler takes the NUTS model's own data containers (``tests/test_gibbs.py`` compares the
two). Bernoulli and survival stages, user priors and dropout keep their engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bayesdtr.data.design import DTRDesign
from bayesdtr.exceptions import FitError
from bayesdtr.inference.engines.bart import BARTEngine, bart_spec_of
from bayesdtr.inference.engines.base import StageEngine, closed_form_reasons
from bayesdtr.inference.engines.closed_form import ConjugateEngine, RobustEngine
from bayesdtr.inference.engines.gibbs import GibbsEngine
from bayesdtr.inference.engines.mcmc import MCMCEngine
from bayesdtr.models.priors import StagePriors

if TYPE_CHECKING:
    from bayesdtr.inference.backward import FitSettings

__all__ = [
    "AUTO",
    "ENGINES",
    "FAST_REFIT",
    "StageEngine",
    "closed_form_reasons",
    "refit_engines",
    "stage_engines",
]

#: Stage engines by name.
ENGINES: dict[str, StageEngine] = {
    e.name: e
    for e in (ConjugateEngine(), RobustEngine(), GibbsEngine(), MCMCEngine(), BARTEngine())
}

#: ``engine="auto"``: the first of these that accepts a stage fits it.
AUTO: tuple[str, ...] = ("conjugate", "gibbs", "mcmc")


def stage_engines(
    design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors]
) -> list[str]:
    """The engine of each stage ("conjugate", "mcmc" or "robust"), checking the request."""
    requested = settings.engine
    if settings.robust:
        if settings.engine != "auto":
            raise FitError(
                f"robust=True fits every stage by a weighted Bayesian bootstrap of dWOLS; "
                f"engine={settings.engine!r} cannot be combined with it. Leave engine='auto'."
            )
        requested = "robust"
    out = []
    for k in range(len(design.stages)):
        if bart_spec_of(design.stages[k]) is not None:
            out.append(_bart_stage(design, settings, priors, k, requested))
            continue
        if requested not in ENGINES:  # "auto"
            out.append(
                next(
                    name
                    for name in AUTO
                    if ENGINES[name].refusal(design, settings, priors, k) is None
                )
            )
            continue
        why = ENGINES[requested].refusal(design, settings, priors, k)
        if why is not None:
            raise FitError(why)
        out.append(requested)
    return out


#: Engines that refit a stage the fit sampled by NUTS, when one accepts it (first that does).
FAST_REFIT: tuple[str, ...] = ("conjugate", "gibbs")


def refit_engines(
    design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors]
) -> list[StageEngine]:
    """The engine of each stage for a refit on ``design`` (see the module docstring).

    ``stage_engines`` gives the fit's engines; where that is ``"mcmc"`` and ``"conjugate"`` or
    ``"gibbs"`` accepts the stage, the refit uses it: the same posterior, without per-imputation
    NUTS runs. With dropout (``design.ipcw``) nothing changes.
    """
    out = []
    for k, name in enumerate(stage_engines(design, settings, priors)):
        if name == "mcmc" and design.ipcw is None:
            name = next(
                (
                    fast
                    for fast in FAST_REFIT
                    if ENGINES[fast].refusal(design, settings, priors, k) is None
                ),
                name,
            )
        out.append(ENGINES[name])
    return out


def _bart_stage(
    design: DTRDesign,
    settings: FitSettings,
    priors: Mapping[str, StagePriors],
    k: int,
    requested: str,
) -> str:
    """A stage declared ``q=bd.BART(...)``: the BART engine, if it accepts it and was not overridden."""
    sd = design.stages[k]
    if requested not in ("auto", "bart"):
        why = "robust=True" if requested == "robust" else f"engine={requested!r}"
        raise FitError(
            f"Stage {sd.treatment!r} has a BART Q-function (q=bd.BART(...)), which only the BART engine "
            f"fits; {why} asks for the linear {requested!r} engine. Leave engine='auto' (and robust=False)."
        )
    why = ENGINES["bart"].refusal(design, settings, priors, k)
    if why is not None:
        raise FitError(why)
    return "bart"
