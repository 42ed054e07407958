"""Matching and planning against a real SQLite ledger, with records staged as the extract steps do."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from clientify_sync.engine.ledger import SCHEMA_VERSION, Ledger
from clientify_sync.engine.model import CONTACT_SCHEMA, ESTIMATE_SCHEMA, SideRecord
from clientify_sync.engine.plan import PlanItem
from clientify_sync.engine.reconcile import Reconciler, store_plan
from clientify_sync.engine.taxid import classify_rfc
from clientify_sync.engine.vocabulary import Mode, Side

RUN = "run-1"


def inv_client(rid: str, rfc: str, name: str = "ACME", email: str = "") -> SideRecord:
    tax = classify_rfc(rfc)
    data = {f: "" for f in CONTACT_SCHEMA.fields} | {"tax_id": tax.key, "name": name, "email": email}
    return SideRecord(Side.INVOICING, "client", rid, data, key=tax.key, kind=tax.kind, problem=tax.problem)


def crm_record(rid: str, rfc: str, name: str = "ACME", *, rtype: str = "company", link: str | None = None,
               email: str = "") -> SideRecord:  # fmt: skip
    tax = classify_rfc(rfc)
    data = {f: "" for f in CONTACT_SCHEMA.fields} | {"tax_id": tax.key, "name": name, "email": email}
    return SideRecord(Side.CLIENTIFY, rtype, rid, data, key=tax.key, kind=tax.kind, problem=tax.problem,
                      link=link, modified="2026-01-01T00:00:00.000000+00:00")  # fmt: skip


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", "facturama", "contacts")
    yield ledger
    ledger.close()


@dataclass
class Plan:
    """What reconcile stored for the run (the plan streams to the ledger), and its counts."""

    items: list[dict]
    conflicts: list[dict]
    counts: dict


def plan_for(ledger: Ledger, *, mode: Mode = Mode.MODIFIED, run: str = RUN, dry_run: bool = False) -> Plan:
    planner = Reconciler(
        ledger, CONTACT_SCHEMA, run, mode, lambda kind: "company" if kind == "company" else "contact"
    )
    store_plan(ledger, run, planner.chunks(), dry_run=dry_run)
    counts = planner.counts.as_summary()
    return Plan([columns(i) for i in ledger.plan.page(run)], ledger.conflicts.list(run), counts)


def columns(item: PlanItem) -> dict[str, Any]:
    """An item's fields as plain values (enums as their strings), for set comparisons on literal data."""
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)} | {
        name: None if getattr(item, name) is None else str(getattr(item, name))
        for name in ("action", "direction", "target", "reason", "status", "outcome")
    }


def actions(plan) -> set[tuple]:
    return {
        (i["action"], i.get("target"), i.get("inv_id"), i.get("crm_id"), i.get("reason")) for i in plan.items
    }


def test_link_field_then_tax_id_then_create(ledger):
    ledger.records.stage(
        [inv_client("A", "URE180429TM6"), inv_client("B", "EKU9003173C9"), inv_client("C", "CACX7605101P8")],
        RUN,
    )
    ledger.records.stage([crm_record("10", "URE180429TM7", link="A"), crm_record("11", "EKU9003173C9")], RUN)
    plan = plan_for(ledger)
    links = {(r.inv_id, r.crm_id) for r in ledger.links.identities().itertuples()}
    assert links == {("A", "10"), ("B", "11")}  # A by link field (tax ID differs), B by tax ID
    assert ("create", "clientify", "C", None, "no_match") in actions(plan)
    create = next(i for i in plan.items if i["action"] == "create")
    assert create["crm_type"] == "contact"  # a 13-character RFC is a person
    # A's RFC differs: the fiscal field follows the invoicing side, and the conflict is recorded.
    assert any(c["field"] == "tax_id" and c["winner"] == "invoicing" for c in plan.conflicts)
    # B is matched by tax ID: its Clientify record gets the link field written.
    assert any(i["action"] == "update" and i["crm_id"] == "11" for i in plan.items)


def test_records_without_usable_tax_id_are_skipped_with_reasons(ledger):
    ledger.records.stage(
        [inv_client("A", ""), inv_client("B", "XAXX010101000"), inv_client("C", "RODJ899315654")], RUN
    )
    ledger.records.stage([crm_record("9", "")], RUN)
    plan = plan_for(ledger)
    assert {(i["action"], i["reason"]) for i in plan.items} == {
        ("skipped", "no_tax_id"), ("skipped", "generic_tax_id"), ("skipped", "invalid_tax_id"),
    }  # fmt: skip
    assert ledger.links.identities().empty


def test_duplicate_tax_ids_in_clientify_are_quarantined_not_merged(ledger):
    ledger.records.stage([inv_client("A", "URE180429TM6")], RUN)
    ledger.records.stage([crm_record("10", "URE180429TM6"), crm_record("11", "URE180429TM6")], RUN)
    plan = plan_for(ledger)
    reasons = {(i["action"], i.get("inv_id"), i.get("crm_id"), i["reason"]) for i in plan.items}
    assert ("quarantined", "A", None, "duplicate_tax_id") in reasons
    assert ("quarantined", None, "10", "duplicate_tax_id") in reasons
    assert not any(i["action"] in ("create", "update") for i in plan.items)
    assert ledger.links.identities().empty


