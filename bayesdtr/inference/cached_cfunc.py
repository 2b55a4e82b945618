"""A PyMC model for nutpie as C callbacks that Numba keeps on disk.

``nutpie.compile_pymc_model`` (its Numba backend) wraps the model's PyTensor log density in two
``numba.cfunc`` callbacks that close over the model's data; Numba cannot cache them, so every
process types and compiles the whole log density again (5.7-8.2 s per model on an idle 2-core
machine with PyTensor's cache warm, 16-28 s cold; d49d02e's ``benchmarks/results/compile.md``).

:func:`compile_cached` builds the same two callbacks from generated source that reads the data
through the callbacks' user-data pointer (nutpie's own record of data addresses and shapes), so
they hold no process-specific constants, and registers that source with PyTensor's Numba cache
under a key made of PyTensor's keys of the two graph functions it calls, the layout of the data
and a template version. A later process loads the compiled callbacks from disk instead of
compiling them. The cache is PyTensor's (``<base_compiledir>/numba``), so
:func:`~bayesdtr.inference.sampling.check_cache_dir` guards it as before; where that cache is off,
the callbacks are compiled as nutpie would. Everything is compiled without Numba's fast-math
flags, so that the first process on a machine draws what later ones draw.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["compile_cached"]

#: Changes whenever the generated source changes, so that old cache entries are not reused.
TEMPLATE_VERSION = "bayesdtr-cfunc-1"

LOGP_SRC = """
def {name}(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, ())
        user_data = carray(user_data_, (), record_dtype)
{unpack}
        value, grad = logp_fn(x{args})
        logp[()] = value
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(value):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0
"""

EXPAND_SRC = """
def {name}(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_expanded},))
        user_data = carray(user_data_, (), record_dtype)
{unpack}
        (values,) = expand_fn(x{args})
        out[...] = values
    except Exception:  # noqa: BLE001
        return -2
    return 0
"""


@functools.cache
def _as_pointer():
    """A Numba intrinsic: an integer address as a void pointer (built once, when first asked)."""
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def as_pointer(typingctx, src):
        sig = types.voidptr(src)

        def codegen(cgctx, builder, sig, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return sig, codegen

    return as_pointer


def _unpack_source(keys: list[str], ndims: list[int]) -> str:
    """Lines that view each data array from nutpie's user-data record (``d0``, ``d1``, ...)."""
    lines = ['        shared = user_data["shared"]']
    for i, (key, ndim) in enumerate(zip(keys, ndims, strict=True)):
        shape = ", ".join(f'shared["shape"]["{key}"][{j}]' for j in range(ndim))
        shape = f"({shape},)" if ndim == 1 else f"({shape})"
        lines.append(
            f'        d{i} = carray(as_pointer(shared["data"]["{key}"][()]), {shape}, dtype{i})'
        )
    return "\n".join(lines)


def compile_cached(model: pm.Model):
    """Compile ``model`` for nutpie's Numba sampler with disk-cached C callbacks.

    The functions, their data inputs, the initial points (``support_point`` with jitter on every
    free variable, unconstrained) and the callbacks' contract are nutpie's own
    (``compile_pymc_model(freeze_model=False)``); only where the compiled callbacks come from
    differs.

    Parameters
    ----------
    model : pymc.Model
        A model whose data-dependent quantities are ``pm.Data`` containers.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Sample it with ``nutpie.sample``; ``.with_data(name=array)`` swaps a container's value.
    """
    import pytensor

    # Numba's fast-math flags let LLVM reassociate and contract a function differently when it is
    # compiled together with its callees (the first process on a machine) than when the callees
    # come from the cache, so the same seed gave other draws in that first process
    # (``benchmarks/diag_cold_warm.py``); IEEE arithmetic gives the same bits either way
    with pytensor.config.change_flags(numba__fastmath=False):
        return _compile_cached(model)


