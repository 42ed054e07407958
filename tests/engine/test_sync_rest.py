"""The sync on FacturaDirecta's REST API (issue 24): the same engine, matching, merge and crash-safe
creates as on the classic API, through the REST client and mappers, against the sandbox's emulator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.ratelimit_headers import RateLimitGate
from clientify_sync.api.settings import FacturaDirectaRestSettings
from clientify_sync.engine.sides import InvoicingSide
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from tests.engine.conftest import FAST, World, make_clients

FD = Platform.FACTURADIRECTA


class Unmetered:
    def acquire(self) -> float:
        return 0.0


@pytest.fixture
def rest_world(clean_sandbox, tmp_path) -> Iterator[World]:
    facturama, clientify, _ = make_clients(clean_sandbox)
    cfg = clean_sandbox.config("facturadirecta")
    settings = FacturaDirectaRestSettings(base_url=clean_sandbox.facturadirecta_url, api_key=cfg["rest_api_key"],
                                          company_id=cfg["rest_company_id"], **FAST)  # fmt: skip
    rest = FacturaDirectaRestClient(settings, gate=RateLimitGate(Unmetered(), sleep=lambda _s: None))
    world = World(clean_sandbox, facturama, clientify, rest, f"sqlite:///{tmp_path}/ledger.db")
    yield world
    for client in (facturama, clientify, rest):
        client.close()


def rest_fiscal_ids(world: World) -> Counter[str]:
    return Counter(
        str(r["content"]["main"].get("fiscalId") or "").upper()
        for r in world.facturadirecta.clients.iter_records()
    )


def crm_fiscal_ids(world: World) -> Counter[str]:
    parties = [*world.clientify.contacts.iter_records(), *world.clientify.companies.iter_records()]
    return Counter(str(p.get("taxpayer_identification_number") or "").upper() for p in parties)


def test_contacts_sync_both_ways_on_the_rest_api_and_an_idle_run_writes_nothing(rest_world: World):
    world = rest_world
    world.sandbox.seed("facturadirecta", target="rest", clients=12, products=4, estimates=0, seed=11)
    world.sandbox.seed("clientify", companies=3, contacts=3, seed=12, country="ES")
    report = world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    assert report["failures"] == [], report["failures"]
    assert report["counts"]["invoicing→clientify"]["created"] >= 1
    fd, crm = rest_fiscal_ids(world), crm_fiscal_ids(world)
    assert [k for k, n in fd.items() if n > 1] == [] and [k for k, n in crm.items() if n > 1] == []
    assert {k for k in fd if k} <= set(crm)  # every FacturaDirecta customer reached Clientify
    world.sandbox.reset_stats()
    again = world.sync(FD, Entity.CONTACTS)
    assert again["failures"] == [] and world.writes("clientify") == 0 and world.writes("facturadirecta") == 0


def test_a_create_whose_answer_was_lost_is_replayed_by_its_key_not_made_twice(rest_world: World, monkeypatch):
    """The POST reaches FacturaDirecta, the answer is lost, the step is retried: the same plan item sends
    the same Idempotency-Key, which the API answers from its store."""
    world = rest_world
    world.sandbox.seed("clientify", companies=4, seed=13, country="ES")
    keys: list[str | None] = []
    create = InvoicingSide.create

    def record_key(
        self, rtype: str, data: dict[str, Any], link: str | None, idempotency_key: str | None = None
    ):
        keys.append(idempotency_key)
        return create(self, rtype, data, link, idempotency_key)

    monkeypatch.setattr(InvoicingSide, "create", record_key)
    world.sandbox.faults(
        "facturadirecta", [{"method": "POST", "path": "/contacts$", "rates": {"truncate": 1.0}, "count": 1}]
    )
    report = world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    world.sandbox.clear_faults()
    assert world.facturadirecta.replayed >= 1  # the lost answer's create came back from the API's key store
    assert all(k and k.startswith("cs-") for k in keys) and len(set(keys)) == len(keys)
    world.sync(FD, Entity.CONTACTS)
    fd = rest_fiscal_ids(world)
    assert [k for k, n in fd.items() if n > 1] == [], (fd, report["failures"])
    assert sum(n for k, n in fd.items() if k) == 4


def fd_calls(world: World) -> dict[str, int]:
    calls: dict[str, int] = {}
    for row in world.sandbox.stats("facturadirecta")["by_route"]:
        key = f"{row['method']} {row['route']}"
        calls[key] = calls.get(key, 0) + row["count"]
    return calls


def edit_rest_contact(world: World, rid: str, **main: Any) -> None:
    """A user's edit in FacturaDirecta: the record read, changed and PUT whole (the API replaces it)."""
    record = world.facturadirecta.clients.get(rid)
    world.facturadirecta.clients.update(
        rid, {"content": {**record["content"], "main": {**record["content"]["main"], **main}}}
    )


