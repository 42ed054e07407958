"""Airflow retries a failed task in the same DAG run (issue 22): the retry must not create again what
the failed try created.

The apply step of a run is failed part-way — its process killed after some creates (a worker OOM-killed
or a deploy), or stopped by the breaker while the API is down — and then run again with the same run id
and the plan the reconcile step stored, as Airflow's next try of ``apply_*`` does. Before issue 22 the
retry re-applied every item still ``planned`` and created those records a second time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from clientify_sync.engine.job import SyncJob
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import Entity, JobSpec, Mode, Platform
from clientify_sync.errors import SystemicFailure
from tests.engine.conftest import FAST, PLATFORMS, World
from tests.faults.convergence import sync_round
from tests.fixtures.sandbox import ROOT

CLIENTS = 40  # enough for several journal groups (32 a group at concurrency 4)
KILL_AFTER = 12  # creates that went through before the process dies

CHILD = r"""
import json, os, sys, threading
cfg = json.loads(sys.argv[1])
sys.path[:0] = [cfg["root"], cfg["root"] + "/plugins"]
from types import SimpleNamespace

import tests.engine.conftest as engine_conftest
from clientify_sync.engine import sides
from clientify_sync.engine.job import SyncJob
from clientify_sync.engine.vocabulary import Entity, JobSpec, Mode, Platform

target = sides.ClientifySide if cfg["target"] == "clientify" else sides.InvoicingSide
create, made, lock = target.create, [0], threading.Lock()
def create_then_maybe_die(self, *args, **kwargs):
    record = create(self, *args, **kwargs)
    with lock:
        made[0] += 1
        if made[0] >= cfg["kill_after"]:
            os._exit(137)  # kill -9 of the task process: no handler, no flush, no ledger write
    return record
target.create = create_then_maybe_die

facturama, clientify, facturadirecta = engine_conftest.make_clients(SimpleNamespace(**cfg["urls"]), **cfg["extra"])
platform = Platform(cfg["platform"])
invoicing = facturama if platform is Platform.FACTURAMA else facturadirecta
spec = JobSpec(platform, Entity(cfg["entity"]), cfg["run_id"], Mode.MODIFIED, False)
job = SyncJob.open(spec, invoicing=invoicing, clientify=clientify, ledger_url=cfg["ledger_url"])
job.extract_invoicing()
job.extract_clientify(None)
job.reconcile()
job.apply_clientify()
job.apply_invoicing()
sys.exit(0)  # reaching here means the kill point was never hit
"""


def first_try_killed(world: World, platform: Platform, entity: Entity, target: str, run_id: str) -> None:
    sandbox = world.sandbox
    cfg = {"root": str(ROOT), "platform": platform.value, "entity": entity.value, "target": target,
           "run_id": run_id, "kill_after": KILL_AFTER, "ledger_url": world.ledger_url, "extra": FAST,
           "urls": {"facturama_url": sandbox.facturama_url, "clientify_url": sandbox.clientify_url,
                    "facturadirecta_url": sandbox.facturadirecta_url}}  # fmt: skip
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=ROOT, capture_output=True,
                           text=True, timeout=180)  # fmt: skip
    assert child.returncode == 137, (
        f"kill point not reached (exit {child.returncode}):\n{child.stderr[-3000:]}"
    )


def next_try(world: World, platform: Platform, entity: Entity, run_id: str) -> dict[str, Any]:
    """Airflow's next try of the apply steps, then the rest of the run (same run id, same stored plan)."""
    spec = JobSpec(platform, entity, run_id, Mode.MODIFIED, False)
    job = SyncJob.open(spec, invoicing=world.invoicing(platform), clientify=world.clientify,
                       ledger_url=world.ledger_url)  # fmt: skip
    try:
        job.apply_clientify()
        job.apply_invoicing()
        seen_max = job.ledger.runs.steps(run_id)["extract_clientify"]["summary"]["max_modified"]
        return job.commit(None, seen_max)
    finally:
        job.close()


def tax_ids(records: list[dict[str, Any]], field: str) -> Counter[str]:
    return Counter(str(r.get(field) or "").upper() for r in records if r.get(field))


def crm_tax_ids(world: World) -> Counter[str]:
    parties = [*world.clientify.contacts.iter_records(), *world.clientify.companies.iter_records()]
    return tax_ids(parties, "taxpayer_identification_number")


