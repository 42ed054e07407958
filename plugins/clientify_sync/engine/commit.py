"""The commit step: what a run that went through leaves in the ledger, in the order it depends on.

The order, stated and enforced here only (``Commit.run``):

1. **Bases** of the pairs whose every write succeeded move to the merged record (a touch needs no
   write), and dead letters on their records close: one transaction per chunk of pairs. A pair's
   items are stored next to each other (same priority, consecutive ids: ``ledger.plan``), so a pair
   is complete when the next one starts.
2. **Record states** from the settled plan (``ledger.record_states``).
3. **Positions**, in one transaction: the inbox rows this run claimed are done, old done rows are
   purged, and the activity feed's position the extract step read to is stored. They move only here,
   after the writes, so a run that failed earlier leaves them where they were and the next run reads
   the same changes again.
4. **Watermark** out (``watermark.next_watermark``; a dry run never moves it) and the report, which
   marks the run finished; then plans past ``keep_plans`` are pruned.

Every stage is idempotent: a retried commit writes the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from clientify_sync import watermark as watermarks
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.records import StagedRow
from clientify_sync.engine.model import EntitySchema
from clientify_sync.engine.plan import Action, Outcome, PlanItem, Status
from clientify_sync.engine.report import build_report
from clientify_sync.engine.vocabulary import CRM, INV, JobSpec

FEED_POSITION = "feed_position"  # the extract step's summary key: where the activity feed was read to
# Done inbox rows are kept past FacturaDirecta's ~72 h of retries (a late retry is then still a duplicate).
INBOX_RETENTION = timedelta(days=7)
PAIRS_PER_TRANSACTION = 1000


def feed_key(ledger: Ledger) -> str:
    """The meta key holding where this scope last read the invoicing platform's activity feed to."""
    return f"activity:{ledger.integration}:{ledger.entity}"


@dataclass(frozen=True)
class Commit:
    """One run's commit step on ``ledger``."""

    ledger: Ledger
    spec: JobSpec
    schema: EntitySchema
    keep_plans: int

    def run(self, previous_watermark: str | None, seen_max: str | None) -> dict[str, Any]:
        """Apply the four stages of the module docstring; return the run's report.

        Args:
            previous_watermark: the watermark stored by the last successful run (the DAG pushes the
                report's ``watermark_out`` as the next one; this is the only place the rule is applied).
            seen_max: the highest ``modified`` this run read from Clientify.
        """
        if not self.spec.dry_run:
            self._move_bases()
            self.ledger.record_states.update_from_plan(self.spec.run_id)
            extracted = self.ledger.runs.steps(self.spec.run_id).get("extract_invoicing", {})
            position = extracted.get("summary", {}).get(FEED_POSITION)
            self.ledger.write(lambda conn: self._move_positions(conn, position))
        watermark_out = (
            previous_watermark  # a dry run wrote nothing: it never moves the watermark
            if self.spec.dry_run
            else watermarks.next_watermark(previous_watermark, seen_max, self.spec.mode)
        )
        report = build_report(self.ledger, self.spec, previous_watermark, watermark_out, schema=self.schema)
        self.ledger.runs.finish(self.spec.run_id, report)
        self.ledger.plan.prune(self.keep_plans)
        return report

    # -- 1. bases ------------------------------------------------------------------------------
    def _move_bases(self) -> None:
        done: list[list[PlanItem]] = []
        current: list[PlanItem] = []
        for chunk in self.ledger.plan.iter(self.spec.run_id):
            for item in chunk:
                if item.action not in (Action.UPDATE, Action.TOUCH):
                    continue
                if current and current[0].pair != item.pair:
                    done.append(current)
                    current = []
                current.append(item)
                if len(done) >= PAIRS_PER_TRANSACTION:
                    self._move_chunk(done)
                    done = []
        if current:
            done.append(current)
        self._move_chunk(done)

    def _move_chunk(self, pairs: list[list[PlanItem]]) -> None:
        """Move the bases of the pairs whose writes all succeeded; such a pair is in sync on both sides,
        so a dead letter left on either record (an ``unconfirmed_create`` a later look found) closes."""
        done = [
            items
            for items in pairs
            if all(i.status is Status.DONE or i.action is Action.TOUCH for i in items)
        ]
        if not done:
            return
        inv_rows = self.ledger.records.fetch(INV, [i[0].inv for i in done if i[0].inv], with_raw=False)
        crm_rows = self.ledger.records.fetch(CRM, [i[0].crm for i in done if i[0].crm], with_raw=False)
        self.ledger.write(lambda conn: self._move_in(conn, done, inv_rows, crm_rows))

    def _move_in(
        self,
        conn: Connection,
        done: list[list[PlanItem]],
        inv_rows: dict[tuple[str, str], StagedRow],
        crm_rows: dict[tuple[str, str], StagedRow],
    ) -> None:
        cleared: dict[tuple[str, str], list[str]] = {}
        for items in done:
            first = items[0]
            assert first.inv is not None and first.crm is not None
            self.ledger.links.save(
                first.inv,
                first.crm,
                base=first.merged,
                inv_hash=inv_rows[first.inv]["hash"],
                crm_hash=crm_rows[first.crm]["hash"],
                run_id=self.spec.run_id,
                conn=conn,
            )
            for item in items:
                if item.action is Action.TOUCH and item.id is not None:
                    self.ledger.plan.finish(
                        conn, item.id, status=Status.DONE, outcome=Outcome.UNCHANGED, reason=item.reason
                    )
            cleared.setdefault((INV, first.inv.rtype), []).append(first.inv.rid)
            cleared.setdefault((CRM, first.crm.rtype), []).append(first.crm.rid)
        for (side, rtype), rids in cleared.items():
            self.ledger.dead_letters.clear(conn, side, rtype, rids)

    # -- 3. positions --------------------------------------------------------------------------
    def _move_positions(self, conn: Connection, feed_position: str | None) -> None:
        self.ledger.inbox.finish_run(self.spec.run_id, conn)
        self.ledger.inbox.purge(INBOX_RETENTION, conn=conn)
        if feed_position:
            self.ledger.meta.set(feed_key(self.ledger), feed_position, conn=conn)
