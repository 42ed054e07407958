"""Start and stop a real Airflow 3.3 deployment of clientify-sync on loopback, for the end-to-end suite.

Why a harness: ``dag.test()`` runs every task in one process; only a scheduler, a DAG processor, an
API server, a triggerer and real executors (LocalExecutor, then CeleryExecutor with two workers) show
what production does: separate processes that share a metadata database, JWTs and a ledger.

One :class:`Stack` owns a throwaway directory and everything started in it, each service in its own
process group: PostgreSQL (as a non-root user: it refuses root), Redis (Celery only), the API sandbox
and the Airflow components. :meth:`Stack.stop` (also run by ``atexit`` and on SIGTERM/SIGINT) ends
them group by group and removes the directory unless ``E2E_KEEP=1``. Every wait has a deadline and
says what it was waiting for when it gives up.

Run by hand to poke at a deployment (Ctrl-C stops it)::

    .venv/bin/python scripts/e2e/e2e_stack.py --executor celery
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script (docs/e2e.md), not only under make's PYTHONPATH
    sys.path.insert(0, str(ROOT))

from include.sandbox.ports import free_ports  # noqa: E402

VENV_BIN = Path(sys.executable).parent
APIS = ("facturama", "clientify", "facturadirecta")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # a throwaway SimpleAuthManager user on loopback, never a real credential
PG_SUPERUSER = "airflow"
METADATA_DB = "airflow"
LEDGER_DB = "ledger"
# The sandbox's default (obviously fake) credentials, as in airflow_settings.yaml.
FACTURAMA_USER = "sandbox-user"
FACTURAMA_PASSWORD = "sandbox-password-fake"
# Each connection's requests_per_minute, set below what a round's tasks would send unthrottled (round 1
# sends about 230 Clientify, 70 FacturaDirecta and 40 Facturama requests, several tasks at once), so
# the budget is pressed. The suite asserts no 60-second window exceeded these.
REQUESTS_PER_MINUTE = {"facturama": 30, "clientify": 120, "facturadirecta": 60}
# Which sandbox each connection of airflow_settings.yaml talks to: FacturaDirecta's REST API is served on
# the classic API's port (docs/sandbox.md), so both of its connections point at that sandbox.
SANDBOX_OF = {
    "facturama_default": "facturama",
    "clientify_default": "clientify",
    "facturadirecta_default": "facturadirecta",
    "facturadirecta_rest": "facturadirecta",
}
FACTURADIRECTA_CONN = {"classic": "facturadirecta_default", "rest": "facturadirecta_rest"}
BREAKS = {b.strip() for b in os.environ.get("E2E_BREAK", "").split(",") if b.strip()}
CELERY_WORKERS = ("worker-a", "worker-b")
CELERY_CONCURRENCY = 3
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0


class StackError(RuntimeError):
    """A service did not start, or a step failed: the message says which and where its log is."""


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.5,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``check`` until it is true; raise naming ``what`` after ``timeout`` s or when ``alive`` reports."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if alive is not None and (problem := alive()):
            raise StackError(f"while waiting for {what}: {problem}")
        if time.monotonic() > deadline:
            raise StackError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries (Debian keeps them off PATH, under /usr/lib/postgresql/N/bin)."""
    if override := os.environ.get("E2E_PG_BIN"):
        return Path(override)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)]
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StackError(
        "PostgreSQL server binaries (initdb, postgres) not found: "
        "run scripts/ensure-debian-packages.sh postgresql redis-server"
    )


