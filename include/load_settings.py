"""Load ``airflow_settings.yaml`` (Astro CLI format) into plain Airflow.

The Astro CLI reads ``airflow_settings.yaml`` when it starts a local Airflow; plain Airflow does not.
This module gives plain Airflow the same connections, pools and variables::

    python -m include.load_settings airflow_settings.yaml          # create or update, Python API
    python -m include.load_settings airflow_settings.yaml --cli    # same, through the `airflow` CLI
    python -m include.load_settings airflow_settings.yaml --env    # print `export AIRFLOW_CONN_...=...`

Run it after ``airflow db migrate`` (``make airflow`` does). It is idempotent: existing connections
are updated field by field, pools get their slots and description, variables are overwritten.

:func:`connection_env` returns the connections as ``AIRFLOW_CONN_*`` environment variables (JSON
form) for tests and the demo, which need no metadata-DB rows and can repoint hosts at sandbox ports.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_CONNECTION_FIELDS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
    "conn_uri",
    "conn_description",
}
_POOL_FIELDS = {"pool_name", "pool_slot", "pool_description"}
_VARIABLE_FIELDS = {"variable_name", "variable_value"}


class SettingsError(ValueError):
    """The settings file is malformed."""


@dataclass(frozen=True)
class ConnectionSpec:
    """One connection, in Airflow's terms."""

    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def as_json(self) -> str:
        """The ``--conn-json`` / ``AIRFLOW_CONN_*`` JSON form (empty fields left out)."""
        body: dict[str, Any] = {"conn_type": self.conn_type}
        for name in ("host", "schema", "login", "password", "port", "description"):
            value = getattr(self, name)
            if value not in (None, ""):
                body[name] = value
        if self.extra:
            body["extra"] = self.extra
        return json.dumps(body, sort_keys=True)


@dataclass(frozen=True)
class PoolSpec:
    """One pool."""

    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class Settings:
    """Everything ``airflow_settings.yaml`` declares."""

    connections: tuple[ConnectionSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()


def read_settings(path: str | Path) -> Settings:
    """
    Read and validate an Astro-format settings file.

    :raise SettingsError: unknown keys, missing ids, bad slot counts or bad ``conn_extra`` JSON.
    """
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("airflow", {}), dict):
        raise SettingsError(f"{path}: expected a top-level 'airflow:' mapping")
    section = raw.get("airflow") or {}
    unknown = sorted(set(section) - {"connections", "pools", "variables"})
    if unknown:
        raise SettingsError(f"{path}: unknown key(s) under 'airflow': {unknown}")
    return Settings(
        connections=tuple(
            _connection(entry) for entry in _entries(section, "connections", _CONNECTION_FIELDS, "conn_id")
        ),
        pools=tuple(_pool(entry) for entry in _entries(section, "pools", _POOL_FIELDS, "pool_name")),
        variables=tuple(
            (str(entry["variable_name"]), _variable_value(entry.get("variable_value")))
            for entry in _entries(section, "variables", _VARIABLE_FIELDS, "variable_name")
        ),
    )


