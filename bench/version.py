"""Which code a run measured: the commit, and uncommitted changes to the engine or the sandbox."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def code_version() -> dict[str, Any]:
    """The commit measured, and any uncommitted change to the engine or the sandbox (the numbers are
    about that code, not about whatever the branch holds later)."""
    return {"git_commit": _git("rev-parse", "HEAD"),
            "uncommitted": _git("status", "--porcelain", "plugins", "include").splitlines()}  # fmt: skip
