"""Every query the sync status pages run against the state ledger, and nothing else.

Plain SQLAlchemy Core, no Airflow: the pages, the tests and the page benchmark call the same functions.
Each page runs a small, fixed number of queries; lists are keyset-paginated (never ``OFFSET``, never a
``COUNT`` over a large table), lookups go through the ledger's keys or the indexes ``ensure_indexes``
adds, so a page stays fast on a ledger of 100,000 records. The one scan is the name / e-mail search
(no index can serve a substring match): it is bounded by ``LIMIT`` and runs only when asked for.

The dead-letter actions need ledger schema version 3 (``dismissed_*`` and ``retry_requested_*`` columns):
``cs_dead_letters`` is reflected, so on an older ledger the lists still work and the actions say so.
"""

from __future__ import annotations

import base64
import json
import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clientify_sync.engine.ledger import schema as L
from clientify_sync.engine.ledger import write_transaction
from clientify_sync.engine.ledger.inbox import DONE, InboxStats
from clientify_sync.engine.ledger.inbox import stats as inbox_stats
from clientify_sync.engine.taxid import normalise as normalise_tax_id
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from clientify_sync.ui.reasons import describe

log = logging.getLogger(__name__)

INVOICING, CLIENTIFY = "invoicing", "clientify"
SIDES = (INVOICING, CLIENTIFY)
# Outcomes in the order the pages list them.
OUTCOMES = ("created", "updated", "conflict", "unchanged", "skipped", "quarantined", "deferred", "failed")
# The record types each side's mappers produce (the ledger's primary key starts with them).
RTYPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("contacts", INVOICING): ("client",),
    ("contacts", CLIENTIFY): ("contact", "company"),
    ("products", INVOICING): ("product",),
    ("products", CLIENTIFY): ("product",),
    ("estimates", INVOICING): ("estimate",),
    ("estimates", CLIENTIFY): ("budget",),
}
ALL_RTYPES = tuple(sorted({t for types in RTYPES.values() for t in types}))
PAGE_SIZE = 50
HISTORY_LIMIT = 100
# Indexes the record page and the overview need beyond the ledger's own keys. Plain DDL (IF NOT EXISTS
# works on SQLite and PostgreSQL) so the engine's SQLAlchemy metadata is left untouched.
UI_INDEXES = {
    "ix_cs_ui_plan_inv": "cs_plan_items (integration, entity, inv_id)",
    "ix_cs_ui_plan_crm": "cs_plan_items (integration, entity, crm_id)",
    "ix_cs_ui_plan_run_id": "cs_plan_items (run_id, integration, entity, id)",
    "ix_cs_ui_conflicts_inv": "cs_conflicts (integration, entity, inv_id)",
    "ix_cs_ui_conflicts_crm": "cs_conflicts (integration, entity, crm_id)",
    "ix_cs_ui_conflicts_run": "cs_conflicts (integration, entity, run_id)",
    "ix_cs_ui_runs_started": "cs_runs (integration, entity, started_at)",
    # The inbox panel's latency of the last runs: the done rows of a scope, by commit time (index only).
    "ix_cs_ui_inbox_done": "cs_inbox (integration, entity, status, processed_at, claimed_by_run, received_at)",
}
# Lower-cased names and e-mails of the remote records, for the search's prefix match (``json_text``).
EXPRESSION_INDEXES = {
    "sqlite": {
        f"ix_cs_ui_remote_{f}": f"cs_remote_records (lower(json_extract(data, '$.{f}')))"
        for f in ("name", "email")
    },
    "postgresql": {
        f"ix_cs_ui_remote_{f}": f"cs_remote_records ((lower(data ->> '{f}')))" for f in ("name", "email")
    },
}
EVENTS_MODE = Mode.EVENTS.value
V3_COLUMNS = ("dismissed_at", "dismissed_by", "retry_requested_at", "retry_requested_by")
# The inbox panel: how many of each scope's last runs that claimed webhook events it shows, looked for
# among the rows committed within this many days.
INBOX_RUNS = 5
INBOX_RUNS_DAYS = 7


def dag_id_for(integration: str, entity: str) -> str:
    """The DAG that syncs ``entity`` of ``integration`` (``dag_factory`` names them so)."""
    return f"{integration}_{entity}"


def scope_of(dag_id: str) -> tuple[str, str] | None:
    """The (integration, entity) a DAG id stands for, or None for a DAG that is not ours."""
    integration, _, entity = dag_id.partition("_")
    if integration in {p.value for p in Platform} and entity in {e.value for e in Entity}:
        return integration, entity
    return None


