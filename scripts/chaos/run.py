"""``make chaos``: the fault checks of tests/chaos on real deployments (docs/reliability.md).

Installs PostgreSQL and Redis when missing (``scripts/ensure-debian-packages.sh``), then runs the
LocalExecutor checks (tests/chaos/test_local.py) and the CeleryExecutor checks (test_celery.py) as two
pytest processes at once, each on its own stack, with ``CHAOS_RUN=1``, under one throwaway root.
Most of a check's time is waiting (sandbox latency, Airflow's retry delay, a minute's outage), so the
two deployments share the two cores without slowing each other much; ``CHAOS_PARALLEL=0`` runs them
one after the other. Each output line is prefixed with its executor.

Whatever happens, every process group a stack recorded (``<dir>/pgids``) is ended, then the root is
removed unless ``E2E_KEEP=1``. Extra arguments go to both pytest runs (e.g. ``-k zombie``). The merged
results table is printed last (and written as JSON to ``$CHAOS_RESULTS`` when set).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = {"local": "tests/chaos/test_local.py", "celery": "tests/chaos/test_celery.py"}
COLUMNS = (
    "check",
    "executor",
    "faulted_run",
    "converge_s",
    "duplicates_after_fault",
    "duplicates",
    "lost_edits",
    "pairs_differing",
    "unconfirmed_open",
    "passed",
)
GRACE_S = 2.0


def end_recorded_groups(root: Path) -> None:
    """TERM, then KILL, every process group a stack under ``root`` wrote down (the net for a killed pytest)."""
    groups = [int(line) for f in root.glob("*/pgids") for line in f.read_text().split() if line.strip()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        if sig == signal.SIGTERM and groups:
            time.sleep(GRACE_S)


def _relay(name: str, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        print(f"[{name}] {line}", end="", flush=True)


def start(
    name: str, modules: list[str], root: Path, timeout: str
) -> tuple[subprocess.Popen[str], threading.Thread]:
    env = {
        **os.environ,
        "E2E_ROOT": str(root),
        "CHAOS_RUN": "1",
        "PYTHONUNBUFFERED": "1",
        "CHAOS_RESULTS": str(root / f"results-{name}.json"),
    }
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-s",
        "-rA",
        "--timeout",
        timeout,
        *modules,
        *sys.argv[1:],
    ]
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    relay = threading.Thread(target=_relay, args=(name, process), daemon=True)
    relay.start()
    return process, relay


def table(root: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name in MODULES:
        path = root / f"results-{name}.json"
        if path.exists():
            rows += json.loads(path.read_text())
    return rows


def main() -> int:
    packages = subprocess.run(
        [str(ROOT / "scripts" / "ensure-debian-packages.sh"), "postgresql", "redis-server"]
    )
    if packages.returncode != 0:
        print(
            f"!!! make chaos FAILED: PostgreSQL/Redis missing and not installable (exit {packages.returncode});"
            " the chaos checks did NOT run",
            file=sys.stderr,
        )
        return 1
    root = Path(tempfile.mkdtemp(prefix="clientify-chaos."))
    root.chmod(0o755)  # PostgreSQL runs as another user and must reach its data directory below
    timeout = os.environ.get("CHAOS_TIMEOUT_S", "1800")
    if os.environ.get("CHAOS_PARALLEL", "1") == "0":
        batches = [{"all": list(MODULES.values())}]
    else:
        batches = [{name: [module] for name, module in MODULES.items()}]
    started = time.monotonic()
    running: list[subprocess.Popen[str]] = []

    def forward(signum: int, _frame: object) -> None:
        for process in running:  # pytest stops its stacks, then this process cleans up
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    try:
        for batch in batches:
            pairs = [start(name, modules, root, timeout) for name, modules in batch.items()]
            running[:] = [process for process, _ in pairs]
            for process, relay in pairs:
                codes.append(process.wait())
                relay.join(timeout=10)
    finally:
        end_recorded_groups(root)
        rows = table(root)
        if rows:
            print("\nchaos results (docs/reliability.md):\n" + " | ".join(COLUMNS))
            for row in rows:
                print(" | ".join(str(row.get(c)) for c in COLUMNS))
        if target := os.environ.get("CHAOS_RESULTS"):
            Path(target).write_text(json.dumps(rows, indent=1))
        if os.environ.get("E2E_KEEP") == "1":
            print(f"chaos: kept {root} (E2E_KEEP=1)", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    # 5 is pytest's "no tests collected": a -k that selects checks of one stack only leaves the other empty.
    ran = [code for code in codes if code != 5]
    rc = max(ran, default=5)
    print(f"make chaos: pytest exited {codes} after {time.monotonic() - started:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
