"""A real Airflow with the sandbox, and headless Chromium driven over the DevTools protocol.

Used by ``test_live_ui.py`` and ``scripts/ui/screenshots.py``. ``LiveAirflow`` starts the API sandbox
(in memory, free loopback ports), seeds it, and runs ``airflow standalone`` (API server, scheduler,
DAG processor, triggerer; LocalExecutor) in a throwaway ``AIRFLOW_HOME`` with a SQLite metadata DB and
a SQLite ledger, its connections pointing at the sandbox. DAGs are triggered through the REST API.
``Chromium`` is Debian's browser on a DevTools port, driven with ``websockets`` (already in the venv:
no browser download, no driver). Everything listens on 127.0.0.1 and is stopped on exit.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.sync.client import connect

from tests.fixtures.sandbox import ROOT, SandboxHandle, free_ports, start_sandbox, stop_sandbox

AIRFLOW_START_TIMEOUT_S = 300.0  # generous: a busy 2-core machine parses the DAG file in up to a minute
RUN_TIMEOUT_S = 400.0
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--disable-dev-shm-usage", "--mute-audio", "--remote-allow-origins=*",
]  # fmt: skip

# Records the UI tests look for, created through the vendor APIs (valid RFCs; generic data).
DUP_RFC = "DUPL800101AB1"  # a Facturama client and two Clientify contacts share it: quarantined
SCRIPT_RFC = "SCRI800101AB1"
SCRIPT_NAME = "<script>window.__xss=1</script> Pérez"
BAD_ZIP_RFC = "ZIPB800101AB1"  # a Clientify contact whose 4-digit postal code Facturama refuses: failed
TWIN_RFC = "GEMA800101AB1"  # two Facturama clients added after the scenario share it (issue 26's test)


@dataclass
class Scenario:
    """What ``LiveAirflow.scenario`` did: the DAG runs (REST API objects), their reports, the conflict."""

    runs: dict[str, dict[str, Any]]
    reports: dict[str, dict[str, Any]]
    conflict: tuple[str, str, str, str]


class LiveAirflowError(RuntimeError):
    """Airflow or the sandbox did not come up, or a DAG run did not finish in time."""


class LiveAirflow:
    """``airflow standalone`` on a free port with the sandbox behind it (a context manager)."""

    def __init__(self, workdir: Path | None = None) -> None:
        # A directory of our own is removed at the end (set CLIENTIFY_SYNC_UI_KEEP=1 to read its logs).
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clientify-sync-ui-"))
        self.home = self.workdir / "airflow"
        self.ledger = self.workdir / "clientify_sync_state.db"
        self.port, self.worker_log_port, self.trigger_log_port = free_ports(3)
        self.url = f"http://127.0.0.1:{self.port}"
        self.passwords = {"admin": secrets.token_urlsafe(12), "rita": secrets.token_urlsafe(12)}
        self.sandbox: SandboxHandle | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "airflow.log"
        self.http = httpx.Client(base_url=self.url, timeout=120)
        self._token: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> LiveAirflow:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.sandbox = start_sandbox()
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)  # fmt: skip
        # Pools (tasks wait forever for a pool that does not exist); its connections are shadowed by the env.
        subprocess.run([sys.executable, "-m", "include.load_settings", "airflow_settings.yaml"], env=env, cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)  # fmt: skip
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"], env=env, cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._wait_healthy()

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # standalone and the components it started
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.sandbox is not None:
            stop_sandbox(self.sandbox)
            self.sandbox = None
        if self.own_workdir and not os.environ.get("CLIENTIFY_SYNC_UI_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def environment(self) -> dict[str, str]:
        """What the Makefile exports, plus a private home, port, users and the sandbox connections."""
        from include.load_settings import connection_env

        assert self.sandbox is not None
        passwords_file = self.home / "passwords.json"
        passwords_file.write_text(json.dumps(self.passwords))
        config = yaml.safe_load((ROOT / "include" / "integrations.yaml").read_text())
        # No scheduled run gets in the way (the next interval ends next year); failures end quickly.
        config.update(schedule="0 0 1 1 *", retries=2, retry_delay_minutes=0.05)
        integrations = self.workdir / "integrations.yaml"
        integrations.write_text(yaml.safe_dump(config, sort_keys=False))
        hosts = {
            f"{api}_default": self.sandbox.url(api) for api in ("facturama", "clientify", "facturadirecta")
        }
        env = {
            **os.environ,
            **connection_env(ROOT / "airflow_settings.yaml", hosts=hosts),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,rita:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "240",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_CLIENTIFY_SYNC_STATE": json.dumps(
                {"conn_type": "generic", "extra": {"url": f"sqlite:///{self.ledger}"}}
            ),
            "CLIENTIFY_SYNC_INTEGRATIONS": str(integrations),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            # standalone starts its components as `airflow ...` commands: the venv's, first on PATH.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        env.pop("PYTEST_CURRENT_TEST", None)
        return env

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + AIRFLOW_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LiveAirflowError(
                    f"airflow standalone exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                health = self.http.get("/api/v2/monitor/health", timeout=2)
                if health.status_code == 200 and health.json()["scheduler"]["status"] == "healthy":
                    dags = self.api("GET", "/api/v2/dags", params={"limit": 100})
                    if {d["dag_id"] for d in dags["dags"]} >= {
                        "facturama_contacts",
                        "facturadirecta_contacts",
                    }:
                        return
            except (httpx.TransportError, KeyError, ValueError, LiveAirflowError):
                pass
            time.sleep(1)
        errors = ""
        try:
            errors = json.dumps(self.api("GET", "/api/v2/importErrors"))[:3000]
        except (httpx.HTTPError, LiveAirflowError):
            pass
        raise LiveAirflowError(
            f"airflow not ready after {AIRFLOW_START_TIMEOUT_S:.0f}s: {errors}\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- REST API ----------------------------------------------------------------------------------
    def token(self, user: str = "admin") -> str:
        response = self.http.post("/auth/token", json={"username": user, "password": self.passwords[user]})
        response.raise_for_status()
        return response.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call as admin; reads are retried when a loaded machine makes the API server slow."""
        if self._token is None:
            self._token = self.token()
        for attempt in range(4 if method == "GET" else 1):
            try:
                response = self.http.request(
                    method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs
                )
                break
            except httpx.TimeoutException:
                if attempt == 3 or method != "GET":
                    raise
        if response.status_code >= 400:
            raise LiveAirflowError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def run_dag(self, dag_id: str, mode: str) -> dict[str, Any]:
        """Unpause, trigger through the REST API and wait for the run to end; return the DAG run."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                       json={"logical_date": None, "conf": {"mode": mode, "dry_run": False}})  # fmt: skip
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise LiveAirflowError(f"{dag_id} run {run['dag_run_id']} still {run['state']}:\n{self.log_tail()}")

    def report(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The run report ``commit`` returned (XCom)."""
        entry = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/commit/xcomEntries/return_value"
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def scenario(self) -> Scenario:
        """Seed, full runs of both contacts DAGs, a conflicting edit, then a modified Facturama run.

        The second Facturama run has a conflict (an e-mail edited on both sides), the failed record
        again (Facturama refuses its postal code) and the quarantined duplicate tax ID.
        """
        self.seed()
        runs = {
            "facturama_full": self.run_dag("facturama_contacts", "full"),
            "facturadirecta_full": self.run_dag("facturadirecta_contacts", "full"),
        }
        conflict = self.make_conflict()
        runs["facturama_modified"] = self.run_dag("facturama_contacts", "modified")
        for name, run in runs.items():
            if run["state"] != "success":
                raise LiveAirflowError(f"{name} run ended {run['state']}:\n{self.log_tail()}")
        reports = {name: self.report(run["dag_id"], run["dag_run_id"]) for name, run in runs.items()}
        return Scenario(runs, reports, conflict)

    # -- the sandbox's data --------------------------------------------------------------------------
    def seed(self) -> None:
        """Generated customers on both platforms and Clientify, plus the records the checks look for."""
        sb = self.sandbox
        assert sb is not None
        sb.seed("facturama", seed=7, clients=8, products=0, estimates=0)
        sb.seed("facturadirecta", seed=8, clients=6, products=0, estimates=0)
        sb.seed(
            "clientify", seed=9, overlap={"platform": "facturama", "customers": 8, "fraction": 0.5, "seed": 7}
        )
        with sb.facturama_client() as facturama:
            for rfc, name in ((DUP_RFC, "Duplicado Uno Ruiz"), (SCRIPT_RFC, SCRIPT_NAME)):
                body = {"Name": name, "Rfc": rfc, "Email": "cliente@example.mx", "CfdiUse": "G03",
                        "FiscalRegime": "616", "TaxZipCode": "06600",
                        "Address": {"Street": "Reforma 1", "ZipCode": "06600", "Country": "MEX"}}  # fmt: skip
                facturama.post("/Client", json=body).raise_for_status()
        with sb.clientify_client() as clientify:
            for first, last, rfc in (("Duplicado", "Dos", DUP_RFC), ("Duplicado", "Tres", DUP_RFC)):
                clientify.post("/v1/contacts/", json={"first_name": first, "last_name": last,
                                                      "taxpayer_identification_number": rfc}).raise_for_status()  # fmt: skip
            clientify.post("/v1/contacts/", json={
                "first_name": "Zoila", "last_name": "Postal Corta", "taxpayer_identification_number": BAD_ZIP_RFC,
                "emails": [{"type": 1, "email": "zoila@example.mx"}],
                "addresses": [{"type": 3, "street": "Juárez 5", "city": "Puebla", "postal_code": "7200",
                               "country": "MX"}],
            }).raise_for_status()  # fmt: skip

    def make_conflict(self) -> tuple[str, str, str, str]:
        """Edit the e-mail of one linked pair on both sides; return (invoicing id, Clientify id, values)."""
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{self.ledger}")
        try:
            with engine.connect() as conn:
                inv_id, crm_id = conn.execute(sa.text(
                    "SELECT inv_id, crm_id FROM cs_links WHERE integration='facturama' AND entity='contacts' "
                    "AND crm_type='contact' ORDER BY id LIMIT 1")).one()  # fmt: skip
        finally:
            engine.dispose()
        inv_email, crm_email = "facturas.conflicto@example.mx", "crm.conflicto@example.mx"
        sb = self.sandbox
        assert sb is not None
        with sb.facturama_client() as facturama:
            client = facturama.get(f"/Client/{inv_id}").json()
            client["Email"] = inv_email
            facturama.put(f"/Client/{inv_id}", json=client).raise_for_status()
        with sb.clientify_client() as clientify:
            clientify.put(
                f"/v1/contacts/{crm_id}/", json={"emails": [{"type": 1, "email": crm_email}]}
            ).raise_for_status()
        return inv_id, crm_id, inv_email, crm_email


