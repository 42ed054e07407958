"""Applying the plan to one side: creates and updates, with per-record outcomes.

- A pending-create entry is committed before each POST, so a crash between the POST and the ledger
  write never leads to a second create. An entry left by an earlier try (a worker killed mid-apply,
  the step failed by the breaker, Airflow retrying the task in the same run) is settled here before
  its item is written again: the target is searched (link field, then tax ID/SKU/our reference) and a
  record found is linked instead of created (``unsettled``); the next run's extract settles what a
  failed run leaves (``job.SyncJob``).
- A create writes the new id back to the source record's link field in the same step (Clientify
  custom field; FacturaDirecta custom attribute), so the pair is linked on both sides.
- Updates are read-modify-write from the state the extract read, and send only mapped fields.
- A bad record never stops the run: its outcome is ``failed`` with the reason, and it goes to the
  dead-letter list to be retried first next run. A mapping that cannot build a body raises a
  ``RecordError`` before any call: ``failed`` (dead-lettered) or ``skipped`` (no e-mail for Facturama,
  a line without SKU) with its reason; any other exception is a bug and stops the run. Bad credentials stop the run at once; so do
  ``breaker_limit`` consecutive transient failures (the API is down), before the watermark moves.

Writes run concurrently (the client's ``concurrency``); every ledger write happens on the calling
thread, a batch of results per transaction, retried through a restart of the database
(``Ledger.write``). When the step stops early (bad credentials, the breaker) the writes already under
way are waited for and recorded before it raises: nothing that reached an API is forgotten.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.links import NewLink
from clientify_sync.engine.ledger.pending import Create
from clientify_sync.engine.ledger.records import StagedRow
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.plan import Action, ItemResult, Outcome, PlanItem, Reason, Ref, Status
from clientify_sync.engine.progress import Progress
from clientify_sync.engine.sides import ClientifySide, InvoicingSide
from clientify_sync.engine.vocabulary import CRM, INV, Side
from clientify_sync.errors import (
    ApiError,
    AuthenticationError,
    CreatedTwiceError,
    RecordError,
    RetriableApiError,
    SystemicFailure,
    UnconfirmedWriteError,
)

log = logging.getLogger(__name__)
Rows = dict[tuple[str, str], StagedRow]  # staged records by (rtype, rid)


@dataclass
class Written:
    """What a write produced: the record as the target now holds it, and the source's hash after any
    link write-back (the written-back source record itself, when there was one)."""

    record: SideRecord
    source_hash: str
    source: SideRecord | None = None
    # A create: what it sent (the source's canonical data), the base the new link starts from.
    sent: dict[str, Any] | None = None
    # The target record was found, made by an earlier try, not created now: it may have been edited
    # since, so its hash is not taken as the synced state (the next run merges it against ``sent``).
    found: bool = False


@dataclass
class LedgerWrites:
    """What one batch of results changes in the ledger: written in one transaction, not one per record."""

    records: list[SideRecord] = field(default_factory=list)
    links: list[NewLink] = field(default_factory=list)
    settled_pending: list[int] = field(default_factory=list)
    finished: list[ItemResult] = field(default_factory=list)
    dead: list[Letter] = field(default_factory=list)
    cleared: list[tuple[str, str, str]] = field(default_factory=list)

    def flush(self, ledger: Ledger, run_id: str) -> None:
        cleared: dict[tuple[str, str], list[str]] = {}
        for side, rtype, rid in self.cleared:
            cleared.setdefault((side, rtype), []).append(rid)
        ledger.write(lambda conn: self._write(ledger, run_id, conn, cleared))

    def _write(
        self, ledger: Ledger, run_id: str, conn: Connection, cleared: dict[tuple[str, str], list[str]]
    ) -> None:
        """One transaction: every statement is an upsert, a delete or a status set, so a transaction
        retried after the database dropped it writes the same rows."""
        ledger.records.stage(self.records, run_id, conn=conn)
        ledger.links.save_many(conn, self.links, run_id)
        ledger.pending.delete(self.settled_pending, conn)
        ledger.plan.finish_many(conn, self.finished)
        for (side, rtype), rids in cleared.items():
            ledger.dead_letters.clear(conn, side, rtype, rids)
        ledger.dead_letters.record(conn, self.dead, run_id)


@dataclass
class ApplyStats:
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skips: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass
class Applier:
    """Runs the planned items of one target side and records each outcome in the ledger."""

    ledger: Ledger
    run_id: str
    target: Side
    invoicing: InvoicingSide
    clientify: ClientifySide
    concurrency: int = 4
    breaker_limit: int = 10
    stats: ApplyStats = field(default_factory=ApplyStats)
    # The ledger changes of the batch being settled (see ``run``); flushed once per batch.
    writes: LedgerWrites = field(default_factory=LedgerWrites)
    consecutive_transient: int = 0  # across batches and plan chunks: what trips the breaker
    progress: Progress | None = None  # a line every 500 records or 30 s, across plan chunks
    # Pending creates an earlier try left for this target, by source record: settled before their
    # item is written again (module docstring).
    unsettled: dict[tuple[str, str], int] = field(default_factory=dict)
    _settling: set[int] = field(default_factory=set)  # items whose create an earlier try may have made
    _invoicing_found: dict[str, list[SideRecord]] | None = None  # the invoicing side by key and link
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, items: list[PlanItem]) -> ApplyStats:
        """Write ``items`` with up to ``4 × concurrency`` in flight (a sliding window, no barrier).

        Pending creates are journaled a group ahead of the writes that need them, and the ledger is
        updated every ``batch`` results, both on this thread while the pool keeps writing.
        """
        if not items:
            return self.stats
        inv_rows = self.ledger.records.fetch(INV, [i.inv for i in items if i.inv])
        crm_rows = self.ledger.records.fetch(CRM, [i.crm for i in items if i.crm])
        batch = max(1, self.concurrency * 8)
        window = max(1, self.concurrency * 4)
        pending_ids: dict[int, int] = {}
        journaled = submitted = 0
        futures: dict[Future[Written], PlanItem] = {}
        self.writes = LedgerWrites()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="apply") as pool:
            try:
                while submitted < len(items) or futures:
                    while submitted < len(items) and len(futures) < window:
                        if submitted == journaled:  # journal the next group before any of its POSTs
                            group = items[journaled : journaled + batch]
                            pending_ids |= self._journal_creates(group, inv_rows, crm_rows)
                            journaled += len(group)
                        item = items[submitted]
                        submitted += 1
                        futures[pool.submit(self._write, item, inv_rows, crm_rows)] = item
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        item = futures.pop(future)
                        failures = len(self.stats.failures)
                        self._count_transient(
                            self._settle(item, future, None if item.id is None else pending_ids.get(item.id))
                        )
                        if self.progress is not None:
                            self.progress.settled(failed=len(self.stats.failures) > failures)
                    if len(self.writes.finished) >= batch:
                        self._flush()
            except Exception:
                # Bad credentials or the breaker: writes not started are dropped; those under way are
                # waited for and recorded, so a create that went through is linked, never made twice.
                for future, item in futures.items():
                    if not future.cancel():
                        self._settle_quietly(item, future, pending_ids)
                self._flush()
                raise
        self._flush()
        return self.stats

    def _settle_quietly(self, item: PlanItem, future: Future[Written], pending_ids: dict[int, int]) -> None:
        """Record an item the step is stopping around (no breaker, no raise: the step already stops)."""
        try:
            self._settle(item, future, None if item.id is None else pending_ids.get(item.id))
        except AuthenticationError as error:  # its create may still have happened: keep its entry
            self._fail(
                item, error.reason, error, keep_pending=None if item.id is None else pending_ids.get(item.id)
            )

    def _count_transient(self, ok: bool) -> None:
        self.consecutive_transient = 0 if ok else self.consecutive_transient + 1
        if self.consecutive_transient >= self.breaker_limit:
            raise SystemicFailure(
                f"{self.consecutive_transient} consecutive transient failures writing to "
                f"{self.target.value}: stopping the run (watermark not advanced)"
            )

    def _flush(self) -> None:
        self.writes.flush(self.ledger, self.run_id)
        self.writes = LedgerWrites()

    # -- before the writes: the pending-create journal ---------------------------------------------
    def _journal_creates(self, batch: list[PlanItem], inv_rows: Rows, crm_rows: Rows) -> dict[int, int]:
        """Write down the creates of ``batch`` (one statement) before any of their POSTs; their ids.

        A create an earlier try journaled keeps its entry, and its item is settled before any POST.
        """
        creates: dict[int, Create] = {}
        earlier: dict[int, int] = {}
        for item in batch:
            if item.action is not Action.CREATE or item.id is None:
                continue
            source_ref = item.inv if self.target is Side.CLIENTIFY else item.crm
            if source_ref is not None and (source_ref.rtype, source_ref.rid) in self.unsettled:
                earlier[item.id] = self.unsettled[(source_ref.rtype, source_ref.rid)]
                self._settling.add(item.id)
                continue
            if self.target is Side.CLIENTIFY:
                source = _ref(item.inv)
                row = inv_rows[source]
                creates[item.id] = Create(
                    self.target.value, item.crm_type or "", source, row["key"], row["data"]
                )
            else:
                source = _ref(item.crm)
                target_type = self.invoicing.mapper.rtype_for(None)
                row = crm_rows[source]
                creates[item.id] = Create(self.target.value, target_type, source, row["key"], row["data"])
        if not creates:
            return earlier
        ids = self.ledger.write(
            lambda conn: self.ledger.pending.add(conn, list(creates.values()), self.run_id)
        )
        return earlier | dict(zip(creates, ids, strict=True))

    def _idempotency_key(self, item: PlanItem) -> str:
        """The same key on every try of one plan item (a retry of the step re-sends it), unique across
        integrations, runs and ledgers: an API that keeps keys replays instead of creating twice."""
        digest = hashlib.sha256(
            f"{self.ledger.integration}|{self.ledger.entity}|{self.run_id}|{item.id}".encode()
        )
        return f"cs-{digest.hexdigest()[:40]}"

    # -- settling a create an earlier try may have made (worker threads) ----------------------------
    def _made_earlier(self, item: PlanItem, source: StagedRow) -> SideRecord | None:
        """The record an earlier try of ``item`` created, found on the target; None when none was."""
        if item.id not in self._settling:
            return None
        if self.target is Side.CLIENTIFY:
            found = self.clientify.find(source["rid"], source["key"])
        else:
            index = self._invoicing_records()
            found = index.get(f"link:{source['rid']}") or index.get(f"key:{source['key']}", [])
        if len(found) > 1:
            raise CreatedTwiceError(
                f"an interrupted create left {len(found)} records on {self.target.value}: "
                f"{', '.join(f'{r.rtype} {r.rid}' for r in found)}; merge them, then the next run links the one left"
            )
        if found:
            log.info(
                "create %s: made by an earlier try (%s %s), linked",
                item.summary(),
                found[0].rtype,
                found[0].rid,
            )
        return found[0] if found else None

    def _invoicing_records(self) -> dict[str, list[SideRecord]]:
        """The invoicing listing by link and by key, read once (it has no lookup by key)."""
        with self._lock:
            if self._invoicing_found is None:
                index: dict[str, list[SideRecord]] = {}
                for rtype, page in self.invoicing.pages():
                    for raw in page:
                        record = self.invoicing.mapper.read(
                            rtype or self.invoicing.mapper.rtype_for(None), raw
                        )
                        if record.link:
                            index.setdefault(f"link:{record.link}", []).append(record)
                        if record.key:
                            index.setdefault(f"key:{record.key}", []).append(record)
                self._invoicing_found = index
            return self._invoicing_found

    # -- the write itself (worker threads: no ledger access here) ----------------------------------
    def _write(self, item: PlanItem, inv_rows: Rows, crm_rows: Rows) -> Written:
        if item.action is Action.CREATE and self.target is Side.CLIENTIFY:
            inv_row = inv_rows[_ref(item.inv)]
            found = self._made_earlier(item, inv_row)
            record = found or self.clientify.create(item.crm_type or "", inv_row["data"], link=inv_row["rid"])
            if not self.invoicing.link_supported:
                return Written(record, inv_row["hash"], sent=inv_row["data"], found=found is not None)
            source = self.invoicing.update(
                inv_row["rtype"], inv_row["rid"], _raw(inv_row), inv_row["data"], set(), link=record.rid
            )
            return Written(record, _source_hash(source, inv_row), source, inv_row["data"], found is not None)
        if item.action is Action.CREATE:
            crm_row = crm_rows[_ref(item.crm)]
            found = self._made_earlier(item, crm_row)
            record = found or self.invoicing.create(
                self.invoicing.mapper.rtype_for(None),
                crm_row["data"],
                crm_row["rid"],
                self._idempotency_key(item),
            )
            source = self.clientify.update(
                crm_row["rtype"], crm_row["rid"], _raw(crm_row), crm_row["data"], set(), link=record.rid
            )
            return Written(record, _source_hash(source, crm_row), source, crm_row["data"], found is not None)
        inv, crm, merged = _ref(item.inv), _ref(item.crm), item.merged or {}
        changed = set(item.fields)
        if self.target is Side.CLIENTIFY:
            record = self.clientify.update(
                crm.rtype, crm.rid, _raw(crm_rows[crm]), merged, changed, link=inv.rid
            )
        else:
            link = crm.rid if self.invoicing.link_supported else None
            record = self.invoicing.update(
                inv.rtype, inv.rid, _raw(inv_rows[inv]), merged, changed, link=link
            )
        return Written(record, "")

    # -- after the write: outcome, link, mirror, dead letters ---------------------------------------
    def _settle(self, item: PlanItem, future: Future[Written], pending_id: int | None) -> bool:
        """Record one item's outcome. Returns False for a transient failure (for the breaker)."""
        try:
            written = future.result()
        except AuthenticationError:
            raise
        except UnconfirmedWriteError as error:
            # The POST may have reached the API: keep the pending entry, the next run looks first.
            self._fail(item, "unconfirmed_create", error, keep_pending=pending_id)
            return False
        except RetriableApiError as error:
            self._fail(item, error.reason, error, drop_pending=pending_id)
            return False
        except ApiError as error:
            self._fail(item, error.reason, error, drop_pending=pending_id)
            return True
        except RecordError as error:
            # Raised by a mapping before any call: the record is out of scope or cannot be held exactly.
            if error.outcome == Outcome.SKIPPED:
                self._skip(item, error, drop_pending=pending_id)
            else:
                self._fail(item, error.reason, error, drop_pending=pending_id)
            return True
        self._succeed(item, written, pending_id)
        return True

    def _succeed(self, item: PlanItem, written: Written, pending_id: int | None) -> None:
        record = written.record
        self.writes.records.extend([record] + ([written.source] if written.source else []))
        outcome = Outcome.CONFLICT if item.reason == Reason.CONFLICT else Outcome.UPDATED
        if item.action is Action.CREATE:
            outcome = Outcome.CREATED
            target_hash = "" if written.found else record.content_hash
            if self.target is Side.CLIENTIFY:
                inv_ref, crm_ref = _ref(item.inv), Ref(record.rtype, record.rid)
                inv_hash, crm_hash = written.source_hash, target_hash
            else:
                inv_ref, crm_ref = Ref(record.rtype, record.rid), _ref(item.crm)
                inv_hash, crm_hash = target_hash, written.source_hash
            base = written.sent if written.found and written.sent is not None else record.data
            self.writes.links.append(NewLink(inv_ref, crm_ref, base, inv_hash, crm_hash))
            if pending_id is not None:
                self.writes.settled_pending.append(pending_id)
        result = {"rid": record.rid, "rtype": record.rtype, "hash": record.content_hash}
        if record.rounding and (item.action is Action.CREATE or {"lines", "total"} & set(item.fields)):
            result["rounding"] = str(record.rounding)  # this write carried a rounding line (report.py)
        self.writes.finished.append(
            ItemResult(
                item_id=_id(item), status=Status.DONE, outcome=outcome, reason=item.reason, result=result
            )
        )
        self._clear_dead_letters(item)
        self.stats.count(outcome.value)

    def _fail(
        self,
        item: PlanItem,
        reason: str,
        error: Exception,
        *,
        keep_pending: int | None = None,
        drop_pending: int | None = None,
    ) -> None:
        detail = _describe(error)
        side, rtype, rid = self._record_of(item)
        log.warning("%s %s %s failed: %s (%s)", item.action, rtype, rid, reason, detail)
        if drop_pending is not None:
            self.writes.settled_pending.append(drop_pending)
        self.writes.finished.append(
            ItemResult(
                item_id=_id(item), status=Status.FAILED, outcome=Outcome.FAILED, reason=reason, detail=detail
            )
        )
        self.writes.dead.append(Letter(side, rtype, rid, reason, detail))
        self.stats.count(Outcome.FAILED.value)
        self.stats.failures.append(
            {"side": side, "rtype": rtype, "id": rid, "reason": reason, "detail": detail}
        )

    def _skip(self, item: PlanItem, error: RecordError, *, drop_pending: int | None = None) -> None:
        """A record the target cannot take as it stands (no e-mail, a line without SKU): no dead letter,
        since retrying cannot help until the record itself changes, which brings it back anyway.

        Its status is ``skipped``, not ``done``, so the pair's merge base does not move past it.
        """
        side, rtype, rid = self._record_of(item)
        log.info("%s %s %s skipped: %s", item.action, rtype, rid, error.reason)
        if drop_pending is not None:
            self.writes.settled_pending.append(drop_pending)
        self.writes.finished.append(
            ItemResult(
                item_id=_id(item), status=Status.SKIPPED, outcome=Outcome.SKIPPED, reason=error.reason,
                detail=error.detail,
            )
        )  # fmt: skip
        self._clear_dead_letters(item)  # an earlier failure of it is settled: it is now a known skip
        self.stats.count(Outcome.SKIPPED.value)
        self.stats.skips.append(
            {"side": side, "rtype": rtype, "id": rid, "reason": error.reason, "detail": error.detail}
        )

    def _record_of(self, item: PlanItem) -> tuple[str, str, str]:
        """The record a failure or skip is filed under (``PlanItem.filed_under``), as ledger columns."""
        side, ref = item.filed_under()
        return (side.value, *_ref(ref))

    def _clear_dead_letters(self, item: PlanItem) -> None:
        if item.inv is not None:
            self.writes.cleared.append((INV, *item.inv))
        if item.crm is not None:
            self.writes.cleared.append((CRM, *item.crm))


