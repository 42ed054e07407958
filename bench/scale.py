"""One scale run — one invoicing platform at one customer count — in a fresh process.

The parent (``run_scale``) pickles the sandbox's URLs and the run's settings, starts
``python -m bench.scale JOB OUT`` and waits; the child seeds the sandbox, runs our scenarios (1 full,
2 idle, 2b, 3 after 1% edits at the flat latency, then 2r and 3r at the modified profile) against a
ledger of its own and pickles the results back. A fresh process per run makes its CPU time and peak
RSS its own: a long process's heap never shrinks back, so a 100k run after a 10k one would carry it.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.sandbox import SandboxHandle, seed_world
from bench.scenarios import ScenarioResult, run_ours
from bench.version import code_version
from clientify_sync.engine.vocabulary import Platform

ROOT = Path(__file__).resolve().parents[1]
SCALE_TIMEOUT_S = 4 * 3600  # a 100k full sync at 20 ms is tens of minutes on two shared cores


def size_label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


@dataclass
class ScaleRun:
    platform: Platform
    clients: int
    seeded: dict[str, Any]
    scenarios: list[ScenarioResult]
    wall_s: float = 0.0
    git_commit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    api: str = "classic"  # "rest": FacturaDirecta's REST API

    @property
    def label(self) -> str:
        return f"{self.platform.value}{'-rest' if self.api == 'rest' else ''} {size_label(self.clients)}"

    @property
    def peak_rss_mb(self) -> float:
        """The run's peak RSS: the highest of its scenarios' (the sync's process total, not a delta)."""
        return max((float(s.rss["peak_rss_mb"]) for s in self.scenarios), default=0.0)

    @property
    def peak_step(self) -> str | None:
        """Where the peak was: ``scenario platform/entity/step`` of the highest marked step, if marked."""
        steps = [
            (mb, f"{s.name} {step}")
            for s in self.scenarios
            for step, mb in s.rss.get("step_peak_rss_mb", {}).items()
        ]
        return max(steps)[1] if steps else None

    def scenario(self, name: str) -> ScenarioResult | None:
        return next((s for s in self.scenarios if s.name == name), None)


def run_scale(handle: SandboxHandle, cfg: BenchConfig, platform: Platform, size: int) -> ScaleRun:
    """Run one (platform, size) in a child process against ``handle``'s sandbox; return its results."""
    run_cfg = cfg.for_run(platform, size)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        job, out = Path(tmp) / "job.pickle", Path(tmp) / "result.pickle"
        pid = handle.process.pid if handle.process is not None else None
        payload = {"urls": (handle.facturama_url, handle.clientify_url, handle.facturadirecta_url),
                   "sandbox_pid": pid, "cfg": run_cfg, "ledger": f"sqlite:///{tmp}/ledger.db"}  # fmt: skip
        job.write_bytes(pickle.dumps(payload))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
        done = subprocess.run([sys.executable, "-m", "bench.scale", str(job), str(out)], cwd=ROOT, env=env,
                              timeout=SCALE_TIMEOUT_S, check=False)  # fmt: skip
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"scale run {platform.value} {size} failed (exit {done.returncode}); see its output above"
            )
        result: ScaleRun = pickle.loads(out.read_bytes())
    return result


def _child(job_path: str, out_path: str) -> None:
    # Per-record failure warnings (FacturaDirecta estimates whose VAT rounding Clientify cannot show) would
    # flood the output; the reports count them and each scenario's line prints the total.
    logging.getLogger("clientify_sync").setLevel(logging.ERROR)
    job = pickle.loads(Path(job_path).read_bytes())
    cfg: BenchConfig = job["cfg"]
    handle = SandboxHandle(*job["urls"])
    handle.sandbox_pid = job["sandbox_pid"]  # type: ignore[attr-defined]  # CPU of the sandbox per scenario
    started, version = time.perf_counter(), code_version()  # the commit this process imported
    try:
        seeded = seed_world(handle, cfg)
        print(f"bench: {cfg.platforms[0].value} {cfg.clients}: seeded {seeded}", flush=True)
        scenarios = run_ours(handle, cfg, job["ledger"])
    finally:
        handle.http.close()
    run = ScaleRun(cfg.platforms[0], cfg.clients, seeded, scenarios, round(time.perf_counter() - started, 1),
                   version["git_commit"], api=cfg.api_of(cfg.platforms[0]))  # fmt: skip
    Path(out_path).write_bytes(pickle.dumps(run))


if __name__ == "__main__":
    from bench.scale import _child as child  # ScaleRun must pickle as bench.scale's, not __main__'s

    child(sys.argv[1], sys.argv[2])
