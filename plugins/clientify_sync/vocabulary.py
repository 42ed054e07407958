"""The words every layer shares, defined once: platforms, entities, modes, sides, and what a run is.

The engine, integrations, the DAG factory, the watermark rules, the demo, the bench and the status
view import these; nothing else defines a platform, entity, mode or side, as a string or otherwise.
It sits at the bottom of the package (it imports nothing of it), so any layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


class Platform(StrEnum):
    """The invoicing platforms Clientify is kept in step with."""

    FACTURAMA = "facturama"
    FACTURADIRECTA = "facturadirecta"


class Entity(StrEnum):
    """What is synced; one DAG per entity and platform."""

    CONTACTS = "contacts"
    PRODUCTS = "products"
    ESTIMATES = "estimates"


class Mode(StrEnum):
    """``full`` reconciles every record; ``modified`` only what changed since the last run; ``events``
    (a run woken by webhook events, never chosen by hand) only the Clientify records the events name,
    leaving the watermark where it was, so the next clock run still covers everything."""

    FULL = "full"
    MODIFIED = "modified"
    EVENTS = "events"


class Side(StrEnum):
    """The two ends of a sync: the invoicing platform and Clientify."""

    INVOICING = "invoicing"
    CLIENTIFY = "clientify"

    @property
    def other(self) -> Side:
        """The opposite side."""
        return Side.CLIENTIFY if self is Side.INVOICING else Side.INVOICING


# The ledger's ``side`` column values, as plain strings for SQL.
INV: str = Side.INVOICING.value
CRM: str = Side.CLIENTIFY.value


@dataclass(frozen=True)
class JobSpec:
    """One run of one entity between one platform and Clientify (a DAG run, or a bench step)."""

    platform: Platform
    entity: Entity
    run_id: str
    mode: Mode = Mode.MODIFIED
    dry_run: bool = False


@dataclass(frozen=True)
class SyncOptions:
    """Engine knobs (the DAG config can override them).

    Attributes:
        lookback: how far before the watermark a modified run re-reads Clientify (API-side delays,
            same-timestamp writes); re-read records that did not change are recognised by hash.
        concurrency: writes in flight; ``None`` takes the connection's own setting.
        dead_letter_limit: how many runs a failed record is retried before it is only reported.
        breaker_limit: consecutive transient write failures that stop the run.
        keep_plans: the runs whose plans the ledger keeps (reports are kept for ever).
        invoicing_wins: per entity, the fields whose conflicts the invoicing side wins (else Clientify).
        rounding_adjustment: an estimate whose target rounds VAT to another total gets a rounding line
            of ours and keeps its total to the cent (``documents.RoundingPolicy``); off, it is refused
            (``totals_not_representable``).
        lease_wait: how long an apply step waits for an earlier try of it that is still writing (a
            zombie, PostgreSQL only) before it fails and leaves the work to the next try or run.
    """

    lookback: timedelta = timedelta(minutes=10)
    concurrency: int | None = None
    dead_letter_limit: int = 5
    breaker_limit: int = 10
    keep_plans: int = 50
    invoicing_wins: dict[Entity, frozenset[str]] = field(default_factory=dict)
    rounding_adjustment: bool = True
    lease_wait: timedelta = timedelta(minutes=10)
