"""Engine scenario fixtures: real API clients over loopback HTTP to the sandbox, a real SQLite ledger."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import ClientifySettings, FacturaDirectaSettings, FacturamaSettings
from clientify_sync.engine.job import SyncJob
from clientify_sync.engine.vocabulary import Entity, JobSpec, Mode, Platform, SyncOptions

FAST = {"max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0}
_run_numbers = itertools.count(1)


@dataclass
class World:
    """The three API clients, the ledger URL and a way to run a whole sync like the DAG does."""

    sandbox: Any
    facturama: FacturamaClient
    clientify: ClientifyClient
    facturadirecta: FacturaDirectaClient
    ledger_url: str
    watermarks: dict[tuple[str, str], str | None] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)

    def invoicing(self, platform: Platform) -> Any:
        return self.facturama if platform is Platform.FACTURAMA else self.facturadirecta

    def sync(
        self,
        platform: Platform,
        entity: Entity,
        *,
        mode: Mode = Mode.MODIFIED,
        dry_run: bool = False,
        before_step: Callable[[str, SyncJob], None] | None = None,
        options: SyncOptions | None = None,
    ) -> dict[str, Any]:
        """Run every step in DAG order; the watermark is carried like the XCom would carry it."""
        run_id = f"test-run-{next(_run_numbers)}"
        spec = JobSpec(platform, entity, run_id, mode, dry_run)
        previous = None if mode is Mode.FULL else self.watermarks.get((platform, entity))
        job = SyncJob.open(spec, invoicing=self.invoicing(platform), clientify=self.clientify,
                           ledger_url=self.ledger_url, options=options)  # fmt: skip
        try:
            for step in (
                "extract_invoicing",
                "extract_clientify",
                "reconcile",
                "apply_clientify",
                "apply_invoicing",
            ):
                if before_step:
                    before_step(step, job)
                result = (
                    job.extract_clientify(previous) if step == "extract_clientify" else getattr(job, step)()
                )
                if step == "extract_clientify":
                    seen_max = result["max_modified"]
            report = job.commit(previous, seen_max)
        finally:
            job.close()
        self.watermarks[(platform, entity)] = report["watermark_out"]
        self.reports.append(report)
        return report

    def writes(self, api: str) -> int:
        """POST/PUT/PATCH/DELETE requests the sandbox answered for ``api`` since the last stats reset."""
        snapshot = self.sandbox.stats(api)
        return sum(
            row["count"]
            for row in snapshot["by_route"]
            if row["method"] in ("POST", "PUT", "PATCH", "DELETE")
        )


def make_clients(sandbox: Any, **extra: Any) -> tuple[FacturamaClient, ClientifyClient, FacturaDirectaClient]:
    fm = FacturamaSettings.from_connection(
        host=sandbox.facturama_url, login="sandbox-user", password="sandbox-password-fake", extra=FAST | extra
    )
    cf = ClientifySettings.from_connection(
        host=sandbox.clientify_url, login=None, password="fake-clientify-sandbox-token", extra=FAST | extra
    )
    fd = FacturaDirectaSettings.from_connection(
        host=sandbox.facturadirecta_url, login=None, password="fake-facturadirecta-sandbox-token",
        extra=FAST | extra,
    )  # fmt: skip
    return FacturamaClient(fm), ClientifyClient(cf), FacturaDirectaClient(fd)


@pytest.fixture
def world(clean_sandbox, tmp_path) -> Iterator[World]:
    facturama, clientify, facturadirecta = make_clients(clean_sandbox)
    world = World(clean_sandbox, facturama, clientify, facturadirecta, f"sqlite:///{tmp_path}/ledger.db")
    yield world
    for client in (facturama, clientify, facturadirecta):
        client.close()


PLATFORMS = [
    pytest.param(Platform.FACTURAMA, id="facturama"),
    pytest.param(Platform.FACTURADIRECTA, id="facturadirecta"),
]
