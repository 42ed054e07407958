"""The package's import graph: no cycle, and no import running back up a layer.

Every import counts, wherever it is written: at module level, under ``if TYPE_CHECKING:`` (a type
is a dependency too) and inside functions (a deferred import still runs). Importing ``a.b.c`` also
imports the packages ``a.b`` and ``a``.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "plugins"
PACKAGE = "clientify_sync"
P = PACKAGE + "."
# Who may import whom, by module prefix (the longest prefix that names a module decides). The bottom:
# errors, vocabulary and facts import nothing of the package. The HTTP clients know only those; the
# engine takes its facts from them too, and only its adapters (sides, job) hold the clients.
LAYERS = {
    f"{P}errors": set(),
    f"{P}vocabulary": set(),
    f"{P}facts": set(),
    f"{P}watermark": {f"{P}errors", f"{P}vocabulary"},
    f"{P}api": {f"{P}errors", f"{P}facts", f"{P}api"},
    f"{P}engine": {f"{P}errors", f"{P}facts", f"{P}vocabulary", f"{P}watermark", f"{P}engine"},
    f"{P}engine.sides": {f"{P}errors", f"{P}facts", f"{P}vocabulary", f"{P}engine", f"{P}api"},
    f"{P}engine.job": {f"{P}errors", f"{P}facts", f"{P}vocabulary", f"{P}watermark", f"{P}engine", f"{P}api"},
}
# Arrows inside a layer that run back up: the planner's rules take their own types, not the ledger's.
FORBIDDEN = {(f"{P}engine.planner", f"{P}engine.ledger")}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str, package: str = PACKAGE) -> set[str]:
    """The package modules ``path`` imports, anywhere in it (``TYPE_CHECKING`` and functions too)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = [*base, *(node.module.split(".") if node.module else [])]
            found.add(".".join(module))
            found.update(".".join([*module, a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == package or m.startswith(package + ".")}


@cache
def graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for imported in imports(path, name, package):
            parts = imported.split(".")
            # ``from pkg import name`` names a module or an attribute: keep the longest known module,
            # and every package on the way (importing a submodule runs its parents' __init__).
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    targets.add(candidate)
        edges[name] = targets
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def layer_of(module: str) -> str | None:
    """The longest ``LAYERS`` prefix naming ``module`` (itself or a package above it)."""
    owners = [k for k in LAYERS if module == k or module.startswith(k + ".")]
    return max(owners, key=len) if owners else None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_through_type_checking_imports_is_found(tmp_path: Path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import B\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\nB = 1\n"
    )
    (pkg / "c.py").write_text("def f():\n    from . import a\n")  # a deferred, relative import
    assert find_cycle(graph(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_no_import_runs_back_up_a_layer(layer):
    allowed = LAYERS[layer]
    bad = {
        (module, target)
        for module, targets in graph().items()
        if layer_of(module) == layer
        for target in targets
        if target != PACKAGE and not any(target == a or target.startswith(a + ".") for a in allowed)
    }
    assert not bad, sorted(bad)


def test_no_forbidden_arrow_inside_a_layer():
    edges = graph()
    bad = {
        (module, target)
        for module, targets in edges.items()
        for target in targets
        for low, high in FORBIDDEN
        if (module == low or module.startswith(low + "."))
        and (target == high or target.startswith(high + "."))
    }
    assert not bad, sorted(bad)


def test_the_graph_sees_imports():
    """The checks above would pass on an empty graph: make sure it is not one."""
    edges = graph()
    assert f"{P}engine.plan" in edges[f"{P}engine.planner"]
    assert f"{P}engine.ledger" in edges[f"{P}engine.reconcile"]  # the parent of ledger.candidates
    assert f"{P}engine.ledger.schema" in edges[f"{P}engine.ledger.candidates"]
    assert f"{P}engine.budget" in edges[f"{P}hooks.base"]  # an import inside a function counts
