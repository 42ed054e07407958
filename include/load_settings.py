"""``airflow_settings.yaml`` (Astro CLI format) as the files ``airflow {connections,pools,variables} import`` take.

``python -m include.load_settings airflow_settings.yaml`` imports them (``--out DIR``: only writes them; ``--env``:
prints ``export AIRFLOW_CONN_...``). A ``conn_uri`` is passed on as it is: ``Connection.from_uri`` keeps its extras.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_FIELDS = {
    f"conn_{k}": k for k in ("host", "schema", "login", "password", "port", "extra", "description")
} | {"conn_type": "conn_type"}
_FLAGS = {"connections": ["--overwrite"], "pools": [], "variables": ["--action-on-existing-key", "overwrite"]}


def read_settings(path: str | Path) -> dict[str, dict[str, Any]]:
    """Return connections (a URI or fields), pools and variables, each in its import file's shape."""
    section = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("airflow") or {}
    if unknown := set(section) - set(_FLAGS):
        raise ValueError(f"{path}: unknown key(s) under 'airflow': {sorted(unknown)}")
    connections: dict[str, Any] = {}
    for entry in (
        e for e in section.get("connections") or [] if e.get("conn_id")
    ):  # skips Astro's placeholders
        if unknown := set(entry) - set(_FIELDS) - {"conn_id", "conn_uri"}:
            raise ValueError(f"{path}: connection {entry['conn_id']}: unknown key(s) {sorted(unknown)}")
        fields = {_FIELDS[k]: v for k, v in entry.items() if k in _FIELDS and v not in (None, "")}
        fields |= {"extra": json.loads(fields["extra"])} if isinstance(fields.get("extra"), str) else {}
        connections[entry["conn_id"]] = str(entry["conn_uri"]) if entry.get("conn_uri") else fields
    pools = {p["pool_name"]: {"slots": p["pool_slot"], "description": p.get("pool_description") or ""}
             for p in section.get("pools") or [] if p.get("pool_name")}  # fmt: skip
    variables = {
        v["variable_name"]: v.get("variable_value")
        for v in section.get("variables") or []
        if v.get("variable_name")
    }
    return {"connections": connections, "pools": pools, "variables": variables}


def connection_env(path: str | Path, *, hosts: Mapping[str, str] | None = None,
                   overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:  # fmt: skip
    """Return ``AIRFLOW_CONN_<ID>`` values (tests, demo); ``hosts``/``overrides`` replace fields per conn_id."""
    env = {}
    for conn_id, value in read_settings(path)["connections"].items():
        changes = {
            **({"host": hosts[conn_id]} if hosts and conn_id in hosts else {}),
            **(overrides or {}).get(conn_id, {}),
        }
        if isinstance(value, str) and changes:  # a URI to change: Airflow's own parser splits it
            from airflow.models.connection import Connection

            value = json.loads(Connection(conn_id=conn_id, uri=value).as_json())
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = (
            value if isinstance(value, str) else json.dumps({**value, **changes}, sort_keys=True)
        )
    return env


def main(argv: list[str] | None = None) -> int:
    """Write the import files, then run ``airflow connections|pools|variables import`` on them (idempotent)."""
    parser = argparse.ArgumentParser(
        prog="python -m include.load_settings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("path", nargs="?", default="airflow_settings.yaml")
    parser.add_argument("--out", type=Path, help="only write the import files into this directory")
    parser.add_argument("--env", action="store_true", help="only print AIRFLOW_CONN_* exports")
    args = parser.parse_args(argv)
    if args.env:
        print(
            "\n".join(
                f"export {name}={shlex.quote(value)}" for name, value in connection_env(args.path).items()
            )
        )
        return 0
    with tempfile.TemporaryDirectory(
        prefix="airflow-settings-"
    ) as tmp:  # removed after: the files hold passwords
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for kind, content in (item for item in read_settings(args.path).items() if item[1]):
            (out / f"{kind}.json").write_text(json.dumps(content, indent=2, sort_keys=True), encoding="utf-8")
            command = [
                sys.executable,
                "-m",
                "airflow",
                kind,
                "import",
                str(out / f"{kind}.json"),
                *_FLAGS[kind],
            ]
            if args.out is None and subprocess.run(command, check=False).returncode:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
