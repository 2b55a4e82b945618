"""Same seed, same numbers, in any process: fits are bit-identical across Python processes, and
values recomputed after ``bd.load`` in a new process equal those computed before saving."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    import numpy as np
    import pandas as pd

    import bayesdtr as bd

    assert Path(bd.__file__).resolve().parents[1] == Path(sys.argv[3]), bd.__file__
    out = Path(sys.argv[2])
    rng = np.random.default_rng(11)
    n = 150
    df = pd.DataFrame({"X1": rng.normal(size=n), "A1": rng.choice(["a", "b", "c"], n)})
    df["X2"] = df.X1 + rng.normal(size=n)
    df["A2"] = rng.integers(0, 2, n)
    df["Y"] = df.X1 + (df.A1 == "b") * (0.5 - df.X1) + df.A2 * (df.X2 - 0.2) + rng.normal(size=n)
    third = bd.KnownPropensity({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    half = bd.KnownPropensity({0: 0.5, 1: 0.5})
    stages = [
        bd.Stage("A1", main="X1", contrast="1 + X1", propensity=third),
        bd.Stage("A2", main="X1 + X2 + C(A1)", contrast="1 + X2", propensity=half),
    ]
    post = bd.DTRModel(df, stages, outcome="Y").fit(
        draws=150, chains=2, random_seed=2024, propagation="predictive", progressbar=False
    )
    post.to_netcdf(out / "post.nc")


    def values(p):
        regimes = {
            "optimal": "optimal",
            "static": bd.Regime.static(A1="b", A2=1, name="static"),
            "dynamic": bd.Regime.dynamic(
                {"A1": lambda d: np.where(d.X1 > 0, "a", "b"), "A2": lambda d: (d.X2 > 0).astype(int)},
                name="dynamic",
            ),
            "rule": p.rule(),
        }
        res = {}
        for label, reg in regimes.items():
            for m in ("q", "ipw", "aipw"):
                res[f"{label}/{m}"] = p.value(reg, method=m).values
        res["compare"] = p.compare(regimes).to_numpy()
        res["prob_optimal"] = p.prob_optimal(1).to_numpy()
        res["q2"] = p.q_values(2).values
        return res


    if sys.argv[1] == "fit":
        np.savez(out / "values.tmp.npz", **values(post))
        (out / "values.tmp.npz").rename(out / "values.npz")
    else:  # wait for the other process's file, then load it
        other = Path(sys.argv[4])
        t0 = time.monotonic()
        while not (other / "values.npz").exists():
            assert time.monotonic() - t0 < 600, "the first process did not finish"
            time.sleep(0.1)
        np.savez(out / "values_loaded.npz", **values(bd.load(other / "post.nc")))
    """
)


def _run(script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "random"}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _variables(path: Path) -> dict[str, np.ndarray]:
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    return {
        f"{node.path}/{name}": node[name].values for node in tree.subtree for name in node.data_vars
    }


def test_two_processes_give_bit_identical_draws_and_values(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # two separate processes fit at the same time; the second then loads the first one's file
    first = _run(script, "fit", str(a), str(ROOT))
    second = _run(script, "load", str(b), str(ROOT), str(a))
    out_a = first.communicate(timeout=600)[0]
    assert first.returncode == 0, out_a
    out_b = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out_b

    draws_a, draws_b = _variables(a / "post.nc"), _variables(b / "post.nc")
    assert draws_a.keys() == draws_b.keys() and any("/posterior/" in k for k in draws_a)
    for name in draws_a:
        np.testing.assert_array_equal(draws_a[name], draws_b[name], err_msg=name)

    before, after = np.load(a / "values.npz"), np.load(b / "values_loaded.npz")
    assert set(before.files) == set(after.files) and len(before.files) == 15
    for name in before.files:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    # the values differ between regimes and methods: the comparison above is not vacuous
    assert not np.array_equal(before["static/q"], before["static/aipw"])
    assert not np.array_equal(before["dynamic/q"], before["rule/q"])


@pytest.mark.integration
def test_a_reused_compiled_sampler_draws_as_a_fresh_one():
    """A compiled NUTS model serves fits of the same structure on other data (other n too:
    the chunks of ``value("optimal")``). Its draws must not depend on what it was compiled on:
    PyMC's initial point reads the model's data containers, which are set for every run."""
    import bayesdtr as bd
    from bayesdtr.inference import sampling
    from bayesdtr.inference.propensity_fit import fit_propensities

    scn = bd.scenario("two_stage_cont")
    model = bd.DTRModel(scn.sample(160, seed=4), scn.stages, outcome=scn.outcome)
    part = model.design.subset(np.arange(90))

    def gamma(design):
        props = fit_propensities(
            design,
            model.stage_priors,
            draws=60,
            tune=60,
            chains=1,
            sampler="nutpie",
            rng=np.random.default_rng(5),
        )
        return np.concatenate([p.gamma.ravel() for p in props])

    sampling.clear_cache()
    fresh = gamma(part)
    sampling.clear_cache()
    gamma(model.design)  # compiled on the whole data, 160 units
    np.testing.assert_array_equal(gamma(part), fresh)
