"""The two sides of a sync: an API client's resources paired with the mapping for one entity.

This is the only engine module that calls the API clients; the rest of the engine sees
``SideRecord``s. Fetching (paging) and writing (create, update, find) for one side live here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.api.protocols import (
    CrmClient,
    CrmProducts,
    CrmResource,
    CustomFieldDefinitions,
    InvoicingClient,
    ListingResource,
)
from clientify_sync.api.settings import FacturaDirectaSettings
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
from clientify_sync.engine.mapping.facturama import FacturamaClientMapper, FacturamaProductMapper
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.taxid import classify_nif, classify_rfc
from clientify_sync.engine.vocabulary import Entity, Platform

log = logging.getLogger(__name__)
Finder = Callable[[str], list[dict[str, Any]]]  # a natural key in, the records holding it out

# Clientify custom-field content types, keyed by our record type.
CONTENT_TYPES = {
    "contact": "contacts | contact",
    "company": "companies | company",
    "product": "products | product",
    "budget": "budgets | budget",
}


@dataclass
class InvoicingSide:
    """Facturama or FacturaDirecta for one entity: a full listing every run (no modified filter)."""

    platform: Platform
    mapper: Mapper
    resource: ListingResource
    link_supported: bool

    def pages(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The whole listing as the API returns it, a page at a time: ``("", records)`` (the mapper
        knows the type)."""
        for page in self.resource.iter_pages():
            log.info("%s listing: %s", self.platform.value, page.progress())
            yield "", page.records

    def create(self, rtype: str, data: dict[str, Any], link: str | None) -> SideRecord:
        created = self.resource.create(self.mapper.create_body(rtype, data, link))
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
) -> tuple[InvoicingSide, ClientifySide]:
    """The two sides of one (platform, entity) sync, configured from the clients' settings.

    ``rounding``: how estimates are written to the cent where the two sides round VAT differently
    (default: adjusted, ``RoundingPolicy()``).
    """
    rounding = rounding or RoundingPolicy()
    crm_settings = clientify_client.settings
    if platform is Platform.FACTURAMA:
        link_field = crm_settings.link_field_facturama
        link_attribute = None
        classify = classify_rfc
    else:
        link_field = crm_settings.link_field_facturadirecta
        settings = invoicing_client.settings
        if not isinstance(settings, FacturaDirectaSettings):
            raise TypeError(
                f"a FacturaDirecta sync needs a FacturaDirecta client, not {type(invoicing_client).__name__}"
            )
        link_attribute = settings.link_attribute
        classify = classify_nif
    if entity is Entity.CONTACTS:
        inv_mapper: Mapper = (
            FacturamaClientMapper()
            if platform is Platform.FACTURAMA
            else FacturaDirectaClientMapper(link_attribute=link_attribute)
        )
        crm_mapper: Mapper = ClientifyContactMapper(classify=classify, link_field=link_field)
        inv_resource = invoicing_client.clients
        crm_resources: dict[str, CrmResource] = {
            "contact": clientify_client.contacts,
            "company": clientify_client.companies,
        }
        finders: dict[str, Finder] = {
            "contact": clientify_client.contacts.find_by_tax_id,
            "company": clientify_client.companies.find_by_tax_id,
        }
    elif entity is Entity.PRODUCTS:
        inv_mapper = (
            FacturamaProductMapper()
            if platform is Platform.FACTURAMA
            else FacturaDirectaProductMapper(link_attribute=link_attribute)
        )
        crm_mapper = ClientifyProductMapper(link_field=link_field, rounding_sku=rounding.sku)
        inv_resource = invoicing_client.products
        crm_resources = {"product": clientify_client.products}
        finders = {"product": clientify_client.products.find_by_sku}
    else:
        directory = directory or Directory()
        if platform is Platform.FACTURAMA:
            inv_mapper = FacturamaEstimateMapper(directory)
        else:
            inv_mapper = FacturaDirectaEstimateMapper(directory, link_attribute=link_attribute, rounding=rounding)
        prefix = "FM-" if platform is Platform.FACTURAMA else "FD-"
        crm_mapper = ClientifyBudgetMapper(
            directory, link_field, crm_settings.base_url.rstrip("/"), prefix, rounding=rounding,
            _rounding_product=RoundingProduct(clientify_client.products, rounding),
        )  # fmt: skip
        inv_resource = invoicing_client.estimates
        crm_resources = {"budget": clientify_client.budgets}
        finders = {"budget": clientify_client.budgets.find_by_code}
    invoicing = InvoicingSide(platform, inv_mapper, inv_resource, link_supported=link_attribute is not None)
    clientify = ClientifySide(crm_mapper, crm_resources, finders, clientify_client.custom_fields, link_field)
    return invoicing, clientify
