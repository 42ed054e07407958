"""Hook for the state ledger's database: returns a SQLAlchemy URL, opens nothing.

The ledger (links, base snapshots, staged records, dead letters, run reports) is the engine's own
database, separate from Airflow's metadata DB. Connection ``clientify_sync_state``:

- ``extra`` ``{"url": "<SQLAlchemy URL>"}`` wins (any dialect SQLAlchemy knows);
- otherwise the connection's URI (``postgres://`` is spelled ``postgresql://`` for SQLAlchemy 2);
- no such connection: ``sqlite:///{AIRFLOW_HOME}/clientify_sync_state.db``, fine for one machine
  (``airflow standalone``, ``dag.test()``); use a server database when tasks run on several hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_DB_NAME = "clientify_sync_state.db"
# Airflow's conn_type spellings that SQLAlchemy 2 names differently.
_DIALECTS = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "mssql": "mssql"}


def airflow_home() -> Path:
    """Return ``$AIRFLOW_HOME`` (Airflow's default ``~/airflow`` when unset)."""
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()


def default_ledger_url() -> str:
    """Return the SQLite ledger URL used when the connection is absent."""
    return f"sqlite:///{airflow_home() / DEFAULT_DB_NAME}"


class StateLedgerHook(BaseHook):
    """Resolve the state ledger's SQLAlchemy URL from connection ``clientify_sync_state``.

    Args:
        state_conn_id: the connection id; absent means the SQLite default under AIRFLOW_HOME.
    """

    conn_name_attr = "state_conn_id"
    default_conn_name = "clientify_sync_state"
    conn_type = "generic"
    hook_name = "Clientify sync state ledger"

    def __init__(self, state_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.state_conn_id = state_conn_id

    def get_conn(self) -> str:
        """Return the ledger URL (the engine opens the database itself)."""
        return self.get_url()

    def get_url(self) -> str:
        """Return the ledger's SQLAlchemy URL: extra ``url``, else the URI, else the SQLite default."""
        try:
            conn = self.get_connection(self.state_conn_id)
        except AirflowNotFoundException:
            # Every task asks: logged at debug here, and once per run by the commit task (``describe``).
            url = default_ledger_url()
            self.log.debug("No connection %r; using the default ledger %s", self.state_conn_id, url)
            return url
        return url_from_connection(conn)

    def describe(self) -> str:
        """Where the ledger is, for one log line per run (password hidden)."""
        from sqlalchemy.engine import make_url

        url = self.get_url()
        shown = make_url(url).render_as_string(hide_password=True)
        if url == default_ledger_url():
            return f"{shown} (the default: connection {self.state_conn_id!r} is not defined)"
        return f"{shown} (connection {self.state_conn_id!r})"

    def test_connection(self) -> tuple[bool, str]:
        """Check that the URL parses as a SQLAlchemy URL (no database is opened)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.get_url())
        except (ArgumentError, ValueError) as exc:
            return False, f"not a SQLAlchemy URL: {exc}"
        return True, f"ledger URL {url.render_as_string(hide_password=True)}"


def url_from_connection(conn: Connection | Any) -> str:
    """Turn an Airflow connection into a SQLAlchemy URL (extra ``url`` first, then the URI)."""
    extra = conn.extra_dejson or {}
    if extra.get("url"):
        return str(extra["url"])
    conn_type = (conn.conn_type or "").replace("-", "_")
    if conn_type == "sqlite":
        # Airflow stores "sqlite:////abs/path.db" as host="/abs/path.db" (or as schema when relative).
        path = conn.host or conn.schema or ""
        return f"sqlite:///{path}" if path else "sqlite://"
    uri = conn.get_uri()
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in _DIALECTS:
        return f"{_DIALECTS[scheme]}://{rest}"
    return uri