@dataclass
class Service:
    """One started process group and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def problem(self) -> str | None:
        """A sentence when the process has exited (with its log's tail), else ``None``."""
        if self.process.poll() is None:
            return None
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"{self.name} exited with {self.process.returncode}; {self.log}:\n{tail}"


@dataclass
class Stack:
    """A throwaway Airflow deployment; ``executor`` is ``local`` or ``celery``.

    ``facturadirecta_api`` (``classic`` or ``rest``) is the FacturaDirecta API the integration syncs
    through (the connection its config names); ``webhooks`` sets ``webhooks: true`` in the integration
    config (the DAGs watch their inboxes). Both default to what the chaos layer has always used.
    """

    executor: str
    root: Path
    keep: bool = False
    facturadirecta_api: str = "classic"
    webhooks: bool = False
    services: list[Service] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _owns_root: bool = False

    # -- paths and URLs ----------------------------------------------------------------------------

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def sandbox_url(self, api: str) -> str:
        return f"http://127.0.0.1:{self.ports[api]}"

    def db_url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        # Trust authentication on loopback in a throwaway cluster: no password exists to leak.
        return f"{driver}://{PG_SUPERUSER}@127.0.0.1:{self.ports['postgres']}/{database}"

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def facturadirecta_conn_id(self) -> str:
        return FACTURADIRECTA_CONN[self.facturadirecta_api]

    @classmethod
    def create(
        cls,
        executor: str,
        parent: Path | None = None,
        *,
        facturadirecta_api: str = "classic",
        webhooks: bool = False,
    ) -> Stack:
        """A stack in a new directory (under ``parent``, or ``$E2E_ROOT``, or a fresh mkdtemp)."""
        if executor not in ("local", "celery"):
            raise ValueError(f"executor must be 'local' or 'celery', got {executor!r}")
        if facturadirecta_api not in FACTURADIRECTA_CONN:
            raise ValueError(f"facturadirecta_api must be 'classic' or 'rest', got {facturadirecta_api!r}")
        base = parent or (Path(os.environ["E2E_ROOT"]) if os.environ.get("E2E_ROOT") else None)
        owns = base is None
        root = Path(tempfile.mkdtemp(prefix=f"clientify-e2e-{executor}-", dir=base))
        # PostgreSQL runs as another user: it must be able to reach its data directory.
        for directory in (root, base):
            if directory is not None and directory.stat().st_uid == os.geteuid():
                directory.chmod(directory.stat().st_mode | 0o755)
        stack = cls(
            executor=executor,
            root=root,
            keep=os.environ.get("E2E_KEEP") == "1",
            facturadirecta_api=facturadirecta_api,
            webhooks=webhooks,
            _owns_root=owns,
        )
        stack.logs_dir.mkdir()
        atexit.register(stack.stop)
        return stack

    def start(self) -> None:
        """Start everything and configure Airflow (connections, pools); stop it all on failure."""
        try:
            names = [
                "postgres",
                "redis",
                "api",
                "scheduler_logs",
                "triggerer_logs",
                *APIS,
                *(f"{w}_logs" for w in CELERY_WORKERS),
            ]
            self.ports = dict(zip(names, free_ports(len(names)), strict=True))
            self._timed("postgres", self._start_postgres)
            if self.executor == "celery":
                self._timed("redis", self._start_redis)
            self._timed("sandbox", self._start_sandbox)
            self.env = self._airflow_env()
            self._write_integrations()
            self._timed("db migrate", self._migrate)
            self._timed("airflow components", self._start_airflow)
            self._timed("connections and pools", self._configure)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End every process group (TERM, then KILL after a grace period); remove the directory."""
        for service in reversed(self.services):
            _stop_group(service.process)
        self.services.clear()
        if self.keep:
            print(f"e2e: kept {self.root} (E2E_KEEP=1)", file=sys.stderr)
        elif self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def _timed(self, name: str, step: Callable[[], None]) -> None:
        started = time.monotonic()
        step()
        self.timings[name] = round(time.monotonic() - started, 1)

    def _spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log = self.logs_dir / f"{name}.log"
        if user is not None:
            cmd = ["runuser", "-u", user, "--", *cmd]
        with log.open("ab") as out:
            # start_new_session: its own process group, so stop() ends its children too.
            process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env if env is not None else _clean_env(),
                cwd=cwd or ROOT,
                start_new_session=True,
            )
        service = Service(name, process, log)
        self.services.append(service)
        with (self.root / "pgids").open("a") as pgids:
            pgids.write(f"{process.pid}\n")
        return service

    # -- PostgreSQL and Redis ----------------------------------------------------------------------

    def _start_postgres(self) -> None:
        bindir = postgres_bin()
        data = self.root / "pg"
        data.mkdir()
        user = None
        if os.geteuid() == 0:
            user = _postgres_user()
            uid = pwd.getpwnam(user).pw_uid
            os.chown(data, uid, -1)
        initdb = [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        if user:
            initdb = ["runuser", "-u", user, "--", *initdb]
        result = subprocess.run(initdb, capture_output=True, text=True, timeout=120, env=_clean_env())
        if result.returncode != 0:
            raise StackError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        service = self._spawn(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.ports["postgres"]),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            user=user,
        )
        import psycopg

        def ready() -> bool:
            with psycopg.connect(self.db_url("postgres", "postgresql"), connect_timeout=2):
                return True

        wait_for("PostgreSQL to accept connections", ready, 60, alive=service.problem)
        with psycopg.connect(self.db_url("postgres", "postgresql"), autocommit=True) as conn:
            for name in (METADATA_DB, LEDGER_DB):
                conn.execute(f'CREATE DATABASE "{name}"')

    def _start_redis(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise StackError("redis-server not found: run scripts/ensure-debian-packages.sh redis-server")
        service = self._spawn(
            "redis",
            [
                redis,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.ports["redis"]),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
        )

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        wait_for("Redis to answer PING", ready, 30, alive=service.problem)

    # -- the sandbox -------------------------------------------------------------------------------

    def _start_sandbox(self) -> None:
        cmd = [sys.executable, "-m", "include.sandbox", "--memory", "--host", "127.0.0.1"]
        for api in APIS:
            cmd += [f"--{api}-port", str(self.ports[api])]
        env = {**_clean_env(), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
        service = self._spawn("sandbox", cmd, env=env)
        for api in APIS:
            wait_for(
                f"the {api} sandbox on port {self.ports[api]}",
                lambda api=api: httpx.get(f"{self.sandbox_url(api)}/_sandbox/health", timeout=1).is_success,
                30,
                interval=0.2,
                alive=service.problem,
            )

    # -- Airflow -----------------------------------------------------------------------------------

    def _airflow_env(self) -> dict[str, str]:
        """Every Airflow setting by environment: each component and worker gets the same one."""
        from cryptography.fernet import Fernet

        self.airflow_home.mkdir()
        passwords = self.root / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        api = self.api_url
        env = {
            **_clean_env(),
            "AIRFLOW_HOME": str(self.airflow_home),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
            "CLIENTIFY_SYNC_INTEGRATIONS": str(self.root / "integrations.yaml"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor" if self.executor == "local" else "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "6",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url(METADATA_DB),
            # Airflow would derive postgresql+asyncpg (not installed); psycopg 3 is async as well.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.db_url(METADATA_DB, "postgresql+psycopg_async"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports["scheduler_logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["triggerer_logs"]),
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        }
        if self.executor == "celery":
            env |= {
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": self.db_url(METADATA_DB, "db+postgresql+psycopg"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_CONCURRENCY),
            }
        return env

    def _write_integrations(self) -> None:
        """The shipped integration config with test timings: quick retries, a 5 s prerequisite poke."""
        raw = yaml.safe_load((ROOT / "include" / "integrations.yaml").read_text())
        # An unexpected failure retries within seconds, so the suite sees try_number 2 instead of waiting 5 min.
        raw["retry_delay_minutes"] = 0.05
        # A daily clock 12 hours away: unpausing still starts a scheduled run for the latest interval at
        # once, but no clock tick lands inside the test. An hourly tick during a round would start
        # contacts/products runs at an arbitrary moment (possibly beside a syncing estimates run),
        # which would make the ordering check depend on the minute the suite started.
        raw["schedule"] = f"0 {(datetime.now(UTC).hour + 12) % 24} * * *"
        raw["timezone"] = "UTC"
        for platform in (raw.get("integrations") or {}).values():
            platform.pop("schedule", None)
            platform.pop("timezone", None)
        raw["integrations"]["facturadirecta"]["conn_id"] = self.facturadirecta_conn_id
        if self.webhooks:
            raw["webhooks"] = True
        sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
        try:
            from clientify_sync import integrations
        finally:
            del sys.path[:2]
        if "prerequisite_poke_seconds" in getattr(integrations, "_TOP_KEYS", ()):
            # Not 5 s: a poke interval shorter than the scheduler's executor-event latency hits Airflow
            # 3.3's stale-success race for reschedule sensors (apache/airflow#71172, PR #71194): the TI is
            # failed into up_for_retry. 20 s leaves a margin on a loaded 2-core machine.
            raw["prerequisite_poke_seconds"] = int(os.environ.get("E2E_POKE_SECONDS", "20"))
        else:
            raw.pop("prerequisite_poke_seconds", None)
        (self.root / "integrations.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command with the stack's environment; raise with its output on failure."""
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if result.returncode != 0:
            raise StackError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def _migrate(self) -> None:
        self.airflow("db", "migrate", timeout=600)

    def _start_airflow(self) -> None:
        airflow = str(VENV_BIN / "airflow")
        self._spawn(
            "api-server",
            [
                airflow,
                "api-server",
                "--port",
                str(self.ports["api"]),
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ],
            env=self.env,
        )
        self._spawn("scheduler", [airflow, "scheduler"], env=self.env)
        self._spawn("dag-processor", [airflow, "dag-processor"], env=self.env)
        self._spawn("triggerer", [airflow, "triggerer"], env=self.env)
        if self.executor == "celery":
            hostname_module = ROOT / "scripts" / "e2e"
            # E2E_BREAK=one-worker: the second worker is never started.
            for worker in CELERY_WORKERS[:1] if "one-worker" in BREAKS else CELERY_WORKERS:
                env = {
                    **self.env,
                    "PYTHONPATH": f"{self.env['PYTHONPATH']}{os.pathsep}{hostname_module}",
                    # Both workers share this machine: give each its own task hostname and log port,
                    # so the task instances tell which worker ran them.
                    "E2E_WORKER_NAME": worker,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_hostname.worker_hostname",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports[f"{worker}_logs"]),
                }
                self._spawn(
                    f"celery-{worker}",
                    [
                        airflow,
                        "celery",
                        "worker",
                        "--celery-hostname",
                        f"{worker}@%h",
                        "--concurrency",
                        str(CELERY_CONCURRENCY),
                        "--without-mingle",
                        "--without-gossip",
                    ],
                    env=env,
                )
        wait_for(
            f"the Airflow API server on {self.api_url}",
            lambda: httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=2).is_success,
            START_TIMEOUT_S,
            interval=1,
            alive=self._any_problem,
        )
        self.token = self._login()
        wait_for(
            "the DAG processor to serialise the six clientify-sync DAGs",
            self._dags_parsed,
            START_TIMEOUT_S,
            interval=2,
            alive=self._any_problem,
        )

    def _any_problem(self) -> str | None:
        for service in self.services:
            if problem := service.problem():
                return problem
        return None

    def _login(self) -> str:
        response = httpx.post(
            f"{self.api_url}/auth/token",
            json={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
            timeout=30,
        )
        if response.status_code not in (200, 201):
            raise StackError(f"POST /auth/token answered {response.status_code}: {response.text[:500]}")
        return str(response.json()["access_token"])

    def _dags_parsed(self) -> bool:
        errors = self.api("GET", "/api/v2/importErrors").json()
        if errors.get("total_entries"):
            raise StackError(f"DAG import errors: {json.dumps(errors)[:3000]}")
        dags = self.api("GET", "/api/v2/dags", params={"tags": "clientify-sync", "limit": 100}).json()
        return dags["total_entries"] >= 6

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST call with the admin JWT; raise on a 4xx/5xx (with the body, never the token)."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        response = httpx.request(
            method, f"{self.api_url}{path}", headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs
        )
        if response.is_error:
            raise StackError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response

    def _configure(self) -> None:
        """Connections and pools in the metadata DB, from airflow_settings.yaml, pointed at this stack."""
        settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
        for conn in settings["connections"]:
            api = SANDBOX_OF.get(conn["conn_id"], conn["conn_id"])
            # E2E_BREAK=budget: the clients get 4x the budget the suite asserts.
            rpm = REQUESTS_PER_MINUTE.get(api, 0) * (4 if "budget" in BREAKS else 1)
            extra = {"requests_per_minute": rpm} if api in APIS else {}
            body = {
                "connection_id": conn["conn_id"],
                "conn_type": conn["conn_type"],
                "host": self.sandbox_url(api) if api in APIS else conn.get("conn_host"),
                "login": conn.get("conn_login"),
                "password": conn.get("conn_password"),
                "extra": json.dumps({**(conn.get("conn_extra") or {}), **extra}),
            }
            self.api("POST", "/api/v2/connections", json=body)
        self.api(
            "POST",
            "/api/v2/connections",
            json={
                "connection_id": "clientify_sync_state",
                "conn_type": "generic",
                "extra": json.dumps({"url": self.db_url(LEDGER_DB)}),
            },
        )
        for pool in settings["pools"]:
            self.api(
                "POST",
                "/api/v2/pools",
                json={
                    "name": pool["pool_name"],
                    "slots": pool["pool_slot"],
                    "description": pool.get("pool_description"),
                },
            )

    def set_connection_password(self, conn_id: str, password: str) -> None:
        """PATCH one connection's password through the REST API (what an operator does in the UI)."""
        current = self.api("GET", f"/api/v2/connections/{conn_id}").json()
        self.api(
            "PATCH",
            f"/api/v2/connections/{conn_id}",
            params={"update_mask": "password"},
            json={"connection_id": conn_id, "conn_type": current["conn_type"], "password": password},
        )

    def register_webhooks(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m clientify_sync.webhooks.register`` against this stack's sandboxes, the API server's
        loopback URL as the public URL (the sandbox delivers to loopback only); not raising on exit 1."""
        return subprocess.run(
            [sys.executable, "-m", "clientify_sync.webhooks.register", "--public-url", self.api_url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )

    def service_log(self, name: str) -> str:
        path = self.logs_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _clean_env() -> dict[str, str]:
    """The caller's environment without its Airflow settings (the unit suite's conftest sets some)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "CLIENTIFY_SYNC_", "SANDBOX_", "PYTEST_"))
    }


