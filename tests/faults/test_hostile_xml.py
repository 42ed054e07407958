"""Malformed and hostile XML from FacturaDirecta (sandbox faults ``truncate``, ``xml_bomb``, ``xxe``) on
its listings and on the answers to its writes: the run fails or retries cleanly with a
MalformedResponseError / TransientApiError, no content of /etc/passwd appears in any report, log
record, ledger row or record of either API, and re-runs converge."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from clientify_sync.engine.vocabulary import Entity, Platform
from clientify_sync.errors import MalformedResponseError, TransientApiError
from tests.faults.conftest import CONTACTS_AND_PRODUCTS, Sizes, add_row, applied, build_scenario, fault_rule
from tests.faults.convergence import converge

PLATFORM = Platform.FACTURADIRECTA
PASSWD = Path("/etc/passwd")


def secrets() -> list[str]:
    """Distinctive lines of the file an XXE would read (never empty: a known marker as a fallback)."""
    lines = (
        [line for line in PASSWD.read_text().splitlines() if line.count(":") >= 6] if PASSWD.exists() else []
    )
    return lines[:5] or ["root:x:0:0:"]


def everything_written(world, caplog, *extra: str) -> str:
    """Reports, log records, errors, every ledger row and every record of both APIs, as one text."""
    parts = [json.dumps(world.reports, default=str), caplog.text, *extra]
    engine = sa.create_engine(world.ledger_url)
    with engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(bind=conn)
        for table in meta.sorted_tables:
            parts += [str(tuple(row)) for row in conn.execute(sa.select(table))]
    engine.dispose()
    for resource in (world.clientify.contacts, world.clientify.companies, world.clientify.products,
                     world.facturadirecta.clients, world.facturadirecta.products):  # fmt: skip
        parts += [json.dumps(record, default=str) for record in resource.iter_records()]
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("kind", "count", "error"),
    [
        pytest.param("xml_bomb", 1, MalformedResponseError, id="billion-laughs"),
        pytest.param("xxe", 1, MalformedResponseError, id="xxe-file"),
        pytest.param("truncate", 3, TransientApiError, id="truncated-xml-retries-exhausted"),
        pytest.param("truncate", 1, None, id="truncated-xml-retried"),
    ],
)
def test_hostile_or_broken_xml_on_the_listing(make_world, fault_table, caplog, kind: str, count: int, error):
    caplog.set_level(logging.DEBUG)
    world = make_world()
    scenario = build_scenario(world, PLATFORM, Sizes())
    rule = fault_rule(kind, "list", "facturadirecta", count=count)
    rule["path"] = r"^/api/clients\.xml$"
    world.sandbox.faults("facturadirecta", [rule])
    watermark = dict(world.watermarks)
    raised = ""
    if error is None:
        world.sync(PLATFORM, Entity.CONTACTS)
    else:
        with pytest.raises(error) as caught:
            world.sync(PLATFORM, Entity.CONTACTS)
        assert caught.value.api == "facturadirecta" and caught.value.route == "/api/clients.xml"
        assert world.watermarks == watermark
        raised = repr(caught.value)
    injected = applied(world.sandbox, ("facturadirecta",))
    outcome = converge(world, PLATFORM, CONTACTS_AND_PRODUCTS, scenario.edits)
    add_row(fault_table, f"facturadirecta: {kind} x{count} on GET clients.xml", injected, outcome)

    assert injected == count
    text = everything_written(world, caplog, raised)
    leaked = [line for line in secrets() if line in text]
    assert not leaked, f"/etc/passwd content found: {leaked}"
    assert outcome.result.ok, outcome.result.explain()
    assert (outcome.idle_writes, outcome.idle_failed_writes) == (0, 0), outcome.errors


@pytest.mark.parametrize("kind", ["xml_bomb", "xxe", "truncate"])
def test_hostile_or_broken_xml_answering_writes(make_world, fault_table, caplog, kind: str):
    """The answer to a POST or PUT is hostile (the write may or may not have happened): those records
    fail with a reason, the run goes on, and the next runs find the truth without duplicates."""
    caplog.set_level(logging.DEBUG)
    world = make_world()
    scenario = build_scenario(world, PLATFORM, Sizes())
    world.sandbox.faults("facturadirecta", [fault_rule(kind, "post", "facturadirecta", count=2),
                                            fault_rule(kind, "put", "facturadirecta", count=2)])  # fmt: skip
    reports = [world.sync(PLATFORM, entity) for entity in CONTACTS_AND_PRODUCTS]
    failures = [f for report in reports for f in report["failures"]]
    injected = applied(world.sandbox, ("facturadirecta",))
    assert injected == 4 and failures, reports
    assert all(
        f["reason"] in {"unconfirmed_create", "transient_error", "malformed_response_error"} for f in failures
    )
    outcome = converge(world, PLATFORM, CONTACTS_AND_PRODUCTS, scenario.edits)
    add_row(fault_table, f"facturadirecta: {kind} answering POST+PUT", injected, outcome)

    text = everything_written(world, caplog)
    leaked = [line for line in secrets() if line in text]
    assert not leaked, f"/etc/passwd content found: {leaked}"
    assert outcome.result.ok, outcome.result.explain()
    assert (outcome.idle_writes, outcome.idle_failed_writes) == (0, 0), outcome.errors
