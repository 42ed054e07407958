"""Several processes on one ledger at once, as tasks of several DAGs and workers are: none fails, no
write is lost. Each worker process starts on a barrier, so the schema creation and every upsert race."""

from __future__ import annotations

import multiprocessing as mp
import traceback
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.ledger import SCHEMA_VERSION, Ledger
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.schema import dead_letters, links, run_steps, runs

WORKERS = 8
RUN_ID = "manual__2026-11-29T10:00:00+00:00"


def _task(url: str, index: int, barrier: Any, errors: Any) -> None:
    """What the first statements of concurrent tasks of one run do to the ledger."""
    try:
        barrier.wait(timeout=60)
        ledger = Ledger.open(url, "facturama", "contacts")  # creates the schema when it is missing
        ledger.runs.start(RUN_ID, "modified", False)
        ledger.runs.save_step(RUN_ID, "extract_invoicing", {"records": index}, {})
        with ledger.begin() as conn:
            ledger.dead_letters.record(
                conn, [Letter("invoicing", "client", "C-1", "api_error", f"try {index}")], RUN_ID
            )
        ledger.meta.set("clientify.custom_field:in_facturama:contacts", "defined")
        pair = index % 2
        ledger.links.save(("client", f"C-{pair}"), ("contact", f"K-{pair}"), base=None, inv_hash="", crm_hash="",
                         run_id=RUN_ID)  # fmt: skip
        ledger.close()
    except BaseException:  # reported to the parent, which fails the test with it
        errors.put(f"worker {index}: {traceback.format_exc()}")
        raise


def _run_together(url: str) -> list[str]:
    context = mp.get_context("fork")
    barrier, errors = context.Barrier(WORKERS), context.Queue()
    workers = [context.Process(target=_task, args=(url, i, barrier, errors)) for i in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    stuck = [w.pid for w in workers if w.is_alive()]
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    failed = [f"worker exit code {w.exitcode}" for w in workers if w.exitcode not in (0, None)]
    return reported + failed + [f"stuck workers {stuck}" for _ in stuck[:1]]


def test_concurrent_tasks_create_the_schema_once_and_lose_no_write(ledger_url):
    assert _run_together(ledger_url) == []
    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT value FROM cs_meta WHERE key = 'schema_version'")) == str(
            SCHEMA_VERSION
        )
        assert conn.scalar(sa.select(sa.func.count()).select_from(runs)) == 1  # one row per run, not per task
        assert conn.scalar(sa.select(sa.func.count()).select_from(run_steps)) == 1
        assert conn.scalar(sa.select(dead_letters.c.attempts)) == WORKERS  # every attempt counted
        assert conn.scalar(sa.select(sa.func.count()).select_from(links)) == 2
    engine.dispose()
