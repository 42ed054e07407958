"""The two sides of a sync on in-memory API clients: which mappers and resources ``build_sides`` pairs
per platform, API and entity; how a side reads, writes and looks records up; the rounding product."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.settings import FacturaDirectaRestSettings
from clientify_sync.engine.documents import Directory, RoundingPolicy
from clientify_sync.engine.ledger import Ledger
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
from clientify_sync.engine.sides import (
    ClientifySide,
    InvoicingSide,
    RoundingProduct,
    build_sides,
    rest_link_field_key,
)
from clientify_sync.engine.taxid import classify_nif, classify_rfc
from clientify_sync.engine.vocabulary import Entity, Platform
from clientify_sync.errors import ValidationError
from tests.engine import memory_api
from tests.engine.memory_api import Definitions

FM, FD = Platform.FACTURAMA, Platform.FACTURADIRECTA
WAIT = 10  # seconds a barrier may wait before the test fails (never reached when it passes)


# -- build_sides ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entity", "mapper", "resource", "link_supported"),
    [
        (Entity.CONTACTS, FacturamaClientMapper, "clients", False),
        (Entity.PRODUCTS, FacturamaProductMapper, "products", False),
        (Entity.ESTIMATES, FacturamaEstimateMapper, "estimates", False),
    ],
)
def test_facturama_has_no_link_field_of_its_own(entity, mapper, resource, link_supported):
    api = memory_api.facturama()
    invoicing, _ = build_sides(FM, entity, api, memory_api.clientify())
    assert type(invoicing.mapper) is mapper
    assert invoicing.resource is getattr(api, resource)
    assert invoicing.platform is FM and invoicing.link_supported is link_supported


@pytest.mark.parametrize(
    ("entity", "mapper", "resource"),
    [
        (Entity.CONTACTS, FacturaDirectaClientMapper, "clients"),
        (Entity.PRODUCTS, FacturaDirectaProductMapper, "products"),
        (Entity.ESTIMATES, FacturaDirectaEstimateMapper, "estimates"),
    ],
)
def test_facturadirectas_classic_api_keeps_the_link_in_its_custom_attribute(entity, mapper, resource):
    api = memory_api.facturadirecta(link_attribute="CLIENTIFY")
    invoicing, _ = build_sides(FD, entity, api, memory_api.clientify())
    assert type(invoicing.mapper) is mapper and invoicing.resource is getattr(api, resource)
    assert invoicing.mapper.link_attribute == "CLIENTIFY" and invoicing.link_supported
    assert invoicing.platform is FD


@pytest.mark.parametrize(
    ("entity", "mapper", "resource"),
    [(Entity.CONTACTS, FacturaDirectaRestContactMapper, "clients"),
     (Entity.ESTIMATES, FacturaDirectaRestEstimateMapper, "estimates")],
)  # fmt: skip
def test_facturadirectas_rest_api_keeps_the_link_in_a_custom_field_defined_on_first_use(
    entity, mapper, resource
):
    definitions = Definitions({"id": "cfi_77"})
    api = memory_api.facturadirecta_rest(definitions, link_attribute="CLIENTIFY")
    invoicing, _ = build_sides(FD, entity, api, memory_api.clientify())
    assert type(invoicing.mapper) is mapper and invoicing.resource is getattr(api, resource)
    assert invoicing.mapper.link_field_id == "cfi_77" and invoicing.link_supported
    assert definitions.calls == [("CLIENTIFY", ["contact", "estimate"])]  # one definition for both


def test_rest_products_take_no_custom_field_so_their_links_live_in_the_ledger():
    definitions = Definitions()
    invoicing, _ = build_sides(
        FD, Entity.PRODUCTS, memory_api.facturadirecta_rest(definitions), memory_api.clientify()
    )
    assert type(invoicing.mapper) is FacturaDirectaRestProductMapper and not invoicing.link_supported
    assert definitions.calls == []  # not even asked


def test_a_rest_account_that_refuses_custom_fields_keeps_its_links_in_the_ledger():
    refused = ValidationError("facturadirecta", "POST", "/customFields", 403, detail="missing scope")
    api = memory_api.facturadirecta_rest(Definitions(refused))
    invoicing, _ = build_sides(FD, Entity.CONTACTS, api, memory_api.clientify())
    assert invoicing.mapper.link_field_id is None and not invoicing.link_supported


def test_a_rest_client_without_custom_field_definitions_keeps_its_links_in_the_ledger():
    api = memory_api.facturadirecta_rest()
    api.custom_fields = None
    invoicing, _ = build_sides(FD, Entity.CONTACTS, api, memory_api.clientify())
    assert invoicing.mapper.link_field_id is None and not invoicing.link_supported


class Remembered(dict):
    """The ledger's ``meta`` in memory (``get``/``set``; ``None`` deletes)."""

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self.pop(key, None)
        else:
            self[key] = value


