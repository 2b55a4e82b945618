"""Fingerprints of posteriors over the shipped scenarios, to prove a refactor changes no result.

``python tests/golden.py`` (re)writes ``tests/data/golden_posteriors.json`` from the code as it
stands; ``tests/test_golden.py`` refits every case with the same seed and compares. Regenerate
only when a change of results is intended, and say so in the commit message.

NUTS cases are fitted each in a fresh process: within one long process the last bits of a NUTS
fit can depend on what ran before (alignment-dependent floating-point sums, 1e-8 relative after
stage 2's sampler, then amplified by the imputation refits), while a fresh process with the same
seed is bit-identical.

NUTS fingerprints are bit-identical on one machine and software stack, not across them: Numba
compiles the log density for the host CPU, and on an AMD EPYC machine without AVX-512 the stage-2
draws of ``chakraborty_ex3/mcmc`` differed from the first recording by 1e-7 relative, which the
stage-1 imputation refits amplify (the closed-form and Gibbs cases were identical). So a NUTS
case is also recorded per machine (:func:`machine_key`: the CPU LLVM targets and the versions of
the numerical stack) in ``tests/data/golden_nuts_machines.json``: ``python tests/golden.py
--machine`` adds this machine's recordings. ``tests/test_golden.py`` compares a NUTS case
strictly with this machine's recording; on a machine with none it accepts any recording that
matches, and otherwise checks that a second fresh process gives the same fingerprint and skips,
saying how to record one.

A fingerprint holds, for every array of every stage's posterior (and sample stats), its sum, its
sum of squares and its first four values; P(arm optimal) summed per arm; and the posterior mean
and SD of the plug-in optimal value and of a static regime's q value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parent / "data" / "golden_posteriors.json"
MACHINE_PATH = PATH.parent / "golden_nuts_machines.json"
SEED = 20261202


def cases() -> dict[str, dict]:
    """name -> settings: scenario, n, fit keyword arguments, and whether it runs NUTS."""
    import bayesdtr as bd

    out: dict[str, dict] = {}
    for name in bd.list_scenarios():
        if name in ("two_stage_cont", "multisite_smart"):
            continue
        if bd.scenario(name).family != "gaussian":  # survival_smart: NUTS only, tests/test_survival.py
            continue
        # dropout_smart samples its censoring model by NUTS: a fresh process, as the NUTS cases
        out[name] = dict(scenario=name, n=150, fit={}, mcmc=name == "dropout_smart")
    for prop in ("mean", "predictive", "augmented"):
        out[f"chakraborty_ex3/{prop}"] = dict(
            scenario="chakraborty_ex3", n=150, fit={"propagation": prop}, mcmc=False
        )
    out["chakraborty_ex3/robust"] = dict(
        scenario="chakraborty_ex3", n=150, fit={"robust": True}, mcmc=False
    )
    out["two_stage_cont/nuts_propensity"] = dict(
        scenario="two_stage_cont", n=150, fit={"tune": 100}, mcmc=True
    )
    # engine="auto" samples hierarchical Gaussian stages by Gibbs (NumPy, in process)
    out["multisite_smart/hierarchical"] = dict(
        scenario="multisite_smart", n=200, fit={"tune": 100, "imputations": 4}, mcmc=False
    )
    out["multisite_smart/nuts"] = dict(
        scenario="multisite_smart", n=200, fit={"engine": "mcmc", "tune": 100, "imputations": 4}, mcmc=True
    )
    out["chakraborty_ex3/mcmc"] = dict(
        scenario="chakraborty_ex3",
        n=150,
        fit={"engine": "mcmc", "tune": 100, "imputations": 4},
        mcmc=True,
    )
    return out


def fit_case(case: dict):
    import bayesdtr as bd

    scn = bd.scenario(case["scenario"])
    df = scn.sample(case["n"], seed=SEED)
    model = bd.DTRModel(df, scn.stages, outcome=scn.outcome, group=getattr(scn, "group", None))
    return model.fit(
        draws=60, chains=2, random_seed=SEED, progressbar=False, warn=False, **case["fit"]
    )


def _summary(a: np.ndarray) -> list[float]:
    a = np.asarray(a, dtype=float).ravel()
    return [float(a.sum()), float((a * a).sum())] + [float(x) for x in a[:4]]


def fingerprint(post) -> dict[str, list[float]]:
    import bayesdtr as bd

    out: dict[str, list[float]] = {}
    tree = post.tree
    for node in tree.subtree:
        if not node.path.startswith("/stage_") or node.name not in (
            "posterior",
            "sample_stats",
            "propensity",
        ):
            continue
        for var in sorted(node.data_vars):
            out[f"{node.path}/{var}"] = _summary(node[var].values)
    for k, treat in enumerate(post.design.treatments):
        p = post.prob_optimal(stage=treat).values
        out[f"prob_optimal/{k}"] = [float(x) for x in p.reshape(-1, p.shape[-1]).sum(axis=0)]
    v = post.value("optimal", crossfit=0).values
    out["value/optimal_plugin"] = [float(v.mean()), float(v.std())]
    first = {
        t: sd.arms[0] for t, sd in zip(post.design.treatments, post.design.stages, strict=True)
    }
    v = post.value(bd.Regime.static(**first), method="q").values
    out["value/static_q"] = [float(v.mean()), float(v.std())]
    return out


def fingerprint_of(name: str) -> dict[str, list[float]]:
    """The fingerprint of one case; NUTS cases in a fresh Python process."""
    case = cases()[name]
    if not case["mcmc"]:
        return fingerprint(fit_case(case))
    out = subprocess.run(
        [sys.executable, __file__, "--one", name],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"golden case {name!r} failed in its subprocess:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_key() -> str:
    """The CPU that Numba compiles for and the numerical stack's versions: NUTS fingerprints are
    bit-identical for one key."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    stack = ("numba", "llvmlite", "numpy", "pytensor", "pymc", "nutpie")
    return " ".join([f"cpu={llvm.get_host_cpu_name()}"] + [f"{p}={version(p)}" for p in stack])


def machine_recordings() -> dict[str, dict[str, dict[str, list[float]]]]:
    """``MACHINE_PATH``: case -> machine key -> fingerprint (empty before the first recording)."""
    return json.loads(MACHINE_PATH.read_text()) if MACHINE_PATH.exists() else {}


def nuts_recordings(name: str) -> dict[str, dict[str, list[float]]]:
    """Every recorded fingerprint of a NUTS case: the first recording (machine not recorded) and
    one per machine key."""
    golden = json.loads(PATH.read_text())
    out = {"first recording": golden[name]} if name in golden else {}
    return out | machine_recordings().get(name, {})


def record_machine() -> None:
    """Add this machine's fingerprints of every NUTS case to ``MACHINE_PATH``."""
    key = machine_key()
    machines = machine_recordings()
    for name, case in cases().items():
        if case["mcmc"]:
            machines.setdefault(name, {})[key] = fingerprint_of(name)
            print(name, "recorded for", key, flush=True)
    MACHINE_PATH.write_text(json.dumps(machines, indent=1, sort_keys=True) + "\n")


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(fingerprint(fit_case(cases()[sys.argv[2]]))))
        return
    if sys.argv[1:2] == ["--machine"]:
        record_machine()
        return
    results = {}
    only = sys.argv[1:]
    for name in cases():
        if only and name not in only:
            continue
        results[name] = fingerprint_of(name)
        print(name, "done", flush=True)
    old = json.loads(PATH.read_text()) if (only and PATH.exists()) else {}
    old.update(results)
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