class Chromium:
    """Debian's headless Chromium on a DevTools port, one page, driven over a websocket."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise LiveAirflowError("chromium is not installed (scripts/ensure-debian-packages.sh chromium)")
        self.profile = Path(tempfile.mkdtemp(prefix="clientify-sync-chromium-"))
        port = free_ports(1)[0]
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", f"--remote-debugging-port={port}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        page = None
        while page is None:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                page = next((t for t in targets if t["type"] == "page"), None)
            except (httpx.TransportError, ValueError):
                pass
            if page is None:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise LiveAirflowError("chromium did not open its DevTools port")
                time.sleep(0.2)
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.resize(width, height)

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """One DevTools command; events arriving meanwhile are dropped."""
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise LiveAirflowError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value (awaited when it is a promise)."""
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise LiveAirflowError(
                f"script failed: {result['exceptionDetails'].get('text')}: {expression[:200]}"
            )
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def wait_for(self, condition: str, timeout: float = 30) -> Any:
        """Poll a JavaScript condition until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(
                    f"(() => {{ try {{ return {condition}; }} catch (e) {{ return null; }} }})()"
                )
            except LiveAirflowError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise LiveAirflowError(f"timed out waiting for: {condition}")
            time.sleep(0.2)

    def resize(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip

    def color_scheme(self, scheme: str) -> None:
        self.send(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )

    def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1})  # fmt: skip
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        path.write_bytes(base64.b64decode(data))

    def login(self, base_url: str, username: str, password: str) -> None:
        """Airflow's own login form (the simple auth manager's page), typed in as a person would."""
        self.goto(f"{base_url}/auth/login")
        self.wait_for("document.querySelector('input[name=password]') !== null", timeout=60)
        for name, value in (("username", username), ("password", password)):
            self.evaluate(f"document.querySelector('input[name={name}]').focus()")
            self.send("Input.insertText", {"text": value})
        self.wait_for("!document.querySelector('button[type=submit]').disabled")
        self.evaluate("document.querySelector('button[type=submit]').click()")
        self.wait_for("!location.pathname.startsWith('/auth/')", timeout=60)

    def frame_text(self, selector: str = "body") -> str | None:
        """Visible text inside the page's plugin iframe (same origin), None until it has loaded."""
        return self.evaluate(
            "(() => { const f = document.querySelector('iframe'); const d = f && f.contentDocument;"
            f" const e = d && d.readyState === 'complete' && d.querySelector({json.dumps(selector)});"
            " return e ? e.innerText : null; })()"
        )