def synced_rest_account(world: World) -> list[dict[str, Any]]:
    world.sandbox.seed("facturadirecta", target="rest", clients=8, products=2, estimates=0, seed=21)
    world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    return list(world.facturadirecta.clients.iter_records())


def test_an_idle_modified_run_reads_the_activity_feed_not_the_listing(rest_world: World):
    world = rest_world
    synced_rest_account(world)
    # The full run's own link write-backs are in the feed: the next run reads each once (recognised by
    # hash, nothing written); from then on an idle run reads the feed alone.
    world.sync(FD, Entity.CONTACTS)
    world.sandbox.reset_stats()
    report = world.sync(FD, Entity.CONTACTS)
    calls = fd_calls(world)
    assert report["extract"]["extract_invoicing"]["feed"] == "activity"
    assert (
        sum(n for k, n in calls.items() if k.startswith("GET") and k.rstrip("/").endswith("/contacts")) == 0
    )
    assert sum(calls.values()) <= 3, (
        calls
    )  # the feed's page, the custom field's definition: issue 24's target
    assert world.writes("facturadirecta") == 0 and world.writes("clientify") == 0


def test_an_edit_in_facturadirecta_is_read_through_the_feed_and_reaches_clientify(rest_world: World):
    world = rest_world
    [first, *_] = synced_rest_account(world)
    world.sync(FD, Entity.CONTACTS)  # settles the full run's own write-backs (see above)
    edit_rest_contact(world, first["content"]["uuid"], email="nuevo@taller.es")
    world.sandbox.reset_stats()
    report = world.sync(FD, Entity.CONTACTS)
    assert report["extract"]["extract_invoicing"]["records"] == 1 and report["failures"] == []
    fiscal_id = first["content"]["main"]["fiscalId"]
    parties = [*world.clientify.contacts.iter_records(), *world.clientify.companies.iter_records()]
    [party] = [
        p for p in parties if str(p.get("taxpayer_identification_number") or "").upper() == fiscal_id.upper()
    ]
    assert [e["email"] for e in party.get("emails") or []] == ["nuevo@taller.es"]


def test_the_feed_position_moves_only_when_the_run_commits(rest_world: World, monkeypatch):
    world = rest_world
    [first, *_] = synced_rest_account(world)
    world.sync(FD, Entity.CONTACTS)
    edit_rest_contact(world, first["content"]["uuid"], email="una@taller.es")

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("worker lost")

    from clientify_sync.engine.job import SyncJob

    monkeypatch.setattr(SyncJob, "apply_clientify", fail)
    with pytest.raises(RuntimeError):
        world.sync(FD, Entity.CONTACTS)
    monkeypatch.undo()
    report = world.sync(FD, Entity.CONTACTS)  # reads the same event again: the failed run stored nothing
    assert report["extract"]["extract_invoicing"]["records"] == 1
    assert report["counts"]["invoicing→clientify"]["updated"] == 1
