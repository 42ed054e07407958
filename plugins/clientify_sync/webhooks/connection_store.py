"""Where the registration keeps the receiver's secrets: the webhook connections in Airflow's metadata database.

Written the way ``airflow connections add`` writes them (``airflow.models.Connection`` in a session, the
extras encrypted with the deployment's Fernet key when it has one), and read back through every secrets
backend the API server uses (a custom backend, ``AIRFLOW_CONN_*`` variables, then the metadata
database). A connection that a variable or another backend defines cannot be changed here: the write is
refused, or, when only the read-back shows the shadowing, reported; either way naming the connection and
never a value.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from clientify_sync.errors import ConfigurationError

CONN_TYPE = "generic"


class ConnectionStore(Protocol):
    """Reads and writes one connection's extras."""

    def read(self, conn_id: str) -> dict[str, Any] | None:
        """The connection's extras as the API server would see them (None: no such connection)."""
        ...

    def write(self, conn_id: str, extra: dict[str, Any], description: str) -> None:
        """Create the connection or replace its extras."""
        ...


def env_var(conn_id: str) -> str:
    """The environment variable that would define ``conn_id``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


class MetadataConnections:
    """Airflow's connection table (needs the metadata database: run it where ``airflow`` commands run)."""

    def read(self, conn_id: str) -> dict[str, Any] | None:
        from airflow.models.connection import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            return None
        return dict(conn.extra_dejson or {})

    def write(self, conn_id: str, extra: dict[str, Any], description: str) -> None:
        """Create or update ``conn_id`` in the metadata database, then check the API server will see it.

        Raises:
            ConfigurationError: an ``AIRFLOW_CONN_*`` variable defines the connection (the database
                cannot override it), or another secrets backend still shows other values after the write.
        """
        import sqlalchemy as sa
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        if os.environ.get(env_var(conn_id)):
            raise ConfigurationError(
                f"connection {conn_id} is defined by the environment variable {env_var(conn_id)}, which the "
                "metadata database cannot override: remove the variable and run the registration again"
            )
        text = json.dumps(extra, sort_keys=True)
        with create_session() as session:
            conn = session.scalar(sa.select(Connection).where(Connection.conn_id == conn_id))
            if conn is None:
                session.add(
                    Connection(conn_id=conn_id, conn_type=CONN_TYPE, description=description, extra=text)
                )
            else:
                conn.set_extra(text)
                conn.description = description
        if self.read(conn_id) != extra:
            raise ConfigurationError(
                f"connection {conn_id} was stored in Airflow's metadata database, but a secrets backend "
                "configured before it defines the connection with other values: store the new extras there"
            )


class MemoryConnections:
    """Connections in a dict (tests; a dry run's view of what would be written)."""

    def __init__(self, connections: dict[str, dict[str, Any]] | None = None) -> None:
        self.connections = {k: dict(v) for k, v in (connections or {}).items()}
        self.writes: list[str] = []

    def read(self, conn_id: str) -> dict[str, Any] | None:
        found = self.connections.get(conn_id)
        return dict(found) if found is not None else None

    def write(self, conn_id: str, extra: dict[str, Any], description: str) -> None:
        self.connections[conn_id] = dict(extra)
        self.writes.append(conn_id)
