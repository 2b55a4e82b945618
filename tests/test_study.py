"""Tests of the simulation-study runner (bayesdtr.simulate.study) and ``bayesdtr simulate``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.simulate.methods import MethodResult, seed_int
from bayesdtr.simulate.study import data_seed, method_seed, summarize

ROOT = Path(__file__).resolve().parents[1]
SCN = "chakraborty_ex3"
FAST = {"draws": 50, "chains": 2}


def _study(**kw):
    args = dict(n=100, reps=3, seed=5, client="serial", progressbar=False,
                methods={"bayes": FAST, "ols": {"baseline": "qlearning", "bootstrap": 100}})
    args.update(kw)
    return bd.simulation_study(SCN, **args)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_seeds_follow_spawn_and_methods_are_independent():
    ss = np.random.SeedSequence(11).spawn(7)[4]
    assert data_seed(11, 4) == seed_int(ss.spawn(2)[0])
    assert method_seed(11, 4, "m").spawn_key[:2] == (4, 1)
    one = _study(methods={"bayes": FAST}, reps=2)
    two = _study(reps=2)
    _same(one.table, two.table[two.table["method"] == "bayes"].reset_index(drop=True))


def test_table_scores_against_truth():
    res = _study(reps=2)
    tab = res.table
    assert list(tab.columns) == ["replicate", "method", "estimand", "estimate", "lower", "upper",
                                 "truth", "covered", "width", "seconds", "error"]
    scn = bd.scenario(SCN)
    psi10 = tab[(tab.estimand == "psi[A1][Intercept][1]")]
    assert np.allclose(psi10["truth"], scn.truth["psi"]["A1"][0])
    vo = tab[tab.estimand == "value_optimal"]
    assert np.allclose(vo["truth"], scn.true_value("optimal"))
    assert (vo["covered"] == ((vo["lower"] <= vo["truth"]) & (vo["truth"] <= vo["upper"]))).all()
    rv = tab[tab.estimand == "rule_value"].set_index(["replicate", "method"])["estimate"]
    reg = tab[tab.estimand == "regret"].set_index(["replicate", "method"])["estimate"]
    assert np.allclose(reg, scn.true_value("optimal") - rv)
    vr = tab[tab.estimand == "value_rule"].set_index(["replicate", "method"])["truth"]
    assert np.allclose(vr, rv)
    assert set(tab.estimand) >= {"correct[A1]", "correct[A2]"}
    assert tab.groupby(["replicate", "method", "estimand"]).size().eq(1).all()


def test_serial_equals_local_cluster_with_two_processes():
    from distributed import Client, LocalCluster

    kw = dict(reps=6, methods={"bayes": FAST}, estimands=["psi", "value_optimal", "correct"])
    serial = _study(**kw)
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        files = client.run(lambda: __import__("bayesdtr").__file__)
        assert all(f == bd.__file__ for f in files.values())  # the workers run this checkout
        dist = _study(client=client, **kw)
    _same(serial.table, dist.table)
    threads = _study(client="threads", **kw)
    _same(serial.table, threads.table)


def boom_on_negative(df, scenario, seed_sequence, *, stages, level):
    if df["Y"].iloc[0] < 0:
        raise RuntimeError("negative first outcome")
    return MethodResult(estimates={"value_optimal": (0.0, -1.0, 1.0)})


def test_a_replicate_that_raises_is_recorded_and_the_study_finishes():
    res = _study(reps=6, methods={"boom": boom_on_negative}, estimands=["value_optimal", "regret"])
    tab = res.table
    failed = tab[tab.error != ""]
    assert 0 < failed.replicate.nunique() < 6
    assert failed.error.str.contains("RuntimeError: negative first outcome").all()
    assert set(failed.estimand) == {"value_optimal", "regret"}  # one row per requested estimand
    ok = tab[tab.error == ""]
    assert set(ok.estimand) == {"value_optimal"}  # no rule: no regret row
    s = res.summary.set_index("estimand")
    assert s.loc["value_optimal", "n_failed"] == failed.replicate.nunique()
    assert s.loc["value_optimal", "n_ok"] == 6 - failed.replicate.nunique()


def test_summary_matches_a_hand_computation():
    tab = pd.DataFrame({
        "replicate": [0, 1, 2, 3, 0, 1],
        "method": ["a", "a", "a", "a", "b", "b"],
        "estimand": "value_optimal",
        "estimate": [1.0, 2.0, 4.0, np.nan, 3.0, 3.0],
        "lower": [0.0, 1.5, 3.5, np.nan, 2.0, 2.5],
        "upper": [2.0, 2.5, 4.5, np.nan, 4.0, 3.5],
        "truth": 2.0,
        "covered": pd.array([True, True, False, pd.NA, True, False], dtype="boolean"),
        "width": [2.0, 1.0, 1.0, np.nan, 2.0, 1.0],
        "seconds": [1.0, 2.0, 3.0, 4.0, 0.5, 0.5],
        "error": ["", "", "", "ValueError: x", "", ""],
    })
    s = summarize(tab).set_index("method")
    a = s.loc["a"]
    assert a["n_ok"] == 3 and a["n_failed"] == 1
    assert a["mean"] == pytest.approx(7 / 3)
    assert a["bias"] == pytest.approx((-1 + 0 + 2) / 3)
    assert a["rmse"] == pytest.approx(np.sqrt((1 + 0 + 4) / 3))
    assert a["coverage"] == pytest.approx(2 / 3)
    assert a["coverage_mcse"] == pytest.approx(np.sqrt(2 / 3 * 1 / 3 / 3))
    assert a["mean_width"] == pytest.approx(4 / 3)
    assert a["mean_seconds"] == pytest.approx(2.0)
    b = s.loc["b"]
    assert (b["coverage"], b["bias"], b["rmse"]) == pytest.approx((0.5, 1.0, 1.0))


_KILLED = """
import sys
import bayesdtr as bd
bd.simulation_study({scn!r}, n=200, reps={reps}, seed=2, client="serial", store=sys.argv[1],
    methods={{"ols": {{"baseline": "qlearning", "bootstrap": 3000}}}}, progressbar=False)
