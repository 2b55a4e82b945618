r"""Simulation scenarios with known optimal dynamic treatment regimes.

Use :func:`scenario` to build one by name and :func:`list_scenarios` to see the names:

>>> from bayesdtr.simulate.scenarios import scenario
>>> sc = scenario("two_stage_cont")
>>> round(sc.true_value("optimal"), 4)
5.4641
>>> df = sc.sample(500, seed=1)
>>> list(df.columns)
['X1', 'A1', 'X2', 'A2', 'Y']

Every scenario is a :class:`Scenario` with ``name``, ``description``, ``outcome``,
``treatments``, ``arms`` (reference arm first), ``group``, ``family``, a correctly specified
default ``stages`` list, ``truth`` (true parameters), and the methods ``sample``,
``true_value``, ``true_q``, ``true_contrast`` and ``true_optimal_treatment``.

Scenarios
---------
``"two_stage_cont"``
    DTRreg's ``twoStageCont`` generator (``cran/DTRreg``, ``R/data_generate.R``); see
    :class:`~bayesdtr.simulate._two_stage_cont.TwoStageCont`.
``"chakraborty_ex1"`` ... ``"chakraborty_ex6"``, ``"chakraborty_exA"`` ... ``"chakraborty_exC"``
    The published non-regular designs of Chakraborty, Laber and Zhao (2013), treatments and
    covariates coded -1/+1. See :mod:`bayesdtr.simulate._chakraborty`.
``"chakraborty01_1"`` ... ``"chakraborty01_9"``
    A 0/1-coded adaptation of those designs from public dWOLS replication scripts (not the
    published family: the bootstrap does not fail in it). Formerly ``"chakraborty_1"`` ...
``"nonlinear_band"``
    Two randomized stages whose contrast is +1 only in a band of a covariate (-1 outside), so
    a linear contrast gets the rule wrong for about half of the units; BART stages from
    :meth:`~bayesdtr.simulate._nonlinear.NonlinearBand.bart_stages`.
``"k_stage"``
    K-stage SMART after DTRlearn2's ``sim_Kstage`` (``cran/DTRlearn2``), modified so that
    linear Q-models are correctly specified; optimal value K. Keyword arguments ``K``,
    ``p_noise``, ``persistence``, ``carryover``. See :class:`~bayesdtr.simulate._kstage.KStage`.
``"multisite_smart"``
    Two-stage SMART across G sites with site-specific treatment effects (designed for
    bayesdtr). Keyword arguments ``n_sites``, ``site_seed``. See
    :class:`~bayesdtr.simulate._multisite.MultisiteSmart`.

``"dropout_smart"``
    A randomized two-stage SMART whose units drop out before stage 2 depending on an
    intermediate covariate that predicts the outcome (MAR), so complete-case analysis is
    biased; the default stages declare ``censoring=``. See
    :class:`~bayesdtr.simulate._dropout.DropoutSmart`.

The Schulte, Tsiatis, Laber and Davidian (2014) scenarios are not included: their generating
equations could not be read in a stored source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bayesdtr.exceptions import SpecificationError
from bayesdtr.simulate._base import Scenario, enumerate_static
from bayesdtr.simulate._chakraborty import (
    CHAKRABORTY_DELTA,
    CHAKRABORTY_GAMMA,
    PUBLISHED_DELTA,
    PUBLISHED_GAMMA,
    ChakrabortyScenario,
)
from bayesdtr.simulate._dropout import DropoutSmart
from bayesdtr.simulate._kstage import KStage
from bayesdtr.simulate._multisite import MultisiteSmart
from bayesdtr.simulate._nonlinear import NonlinearBand
from bayesdtr.simulate._survival import SurvivalSmart
from bayesdtr.simulate._two_stage_cont import TwoStageCont

__all__ = [
    "CHAKRABORTY_DELTA",
    "CHAKRABORTY_GAMMA",
    "ChakrabortyScenario",
    "DropoutSmart",
    "KStage",
    "MultisiteSmart",
    "NonlinearBand",
    "PUBLISHED_DELTA",
    "PUBLISHED_GAMMA",
    "Scenario",
    "SurvivalSmart",
    "TwoStageCont",
    "enumerate_static",
    "list_scenarios",
    "scenario",
]


def _chakraborty(example: str | int, coding: str) -> Callable[..., Scenario]:
    def build(**kwargs: Any) -> Scenario:
        return ChakrabortyScenario(example, coding, **kwargs)  # type: ignore[arg-type]

    return build


#: Old names of the 0/1-coded adaptation, refused with a pointer to both families.
_RENAMED = {f"chakraborty_{i}": f"chakraborty01_{i}" for i in range(1, 10)}


_REGISTRY: dict[str, Callable[..., Scenario]] = {
    "two_stage_cont": TwoStageCont,
    **{f"chakraborty_ex{e}": _chakraborty(e, "pm1") for e in PUBLISHED_GAMMA},
    **{f"chakraborty01_{i}": _chakraborty(i, "01") for i in range(1, 10)},
    "k_stage": KStage,
    "multisite_smart": MultisiteSmart,
    "nonlinear_band": NonlinearBand,
    "survival_smart": SurvivalSmart,
    "dropout_smart": DropoutSmart,
}


def list_scenarios() -> list[str]:
    """Names accepted by :func:`scenario`, in a stable order."""
    return list(_REGISTRY)


def scenario(name: str, **kwargs: Any) -> Scenario:
    """Build the simulation scenario ``name``.

    Parameters
    ----------
    name : str
        One of :func:`list_scenarios`.
    **kwargs
        Forwarded to the scenario's constructor, e.g. ``scenario("k_stage", K=4)`` or
        ``scenario("multisite_smart", n_sites=16, site_seed=3)``.

    Returns
    -------
    Scenario

    Raises
    ------
    SpecificationError
        If the name is unknown (the message lists the valid names) or a keyword argument is
        not accepted by that scenario.
    """
    if isinstance(name, str) and name in _RENAMED:
        raise SpecificationError(
            f"Scenario {name!r} was renamed {_RENAMED[name]!r}: it is a 0/1-coded adaptation, not "
            f"the published design. The published -1/+1 designs are "
            f"{[n for n in _REGISTRY if n.startswith('chakraborty_ex')]}."
        )
    if not isinstance(name, str) or name not in _REGISTRY:
        raise SpecificationError(
            f"Unknown scenario {name!r}. Valid names: {', '.join(list_scenarios())}."
        )
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as err:
        raise SpecificationError(
            f"scenario({name!r}) got unsupported keyword argument(s) {sorted(kwargs)}: {err}. "
            "See the scenario's docstring for its parameters."
        ) from err
