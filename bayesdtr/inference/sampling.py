"""NUTS runs: compile a stage model once, then sample it on swapped data.

nutpie (the default) compiles the model once (``compile_pymc_model(freeze_model=False)``) and
each imputation swaps the data with ``with_data``. ``sampler="pymc"`` and ``"numpyro"`` go through
``pm.sample`` with ``pm.set_data``; PyMC recompiles on every call (see STACK.md), which the
benchmarks measure.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from bayesdtr.exceptions import FitError

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["NUTSSampler", "NUTSResult", "cached_sampler", "is_cached", "clear_cache"]

#: Compiled samplers kept for reuse, keyed by model structure (least recently used first out).
_CACHE: OrderedDict[tuple, NUTSSampler] = OrderedDict()
CACHE_SIZE = 32

Sampler = Literal["nutpie", "pymc", "numpyro"]


@dataclass
class NUTSResult:
    """Posterior draws ``name -> (chains, draws, ...)`` and per-draw sampler statistics."""

    draws: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    seconds: float


@dataclass
class NUTSSampler:
    """Compile ``model`` once for ``sampler``; :meth:`run` samples it on new data values."""

    model: pm.Model
    sampler: Sampler = "nutpie"
    compile_seconds: float = 0.0
    _compiled: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sampler not in ("nutpie", "pymc", "numpyro"):
            raise FitError(
                f"sampler={self.sampler!r} is not supported; use 'nutpie', 'pymc' or 'numpyro'."
            )
        if self.sampler == "numpyro":
            try:
                import numpyro  # noqa: F401
            except ImportError as err:
                raise FitError(
                    "sampler='numpyro' needs the optional numpyro/JAX extra: "
                    "pip install -e '.[numpyro]'; or use sampler='nutpie'."
                ) from err
        if self.sampler == "nutpie":
            import nutpie

            t0 = time.perf_counter()
            self._compiled = nutpie.compile_pymc_model(self.model, freeze_model=False)
            self.compile_seconds = time.perf_counter() - t0

    def run(
        self,
        data: dict[str, np.ndarray] | None,
        *,
        draws: int,
        tune: int,
        chains: int,
        seed: int,
        progressbar: bool = False,
    ) -> NUTSResult:
        """Sample the model with its data containers set to ``data``."""
        t0 = time.perf_counter()
        if self.sampler == "nutpie":
            import nutpie
            import pymc as pm

            if data:
                # the initial point is PyMC's function of the model's own data containers: set
                # them too, or a sampler compiled on other data would start where that data put
                # it, and the same data and seed would give different draws after other fits
                pm.set_data(data, model=self.model)
            compiled = self._compiled.with_data(**data) if data else self._compiled  # type: ignore[attr-defined]
            tree = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                cores=min(chains, os.cpu_count() or 1),
                seed=int(seed),
                progress_bar=progressbar,
                save_warmup=False,
            )
        else:
            import pymc as pm

            with self.model:
                if data:
                    pm.set_data(data)
                tree = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    cores=min(chains, os.cpu_count() or 1),
                    random_seed=int(seed),
                    nuts_sampler=self.sampler,
                    progressbar=progressbar,
                    compute_convergence_checks=False,
                )
        seconds = time.perf_counter() - t0
        post = tree["posterior"]
        out = {n: np.asarray(post[n].values) for n in post.data_vars}
        stats_ds = tree["sample_stats"]
        stats = {}
        for name in ("diverging", "n_steps", "tree_depth", "depth"):
            if name in stats_ds.data_vars:
                stats[name] = np.asarray(stats_ds[name].values)
        return NUTSResult(draws=out, stats=stats, seconds=seconds)


def cached_sampler(
    key: tuple, build: Callable[[], pm.Model], sampler: Sampler
) -> tuple[NUTSSampler, bool]:
    """The compiled sampler of a model structure, compiling it on first use.

    Models put every data-dependent quantity in ``pm.Data`` containers, so a structure
    (``key``) compiles once per process and serves every later fit through ``with_data``:
    imputations, regime refits and the replicates of a simulation study.

    Returns
    -------
    sampler : NUTSSampler
    created : bool
        Whether it was compiled by this call.
    """
    full = (*key, sampler)
    if full in _CACHE:
        _CACHE.move_to_end(full)
        return _CACHE[full], False
    smp = NUTSSampler(build(), sampler=sampler)
    _CACHE[full] = smp
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return smp, True


def is_cached(key: tuple, sampler: Sampler) -> bool:
    """Whether the model structure ``key`` is already compiled for ``sampler``."""
    return (*key, sampler) in _CACHE


def clear_cache() -> None:
    """Forget every compiled sampler (e.g. to measure compile times)."""
    _CACHE.clear()
