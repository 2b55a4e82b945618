"""Running the chunks of a large-n computation on a dask.distributed cluster.

A value posterior is a sum over units per posterior draw, computed block by block of draws
(:class:`~bayesdtr.values.BootstrapWeights` blocks); the blocks are independent given the
posterior, so they can run anywhere. :func:`map_blocks` runs a block function either in this
process (``client=None``, the default) or as one dask task per block:

- ``client="local"``: an embedded ``distributed.LocalCluster`` of threads in this process
  (``processes=False``, one worker, a thread per core): NumPy releases the GIL in the per-block
  array work, and nothing is copied;
- a ``distributed.Client``: the user's cluster (e.g. ``Client("tcp://scheduler:8786")``); what
  the blocks share (the posterior's design and draws) is scattered to every worker once;
- a scheduler address such as ``"tcp://host:8786"``: a client is opened and closed around the
  computation.

The results are gathered in block order, and every block computes exactly what it computes in
process, so the value draws are identical (``tests/test_cluster.py``). dask is imported only
here, and only when a client is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bayesdtr.exceptions import FitError

__all__ = ["check_client", "map_blocks", "open_client"]


def check_client(client: Any) -> None:
    """Refuse a ``client=`` that is neither None, ``"local"``, a scheduler address nor a Client."""
    if client is None or (isinstance(client, str) and (client == "local" or "://" in client)):
        return
    if _is_client(client):
        return
    raise FitError(
        f"client={client!r} must be None (compute in this process), 'local' (an embedded dask "
        "LocalCluster of threads), a distributed.Client, or a scheduler address such as "
        "'tcp://host:8786'."
    )


def _is_client(obj: Any) -> bool:
    if type(obj).__module__.split(".")[0] != "distributed":
        return False  # not a dask object: no need to import dask to know
    from distributed import Client

    return isinstance(obj, Client)


@contextlib.contextmanager
def open_client(client: Any) -> Iterator[Any]:
    """The ``distributed.Client`` that ``client`` names (see the module docstring); one this
    function opened is closed on exit."""
    check_client(client)
    if _is_client(client):
        yield client
        return
    from distributed import Client, LocalCluster

    if client == "local":
        cores = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
        cluster = LocalCluster(
            n_workers=1,
            threads_per_worker=max(1, cores),
            processes=False,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        cl = Client(cluster)
        try:
            yield cl
        finally:
            cl.close()
            cluster.close()
        return
    cl = Client(client)
    try:
        yield cl
    finally:
        cl.close()


def map_blocks(
    fn: Callable[..., Any],
    blocks: Sequence[Any],
    shared: Any,
    client: Any = None,
    combine: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """``[fn(block, shared) for block in blocks]``, in this process or as dask tasks.

    ``shared`` (e.g. the posterior's induction) is sent to the workers once; ``fn`` must not
    change it (the caller prepares every cache the blocks read first). With ``combine`` (an
    exact, order-free reduction such as a sum of integer counts) the results are reduced as they
    arrive and only the reduction is returned, so they are never all held at once.
    """
    if client is None:
        if combine is None:
            return [fn(block, shared) for block in blocks]
        acc = None
        for block in blocks:
            part = fn(block, shared)
            acc = part if acc is None else combine(acc, part)
        return acc
    from distributed import as_completed

    with open_client(client) as cl:
        shared_f = cl.scatter(shared, broadcast=True, hash=False)
        futures = cl.map(fn, list(blocks), shared=shared_f, pure=False)
        try:
            if combine is None:
                return cl.gather(futures)
            acc = None
            for fut in as_completed(futures):
                part = fut.result()
                fut.release()
                acc = part if acc is None else combine(acc, part)
            return acc
        finally:
            cl.cancel(futures)