def inv_tax_ids(world: World, platform: Platform) -> Counter[str]:
    field = "Rfc" if platform is Platform.FACTURAMA else "taxCode"
    return tax_ids(list(world.invoicing(platform).clients.iter_records()), field)


def open_unconfirmed(world: World, platform: Platform) -> int:
    ledger = Ledger.open(world.ledger_url, platform.value, Entity.CONTACTS.value)
    try:
        letters = ledger.dead_letters.open()
        return int((letters["reason"] == "unconfirmed_create").sum()) if not letters.empty else 0
    finally:
        ledger.close()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_killed_apply_clientify_retried_in_the_same_run_creates_nothing_twice(
    make_world, platform: Platform
):
    world = make_world()
    world.sandbox.seed(platform.value, clients=CLIENTS, seed=5)
    first_try_killed(world, platform, Entity.CONTACTS, "clientify", "run-killed-1")
    made = crm_tax_ids(world)
    assert KILL_AFTER <= sum(made.values()) < CLIENTS  # killed part-way, after some creates

    report = next_try(world, platform, Entity.CONTACTS, "run-killed-1")
    assert report["failures"] == []
    synced = crm_tax_ids(world)
    assert [t for t, n in synced.items() if n > 1] == []  # no duplicate
    assert set(synced) == set(inv_tax_ids(world, platform))  # and nothing missing
    assert sum(synced.values()) == sum(inv_tax_ids(world, platform).values())
    # The next run has nothing left to do: every pair is linked, nothing pending.
    world.sandbox.reset_stats()
    assert not sync_round(world, platform, [Entity.CONTACTS])
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0
    assert open_unconfirmed(world, platform) == 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_killed_apply_invoicing_retried_in_the_same_run_creates_nothing_twice(
    make_world, platform: Platform
):
    world = make_world()
    world.sandbox.seed(
        "clientify", companies=CLIENTS, seed=6, country="MX" if platform is Platform.FACTURAMA else "ES"
    )
    first_try_killed(world, platform, Entity.CONTACTS, "invoicing", "run-killed-2")
    assert KILL_AFTER <= sum(inv_tax_ids(world, platform).values()) < CLIENTS

    next_try(world, platform, Entity.CONTACTS, "run-killed-2")
    made = inv_tax_ids(world, platform)
    assert [t for t, n in made.items() if n > 1] == []
    world.sandbox.reset_stats()
    assert not sync_round(world, platform, [Entity.CONTACTS])
    assert [t for t, n in inv_tax_ids(world, platform).items() if n > 1] == []
    assert world.writes(platform.value) == 0 or all(n == 1 for n in inv_tax_ids(world, platform).values())


def test_an_outage_mid_apply_then_the_retry_creates_nothing_twice_and_leaves_nothing_open(make_world):
    """Clientify answers every POST by writing and then dropping the connection (the answer is lost):
    the breaker stops the step; the retry, once Clientify is back, finds what was written, and the
    next run closes the unconfirmed creates."""
    platform = Platform.FACTURAMA
    world = make_world()
    world.sandbox.seed(platform.value, clients=CLIENTS, seed=7)
    spec = JobSpec(platform, Entity.CONTACTS, "run-outage-1", Mode.MODIFIED, False)
    job = SyncJob.open(spec, invoicing=world.invoicing(platform), clientify=world.clientify,
                       ledger_url=world.ledger_url)  # fmt: skip
    try:
        job.extract_invoicing()
        job.extract_clientify(None)
        job.reconcile()
        world.sandbox.faults("clientify", [
            {"method": "POST", "path": "^/v1/(contacts|companies)/", "rates": {"truncate": 1.0}},
        ])  # fmt: skip
        with pytest.raises(SystemicFailure):
            job.apply_clientify()
    finally:
        job.close()
    world.sandbox.clear_faults()
    assert sum(crm_tax_ids(world).values()) >= 1  # the lost answers' writes happened

    next_try(world, platform, Entity.CONTACTS, "run-outage-1")
    assert [t for t, n in crm_tax_ids(world).items() if n > 1] == []
    for _ in range(2):
        sync_round(world, platform, [Entity.CONTACTS])
    synced = crm_tax_ids(world)
    assert [t for t, n in synced.items() if n > 1] == [] and set(synced) == set(inv_tax_ids(world, platform))
    assert open_unconfirmed(world, platform) == 0


