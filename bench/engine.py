"""The sync driven like the DAG runs it, without Airflow: the steps in the DAG's order (its two
extracts at once), the watermark carried from run to run as the XCom would carry it.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import (
    ClientifySettings,
    FacturaDirectaRestSettings,
    FacturaDirectaSettings,
    FacturamaSettings,
    facturadirecta_settings_from_connection,
)
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
    facturadirecta: FacturaDirectaClient | FacturaDirectaRestClient

    @classmethod
    def for_sandbox(cls, handle: SandboxHandle, concurrency: int, fd_api: str = "classic") -> ApiClients:
        """``fd_api``: ``rest`` gives a FacturaDirecta REST client (the sandbox's company and key, the top
        plan's budget until the emulator's rate-limit headers set it)."""
        extra = {"concurrency": concurrency}
        fm = FacturamaSettings.from_connection(host=handle.facturama_url, login=handle.facturama_user,
                                               password=handle.facturama_password, extra=extra)  # fmt: skip
        cf = ClientifySettings.from_connection(host=handle.clientify_url, login=None,
                                               password=handle.clientify_token, extra=extra)  # fmt: skip
        fd = FacturaDirectaSettings.from_connection(host=handle.facturadirecta_url, login=None,
                                                    password=handle.facturadirecta_token, extra=extra)  # fmt: skip
        if fd_api == "rest":
            return cls(
                FacturamaClient(fm),
                ClientifyClient(cf),
                FacturaDirectaRestClient(rest_settings(handle, concurrency)),
            )
        return cls(FacturamaClient(fm), ClientifyClient(cf), FacturaDirectaClient(fd))

    def invoicing(self, platform: Platform) -> Any:
        return self.facturama if platform is Platform.FACTURAMA else self.facturadirecta

    def close(self) -> None:
        for client in (self.facturama, self.clientify, self.facturadirecta):
            client.close()


def rest_settings(handle: SandboxHandle, concurrency: int) -> FacturaDirectaRestSettings:
    """The sandbox's REST company as a connection with ``api: rest`` gives it (plan diamante: no client cap)."""
    cfg = handle.config("facturadirecta")
    settings = facturadirecta_settings_from_connection(
        host=handle.facturadirecta_url, login=None, password=cfg["rest_api_key"],
        extra={"api": "rest", "company_id": cfg["rest_company_id"], "plan": "diamante", "concurrency": concurrency},
    )  # fmt: skip
    assert isinstance(settings, FacturaDirectaRestSettings)
    return settings


@dataclass
class EngineDriver:
    """One integration's syncs against one ledger; remembers each entity's watermark between runs."""

    platform: Platform
    clients: ApiClients
    ledger_url: str
    options: SyncOptions
    watermarks: dict[Entity, str | None] = field(default_factory=dict)

    def sync(
        self,
        entity: Entity,
        mode: Mode,
        *,
        dry_run: bool = False,
        after_step: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Every step in DAG order; returns the run report with ``step_seconds`` added (where the time
        went), calling ``after_step(name)`` after each phase.

        The two extracts run at once, as the DAG runs them (neither waits for the other there): each in
        its own job on its own thread, as each DAG task opens its own. Their phase is marked
        ``extract_invoicing+extract_clientify``.
        """
        spec = JobSpec(self.platform, entity, f"bench-{next(_run_numbers)}", mode, dry_run)
        previous = None if mode is Mode.FULL else self.watermarks.get(entity)
        timings: dict[str, float] = {}
        open_job = functools.partial(SyncJob.open, spec, invoicing=self.clients.invoicing(self.platform),
                                     clientify=self.clients.clientify, ledger_url=self.ledger_url,
                                     options=self.options)  # fmt: skip
        job = open_job()
        # The two extract jobs share one directory: in this one process, the DAG would hold one per task.
        open_job = functools.partial(open_job, directory=job.directory)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract-clientify") as pool:
                clientify = pool.submit(_extract_clientify, open_job, previous)
                started = time.perf_counter()
                job.extract_invoicing()
                timings["extract_invoicing"] = round(time.perf_counter() - started, 2)
                seen_max, timings["extract_clientify"] = clientify.result()
            _phase_done(after_step, "+".join(STEPS[:2]))
            for step in STEPS[2:]:
                started = time.perf_counter()
                getattr(job, step)()
                timings[step] = round(time.perf_counter() - started, 2)
                _phase_done(after_step, step)
            started = time.perf_counter()
            report = job.commit(previous, seen_max)
            timings["commit"] = round(time.perf_counter() - started, 2)
            _phase_done(after_step, "commit")
        finally:
            job.close()
        if not dry_run:
            self.watermarks[entity] = report["watermark_out"]
        return {**report, "step_seconds": timings}


def _extract_clientify(open_job: Callable[[], SyncJob], previous: str | None) -> tuple[str | None, float]:
    """The ``extract_clientify`` task: its own job; the newest ``modified`` it saw, and its seconds."""
    started = time.perf_counter()
    job = open_job()
    try:
        return job.extract_clientify(previous)["max_modified"], round(time.perf_counter() - started, 2)
    finally:
        job.close()


def _phase_done(after_step: Callable[[str], None] | None, name: str) -> None:
    if after_step is not None:
        after_step(name)
