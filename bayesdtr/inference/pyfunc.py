"""A PyMC model as nutpie callbacks around PyTensor's disk-cached Numba functions.

``nutpie.compile_pymc_model`` (its Numba backend) wraps the model's PyTensor log-density in two
``numba.cfunc`` callbacks that close over the addresses of the model's data; Numba cannot cache
them, so every process types and lowers the whole log density again (5.7-8.2 s per model on an
idle 2-core machine with PyTensor's cache warm, 16-28 s cold; ``benchmarks/results/compile.md``).

:func:`compile_pyfunc` compiles the same two functions (log density with its gradient, and the
expansion of an unconstrained point to the model's variables) with PyTensor's ``"NUMBA"`` mode,
whose machine code PyTensor keeps on disk keyed by the generated source, and hands them to
nutpie as Python callbacks (``nutpie.from_pyfunc``). The model's data containers become explicit
inputs, so :meth:`with_data` swaps data without compiling. The price is one Python call per
gradient, under the GIL (the chains of one run take turns): this compiles in 0.6-1.3 s with the
cache warm but samples 4-7 times slower, which pays for models sampled once per process, not for
small models sampled many times. Its draws differ from the C callbacks' at the 1e-9 level after a
hundred iterations (the same functions, compiled in another context), so each sampler has its
own draws for a seed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["compile_pyfunc"]


def compile_pyfunc(model: pm.Model):
    """Compile ``model`` for nutpie with Python callbacks around PyTensor Numba functions.

    The initial points are nutpie's defaults (``support_point`` with jitter on every free
    variable, in the unconstrained space), so a run starts where ``compile_pymc_model`` would.

    Parameters
    ----------
    model : pymc.Model
        A model whose data-dependent quantities are ``pm.Data`` containers.

    Returns
    -------
    nutpie.compiled_pyfunc.PyFuncModel
        Sample it with ``nutpie.sample``; ``.with_data(name=array)`` swaps a container's value.
    """
    import pytensor.tensor as pt
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph import clone_replace, graph_inputs, rewrite_graph

    free = list(model.free_RVs)
    values = [model.rvs_to_values[rv] for rv in free]
    names = [v.name for v in values]
    point_fn = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set(free),
        return_transformed=True,
    )
    point0 = point_fn(0)
    shapes = [tuple(np.shape(point0[name])) for name in names]
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]
    n_dim = int(sum(sizes))

    logp = model.logp()
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = rewrite_graph(logp, include=rewrites)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in pt.grad(logp, values)])

    x = pt.TensorType("float64", shape=(n_dim,))("__unconstrained_point")
    bounds = np.cumsum([0, *sizes])
    pieces = {
        v: x[a:b].reshape(shape).astype(v.dtype)
        for v, a, b, shape in zip(values, bounds[:-1], bounds[1:], shapes, strict=True)
    }
    logp, grad = clone_replace([logp, grad], pieces)

    rest = [v for v in model.unobserved_value_vars if v.name not in names]
    expanded = clone_replace([*values, *rest], pieces)

    # the model's data containers become explicit inputs, so that swapping data is a new argument,
    # not a new function
    shared = [
        v
        for v in graph_inputs([logp, grad, *expanded])
        if isinstance(v, SharedVariable) and v.name is not None
    ]
    shared = list(dict.fromkeys(shared))
    inputs = {v: v.type(name=v.name) for v in shared}
    logp, grad = clone_replace([logp, grad], inputs)
    expanded = clone_replace(expanded, inputs)
    data_names = [v.name for v in shared]
    data = {v.name: np.asarray(v.get_value()) for v in shared}

    with model:
        logp_fn = compile_pymc([x, *inputs.values()], [logp, grad], mode="NUMBA")
        expand_fn = compile_pymc(
            [x, *inputs.values()], expanded, mode="NUMBA", on_unused_input="ignore"
        )
    logp_fn.trust_input = True
    expand_fn.trust_input = True

    flat0 = np.concatenate([np.asarray(point0[n], dtype="float64").ravel() for n in names])
    # Numba compiles (or loads from PyTensor's cache) on the first call: make both calls here, so
    # that the compile is done, and timed, by this function
    logp_fn(flat0, *(data[n] for n in data_names))
    out0 = expand_fn(flat0, *(data[n] for n in data_names))
    out_names = [*names, *(v.name for v in rest)]
    out_shapes = [tuple(np.shape(o)) for o in out0]

    lock = threading.Lock()

    def initial_point(seed):
        with lock:  # PyMC's initial-point function is not thread-safe
            point = point_fn(seed)
        return np.concatenate([np.asarray(point[n], dtype="float64").ravel() for n in names])

    # PyTensor's Function adds a few microseconds of checks to each call; the log density is
    # called once per leapfrog step, so call the compiled Numba function itself where there is one
    logp_raw = getattr(getattr(logp_fn, "vm", None), "jit_fn", logp_fn)

    def make_logp():
        def logp_call(x, **shared_values):
            value, g = logp_raw(x, *[shared_values[n] for n in data_names])
            return float(value), g

        return logp_call

    def make_expand(seed1, seed2, chain):
        def expand_call(x, **shared_values):
            outs = expand_fn(x, *(shared_values[n] for n in data_names))
            return {
                name: np.asarray(o, dtype="float64").reshape(shape)
                for name, o, shape in zip(out_names, outs, out_shapes, strict=True)
            }

        return expand_call

    return from_pyfunc(
        ndim=n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        expanded_dtypes=[np.dtype("float64")] * len(out_names),
        expanded_shapes=out_shapes,
        expanded_names=out_names,
        shared_data=data,
        make_initial_point_fn=initial_point,
    )