def crm_party_by_tax_id(world: World, tax_id: str) -> tuple[str, dict[str, Any]]:
    for rtype, resource in (("contact", world.clientify.contacts), ("company", world.clientify.companies)):
        for record in resource.iter_records():
            if str(record.get("taxpayer_identification_number") or "").upper() == tax_id:
                return rtype, record
    raise AssertionError(f"no Clientify record holds {tax_id}")


def edit_crm_email(world: World, rtype: str, record: dict[str, Any], email: str) -> None:
    resource = world.clientify.contacts if rtype == "contact" else world.clientify.companies
    resource.update(record["id"], {"emails": [{"type": 4, "email": email}]})


def facturama_email(world: World, tax_id: str) -> str:
    return next(
        str(c.get("Email")) for c in world.facturama.clients.iter_records() if c["Rfc"].upper() == tax_id
    )


def test_an_edit_on_a_record_the_killed_try_created_is_not_absorbed_by_the_retry(make_world):
    """Defect 2 of docs/reliability.md: the retry links the record it finds; a user's edit made on it
    meanwhile must still reach the other side, not become the merge base."""
    platform = Platform.FACTURAMA
    world = make_world()
    world.sandbox.seed(platform.value, clients=CLIENTS, seed=8)
    first_try_killed(world, platform, Entity.CONTACTS, "clientify", "run-killed-3")
    tax_id = next(iter(crm_tax_ids(world)))
    rtype, record = crm_party_by_tax_id(world, tax_id)
    edit_crm_email(world, rtype, record, "editado@despues.mx")
    next_try(world, platform, Entity.CONTACTS, "run-killed-3")
    sync_round(world, platform, [Entity.CONTACTS])
    assert facturama_email(world, tax_id) == "editado@despues.mx"


def test_an_edit_on_a_record_an_unconfirmed_create_made_survives_the_next_run(make_world):
    """Defect 3: after an outage the next run finds the record an unconfirmed create made; an edit made
    on it in Clientify since is kept and sent to Facturama, not overwritten as a first match."""
    platform = Platform.FACTURAMA
    world = make_world()
    world.sandbox.seed(platform.value, clients=6, seed=9)
    world.sandbox.faults(
        "clientify", [{"method": "POST", "path": "^/v1/(contacts|companies)/", "rates": {"truncate": 1.0}}]
    )
    world.sync(platform, Entity.CONTACTS)  # every create's answer lost: unconfirmed, pending kept
    world.sandbox.clear_faults()
    tax_id = next(iter(crm_tax_ids(world)))
    rtype, record = crm_party_by_tax_id(world, tax_id)
    edit_crm_email(world, rtype, record, "corregido@cliente.mx")
    sync_round(world, platform, [Entity.CONTACTS])
    sync_round(world, platform, [Entity.CONTACTS])
    assert facturama_email(world, tax_id) == "corregido@cliente.mx"
    _, again = crm_party_by_tax_id(world, tax_id)
    assert [e["email"] for e in again.get("emails") or []] == ["corregido@cliente.mx"]
    assert [t for t, n in crm_tax_ids(world).items() if n > 1] == []


def test_an_edit_on_the_source_of_an_unconfirmed_invoicing_create_survives_the_next_run(make_world):
    """Defect 5: a create into Facturama whose answer was lost is found by the next run's listing; the
    Clientify source, edited since, keeps its edit and Facturama gets it (no first match that the
    invoicing side wins)."""
    platform = Platform.FACTURAMA
    world = make_world()
    world.sandbox.seed("clientify", companies=5, seed=10, country="MX")
    world.sandbox.faults("facturama", [{"method": "POST", "path": "^/[Cc]lient", "rates": {"truncate": 1.0}}])
    world.sync(platform, Entity.CONTACTS)  # every create's answer lost: unconfirmed, pending kept
    world.sandbox.clear_faults()
    made = inv_tax_ids(world, platform)
    assert made, "the lost answers' creates happened"
    tax_id = next(iter(made))
    rtype, record = crm_party_by_tax_id(world, tax_id)
    edit_crm_email(world, rtype, record, "nuevo@origen.mx")
    sync_round(world, platform, [Entity.CONTACTS])
    sync_round(world, platform, [Entity.CONTACTS])
    assert facturama_email(world, tax_id) == "nuevo@origen.mx"
    _, again = crm_party_by_tax_id(world, tax_id)
    assert [e["email"] for e in again.get("emails") or []] == ["nuevo@origen.mx"]
    assert [t for t, n in inv_tax_ids(world, platform).items() if n > 1] == []
