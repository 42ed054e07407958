"""SQLite state shared by the three emulators.

One generic table per (API, resource): ``seq`` (insertion order and the integer id, never reused),
``rid`` (the API's id as text), ``body`` (the record as JSON) and a few indexed lookup columns
(``k1``-``k3``, ``search``, ``created``, ``modified``) that each resource fills with what it filters
on. Multi-valued lookups (custom fields, custom attributes, e-mails) live in ``idx``. Paging reads
only the page's rows, so a page stays fast with 100k+ records.

Concurrency: handlers run in a thread pool; one connection guarded by one re-entrant lock serialises
every read and write (a request holds it for a few milliseconds; injected latency is applied outside,
by the fault middleware). Read-modify-write sequences run inside one ``session(write=True)``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.sandbox import jsonio


@dataclass(frozen=True)
class TableSpec:
    """A resource table; ``id_base`` offsets integer ids so different resources never share one."""

    name: str
    api: str
    id_base: int = 0
    indexes: tuple[str, ...] = ("k1", "k2", "k3")


CLIENTIFY_INDEXES = ("k1", "k2", "k3", "created", "modified")
FD_REST_INDEXES = ("k1", "k2", "k3", "modified")
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("facturama_clients", "facturama", indexes=("k1",)),
        TableSpec("facturama_products", "facturama", indexes=("k1",)),
        TableSpec("facturama_estimates", "facturama", indexes=("k1",)),
        TableSpec("clientify_contacts", "clientify", 1_000_000, CLIENTIFY_INDEXES),
        TableSpec("clientify_companies", "clientify", 2_000_000, CLIENTIFY_INDEXES),
        TableSpec("clientify_products", "clientify", 3_000_000, CLIENTIFY_INDEXES),
        TableSpec("clientify_budgets", "clientify", 4_000_000, CLIENTIFY_INDEXES),
        TableSpec("facturadirecta_clients", "facturadirecta"),
        TableSpec("facturadirecta_products", "facturadirecta"),
        TableSpec("facturadirecta_estimates", "facturadirecta"),
        # FacturaDirecta REST (models/facturadirecta_rest.py): k1 = company (archived rows "~" + company).
        TableSpec("facturadirecta_rest_contacts", "facturadirecta", indexes=FD_REST_INDEXES),
        TableSpec("facturadirecta_rest_products", "facturadirecta", indexes=FD_REST_INDEXES),
        TableSpec("facturadirecta_rest_estimates", "facturadirecta", indexes=FD_REST_INDEXES),
        TableSpec("facturadirecta_rest_custom_fields", "facturadirecta", indexes=("k1",)),
        TableSpec("facturadirecta_rest_activity", "facturadirecta", indexes=("k1", "created")),
        TableSpec("facturadirecta_rest_idempotency", "facturadirecta", indexes=()),
        # Webhooks (docs/sandbox.md "Webhooks"): Clientify's slots (rid = entity); FacturaDirecta's
        # endpoints (k1 = company) and events (k1 = company, k2 = endpoint, k3 = status).
        TableSpec("clientify_webhooks", "clientify", indexes=()),
        TableSpec("facturadirecta_rest_webhook_endpoints", "facturadirecta", indexes=("k1",)),
        TableSpec(
            "facturadirecta_rest_webhook_events", "facturadirecta", indexes=("k1", "k2", "k3", "created")
        ),
    )
}
# Orderings a caller may ask for (never interpolate anything else into SQL).
ORDERS = {
    "seq": "seq",
    "-seq": "seq DESC",
    "created": "created, seq",
    "-created": "created DESC, seq DESC",
    "modified": "modified, seq",
    "-modified": "modified DESC, seq DESC",
}
COLUMNS = ("k1", "k2", "k3", "created", "modified")
OPERATORS = ("=", ">", ">=", "<", "<=")


@dataclass
class Row:
    seq: int
    rid: str
    body: dict[str, Any]
    created: int | None = None
    modified: int | None = None


@dataclass
class NewRow:
    """What a resource writes: the body plus its lookup values."""

    body: dict[str, Any]
    rid: str | None = None
    search: str = ""
    k1: str | None = None
    k2: str | None = None
    k3: str | None = None
    created: int | None = None
    modified: int | None = None
    index: list[tuple[str, str]] = field(default_factory=list)


class Where:
    """A conjunction of SQL conditions built from whitelisted columns and bound parameters."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def compare(self, column: str, op: str, value: Any) -> Where:
        if column not in COLUMNS or op not in OPERATORS:
            raise ValueError(f"bad condition {column} {op}")
        self.clauses.append(f"{column} {op} ?")
        self.params.append(value)
        return self

    def eq(self, column: str, value: Any) -> Where:
        return self.compare(column, "=", value)

    def contains(self, text: str) -> Where:
        """Substring of the lower-cased ``search`` column."""
        self.clauses.append("instr(search, ?) > 0")
        self.params.append(text.lower())
        return self

    def indexed(self, name: str, value: str) -> Where:
        """Rows with an ``idx`` entry ``name = value`` (custom fields, e-mails)."""
        self.clauses.append("seq IN (SELECT seq FROM idx WHERE tbl = ? AND name = ? AND value = ?)")
        self.params.extend([self.table, name, value])
        return self

    def indexed_like(self, name: str, fragment: str) -> Where:
        self.clauses.append("seq IN (SELECT seq FROM idx WHERE tbl = ? AND name = ? AND instr(value, ?) > 0)")
        self.params.extend([self.table, name, fragment])
        return self

    def json_eq(self, path: str, value: Any) -> Where:
        """Equality on a body field; unindexed, for rarely used filters."""
        self.clauses.append("json_extract(body, ?) = ?")
        self.params.extend([path, value])
        return self

    def raw(self, clause: str, params: Sequence[Any]) -> Where:
        """A literal condition written by the caller (never built from request text)."""
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def never(self) -> Where:
        self.clauses.append("0")
        return self

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rid TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    search TEXT NOT NULL DEFAULT '',
    k1 TEXT, k2 TEXT, k3 TEXT,
    created INTEGER, modified INTEGER
);
"""
_INDEX = "CREATE INDEX IF NOT EXISTS {t}_{c} ON {t}({c});\n"
_COMMON = """
CREATE TABLE IF NOT EXISTS idx (tbl TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_lookup ON idx(tbl, name, value);
CREATE INDEX IF NOT EXISTS idx_owner ON idx(tbl, seq);
CREATE TABLE IF NOT EXISTS defs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    api TEXT NOT NULL, resource TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    UNIQUE (api, resource, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """The SQLite database (a file, or ``None`` for memory) behind one lock."""

    def __init__(self, path: str | Path | None = None) -> None:
        target = ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            target = str(path)
        self.path = target
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys = OFF")
        if target != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA cache_size = -65536")
        self._conn.execute("PRAGMA temp_store = MEMORY")
        script = _COMMON + "".join(
            _SCHEMA.format(t=name) + "".join(_INDEX.format(t=name, c=column) for column in spec.indexes)
            for name, spec in TABLES.items()
        )
        self._conn.executescript(script)

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """Exclusive access; with ``write`` a transaction that commits on success, rolls back on error."""
        with self._lock:
            if not write:
                yield Session(self._conn)
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Session(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class Session:
    """Operations on one connection; only valid inside ``Store.session``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- records --------------------------------------------------------------------------------

    def next_seq(self, table: str) -> int:
        """The ``seq`` the next insert gets: never a used one, even after deletes."""
        found = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return max(found[0] if found else 0, TABLES[table].id_base) + 1

    def insert(self, table: str, rows: Sequence[NewRow]) -> list[int]:
        """Insert in bulk; returns the new ``seq`` values (ids keep growing after deletes and resets)."""
        start = self.next_seq(table)
        seqs = list(range(start, start + len(rows)))
        self.conn.executemany(
            f"INSERT INTO {table} (seq, rid, body, search, k1, k2, k3, created, modified)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    seq,
                    row.rid if row.rid is not None else str(seq),
                    jsonio.dumps(row.body),
                    row.search,
                    row.k1,
                    row.k2,
                    row.k3,
                    row.created,
                    row.modified,
                )
                for seq, row in zip(seqs, rows, strict=True)
            ),
        )
        self._write_index(table, ((seq, row.index) for seq, row in zip(seqs, rows, strict=True)))
        return seqs

    def replace(self, table: str, seq: int, row: NewRow) -> None:
        self.conn.execute(
            f"UPDATE {table} SET body = ?, search = ?, k1 = ?, k2 = ?, k3 = ?, created = ?, modified = ?"
            " WHERE seq = ?",
            (jsonio.dumps(row.body), row.search, row.k1, row.k2, row.k3, row.created, row.modified, seq),
        )
        self.conn.execute("DELETE FROM idx WHERE tbl = ? AND seq = ?", (table, seq))
        self._write_index(table, [(seq, row.index)])

    def delete(self, table: str, seq: int) -> None:
        self.conn.execute(f"DELETE FROM {table} WHERE seq = ?", (seq,))
        self.conn.execute("DELETE FROM idx WHERE tbl = ? AND seq = ?", (table, seq))

    def _write_index(self, table: str, entries: Iterable[tuple[int, list[tuple[str, str]]]]) -> None:
        self.conn.executemany(
            "INSERT INTO idx (tbl, seq, name, value) VALUES (?, ?, ?, ?)",
            ((table, seq, name, value) for seq, index in entries for name, value in index),
        )

    def get(self, table: str, *, seq: int | None = None, rid: str | None = None) -> Row | None:
        column, value = ("seq", seq) if seq is not None else ("rid", rid)
        found = self.conn.execute(
            f"SELECT seq, rid, body, created, modified FROM {table} WHERE {column} = ?", (value,)
        ).fetchone()
        return _row(found) if found else None

    def select(
        self, table: str, where: Where | None = None, *, order: str = "seq", limit: int = -1, offset: int = 0
    ) -> list[Row]:
        where = where or Where(table)
        cursor = self.conn.execute(
            f"SELECT seq, rid, body, created, modified FROM {table}{where.sql()}"
            f" ORDER BY {ORDERS[order]} LIMIT ? OFFSET ?",
            (*where.params, limit, offset),
        )
        return [_row(found) for found in cursor]

    def count(self, table: str, where: Where | None = None) -> int:
        where = where or Where(table)
        return self.conn.execute(f"SELECT count(*) FROM {table}{where.sql()}", where.params).fetchone()[0]

    def max_modified(self, tables: Iterable[str]) -> int:
        values = [self.conn.execute(f"SELECT max(modified) FROM {t}").fetchone()[0] for t in tables]
        return max((v for v in values if v is not None), default=0)

    # -- definitions (custom fields / custom attributes) -------------------------------------------

    def definitions(self, api: str, resource: str | None = None) -> list[tuple[int, str, str, dict]]:
        """``(id, resource, name, body)`` in definition order."""
        sql, params = "SELECT id, resource, name, body FROM defs WHERE api = ?", [api]
        if resource is not None:
            sql, params = sql + " AND resource = ?", [*params, resource]
        rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()
        return [(r[0], r[1], r[2], jsonio.loads(r[3])) for r in rows]

    def define(self, api: str, resource: str, name: str, body: dict) -> int:
        """Create or replace a definition; returns its id (kept when it already existed)."""
        found = self.conn.execute(
            "SELECT id FROM defs WHERE api = ? AND resource = ? AND name = ?", (api, resource, name)
        ).fetchone()
        if found:
            self.conn.execute("UPDATE defs SET body = ? WHERE id = ?", (jsonio.dumps(body), found[0]))
            return found[0]
        cursor = self.conn.execute(
            "INSERT INTO defs (api, resource, name, body) VALUES (?, ?, ?, ?)",
            (api, resource, name, jsonio.dumps(body)),
        )
        return int(cursor.lastrowid or 0)

    def redefine(self, api: str, definition_id: int, resource: str, name: str, body: dict) -> None:
        self.conn.execute(
            "UPDATE defs SET resource = ?, name = ?, body = ? WHERE api = ? AND id = ?",
            (resource, name, jsonio.dumps(body), api, definition_id),
        )

    def undefine(self, api: str, definition_id: int) -> bool:
        cursor = self.conn.execute("DELETE FROM defs WHERE api = ? AND id = ?", (api, definition_id))
        return cursor.rowcount > 0

    # -- meta and reset ---------------------------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        found = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def next_counter(self, key: str, base: int = 0) -> int:
        """A persistent counter (sub-item ids): returns the next value."""
        value = int(self.meta(key, str(base)) or base) + 1
        self.set_meta(key, str(value))
        return value

    def clear_api(self, api: str) -> None:
        """Empty every table of ``api`` and restart its ids."""
        for name, spec in TABLES.items():
            if spec.api == api:
                self.conn.execute(f"DELETE FROM {name}")
                self.conn.execute("DELETE FROM idx WHERE tbl = ?", (name,))
                self.conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
        self.conn.execute("DELETE FROM defs WHERE api = ?", (api,))
        self.conn.execute("DELETE FROM meta WHERE key LIKE ?", (f"{api}:%",))


def _row(found: tuple) -> Row:
    return Row(seq=found[0], rid=found[1], body=jsonio.loads(found[2]), created=found[3], modified=found[4])
