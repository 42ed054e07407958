"""The task process killed at each step of a run: a real child Python process runs one sync against the
sandbox and the ledger and dies with ``os._exit(137)`` at the chosen point (nothing after it runs, no
handler, no flush). The next runs, in this process, must converge with no duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import Entity, Platform
from tests.engine.conftest import FAST, PLATFORMS, World
from tests.faults.conftest import CONTACTS_AND_PRODUCTS, Sizes, add_row, build_scenario
from tests.faults.convergence import converge, sync_round
from tests.fixtures.sandbox import ROOT

PAGE_SIZE = 2

CHILD = r"""
import itertools, json, os, sys
cfg = json.loads(sys.argv[1])
sys.path[:0] = [cfg["root"], cfg["root"] + "/plugins"]
from types import SimpleNamespace

import tests.engine.conftest as engine_conftest
from clientify_sync.engine import sides
from clientify_sync.engine.apply import Applier
from clientify_sync.engine.job import SyncJob
from clientify_sync.engine.vocabulary import Entity, Mode, Platform

def die(*_args, **_kwargs):
    os._exit(137)  # the task process is killed: no cleanup, no ledger write, no exception handler

point = cfg["point"]
if point == "post_then_exit":  # the Clientify POST went through; no link write-back, no ledger write
    create = sides.ClientifySide.create
    def create_then_die(self, *args, **kwargs):
        create(self, *args, **kwargs)
        die()
    sides.ClientifySide.create = create_then_die
elif point == "invoicing_post_then_exit":  # the invoicing POST went through; no link write-back, no ledger write
    create = sides.InvoicingSide.create
    def create_then_die(self, *args, **kwargs):
        create(self, *args, **kwargs)
        die()
    sides.InvoicingSide.create = create_then_die
elif point == "succeed_exit":  # a create and its link write-back succeeded; the ledger never hears of it
    succeed = Applier._succeed
    def succeed_or_die(self, item, written, pending_id):
        if item.action == "create":
            die()
        return succeed(self, item, written, pending_id)
    Applier._succeed = succeed_or_die
elif point == "before_commit":  # every write done and recorded per item; commit never runs
    SyncJob.commit = die
elif point in ("invoicing_paging", "clientify_paging"):  # killed after the 2nd page of a listing
    cls = sides.InvoicingSide if point == "invoicing_paging" else sides.ClientifySide
    pages = cls.pages
    def pages_then_die(self, *args):
        for number, page in enumerate(pages(self, *args), start=1):
            yield page
            if number == 2:
                die()
    cls.pages = pages_then_die
else:
    raise SystemExit(f"unknown crash point {point}")

