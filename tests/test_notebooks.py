"""The research notebooks in ``notebooks/``: committed with outputs, sized by
``BAYESDTR_NOTEBOOK_SIZE``, and (integration) executed at the small size into a temporary copy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = [
    "01_quickstart_bmi.ipynb",
    "02_adhd_smart.ipynb",
    "03_multisite_hierarchical.ipynb",
    "04_new_patients.ipynb",
    "05_simulation_study.ipynb",
    "06_survival_smart.ipynb",
]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _runner():
    spec = importlib.util.spec_from_file_location("notebooks_run", ROOT / "notebooks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_six_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_sized_and_committed_with_outputs(path):
    cells = _cells(path)
    code = [c for c in cells if c["cell_type"] == "code"]
    first = _text(code[0]["source"])
    assert 'os.environ.get("BAYESDTR_NOTEBOOK_SIZE", "small")' in first
    # a story, not just code: text between the cells
    assert sum(c["cell_type"] == "markdown" for c in cells) >= len(code) // 2
    assert all(c.get("execution_count") for c in code), "run `python notebooks/run.py` and commit"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "every notebook draws a plot"


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_at_small_size(path, tmp_path):
    for name in ("nbclient", "nbformat", "ipykernel"):
        pytest.importorskip(
            name, reason=f"{name} is not installed: pip install -e '.[test]' to execute notebooks"
        )
    out = tmp_path / path.name
    before = path.read_bytes()
    seconds = _runner().execute(path, size="small", out=out)
    assert path.read_bytes() == before  # the committed notebook is left alone
    code = [c for c in _cells(out) if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code)
    assert "size 'small'" in "".join(_text(o.get("text", "")) for o in code[0]["outputs"])
    assert seconds < 300
