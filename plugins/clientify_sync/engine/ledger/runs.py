"""Runs, their reports and each step's summary and API calls: ``cs_runs`` and ``cs_run_steps``."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.ledger.database import Repository, now, upsert
from clientify_sync.engine.ledger.schema import run_steps, runs


def _jsonable(value: dict[str, Any]) -> Any:
    """``value`` with what JSON cannot hold (dates, enums) as text."""
    return json.loads(json.dumps(value, default=str))


class Runs(Repository):
    """The runs of one integration and entity."""

    def start(self, run_id: str, mode: str, dry_run: bool) -> None:
        """Record the run once, whichever of its tasks starts first (the others keep that row)."""
        row = {
            "run_id": run_id,
            "integration": self.integration,
            "entity": self.entity,
            "mode": mode,
            "dry_run": dry_run,
            "started_at": now(),
        }
        with self._writing(None) as conn:
            upsert(conn, runs, row, ["run_id", "integration", "entity"])

    def finish(self, run_id: str, report: dict[str, Any]) -> None:
        """Mark the run finished, with its report."""
        with self._writing(None) as conn:
            conn.execute(
                sa.update(runs)
                .where(self._scope(runs), runs.c.run_id == run_id)
                .values(finished_at=now(), report=_jsonable(report))
            )

    def report(self, run_id: str) -> dict[str, Any] | None:
        """The report of a finished run (``None`` while it runs, or for an unknown run)."""
        with self.engine.connect() as conn:
            value: dict[str, Any] | None = conn.scalar(
                sa.select(runs.c.report).where(self._scope(runs), runs.c.run_id == run_id)
            )
            return value

    def save_step(self, run_id: str, step: str, summary: dict[str, Any], calls: dict[str, Any]) -> None:
        """Store (or replace, on a retried task) one step's summary and API calls."""
        row = {
            "run_id": run_id,
            "integration": self.integration,
            "entity": self.entity,
            "step": step,
            "summary": _jsonable(summary),
            "calls": calls,
        }
        with self._writing(None) as conn:
            upsert(conn, run_steps, row, ["run_id", "integration", "entity", "step"], ["summary", "calls"])

    def steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Each saved step of a run: its summary and API calls, by step name."""
        t = run_steps
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(self._scope(t), t.c.run_id == run_id)).mappings()
            return {r["step"]: {"summary": r["summary"], "calls": r["calls"]} for r in rows}
