"""What the engine may rely on from the API clients, as ``typing.Protocol``s.

The engine (``engine.sides``, ``engine.apply``, ``engine.job``) talks to ``FacturamaClient``,
``FacturaDirectaClient`` and ``ClientifyClient`` only through these shapes, so a fake client in a test
needs only what is named here. The concrete clients satisfy them structurally (no inheritance);
``tests/api/test_protocols.py`` checks that with mypy-visible assignments and at run time.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from clientify_sync.api.client import ProbeResult
from clientify_sync.api.clientify import IgnoredFilter
from clientify_sync.api.http import RequestBudget
from clientify_sync.api.paging import Page
from clientify_sync.api.stats import CallStats

Record = dict[str, Any]
Moment = datetime.datetime | datetime.date | str


class ClientSettings(Protocol):
    """The settings every client carries (``HttpSettings``)."""

    @property
    def base_url(self) -> str:
        """Scheme, host and optional port."""
        ...

    @property
    def concurrency(self) -> int:
        """Most requests in flight at once from one client (writes and page reads)."""
        ...

    @property
    def requests_per_minute(self) -> float:
        """The client's request budget; 0 means unlimited."""
        ...


class CrmSettings(ClientSettings, Protocol):
    """Clientify's settings as the engine reads them (``ClientifySettings``)."""

    @property
    def link_field_facturama(self) -> str:
        """Custom field holding the Facturama id."""
        ...

    @property
    def link_field_facturadirecta(self) -> str:
        """Custom field holding the FacturaDirecta id."""
        ...


@runtime_checkable
class ListingResource(Protocol):
    """One record collection: a paged listing plus item reads and writes."""

    def iter_pages(self) -> Iterator[Page]:
        """Every page of the whole listing (in any order after the first)."""
        ...

    def iter_records(self) -> Iterator[Record]:
        """Every record of the whole listing, a few pages at a time."""
        ...

    def get(self, record_id: str) -> Record:
        """One record.

        Raises:
            NotFoundError: no such record.
        """
        ...

    def create(
        self, body: Record, *, natural_key: str | None = None, idempotency_key: str | None = None
    ) -> Record:
        """Create a record and return it with its id.

        ``idempotency_key``: the same key for every attempt of one logical create, so an API that keeps
        keys (FacturaDirecta's REST API) replays a create whose answer was lost instead of making it
        twice; APIs without them ignore it (the pending-create journal's lookup covers them).

        Raises:
            UnconfirmedWriteError: the create may or may not have been applied.
            ValidationError: the API refused the body.
        """
        ...

    def update(self, record_id: str, body: Record) -> Record | None:
        """Update a record; the updated record, or None when the API answers without one."""
        ...


@runtime_checkable
class CrmResource(Protocol):
    """A Clientify collection: read by ``modified``, found by the link custom field."""

    @property
    def ignored_filter(self) -> IgnoredFilter | None:
        """Set when the last ``modified[gte]`` listing came back unfiltered."""
        ...

    def iter_pages(self, modified_gte: Moment | None = None) -> Iterator[Page]:
        """Every page of the records modified since ``modified_gte`` (all of them when None)."""
        ...

    def get(self, record_id: str) -> Record:
        """One record.

        Raises:
            NotFoundError: no such record.
        """
        ...

    def create(self, body: Record, *, natural_key: str | None = None) -> Record:
        """Create a record and return it with its id.

        Raises:
            UnconfirmedWriteError: the create may or may not have been applied.
        """
        ...

    def update(self, record_id: str, body: Record) -> Record | None:
        """Partial update; the full record."""
        ...

    def find_by_custom_field(self, name: str, value: str) -> list[Record]:
        """Records whose custom field ``name`` equals ``value`` exactly."""
        ...


class CrmParties(CrmResource, Protocol):
    """Clientify contacts and companies."""

    def find_by_tax_id(self, tax_id: str) -> list[Record]:
        """Records whose normalised tax id equals ``tax_id``."""
        ...


class CrmProducts(CrmResource, Protocol):
    """Clientify products."""

    def find_by_sku(self, sku: str) -> list[Record]:
        """Products whose SKU equals ``sku``."""
        ...


class CrmBudgets(CrmResource, Protocol):
    """Clientify budgets (estimates)."""

    def find_by_code(self, code: str) -> list[Record]:
        """Budgets whose ``code`` equals ``code``."""
        ...


class CustomFieldDefinitions(Protocol):
    """Clientify's custom-field definitions."""

    def ensure(self, name: str, content_type: str) -> Record:
        """The definition of ``name`` for ``content_type``, created if missing."""
        ...


class ServiceClient(Protocol):
    """What every API client offers: accounting, capability probes, a shared budget, closing."""

    @property
    def api_name(self) -> str:
        """``"facturama"``, ``"facturadirecta"`` or ``"clientify"``."""
        ...

    @property
    def settings(self) -> ClientSettings:
        """The client's validated settings."""
        ...

    @property
    def stats(self) -> CallStats:
        """Every HTTP attempt, by route (reset between steps)."""
        ...

    def probe(self) -> list[ProbeResult]:
        """Read each assumed resource once and say which exist.

        Raises:
            AuthenticationError: the credentials are rejected.
        """
        ...

    def share_budget(self, budget: RequestBudget) -> None:
        """Draw every request from ``budget`` instead of the client's own token bucket."""
        ...

    def test_connection(self) -> tuple[bool, str]:
        """``(True, message)`` when the API accepts the credentials, else ``(False, reason)``."""
        ...

    def close(self) -> None:
        """Close the connection pools."""
        ...


class InvoicingClient(ServiceClient, Protocol):
    """Facturama or FacturaDirecta: clients, products and estimates, each a full listing per run.

    Only FacturaDirecta's settings carry ``link_attribute``; narrow ``settings`` with
    ``isinstance(settings, FacturaDirectaSettings)`` to read it.
    """

    @property
    def clients(self) -> ListingResource:
        """Customers."""
        ...

    @property
    def products(self) -> ListingResource:
        """Products."""
        ...

    @property
    def estimates(self) -> ListingResource:
        """Estimates (an assumed resource on Facturama: see ``probe``)."""
        ...


class CrmClient(ServiceClient, Protocol):
    """Clientify: contacts, companies, products, budgets and the custom-field definitions."""

    @property
    def settings(self) -> CrmSettings:
        """Clientify's settings (with the link field names)."""
        ...

    @property
    def contacts(self) -> CrmParties:
        """People."""
        ...

    @property
    def companies(self) -> CrmParties:
        """Companies."""
        ...

    @property
    def products(self) -> CrmProducts:
        """Products."""
        ...

    @property
    def budgets(self) -> CrmBudgets:
        """Budgets (an assumed resource: see ``probe``)."""
        ...

    @property
    def custom_fields(self) -> CustomFieldDefinitions:
        """Custom-field definitions (where the link field is defined)."""
        ...

    def ignored_filters(self) -> list[IgnoredFilter]:
        """The listings whose last ``modified[gte]`` read was ignored by the API."""
        ...
