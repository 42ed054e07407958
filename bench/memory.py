"""The streaming check: peak RSS of a FULL-mode DRY-RUN contacts sync (extract + reconcile, no writes,
no latency) at growing sizes, each in a fresh process so that one size's heap cannot hide another's.

Parent side: ``measure_memory`` seeds a sandbox (Clientify overlap as in the scenarios) and runs
``python -m bench.memory`` per size. Child side: builds the clients, samples its own RSS before the
sync (the baseline: interpreter, pandas, SQLAlchemy, clients) and during it, step by step (every DAG
step, the dry-run apply and commit included, as the DAG runs them), and prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.engine import ApiClients, EngineDriver
from bench.sampler import RssSampler
from bench.sandbox import SandboxHandle, read_calls, seed_world
from bench.version import code_version
from clientify_sync.engine.vocabulary import Entity, Mode, Platform, SyncOptions

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 900


def measure_memory(handle: SandboxHandle, cfg: BenchConfig) -> list[dict[str, Any]]:
    results = []
    platform = cfg.platforms[0]
    for size in cfg.memory_sizes:
        seeded = seed_world(handle, cfg, clients=size, catalogue=False, latency=False)
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            command = [sys.executable, "-m", "bench.memory", "--platform", platform.value,
                       "--facturama-url", handle.facturama_url, "--clientify-url", handle.clientify_url,
                       "--facturadirecta-url", handle.facturadirecta_url, "--ledger", f"{tmp}/ledger.db",
                       "--concurrency", str(cfg.concurrency)]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT_S, check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"memory probe at {size} clients failed:\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        calls = read_calls(handle)
        result.update(clients=size, seeded=seeded, calls=calls.nested())
        results.append(result)
        print(f"  memory {size} clients: peak {result['peak_rss_mb']} MB (baseline {result['baseline_rss_mb']} MB, "
              f"delta {result['delta_rss_mb']} MB), {result['wall_s']} s", flush=True)  # fmt: skip
    return results


def _probe(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    for name in ("platform", "facturama-url", "clientify-url", "facturadirecta-url", "ledger"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    version = code_version()
    handle = SandboxHandle(args.facturama_url, args.clientify_url, args.facturadirecta_url)
    clients = ApiClients.for_sandbox(handle, args.concurrency)
    driver = EngineDriver(Platform(args.platform), clients, f"sqlite:///{args.ledger}", SyncOptions())
    gc.collect()
    try:
        with RssSampler() as rss:
            report = driver.sync(Entity.CONTACTS, Mode.FULL, dry_run=True, after_step=rss.mark)
    finally:
        clients.close()
        handle.http.close()
    return {**rss.as_dict(), "step_seconds": report["step_seconds"],
            "counts": report["counts"], "matched": report["matched"], "git_commit": version["git_commit"]}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(_probe()))
