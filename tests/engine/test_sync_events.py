"""Runs woken by webhook events (issue 25): ``Mode.EVENTS`` syncs the Clientify records the claimed
inbox rows name, re-read from the API (an event is a hint), through the same engine; the watermark
stays, so the clock run still covers everything, and converges what an event missed."""

from __future__ import annotations

import hashlib
from typing import Any

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.inbox import InboxEvent
from clientify_sync.engine.ledger.inbox import add as add_event
from clientify_sync.engine.ledger.schema import inbox
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from tests.engine.conftest import World
from tests.engine.test_sync_contacts import CUSTOMERS, create_customer

FM = Platform.FACTURAMA


def deliver(world: World, rtype: str, rid: str, *, body: str = "") -> None:
    """One Clientify delivery as the receiver stores it (dedupe key from the event and the body)."""
    digest = hashlib.sha256(f"{rtype}.saved|{rid}|{body}".encode()).hexdigest()
    event = InboxEvent("clientify", "contacts", rtype, rid, f"{rtype}.saved", digest, digest)
    ledger = Ledger.open(world.ledger_url, FM.value, Entity.CONTACTS.value)
    try:
        with ledger.begin() as conn:
            add_event(conn, event, [FM.value])
    finally:
        ledger.close()


def inbox_statuses(world: World) -> list[str]:
    ledger = Ledger.open(world.ledger_url, FM.value, Entity.CONTACTS.value)
    try:
        with ledger.engine.connect() as conn:
            return sorted(row.status for row in conn.execute(inbox.select()))
    finally:
        ledger.close()


def clientify_calls(world: World) -> dict[str, int]:
    calls: dict[str, int] = {}
    for row in world.sandbox.stats("clientify")["by_route"]:
        key = f"{row['method']} {row['route']}"
        calls[key] = calls.get(key, 0) + row["count"]
    return calls


def synced_company(world: World) -> dict[str, Any]:
    tax_id, name = CUSTOMERS[FM]["company"]
    create_customer(world, FM, tax_id, name)
    world.sync(FM, Entity.CONTACTS, mode=Mode.FULL)
    [company] = world.clientify.companies.find_by_tax_id(tax_id)
    return company


def facturama_email(world: World, tax_id: str) -> str:
    [client] = [c for c in world.facturama.clients.iter_records() if c["Rfc"] == tax_id]
    return str(client.get("Email"))


def test_an_event_syncs_the_record_it_names_and_nothing_else_is_read(world: World):
    company = synced_company(world)
    watermark = world.watermarks[(FM, Entity.CONTACTS)]
    world.clientify.companies.update(company["id"], {"emails": [{"type": 4, "email": "pagos@empresa.mx"}]})
    deliver(world, "company", str(company["id"]))
    world.sandbox.reset_stats()
    report = world.sync(FM, Entity.CONTACTS, mode=Mode.EVENTS)
    assert report["failures"] == [] and report["extract"]["extract_clientify"]["events"] == 1
    assert facturama_email(world, company["taxpayer_identification_number"]) == "pagos@empresa.mx"
    calls = clientify_calls(world)
    assert not any(
        k.startswith("GET") and k.rstrip("/").endswith(("/contacts", "/companies")) for k in calls
    ), calls
    assert world.watermarks[(FM, Entity.CONTACTS)] == watermark  # the clock run still reads from here


def test_duplicate_and_repeated_deliveries_read_and_write_once_with_the_latest_state(world: World):
    company = synced_company(world)
    world.clientify.companies.update(company["id"], {"emails": [{"type": 4, "email": "uno@empresa.mx"}]})
    deliver(world, "company", str(company["id"]), body="v1")
    deliver(world, "company", str(company["id"]), body="v1")  # the same delivery again: deduplicated
    world.clientify.companies.update(company["id"], {"emails": [{"type": 4, "email": "dos@empresa.mx"}]})
    deliver(world, "company", str(company["id"]), body="v2")  # edited again since
    world.sandbox.reset_stats()
    world.sync(FM, Entity.CONTACTS, mode=Mode.EVENTS)
    assert facturama_email(world, company["taxpayer_identification_number"]) == "dos@empresa.mx"
    gets = sum(n for k, n in clientify_calls(world).items() if k.startswith("GET") and "/companies/" in k)
    assert gets == 1 and world.writes("facturama") == 1
    assert inbox_statuses(world) == ["done", "done"]


def test_our_own_write_echoed_as_an_event_writes_nothing(world: World):
    company = synced_company(world)  # the full run wrote this company into Clientify
    deliver(world, "company", str(company["id"]), body="echo")
    world.sandbox.reset_stats()
    report = world.sync(FM, Entity.CONTACTS, mode=Mode.EVENTS)
    assert world.writes("facturama") == 0 and world.writes("clientify") == 0 and report["failures"] == []


def test_a_dropped_delivery_is_converged_by_the_clock_run(world: World):
    company = synced_company(world)
    world.clientify.companies.update(
        company["id"], {"emails": [{"type": 4, "email": "perdido@empresa.mx"}]}
    )  # no event arrives
    world.sync(FM, Entity.CONTACTS, mode=Mode.EVENTS)
    tax_id = company["taxpayer_identification_number"]
    assert facturama_email(world, tax_id) != "perdido@empresa.mx"
    world.sync(FM, Entity.CONTACTS)  # the clock run (modified): everything since the unmoved watermark
    assert facturama_email(world, tax_id) == "perdido@empresa.mx"


def test_an_event_for_a_deleted_record_is_skipped_and_its_row_closed(world: World):
    synced_company(world)
    deliver(world, "company", "987654321")
    report = world.sync(FM, Entity.CONTACTS, mode=Mode.EVENTS)
    assert report["failures"] == [] and inbox_statuses(world) == ["done"]
