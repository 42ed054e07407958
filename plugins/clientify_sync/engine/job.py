"""One sync run of one entity between one invoicing platform and Clientify, step by step.

Each public method is one DAG task: extract each side, reconcile (the plan), apply to Clientify,
apply to the invoicing platform, commit (links, watermark, report). Steps share nothing in memory:
records are staged in the ledger under the run id, so each step can run in its own process and a
failed step can be retried alone. Each step returns a small JSON-able dict for XCom.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from clientify_sync import watermark as watermarks
from clientify_sync.api.client import unsupported
from clientify_sync.api.protocols import CrmClient, InvoicingClient, ServiceClient
from clientify_sync.engine.api_change import follow_api_change
from clientify_sync.engine.apply import Applier
from clientify_sync.engine.documents import Directory, RoundingPolicy
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.database import LeaseTaken, lease
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.inbox import Claimed
from clientify_sync.engine.ledger.links import NewLink
from clientify_sync.engine.model import SCHEMAS
from clientify_sync.engine.plan import Action, Outcome, PlanItem, Reason, Ref, Status
from clientify_sync.engine.progress import Progress
from clientify_sync.engine.reconcile import PlanChunk, Reconciler
from clientify_sync.engine.report import build_report
from clientify_sync.engine.sides import CONTENT_TYPES, build_sides, invoicing_api
from clientify_sync.engine.staging import PageStager
from clientify_sync.engine.vocabulary import CRM, INV, Entity, JobSpec, Mode, Side, SyncOptions
from clientify_sync.errors import SystemicFailure

log = logging.getLogger(__name__)
CRM_SOURCE = "clientify"  # the inbox's name for events Clientify sent
FEED_POSITION = "feed_position"  # the extract step's summary key: where the activity feed was read to
INBOX_CLAIM_TIMEOUT = timedelta(minutes=30)  # longer than a run: a claim older than this was orphaned
# Done inbox rows are kept past FacturaDirecta's ~72 h of retries (a late retry is then still a duplicate).
INBOX_RETENTION = timedelta(days=7)


class SyncJob:
    """The steps of one run; see the module docstring."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        invoicing: InvoicingClient,
        clientify: CrmClient,
        ledger: Ledger,
        options: SyncOptions | None = None,
        directory: Directory | None = None,
    ) -> None:
        """Prepare one run's steps on ``ledger``.

        Args:
            directory: an estimates run's customers and products, when another job of the same run
                in this process already built it (steps run at once share one); else built here.
        """
        self.spec = spec
        self.options = options or SyncOptions()
        self.ledger = ledger
        self.invoicing_client = invoicing
        self.clientify_client = clientify
        if spec.entity is Entity.ESTIMATES and directory is None:
            directory = self._directory()
        self.directory = directory
        self.invoicing, self.clientify = build_sides(
            spec.platform, spec.entity, invoicing, clientify, self.directory,
            RoundingPolicy(enabled=self.options.rounding_adjustment),
        )  # fmt: skip
        schema = SCHEMAS[spec.entity]
        wins = self.options.invoicing_wins.get(spec.entity)
        self.schema = schema if wins is None else dataclasses.replace(schema, invoicing_wins=wins)
        self.ledger.runs.start(spec.run_id, spec.mode.value, spec.dry_run)

    @classmethod
    def open(
        cls,
        spec: JobSpec,
        *,
        invoicing: InvoicingClient,
        clientify: CrmClient,
        ledger_url: str,
        options: SyncOptions | None = None,
        directory: Directory | None = None,
    ) -> SyncJob:
        ledger = Ledger.open(ledger_url, spec.platform.value, spec.entity.value)
        return cls(
            spec,
            invoicing=invoicing,
            clientify=clientify,
            ledger=ledger,
            options=options,
            directory=directory,
        )

    def close(self) -> None:
        self.ledger.close()

    def _directory(self) -> Directory:
        """Customers and products of the same integration, from the contacts and products ledgers."""
        contacts = self.ledger.scoped(Entity.CONTACTS.value)
        products = self.ledger.scoped(Entity.PRODUCTS.value)
        product_ids = [(rtype, rid) for rtype, rid, _, _ in products.records.keys(INV)]
        rows = products.records.fetch(INV, product_ids)
        return Directory.build(
            contacts.records.keys(INV),
            contacts.records.keys(CRM),
            contacts.links.pairs(),
            products.records.keys(INV),
            products.records.keys(CRM),
            products.links.pairs(),
            inv_products_raw={row["key"]: row["raw"] or {} for row in rows.values() if row["key"]},
        )

    # -- extract -------------------------------------------------------------------------------
    def extract_invoicing(self) -> dict[str, Any]:
        """Stage the invoicing platform's full listing (it has no modified filter; hashes tell changes),
        or, where it keeps an activity feed and a committed run stored a position, only the records the
        feed names since then, the others marked seen as stored (the feed says they did not change)."""
        self._reset_stats()
        follow_api_change(self.ledger, self.spec, invoicing_api(self.invoicing_client))
        stager = PageStager(self.ledger, Side.INVOICING, self.invoicing.mapper, self.spec.run_id)
        position = self._feed_position() if self.spec.mode is not Mode.FULL else None
        extra: dict[str, Any] = {}
        if position is not None:
            changes = self.invoicing.changes(position)
            for rtype, page in self.invoicing.named(changes.changed):
                stager.stage(rtype, page)
            staged = stager.finish()
            self.ledger.records.touch_all(
                INV, self.spec.run_id, keep=set(changes.changed) | set(changes.archived)
            )
            extra = {"feed": "activity", "archived": len(changes.archived), FEED_POSITION: changes.end}
        else:
            end = self.invoicing.feed_head()  # before the listing: an edit made meanwhile is read again
            for rtype, page in self.invoicing.pages():
                stager.stage(rtype, page)
            staged = stager.finish()
            extra = {FEED_POSITION: end} if end is not None else {}
        return self._step("extract_invoicing", {**staged, **extra})

    def _feed_position(self) -> str | None:
        """The activity-feed position the last committed run stored (None: no feed, or list everything)."""
        if self.invoicing.feed is None:
            return None
        return self.ledger.meta.get(self._feed_key()) or None

    def _feed_key(self) -> str:
        return f"activity:{self.ledger.integration}:{self.ledger.entity}"

    def extract_clientify(self, watermark: str | None) -> dict[str, Any]:
        """Settle pending creates, claim the inbox's pending events, then stage the Clientify records
        modified since ``watermark - lookback`` (all of them in full mode; in events mode only the ones
        the claimed events name, read one by one, and the watermark stays where it was)."""
        self._reset_stats()
        if not self.spec.dry_run:
            self._settle_pending_creates()
        events = self._claim_events()
        since = (
            watermarks.since(watermark, self.options.lookback) if self.spec.mode is Mode.MODIFIED else None
        )
        stager = PageStager(self.ledger, Side.CLIENTIFY, self.clientify.mapper, self.spec.run_id)
        if self.spec.mode is Mode.EVENTS:
            named = [(e.record_type, e.external_id) for e in events if e.source == CRM_SOURCE]
            pages = self.clientify.named(named)
        else:
            pages = self.clientify.pages(since)
        for rtype, page in pages:
            stager.stage(rtype, page)
        staged = stager.finish()  # before the cursor is read: the last batch is written here
        if self.spec.mode is Mode.EVENTS:
            return self._step(
                "extract_clientify", {**staged, "events": len(events), "since": None, "max_modified": None}
            )
        seen_max = self.ledger.records.max_modified(CRM, self.spec.run_id)
        summary: dict[str, Any] = {**staged, "since": since, "max_modified": seen_max}
        # An API that ignores modified[gte] returned everything: the read was a full one, and says so.
        ignored = [
            r.ignored_filter.message
            for r in self.clientify.resources.values()
            if r.ignored_filter is not None
        ]
        if ignored:
            summary["modified_filter_ignored"] = ignored
        return self._step("extract_clientify", summary)

    def _claim_events(self) -> list[Claimed]:
        """The inbox rows this run covers: what it claims now plus what an earlier try claimed.

        Every run claims: a clock run reads everything the events could name, so its commit marks them
        done too; rows a run that died left claimed go back to pending after ``INBOX_CLAIM_TIMEOUT``.
        """
        if self.spec.dry_run:
            return []
        self.ledger.inbox.release_stale(INBOX_CLAIM_TIMEOUT)
        self.ledger.inbox.claim(self.spec.run_id)
        return self.ledger.inbox.claimed_by(self.spec.run_id)

    def _settle_pending_creates(self) -> None:
        """Creates whose outcome a crash or an outage left unknown: find the record before anything is
        created again, and link it with the data the create sent as the merge base.

        A record created in Clientify carries the link field and a ``modified`` after the unadvanced
        watermark, so it is found by link field, else by key. Linked here, with its hash unknown, the
        next merge compares it with what was sent: an edit a user made on it since wins, where a first
        match by key (no base) would let the invoicing side overwrite it. Either way the entry is
        settled here, in the step that already reads Clientify (and holds its pool). Creates on the
        invoicing side are settled by reconcile, from the listing this run staged
        (``_settle_pending_invoicing_creates``).
        """
        for entry in self.ledger.pending.all():
            if entry["target"] != CRM:
                continue  # settled by reconcile, once the invoicing listing is staged
            found = self.clientify.find(entry["source_id"], entry["natural_key"])
            self.ledger.records.stage(found, self.spec.run_id)
            log.info("pending create %s: %d found in Clientify", entry["source_id"], len(found))
            if len(found) == 1:
                source, made = (
                    Ref(entry["source_type"], entry["source_id"]),
                    Ref(found[0].rtype, found[0].rid),
                )
                self._link_settled(Side.INVOICING, source, made, entry.get("sent"))
            self.ledger.pending.delete(entry["id"])

    def _settle_pending_invoicing_creates(self) -> None:
        """Creates on the invoicing side whose outcome is unknown: the listing this run staged holds the
        record if it was made (found by its key); linked like ``_settle_pending_creates`` does."""
        for entry in self.ledger.pending.all():
            if entry["target"] != INV:
                continue
            found = self.ledger.records.seen_with_key(INV, entry["natural_key"], self.spec.run_id)
            if len(found) == 1:
                source = Ref(entry["source_type"], entry["source_id"])
                self._link_settled(Side.CLIENTIFY, source, Ref(*found[0]), entry.get("sent"))
            self.ledger.pending.delete(entry["id"])

    def _link_settled(self, source_side: Side, source: Ref, made: Ref, sent: dict[str, Any] | None) -> None:
        """Link a record a pending create made to its source, with what the create sent as the merge base
        and both hashes unknown: the next merge sees an edit made on either side since as that side's."""
        inv, crm = (source, made) if source_side is Side.INVOICING else (made, source)
        if sent is None or self.ledger.links.find(inv=inv) or self.ledger.links.find(crm=crm):
            return  # linked meanwhile (an apply settled it), or an entry of an older version: matching decides
        self.ledger.links.save(inv, crm, base=sent, inv_hash="", crm_hash="", run_id=self.spec.run_id)

    # -- reconcile -----------------------------------------------------------------------------
    def reconcile(self) -> dict[str, Any]:
        """Match, merge and store the plan (no API call: the planner reads the ledger only)."""
        self._reset_stats()
        if not self.spec.dry_run:
            self._settle_pending_invoicing_creates()
        self.ledger.plan.clear(self.spec.run_id)
        planner = Reconciler(
            self.ledger,
            self.schema,
            self.spec.run_id,
            self.spec.mode,
            self.clientify.mapper.rtype_for,
            dead_letter_limit=self.options.dead_letter_limit,
            dependencies=self.directory.missing if self.directory else None,
        )
        store_plan(self.ledger, self.spec.run_id, planner.chunks(), dry_run=self.spec.dry_run)
        return self._step("reconcile", planner.counts.as_summary())

    # -- apply ---------------------------------------------------------------------------------
    def apply_clientify(self) -> dict[str, Any]:
        return self._apply(Side.CLIENTIFY, "apply_clientify")

    def apply_invoicing(self) -> dict[str, Any]:
        return self._apply(Side.INVOICING, "apply_invoicing")

    def _apply(self, target: Side, step: str) -> dict[str, Any]:
        """Write this run's planned items to ``target``, holding the step's lease (``ledger.lease``):
        a try of this step that is still running elsewhere (a zombie) finishes first."""
        self._reset_stats()
        if self.spec.dry_run:
            chunks = self.ledger.plan.iter(self.spec.run_id, target=target.value, status="planned")
            return self._step(step, {"dry_run": True, "would_write": sum(len(c) for c in chunks)})
        name = f"apply:{self.ledger.integration}:{self.ledger.entity}:{target.value}"
        try:
            with lease(self.ledger.engine, name, wait_s=self.options.lease_wait.total_seconds()):
                applier, total = self._apply_planned(target, step)
        except LeaseTaken as taken:
            raise SystemicFailure(f"{step}: {taken}; the next try or run takes over") from taken
        stats = applier.stats
        return self._step(step, {"items": total, "outcomes": stats.outcomes, "failed": len(stats.failures)})

    def _apply_planned(self, target: Side, step: str) -> tuple[Applier, int]:
        concurrency = self.options.concurrency or self._client_concurrency(target)
        label = f"{step} {self.spec.platform.value} {self.spec.entity.value}"
        progress = Progress(
            label, total=self.ledger.plan.count(self.spec.run_id, target=target.value, status="planned")
        )
        # Creates an earlier try of this step journaled and never settled (killed, stopped by the
        # breaker, the database gone): the applier looks for each before it would create it again.
        unsettled = {
            (entry["source_type"], entry["source_id"]): int(entry["id"])
            for entry in self.ledger.pending.all()
            if entry["target"] == target.value
        }
        applier = Applier(
            self.ledger,
            self.spec.run_id,
            target,
            self.invoicing,
            self.clientify,
            concurrency=concurrency,
            breaker_limit=self.options.breaker_limit,
            progress=progress,
            unsettled=unsettled,
        )
        total = 0
        for items in self.ledger.plan.iter(self.spec.run_id, target=target.value, status="planned"):
            if total == 0:  # a chunk at a time: memory stays flat however large the plan
                self._ensure_link_fields()
            applier.run(items)
            total += len(items)
        if total:
            progress.report()
        return applier, total

    def _ensure_link_fields(self) -> None:
        """Define the Clientify link field once per content type (remembered in the ledger)."""
        for rtype in self.clientify.resources:
            key = f"clientify.custom_field:{self.clientify.link_field}:{CONTENT_TYPES[rtype]}"
            if self.ledger.meta.get(key) is None:
                self.clientify.custom_fields.ensure(self.clientify.link_field, CONTENT_TYPES[rtype])
                self.ledger.meta.set(key, "defined")

    def _client_concurrency(self, target: Side) -> int:
        client: ServiceClient = self.clientify_client if target is Side.CLIENTIFY else self.invoicing_client
        return client.settings.concurrency

    # -- commit --------------------------------------------------------------------------------
    def commit(self, previous_watermark: str | None, seen_max: str | None) -> dict[str, Any]:
        """Move the merge bases of fully written pairs, compute the watermark, store the report.

        Args:
            previous_watermark: the watermark stored by the last successful run (the DAG pushes the
                report's ``watermark_out`` as the next one; this is the only place the rule is applied).
            seen_max: the highest ``modified`` this run read from Clientify.
        """
        if not self.spec.dry_run:
            self._finalise_pairs()
            self.ledger.record_states.update_from_plan(self.spec.run_id)
            self.ledger.inbox.finish_run(self.spec.run_id)
            self.ledger.inbox.purge(INBOX_RETENTION)
            # The feed's position moves with the watermark: only when the whole run went through.
            position = (
                self.ledger.runs.steps(self.spec.run_id).get("extract_invoicing", {}).get("summary", {})
            )
            if position.get(FEED_POSITION):
                self.ledger.meta.set(self._feed_key(), position[FEED_POSITION])
        watermark_out = (
            previous_watermark  # a dry run wrote nothing: it never moves the watermark
            if self.spec.dry_run
            else watermarks.next_watermark(previous_watermark, seen_max, self.spec.mode)
        )
        report = build_report(self.ledger, self.spec, previous_watermark, watermark_out, schema=self.schema)
        self.ledger.runs.finish(self.spec.run_id, report)
        self.ledger.plan.prune(self.options.keep_plans)
        return report

    def _finalise_pairs(self) -> None:
        """A pair whose every write of this run succeeded gets the merged record as its new base.

        The plan is read a chunk at a time; a pair's items are stored next to each other (same
        priority, consecutive ids), so a pair is complete when the next one starts.
        """
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
                if len(done) >= 1000:
                    self._finalise_chunk(done)
                    done = []
        if current:
            done.append(current)
        self._finalise_chunk(done)

    def _finalise_chunk(self, pairs: list[list[PlanItem]]) -> None:
        """Move the bases of the pairs whose writes all succeeded; a touch needs no write.

        Such a pair is in sync on both sides: a dead letter left on either record (an
        ``unconfirmed_create`` whose record a later look found) is closed with it.
        """
        done = [
            items
            for items in pairs
            if all(i.status is Status.DONE or i.action is Action.TOUCH for i in items)
        ]
        if not done:
            return
        inv_rows = self.ledger.records.fetch(INV, [i[0].inv for i in done if i[0].inv], with_raw=False)
        crm_rows = self.ledger.records.fetch(CRM, [i[0].crm for i in done if i[0].crm], with_raw=False)
        self.ledger.write(lambda conn: self._finalise_in(conn, done, inv_rows, crm_rows))

    def _finalise_in(
        self, conn: Connection, done: list[list[PlanItem]], inv_rows: dict[Any, Any], crm_rows: dict[Any, Any]
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

    # -- helpers -------------------------------------------------------------------------------
    def _reset_stats(self) -> None:
        for client in (self.invoicing_client, self.clientify_client):
            client.stats.reset()

    def _step(self, step: str, summary: dict[str, Any]) -> dict[str, Any]:
        calls = {
            self.spec.platform.value: _stats_summary(self.invoicing_client),
            "clientify": _stats_summary(self.clientify_client),
        }
        self.ledger.runs.save_step(self.spec.run_id, step, summary, calls)
        log.info("%s %s %s: %s", self.spec.platform.value, self.spec.entity.value, step, summary)
        return summary


def store_plan(ledger: Ledger, run_id: str, chunks: Iterable[PlanChunk], *, dry_run: bool) -> None:
    """The reconcile step's writes, one transaction per chunk: plan items always; conflicts, the links
    of pairs matched in this run and the dead letters of deferred Clientify documents unless it is a
    dry run."""
    for chunk in chunks:
        ledger.write(functools.partial(_store_chunk, ledger, run_id, chunk, dry_run=dry_run))


def _store_chunk(ledger: Ledger, run_id: str, chunk: PlanChunk, conn: Connection, *, dry_run: bool) -> None:
    """One chunk of the plan and what goes with it, in the caller's transaction."""
    ledger.plan.add(run_id, chunk.items, conn)
    if dry_run:
        return
    ledger.conflicts.add(run_id, chunk.conflicts, conn)
    links = [NewLink(inv, crm, None, "", "") for inv, crm in chunk.new_links]
    ledger.links.save_many(conn, links, run_id)
    # A Clientify document may leave the window before its customer is linked.
    letters = []
    for item in chunk.dead_letters:
        assert item.crm is not None  # only Clientify documents are dead-lettered here
        letters.append(Letter(CRM, item.crm.rtype, item.crm.rid, Reason.DEPENDENCY_MISSING, item.detail))
    ledger.dead_letters.record(conn, letters, run_id)


def check_supported(
    spec: JobSpec, ledger: Ledger, invoicing: InvoicingClient, clientify: CrmClient
) -> list[dict[str, Any]]:
    """Probe the resources the entity assumes (one read each); record an ``unsupported`` run.

    An account without an estimates endpoint is a fact, not a failure: the run stores a report
    saying ``unsupported: <api> answered 404 on <path> (<hint>)`` and the caller ends it green.
    Only entities with assumed endpoints (estimates) are probed; others return ``[]`` at no cost.
    Needs only the clients and the ledger (no ``SyncJob``: its sides and directory are not needed).
    """
    if spec.entity is not Entity.ESTIMATES:
        return []
    found = [r.as_dict() for r in unsupported(spec.entity.value, invoicing, clientify)]
    if found:
        report = {
            "run_id": spec.run_id,
            "platform": spec.platform.value,
            "entity": spec.entity.value,
            "mode": spec.mode.value,
            "dry_run": spec.dry_run,
            "unsupported": found,
        }
        ledger.runs.start(spec.run_id, spec.mode.value, spec.dry_run)
        ledger.runs.finish(spec.run_id, report)
    return found


def _stats_summary(client: ServiceClient) -> dict[str, Any]:
    """The client's calls, retries and errors since the step started."""
    return client.stats.summary()
