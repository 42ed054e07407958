"""The two sides of a sync: an API client's resources paired with the mapping for one entity.

This is the only engine module that calls the API clients; the rest of the engine sees
``SideRecord``s. Fetching (paging) and writing (create, update, find) for one side live here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.facturadirecta_rest_activity import ActivityFeed, FeedPosition
from clientify_sync.api.protocols import (
    CrmClient,
    CrmProducts,
    CrmResource,
    CustomFieldDefinitions,
    InvoicingClient,
    ListingResource,
)
from clientify_sync.api.settings import FacturaDirectaRestSettings, FacturaDirectaSettings
from clientify_sync.engine.documents import Directory, RoundingPolicy
from clientify_sync.engine.mapping import Mapper
from clientify_sync.engine.mapping.clientify import ClientifyContactMapper, ClientifyProductMapper
from clientify_sync.engine.mapping.estimates import (
    ClientifyBudgetMapper,
    FacturaDirectaEstimateMapper,
    FacturamaEstimateMapper,
)
from clientify_sync.engine.mapping.facturadirecta import (
    FacturaDirectaClientMapper,
    FacturaDirectaProductMapper,
)
from clientify_sync.engine.mapping.facturadirecta_rest import (
    FacturaDirectaRestContactMapper,
    FacturaDirectaRestEstimateMapper,
    FacturaDirectaRestProductMapper,
)
from clientify_sync.engine.mapping.facturama import FacturamaClientMapper, FacturamaProductMapper
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.taxid import classify_nif, classify_rfc
from clientify_sync.engine.vocabulary import Entity, Platform
from clientify_sync.errors import ApiError, NotFoundError

log = logging.getLogger(__name__)
Finder = Callable[[str], list[dict[str, Any]]]  # a natural key in, the records holding it out

# The ids each FacturaDirecta API gives, per entity: a Clientify link field holding another is stale
# (an account moved between the APIs) and is not read as a link (mapping.clientify.linked_id).
ID_PATTERNS: dict[str, dict[Entity, str]] = {
    "classic": {Entity.CONTACTS: r"\d+", Entity.PRODUCTS: r"\d+", Entity.ESTIMATES: r"\d+"},
    "rest": {Entity.CONTACTS: r"con_\S+", Entity.PRODUCTS: r"pro_\S+", Entity.ESTIMATES: r"est_\S+"},
}

# The activity feed's document type of each entity (FacturaDirecta's REST API).
FEED_TYPES = {Entity.CONTACTS: "contact", Entity.PRODUCTS: "product", Entity.ESTIMATES: "estimate"}

# Clientify's webhook slots are plural (``contacts``); our record types are not.
EVENT_TYPES = {"contacts": "contact", "companies": "company", "products": "product", "budgets": "budget"}

# Clientify custom-field content types, keyed by our record type.
CONTENT_TYPES = {
    "contact": "contacts | contact",
    "company": "companies | company",
    "product": "products | product",
    "budget": "budgets | budget",
}


class Remembered(Protocol):
    """Ledger-wide values by key (``ledger.Meta``): what a side learned once and every later job reuses."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str | None) -> None: ...


@dataclass(frozen=True)
class FeedChanges:
    """What an activity feed says changed since a position: records to read, records archived
    (deleted: reported, never propagated), and the position after the last event read."""

    changed: list[str]
    archived: list[str]
    end: str  # the position after the last event read, encoded to be stored


