"""Screenshot Airflow's add-connection form for each connection type clientify-sync registers.

    .venv/bin/python scripts/provider/connection_screenshots.py                 # build the wheel, fresh venv
    .venv/bin/python scripts/provider/connection_screenshots.py --venv /path    # an Airflow venv with the wheel

Starts ``airflow api-server`` (SimpleAuthManager, one admin with a random password) from that venv in a
throwaway AIRFLOW_HOME on a free loopback port, logs in through ``POST /auth/token``, hands the token to
a headless Debian Chromium (the ``_token`` cookie the login page would set), opens Admin → Connections →
Add Connection, picks each type and saves the dialog as ``docs/connections/<type>.png``. Everything it
starts runs in its own process group and is stopped at the end. Needs ``chromium`` (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"facturama": "Facturama", "clientify": "Clientify", "facturadirecta": "FacturaDirecta"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,3200"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_venv(workdir: Path) -> Path:
    """Build the wheel and install it with apache-airflow 3.3.2 (from the lock) into a new venv."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w",
                    str(workdir / "dist"), str(ROOT)], check=True)  # fmt: skip
    (wheel,) = (workdir / "dist").glob("clientify_sync-*.whl")
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "-c", str(ROOT / "constraints.txt"),
                    "apache-airflow==3.3.2", str(wheel)], check=True)  # fmt: skip
    return venv


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not up after {timeout}s:\n{log.read_text()[-3000:]}")


class Page:
    """The few Chrome DevTools Protocol calls the screenshots need."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def js(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result.get("result", {}).get("value")

    async def click(self, element_js: str) -> None:
        """A real mouse click in the middle of an element (some widgets ignore element.click())."""
        box = await self.js(
            f"(() => {{ const r = ({element_js}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1
            )

    async def save_dialog(self, path: Path) -> Path:
        """Save the open dialog, whole, as a PNG."""
        await asyncio.sleep(1.0)  # the accordion's animation
        rect = await self.js("""(() => { const d = document.querySelector('[role=dialog]'); d.style.maxHeight = 'none';
            const r = d.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: d.scrollHeight}; })()""")
        shot = await self.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip={**rect, "scale": 1}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        print(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {rect['width']:.0f}x{rect['height']:.0f}"
        )
        return path

    async def until(self, expression: str, what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        state = await self.js("location.href + ' | ' + document.body.innerText.slice(0, 300)")
        shot = await self.call("Page.captureScreenshot", format="png")
        Path(tempfile.gettempdir(), "connection-screenshot-failure.png").write_bytes(
            base64.b64decode(shot["data"])
        )
        raise RuntimeError(
            f"timed out waiting for {what} (page: {state!r}; see connection-screenshot-failure.png)"
        )


FIND_TEXT = (
    """(t => [...document.querySelectorAll('button,[role=button]')].find(e => e.textContent.trim() === t))"""
)


async def shoot(cdp_url: str, base_url: str, token: str, out: Path) -> list[Path]:
    shots = []
    async with websockets.connect(cdp_url, max_size=64 * 2**20) as ws:
        page = Page(ws)
        await page.call("Network.enable")
        await page.call("Network.setCookie", name="_token", value=token, url=base_url)
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=1280, height=3200, deviceScaleFactor=1, mobile=False
        )
        for conn_type, label in TYPES.items():
            await page.call("Page.navigate", url=f"{base_url}/connections")
            await page.until(f"!!{FIND_TEXT}('Add Connection')", "the connections page")
            await page.js(f"{FIND_TEXT}('Add Connection').click()")
            await page.until("!!document.querySelector('[role=dialog] input')", "the add-connection dialog")
            await page.js("document.querySelector('[role=dialog] input').focus()")
            await page.call("Input.insertText", text=f"{conn_type}_default")
            # The connection type is a searchable select: type the hook name, pick its option.
            await page.until(
                "!!document.querySelector('[role=dialog] input[role=combobox]')", "the type select"
            )
            await page.js("document.querySelector('[role=dialog] input[role=combobox]').focus()")
            await page.call("Input.insertText", text=label)
            await page.until(f"[...document.querySelectorAll('[role=option]')].some(o => o.textContent.trim() === '{label}')",
                             f"the option {label}")  # fmt: skip
            await page.js(
                f"[...document.querySelectorAll('[role=option]')].find(o => o.textContent.trim() === '{label}').click()"
            )
            await page.until("!![...document.querySelectorAll('[role=dialog] label')].find(l => /API/.test(l.textContent))",
                             "the relabelled fields")  # fmt: skip
            # The standard fields (labels, placeholders, hidden schema/port), then the generated extras
            # (one accordion section is open at a time).
            shots.append(await page.save_dialog(out / f"{conn_type}.png"))
            await page.click(f"{FIND_TEXT}('Extra Fields')")
            await page.until("[...document.querySelectorAll('[role=dialog] label')].some(l => /Page size/.test(l.textContent))",
                             "the generated extra fields")  # fmt: skip
            shots.append(await page.save_dialog(out / f"{conn_type}-extras.png"))
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venv", type=Path, help="an Airflow venv with clientify-sync installed (default: build one)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "connections")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="connection-screenshots-"))
    api = chrome = None
    try:
        venv = args.venv or fresh_venv(workdir)
        port, devtools = free_port(), free_port()
        base_url, password = f"http://127.0.0.1:{port}", secrets.token_urlsafe(16)
        (workdir / "passwords.json").write_text(json.dumps({"admin": password}))
        (workdir / "dags").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
        env.update(AIRFLOW_HOME=str(workdir / "home"), AIRFLOW__CORE__DAGS_FOLDER=str(workdir / "dags"),
                   AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
                   AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(workdir / "passwords.json"),
                   AIRFLOW__CORE__TEST_CONNECTION="Enabled", AIRFLOW__API__BASE_URL=base_url,
                   AIRFLOW__API__PORT=str(port), AIRFLOW__API__HOST="127.0.0.1",
                   AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32))  # fmt: skip
        airflow = str(venv / "bin" / "airflow")
        subprocess.run(
            [airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL, timeout=600
        )
        api = start(
            [airflow, "api-server", "--port", str(port), "--host", "127.0.0.1"], env, workdir / "api.log"
        )
        wait_for(f"{base_url}/api/v2/monitor/health", 180, api, workdir / "api.log")
        token = httpx.post(
            f"{base_url}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        token.raise_for_status()
        chrome = start([args.chromium, *CHROMIUM_FLAGS, f"--remote-debugging-port={devtools}",
                        f"--user-data-dir={workdir / 'chrome'}", "about:blank"], env, workdir / "chrome.log")  # fmt: skip
        wait_for(f"http://127.0.0.1:{devtools}/json/version", 60, chrome, workdir / "chrome.log")
        (target,) = [
            t for t in httpx.get(f"http://127.0.0.1:{devtools}/json/list").json() if t["type"] == "page"
        ][:1]
        args.out.mkdir(parents=True, exist_ok=True)
        asyncio.run(shoot(target["webSocketDebuggerUrl"], base_url, token.json()["access_token"], args.out))
        return 0
    finally:
        stop(chrome)
        stop(api)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