def all_scopes(integrations: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Every (integration, entity) pair, platforms first (the overview's row order)."""
    names = list(integrations) if integrations is not None else [p.value for p in Platform]
    return [(i, e.value) for i in names for e in Entity]


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque page cursor for a URL (keyset pagination)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[Any] | None:
    """The keyset values of a cursor; None when absent or not one of ours (a tampered URL starts over)."""
    if not cursor:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        return None
    return values if isinstance(values, list) and len(values) == size else None


def _unindexed(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SQLite's documented way to keep a term from choosing an index: a unary ``+`` before the column."""
    return sa.literal_column(f"+{column.table.name}.{column.name}", column.type)


Ident = tuple[str, str, str, str, str]  # a remote record's key: integration, entity, side, rtype, rid


def _ident(row: dict[str, Any]) -> Ident:
    return row["integration"], row["entity"], row["side"], row["rtype"], row["rid"]


def _keys_in(t: sa.Table, idents: Iterable[Ident]) -> sa.ColumnElement[bool]:
    """The rows of ``t`` (keyed by integration, entity, side, rtype, rid) with these keys: one ``rid IN``
    per (integration, entity, side, rtype), so each term uses the primary key."""
    groups: dict[tuple[str, str, str, str], set[str]] = {}
    for integration, entity, side, rtype, rid in idents:
        groups.setdefault((integration, entity, side, rtype), set()).add(rid)
    return sa.or_(sa.false(), *[
        sa.and_(t.c.integration == i, t.c.entity == e, t.c.side == s, t.c.rtype == r, t.c.rid.in_(sorted(rids)))
        for (i, e, s, r), rids in sorted(groups.items())
    ])  # fmt: skip


def _derived_state(row: dict[str, Any]) -> dict[str, Any]:
    """The state of a record without a stored one, from its link and its mapping problem."""
    if row.get("linked"):
        state = "in_sync" if row.get("link_hash") == row.get("hash") else "changed"
        return {"state": state, "reason": None, "detail": None, "target": None, "run_id": None, "at": None}
    if row.get("problem"):
        return {"state": "skipped", "reason": row["problem"], "detail": None, "target": None, "run_id": None,
                "at": None}  # fmt: skip
    return {"state": "unsettled", "reason": None, "detail": None, "target": None, "run_id": None, "at": None}


def json_text(dialect: str, field_name: str) -> sa.ColumnElement[str]:
    """``lower(data.<field>)`` spelled literally, so the expression index of ``ensure_indexes`` matches it."""
    if field_name not in ("name", "email"):
        raise ValueError(field_name)
    if dialect == "postgresql":
        return sa.literal_column(f"lower(cs_remote_records.data ->> '{field_name}')", sa.String)
    return sa.literal_column(f"lower(json_extract(cs_remote_records.data, '$.{field_name}'))", sa.String)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Page:
    """One page of a keyset-paginated list; ``next_cursor`` is None on the last page."""

    rows: list[dict[str, Any]]
    next_cursor: str | None = None


@dataclass
class Health:
    """The overview's verdict: ``level`` is ok / running / warn / fail / none; ``reason`` says why."""

    level: str
    reason: str


@dataclass
class Summary:
    """The overview row of one integration × entity."""

    integration: str
    entity: str
    dag_id: str
    last_run: dict[str, Any] | None
    run_state: str | None
    counts: dict[str, int]
    live: bool
    watermark: str | None
    dead_open: int
    dead_exhausted: int
    dead_max_attempts: int
    deferred: int
    quarantined: int
    conflicts: int
    health: Health
    reasons: dict[str, int] = field(default_factory=dict)
    first_match: int = 0  # differences found when a pair was first matched (no base): recorded, not conflicts


@dataclass
class InboxRun:
    """A run that claimed webhook events: how many, and its latency (oldest event received → its commit)."""

    run_id: str
    mode: str | None
    events: int
    oldest_received_at: datetime
    committed_at: datetime

    @property
    def latency_s(self) -> float:
        return max(0.0, (self.committed_at - self.oldest_received_at).total_seconds())


@dataclass
class InboxPanel:
    """One DAG's webhook inboxes (one per sending platform) and its last runs that claimed events."""

    integration: str
    entity: str
    dag_id: str
    inboxes: list[InboxStats]
    runs: list[InboxRun]

    @property
    def event_runs(self) -> list[InboxRun]:
        """The runs woken by the inbox (``events`` mode), as opposed to clock runs that claimed rows too."""
        return [r for r in self.runs if r.mode == EVENTS_MODE]


class LedgerView:
    """Read-mostly access to one ledger database for the status pages."""

    def __init__(self, engine: Engine, *, dead_letter_limit: int = 5) -> None:
        self.engine = engine
        self.dead_letter_limit = dead_letter_limit
        self._dead: sa.Table | None = None
        self._tables: set[str] = set()

    # -- schema ------------------------------------------------------------------------------------
    def has_table(self, conn: Connection, name: str) -> bool:
        """Whether the ledger has this table yet (the API server may read a ledger no task has upgraded,
        e.g. through a read-only user): remembered once found, looked up again until then."""
        if name not in self._tables and sa.inspect(conn).has_table(name):
            self._tables.add(name)
        return name in self._tables

    def dead_letters_table(self) -> sa.Table:
        """``cs_dead_letters`` as the database has it (with the v3 columns once the engine added them)."""
        if self._dead is None or not self.actions_supported:
            with self.engine.connect() as conn:
                self._dead = sa.Table("cs_dead_letters", sa.MetaData(), autoload_with=conn)
        return self._dead

    @property
    def actions_supported(self) -> bool:
        """Whether dismiss / retry can be recorded (ledger schema version 3)."""
        return self._dead is not None and all(name in self._dead.c for name in V3_COLUMNS)

    # -- overview ----------------------------------------------------------------------------------
    def overview(
        self, scopes: Sequence[tuple[str, str]], run_states: dict[tuple[str, str], str] | None = None
    ) -> list[Summary]:
        """One summary per scope: last run, counts, watermark, dead letters, conflicts, health.

        Four queries per scope, each on a key or index: the latest run, the latest finished run, the
        dead-letter aggregates and (while a run is going) its live counts. Conflicts, quarantined and
        deferred records come from the latest finished run's report.
        """
        run_states = run_states or {}
        summaries = []
        dead_table = self.dead_letters_table()
        with self.engine.connect() as conn:
            for integration, entity in scopes:
                last = self._latest_run(conn, integration, entity, finished=False)
                done = (
                    last
                    if last and last["finished_at"]
                    else self._latest_run(conn, integration, entity, True)
                )
                dag_id = dag_id_for(integration, entity)
                state = run_states.get((dag_id, last["run_id"])) if last else None
                live = bool(last and not last["finished_at"])
                report = (done or {}).get("report") or {}
                counts = (
                    self.live_counts(conn, integration, entity, last["run_id"])
                    if live and last
                    else _report_counts(report)
                )
                dead = self._dead_stats(conn, dead_table, integration, entity)
                reasons = {k: int(v) for k, v in (report.get("reasons") or {}).items()}
                quarantined = sum(v for k, v in reasons.items() if k.startswith("quarantined:"))
                deferred = sum(v for k, v in reasons.items() if k.startswith("deferred:"))
                summary = Summary(
                    integration=integration, entity=entity, dag_id=dag_id, last_run=last, run_state=state,
                    counts=counts, live=live, watermark=report.get("watermark_out"),
                    dead_open=dead["open"], dead_exhausted=dead["exhausted"], dead_max_attempts=dead["max_attempts"],
                    deferred=deferred, quarantined=quarantined, conflicts=int(report.get("conflicts") or 0),
                    first_match=int(report.get("first_match_differences") or 0), reasons=reasons,
                    health=Health("none", ""),
                )  # fmt: skip
                summary.health = verdict(summary, self.dead_letter_limit)
                summaries.append(summary)
        return summaries

    def _latest_run(
        self, conn: Connection, integration: str, entity: str, finished: bool
    ) -> dict[str, Any] | None:
        t = L.runs
        query = sa.select(t).where(t.c.integration == integration, t.c.entity == entity)
        if finished:
            query = query.where(t.c.finished_at.is_not(None), t.c.dry_run.is_(False))
        row = conn.execute(query.order_by(t.c.started_at.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    def _dead_stats(self, conn: Connection, t: sa.Table, integration: str, entity: str) -> dict[str, int]:
        """Open dead letters (not dismissed), failing ones only: deferred documents are waiting, not failing."""
        where = [t.c.integration == integration, t.c.entity == entity, t.c.reason != "dependency_missing"]
        if "dismissed_at" in t.c:
            where.append(t.c.dismissed_at.is_(None))
        exhausted = sa.func.sum(sa.case((t.c.attempts >= self.dead_letter_limit, 1), else_=0))
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.max(t.c.attempts), exhausted).where(*where)
        ).one()
        return {"open": int(row[0] or 0), "max_attempts": int(row[1] or 0), "exhausted": int(row[2] or 0)}

    def live_counts(self, conn: Connection, integration: str, entity: str, run_id: str) -> dict[str, int]:
        """Outcomes so far of a run that is still going, from its plan (``planned`` = not written yet)."""
        t = L.plan_items
        rows = conn.execute(
            sa.select(sa.func.coalesce(t.c.outcome, t.c.status), sa.func.count())
            .where(t.c.run_id == run_id, t.c.integration == integration, t.c.entity == entity)
            .group_by(sa.func.coalesce(t.c.outcome, t.c.status))
        ).all()
        return {str(k): int(v) for k, v in rows}

    # -- webhook inboxes ---------------------------------------------------------------------------
    def inboxes(self, scopes: Sequence[tuple[str, str]], *, now: datetime | None = None) -> list[InboxPanel]:
        """Each scope with webhook events: its inboxes' counts and times, and its last runs' latency.

        Two queries whatever the number of scopes: the inbox counts (``inbox.stats``) and the last
        ``INBOX_RUNS`` runs per scope that committed claimed rows in the last ``INBOX_RUNS_DAYS`` days
        (oldest ``received_at`` and newest ``processed_at`` of each run's rows, from the index
        ``ix_cs_ui_inbox_done``), with each run's mode. A scope without any row is left out.
        """
        wanted = set(scopes)
        if not wanted:
            return []
        t, r = L.inbox, L.runs
        cutoff = (now or datetime.now(UTC)) - timedelta(days=INBOX_RUNS_DAYS)
        in_scope = sa.or_(*[sa.and_(t.c.integration == i, t.c.entity == e) for i, e in sorted(wanted)])
        per_run = (
            sa.select(
                t.c.integration, t.c.entity, t.c.claimed_by_run.label("run_id"), sa.func.count().label("events"),
                sa.func.min(t.c.received_at).label("oldest"), sa.func.max(t.c.processed_at).label("committed"),
            )
            .where(in_scope, t.c.status == DONE, t.c.processed_at >= cutoff, t.c.claimed_by_run.is_not(None))
            .group_by(t.c.integration, t.c.entity, t.c.claimed_by_run)
            .subquery("per_run")
        )  # fmt: skip
        rank = sa.func.row_number().over(
            partition_by=(per_run.c.integration, per_run.c.entity), order_by=per_run.c.committed.desc()
        )
        ranked = sa.select(per_run, rank.label("rank")).subquery("ranked")
        query = (
            sa.select(ranked.c.integration, ranked.c.entity, ranked.c.run_id, ranked.c.events, ranked.c.oldest,
                      ranked.c.committed, r.c.mode)
            .select_from(ranked.outerjoin(r, sa.and_(
                r.c.run_id == ranked.c.run_id, r.c.integration == ranked.c.integration, r.c.entity == ranked.c.entity,
            )))
            .where(ranked.c.rank <= INBOX_RUNS)
            .order_by(ranked.c.integration, ranked.c.entity, ranked.c.committed.desc())
        )  # fmt: skip
        with self.engine.connect() as conn:
            counts = [s for s in inbox_stats(conn) if (s.integration, s.entity) in wanted]
            runs: dict[tuple[str, str], list[InboxRun]] = {}
            for row in conn.execute(query):
                oldest, committed = _as_utc(row.oldest), _as_utc(row.committed)
                if oldest is not None and committed is not None:
                    runs.setdefault((row.integration, row.entity), []).append(
                        InboxRun(str(row.run_id), row.mode, int(row.events), oldest, committed)
                    )
        panels = []
        for integration, entity in scopes:
            mine = [s for s in counts if (s.integration, s.entity) == (integration, entity)]
            if mine or runs.get((integration, entity)):
                panels.append(InboxPanel(integration, entity, dag_id_for(integration, entity), mine,
                                         runs.get((integration, entity), [])))  # fmt: skip
        return panels

    # -- a run -------------------------------------------------------------------------------------
    def run(self, integration: str, entity: str, run_id: str) -> dict[str, Any] | None:
        """A run's ledger row, its steps so far and (while it is going) its live counts."""
        t = L.runs
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t).where(
                        t.c.run_id == run_id, t.c.integration == integration, t.c.entity == entity
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            run = dict(row)
            s = L.run_steps
            steps = conn.execute(
                sa.select(s.c.step, s.c.summary, s.c.calls).where(
                    s.c.run_id == run_id, s.c.integration == integration, s.c.entity == entity
                )
            ).all()
            run["steps"] = {r.step: {"summary": r.summary, "calls": r.calls} for r in steps}
            run["live"] = None if run["finished_at"] else self.live_counts(conn, integration, entity, run_id)
        return run

    def run_items(
        self, integration: str, entity: str, run_id: str, *, outcome: str | None = None,
        cursor: str | None = None, limit: int = PAGE_SIZE,
    ) -> Page:  # fmt: skip
        """The run's records that did not end ``unchanged`` (outcome, reason, the API's message), by id."""
        t = L.plan_items
        after = (decode_cursor(cursor, 1) or [0])[0]
        query = (
            sa.select(
                t.c.id,
                t.c.action,
                t.c.target,
                t.c.direction,
                t.c.inv_type,
                t.c.inv_id,
                t.c.crm_type,
                t.c.crm_id,
                t.c.fields,
                t.c.reason,
                t.c.detail,
                t.c.status,
                t.c.outcome,
                t.c.result,
            )  # fmt: skip
            .where(t.c.run_id == run_id, t.c.integration == integration, t.c.entity == entity)
            .where(sa.or_(t.c.outcome.is_(None), t.c.outcome != "unchanged"), t.c.id > int(after))
            .order_by(t.c.id)
            .limit(limit + 1)
        )
        if outcome == "planned":
            query = query.where(t.c.outcome.is_(None))
        elif outcome:
            query = query.where(t.c.outcome == outcome)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor([rows[-1]["id"]]) if more else None)

    # -- records -----------------------------------------------------------------------------------
    def search(
        self, text: str, scopes: Sequence[tuple[str, str]], *, cursor: str | None = None, limit: int = PAGE_SIZE,
        contains: bool = False,
    ) -> Page:  # fmt: skip
        """Records matching a tax ID / SKU / reference or either side's id exactly, then by name or e-mail.

        Exact matches (key and id, on the ledger's keys) come first on the first page. Then names and
        e-mails that start with ``text`` (``ensure_indexes`` indexes both, lower-cased), a page at a
        time in key order. ``contains`` matches anywhere inside them instead: a bounded scan, since no
        index serves a substring, so the pages offer it as a second step.
        """
        text = text.strip()
        if not text or not scopes:
            return Page([])
        t = L.remote_records
        allowed = set(scopes)
        base = [
            t.c.integration.in_(sorted({i for i, _ in scopes})),
            t.c.entity.in_(sorted({e for _, e in scopes})),
        ]
        columns = [t.c.integration, t.c.entity, t.c.side, t.c.rtype, t.c.rid, t.c.key, t.c.kind, t.c.problem,
                   t.c.link, t.c.hash, t.c.modified, t.c.seen_run, t.c.data]  # fmt: skip
        pk = (t.c.integration, t.c.entity, t.c.side, t.c.rtype, t.c.rid)
        exact: list[dict[str, Any]] = []
        after = decode_cursor(cursor, 5)
        with self.engine.connect() as conn:
            if after is None:
                keys = sorted({normalise_tax_id(text), text.upper()})
                for where in (  # two queries: an OR of both would not use either key
                    sa.and_(t.c.side.in_(SIDES), t.c.key.in_(keys)),
                    sa.and_(t.c.side.in_(SIDES), t.c.rtype.in_(ALL_RTYPES), t.c.rid == text),
                ):
                    exact += [
                        dict(r, match="exact")
                        for r in conn.execute(sa.select(*columns).where(*base, where).limit(200)).mappings()
                    ]
            lowered = text.lower()
            found: list[dict[str, Any]] = []
            for field_name in ("name", "email"):
                value = json_text(conn.dialect.name, field_name)
                match: sa.ColumnElement[bool]
                if contains:
                    match = value.like(_like(lowered), escape="\\")
                else:  # a range on the expression index: what LIKE 'text%' means, on any dialect
                    match = sa.and_(value >= lowered, value < lowered + "\U0010ffff")
                # On SQLite the scope and keyset terms are written so they cannot use the primary key: its
                # planner would rather walk the whole table in key order than sort a few prefix matches.
                plain = _unindexed if conn.dialect.name == "sqlite" and not contains else (lambda c: c)
                query = sa.select(*columns).where(
                    plain(t.c.integration).in_(sorted({i for i, _ in scopes})),
                    plain(t.c.entity).in_(sorted({e for _, e in scopes})), match,
                )  # fmt: skip
                if after is not None:
                    query = query.where(sa.tuple_(*[plain(c) for c in pk]) > sa.tuple_(*after))
                found += [
                    dict(r, match="text")
                    for r in conn.execute(query.order_by(*pk).limit(limit + 1)).mappings()
                ]
            by_key = {_ident(r): r for r in found}  # a record matching on both fields is listed once
            found = [by_key[k] for k in sorted(by_key)][: limit + 1]
            more = len(found) > limit
            found = found[:limit]
            unique: dict[tuple[str, ...], dict[str, Any]] = {}
            for row in exact + found:  # an exact match may also match by name: listed once, as exact
                if (row["integration"], row["entity"]) in allowed:
                    unique.setdefault(_ident(row), row)
            rows = list(unique.values())
            self._attach_links(conn, rows)
            self._attach_states(conn, rows)
        return Page(rows, encode_cursor(list(_ident(found[-1]))) if more else None)

    def _attach_links(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Each row's link (the other side's id): one query over the link table's unique keys."""
        if not rows:
            return
        t = L.links
        inv = [r for r in rows if r["side"] == INVOICING]
        crm = [r for r in rows if r["side"] == CLIENTIFY]
        conds = []
        scope = [
            t.c.integration.in_({r["integration"] for r in rows}),
            t.c.entity.in_({r["entity"] for r in rows}),
        ]
        if inv:
            conds.append(
                sa.and_(t.c.inv_type.in_({r["rtype"] for r in inv}), t.c.inv_id.in_({r["rid"] for r in inv}))
            )
        if crm:
            conds.append(
                sa.and_(t.c.crm_type.in_({r["rtype"] for r in crm}), t.c.crm_id.in_({r["rid"] for r in crm}))
            )
        found = conn.execute(
            sa.select(
                t.c.integration,
                t.c.entity,
                t.c.inv_type,
                t.c.inv_id,
                t.c.crm_type,
                t.c.crm_id,
                t.c.inv_hash,
                t.c.crm_hash,
            ).where(*scope, sa.or_(*conds))  # fmt: skip
        ).all()
        by_inv = {(f.integration, f.entity, f.inv_type, f.inv_id): f for f in found}
        by_crm = {(f.integration, f.entity, f.crm_type, f.crm_id): f for f in found}
        for row in rows:
            ident = (row["integration"], row["entity"], row["rtype"], row["rid"])
            link = by_inv.get(ident) if row["side"] == INVOICING else by_crm.get(ident)
            row["linked"] = None
            row["link_hash"] = None
            if link is not None:
                row["linked"] = (
                    (CLIENTIFY, link.crm_type, link.crm_id) if row["side"] == INVOICING
                    else (INVOICING, link.inv_type, link.inv_id)
                )  # fmt: skip
                row["link_hash"] = link.inv_hash if row["side"] == INVOICING else link.crm_hash

    def _attach_states(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Each row's current state and why (``row["state"]``): one query on ``cs_record_states``' key.

        A record no committed run itemised has no stored state; it gets one from what the ledger knows
        of it: linked and its hash still the one its link stored, in sync; linked and changed since,
        ``changed`` (the next run syncs it); a mapping problem, skipped for it; else ``unsettled``.
        """
        if not rows:
            return
        t = L.record_states
        found = (
            {}
            if not self.has_table(conn, t.name)
            else {
                _ident(dict(r)): dict(r)
                for r in conn.execute(
                    sa.select(
                        t.c.integration,
                        t.c.entity,
                        t.c.side,
                        t.c.rtype,
                        t.c.rid,
                        t.c.state,
                        t.c.reason,
                        t.c.detail,
                        t.c.target,
                        t.c.run_id,
                        t.c.at,
                    ).where(_keys_in(t, [_ident(r) for r in rows]))  # fmt: skip
                ).mappings()
            }
        )
        for row in rows:
            state = found.get(_ident(row)) or _derived_state(row)
            state["words"] = describe(state, row["integration"])
            row["state"] = state

    def record(self, integration: str, entity: str, side: str, rtype: str, rid: str) -> dict[str, Any] | None:
        """One record: both sides as last seen, the link and its synced snapshot, history, conflicts, dead letters.

        At most seven queries, each on a key or a UI index. A record the ledger has no row for but that
        appears in a plan or a dead letter (e.g. a failed create) still gets a page.
        """
        r, lk = L.remote_records, L.links
        dead_table = self.dead_letters_table()
        with self.engine.connect() as conn:
            this = self._remote(conn, integration, entity, side, rtype, rid)
            if side == INVOICING:
                link_where = sa.and_(lk.c.inv_type == rtype, lk.c.inv_id == rid)
            else:
                link_where = sa.and_(lk.c.crm_type == rtype, lk.c.crm_id == rid)
            link_row = (
                conn.execute(
                    sa.select(lk).where(lk.c.integration == integration, lk.c.entity == entity, link_where)
                )
                .mappings()
                .first()
            )
            link = dict(link_row) if link_row else None
            inv_ref = (
                (rtype, rid) if side == INVOICING else ((link["inv_type"], link["inv_id"]) if link else None)
            )
            crm_ref = (
                (rtype, rid) if side == CLIENTIFY else ((link["crm_type"], link["crm_id"]) if link else None)
            )
            other = None
            if link is not None:
                other_side, other_ref = (CLIENTIFY, crm_ref) if side == INVOICING else (INVOICING, inv_ref)
                other = self._remote(conn, integration, entity, other_side, *other_ref)  # type: ignore[misc]
            history = self._history(conn, integration, entity, inv_ref, crm_ref)
            conflicts = self._record_conflicts(conn, integration, entity, inv_ref, crm_ref)
            dead = self._record_dead(conn, dead_table, integration, entity, inv_ref, crm_ref)
        if this is None and link is None and not history and not dead:
            return None
        inv_row, crm_row = (this, other) if side == INVOICING else (other, this)
        return {
            "integration": integration, "entity": entity, "side": side, "rtype": rtype, "rid": rid,
            "inv_ref": inv_ref, "crm_ref": crm_ref, "invoicing": inv_row, "clientify": crm_row, "link": link,
            "snapshot": _snapshot(link, inv_row, crm_row), "history": history, "conflicts": conflicts,
            "dead_letters": dead, "remote_columns": [c.name for c in r.c],
        }  # fmt: skip

    def _remote(
        self, conn: Connection, integration: str, entity: str, side: str, rtype: str, rid: str
    ) -> dict[str, Any] | None:
        t = L.remote_records
        row = (
            conn.execute(
                sa.select(*[c for c in t.c if c.name != "raw"]).where(
                    t.c.integration == integration,
                    t.c.entity == entity,
                    t.c.side == side,
                    t.c.rtype == rtype,
                    t.c.rid == rid,
                )  # fmt: skip
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None

    def _history(
        self, conn: Connection, integration: str, entity: str, inv_ref: tuple[str, str] | None,
        crm_ref: tuple[str, str] | None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Plan items of this pair, newest run first, with each run's start time and mode (two queries)."""
        t = L.plan_items
        conds = []
        if inv_ref:
            conds.append(sa.and_(t.c.inv_type == inv_ref[0], t.c.inv_id == inv_ref[1]))
        if crm_ref:
            conds.append(sa.and_(t.c.crm_type == crm_ref[0], t.c.crm_id == crm_ref[1]))
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    t.c.id,
                    t.c.run_id,
                    t.c.action,
                    t.c.target,
                    t.c.direction,
                    t.c.outcome,
                    t.c.status,
                    t.c.reason,
                    t.c.detail,
                    t.c.fields,
                )  # fmt: skip
                .where(t.c.integration == integration, t.c.entity == entity, sa.or_(*conds))
                .order_by(t.c.id.desc())
                .limit(HISTORY_LIMIT)
            ).mappings()
        ]
        run_ids = {r["run_id"] for r in rows}
        if run_ids:
            ru = L.runs
            runs = {
                x.run_id: x
                for x in conn.execute(
                    sa.select(ru.c.run_id, ru.c.started_at, ru.c.mode, ru.c.dry_run).where(
                        ru.c.integration == integration, ru.c.entity == entity, ru.c.run_id.in_(run_ids)
                    )
                )
            }
            for row in rows:
                run = runs.get(row["run_id"])
                row["started_at"] = _as_utc(run.started_at) if run else None
                row["mode"] = run.mode if run else None
                row["dry_run"] = bool(run.dry_run) if run else False
            rows.sort(
                key=lambda x: (x["started_at"] or datetime.min.replace(tzinfo=UTC), x["id"]), reverse=True
            )
        return rows

    def _record_conflicts(
        self, conn: Connection, integration: str, entity: str, inv_ref: tuple[str, str] | None,
        crm_ref: tuple[str, str] | None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        t = L.conflicts
        conds = []
        if inv_ref:
            conds.append(t.c.inv_id == inv_ref[1])
        if crm_ref:
            conds.append(sa.and_(t.c.crm_type == crm_ref[0], t.c.crm_id == crm_ref[1]))
        query = (
            sa.select(t).where(t.c.integration == integration, t.c.entity == entity, sa.or_(*conds))
            .order_by(t.c.id.desc()).limit(HISTORY_LIMIT)
        )  # fmt: skip
        return [dict(r) for r in conn.execute(query).mappings()]

    def _record_dead(
        self, conn: Connection, t: sa.Table, integration: str, entity: str, inv_ref: tuple[str, str] | None,
        crm_ref: tuple[str, str] | None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        conds = []
        for side, ref in ((INVOICING, inv_ref), (CLIENTIFY, crm_ref)):
            if ref:
                conds.append(sa.and_(t.c.side == side, t.c.rtype == ref[0], t.c.rid == ref[1]))
        query = sa.select(t).where(t.c.integration == integration, t.c.entity == entity, sa.or_(*conds))
        return [self._dead_row(dict(r)) for r in conn.execute(query).mappings()]

    def _dead_row(self, row: dict[str, Any]) -> dict[str, Any]:
        row["state"] = dead_letter_state(row, self.dead_letter_limit)
        return row

    # -- conflicts and dead letters ----------------------------------------------------------------
    def conflicts(
        self, scopes: Sequence[tuple[str, str]], *, field_name: str | None = None, winner: str | None = None,
        run_id: str | None = None, cursor: str | None = None, limit: int = PAGE_SIZE,
    ) -> Page:  # fmt: skip
        """Conflicts, newest first (by id, keyset), filtered by scope, field, winner, run."""
        if not scopes:
            return Page([])
        t = L.conflicts
        query = sa.select(t).where(
            t.c.integration.in_({i for i, _ in scopes}), t.c.entity.in_({e for _, e in scopes})
        )
        if field_name:
            query = query.where(t.c.field == field_name)
        if winner:
            query = query.where(t.c.winner == winner)
        if run_id:
            query = query.where(t.c.run_id == run_id)
        before = decode_cursor(cursor, 1)
        if before is not None:
            query = query.where(t.c.id < int(before[0]))
        allowed = set(scopes)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query.order_by(t.c.id.desc()).limit(limit + 1)).mappings()]
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = encode_cursor([rows[-1]["id"]]) if more else None
            rows = [r for r in rows if (r["integration"], r["entity"]) in allowed]
            self._attach_names(conn, rows, lambda c: [
                (c["integration"], c["entity"], INVOICING, RTYPES[(c["entity"], INVOICING)][0], c["inv_id"]),
                (c["integration"], c["entity"], CLIENTIFY, c["crm_type"], c["crm_id"]),
            ])  # fmt: skip
        return Page(rows, next_cursor)

    def dead_letters(
        self, scopes: Sequence[tuple[str, str]], *, state: str | None = None, reason: str | None = None,
        cursor: str | None = None, limit: int = PAGE_SIZE,
    ) -> Page:  # fmt: skip
        """Dead letters in key order (keyset), filtered by scope, state and reason."""
        if not scopes:
            return Page([])
        t = self.dead_letters_table()
        query = sa.select(t).where(
            t.c.integration.in_({i for i, _ in scopes}), t.c.entity.in_({e for _, e in scopes})
        )
        v3 = self.actions_supported
        if reason:
            query = query.where(t.c.reason == reason)
        waiting = t.c.reason == "dependency_missing"
        not_dismissed = t.c.dismissed_at.is_(None) if v3 else sa.true()
        if state == "dismissed":
            query = query.where(t.c.dismissed_at.is_not(None) if v3 else sa.false())
        elif state == "retry_requested":
            query = query.where(not_dismissed, t.c.retry_requested_at.is_not(None) if v3 else sa.false())
        elif state == "exhausted":
            query = query.where(not_dismissed, ~waiting, t.c.attempts >= self.dead_letter_limit)
        elif state == "retrying":
            query = query.where(not_dismissed, sa.or_(waiting, t.c.attempts < self.dead_letter_limit))
        elif state == "open":
            query = query.where(not_dismissed)
        pk = (t.c.integration, t.c.entity, t.c.side, t.c.rtype, t.c.rid)
        after = decode_cursor(cursor, 5)
        if after is not None:
            query = query.where(sa.tuple_(*pk) > sa.tuple_(*after))
        allowed = set(scopes)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query.order_by(*pk).limit(limit + 1)).mappings()]
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = None
            if more:
                last = rows[-1]
                next_cursor = encode_cursor(
                    [last["integration"], last["entity"], last["side"], last["rtype"], last["rid"]]
                )
            rows = [self._dead_row(r) for r in rows if (r["integration"], r["entity"]) in allowed]
            self._attach_names(conn, rows, lambda d: [_ident(d)])
        return Page(rows, next_cursor)

    def _attach_names(
        self, conn: Connection, rows: list[dict[str, Any]],
        records_of: Callable[[dict[str, Any]], list[tuple[str, str, str, str, str | None]]],
    ) -> None:  # fmt: skip
        """Name each row's record (``row["name"]``, ``row["key"]``: the tax ID, SKU or reference) from the
        staged data in ``cs_remote_records``: one query on its key. ``records_of`` gives the row's
        records, best first (a conflict: its invoicing record, then its Clientify one); the first that
        is staged names it."""
        wanted = {
            row_id: [cast(Ident, r) for r in records_of(row) if r[4]] for row_id, row in enumerate(rows)
        }
        idents = [r for refs in wanted.values() for r in refs]
        staged: dict[Ident, tuple[str, str]] = {}
        if idents and self.has_table(conn, L.remote_records.name):
            t = L.remote_records
            query = sa.select(t.c.integration, t.c.entity, t.c.side, t.c.rtype, t.c.rid, t.c.key, t.c.data)
            for r in conn.execute(query.where(_keys_in(t, idents))):
                name = (r.data or {}).get("name") if isinstance(r.data, dict) else None
                staged[(r.integration, r.entity, r.side, r.rtype, r.rid)] = (str(name or ""), r.key or "")
        for row_id, row in enumerate(rows):
            named = next((staged[r] for r in wanted[row_id] if r in staged), ("", ""))
            row["name"], row["key"] = named

    def act_on_dead_letter(
        self, action: str, integration: str, entity: str, side: str, rtype: str, rid: str, user: str
    ) -> bool:
        """Dismiss a dead letter, or ask for it to be retried on the next run; False when it does not exist.

        The only writes the status view makes, each recorded with the user's name and time. A retry
        request also lifts a dismissal (it is how a dismissal is undone).
        """
        t = self.dead_letters_table()
        if not self.actions_supported:
            raise SchemaTooOld(
                "dismiss and retry need ledger schema version 3 (cs_dead_letters.dismissed_at ...)"
            )
        now = datetime.now(UTC)
        if action == "dismiss":
            values = {"dismissed_at": now, "dismissed_by": user}
        elif action == "retry":
            values = {
                "retry_requested_at": now,
                "retry_requested_by": user,
                "dismissed_at": None,
                "dismissed_by": None,
            }
        else:
            raise ValueError(f"unknown action {action!r}")
        with write_transaction(self.engine) as conn:  # on SQLite: the write lock from the start
            result = conn.execute(
                sa.update(t)
                .where(
                    t.c.integration == integration,
                    t.c.entity == entity,
                    t.c.side == side,
                    t.c.rtype == rtype,
                    t.c.rid == rid,
                )  # fmt: skip
                .values(**values)
            )
        return result.rowcount > 0


