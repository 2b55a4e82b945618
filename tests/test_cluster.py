"""Value blocks on a dask.distributed cluster (``value(client=)``, :mod:`bayesdtr.cluster`).

The blocks of draws of a value run as dask tasks on a tiny in-process cluster here (threads,
``processes=False``, so the test stays fast); the value draws and the P(optimal) tallies must be
identical to the in-process computation. One test connects by scheduler address to a worker in
another process (pickled tasks over TCP, the path to a remote cluster).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import bayesdtr as bd
from bayesdtr.exceptions import FitError

FIT = dict(draws=300, chains=2, random_seed=5, progressbar=False)


@pytest.fixture(scope="module")
def model():
    scn = bd.scenario("chakraborty_ex3")  # known propensities: IPW/AIPW without NUTS
    return bd.DTRModel(scn.sample(300, seed=8), scn.stages, outcome="Y")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    cl = Client(cluster)
    yield cl
    cl.close()
    cluster.close()


def _values(post, client):
    static = bd.Regime.static(A1=1, A2=-1)
    return {
        "q_static": post.value(static, method="q", client=client).values,
        "aipw_static": post.value(static, method="aipw", client=client),
        "ipw_optimal": post.value("optimal", method="ipw", crossfit=0, client=client).values,
        "q_optimal": post.value("optimal", method="q", crossfit=0, client=client).values,
    }


def test_values_on_a_cluster_are_identical_to_in_process(model, client):
    here = model.fit(**FIT)
    assert len(list(here.bootstrap.chunks())) >= 3  # several blocks, gathered in order
    want = _values(here, None)
    there = model.fit(**FIT)
    got = _values(there, client)
    for key in want:
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]), err_msg=key)
    assert got["aipw_static"].attrs["weight_ess"] == want["aipw_static"].attrs["weight_ess"]
    # the tallies the value pass skipped on the cluster are made by prob_optimal's own pass
    np.testing.assert_array_equal(there.prob_optimal(1).to_numpy(), here.prob_optimal(1).to_numpy())
    np.testing.assert_array_equal(there.prob_optimal(2).to_numpy(), here.prob_optimal(2).to_numpy())
    # and a different posterior gives different draws (the comparison can fail)
    other = _values(model.fit(**{**FIT, "random_seed": 6}), client)
    assert not np.allclose(other["q_static"], want["q_static"])


def test_compare_passes_the_client(model, client):
    regimes = {"a": bd.Regime.static(A1=1, A2=1), "b": bd.Regime.static(A1=-1, A2=1)}
    got = model.fit(**FIT).compare(regimes, method="aipw", client=client)
    want = model.fit(**FIT).compare(regimes, method="aipw")
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_prob_optimal_on_a_cluster_has_the_same_counts(model, client):
    post = model.fit(**{**FIT, "chunk_elements": 20_000})  # several blocks of draws per stage
    assert post.induction.chunk_size(0) < post.n_samples
    want = model.fit(**FIT)
    for stage in (1, 2):
        got = post.prob_optimal(stage, client=client)
        np.testing.assert_array_equal(got.to_numpy(), want.prob_optimal(stage).to_numpy())
        assert got.index.equals(want.prob_optimal(stage).index)
    assert 0 < float(post.prob_optimal(1)[1].mean()) < 1  # not a degenerate rule
    with pytest.raises(FitError, match="with data= .* leave client=None"):
        post.prob_optimal(1, data=post.design.data.head(5), client=client)


def test_embedded_local_cluster(model):
    post = model.fit(**FIT)
    static = bd.Regime.static(A1=-1, A2=-1)
    local = post.value(static, method="q", client="local").values
    np.testing.assert_array_equal(local, model.fit(**FIT).value(static, method="q").values)


def test_client_refusals(model):
    post = model.fit(**FIT)
    with pytest.raises(FitError, match=r"client=42 must be None .* 'local' .* 'tcp://host:8786'"):
        post.value(bd.Regime.static(A1=1, A2=1), client=42)
    with pytest.raises(FitError, match="sample splitting .* Pass crossfit=0"):
        post.value("optimal", client="local")
    pred = model.fit(**FIT, propagation="predictive")
    with pytest.raises(FitError, match="propagation='predictive'"):
        pred.value(bd.Regime.static(A1=1, A2=1), client="local")
    # P(optimal) propagates nothing: it runs there
    np.testing.assert_array_equal(
        pred.prob_optimal(1, client="local").to_numpy(),
        model.fit(**FIT, propagation="predictive").prob_optimal(1).to_numpy(),
    )


def test_scheduler_address_with_worker_processes(model):
    """``client="tcp://..."``: the path to a scheduler on other machines. The worker is a separate
    process, so the tasks and the posterior they close over travel pickled over TCP, as they would
    to a remote machine; the value draws must still be identical."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        static = bd.Regime.static(A1=1, A2=1)
        got = model.fit(**FIT).value(static, method="q", client=address).values
        with Client(address) as cl:
            pids = set(cl.run(os.getpid).values())
    assert pids and os.getpid() not in pids
    want = model.fit(**FIT).value(static, method="q").values
    np.testing.assert_array_equal(got, want)