def test_the_rest_link_field_is_looked_up_once_then_read_from_the_ledgers_meta():
    definitions, meta = Definitions({"id": "cfi_77"}), Remembered()
    for entity in (Entity.CONTACTS, Entity.ESTIMATES, Entity.CONTACTS):
        invoicing, _ = build_sides(FD, entity, memory_api.facturadirecta_rest(definitions), memory_api.clientify(),
                                   meta=meta)  # fmt: skip
        assert invoicing.mapper.link_field_id == "cfi_77" and invoicing.link_supported
    assert len(definitions.calls) == 1
    assert meta == {rest_link_field_key(memory_api.facturadirecta_rest().settings): "cfi_77"}


def test_a_refused_rest_link_field_is_not_remembered_so_a_later_grant_is_used():
    refused = ValidationError("facturadirecta", "POST", "/customFields", 403, detail="missing scope")
    meta = Remembered()
    invoicing, _ = build_sides(FD, Entity.CONTACTS, memory_api.facturadirecta_rest(Definitions(refused)),
                               memory_api.clientify(), meta=meta)  # fmt: skip
    assert not invoicing.link_supported and meta == {}
    granted = Definitions({"id": "cfi_9"})
    invoicing, _ = build_sides(FD, Entity.CONTACTS, memory_api.facturadirecta_rest(granted), memory_api.clientify(),
                               meta=meta)  # fmt: skip
    assert invoicing.mapper.link_field_id == "cfi_9" and len(granted.calls) == 1


def test_two_jobs_on_one_ledger_ask_the_rest_api_for_its_custom_fields_once(clean_sandbox, tmp_path):
    """Each task of a run builds its sides in its own process, with its own client: the second finds the
    link field's id in the ledger instead of another ``GET customFields`` (issue 24's idle run)."""
    cfg = clean_sandbox.config("facturadirecta")
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", FD.value, Entity.CONTACTS.value)
    try:
        ids = []
        for entity in (Entity.CONTACTS, Entity.ESTIMATES):  # two jobs, as two task processes would
            settings = FacturaDirectaRestSettings(base_url=clean_sandbox.facturadirecta_url, api_key=cfg["rest_api_key"],
                                                  company_id=cfg["rest_company_id"], max_retries=0)  # fmt: skip
            with FacturaDirectaRestClient(settings) as client:
                invoicing, _ = build_sides(FD, entity, client, memory_api.clientify(), meta=ledger.meta)
                ids.append(invoicing.mapper.link_field_id)
    finally:
        ledger.close()
    lookups = [row for row in clean_sandbox.stats("facturadirecta")["by_route"]
               if row["route"].endswith("/customFields") and row["method"] == "GET"]  # fmt: skip
    assert ids[0] and ids[0].startswith("cfi_") and ids == [ids[0], ids[0]]
    assert sum(row["count"] for row in lookups) == 1, lookups


def test_a_facturadirecta_sync_refuses_another_platforms_client():
    with pytest.raises(TypeError, match="needs a FacturaDirecta client, not InvoicingApi"):
        build_sides(FD, Entity.CONTACTS, memory_api.facturama(), memory_api.clientify())


@pytest.mark.parametrize(
    ("platform", "invoicing", "link_field", "classify"),
    [
        (FM, memory_api.facturama, "fm_link", classify_rfc),
        (FD, memory_api.facturadirecta, "fd_link", classify_nif),
        (FD, memory_api.facturadirecta_rest, "fd_link", classify_nif),
    ],
    ids=["facturama", "facturadirecta", "facturadirecta-rest"],
)
def test_clientifys_contacts_side_follows_the_platforms_link_field_and_tax_id_rules(
    platform, invoicing, link_field, classify
):
    crm = memory_api.clientify(link_field_facturama="fm_link", link_field_facturadirecta="fd_link")
    _, clientify = build_sides(platform, Entity.CONTACTS, invoicing(), crm)
    assert type(clientify.mapper) is ClientifyContactMapper
    assert clientify.mapper.classify is classify and clientify.mapper.link_field == link_field
    assert clientify.link_field == link_field and clientify.custom_fields is crm.custom_fields
    assert clientify.resources == {"contact": crm.contacts, "company": crm.companies}
    assert clientify.finders == {
        "contact": crm.contacts.find_by_tax_id,
        "company": crm.companies.find_by_tax_id,
    }


