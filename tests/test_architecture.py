"""The import graph of the package: no circles, and files know no model or posterior.

Built with ``ast`` from the source files, so it sees every import, including deferred ones inside
functions (a deferred import still closes a circle; it only hides it until call time). Imports
under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
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
