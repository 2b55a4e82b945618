"""NUTS runs: compile a stage model once, then sample it on swapped data.

nutpie (the default) compiles the model once (later processes load it from disk) and each
imputation swaps the data with ``with_data`` (which copies it in the containers' dtypes, C
order). ``sampler="pymc"`` and ``"numpyro"`` go through ``pm.sample`` with ``pm.set_data``; PyMC
recompiles on every call (see STACK.md), which the benchmarks measure.

Compile cost (``benchmarks/bench_compile.py``). PyTensor rewrites the graph and Numba compiles it;
PyTensor keeps the Numba machine code of its graph functions on disk (``<base_compiledir>/numba``,
keyed by a hash of each function's generated source). ``nutpie.compile_pymc_model`` wraps them
in two C callbacks that close over the model's data, which Numba cannot cache: every process
typed and compiled them again, 5.7-8.2 s per model on an idle 2-core machine with the disk cache
warm (16-28 s cold). :func:`~bayesdtr.inference.cached_cfunc.compile_cached` builds the same
callbacks from source that reads the data through the user-data pointer and caches them with
PyTensor's functions, so a later process loads them from disk. It compiles without Numba's
fast-math flags: with them, the first process on a machine (everything compiled together) drew
other numbers than later ones for the same seed (``benchmarks/diag_cold_warm.py``).
``sampler="nutpie-jax"`` builds the model with nutpie's JAX backend (JAX is an optional extra):
1.4-1.7 s to compile even the first time on a machine, but every log-density call goes through
Python, and a default-size fit samples 18-45 times slower (d49d02e's
``benchmarks/results/compile.md``); it suits a model sampled once in a new process on a machine
that has never compiled it, not hundreds of imputations.
Numba's cache index files are pickles, so :func:`check_cache_dir` disables that disk cache (with
a warning) when its folder is not this user's own or can be written by others.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from bayesdtr.exceptions import BayesDTRWarning, FitError

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "NUTSSampler",
    "NUTSResult",
    "cached_sampler",
    "check_cache_dir",
    "is_cached",
    "clear_cache",
]

#: Compiled samplers kept for reuse, keyed by model structure (least recently used first out).
_CACHE: OrderedDict[tuple, NUTSSampler] = OrderedDict()
CACHE_SIZE = 32

Sampler = Literal["nutpie", "nutpie-jax", "pymc", "numpyro"]
#: The samplers that run nutpie (Numba or JAX backend): compiled once, data swapped by ``with_data``.
NUTPIE = ("nutpie", "nutpie-jax")


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
        if self.sampler not in (*NUTPIE, "pymc", "numpyro"):
            raise FitError(
                f"sampler={self.sampler!r} is not supported; use 'nutpie', 'nutpie-jax', 'pymc' "
                "or 'numpyro'."
            )
        if self.sampler == "nutpie-jax":
            try:
                import jax  # noqa: F401
            except ImportError as err:
                raise FitError(
                    "sampler='nutpie-jax' needs JAX (the optional numpyro/JAX extra): "
                    "pip install -e '.[numpyro]'; or use sampler='nutpie'."
                ) from err
        if self.sampler == "numpyro":
            try:
                import numpyro  # noqa: F401
            except ImportError as err:
                raise FitError(
                    "sampler='numpyro' needs the optional numpyro/JAX extra: "
                    "pip install -e '.[numpyro]'; or use sampler='nutpie'."
                ) from err
        if self.sampler in NUTPIE:
            import nutpie

            check_cache_dir()
            t0 = time.perf_counter()
            if self.sampler == "nutpie":
                from bayesdtr.inference.cached_cfunc import compile_cached

                self._compiled = compile_cached(self.model)
            else:
                self._compiled = nutpie.compile_pymc_model(
                    self.model, backend="jax", gradient_backend="jax", freeze_model=False
                )
                # JAX compiles the log density on its first call: one tiny run here, so that
                # compile_seconds holds the whole compile (a new data shape compiles again)
                nutpie.sample(self._compiled, draws=1, tune=1, chains=1, seed=0, progress_bar=False)
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
        if self.sampler in NUTPIE:
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


def check_cache_dir(base: str | os.PathLike | None = None) -> str | None:
    """Disable PyTensor's on-disk Numba cache when its folder is not safe to load from.

    Numba reads its cache index files with ``pickle``: loading a file someone else planted runs
    their code. The cache (``<pytensor base_compiledir>/numba``, by default under the user's home)
    is used only when it and its parent folder belong to this user and no one else can write
    them; otherwise ``pytensor.config.numba__cache`` is set to False for this process (models
    still compile, every time) and a :class:`~bayesdtr.exceptions.BayesDTRWarning` says why.

    Parameters
    ----------
    base : path, optional
        The folder to check in place of ``pytensor.config.base_compiledir`` (for tests).

    Returns
    -------
    str or None
        Why the cache was disabled, or None when it is used.
    """
    import warnings
    from pathlib import Path

    import pytensor

    if not pytensor.config.numba__cache:
        return None
    base = Path(pytensor.config.base_compiledir if base is None else base)
    why = None
    for folder in (base, base / "numba"):
        try:
            st = folder.stat()
        except FileNotFoundError:
            continue  # PyTensor creates it, with this user's umask
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            why = f"{folder} belongs to user id {st.st_uid}, not this user ({os.getuid()})"
        elif st.st_mode & 0o022:
            why = f"{folder} can be written by its group or by others (mode {st.st_mode & 0o777:o})"
        if why:
            break
    if why is None:
        return None
    pytensor.config.numba__cache = False
    warnings.warn(
        f"PyTensor's Numba compile cache is not used: {why}, and its files are loaded with pickle. "
        "Models compile again in every process. To cache them, point PyTensor at a folder only you "
        "can write: PYTENSOR_FLAGS=base_compiledir=~/.pytensor (chmod 700).",
        BayesDTRWarning,
        stacklevel=3,
    )
    return why


def is_cached(key: tuple, sampler: Sampler) -> bool:
    """Whether the model structure ``key`` is already compiled for ``sampler``."""
    return (*key, sampler) in _CACHE


def clear_cache() -> None:
    """Forget every compiled sampler (e.g. to measure compile times)."""
    _CACHE.clear()