def connection_env(
    settings: Settings | str | Path,
    *,
    hosts: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """
    Return the connections as ``AIRFLOW_CONN_<ID>`` environment variables (JSON values).

    :param settings: a :class:`Settings` or the path of a settings file.
    :param hosts: replace ``host`` per conn_id (e.g. the sandbox's actual URLs).
    :param overrides: replace any field per conn_id (``{"clientify_default": {"password": "x"}}``).
    """
    if not isinstance(settings, Settings):
        settings = read_settings(settings)
    env = {}
    for conn in settings.connections:
        changes = dict((overrides or {}).get(conn.conn_id, {}))
        if hosts and conn.conn_id in hosts:
            changes.setdefault("host", hosts[conn.conn_id])
        body = json.loads(conn.as_json())
        body.update(changes)
        env[f"AIRFLOW_CONN_{conn.conn_id.upper()}"] = json.dumps(body, sort_keys=True)
    return env


def apply_settings(settings: Settings) -> list[str]:
    """Create or update connections, pools and variables through Airflow's Python API; return a log."""
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    done = []
    with create_session() as session:
        for spec in settings.connections:
            conn = session.scalar(select(Connection).where(Connection.conn_id == spec.conn_id))
            verb = "updated"
            if conn is None:
                conn = Connection(conn_id=spec.conn_id)
                session.add(conn)
                verb = "created"
            conn.conn_type = spec.conn_type
            conn.description = spec.description
            conn.host = spec.host
            conn.schema = spec.schema
            conn.login = spec.login
            conn.password = spec.password
            conn.port = spec.port
            conn.extra = json.dumps(spec.extra) if spec.extra else None
            done.append(f"connection {spec.conn_id} {verb}")
        for pool in settings.pools:
            Pool.create_or_update_pool(
                name=pool.name,
                slots=pool.slots,
                description=pool.description,
                include_deferred=False,
                session=session,
            )
            done.append(f"pool {pool.name} = {pool.slots} slots")
        for name, value in settings.variables:
            Variable.set(name, value, session=session)
            done.append(f"variable {name} set")
    return done


def cli_commands(settings: Settings, airflow: str = "airflow") -> list[list[str]]:
    """Return the ``airflow`` CLI commands equivalent to :func:`apply_settings`."""
    commands = []
    for conn in settings.connections:
        # `connections add` refuses an existing id: delete first (ignoring "not found").
        commands.append([airflow, "connections", "delete", conn.conn_id])
        commands.append([airflow, "connections", "add", conn.conn_id, "--conn-json", conn.as_json()])
    for pool in settings.pools:
        commands.append([airflow, "pools", "set", pool.name, str(pool.slots), pool.description])
    for name, value in settings.variables:
        commands.append([airflow, "variables", "set", name, value])
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m include.load_settings", description=__doc__.split("\n")[0]
    )
    parser.add_argument("path", nargs="?", default="airflow_settings.yaml", help="Astro-format settings file")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--cli", action="store_true", help="apply through the `airflow` CLI (slower)")
    how.add_argument("--env", action="store_true", help="print AIRFLOW_CONN_* exports instead of applying")
    args = parser.parse_args(argv)
    try:
        settings = read_settings(args.path)
    except (OSError, SettingsError, yaml.YAMLError) as exc:
        print(f"load_settings: {exc}", file=sys.stderr)
        return 2
    if args.env:
        for name, value in connection_env(settings).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if args.cli:
        for command in cli_commands(settings):
            check = command[2] != "delete"
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if check and result.returncode != 0:
                print(f"load_settings: {' '.join(command[:4])} failed:\n{result.stderr}", file=sys.stderr)
                return 1
            if check:
                print(" ".join(command[1:4]))
        return 0
    for line in apply_settings(settings):
        print(line)
    return 0


def _entries(section: dict[str, Any], name: str, allowed: set[str], id_key: str) -> list[dict[str, Any]]:
    entries = section.get(name) or []
    if not isinstance(entries, list):
        raise SettingsError(f"airflow.{name} must be a list")
    kept = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SettingsError(f"airflow.{name}[{index}] must be a mapping")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise SettingsError(f"airflow.{name}[{index}]: unknown key(s) {unknown}")
        if entry.get(id_key) in (None, ""):
            # The Astro template ships placeholder entries with every value empty: skip them.
            if any(value not in (None, "") for value in entry.values()):
                raise SettingsError(f"airflow.{name}[{index}]: {id_key} is required")
            continue
        kept.append(entry)
    return kept


def _connection(entry: dict[str, Any]) -> ConnectionSpec:
    conn_id = str(entry["conn_id"])
    if entry.get("conn_uri"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(str(entry["conn_uri"]))
        return ConnectionSpec(
            conn_id=conn_id,
            conn_type=parts.scheme.replace("-", "_"),
            host=parts.hostname,
            schema=parts.path.lstrip("/") or None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=parts.port,
        )
    if not entry.get("conn_type"):
        raise SettingsError(f"connection {conn_id}: conn_type is required")
    port = entry.get("conn_port")
    if port not in (None, ""):
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise SettingsError(f"connection {conn_id}: conn_port must be a number, got {port!r}") from None
    else:
        port = None
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=str(entry["conn_type"]),
        host=_text(entry.get("conn_host")),
        schema=_text(entry.get("conn_schema")),
        login=_text(entry.get("conn_login")),
        password=_text(entry.get("conn_password")),
        port=port,
        extra=_extra(conn_id, entry.get("conn_extra")),
        description=_text(entry.get("conn_description")),
    )


def _pool(entry: dict[str, Any]) -> PoolSpec:
    slots = entry.get("pool_slot")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < -1:
        raise SettingsError(f"pool {entry['pool_name']}: pool_slot must be an integer >= -1, got {slots!r}")
    return PoolSpec(
        name=str(entry["pool_name"]), slots=slots, description=str(entry.get("pool_description") or "")
    )


def _extra(conn_id: str, value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"connection {conn_id}: conn_extra is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"connection {conn_id}: conn_extra must be a mapping or a JSON object")
    return value


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _variable_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


if __name__ == "__main__":
    sys.exit(main())
