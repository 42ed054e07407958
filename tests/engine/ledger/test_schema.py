"""``upgrade_schema``: a ledger written by schema version 1 reaches the current version with its rows.

The version-1 database is built by hand from the DDL of that version (no ``cs_plan_items.priority``,
no dismiss / retry columns on dead letters, no ``cs_request_log``), in the dialect under test.
"""

from __future__ import annotations

import sqlalchemy as sa

from clientify_sync.engine.ledger import (
    SCHEMA_VERSION,
    Ledger,
    create_ledger_engine,
    schema_version,
    upgrade_schema,
)
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.vocabulary import Side

VERSION_1 = """
CREATE TABLE cs_meta (key VARCHAR(200) NOT NULL PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cs_remote_records (
    integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL, side VARCHAR(16) NOT NULL,
    rtype VARCHAR(16) NOT NULL, rid VARCHAR(64) NOT NULL, key VARCHAR(128) NOT NULL, kind VARCHAR(16),
    problem VARCHAR(64), link VARCHAR(64), hash VARCHAR(64) NOT NULL, prev_hash VARCHAR(64),
    modified VARCHAR(40), seen_run VARCHAR(250) NOT NULL, data JSON NOT NULL, raw JSON,
    PRIMARY KEY (integration, entity, side, rtype, rid)
);
CREATE INDEX ix_cs_remote_key ON cs_remote_records (integration, entity, side, key);
CREATE INDEX ix_cs_remote_seen ON cs_remote_records (integration, entity, side, seen_run);
CREATE TABLE cs_links (
    id {serial}, integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL,
    inv_type VARCHAR(16) NOT NULL, inv_id VARCHAR(64) NOT NULL, crm_type VARCHAR(16) NOT NULL,
    crm_id VARCHAR(64) NOT NULL, base JSON, inv_hash VARCHAR(64) NOT NULL, crm_hash VARCHAR(64) NOT NULL,
    updated_run VARCHAR(250), updated_at {timestamp},
    CONSTRAINT uq_cs_links_inv UNIQUE (integration, entity, inv_type, inv_id),
    CONSTRAINT uq_cs_links_crm UNIQUE (integration, entity, crm_type, crm_id)
);
CREATE TABLE cs_pending_creates (
    id {serial}, integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL, target VARCHAR(16) NOT NULL,
    target_type VARCHAR(16) NOT NULL, source_type VARCHAR(16) NOT NULL, source_id VARCHAR(64) NOT NULL,
    natural_key VARCHAR(128) NOT NULL, run_id VARCHAR(250) NOT NULL, created_at {timestamp} NOT NULL
);
CREATE TABLE cs_plan_items (
    id {serial}, run_id VARCHAR(250) NOT NULL, integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL,
    pair VARCHAR(160) NOT NULL, action VARCHAR(16) NOT NULL, target VARCHAR(16), direction VARCHAR(32) NOT NULL,
    inv_type VARCHAR(16), inv_id VARCHAR(64), crm_type VARCHAR(16), crm_id VARCHAR(64), fields JSON,
    merged JSON, reason VARCHAR(64), detail TEXT, status VARCHAR(16) NOT NULL, outcome VARCHAR(16), result JSON
);
CREATE INDEX ix_cs_plan_run ON cs_plan_items (run_id, integration, entity, target);
CREATE TABLE cs_dead_letters (
    integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL, side VARCHAR(16) NOT NULL,
    rtype VARCHAR(16) NOT NULL, rid VARCHAR(64) NOT NULL, reason VARCHAR(64) NOT NULL, detail TEXT,
    attempts INTEGER NOT NULL, first_run VARCHAR(250) NOT NULL, last_run VARCHAR(250) NOT NULL,
    PRIMARY KEY (integration, entity, side, rtype, rid)
);
CREATE TABLE cs_conflicts (
    id {serial}, run_id VARCHAR(250) NOT NULL, integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL,
    inv_id VARCHAR(64), crm_type VARCHAR(16), crm_id VARCHAR(64), field VARCHAR(64) NOT NULL,
    invoicing_value TEXT, clientify_value TEXT, base_value TEXT, winner VARCHAR(16) NOT NULL,
    created_at {timestamp} NOT NULL
);
CREATE TABLE cs_runs (
    run_id VARCHAR(250) NOT NULL, integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL,
    mode VARCHAR(16) NOT NULL, dry_run BOOLEAN NOT NULL, started_at {timestamp} NOT NULL,
    finished_at {timestamp}, report JSON, PRIMARY KEY (run_id, integration, entity)
);
CREATE TABLE cs_run_steps (
    run_id VARCHAR(250) NOT NULL, integration VARCHAR(32) NOT NULL, entity VARCHAR(32) NOT NULL,
    step VARCHAR(32) NOT NULL, summary JSON NOT NULL, calls JSON NOT NULL,
    PRIMARY KEY (run_id, integration, entity, step)
);
INSERT INTO cs_meta (key, value) VALUES ('schema_version', '1');
INSERT INTO cs_remote_records (integration, entity, side, rtype, rid, key, link, hash, seen_run, data, raw)
    VALUES ('facturama', 'contacts', 'invoicing', 'client', '101', 'GODE561231GR8', '9001', 'h-101', 'run-1',
            '{{"name": "Ana"}}', '{{"Id": "101"}}');
INSERT INTO cs_plan_items (run_id, integration, entity, pair, action, direction, inv_type, inv_id, status)
    VALUES ('run-1', 'facturama', 'contacts', 'inv:client:101', 'create', 'invoicing→clientify', 'client',
            '101', 'failed');
INSERT INTO cs_dead_letters (integration, entity, side, rtype, rid, reason, attempts, first_run, last_run)
    VALUES ('facturama', 'contacts', 'invoicing', 'client', '101', 'validation_error', 2, 'run-0', 'run-1');
"""