engine_conftest._run_numbers = itertools.count(cfg["run_base"])  # never reuse a parent run id
facturama, clientify, facturadirecta = engine_conftest.make_clients(SimpleNamespace(**cfg["urls"]), **cfg["extra"])
world = engine_conftest.World(None, facturama, clientify, facturadirecta, cfg["ledger_url"])
platform, entity = Platform(cfg["platform"]), Entity(cfg["entity"])
world.watermarks[(platform, entity)] = cfg["watermark"]
world.sync(platform, entity, mode=Mode(cfg["mode"]))
sys.exit(0)  # reaching here means the crash point was never hit
"""


def run_child(
    world: World, platform: Platform, entity: Entity, point: str, **extra: Any
) -> subprocess.CompletedProcess:
    sandbox = world.sandbox
    cfg = {
        "root": str(ROOT), "point": point, "platform": platform.value, "entity": entity.value, "mode": "modified",
        "ledger_url": world.ledger_url, "watermark": world.watermarks.get((platform, entity)),
        "run_base": 900_000, "extra": FAST | extra,
        "urls": {"facturama_url": sandbox.facturama_url, "clientify_url": sandbox.clientify_url,
                 "facturadirecta_url": sandbox.facturadirecta_url},
    }  # fmt: skip
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


CRASHES = [
    pytest.param("post_then_exit", Entity.CONTACTS, id="after-clientify-POST-before-link-and-ledger"),
    pytest.param(
        "invoicing_post_then_exit", Entity.PRODUCTS, id="after-invoicing-POST-before-link-and-ledger"
    ),
    pytest.param("succeed_exit", Entity.CONTACTS, id="after-POST-and-link-before-ledger-commit"),
    pytest.param("before_commit", Entity.CONTACTS, id="between-apply-and-commit"),
    pytest.param("invoicing_paging", Entity.CONTACTS, id="after-2nd-page-of-invoicing-listing"),
    pytest.param("clientify_paging", Entity.CONTACTS, id="after-2nd-page-of-clientify-listing"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("point", "entity"), CRASHES)
def test_killed_task_then_reruns_converge_without_duplicates(
    make_world, fault_table, large, platform: Platform, point: str, entity: Entity
):
    world = make_world()
    sizes = Sizes.pick(large)
    scenario = build_scenario(world, platform, sizes)
    world.sandbox.reset_stats()
    watermarks = dict(world.watermarks)
    # Small pages so a listing has several: 8 customers on the invoicing side, 5 contacts in Clientify.
    child = run_child(world, platform, entity, point, page_size=PAGE_SIZE)
    assert child.returncode == 137, (
        f"crash point not reached (exit {child.returncode}):\n{child.stderr[-3000:]}"
    )
    writes = sum(r["count"] for api in (platform.value, "clientify") for r in world.sandbox.stats(api)["by_route"]
                 if r["method"] in ("POST", "PUT") and r["status"] < 300)  # fmt: skip
    assert world.watermarks == watermarks
    if point.endswith("paging"):
        assert writes == 0  # killed while extracting: nothing was written yet
        api = "clientify" if point.startswith("clientify") else platform.value
        gets = sum(r["count"] for r in world.sandbox.stats(api)["by_route"] if r["method"] == "GET")
        resource = world.clientify.contacts if api == "clientify" else world.invoicing(platform).clients
        # Killed after the 2nd page arrived: the first page alone, then up to ``concurrency`` pages in flight.
        concurrency = resource_concurrency = (
            world.clientify.settings.concurrency
            if api == "clientify"
            else (world.invoicing(platform).settings.concurrency)
        )
        assert 2 <= gets <= 1 + resource_concurrency, (gets, concurrency)
        assert len(list(resource.iter_records())) > 2 * PAGE_SIZE  # died with pages left
    else:
        assert writes >= 1  # killed after writing
    pending = Ledger.open(world.ledger_url, platform.value, entity.value)
    left_pending = len(pending.pending.all())
    pending.close()

    outcome = converge(world, platform, CONTACTS_AND_PRODUCTS, scenario.edits)
    add_row(fault_table, f"{platform.value}: crash {point} ({entity.value})", 1, outcome)
    assert outcome.result.ok, outcome.result.explain()
    assert (outcome.idle_writes, outcome.idle_failed_writes) == (0, 0), outcome.errors
    if point in ("post_then_exit", "invoicing_post_then_exit", "succeed_exit"):
        assert left_pending >= 1  # the create was journaled before its POST


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("point", ["post_then_exit", "invoicing_post_then_exit"])
def test_killed_while_creating_estimates_then_reruns_converge_without_duplicates(
    make_world, fault_table, large, platform: Platform, point: str
):
    """A budget POSTed to Clientify (or an estimate to the invoicing platform), then the process dies before
    the link write-back and the ledger: the document carries our reference, so the rerun finds it."""
    world = make_world()
    entities = (*CONTACTS_AND_PRODUCTS, Entity.ESTIMATES)
    scenario = build_scenario(world, platform, Sizes.pick(large), entities=entities)
    assert not sync_round(world, platform, CONTACTS_AND_PRODUCTS)  # the new documents' customers and products
    before = (
        len(list(world.clientify.budgets.iter_records())),
        len(list(world.invoicing(platform).estimates.iter_records())),
    )
    child = run_child(world, platform, Entity.ESTIMATES, point)
    assert child.returncode == 137, (
        f"crash point not reached (exit {child.returncode}):\n{child.stderr[-3000:]}"
    )
    after = (
        len(list(world.clientify.budgets.iter_records())),
        len(list(world.invoicing(platform).estimates.iter_records())),
    )
    assert after != before  # the document was created before the process died

    outcome = converge(world, platform, entities, scenario.edits)
    add_row(fault_table, f"{platform.value}: crash {point} (estimates)", 1, outcome)
    assert outcome.result.ok, outcome.result.explain()
    assert (outcome.idle_writes, outcome.idle_failed_writes) == (0, 0), outcome.errors
