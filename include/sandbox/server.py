"""Runs the three uvicorn servers in one process and one event loop.

uvicorn's own signal capture is per server (the last one installed wins), so it is switched off and
one handler here stops all three together.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Generator
from dataclasses import dataclass, field

import uvicorn

from include.sandbox import fd_rest_webhooks
from include.sandbox.app import build_sandbox
from include.sandbox.config import ApiConfig
from include.sandbox.context import API_NAMES
from include.sandbox.store import Store
from include.sandbox.webhook_hub import hub_for

KEEP_ALIVE_S = 75
DEFAULT_PORTS = {"facturama": 8701, "clientify": 8702, "facturadirecta": 8703}


@dataclass
class Settings:
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    db: str | None = ".sandbox/sandbox.db"  # None: in memory
    latency_ms: float = 0.0
    latency_profile: str = "none"
    latency_scale: float = 1.0
    log_level: str = "warning"
    configs: dict[str, ApiConfig] = field(default_factory=dict)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(settings: Settings) -> None:
    store = Store(settings.db)
    sandbox = build_sandbox(
        store, settings.configs, settings.latency_ms, settings.latency_profile, settings.latency_scale
    )
    webhooks = hub_for(store)  # the webhook delivery worker lives and dies with the servers
    webhooks.start()
    fd_rest_webhooks.resume(sandbox.contexts["facturadirecta"])  # events a previous run left pending
    servers = [
        _Server(
            uvicorn.Config(
                sandbox.apps[name],
                host=settings.host,
                port=settings.ports[name],
                log_level=settings.log_level,
                lifespan="off",
                access_log=settings.log_level in ("debug", "trace"),
                # Idle keep-alive connections stay open like behind a typical proxy (nginx: 75 s), so a client
                # pausing between pages does not race the server closing its pooled connection.
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        for name in API_NAMES
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            stop()
            break
        await asyncio.sleep(0.01)
    else:
        urls = ", ".join(f"{name} http://{settings.host}:{settings.ports[name]}" for name in API_NAMES)
        latency = (
            ""
            if settings.latency_profile == "none"
            else (f", latency profile {settings.latency_profile} x{settings.latency_scale:g}")
        )
        print(f"sandbox ready: {urls} (db: {settings.db or 'memory'}{latency})", flush=True)
    try:
        await asyncio.gather(*tasks)
    finally:
        await asyncio.to_thread(webhooks.stop)
        store.close()
    if not all(server.started for server in servers):
        sys.exit(1)