def _compile_cached(model: pm.Model):
    import numba
    import pytensor
    import pytensor.tensor as pt
    from nutpie.compile_pymc import CompiledPyMCModel, make_user_data
    from pymc.initial_point import make_initial_point_fn
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph import clone_replace, graph_inputs, rewrite_graph
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    free = list(model.free_RVs)
    values = [model.rvs_to_values[rv] for rv in free]
    names = [v.name for v in values]
    point_fn = make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(free), return_transformed=True
    )
    point0 = point_fn(0)

    def flat(point: dict) -> np.ndarray:
        return np.concatenate([np.asarray(point[n], dtype="float64").ravel() for n in names])

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
    out_names = [*names, *(v.name for v in rest)]

    # the model's data containers become explicit inputs of the graph functions; the callbacks
    # pass them on from nutpie's user-data record
    shared = list(
        dict.fromkeys(
            v
            for v in graph_inputs([logp, grad, *expanded])
            if isinstance(v, SharedVariable) and v.name is not None
        )
    )
    inputs = {v: v.type(name=v.name) for v in shared}
    logp, grad = clone_replace([logp, grad], inputs)
    expanded = clone_replace(expanded, inputs)
    joined = pt.concatenate([pt.as_tensor(o).ravel().astype("float64") for o in expanded])
    ins = [x, *inputs.values()]
    with model:
        logp_fn = compile_pymc(ins, [logp, grad], mode="NUMBA")
        expand_fn = compile_pymc(ins, [joined], mode="NUMBA", on_unused_input="ignore")
        shape_fn = pytensor.function(
            ins,
            [pt.as_tensor(o).shape for o in expanded],
            mode="FAST_COMPILE",
            on_unused_input="ignore",
        )

    keys = [f"d{i}" for i in range(len(shared))]
    data = {}
    for key, v in zip(keys, shared, strict=True):
        arr = np.array(v.get_value(), order="C", copy=True)
        arr.flags.writeable = False
        data[key] = arr
    out_shapes = [tuple(int(d) for d in s) for s in shape_fn(flat(point0), *data.values())]
    out_sizes = [int(np.prod(s, dtype=int)) for s in out_shapes]
    n_expanded = int(sum(out_sizes))
    out_bounds = np.cumsum([0, *out_sizes])
    slices = [slice(int(a), int(b)) for a, b in zip(out_bounds[:-1], out_bounds[1:], strict=True)]

    var_keys = dict(zip(shared, keys, strict=True))
    user_data = make_user_data(var_keys, data)
    ndims = [data[k].ndim for k in keys]
    args = "".join(f", d{i}" for i in range(len(keys)))
    unpack = _unpack_source(keys, ndims)

    logp_jit = logp_fn.vm.jit_fn
    expand_jit = expand_fn.vm.jit_fn
    # the cache key: PyTensor's keys of the two graph functions (hashes of their generated
    # source), the data layout and this template; no key where PyTensor caches nothing
    inner = [CACHED_SRC_FUNCTIONS.get(getattr(f, "py_func", None)) for f in (logp_jit, expand_jit)]
    cache = bool(pytensor.config.numba__cache) and all(inner)
    layout = f"{user_data.dtype.descr} {[str(data[k].dtype) for k in keys]} {ndims}"

    env = {
        "__name__": __name__,
        "carray": numba.carray,
        "as_pointer": _as_pointer(),
        "np": np,
        "record_dtype": user_data.dtype,
        "logp_fn": logp_jit,
        "expand_fn": expand_jit,
        **{f"dtype{i}": data[k].dtype for i, k in enumerate(keys)},
    }
    T = numba.types
    signatures = {
        "logp": T.int64(
            T.uint64, T.CPointer(T.double), T.CPointer(T.double), T.CPointer(T.double), T.voidptr
        ),
        "expand": T.int64(
            T.uint64, T.uint64, T.CPointer(T.double), T.CPointer(T.double), T.voidptr
        ),
    }
    callbacks = {}
    for what, template in (("logp", LOGP_SRC), ("expand", EXPAND_SRC)):
        digest = hashlib.sha256(
            f"{TEMPLATE_VERSION} {what} {inner} {layout} {n_dim} {n_expanded}".encode()
        ).hexdigest()
        name = f"{what}_{digest[:20]}"
        src = template.format(
            name=name, n_dim=n_dim, n_expanded=n_expanded, unpack=unpack, args=args
        )
        py = compile_numba_function_src(
            src, name, global_env=dict(env), cache_key=digest if cache else None
        )
        callbacks[what] = numba.cfunc(signatures[what], cache=cache)(py)

    lock = threading.Lock()

    def initial_point(seed):
        with lock:  # PyMC's initial-point function is not thread-safe
            return flat(point_fn(seed))

    return CompiledPyMCModel(
        _n_dim=n_dim,
        dims={},
        _coords={},
        _shapes=dict(zip(out_names, out_shapes, strict=True)),
        compiled_logp_func=callbacks["logp"],
        compiled_expand_func=callbacks["expand"],
        initial_point_func=initial_point,
        shared_data=data,
        shared_var_keys=var_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=(out_names, slices, out_shapes),
        logp_func=logp_fn,
        expand_func=expand_fn,
        reparameterized_names=[
            model.rvs_to_values[rv].name
            for rv in free
            if model.rvs_to_transforms.get(rv) is not None
        ],
    )