DIALECT = {
    "sqlite": {"serial": "INTEGER NOT NULL PRIMARY KEY", "timestamp": "TIMESTAMP"},
    "postgresql": {"serial": "SERIAL PRIMARY KEY", "timestamp": "TIMESTAMP WITH TIME ZONE"},
}


def build_version_1(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in VERSION_1.format(**DIALECT[conn.dialect.name]).split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    engine.dispose()


def columns(inspector: sa.Inspector, table: str) -> set[str]:
    return {c["name"] for c in inspector.get_columns(table)}


def indexes(inspector: sa.Inspector, table: str) -> set[str]:
    return {i["name"] for i in inspector.get_indexes(table) if i["name"]}


def test_a_version_1_ledger_is_upgraded_with_its_rows(ledger_url: str) -> None:
    build_version_1(ledger_url)
    engine = create_ledger_engine(ledger_url)
    assert schema_version(engine) == 1
    assert upgrade_schema(engine) == SCHEMA_VERSION == 7
    assert schema_version(engine) == 7
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert "priority" in columns(inspector, "cs_plan_items")
        assert {"dismissed_at", "dismissed_by", "retry_requested_at", "retry_requested_by"} <= columns(
            inspector, "cs_dead_letters"
        )
        assert "raw_hash" in columns(inspector, "cs_remote_records")
        assert inspector.has_table("cs_request_log")
        assert inspector.has_table("cs_inbox") and "ix_cs_inbox_status" in indexes(inspector, "cs_inbox")
        assert "sent" in columns(inspector, "cs_pending_creates")
        assert {"state", "reason", "detail", "run_id"} <= columns(inspector, "cs_record_states")
        assert {"ix_cs_remote_key", "ix_cs_remote_seen", "ix_cs_remote_link"} <= indexes(
            inspector, "cs_remote_records"
        )
        assert {"ix_cs_plan_run", "ix_cs_plan_status"} <= indexes(inspector, "cs_plan_items")
    ledger = Ledger(engine, "facturama", "contacts")
    [item] = ledger.plan.page("run-1")
    assert (item.inv_id, item.status, item.priority) == ("101", "failed", 1)
    [letter] = ledger.dead_letters.open().to_dict("records")
    assert (letter["rid"], letter["attempts"]) == ("101", 2)  # not dismissed, no retry requested
    row = ledger.records.fetch("invoicing", [("client", "101")])[("client", "101")]
    assert (row["data"], row["raw"], row["link"]) == ({"name": "Ana"}, {"Id": "101"}, "9001")
    engine.dispose()


def test_a_record_from_before_version_4_is_rewritten_once_then_left_alone(ledger_url: str) -> None:
    build_version_1(ledger_url)
    ledger = Ledger.open(ledger_url, "facturama", "contacts")
    record = SideRecord(
        Side.INVOICING, "client", "101", {"name": "Ana"}, key="GODE561231GR8", link="9001", raw={"Id": "101"}
    )
    ledger.records.stage([record], "run-2")  # the stored hash is of another time, and no raw digest yet
    first = ledger.records.fetch("invoicing", [("client", "101")])[("client", "101")]
    assert (first["prev_hash"], first["hash"]) == ("h-101", record.content_hash)
    ledger.records.stage([record], "run-3")
    again = ledger.records.fetch("invoicing", [("client", "101")])[("client", "101")]
    assert (again["prev_hash"], again["seen_run"]) == (record.content_hash, "run-3")
    ledger.close()


def test_upgrading_an_up_to_date_ledger_changes_nothing(ledger_url: str) -> None:
    engine = create_ledger_engine(ledger_url)
    assert schema_version(engine) == 0
    assert upgrade_schema(engine) == 7
    assert upgrade_schema(engine) == 7
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert {"ix_cs_remote_link"} <= indexes(inspector, "cs_remote_records")
        assert "raw_hash" in columns(inspector, "cs_remote_records")
        assert conn.scalar(sa.text("SELECT count(*) FROM cs_meta")) == 1
    engine.dispose()
