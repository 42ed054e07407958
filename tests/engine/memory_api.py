"""The API clients as the engine sees them, in memory: what ``build_sides`` and ``SyncJob`` call, no more.

Each resource keeps its records in a dict and every call in ``calls``, so a test can say exactly what
a step read and wrote. The shapes follow the real APIs only as far as the engine's mappers read them:
Facturama's full-object PUT answered with no body, Clientify's partial PUT that merges custom fields
by name and stamps ``modified`` (one second later on each write, from a fake clock), FacturaDirecta's
partial PUT.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clientify_sync.api.client import ProbeResult
from clientify_sync.api.paging import Page
from clientify_sync.api.settings import (
    ClientifySettings,
    FacturaDirectaRestSettings,
    FacturaDirectaSettings,
    FacturamaSettings,
)
from clientify_sync.api.stats import CallStats

Record = dict[str, Any]
START = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


class Clock:
    """Clientify's ``modified``: one second later on every write."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1)

    def tick(self) -> str:
        return (START + timedelta(seconds=next(self._ticks))).isoformat(timespec="microseconds")


@dataclass
class Resource:
    """One listing: pages, get, create and update (``ListingResource`` and most of ``CrmResource``).

    Args:
        id_key: where a record holds its id (``Id``, ``id``).
        prefix: created records' ids are ``prefix`` + 1, 2...
        full_put: an update replaces the record (Facturama) instead of merging into it.
        answers_updates: an update answers the record (else nothing, as a 204 does).
        clock: stamps ``modified`` on every write (Clientify).
    """

    id_key: str = "id"
    prefix: str = ""
    full_put: bool = False
    answers_updates: bool = True
    clock: Clock | None = None
    page_size: int = 2
    records: dict[str, Record] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    ignored_filter: Any = None
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, *records: Record) -> None:
        """Records already on the API (not a call)."""
        for record in records:
            stored = copy.deepcopy(record)
            if self.clock is not None:
                stored.setdefault("modified", self.clock.tick())
            self.records[str(stored[self.id_key])] = stored

    def iter_pages(self, modified_gte: str | None = None) -> Iterator[Page]:
        self.calls.append(("list", modified_gte))
        since = None if modified_gte is None else datetime.fromisoformat(str(modified_gte))
        chosen = [
            copy.deepcopy(r)
            for r in self.records.values()
            if since is None or datetime.fromisoformat(r["modified"]) >= since
        ]
        pages = max(1, math.ceil(len(chosen) / self.page_size))
        for number in range(1, pages + 1):
            part = chosen[(number - 1) * self.page_size : number * self.page_size]
            yield Page(part, number, len(chosen), self.page_size, min(number * self.page_size, len(chosen)))

    def iter_records(self) -> Iterator[Record]:
        for page in self.iter_pages():
            yield from page.records

    def get(self, record_id: str) -> Record:
        self.calls.append(("get", record_id))
        return copy.deepcopy(self.records[str(record_id)])

    def create(
        self, body: Record, *, natural_key: str | None = None, idempotency_key: str | None = None
    ) -> Record:
        self.calls.append(("create", idempotency_key))
        rid = f"{self.prefix}{next(self._ids)}"
        stored = {**copy.deepcopy(body), self.id_key: rid}
        if self.clock is not None:
            stored["modified"] = self.clock.tick()
        self.records[rid] = stored
        return copy.deepcopy(stored)

    def update(self, record_id: str, body: Record) -> Record | None:
        self.calls.append(("update", record_id, copy.deepcopy(body)))
        stored = self.records[str(record_id)]
        if self.full_put:
            stored = {**copy.deepcopy(body), self.id_key: stored[self.id_key]}
        else:
            fields = {k: v for k, v in copy.deepcopy(body).items() if k != "custom_fields"}
            stored = {**stored, **fields}
            if "custom_fields" in body:  # Clientify merges custom fields by name
                by_name = {f["field"]: f for f in stored.get("custom_fields") or []}
                by_name.update({f["field"]: f for f in body["custom_fields"]})
                stored["custom_fields"] = list(by_name.values())
        if self.clock is not None:
            stored["modified"] = self.clock.tick()
        self.records[str(record_id)] = stored
        return copy.deepcopy(stored) if self.answers_updates else None

    def writes(self) -> list[tuple[Any, ...]]:
        """The creates and updates sent so far."""
        return [call for call in self.calls if call[0] in ("create", "update")]

    # Clientify's lookups
    def find_by_custom_field(self, name: str, value: str) -> list[Record]:
        self.calls.append(("find_by_custom_field", name, value))
        return [
            copy.deepcopy(r)
            for r in self.records.values()
            if any(f.get("field") == name and f.get("value") == value for f in r.get("custom_fields") or [])
        ]

    def _find(self, name: str, value: str) -> list[Record]:
        self.calls.append((f"find_by_{name}", value))
        return [
            copy.deepcopy(r) for r in self.records.values() if str(r.get(name) or "").upper() == value.upper()
        ]

    def find_by_tax_id(self, tax_id: str) -> list[Record]:
        return self._find("taxpayer_identification_number", tax_id)

    def find_by_sku(self, sku: str) -> list[Record]:
        return self._find("sku", sku)

    def find_by_code(self, code: str) -> list[Record]:
        return self._find("code", code)