def _raw(row: StagedRow) -> dict[str, Any]:
    """The API record a read-modify-write starts from (staging keeps it for every record it stages)."""
    raw = row.get("raw")
    if raw is None:
        raise RecordError(
            f"{row['rtype']} {row['rid']}: no stored API record to update from; a full run reads it again"
        )
    return raw


def _source_hash(answer: SideRecord, row: StagedRow) -> str:
    """The source's hash to link with after the link write-back: the answer's, unless the answer shows
    an edit made since the extract read it (then none: the next run merges the edit instead of taking
    it as already synced)."""
    return answer.content_hash if answer.data == row["data"] else ""


def _id(item: PlanItem) -> int:
    """A stored item's id; the applier only ever gets stored items."""
    if item.id is None:
        raise ValueError(f"plan item not stored: {item.summary()}")
    return item.id


def _ref(ref: Ref | None) -> Ref:
    """The record an item names; a plan item without it is a bug (the planner always sets it)."""
    if ref is None:
        raise ValueError("plan item without the record it writes from")
    return ref


def _describe(error: Exception) -> str:
    """The reason text kept in the report: the API's own field messages where it gave them."""
    field_errors = getattr(error, "field_errors", None)
    if field_errors:
        return "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in field_errors.items())[:500]
    return str(error)[:500]
