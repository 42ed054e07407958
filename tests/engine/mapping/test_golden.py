"""Every mapper's output on its golden corpus is the one recorded for its ``MAPPING_VERSION``
(``tests/engine/mapping/golden``): a change of output without a bump would leave stored records mapped
the old way, because staging skips an unchanged raw record while the fingerprint is the same."""

from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path

import pytest

from clientify_sync.engine.mapping.facturama import FacturamaProductMapper
from clientify_sync.engine.staging import MAPPING_LIBRARIES
from tests.engine.mapping.golden import (
    MIN_RECORDS,
    NeedsBump,
    check,
    load,
    mappers,
    path_of,
    updated,
)
from tests.test_import_graph import ROOT, graph, module_name

MAPPERS = mappers()


def test_every_mapper_is_found_and_has_a_version_and_a_corpus():
    names = {cls.__name__ for cls in MAPPERS}
    assert {"FacturamaClientMapper", "ClientifyBudgetMapper", "FacturaDirectaRestEstimateMapper"} <= names
    assert len(MAPPERS) >= 12, sorted(names)  # none lost by the discovery; a new one needs a corpus below
    for cls in MAPPERS:
        assert isinstance(vars(cls).get("MAPPING_VERSION"), int), f"{cls.__name__} has no MAPPING_VERSION"
        assert path_of(cls).exists(), f"{cls.__name__} has no golden corpus at {path_of(cls)}"
        golden = load(cls)
        assert golden["mapper"] == f"{cls.__module__}.{cls.__qualname__}"
        assert sum(len(case["records"]) for case in golden["cases"]) >= MIN_RECORDS, cls.__name__


@pytest.mark.parametrize("cls", MAPPERS, ids=lambda cls: cls.__name__)
def test_the_output_is_the_one_recorded_for_the_mapping_version(cls: type):
    result = check(cls)
    assert result.ok, result.explain()


def corpus(mapper: type = FacturamaProductMapper) -> dict:
    return copy.deepcopy(load(mapper))


def test_a_changed_output_is_refused_until_the_version_is_bumped(monkeypatch):
    """What the check and ``--update`` do with an output that changed: the test fails and the update
    refuses while the version is the same; after a bump the update records it and the check passes."""
    golden = corpus()
    golden["cases"][0]["records"][0]["expected"]["data"]["name"] += " (before)"
    result = check(FacturamaProductMapper, golden)
    assert not result.ok and result.needs_bump and len(result.changed) == 1
    assert "Bump FacturamaProductMapper.MAPPING_VERSION to 2" in result.explain()
    with pytest.raises(NeedsBump):
        updated(FacturamaProductMapper, golden)
    monkeypatch.setattr(FacturamaProductMapper, "MAPPING_VERSION", FacturamaProductMapper.MAPPING_VERSION + 1)
    assert not check(FacturamaProductMapper, golden).ok  # bumped, not recorded yet
    recorded = updated(FacturamaProductMapper, golden)
    assert recorded["version"] == 2 and check(FacturamaProductMapper, recorded).ok


def test_a_new_record_is_recorded_without_a_bump_and_a_hand_edit_is_seen():
    golden = corpus()
    records = golden["cases"][0]["records"]
    records.append({k: v for k, v in copy.deepcopy(records[0]).items() if k != "expected"})
    records[-1]["raw"]["Id"] = "a-new-one"
    assert not check(FacturamaProductMapper, golden).ok
    assert check(FacturamaProductMapper, updated(FacturamaProductMapper, golden)).ok
    edited = corpus()
    edited["cases"][0]["records"][0]["raw"]["Name"] = "Otro nombre"
    edited["cases"][0]["records"][0]["expected"]["data"]["name"] = "Otro nombre"
    assert not check(FacturamaProductMapper, edited).ok  # outputs agree, the recorded hash does not


def third_party_imports(path: Path) -> set[str]:
    """The top-level names of what ``path`` imports from outside the package and the standard library."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "clientify_sync"}


def test_the_fingerprint_names_every_library_the_mapping_modules_import():
    """Staging adds these libraries' installed versions to the fingerprint (a deployment resolves them
    within ranges, not the lock); a mapping module importing another library must be named there."""
    edges = graph()
    paths = {module_name(p): p for p in (ROOT / "clientify_sync").rglob("*.py")}
    todo = [m for m in edges if m.startswith("clientify_sync.engine.mapping")]
    reached: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(edges.get(module, ()))
    libraries = set().union(*(third_party_imports(paths[m]) for m in reached))
    assert "clientify_sync.engine.taxid" in reached and "stdnum" in libraries
    assert libraries == set(MAPPING_LIBRARIES)
