"""Screenshots of every status-view page, from a real Airflow, into ``docs/ui/*.png``.

    .venv/bin/python scripts/ui/screenshots.py [--out docs/ui]

Starts the same set-up as ``tests/ui/test_live_ui.py`` (``airflow standalone``, the sandbox with the
duplicate tax ID, the ``<script>`` name, a failing record and a conflict, three DAG runs through the
REST API), logs in with headless Chromium and saves each page, light and dark. About three minutes;
everything it starts is stopped at the end. Needs Debian's ``chromium`` (installed when missing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "plugins"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.ui.live import DUP_RFC, Chromium, LiveAirflow  # noqa: E402

FRAME = "document.querySelector('iframe').contentDocument"


def _in_airflow(browser: Chromium, url: str, ready: str) -> None:
    browser.goto(url)
    browser.wait_for(
        f"!!({FRAME} && {FRAME}.readyState === 'complete' && {FRAME}.querySelector({ready!r}))", 60
    )
    time.sleep(1.0)  # Airflow's own panels finish rendering around the frame


def _page(browser: Chromium, url: str, ready: str) -> None:
    browser.goto(url)
    browser.wait_for(f"!!document.querySelector({ready!r})", 60)


def _theme(browser: Chromium, base_url: str, scheme: str) -> None:
    """Airflow's colour mode (its stored choice, as its own toggle sets it) and the OS preference."""
    browser.goto(f"{base_url}/clientify-sync/")
    browser.evaluate(f"localStorage.setItem('theme', {scheme!r})")
    browser.color_scheme(scheme)


def take(out: Path) -> list[Path]:
    """Run the scenario and write the screenshots; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with LiveAirflow() as airflow:
        scenario = airflow.scenario()
        run_id = quote(scenario.runs["facturama_modified"]["dag_run_id"], safe="")
        inv_id = scenario.conflict[0]
        base = airflow.url
        with Chromium(width=1440, height=1000) as browser:
            browser.login(base, "admin", airflow.passwords["admin"])
            for scheme in ("light", "dark"):
                suffix = "" if scheme == "light" else "-dark"
                _theme(browser, base, scheme)
                shots = [
                    ("overview", lambda: _in_airflow(browser, f"{base}/plugin/clientify-sync", "tr[data-dag]"), False),
                    ("run-tab", lambda: _in_airflow(
                        browser, f"{base}/dags/facturama_contacts/runs/{run_id}/plugin/clientify-sync-run", "#items"),
                     False),
                    ("run", lambda: _page(browser, f"{base}/clientify-sync/runs/facturama_contacts/{run_id}", "#items"),
                     True),
                    ("records", lambda: _page(browser, f"{base}/clientify-sync/records?q={DUP_RFC}", "#results"), True),
                    ("record", lambda: _page(
                        browser, f"{base}/clientify-sync/records/facturama_contacts/invoicing/client/{inv_id}",
                        "#history"), True),
                    ("conflicts", lambda: _page(browser, f"{base}/clientify-sync/conflicts", "#conflicts"), True),
                    ("dead-letters", lambda: _page(browser, f"{base}/clientify-sync/dead-letters", "#dead-letters"),
                     True),
                ]  # fmt: skip
                for name, open_page, full_page in shots:
                    if scheme == "dark" and name not in ("overview", "run-tab", "record"):
                        continue
                    open_page()
                    path = out / f"{name}{suffix}.png"
                    browser.screenshot(path, full_page=full_page)
                    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui", help="where the PNGs go (docs/ui)")
    args = parser.parse_args(argv)
    installed = subprocess.run([str(ROOT / "scripts" / "ensure-debian-packages.sh"), "chromium"], check=False)
    if installed.returncode != 0:
        print("chromium is missing and could not be installed", file=sys.stderr)
        return 2
    for path in take(args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