def _postgres_user() -> str:
    """The Debian package's ``postgres`` user, else a system user created for this (PostgreSQL refuses root)."""
    for name in ("postgres", "clientify-e2e-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "clientify-e2e-pg"],
        check=True,
        timeout=30,
    )
    return "clientify-e2e-pg"


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the process group, KILL it after the grace period; never touches other processes."""
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # leftovers of an exited leader
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running(executor: str, parent: Path | None = None, **options: Any) -> Iterator[Stack]:
    """A started stack, stopped however the block ends (including SIGTERM, turned into SystemExit);
    ``options`` are :meth:`Stack.create`'s (``facturadirecta_api``, ``webhooks``)."""
    stack = Stack.create(executor, parent, **options)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executor", choices=("local", "celery"), default="local")
    parser.add_argument("--facturadirecta-api", choices=tuple(FACTURADIRECTA_CONN), default="classic")
    parser.add_argument("--webhooks", action="store_true", help="webhooks: true in the integration config")
    args = parser.parse_args()
    with running(args.executor, facturadirecta_api=args.facturadirecta_api, webhooks=args.webhooks) as stack:
        print(f"e2e stack up in {stack.root}: API {stack.api_url} (admin/admin), timings {stack.timings}")
        for api in APIS:
            print(f"  {api} sandbox: {stack.sandbox_url(api)}")
        with contextlib.suppress(KeyboardInterrupt):
            while not stack._any_problem():
                time.sleep(1)
            print(stack._any_problem(), file=sys.stderr)


if __name__ == "__main__":
    main()
