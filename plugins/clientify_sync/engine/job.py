"""One sync run of one entity between one invoicing platform and Clientify, step by step.

Each public method is one DAG task: extract each side, reconcile (the plan), apply to Clientify,
apply to the invoicing platform, commit (links, watermark, report). Steps share nothing in memory:
records are staged in the ledger under the run id, so each step can run in its own process and a
failed step can be retried alone. Each step returns a small JSON-able dict for XCom.

``SyncJob`` orchestrates; each step's writes belong to the module that owns the step:

- extract: ``engine/staging.py`` (``PageStager``), ``engine/settle.py`` (creates left unknown),
  ``engine/api_change.py`` (a connection moved to another API), the inbox's claim;
- reconcile: ``engine/reconcile.py`` (``Reconciler`` reads, ``store_plan`` writes a chunk a transaction);
- apply: ``engine/apply.py`` (``Applier``), under the step's lease;
- commit: ``engine/commit.py``, which states the order its writes depend on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from clientify_sync import watermark as watermarks
from clientify_sync.api.client import unsupported
from clientify_sync.api.protocols import CrmClient, InvoicingClient, ServiceClient
from clientify_sync.engine.api_change import follow_api_change
from clientify_sync.engine.apply import Applier
from clientify_sync.engine.commit import FEED_POSITION, Commit, feed_key
from clientify_sync.engine.documents import Directory, RoundingPolicy
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.database import LeaseTaken, lease
from clientify_sync.engine.ledger.inbox import Claimed
from clientify_sync.engine.model import SCHEMAS
from clientify_sync.engine.progress import Progress
from clientify_sync.engine.reconcile import Reconciler, store_plan
from clientify_sync.engine.settle import settle_clientify_creates, settle_invoicing_creates
from clientify_sync.engine.sides import (
    CONTENT_TYPES,
    ClientifySide,
    InvoicingSide,
    build_sides,
    invoicing_api,
)
from clientify_sync.engine.staging import PageStager
from clientify_sync.engine.vocabulary import CRM, INV, Entity, JobSpec, Mode, Side, SyncOptions
from clientify_sync.errors import SystemicFailure

log = logging.getLogger(__name__)
CRM_SOURCE = "clientify"  # the inbox's name for events Clientify sent
INBOX_CLAIM_TIMEOUT = timedelta(minutes=30)  # longer than a run: a claim older than this was orphaned
STORED_PAGE = 1000  # stored records mapped again at a time when the mapping changed under a feed


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
        """Prepare one run's steps on ``ledger``; no I/O here (the first step records the run, and the
        sides and an estimates run's directory are built when a step first needs them).

        Args:
            directory: an estimates run's customers and products, when another job of the same run
                in this process already built it (steps run at once share one); else built here.
        """
        self.spec = spec
        self.options = options or SyncOptions()
        self.ledger = ledger
        self.invoicing_client = invoicing
        self.clientify_client = clientify
        self._given_directory = directory
        self._started = False
        schema = SCHEMAS[spec.entity]
        wins = self.options.invoicing_wins.get(spec.entity)
        self.schema = schema if wins is None else dataclasses.replace(schema, invoicing_wins=wins)

    @functools.cached_property
    def directory(self) -> Directory | None:
        """An estimates run's customers and products (shared by the run's jobs in one process)."""
        if self.spec.entity is not Entity.ESTIMATES:
            return None
        return self._given_directory or self._directory()

    @functools.cached_property
    def _sides(self) -> tuple[InvoicingSide, ClientifySide]:
        return build_sides(
            self.spec.platform, self.spec.entity, self.invoicing_client, self.clientify_client, self.directory,
            RoundingPolicy(enabled=self.options.rounding_adjustment), meta=self.ledger.meta,
        )  # fmt: skip

    @property
    def invoicing(self) -> InvoicingSide:
        """The invoicing platform's side: its resources, mapper and writes."""
        return self._sides[0]

    @property
    def clientify(self) -> ClientifySide:
        """Clientify's side: its resources, mapper, link field and writes."""
        return self._sides[1]

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
        self._begin()
        follow_api_change(self.ledger, self.spec, invoicing_api(self.invoicing_client))
        stager = PageStager(self.ledger, Side.INVOICING, self.invoicing.mapper, self.spec.run_id)
        position = self._feed_position() if self.spec.mode is not Mode.FULL else None
        extra: dict[str, Any] = {}
        if position is not None:
            changes = self.invoicing.changes(position)
            for rtype, page in self.invoicing.named(changes.changed):
                stager.stage(rtype, page)
            gone = set(changes.changed) | set(changes.archived)
            if not stager.skip_unchanged:
                # The mapping changed since the others were staged (our code, or the customers and
                # products an estimates run reads): map their stored records again, at no API call.
                for rtype, page in self._stored_pages(exclude=gone):
                    stager.stage(rtype, page)
            staged = stager.finish()
            self.ledger.records.touch_all(INV, self.spec.run_id, keep=gone)
            extra = {"feed": "activity", "archived": len(changes.archived), FEED_POSITION: changes.end}
        else:
            end = self.invoicing.feed_head()  # before the listing: an edit made meanwhile is read again
            for rtype, page in self.invoicing.pages():
                stager.stage(rtype, page)
            staged = stager.finish()
            extra = {FEED_POSITION: end} if end is not None else {}
        return self._step("extract_invoicing", {**staged, **extra})

    def _stored_pages(self, *, exclude: set[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The invoicing records the ledger holds, as pages of their raw API records by type."""
        ids = [(rtype, rid) for rtype, rid, _, _ in self.ledger.records.keys(INV) if rid not in exclude]
        for start in range(0, len(ids), STORED_PAGE):
            rows = self.ledger.records.fetch(INV, ids[start : start + STORED_PAGE])
            by_type: dict[str, list[dict[str, Any]]] = {}
            for (rtype, _), row in rows.items():
                if row["raw"]:
                    by_type.setdefault(rtype, []).append(row["raw"])
            yield from by_type.items()

    def _feed_position(self) -> str | None:
        """The activity-feed position the last committed run stored (None: no feed, or list everything)."""
        if self.invoicing.feed is None:
            return None
        return self.ledger.meta.get(feed_key(self.ledger)) or None

    def extract_clientify(self, watermark: str | None) -> dict[str, Any]:
        """Settle pending creates, claim the inbox's pending events, then stage the Clientify records
        modified since ``watermark - lookback`` (all of them in full mode; in events mode only the ones
        the claimed events name, read one by one, and the watermark stays where it was)."""
        self._begin()
        if not self.spec.dry_run:
            settle_clientify_creates(self.ledger, self.clientify, self.spec.run_id)
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

    # -- reconcile -----------------------------------------------------------------------------
    def reconcile(self) -> dict[str, Any]:
        """Match, merge and store the plan (no API call: the planner reads the ledger only)."""
        self._begin()
        if not self.spec.dry_run:
            settle_invoicing_creates(self.ledger, self.spec.run_id)
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
        self._begin()
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
            (entry.source_type, entry.source_id): entry.id
            for entry in self.ledger.pending.all()
            if entry.target == target.value
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
        """Move the merge bases of fully written pairs, the inbox and feed positions, the watermark;
        store the report (``engine/commit.py`` states the order)."""
        self._begin()
        return Commit(self.ledger, self.spec, self.schema, self.options.keep_plans).run(
            previous_watermark, seen_max
        )

    # -- helpers -------------------------------------------------------------------------------
    def _begin(self) -> None:
        """Start a step: record the run once (whichever task starts first keeps the row) and reset
        the clients' request counters, which the step's summary reports."""
        if not self._started:
            self.ledger.runs.start(self.spec.run_id, self.spec.mode.value, self.spec.dry_run)
            self._started = True
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
