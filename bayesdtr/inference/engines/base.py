"""What a stage engine is: the protocol every engine of :data:`~bayesdtr.inference.engines.ENGINES` follows.

An engine turns stage k of an :class:`~bayesdtr.inference.backward.Induction` into
:class:`~bayesdtr.inference.draws.StageDraws`: it asks the induction for stage k's regression
targets (``induction.target_for_fit``), one target vector per draw of the later stage (or a block
of draws per target, as multiple imputation does), and returns one stage-k draw per requested
draw with its ``ancestor``. Nothing in the protocol assumes linear coefficients beyond what
``StageDraws`` holds, so a Gibbs or BART engine plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from bayesdtr.data.design import DTRDesign
from bayesdtr.inference.draws import StageDraws
from bayesdtr.models.families import family_of
from bayesdtr.models.priors import StagePriors

if TYPE_CHECKING:
    from bayesdtr.inference.backward import FitSettings, Induction

__all__ = ["StageEngine", "closed_form_reasons"]


class StageEngine(Protocol):
    """A way to draw stage k's parameters given the later stages' draws (the cut posterior).

    Attributes
    ----------
    name : str
        The engine's name, recorded in ``StageDraws.engine`` and in files.
    """

    name: str

    def refusal(
        self, design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors], k: int
    ) -> str | None:
        """Why stage ``k`` cannot use this engine (a complete error message), or None if it can."""
        ...

    def fit(self, induction: Induction, k: int) -> StageDraws:
        """Draws of stage ``k`` of ``induction``; the later stages are already fitted."""
        ...


def closed_form_reasons(design: DTRDesign, priors: Mapping[str, StagePriors], k: int) -> list[str]:
    """Why stage ``k`` is not a linear Gaussian stage without groups and with default priors."""
    sd = design.stages[k]
    reasons = []
    if design.event is not None:
        reasons.append(
            f"the outcome {design.outcome!r} is a censored time (event={design.event_column!r}), so "
            f"every stage's target is censored ({design.family!r} likelihood)"
        )
    elif k == len(design.stages) - 1 and not family_of(design.family).closed_form:
        reasons.append(f"the final outcome family is {design.family!r}")
    if design.group is not None:
        reasons.append(f"group={design.group!r} adds hierarchical effects")
    if not priors[sd.treatment].conjugate_compatible:
        reasons.append("its beta/psi/sigma priors are user overrides")
    return reasons