def test_duplicate_estimate_references_are_quarantined_as_duplicate_references(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path}/estimates.db", "facturama", "estimates")
    data = {f: "" for f in ESTIMATE_SCHEMA.fields}
    ledger.records.stage(
        [SideRecord(Side.INVOICING, "estimate", rid, data, key="CLI-7") for rid in ("1", "2")], RUN
    )
    planner = Reconciler(ledger, ESTIMATE_SCHEMA, RUN, Mode.MODIFIED, lambda kind: "budget")
    store_plan(ledger, RUN, planner.chunks(), dry_run=False)
    reasons = {(str(i.action), i.inv_id, i.reason) for i in ledger.plan.page(RUN)}
    ledger.close()
    assert reasons == {
        ("quarantined", "1", "duplicate_reference"),
        ("quarantined", "2", "duplicate_reference"),
    }


def test_clientify_only_record_is_created_on_the_invoicing_side(ledger):
    ledger.records.stage([crm_record("20", "EKU9003173C9")], RUN)
    plan = plan_for(ledger)
    assert actions(plan) == {("create", "invoicing", None, "20", "no_match")}


def test_idle_rerun_plans_nothing(ledger):
    ledger.records.stage([inv_client("A", "URE180429TM6")], RUN)
    ledger.records.stage([crm_record("10", "URE180429TM6", link="A")], RUN)
    plan_for(ledger)
    inv_row = ledger.records.fetch("invoicing", [("client", "A")])[("client", "A")]
    crm_row = ledger.records.fetch("clientify", [("company", "10")])[("company", "10")]
    ledger.links.save(("client", "A"), ("company", "10"), base=inv_row["data"], inv_hash=inv_row["hash"],
                     crm_hash=crm_row["hash"], run_id=RUN)  # fmt: skip
    ledger.records.stage([inv_client("A", "URE180429TM6")], "run-2")  # same listing, nothing in the window
    plan = plan_for(ledger, run="run-2")
    assert plan.items == [] and plan.counts["unchanged"] == 1


def test_dry_run_saves_no_links(ledger):
    ledger.records.stage([inv_client("B", "EKU9003173C9")], RUN)
    ledger.records.stage([crm_record("11", "EKU9003173C9")], RUN)
    plan = plan_for(ledger, dry_run=True)
    assert ledger.links.identities().empty
    assert any(i["action"] == "update" and i["crm_id"] == "11" for i in plan.items)


def test_schema_upgrade_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path}/again.db"
    for _ in range(2):
        Ledger.open(url, "facturama", "contacts").close()
    ledger = Ledger.open(url, "facturama", "contacts")
    assert ledger.meta.get("schema_version") == str(SCHEMA_VERSION)
    ledger.close()


def test_a_version_1_ledger_is_upgraded_in_place(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the version-1 plan table, without the priority column
        conn.execute(sa.text("CREATE TABLE cs_meta (key VARCHAR(200) PRIMARY KEY, value TEXT NOT NULL)"))
        conn.execute(sa.text("INSERT INTO cs_meta VALUES ('schema_version', '1')"))
        conn.execute(sa.text(
            "CREATE TABLE cs_plan_items (id INTEGER PRIMARY KEY, run_id VARCHAR, integration VARCHAR, entity VARCHAR, "
            "pair VARCHAR, action VARCHAR, target VARCHAR, direction VARCHAR, inv_type VARCHAR, inv_id VARCHAR, "
            "crm_type VARCHAR, crm_id VARCHAR, fields JSON, merged JSON, reason VARCHAR, detail TEXT, status VARCHAR, "
            "outcome VARCHAR, result JSON)"
        ))  # fmt: skip
        conn.execute(sa.text("INSERT INTO cs_plan_items (run_id, integration, entity, pair, action, direction, status) "
                             "VALUES ('old', 'facturama', 'contacts', 'p', 'create', 'invoicing→clientify', 'planned')"))  # fmt: skip
    engine.dispose()
    ledger = Ledger.open(url, "facturama", "contacts")
    assert ledger.meta.get("schema_version") == str(SCHEMA_VERSION)
    [item] = ledger.plan.page("old")
    assert item.priority == 1 and item.action == "create"  # the old row is kept, with the default
    ledger.close()


def test_planning_writes_nothing_until_the_store_step(ledger):
    """Reconciler only reads: every INSERT/UPDATE/DELETE of a run's plan comes from ``store_plan``."""
    ledger.records.stage([inv_client("A", "URE180429TM6"), inv_client("B", "EKU9003173C9")], RUN)
    ledger.records.stage([crm_record("11", "EKU9003173C9"), crm_record("12", "CACX7605101P8")], RUN)
    statements: list[str] = []

    def record_writes(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            statements.append(statement)

    sa.event.listen(ledger.engine, "before_cursor_execute", record_writes)
    try:
        planner = Reconciler(ledger, CONTACT_SCHEMA, RUN, Mode.MODIFIED, lambda kind: "company")
        chunks = list(planner.chunks())
        assert statements == []  # matched B↔11, planned creates for A and 12: nothing written yet
        assert sum(len(c.items) for c in chunks) == 3 and [c.new_links for c in chunks if c.new_links]
        store_plan(ledger, RUN, chunks, dry_run=False)
        assert any(s.lstrip().upper().startswith("INSERT INTO CS_LINKS") for s in statements)
    finally:
        sa.event.remove(ledger.engine, "before_cursor_execute", record_writes)
