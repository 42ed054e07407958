"""What the webhook tests share: a ledger, a fake clock that drives ``InboxTrigger.run()`` without sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from clientify_sync.engine.ledger import create_ledger_engine, upgrade_schema
from clientify_sync.webhooks.trigger import InboxTrigger


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_ledger_engine(f"sqlite:///{tmp_path}/ledger.db")
    upgrade_schema(made)
    yield made
    made.dispose()


class Horizon(Exception):
    """The fake clock reached the end of the scenario."""


class FakeClock:
    """Seconds that pass only when the trigger sleeps; ``on_tick(now)`` runs after each step (deliveries
    arriving meanwhile), and sleeping past ``stop_at`` ends the scenario."""

    def __init__(self, stop_at: float, on_tick: Callable[[float], Any] | None = None) -> None:
        self.t = 0.0
        self.stop_at = stop_at
        self.on_tick = on_tick
        self.slept = 0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.slept += 1
        if self.t > self.stop_at:
            raise Horizon
        if self.on_tick is not None:
            self.on_tick(self.t)


async def drive(trigger: InboxTrigger) -> list[tuple[float, dict[str, Any]]]:
    """Every (fake time, payload) the trigger fires until its clock's horizon."""
    fired = []
    run = trigger.run()
    try:
        while True:
            event = await run.__anext__()
            fired.append((trigger.clock.now(), event.payload))
    except Horizon:
        pass
    finally:
        await run.aclose()
    return fired
