"""The ledger's tables and how a database reaches the current version of them.

``SCHEMA_VERSION`` is the version this code writes; ``upgrade_schema`` brings any older ledger (or an
empty database) to it by running the ordered migration functions ``_MIGRATIONS[n]``, each of which
takes a database from version n - 1 to n and is idempotent (it checks before it adds), because a new
database gets every table, column and index from ``metadata.create_all`` at version 1 already.

Why not Alembic (installed with Airflow): the upgrade runs inside DAG tasks, several at once, and
must stay one write transaction under the ledger's own lock (an advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite) with the version re-read inside it; Alembic would bring a script
directory and ``env.py`` to ship inside the plugin, its own ``alembic_version`` table beside the
``schema_version`` that existing ledgers already carry (so a stamping step for them), and SQLite's
batch mode for column changes, while the lock and the transaction would still be ours to write. For
four additive migrations of a few lines each this is more machinery, not less; the ordered functions
stay until a migration needs what Alembic is good at (renames, type changes, downgrades).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clientify_sync.engine.ledger.database import lock, upsert, write_transaction

SCHEMA_VERSION = 7
metadata = sa.MetaData()

meta_table = sa.Table(
    "cs_meta",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

remote_records = sa.Table(
    "cs_remote_records",
    metadata,
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),
    sa.Column("rtype", sa.String(16), primary_key=True),
    sa.Column("rid", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(128), nullable=False, default=""),
    sa.Column("kind", sa.String(16)),
    sa.Column("problem", sa.String(64)),
    sa.Column("link", sa.String(64)),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("modified", sa.String(40)),
    sa.Column("seen_run", sa.String(250), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("raw", sa.JSON),
    # Schema version 4: the hash of ``raw``, so that staging an unchanged record writes no JSON.
    sa.Column("raw_hash", sa.String(32)),
    sa.Index("ix_cs_remote_key", "integration", "entity", "side", "key"),
    sa.Index("ix_cs_remote_seen", "integration", "entity", "side", "seen_run"),
    # Schema version 4: matching looks records up by the other side's id stored on them.
    sa.Index("ix_cs_remote_link", "integration", "entity", "side", "link"),
)

links = sa.Table(
    "cs_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("inv_type", sa.String(16), nullable=False),
    sa.Column("inv_id", sa.String(64), nullable=False),
    sa.Column("crm_type", sa.String(16), nullable=False),
    sa.Column("crm_id", sa.String(64), nullable=False),
    sa.Column("base", sa.JSON),
    sa.Column("inv_hash", sa.String(64), nullable=False, default=""),
    sa.Column("crm_hash", sa.String(64), nullable=False, default=""),
    sa.Column("updated_run", sa.String(250)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("integration", "entity", "inv_type", "inv_id", name="uq_cs_links_inv"),
    sa.UniqueConstraint("integration", "entity", "crm_type", "crm_id", name="uq_cs_links_crm"),
)

pending_creates = sa.Table(
    "cs_pending_creates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("target_type", sa.String(16), nullable=False),
    sa.Column("source_type", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("natural_key", sa.String(128), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The canonical data the create sends: the merge base when the record it made is found later.
    sa.Column("sent", sa.JSON),
)

plan_items = sa.Table(
    "cs_plan_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("pair", sa.String(160), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("target", sa.String(16)),
    sa.Column("direction", sa.String(32), nullable=False),
    sa.Column("inv_type", sa.String(16)),
    sa.Column("inv_id", sa.String(64)),
    sa.Column("crm_type", sa.String(16)),
    sa.Column("crm_id", sa.String(64)),
    sa.Column("fields", sa.JSON),
    sa.Column("merged", sa.JSON),
    sa.Column("reason", sa.String(64)),
    sa.Column("detail", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, default="planned"),
    # 0 for records that failed in an earlier run: they are applied first (schema version 2).
    sa.Column("priority", sa.Integer, nullable=False, default=1, server_default="1"),
    sa.Column("outcome", sa.String(16)),
    sa.Column("result", sa.JSON),
    sa.Index("ix_cs_plan_run", "run_id", "integration", "entity", "target"),
    # Schema version 4: a run's items of one status in plan order (what applying and counting read).
    sa.Index("ix_cs_plan_status", "run_id", "integration", "entity", "status", "priority", "id"),
)

dead_letters = sa.Table(
    "cs_dead_letters",
    metadata,
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),
    sa.Column("rtype", sa.String(16), primary_key=True),
    sa.Column("rid", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("first_run", sa.String(250), nullable=False),
    sa.Column("last_run", sa.String(250), nullable=False),
    # Schema version 3: a user's decision from the status view. Dismissed letters are never retried;
    # a requested retry resets the attempts at the next run.
    sa.Column("dismissed_at", sa.DateTime(timezone=True)),
    sa.Column("dismissed_by", sa.String(250)),
    sa.Column("retry_requested_at", sa.DateTime(timezone=True)),
    sa.Column("retry_requested_by", sa.String(250)),
)

conflicts = sa.Table(
    "cs_conflicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("inv_id", sa.String(64)),
    sa.Column("crm_type", sa.String(16)),
    sa.Column("crm_id", sa.String(64)),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("invoicing_value", sa.Text),
    sa.Column("clientify_value", sa.Text),
    sa.Column("base_value", sa.Text),
    sa.Column("winner", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

runs = sa.Table(
    "cs_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("report", sa.JSON),
)

run_steps = sa.Table(
    "cs_run_steps",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("calls", sa.JSON, nullable=False),
)


# One row per request granted by the shared request budget (engine/budget.py), kept for a minute.
request_log = sa.Table(
    "cs_request_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_cs_request_log_account_at", "account", "at"),
)

# Schema version 5: webhook events waiting for a run (engine/ledger/inbox.py). One row per event and
# consuming integration (a Clientify contact event wakes every platform's contacts DAG); no payload,
# only the record it names and a digest of the body.
inbox = sa.Table(
    "cs_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("record_type", sa.String(16), nullable=False),
    sa.Column("external_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("dedupe_key", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source_ts", sa.DateTime(timezone=True)),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("claimed_by_run", sa.String(250)),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("integration", "dedupe_key", name="uq_cs_inbox_dedupe"),
    sa.Index("ix_cs_inbox_status", "integration", "entity", "status", "id"),
)

# Schema version 6: each record's current sync state and why (engine/ledger/record_states.py), written
# at commit from the run's plan and never pruned, so the status view can say why on every record.
record_states = sa.Table(
    "cs_record_states",
    metadata,
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),
    sa.Column("rtype", sa.String(16), primary_key=True),
    sa.Column("rid", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64)),
    sa.Column("detail", sa.Text),
    sa.Column("target", sa.String(16)),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


def _migrate_to_1(conn: Connection) -> None:
    """Every table (a new database gets the current columns and indexes at once)."""
    metadata.create_all(conn)


def _migrate_to_2(conn: Connection) -> None:
    """Plan items get a priority (failed records of earlier runs first)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cs_plan_items")}
    if "priority" not in columns:  # a ledger created at version 1; a new one has it from create_all
        conn.execute(sa.text("ALTER TABLE cs_plan_items ADD COLUMN priority INTEGER NOT NULL DEFAULT 1"))