def test_clientifys_products_side_sets_our_rounding_product_apart():
    crm = memory_api.clientify()
    _, clientify = build_sides(
        FM, Entity.PRODUCTS, memory_api.facturama(), crm, rounding=RoundingPolicy(sku="REDONDEO")
    )
    assert type(clientify.mapper) is ClientifyProductMapper and clientify.mapper.rounding_sku == "REDONDEO"
    assert clientify.resources == {"product": crm.products}
    assert clientify.finders == {"product": crm.products.find_by_sku}


@pytest.mark.parametrize(("platform", "invoicing", "prefix"), [(FM, memory_api.facturama, "FM-"),
                                                                (FD, memory_api.facturadirecta, "FD-")])  # fmt: skip
def test_clientifys_budgets_side_shares_the_directory_and_names_the_platform(platform, invoicing, prefix):
    crm, directory, rounding = memory_api.clientify(), Directory(), RoundingPolicy(enabled=False)
    sides = build_sides(platform, Entity.ESTIMATES, invoicing(), crm, directory, rounding)
    budgets = sides[1].mapper
    assert type(budgets) is ClientifyBudgetMapper
    assert budgets.directory is directory and sides[0].mapper.directory is directory
    assert (budgets.code_prefix, budgets.rounding) == (prefix, rounding)
    assert budgets.base_url == "https://api.clientify.test"
    assert sides[1].resources == {"budget": crm.budgets} and sides[1].finders == {
        "budget": crm.budgets.find_by_code
    }


# -- reading and writing through a side -------------------------------------------------------------
FD_CLIENT = {"id": "7", "legalType": "J", "name": "Acme SL", "taxCode": "B21910682", "email": "a@acme.example",
             "customAttributes": [{"label": "ID_CRM", "value": "2000034"}]}  # fmt: skip


def classic_contacts() -> tuple[memory_api.InvoicingApi, InvoicingSide]:
    api = memory_api.facturadirecta()
    api.clients.add(FD_CLIENT)
    invoicing, _ = build_sides(FD, Entity.CONTACTS, api, memory_api.clientify())
    return api, invoicing


def test_an_update_answered_without_a_body_is_read_back():
    api, invoicing = classic_contacts()
    data = invoicing.mapper.read("client", FD_CLIENT).data
    record = invoicing.update(
        "client", "7", FD_CLIENT, data | {"name": "Acme Dos SL"}, {"name"}, link="2000034"
    )
    assert [c[0] for c in api.clients.calls] == ["update", "get"]  # a partial PUT's 204: the result is read
    assert api.clients.calls[0][2] == {"name": "Acme Dos SL"}  # only the changed field; the link is there
    assert record.data["name"] == "Acme Dos SL" and record.link == "2000034" and record.rid == "7"


def test_facturamas_empty_answer_is_the_full_object_it_was_sent():
    api = memory_api.facturama()
    raw = {"Id": "C1", "Rfc": "CPB130412IH9", "Name": "CLIENTE", "Email": "a@b.mx", "TaxZipCode": "01000"}
    api.clients.add(raw)
    invoicing, _ = build_sides(FM, Entity.CONTACTS, api, memory_api.clientify())
    data = invoicing.mapper.read("client", raw).data
    record = invoicing.update("client", "C1", raw, data | {"email": "b@b.mx"}, {"email"}, link=None)
    assert [c[0] for c in api.clients.calls] == ["update"]  # no read back: a full PUT stores what it got
    assert record.data["email"] == "b@b.mx" and record.rid == "C1"


def test_an_invoicing_create_carries_the_idempotency_key_and_is_read_as_answered():
    api, invoicing = classic_contacts()
    data = invoicing.mapper.read("client", FD_CLIENT).data
    record = invoicing.create("client", data, "2000099", idempotency_key="cs-1")
    assert api.clients.calls == [("create", "cs-1")]
    assert record.rid == "1" and record.link == "2000099" and record.data == data


def test_the_invoicing_listing_is_read_a_page_at_a_time():
    api, invoicing = classic_contacts()
    api.clients.add({**FD_CLIENT, "id": "8"}, {**FD_CLIENT, "id": "9"})
    pages = list(invoicing.pages())
    assert [(rtype, [r["id"] for r in page]) for rtype, page in pages] == [("", ["7", "8"]), ("", ["9"])]


