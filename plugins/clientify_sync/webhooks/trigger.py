"""``InboxTrigger``: wakes an entity's DAG when webhook events wait in its inbox, debounced.

Runs on the triggerer as an ``AssetWatcher`` of the DAG's inbox asset; every ``TriggerEvent`` it
yields becomes an asset event (a wake-up signal only: the woken run claims whatever is pending,
whichever events woke it). It polls the ledger every ``poll_s`` in a worker thread (the triggerer's
event loop is never blocked) and fires when pending rows newer than the last signalled id exist and
either no newer row appeared for ``quiet_s`` (a burst has ended) or ``max_wait_s`` passed since the
first of them was seen (a burst that never ends still runs). A burst of a thousand deliveries is one
or two firings. It fires again (``resignal_s``) when rows it already signalled are still pending that
long later: a signal Airflow dropped (apache/airflow#56050) costs minutes, not the clock's hour.

The last signalled id survives a restart: in the asset's state store (Airflow 3.3) when the triggerer
provides one, else in the ledger's ``cs_meta``. Times come from ``clock`` (injectable: tests drive
``run()`` on a fake one, without sleeping).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from sqlalchemy.engine import Engine

from clientify_sync.engine.ledger import create_ledger_engine, upgrade_schema
from clientify_sync.engine.ledger.inbox import Inbox, Waiting
from clientify_sync.engine.ledger.meta import Meta

log = logging.getLogger(__name__)

STATE_KEY = "inbox_last_signalled_id"


class Clock(Protocol):
    """Where the trigger reads the time and waits."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The monotonic clock and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class InboxTrigger(BaseEventTrigger):
    """Fire when an inbox (integration, entity) has new pending rows and the burst settled (or waited long).

    Args:
        integration: the platform whose DAG consumes the inbox (``facturama``, ``facturadirecta``).
        entity: ``contacts``, ``products`` or ``estimates``.
        poll_s: seconds between two reads of the inbox.
        quiet_s: fire once no newer row appeared for this long.
        max_wait_s: fire at the latest this long after the first unsignalled row was seen.
        resignal_s: fire again when signalled rows are still pending this long after the last firing
            (0: never).

    The defaults (2 s, 5 s, 15 s) keep the wait short beside a run's own time: the e2e latency phase
    measured p95 61–100 s with 10 s / 40 s, most of it the 40 s a steady stream of edits always waited
    (it never goes quiet). A run woken more often costs only the records its events name.
        state_conn_id: the ledger's connection (``StateLedgerHook``); its URL never enters the
            serialized kwargs.
    """

    clock: Clock = SystemClock()

    def __init__(
        self, *, integration: str, entity: str, poll_s: float = 2.0, quiet_s: float = 5.0, max_wait_s: float = 15.0,
        resignal_s: float = 300.0, state_conn_id: str = "clientify_sync_state", **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        if not 0 < poll_s <= quiet_s <= max_wait_s:
            raise ValueError("InboxTrigger needs 0 < poll_s <= quiet_s <= max_wait_s")
        self.integration = integration
        self.entity = entity
        self.poll_s = poll_s
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.resignal_s = resignal_s
        self.state_conn_id = state_conn_id
        self.engine: Engine | None = None  # set by tests; otherwise opened from the connection on first poll

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "integration": self.integration,
                "entity": self.entity,
                "poll_s": self.poll_s,
                "quiet_s": self.quiet_s,
                "max_wait_s": self.max_wait_s,
                "resignal_s": self.resignal_s,
                "state_conn_id": self.state_conn_id,
            },
        )

    # -- the ledger, always from a worker thread ---------------------------------------------------------

    def _inbox(self) -> Inbox:
        if self.engine is None:
            from clientify_sync.hooks.state import StateLedgerHook

            engine = create_ledger_engine(StateLedgerHook(self.state_conn_id).get_url())
            upgrade_schema(engine)
            self.engine = engine
        return Inbox(self.engine, self.integration, self.entity)

    def _meta_key(self) -> str:
        return f"inbox:{self.integration}:{self.entity}:last_signalled_id"

    def _poll(self, after_id: int) -> tuple[Waiting, bool]:
        """New pending rows after ``after_id``, and whether any older (signalled) row is still pending."""
        inbox = self._inbox()
        fresh = inbox.waiting(after_id)
        stale = inbox.waiting(0, upto_id=after_id).pending > 0 if after_id else False
        return fresh, stale

    async def _load_state(self) -> int:
        if self.asset_state_store is not None:
            try:
                value = await self.asset_state_store.aget(STATE_KEY, None)
                return int(value or 0)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - the ledger keeps it instead
                log.warning("asset state store unavailable (%s): the ledger keeps the inbox position", error)
        value = await asyncio.to_thread(lambda: Meta(self._inbox().engine).get(self._meta_key()))
        return int(value or 0)

    async def _save_state(self, last_id: int) -> None:
        if self.asset_state_store is not None:
            try:
                await self.asset_state_store.aset(STATE_KEY, last_id)
                return
            except Exception as error:  # noqa: BLE001
                log.warning("asset state store unavailable (%s): the ledger keeps the inbox position", error)
        await asyncio.to_thread(lambda: Meta(self._inbox().engine).set(self._meta_key(), str(last_id)))

    # -- the loop ----------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll, debounce, fire; forever (the triggerer cancels it when the DAG goes away)."""
        clock = self.clock
        last_id = await self._load_state()
        last_fired = clock.now()
        first_seen: float | None = None  # when the oldest unsignalled row was first seen
        last_change = 0.0  # when the newest unsignalled id last grew
        seen_max = last_id
        while True:
            try:
                fresh, stale = await asyncio.to_thread(self._poll, last_id)
            except Exception as error:  # noqa: BLE001 - a ledger outage delays the wake-up; the clock run covers it
                log.warning(
                    "inbox %s/%s unreadable (%s); polling on",
                    self.integration,
                    self.entity,
                    type(error).__name__,
                )
                fresh, stale = Waiting(0, 0), False
            now = clock.now()
            reason = None
            if fresh.max_id > last_id:
                if first_seen is None:
                    first_seen = now
                if fresh.max_id != seen_max:
                    seen_max, last_change = fresh.max_id, now
                if now - last_change >= self.quiet_s:
                    reason = "quiet"
                elif now - first_seen >= self.max_wait_s:
                    reason = "max_wait"
            elif stale and self.resignal_s and now - last_fired >= self.resignal_s:
                reason = "resignal"
            if reason is None:
                await clock.sleep(self.poll_s)
                continue
            last_id = seen_max = max(fresh.max_id, last_id)
            new = fresh.pending if reason != "resignal" else 0
            last_fired, first_seen = now, None
            log.info("inbox %s/%s: waking the DAG (%s, %s new, up to id %s)", self.integration, self.entity,
                     reason, new, last_id)  # fmt: skip
            payload = {
                "integration": self.integration,
                "entity": self.entity,
                "max_id": last_id,
                "new": new,
                "reason": reason,
            }
            yield TriggerEvent(payload)  # type: ignore[no-untyped-call]
            # Remembered once the triggerer has the event: a crash in between signals again (harmless).
            await self._save_state(last_id)