def _migrate_to_3(conn: Connection) -> None:
    """Dead letters get the status view's dismiss/retry columns; the shared request budget its table."""
    metadata.create_all(conn, checkfirst=True)  # new tables, and any an older ledger lacks
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cs_dead_letters")}
    added = {
        "dismissed_at": "TIMESTAMP",
        "dismissed_by": "VARCHAR(250)",
        "retry_requested_at": "TIMESTAMP",
        "retry_requested_by": "VARCHAR(250)",
    }
    for name, sql_type in added.items():
        if name not in columns:
            conn.execute(sa.text(f"ALTER TABLE cs_dead_letters ADD COLUMN {name} {sql_type}"))


def _migrate_to_4(conn: Connection) -> None:
    """Remote records get ``raw_hash`` and a link index; plan items an index by status in plan order."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cs_remote_records")}
    if "raw_hash" not in columns:
        conn.execute(sa.text("ALTER TABLE cs_remote_records ADD COLUMN raw_hash VARCHAR(32)"))
    for table, name in (("cs_remote_records", "ix_cs_remote_link"), ("cs_plan_items", "ix_cs_plan_status")):
        index = next(i for i in metadata.tables[table].indexes if i.name == name)
        index.create(conn, checkfirst=True)


def _migrate_to_5(conn: Connection) -> None:
    """The webhook inbox."""
    inbox.create(conn, checkfirst=True)


def _migrate_to_6(conn: Connection) -> None:
    """Each record's current sync state."""
    record_states.create(conn, checkfirst=True)


def _migrate_to_7(conn: Connection) -> None:
    """Pending creates keep the data they send (the base of the link made when the record is found)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cs_pending_creates")}
    if "sent" not in columns:
        conn.execute(sa.text("ALTER TABLE cs_pending_creates ADD COLUMN sent JSON"))


# Version n is reached by running _MIGRATIONS[n]; a new column or table is a new entry here.
_MIGRATIONS = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
    5: _migrate_to_5,
    6: _migrate_to_6,
    7: _migrate_to_7,
}

_SCHEMA_LOCK = "clientify_sync:schema"


def schema_version(engine: Engine) -> int:
    """The ledger's schema version (0 for an empty database)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(meta_table.name):
            return 0
        value = conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
        return int(value or 0)


def upgrade_schema(engine: Engine) -> int:
    """Create the tables on first use and run the migrations up to ``SCHEMA_VERSION``.

    Safe when several processes start together: the upgrade runs in one write transaction under a
    lock (PostgreSQL: an advisory lock, with transactional DDL; SQLite: ``BEGIN IMMEDIATE``), and the
    version is read again inside it, so the second process finds the work done. An up-to-date ledger
    is recognised by one read, without the lock.

    Args:
        engine: an engine made by ``create_ledger_engine`` (SQLite needs its ``BEGIN IMMEDIATE``).

    Returns:
        The schema version the ledger is at now.
    """
    if schema_version(engine) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with write_transaction(engine) as conn:
        lock(conn, _SCHEMA_LOCK)
        meta_table.create(conn, checkfirst=True)
        current = conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
        version = int(current or 0)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[target](conn)
            version = target
        upsert(conn, meta_table, {"key": "schema_version", "value": str(version)}, ["key"], ["value"])
    return version