CRM_COMPANY = {"id": "20", "name": "Acme SL", "taxpayer_identification_number": "B21910682",
               "custom_fields": [{"field": "in_facturadirecta", "value": "7"}]}  # fmt: skip


def crm_contacts() -> tuple[memory_api.ClientifyApi, ClientifySide]:
    crm = memory_api.clientify(link_field_facturadirecta="in_facturadirecta")
    crm.companies.add(CRM_COMPANY)
    _, clientify = build_sides(FD, Entity.CONTACTS, memory_api.facturadirecta(), crm)
    return crm, clientify


def test_clientify_pages_name_their_record_type_and_pass_the_modified_filter():
    crm, clientify = crm_contacts()
    crm.contacts.add({"id": "10", "first_name": "Ana", "last_name": "Ruiz"})
    pages = list(clientify.pages("2026-05-01T10:00:00+00:00"))
    assert [(rtype, [r["id"] for r in page]) for rtype, page in pages] == [
        ("contact", ["10"]),
        ("company", ["20"]),
    ]
    assert crm.contacts.calls == crm.companies.calls == [("list", "2026-05-01T10:00:00+00:00")]


def test_a_clientify_update_with_nothing_to_send_makes_no_call():
    crm, clientify = crm_contacts()
    data = clientify.mapper.read("company", CRM_COMPANY).data
    record = clientify.update(
        "company", "20", CRM_COMPANY, data, set(), link="7"
    )  # the link is there already
    assert crm.companies.calls == [] and record.rid == "20" and record.link == "7"


def test_a_clientify_update_answered_without_a_body_is_read_back():
    crm, clientify = crm_contacts()
    crm.companies.answers_updates = False
    data = clientify.mapper.read("company", CRM_COMPANY).data
    record = clientify.update(
        "company", "20", CRM_COMPANY, data | {"name": "Acme Dos SL"}, {"name"}, link="7"
    )
    assert [c[0] for c in crm.companies.calls] == ["update", "get"]
    assert record.data["name"] == "Acme Dos SL"


def test_find_tries_the_link_field_first_then_the_natural_key():
    crm, clientify = crm_contacts()
    [by_link] = clientify.find("7", "B99999999")
    assert by_link.rid == "20" and crm.companies.calls == [("find_by_custom_field", "in_facturadirecta", "7")]
    assert crm.contacts.calls == [("find_by_custom_field", "in_facturadirecta", "7")]  # contacts asked first
    [by_key] = clientify.find("8", "B21910682")
    assert by_key.rid == "20" and by_key.rtype == "company"
    assert clientify.find(None, None) == [] and clientify.find("8", "B99999999") == []


# -- the rounding product -------------------------------------------------------------------------
class Products:
    """Clientify's products as the rounding product uses them: counted finds and creates."""

    def __init__(self, existing: list[dict[str, Any]] | None = None) -> None:
        self.existing = existing or []
        self.finds = self.creates = 0
        self._lock = threading.Lock()

    def find_by_sku(self, sku: str) -> list[dict[str, Any]]:
        with self._lock:
            self.finds += 1
        return [p for p in self.existing if p["sku"] == sku]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.creates += 1
            created = {**body, "id": 900 + self.creates}
        self.existing.append(created)
        return created


def test_the_rounding_product_is_found_or_created_once_however_many_writers_ask_at_once():
    products = Products()
    product = RoundingProduct(products, RoundingPolicy(sku="AJUSTE", label="Ajuste por redondeo"))
    together = threading.Barrier(8, timeout=WAIT)

    def ask(_: int) -> str:
        together.wait()  # all eight ask at the same moment
        return product()

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(ask, range(8)))
    assert ids == ["901"] * 8
    assert (products.finds, products.creates) == (1, 1)
    assert products.existing == [{"name": "Ajuste por redondeo", "sku": "AJUSTE", "price": "0.00", "id": 901}]


def test_an_existing_rounding_product_is_reused():
    products = Products([{"id": 55, "sku": "AJUSTE-REDONDEO"}])
    product = RoundingProduct(products, RoundingPolicy())
    assert product() == product() == "55"
    assert (products.finds, products.creates) == (1, 0)


def test_sides_are_plain_values_built_without_a_call():
    """Building the sides asks nothing of Clientify (the REST custom field aside, tested above)."""
    crm = memory_api.clientify()
    build_sides(FM, Entity.ESTIMATES, memory_api.facturama(), crm)
    assert crm.writes() == [] and all(
        not r.calls for r in (crm.contacts, crm.companies, crm.products, crm.budgets)
    )
    assert crm.custom_fields.calls == []