"""


def test_killed_study_resumes_with_every_replicate_once(tmp_path):
    reps = 12
    store = tmp_path / "store"
    script = tmp_path / "run.py"
    script.write_text(_KILLED.format(scn=SCN, reps=reps))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(store)], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(store.glob("rep-*.h5"))) < 2:
            assert proc.poll() is None, "the study ended before it could be killed"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done = len(list(store.glob("rep-*.h5")))
    assert 2 <= done < reps
    (store / ".rep-000011.deadbeef.tmp").write_bytes(b"half a file")  # as if killed mid-write
    kw = dict(n=200, reps=reps, seed=2, client="serial", progressbar=False,
              methods={"ols": {"baseline": "qlearning", "bootstrap": 3000}})
    resumed = bd.simulation_study(SCN, store=store, **kw)
    assert not list(store.glob(".rep-*.tmp"))
    assert len(list(store.glob("rep-*.h5"))) == reps
    assert resumed.table.groupby(["replicate", "method", "estimand"]).size().eq(1).all()
    assert sorted(resumed.table.replicate.unique()) == list(range(reps))
    _same(resumed.table, bd.simulation_study(SCN, **kw).table)
    again = bd.simulation_study(SCN, store=store, **kw)  # everything read back, nothing rerun
    pd.testing.assert_frame_equal(again.table, resumed.table)


def test_store_refuses_other_settings_and_grows_with_reps(tmp_path):
    kw = dict(methods={"bayes": FAST}, estimands=["value_optimal"], store=tmp_path / "s")
    _study(reps=2, **kw)
    more = _study(reps=3, **kw)
    assert sorted(more.table.replicate.unique()) == [0, 1, 2]
    with pytest.raises(bd.SpecificationError, match=r"different settings \(n: stored 100, now 90\)"):
        _study(reps=2, n=90, **kw)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(bd.SpecificationError, match="non-empty directory without a study manifest"):
        _study(reps=2, methods={"bayes": FAST}, store=tmp_path / "other")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n": 0}, r"n must be an integer >= 1; got 0"),
        ({"reps": 2.5}, r"reps must be an integer >= 1; got 2.5"),
        ({"seed": -1}, r"seed must be an integer >= 0"),
        ({"level": 1.5}, r"level must be a number in \(0, 1\)"),
        ({"methods": {"x": "nope"}}, r"names the baseline 'nope', which is not registered.*'qlearning'"),
        ({"methods": {"x": {"propagaton": "mean"}}}, r"unknown fit setting\(s\) \['propagaton'\]"),
        ({"methods": {"x": lambda df: None}}, r"cannot be called as f\(df, scenario, seed_sequence"),
        ({"methods": []}, r"methods must be a non-empty dict"),
        ({"estimands": ["value"]}, r"Unknown estimand 'value'. Allowed: \['psi'"),
        ({"client": "cluster"}, r"client must be None \(embedded LocalCluster\), 'serial'"),
    ],
)
def test_bad_arguments_raise_bayesdtr_errors(kw, match):
    with pytest.raises(bd.SpecificationError, match=match):
        _study(**kw)


def test_unknown_scenario_and_missing_interface():
    with pytest.raises(bd.SpecificationError, match="Unknown scenario 'nope'"):
        bd.simulation_study("nope", n=10, reps=1, seed=1)
    with pytest.raises(bd.SpecificationError, match=r"lacks \['sample', 'true_value'"):
        bd.simulation_study(object(), n=10, reps=1, seed=1, stages=bd.scenario(SCN).stages)
    with pytest.raises(bd.SpecificationError, match="has no truth"):
        bd.simulation_study("multisite_smart", n=10, reps=1, seed=1, estimands=["psi"])


def test_plots_return_axes():
    import matplotlib.pyplot as plt

    res = _study(reps=2)
    ax = res.plot()
    assert ax.get_ylabel().startswith("coverage")
    assert len(ax.get_xticklabels()) == 7  # five psi, two values
    fig, ax2 = plt.subplots()
    assert res.plot(kind="bias", ax=ax2) is ax2
    plt.close("all")


def test_cli_simulate_writes_three_files(tmp_path, capsys):
    from bayesdtr.cli import main

    out = tmp_path / "out"
    rc = main(["simulate", SCN, "--n", "80", "--reps", "2", "--seed", "1", "--out", str(out),
               "--serial", "--draws", "50", "--chains", "2", "--no-progress"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"table.csv", "summary.csv", "coverage.png"}
    tab = pd.read_csv(out / "table.csv")
    assert set(tab.method) == {"bayes", "qlearning"}
    assert pd.read_csv(out / "summary.csv").shape[0] == tab.groupby(["method", "estimand"]).ngroups
    capsys.readouterr()
    rc = main(["simulate", "nope", "--n", "80", "--reps", "2", "--seed", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("bayesdtr: error: Unknown scenario 'nope'") and err.count("\n") == 1
    rc = main(["simulate", SCN, "--n", "80", "--reps", "2", "--seed", "1", "--out", str(out),
               "--methods", "bayes,magic", "--serial"])
    assert rc == 2 and "unknown method 'magic'" in capsys.readouterr().err


def test_progress_bar_on_stderr_and_off_in_ci(capsys, monkeypatch):
    kw = dict(reps=2, methods={"boom": boom_on_negative}, estimands=["value_optimal"], progressbar=True)
    monkeypatch.delenv("CI", raising=False)
    _study(**kw)
    err = capsys.readouterr().err
    assert "2/2 replicates" in err and "failed" in err and "ETA" in err
    monkeypatch.setenv("CI", "true")
    _study(**kw)
    assert capsys.readouterr().err == ""
