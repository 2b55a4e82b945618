"""``import bayesdtr`` is light and its public names resolve on first access (issue 13).

The package's ``__init__`` imports only ``__version__`` and the exceptions; every other public
name is imported from its module on first access (PEP 562 ``__getattr__``). These tests check,
each in a fresh interpreter, that no formula, array-label or SciPy stack is loaded by the import,
and that the lazy names are the very objects their modules define.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bayesdtr

#: Loaded only when a model, a file, a design or a truth needs them.
NOT_AT_IMPORT = ["formulaic", "xarray", "scipy", "pandas"]


def loaded_after(statement: str, names: list[str]) -> list[str]:
    """Which of ``names`` are in ``sys.modules`` after ``statement``, in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {names!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_bayesdtr_loads_no_formula_array_or_scipy_stack():
    assert loaded_after("import bayesdtr", NOT_AT_IMPORT) == []


def test_the_check_sees_a_loaded_module():
    """The subprocess check can fail: a name the statement does load is reported."""
    needed = ["xarray", "scipy", "pandas"]  # a model needs them; formulaic waits for a formula
    assert loaded_after("import bayesdtr; bayesdtr.DTRModel", needed) == needed


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("from bayesdtr import load_data; load_data('bmi')", ["formulaic", "scipy", "xarray"]),
        ("import bayesdtr as bd; bd.scenario('two_stage_cont')", ["formulaic", "scipy", "xarray"]),
        ("import bayesdtr as bd; bd.Stage('A1', main='1 + x')", ["formulaic", "scipy", "xarray"]),
    ],
)
def test_first_use_of_data_and_scenarios_stays_light(statement, absent):
    """Loading a dataset, a scenario or declaring a stage reads no formula yet."""
    assert loaded_after(statement, absent) == []


def test_every_public_name_resolves_to_its_modules_object():
    import importlib

    for name, module in bayesdtr.LAZY.items():
        assert getattr(bayesdtr, name) is getattr(importlib.import_module(module), name), name
    assert set(bayesdtr.LAZY) <= set(bayesdtr.__all__)
    missing = [n for n in bayesdtr.__all__ if not hasattr(bayesdtr, n)]
    assert not missing, missing
    assert set(bayesdtr.__all__) <= set(dir(bayesdtr))


def test_star_import_gives_every_public_name():
    ns: dict = {}
    exec("from bayesdtr import *", ns)
    assert set(bayesdtr.__all__) <= set(ns)


def test_submodules_and_unknown_names():
    assert bayesdtr.io.__name__ == "bayesdtr.io"
    with pytest.raises(AttributeError, match="has no attribute 'DTRModle'"):
        bayesdtr.DTRModle  # noqa: B018
