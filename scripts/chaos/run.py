"""``make chaos``: the fault checks of tests/chaos on real deployments (docs/reliability.md).

Installs PostgreSQL and Redis when missing (``scripts/ensure-debian-packages.sh``), runs pytest on
tests/chaos with ``CHAOS_RUN=1`` under one throwaway root, and whatever happens ends every process
group the harness recorded there (``<dir>/pgids``), then removes the root unless ``E2E_KEEP=1``.
Extra arguments go to pytest (e.g. ``-k zombie``). The results table is also written as JSON to
``$CHAOS_RESULTS`` (default ``<root>/chaos-results.json``, kept with E2E_KEEP=1).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def main() -> int:
    packages = subprocess.run([str(ROOT / "scripts" / "ensure-debian-packages.sh"), "postgresql", "redis-server"])
    if packages.returncode != 0:
        print(f"!!! make chaos FAILED: PostgreSQL/Redis missing and not installable (exit {packages.returncode});"
              " the chaos checks did NOT run", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="clientify-chaos."))
    root.chmod(0o755)  # PostgreSQL runs as another user and must reach its data directory below
    env = {**os.environ, "E2E_ROOT": str(root), "CHAOS_RUN": "1",
           "CHAOS_RESULTS": os.environ.get("CHAOS_RESULTS", str(root / "chaos-results.json"))}
    timeout = os.environ.get("CHAOS_TIMEOUT_S", "2400")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "-rA", "--timeout", timeout,
           str(ROOT / "tests" / "chaos"), *sys.argv[1:]]
    started = time.monotonic()
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signal.SIGTERM)  # pytest stops its stacks, then this process cleans up

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        rc = process.wait()
    finally:
        end_recorded_groups(root)
        if os.environ.get("E2E_KEEP") == "1":
            print(f"chaos: kept {root} (E2E_KEEP=1)", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"make chaos: pytest exited {rc} after {time.monotonic() - started:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
