"""The sync driven like the DAG runs it, without Airflow: the steps in order, the watermark carried
from run to run as the XCom would carry it (the same loop as the engine tests' ``World.sync``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import ClientifySettings, FacturaDirectaSettings, FacturamaSettings
from clientify_sync.engine.job import SyncJob
from clientify_sync.engine.vocabulary import Entity, JobSpec, Mode, Platform, SyncOptions
from tests.fixtures.sandbox import SandboxHandle

ENTITIES = (Entity.CONTACTS, Entity.PRODUCTS, Entity.ESTIMATES)  # DAG order: dependencies first
STEPS = ("extract_invoicing", "extract_clientify", "reconcile", "apply_clientify", "apply_invoicing")
_run_numbers = itertools.count(1)


@dataclass
class ApiClients:
    """The project's three API clients, pointed at the sandbox with one ``concurrency`` setting."""

    facturama: FacturamaClient
    clientify: ClientifyClient
    facturadirecta: FacturaDirectaClient

    @classmethod
    def for_sandbox(cls, handle: SandboxHandle, concurrency: int) -> ApiClients:
        extra = {"concurrency": concurrency}
        fm = FacturamaSettings.from_connection(host=handle.facturama_url, login=handle.facturama_user,
                                               password=handle.facturama_password, extra=extra)  # fmt: skip
        cf = ClientifySettings.from_connection(host=handle.clientify_url, login=None,
                                               password=handle.clientify_token, extra=extra)  # fmt: skip
        fd = FacturaDirectaSettings.from_connection(host=handle.facturadirecta_url, login=None,
                                                    password=handle.facturadirecta_token, extra=extra)  # fmt: skip
        return cls(FacturamaClient(fm), ClientifyClient(cf), FacturaDirectaClient(fd))

    def invoicing(self, platform: Platform) -> Any:
        return self.facturama if platform is Platform.FACTURAMA else self.facturadirecta

    def close(self) -> None:
        for client in (self.facturama, self.clientify, self.facturadirecta):
            client.close()


@dataclass
class EngineDriver:
    """One integration's syncs against one ledger; remembers each entity's watermark between runs."""

    platform: Platform
    clients: ApiClients
    ledger_url: str
    options: SyncOptions
    watermarks: dict[Entity, str | None] = field(default_factory=dict)

    def sync(
        self, entity: Entity, mode: Mode, *, dry_run: bool = False, after_step: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Every step in DAG order; returns the run report with ``step_seconds`` added (where the time
        went), calling ``after_step(name)`` after each step."""
        spec = JobSpec(self.platform, entity, f"bench-{next(_run_numbers)}", mode, dry_run)
        previous = None if mode is Mode.FULL else self.watermarks.get(entity)
        timings: dict[str, float] = {}
        job = SyncJob.open(spec, invoicing=self.clients.invoicing(self.platform), clientify=self.clients.clientify,
                           ledger_url=self.ledger_url, options=self.options)  # fmt: skip
        try:
            seen_max = None
            for step in (*STEPS, "commit"):
                started = time.perf_counter()
                if step == "extract_clientify":
                    seen_max = job.extract_clientify(previous)["max_modified"]
                elif step == "commit":
                    report = job.commit(previous, seen_max)
                else:
                    getattr(job, step)()
                timings[step] = round(time.perf_counter() - started, 2)
                if after_step is not None:
                    after_step(step)
        finally:
            job.close()
        if not dry_run:
            self.watermarks[entity] = report["watermark_out"]
        return {**report, "step_seconds": timings}