@dataclass
class Definitions:
    """Custom-field definitions: ``ensure`` is answered with ``answer`` (or raises it, an exception)."""

    answer: Record | Exception = field(default_factory=lambda: {"id": "cfi_link"})
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def ensure(self, name: str, content_type: Any) -> Record:
        self.calls.append((name, content_type))
        if isinstance(self.answer, Exception):
            raise self.answer
        return dict(self.answer)


@dataclass
class InvoicingApi:
    """Facturama or FacturaDirecta (either API) in memory."""

    settings: Any
    clients: Resource
    products: Resource
    estimates: Resource
    stats: CallStats
    probes: list[ProbeResult] = field(default_factory=list)
    custom_fields: Definitions | None = None

    def probe(self) -> list[ProbeResult]:
        return list(self.probes)


@dataclass
class ClientifyApi:
    """Clientify in memory."""

    settings: ClientifySettings
    contacts: Resource
    companies: Resource
    products: Resource
    budgets: Resource
    custom_fields: Definitions
    stats: CallStats
    probes: list[ProbeResult] = field(default_factory=list)

    def probe(self) -> list[ProbeResult]:
        return list(self.probes)

    def writes(self) -> list[tuple[Any, ...]]:
        return [w for r in (self.contacts, self.companies, self.products, self.budgets) for w in r.writes()]


def facturama(**settings: Any) -> InvoicingApi:
    return InvoicingApi(
        FacturamaSettings(base_url="https://facturama.test", username="u", password="p", **settings),
        clients=Resource("Id", "FM-C", full_put=True, answers_updates=False),
        products=Resource("Id", "FM-P", full_put=True, answers_updates=False),
        estimates=Resource("Id", "FM-E", full_put=True, answers_updates=False),
        stats=CallStats("facturama"),
    )


def facturadirecta(**settings: Any) -> InvoicingApi:
    """The classic XML API: a partial PUT answered with no body (the record is read back)."""
    return InvoicingApi(
        FacturaDirectaSettings(base_url="https://acme.facturadirecta.test", token="t", **settings),
        clients=Resource("id", answers_updates=False),
        products=Resource("id", answers_updates=False),
        estimates=Resource("id", answers_updates=False),
        stats=CallStats("facturadirecta"),
    )


def facturadirecta_rest(definitions: Definitions | None = None, **settings: Any) -> InvoicingApi:
    values = {"base_url": "https://app.facturadirecta.test", "api_key": "aB3cD9.0123456789abcdef0123456789abcdef",
              "company_id": "com_test", **settings}  # fmt: skip
    return InvoicingApi(
        FacturaDirectaRestSettings(**values),
        clients=Resource("id"),
        products=Resource("id"),
        estimates=Resource("id"),
        stats=CallStats("facturadirecta"),
        custom_fields=definitions if definitions is not None else Definitions(),
    )


def clientify(**settings: Any) -> ClientifyApi:
    clock = Clock()
    resources = {name: Resource("id", prefix, clock=clock) for name, prefix in
                 (("contacts", "1"), ("companies", "2"), ("products", "3"), ("budgets", "4"))}  # fmt: skip
    return ClientifyApi(
        ClientifySettings(base_url="https://api.clientify.test/", api_key="k", **settings),
        **resources,
        custom_fields=Definitions(),
        stats=CallStats("clientify"),
    )


def raising(error: Exception) -> Callable[..., Any]:
    """A method that fails with ``error``: what a resource answers when the API refuses."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail
