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
``"chakraborty_1"`` ... ``"chakraborty_9"``
    The nine non-regular scenarios used by Chakraborty, Laber and Zhao (2013), as coded (0/1
    treatments) in public dWOLS replication scripts; the paper's own table was not readable.
    See :mod:`bayesdtr.simulate._chakraborty`.
``"k_stage"``
    K-stage SMART after DTRlearn2's ``sim_Kstage`` (``cran/DTRlearn2``), modified so that
    linear Q-models are correctly specified; optimal value K. Keyword arguments ``K``,
    ``p_noise``, ``persistence``, ``carryover``. See :class:`~bayesdtr.simulate._kstage.KStage`.
``"multisite_smart"``
    Two-stage SMART across G sites with site-specific treatment effects (designed for
    bayesdtr). Keyword arguments ``n_sites``, ``site_seed``. See
    :class:`~bayesdtr.simulate._multisite.MultisiteSmart`.

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
    ChakrabortyScenario,
)
from bayesdtr.simulate._kstage import KStage
from bayesdtr.simulate._multisite import MultisiteSmart
from bayesdtr.simulate._two_stage_cont import TwoStageCont

__all__ = [
    "CHAKRABORTY_DELTA",
    "CHAKRABORTY_GAMMA",
    "ChakrabortyScenario",
    "KStage",
    "MultisiteSmart",
    "Scenario",
    "TwoStageCont",
    "enumerate_static",
    "list_scenarios",
    "scenario",
]


def _chakraborty(index: int) -> Callable[..., Scenario]:
    def build(**kwargs: Any) -> Scenario:
        return ChakrabortyScenario(index, **kwargs)

    return build


_REGISTRY: dict[str, Callable[..., Scenario]] = {
    "two_stage_cont": TwoStageCont,
    **{f"chakraborty_{i}": _chakraborty(i) for i in range(1, 10)},
    "k_stage": KStage,
    "multisite_smart": MultisiteSmart,
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
