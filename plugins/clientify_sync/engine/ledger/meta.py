"""Ledger-wide values by key (a custom field found defined, a cursor): ``cs_meta``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clientify_sync.engine.ledger.database import upsert, write_transaction
from clientify_sync.engine.ledger.schema import meta_table


class Meta:
    """Key-value pairs shared by every integration and entity of one ledger."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None``."""
        with self.engine.connect() as conn:
            value: str | None = conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == key))
            return value

    def set(self, key: str, value: str | None, conn: Connection | None = None) -> None:
        """Store ``value`` under ``key``; ``None`` deletes the key. In the caller's transaction if given."""
        if conn is None:
            with write_transaction(self.engine) as own:
                self.set(key, value, own)
            return
        if value is None:
            conn.execute(sa.delete(meta_table).where(meta_table.c.key == key))
        else:
            upsert(conn, meta_table, {"key": key, "value": value}, ["key"], ["value"])