class SchemaTooOld(RuntimeError):
    """The ledger predates the columns an action needs."""


def dead_letter_state(row: dict[str, Any], limit: int) -> str:
    """dismissed / retry_requested / waiting (a deferred document) / exhausted (only reported) / retrying."""
    if row.get("dismissed_at"):
        return "dismissed"
    if row.get("retry_requested_at"):
        return "retry_requested"
    if row["reason"] == "dependency_missing":
        return "waiting"
    return "exhausted" if int(row["attempts"]) >= limit else "retrying"


def _report_counts(report: dict[str, Any]) -> dict[str, int]:
    """A finished run's outcomes summed over both directions, ``unchanged`` included."""
    counts: dict[str, int] = {}
    for outcomes in (report.get("counts") or {}).values():
        for outcome, n in outcomes.items():
            counts[outcome] = counts.get(outcome, 0) + int(n)
    if report:
        counts["unchanged"] = counts.get("unchanged", 0) + int(report.get("unchanged") or 0)
    return counts


def _snapshot(
    link: dict[str, Any] | None, inv: dict[str, Any] | None, crm: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Field by field: the last synced value (the merge base) and what each side held when last read."""
    base = (link or {}).get("base") or {}
    inv_data = (inv or {}).get("data") or {}
    crm_data = (crm or {}).get("data") or {}
    names = list(dict.fromkeys([*base, *inv_data, *crm_data]))
    rows = []
    for name in names:
        values = [base.get(name), inv_data.get(name), crm_data.get(name)]
        shown = [v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)
                 for v in values]  # fmt: skip
        rows.append({"field": name, "base": shown[0], "invoicing": shown[1], "clientify": shown[2],
                     "differs": len({_fold(s) for s in shown[1:] if s is not None}) > 1})  # fmt: skip
    return rows


def _fold(value: str | None) -> str:
    """Case, accents and spacing left out, as the engine compares text: only real differences are shown."""
    decomposed = unicodedata.normalize("NFKD", " ".join((value or "").split()).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def verdict(summary: Summary, limit: int) -> Health:
    """The overview's health verdict and its reason, worst first (e.g. "3 records failing for 4 runs")."""
    if summary.last_run is None:
        return Health("none", "never run")
    problems: list[tuple[int, str, str]] = []
    if summary.run_state == "failed":
        problems.append((3, "fail", "last run failed"))
    elif summary.live:
        if summary.run_state in (None, "running", "queued"):
            done = sum(v for k, v in summary.counts.items() if k != "planned")
            total = done + summary.counts.get("planned", 0)
            problems.append((1, "running", f"run in progress: {done} of {total} records settled"))
        else:
            problems.append((3, "fail", "last run did not finish"))
    if summary.dead_open:
        runs = summary.dead_max_attempts
        text = f"{summary.dead_open} record{'s' if summary.dead_open != 1 else ''} failing for {runs} run{'s' if runs != 1 else ''}"
        if summary.dead_exhausted:
            problems.append((3, "fail", f"{text} ({summary.dead_exhausted} no longer retried after {limit})"))
        else:
            problems.append((2, "warn", text))
    if summary.quarantined:
        problems.append(
            (2, "warn", f"{summary.quarantined} quarantined ({_top_reason(summary.reasons, 'quarantined')})")
        )
    if summary.deferred:
        problems.append((1, "warn", f"{summary.deferred} deferred (waiting for their customer or products)"))
    if not problems:
        return Health("ok", "in sync")
    problems.sort(key=lambda p: -p[0])
    return Health(problems[0][1], "; ".join(p[2] for p in problems[:3]))


def _top_reason(reasons: dict[str, int], outcome: str) -> str:
    mine = {k.split(":", 1)[1]: v for k, v in reasons.items() if k.startswith(f"{outcome}:")}
    return max(mine, key=lambda k: mine[k]).replace("_", " ") if mine else outcome


def ensure_indexes(engine: Engine) -> list[str]:
    """Create the indexes the pages need when missing; return the ones created.

    Failures (a read-only database user) are logged, not raised: the pages still work, only slower.
    """
    created = []
    wanted = {**UI_INDEXES, **EXPRESSION_INDEXES.get(engine.dialect.name, {})}
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            existing = set(conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'index'" if engine.dialect.name == "sqlite"
                else "SELECT indexname FROM pg_indexes"
            )).scalars()) if engine.dialect.name in ("sqlite", "postgresql") else set()  # fmt: skip
        with engine.begin() as conn:
            for name, spec in wanted.items():
                if name not in existing and spec.split(" ", 1)[0] in tables:
                    conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {spec}"))
                    created.append(name)
    except sa.exc.SQLAlchemyError as error:
        log.warning(
            "clientify-sync status view: could not create its ledger indexes (%s)", type(error).__name__
        )
    return created
