"""``Runs``: one row per run whichever task starts it, its report, and each step's summary."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.schema import runs

RUN = "manual__2026-11-29T10:00:00+00:00"


def test_the_first_task_to_start_a_run_records_it(ledger: Ledger) -> None:
    ledger.runs.start(RUN, "modified", False)
    ledger.runs.start(RUN, "full", True)  # a later task of the same run keeps the row
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.mode, runs.c.dry_run, runs.c.finished_at)).all()
    assert [tuple(r) for r in rows] == [("modified", False, None)]
    assert ledger.runs.report(RUN) is None


def test_finish_stores_the_report_as_json(ledger: Ledger) -> None:
    ledger.runs.start(RUN, "modified", False)
    ledger.runs.finish(RUN, {"counts": {"created": 2}, "at": datetime(2026, 11, 29, 10, tzinfo=UTC)})
    assert ledger.runs.report(RUN) == {"counts": {"created": 2}, "at": "2026-11-29 10:00:00+00:00"}
    assert ledger.scoped("products").runs.report(RUN) is None


def test_a_retried_step_replaces_its_summary(ledger: Ledger) -> None:
    ledger.runs.save_step(RUN, "extract_invoicing", {"records": 1}, {"GET": 1})
    ledger.runs.save_step(RUN, "extract_invoicing", {"records": 2}, {"GET": 2})
    ledger.runs.save_step(RUN, "reconcile", {"counts": {}}, {})
    assert ledger.runs.steps(RUN) == {
        "extract_invoicing": {"summary": {"records": 2}, "calls": {"GET": 2}},
        "reconcile": {"summary": {"counts": {}}, "calls": {}},
    }
    assert ledger.runs.steps("another run") == {}
