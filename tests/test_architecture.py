"""The import graph of the package: no circles, and files know no model or posterior.

Built with ``ast`` from the source files, so it sees every import, including deferred ones inside
functions (a deferred import still closes a circle; it only hides it until call time). Imports
under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesdtr"

#: Circles that exist today outside this test's scope, each with the issue that removes it. A
#: circle not listed here fails the test, and so does a listed one that has gone (update the list).
KNOWN_CIRCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, modules: set[str]) -> set[str]:
    """bayesdtr modules that ``module`` imports anywhere (module level or inside functions)."""
    out: set[str] = set()
    package = (
        module
        if (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()
        else module.rpartition(".")[0]
    )

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "bayesdtr":
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] == "bayesdtr":
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    out.add(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out.discard(module)
    return {m for m in out if m in modules}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(ast.parse(p.read_text(), str(p)), m, set(mods)) for m, p in mods.items()}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_new_import_circles():
    found = set(circles(import_graph()))
    new = found - set(KNOWN_CIRCLES)
    assert not new, f"import circles between bayesdtr modules: {[sorted(c) for c in new]}"
    gone = set(KNOWN_CIRCLES) - found
    assert not gone, (
        f"known circles that no longer exist (remove them from KNOWN_CIRCLES): {[sorted(c) for c in gone]}"
    )


def test_io_knows_no_model_or_posterior():
    graph = import_graph()
    assert not graph["bayesdtr.io"] & {"bayesdtr.model", "bayesdtr.posterior", "bayesdtr"}, graph[
        "bayesdtr.io"
    ]
    # nor through another module: nothing io reaches imports them
    reach, todo = set(), ["bayesdtr.io"]
    while todo:
        for m in graph[todo.pop()] - reach:
            reach.add(m)
            todo.append(m)
    assert not reach & {"bayesdtr.model", "bayesdtr.posterior"}, sorted(reach)


@pytest.mark.parametrize(
    ("source", "edges"),
    [
        ("import bayesdtr.model\n", {"bayesdtr.model"}),
        ("def f():\n    from bayesdtr.posterior import DTRPosterior\n", {"bayesdtr.posterior"}),
        ("from bayesdtr.data import design\n", {"bayesdtr.data.design"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bayesdtr.model import DTRModel\n",
            set(),
        ),
    ],
)
def test_the_graph_sees_every_kind_of_import(source, edges):
    """The checks above can fail: module-level, deferred and from-package imports are edges."""
    mods = set(_modules())
    assert _imports(ast.parse(source), "bayesdtr.io", mods) == edges


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


# --------------------------------------------------------------------------- the module map
#: ARCHITECTURE.md, whose "Module map" table must name every module of the package.
ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"


def table_paths(text: str) -> set[str]:
    """Paths named in the first column of the "## Module map" table, relative to ``bayesdtr/``.

    Every backticked name in the first cell counts (``cli.py``, ``__main__.py``); a leading
    ``bayesdtr/`` is dropped; a name ending in ``/`` is a package folder that covers its modules;
    a name with ``*`` is a glob (package data).
    """
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    out: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if not line.startswith("|") or len(cells) < 3 or set(cells[1].strip()) <= {"-", " "}:
            continue
        for name in re.findall(r"`([^`]+)`", cells[1]):
            out.add(name.removeprefix("bayesdtr/"))
    return out


def modules_without_row(package: Path, paths: set[str]) -> list[str]:
    """Modules of ``package`` that no table path covers (exactly, or through a folder row).

    Left out: the ``__init__.py`` of subpackages (the folder is the unit; the table describes the
    package's public names through its top-level ``__init__.py`` only). Private ``_x.py`` modules
    are NOT left out: each needs a row, or a folder row (``simulate/``) that covers it.
    """
    folders = tuple(p for p in paths if p.endswith("/"))
    missing = []
    for f in sorted(package.rglob("*.py")):
        rel = f.relative_to(package).as_posix()
        if rel.endswith("/__init__.py"):
            continue
        if rel not in paths and not rel.startswith(folders):
            missing.append(rel)
    return missing


def rows_without_path(package: Path, paths: set[str]) -> list[str]:
    """Table paths that name nothing in ``package`` (a file, a folder, or a glob with matches)."""
    gone = []
    for p in sorted(paths):
        exists = any(package.glob(p)) if "*" in p else (package / p).exists()
        if not exists or (p.endswith("/") != (package / p).is_dir() and "*" not in p):
            gone.append(p)
    return gone


def test_every_module_has_a_row_in_architecture_md():
    paths = table_paths(ARCHITECTURE.read_text())
    missing = modules_without_row(PACKAGE, paths)
    assert not missing, (
        f"modules with no row in ARCHITECTURE.md's module map: {missing}; add a row "
        "(`path/module.py` | concept), or a folder row (`inference/engines/`) that covers them"
    )


def test_every_row_of_architecture_md_exists():
    gone = rows_without_path(PACKAGE, table_paths(ARCHITECTURE.read_text()))
    assert not gone, f"ARCHITECTURE.md's module map names paths that do not exist: {gone}"


def test_the_module_map_check_can_fail(tmp_path):
    """A module added without a row, and a row whose module went, are both caught."""
    pkg = tmp_path / "bayesdtr"
    for rel in (
        "__init__.py",
        "io.py",
        "inference/__init__.py",
        "inference/engines/__init__.py",
        "inference/engines/nig.py",
        "models/families.py",
        "simulate/_base.py",
    ):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("")
    text = (
        "## Module map\n\n| module | concept |\n|---|---|\n| `bayesdtr/__init__.py` | names |\n"
        "| `io.py`, `comparison.py` | files |\n| `inference/engines/` | engines |\n"
        "| `simulate/` | scenarios |\n\n## Next\n| `models/families.py` | not in the map |\n"
    )
    paths = table_paths(text)
    assert paths == {"__init__.py", "io.py", "comparison.py", "inference/engines/", "simulate/"}
    assert modules_without_row(pkg, paths) == ["models/families.py"]
    assert rows_without_path(pkg, paths) == ["comparison.py"]


def _private_imports(source: str, module: str, package: str) -> list[str]:
    """``from bayesdtr.x import _name`` anywhere in ``source`` (dunders such as ``__version__``
    are public by convention; private *modules* of the importer's own package, e.g.
    ``simulate._chakraborty`` from ``simulate.scenarios``, are allowed)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith("bayesdtr"):
            continue
        src = node.module or ""
        private_module = any(part.startswith("_") and not part.startswith("__") for part in src.split("."))
        if private_module and src.rpartition(".")[0] != package and src != "bayesdtr._version":
            out.append(f"{module}: from {src} import ...")
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                out.append(f"{module}: from {src} import {alias.name}")
    return out


def test_no_private_names_imported_across_modules():
    """A module uses another module's public names only (issue 11): a private name imported
    across modules is an interface nobody declared."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found += _private_imports(path.read_text(), module, package)
    assert not found, f"private names imported across modules: {found}"


def test_the_private_import_check_can_fail():
    src = "def f():\n    from bayesdtr.data.design import _hidden\nfrom bayesdtr.simulate._kstage import KStage\n"
    assert set(_private_imports(src, "bayesdtr.posterior", "bayesdtr")) == {
        "bayesdtr.posterior: from bayesdtr.data.design import _hidden",
        "bayesdtr.posterior: from bayesdtr.simulate._kstage import ...",
    }
    assert _private_imports(src.splitlines()[2], "bayesdtr.simulate.scenarios", "bayesdtr.simulate") == []


def test_import_bayesdtr_loads_no_sampler_or_plotting_stack():
    """``import bayesdtr`` stays light (issue 13): PyMC, PyTensor, nutpie, ArviZ, pymc-extras,
    matplotlib, dask and h5py are imported when a fit, a file, a plot or a study needs them."""
    import subprocess
    import sys

    heavy = ["pymc", "pytensor", "nutpie", "arviz", "pymc_extras", "matplotlib", "dask", "distributed", "h5py"]
    code = f"import sys, bayesdtr; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
