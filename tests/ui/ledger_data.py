"""A small SQLite ledger with literal data, written through the engine's own ``Ledger`` API.

Facturama contacts, two runs: a full one, then a modified one in which client 103 and Clientify
contacts 9002 and 9003 are quarantined (they share an RFC), client 105's create failed with the API's
field message, pair 101 ↔ 9001 had an e-mail conflict, and client 104, named ``<script>…``, was
created in Clientify. The run's commit wrote each record's state.
FacturaDirecta contacts: one clean run. Facturama estimates: a run that is still going.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clientify_sync.engine.ledger import Ledger, create_ledger_engine, upgrade_schema
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.plan import ConflictRow, Direction, ItemResult, Outcome, PlanItem, Ref, Status
from clientify_sync.engine.vocabulary import Side

RUN1 = "scheduled__2026-11-28T10:00:00+00:00"
RUN2 = "manual__2026-11-29T10:00:00+00:00"
FD_RUN = "scheduled__2026-11-29T09:00:00+00:00"
LIVE_RUN = "manual__2026-11-29T11:00:00+00:00"
TO_CRM, TO_INV = Direction.TO_CLIENTIFY.value, Direction.TO_INVOICING.value
SCRIPT_NAME = "<script>alert('x')</script> Pérez"
DUP_RFC = "PEPJ800101AB1"
FAILED_MESSAGE = "Email: El campo Email no es válido. <b>bold</b>"


def _contact(side: Side, rtype: str, rid: str, name: str, tax_id: str, email: str, link: str | None = None,
             problem: str | None = None) -> SideRecord:  # fmt: skip
    data = {"tax_id": tax_id, "name": name, "email": email, "street": "", "city": "", "state": "",
            "postal_code": "", "country": "MX"}  # fmt: skip
    kind = "person" if len(tax_id) == 13 else "company"
    return SideRecord(
        side=side, rtype=rtype, rid=rid, data=data, key=tax_id, kind=kind, link=link, problem=problem
    )


def _report(run_id: str, platform: str, mode: str, counts: dict[str, dict[str, int]], *, unchanged: int,
            reasons: dict[str, int], conflicts: int, failures: int, wm_in: str | None, wm_out: str) -> dict[str, Any]:  # fmt: skip
    return {
        "run_id": run_id, "platform": platform, "entity": "contacts", "mode": mode, "dry_run": False,
        "watermark_in": wm_in, "watermark_out": wm_out, "counts": counts, "unchanged": unchanged, "matched": 2,
        "reasons": reasons, "conflicts": conflicts,
        "calls": {"facturama": {"calls": 4, "retries": 1, "errors": 1}, "clientify": {"calls": 7, "retries": 0, "errors": 0}},
        "failures": [], "failures_total": failures, "extract": {},
    }  # fmt: skip


def build_ledger(path: Path) -> str:
    """Write the literal ledger to ``path``; return its URL."""
    url = f"sqlite:///{path}"
    engine = create_ledger_engine(url)
    upgrade_schema(engine)  # schema version 3: dead letters have the dismiss / retry columns
    fm = Ledger(engine, "facturama", "contacts")
    inv, crm = Side.INVOICING, Side.CLIENTIFY

    # -- run 1: full ---------------------------------------------------------------------------------
    fm.runs.start(RUN1, "full", False)
    fm.records.stage([
        _contact(inv, "client", "101", "Ana Godínez", "GODE561231GR8", "ana@example.mx"),
        _contact(crm, "contact", "9001", "Ana Godínez", "GODE561231GR8", "ana@example.mx", link="101"),
    ], RUN1)  # fmt: skip
    fm.links.save(("client", "101"), ("contact", "9001"), base={"tax_id": "GODE561231GR8", "name": "Ana Godínez",
                 "email": "ana@example.mx"}, inv_hash="h1", crm_hash="h2", run_id=RUN1)  # fmt: skip
    fm.runs.finish(RUN1, _report(RUN1, "facturama", "full", {TO_CRM: {"created": 1}}, unchanged=0, reasons={},
                                conflicts=0, failures=0, wm_in=None, wm_out="2026-11-28T10:00:00Z"))  # fmt: skip

    # -- run 2: modified, with everything that can go wrong ---------------------------------------------
    fm.runs.start(RUN2, "modified", False)
    fm.records.stage([
        _contact(inv, "client", "101", "Ana Godínez", "GODE561231GR8", "ana@empresa.mx"),
        _contact(crm, "contact", "9001", "Ana Godínez", "GODE561231GR8", "ana.g@empresa.mx", link="101"),
        _contact(inv, "client", "103", "Jorge Pérez Pineda", DUP_RFC, "jorge@example.mx"),
        _contact(crm, "contact", "9002", "Jorge Pérez", DUP_RFC, "jorge.p@example.mx"),
        _contact(crm, "contact", "9003", "J. Pérez Pineda", DUP_RFC, "jp@example.mx"),
        _contact(inv, "client", "104", SCRIPT_NAME, "SCRP800101AAA", "script@example.mx"),
        _contact(crm, "contact", "9004", SCRIPT_NAME, "SCRP800101AAA", "script@example.mx", link="104"),
        _contact(inv, "client", "105", "Luisa Fernanda Ruiz", "RUIL850505AB1", "luisa@@example"),
        _contact(inv, "client", "106", "Sin RFC", "", "sin@example.mx", problem="no_tax_id"),
    ], RUN2)  # fmt: skip
    fm.links.save(("client", "104"), ("contact", "9004"), base={"tax_id": "SCRP800101AAA", "name": SCRIPT_NAME,
                 "email": "script@example.mx"}, inv_hash="h3", crm_hash="h4", run_id=RUN2)  # fmt: skip
    fm.plan.add(RUN2, [
        PlanItem.settled(Outcome.QUARANTINED, Direction.TO_CLIENTIFY, reason="duplicate_tax_id", inv=Ref("client", "103")),
        PlanItem.settled(Outcome.QUARANTINED, Direction.TO_INVOICING, reason="duplicate_tax_id", crm=Ref("contact", "9002")),
        PlanItem.settled(Outcome.QUARANTINED, Direction.TO_INVOICING, reason="duplicate_tax_id", crm=Ref("contact", "9003")),
        PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", "105"), target_type="contact"),
        PlanItem.update(Direction.TO_CLIENTIFY, Ref("client", "101"), Ref("contact", "9001"), fields=("email",),
                        merged={}, reason="conflict"),
        PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", "104"), target_type="contact"),
        PlanItem.settled(Outcome.SKIPPED, Direction.TO_CLIENTIFY, reason="no_tax_id", inv=Ref("client", "106")),
    ])  # fmt: skip
    items = {i.inv_id: i.id for chunk in fm.plan.iter(RUN2) for i in chunk}
    with fm.begin() as conn:
        fm.plan.finish_many(conn, [
            ItemResult(item_id=items["105"], status=Status.FAILED, outcome=Outcome.FAILED, reason="validation_error",
                       detail=FAILED_MESSAGE),
            ItemResult(item_id=items["101"], status=Status.DONE, outcome=Outcome.CONFLICT, reason="conflict",
                       result={"rid": "9001", "rtype": "contact", "hash": "x"}),
            ItemResult(item_id=items["104"], status=Status.DONE, outcome=Outcome.CREATED, reason="no_match",
                       result={"rid": "9004", "rtype": "contact", "hash": "y"}),
        ])  # fmt: skip
        for _ in range(3):  # failing for three runs
            fm.dead_letters.record(
                conn, [Letter("invoicing", "client", "105", "validation_error", FAILED_MESSAGE)], RUN2
            )
        for _ in range(5):  # no longer retried
            fm.dead_letters.record(
                conn, [Letter("invoicing", "client", "107", "server_error", "HTTP 500")], RUN2
            )
    fm.conflicts.add(RUN2, [
        ConflictRow(inv_id="101", crm_type="contact", crm_id="9001", field="email", invoicing_value="ana@empresa.mx",
                    clientify_value="ana.g@empresa.mx", base_value="ana@example.mx", winner="clientify",
                    first_match=False),
    ])  # fmt: skip
    fm.runs.save_step(RUN2, "reconcile", {"counts": {}}, {})
    fm.record_states.update_from_plan(RUN2)  # what the run's commit writes
    fm.runs.finish(RUN2, _report(
        RUN2, "facturama", "modified",
        {TO_CRM: {"conflict": 1, "created": 1, "failed": 1, "quarantined": 1, "skipped": 1}},
        unchanged=40, reasons={"quarantined:duplicate_tax_id": 1, "skipped:no_tax_id": 1},
        conflicts=1, failures=1, wm_in="2026-11-28T10:00:00Z", wm_out="2026-11-29T10:00:00Z",
    ))  # fmt: skip

    # -- FacturaDirecta contacts: one clean run ---------------------------------------------------------
    fd = Ledger(engine, "facturadirecta", "contacts")
    fd.runs.start(FD_RUN, "full", False)
    fd.records.stage([_contact(inv, "client", "1", "Talleres Ebro SL", "B12345674", "info@ebro.es")], FD_RUN)
    fd.runs.finish(FD_RUN, {**_report(FD_RUN, "facturadirecta", "full", {TO_CRM: {"created": 3}, TO_INV: {"updated": 2}},
                                     unchanged=5, reasons={}, conflicts=0, failures=0, wm_in=None,
                                     wm_out="2026-11-29T09:00:00Z"), "calls": {}})  # fmt: skip

    # -- Facturama estimates: a run that is still going -------------------------------------------------
    est = Ledger(engine, "facturama", "estimates")
    est.runs.start(LIVE_RUN, "modified", False)
    est.plan.add(LIVE_RUN, [
        PlanItem.create(Direction.TO_CLIENTIFY, Ref("estimate", str(n)), target_type="budget") for n in range(1, 5)
    ])  # fmt: skip
    ids = [i.id for chunk in est.plan.iter(LIVE_RUN) for i in chunk]
    with est.begin() as conn:
        est.plan.finish_many(conn, [ItemResult(item_id=ids[0], status=Status.DONE, outcome=Outcome.CREATED)])
    engine.dispose()
    return url
