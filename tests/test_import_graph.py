"""The package's import graph: no cycle, and no import running back up a layer.

Module-level imports only (those under ``if TYPE_CHECKING:`` and inside functions are not run at
import time). Importing ``a.b.c`` also imports the packages ``a.b`` and ``a``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "plugins"
PACKAGE = "clientify_sync"
# Who may import whom: a layer never imports one above it.
LAYERS = {
    f"{PACKAGE}.api": {f"{PACKAGE}.errors", f"{PACKAGE}.api"},
    f"{PACKAGE}.engine": {f"{PACKAGE}.errors", f"{PACKAGE}.api", f"{PACKAGE}.engine", f"{PACKAGE}.watermark"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, name: str) -> set[str]:
    """The package modules ``path`` imports when it is imported."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if isinstance(node, (ast.Import, ast.ImportFrom)) else []:
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif child.level:  # relative
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (child.level - 1)]
                found.add(".".join([*base, *(child.module.split(".") if child.module else [])]))
            elif child.module:
                found.add(child.module)
                found.update(f"{child.module}.{a.name}" for a in child.names)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for imported in runtime_imports(path, name):
            parts = imported.split(".")
            # ``from pkg import name`` names a module or an attribute: keep the longest known module,
            # and every package on the way (importing a submodule runs its parents' __init__).
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    targets.add(candidate)
        edges[name] = targets
    return edges


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_no_import_runs_back_up_a_layer(layer):
    allowed = LAYERS[layer]
    bad = {
        (module, target)
        for module, targets in graph().items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target != PACKAGE and not any(target == a or target.startswith(a + ".") for a in allowed)
    }
    assert not bad, sorted(bad)


def test_the_graph_sees_imports():
    """The checks above would pass on an empty graph: make sure it is not one."""
    edges = graph()
    assert f"{PACKAGE}.engine.plan" in edges[f"{PACKAGE}.engine.planner"]
    assert f"{PACKAGE}.engine.ledger" in edges[f"{PACKAGE}.engine.reconcile"]  # the parent of ledger.candidates
    assert f"{PACKAGE}.engine.ledger.schema" in edges[f"{PACKAGE}.engine.ledger.candidates"]