@dataclass
class InvoicingSide:
    """Facturama or FacturaDirecta for one entity: a full listing every run (no modified filter), or,
    where the API keeps an activity feed (FacturaDirecta's REST API: ``feed``), what changed since the
    position the last committed run stored."""

    platform: Platform
    mapper: Mapper
    resource: ListingResource
    link_supported: bool
    feed: ActivityFeed | None = None
    document_type: str = ""  # the feed's name of this entity's records (contact, product, estimate)

    def feed_head(self) -> str | None:
        """Where the feed ends now, encoded (read before a full listing, so nothing between is missed);
        None without a feed."""
        return self.feed.head(document_types=[self.document_type]).encode() if self.feed else None

    def changes(self, stored: str) -> FeedChanges:
        """The records the feed names after the ``stored`` position (each at most once; the last event
        wins)."""
        assert self.feed is not None
        last: dict[str, str] = {}
        end = FeedPosition.decode(stored)
        for page in self.feed.pages(end, document_types=[self.document_type]):
            for event in page.events:
                document = event.get("document") or {}
                if document.get("id"):
                    last[str(document["id"])] = str(event.get("type"))
            end = page.position
        archived = [rid for rid, kind in last.items() if kind == "archived"]
        return FeedChanges([rid for rid, kind in last.items() if kind != "archived"], archived, end.encode())

    def named(self, rids: Iterable[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The records ``rids`` names, read one by one (one gone meanwhile is skipped)."""
        for rid in sorted(set(rids)):
            try:
                yield "", [self.resource.get(rid)]
            except NotFoundError:
                log.info("%s %s named by the activity feed is gone: skipped", self.platform.value, rid)

    def pages(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The whole listing as the API returns it, a page at a time: ``("", records)`` (the mapper
        knows the type)."""
        for page in self.resource.iter_pages():
            log.info("%s listing: %s", self.platform.value, page.progress())
            yield "", page.records

    def create(
        self, rtype: str, data: dict[str, Any], link: str | None, idempotency_key: str | None = None
    ) -> SideRecord:
        """``idempotency_key``: one per logical create, the same on every try (``apply.Applier``)."""
        created = self.resource.create(
            self.mapper.create_body(rtype, data, link), idempotency_key=idempotency_key
        )
        return self.mapper.read(rtype, created)

    def update(
        self,
        rtype: str,
        rid: str,
        raw: dict[str, Any],
        data: dict[str, Any],
        changed: set[str],
        link: str | None,
    ) -> SideRecord:
        body = self.mapper.update_body(rtype, raw, data, changed, link)
        answer = self.resource.update(rid, body)
        if answer is None and self.platform is Platform.FACTURAMA:
            answer = body  # a 204: Facturama's PUT stores the full object we sent
        elif answer is None:
            answer = self.resource.get(rid)  # partial PUT without a body: read the result back
        return self.mapper.read(rtype, answer)


@dataclass
class ClientifySide:
    """Clientify for one entity: one or two resources (contacts and companies), read by ``modified``."""

    mapper: Mapper
    resources: dict[str, CrmResource]
    finders: dict[str, Finder]  # by natural key, per record type
    custom_fields: CustomFieldDefinitions
    link_field: str

    def pages(self, since: str | None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The records modified since ``since`` (all of them when ``None``) as the API returns them, a
        page at a time: ``(record type, records)``."""
        for rtype, resource in self.resources.items():
            for page in resource.iter_pages(modified_gte=since):
                log.info("clientify %s listing: %s", rtype, page.progress())
                yield rtype, page.records

    def named(self, refs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The records ``refs`` names, read one by one now (an event is a hint, never data): ``(record
        type, [record])``. One deleted since is skipped: a deletion is never propagated."""
        for rtype, rid in sorted(set(refs)):
            resource = self.resources.get(EVENT_TYPES.get(rtype, rtype))
            if resource is None:
                log.warning("clientify event for a %s: not synced by this entity, ignored", rtype)
                continue
            try:
                yield EVENT_TYPES.get(rtype, rtype), [resource.get(rid)]
            except NotFoundError:
                log.info("clientify %s %s named by an event is gone: skipped", rtype, rid)

    def create(self, rtype: str, data: dict[str, Any], link: str | None) -> SideRecord:
        created = self.resources[rtype].create(self.mapper.create_body(rtype, data, link))
        return self.mapper.read(rtype, created)

    def update(
        self,
        rtype: str,
        rid: str,
        raw: dict[str, Any],
        data: dict[str, Any],
        changed: set[str],
        link: str | None,
    ) -> SideRecord:
        body = self.mapper.update_body(rtype, raw, data, changed, link)
        if not body:
            return self.mapper.read(rtype, raw)
        resource = self.resources[rtype]
        return self.mapper.read(rtype, resource.update(rid, body) or resource.get(rid))

    def find(self, link_value: str | None, key: str | None) -> list[SideRecord]:
        """Look a record up by link field, then by natural key: used only to settle pending creates."""
        for rtype, resource in self.resources.items():
            if link_value:
                found = resource.find_by_custom_field(self.link_field, link_value)
                if found:
                    return [self.mapper.read(rtype, raw) for raw in found]
        for rtype, find in self.finders.items():
            if key:
                found = find(key)
                if found:
                    return [self.mapper.read(rtype, raw) for raw in found]
        return []


@dataclass
class RoundingProduct:
    """The Clientify product our rounding lines reference (Clientify needs a product on every line):
    found by its SKU, else created, the first time a document needs it in this process."""

    products: CrmProducts
    policy: RoundingPolicy
    _id: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> str:
        with self._lock:  # writes run on several threads; one find-or-create
            if self._id is None:
                found = self.products.find_by_sku(self.policy.sku)
                record = found[0] if found else self.products.create(
                    {"name": self.policy.label, "sku": self.policy.sku, "price": "0.00"}
                )  # fmt: skip
                self._id = str(record["id"])
                log.info("clientify rounding product: %s", self._id)
            return self._id


def build_sides(
    platform: Platform,
    entity: Entity,
    invoicing_client: InvoicingClient,
    clientify_client: CrmClient,
    directory: Directory | None = None,
    rounding: RoundingPolicy | None = None,
    *,
    meta: Remembered | None = None,
) -> tuple[InvoicingSide, ClientifySide]:
    """The two sides of one (platform, entity) sync, configured from the clients' settings.

    ``rounding``: how estimates are written to the cent where the two sides round VAT differently
    (default: adjusted, ``RoundingPolicy()``). ``meta``: the ledger's ``meta``, where the REST API's
    link field id is remembered once found (without it every call looks the field up again).
    """
    rounding = rounding or RoundingPolicy()
    directory = directory or Directory()
    if platform is Platform.FACTURAMA:
        clientify = _clientify_side(platform, entity, clientify_client, directory, rounding, None)
        return _facturama_side(entity, invoicing_client, directory), clientify
    settings = invoicing_client.settings
    api = invoicing_api(invoicing_client)
    clientify = _clientify_side(
        platform, entity, clientify_client, directory, rounding, ID_PATTERNS[api][entity]
    )
    if isinstance(settings, FacturaDirectaRestSettings):
        return _rest_side(entity, invoicing_client, settings, directory, rounding, meta), clientify
    if not isinstance(settings, FacturaDirectaSettings):
        raise TypeError(
            f"a FacturaDirecta sync needs a FacturaDirecta client, not {type(invoicing_client).__name__}"
        )
    return _classic_side(entity, invoicing_client, settings, directory, rounding), clientify


def invoicing_api(client: InvoicingClient) -> str:
    """Which API of its platform a client speaks: ``rest`` (FacturaDirecta's REST API) or ``classic``."""
    return "rest" if isinstance(client.settings, FacturaDirectaRestSettings) else "classic"


def _clientify_side(
    platform: Platform, entity: Entity, clientify_client: CrmClient, directory: Directory, rounding: RoundingPolicy,
    link_pattern: str | None,
) -> ClientifySide:  # fmt: skip
    """Clientify's side: the same for every invoicing platform and API but for its link field, the
    ids it may hold (``link_pattern``: mapping.clientify.linked_id), the tax-ID rules its customers are
    read with, and the code prefix of the budgets it is sent."""
    settings = clientify_client.settings
    facturama = platform is Platform.FACTURAMA
    link_field = settings.link_field_facturama if facturama else settings.link_field_facturadirecta
    crm_mapper: Mapper
    resources: dict[str, CrmResource]
    finders: dict[str, Finder]
    if entity is Entity.CONTACTS:
        crm_mapper = ClientifyContactMapper(classify=classify_rfc if facturama else classify_nif, link_field=link_field,
                                            link_pattern=link_pattern)  # fmt: skip
        resources = {"contact": clientify_client.contacts, "company": clientify_client.companies}
        finders = {"contact": clientify_client.contacts.find_by_tax_id,
                   "company": clientify_client.companies.find_by_tax_id}  # fmt: skip
    elif entity is Entity.PRODUCTS:
        crm_mapper = ClientifyProductMapper(
            link_field=link_field, rounding_sku=rounding.sku, link_pattern=link_pattern
        )
        resources, finders = (
            {"product": clientify_client.products},
            {"product": clientify_client.products.find_by_sku},
        )
    else:
        crm_mapper = ClientifyBudgetMapper(
            directory, link_field, settings.base_url.rstrip("/"), "FM-" if facturama else "FD-", rounding=rounding,
            link_pattern=link_pattern, _rounding_product=RoundingProduct(clientify_client.products, rounding),
        )  # fmt: skip
        resources, finders = (
            {"budget": clientify_client.budgets},
            {"budget": clientify_client.budgets.find_by_code},
        )
    return ClientifySide(crm_mapper, resources, finders, clientify_client.custom_fields, link_field)


def _facturama_side(entity: Entity, client: InvoicingClient, directory: Directory) -> InvoicingSide:
    """Facturama: no link field on its records (links live in the ledger and in Clientify)."""
    mapper: Mapper
    if entity is Entity.CONTACTS:
        mapper, resource = FacturamaClientMapper(), client.clients
    elif entity is Entity.PRODUCTS:
        mapper, resource = FacturamaProductMapper(), client.products
    else:
        mapper, resource = FacturamaEstimateMapper(directory), client.estimates
    return InvoicingSide(Platform.FACTURAMA, mapper, resource, link_supported=False)


def _classic_side(
    entity: Entity, client: InvoicingClient, settings: FacturaDirectaSettings, directory: Directory,
    rounding: RoundingPolicy,
) -> InvoicingSide:  # fmt: skip
    """FacturaDirecta's classic XML API: the link in a custom attribute (``ID_CRM``) when defined."""
    attribute = settings.link_attribute
    mapper: Mapper
    if entity is Entity.CONTACTS:
        mapper, resource = FacturaDirectaClientMapper(link_attribute=attribute), client.clients
    elif entity is Entity.PRODUCTS:
        mapper, resource = FacturaDirectaProductMapper(link_attribute=attribute), client.products
    else:
        mapper = FacturaDirectaEstimateMapper(directory, link_attribute=attribute, rounding=rounding)
        resource = client.estimates
    return InvoicingSide(Platform.FACTURADIRECTA, mapper, resource, link_supported=attribute is not None)


def _rest_side(
    entity: Entity, client: InvoicingClient, settings: FacturaDirectaRestSettings, directory: Directory,
    rounding: RoundingPolicy, meta: Remembered | None = None,
) -> InvoicingSide:  # fmt: skip
    """FacturaDirecta's REST API: the same canonical records through its own mappers
    (``mapping/facturadirecta_rest.py``). The link to Clientify lives in a custom field (``cfi_…``)
    named like the classic attribute, defined on first use for contacts and estimates; products take
    no custom field (reference §10), so their links live in the ledger only."""
    link_field_id = _rest_link_field(client, settings, meta) if entity is not Entity.PRODUCTS else None
    mapper: Mapper
    if entity is Entity.CONTACTS:
        mapper, resource = FacturaDirectaRestContactMapper(link_field_id=link_field_id), client.clients
    elif entity is Entity.PRODUCTS:
        mapper, resource = FacturaDirectaRestProductMapper(), client.products
    else:
        mapper = FacturaDirectaRestEstimateMapper(directory, link_field_id=link_field_id, rounding=rounding)
        resource = client.estimates
    feed = client.activity if isinstance(client, FacturaDirectaRestClient) else None
    return InvoicingSide(Platform.FACTURADIRECTA, mapper, resource, link_supported=link_field_id is not None,
                         feed=feed, document_type=FEED_TYPES[entity])  # fmt: skip


def rest_link_field_key(settings: FacturaDirectaRestSettings) -> str:
    """The ledger ``meta`` key of the REST link field's id: per company and field title (one ledger may
    hold several integrations, and the title is a connection setting)."""
    return f"facturadirecta.custom_field:{settings.company_id}:{settings.link_attribute}"


def _rest_link_field(
    client: InvoicingClient, settings: FacturaDirectaRestSettings, meta: Remembered | None = None
) -> str | None:
    """The id (``cfi_…``) of the custom field holding the Clientify id; None when the account refuses
    custom fields (the link then lives in the ledger only).

    Found or defined once, then remembered in ``meta`` (as the Clientify link field is,
    ``SyncJob._ensure_link_fields``): every task of every run builds its sides, and looking the field up
    each time cost a ``GET customFields`` per task, most of an idle run's calls. A refusal is not
    remembered: a key given the scope later is used from the next task on."""
    definitions = getattr(client, "custom_fields", None)
    if definitions is None or not settings.link_attribute:
        return None
    key = rest_link_field_key(settings)
    known = meta.get(key) if meta is not None else None
    if known:
        return known
    try:
        found = str(definitions.ensure(settings.link_attribute, ["contact", "estimate"])["id"])
    except ApiError as error:  # e.g. a key without the custom-fields scope
        log.warning("facturadirecta custom field %s not available (%s): links kept in the ledger only",
                    settings.link_attribute, error.reason)  # fmt: skip
        return None
    if meta is not None:
        meta.set(key, found)
    return found
