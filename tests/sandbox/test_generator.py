"""Fake data generator: determinism, valid tax ids (checked with python-stdnum), exact defect counts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
from stdnum.es import cif as es_cif
from stdnum.es import nif as es_nif
from stdnum.mx import rfc as mx_rfc

from include.sandbox import generator as g

FACTURAMA_CLIENT_KEYS = {
    "Email", "EmailOp1", "EmailOp2", "Address", "Rfc", "Name", "CfdiUse", "FiscalRegime", "TaxZipCode",
    "TaxResidence", "NumRegIdTrib",
}  # fmt: skip
ADDRESS_KEYS = {
    "Street", "ExteriorNumber", "InteriorNumber", "Neighborhood", "ZipCode", "Locality", "Municipality",
    "State", "Country",
}  # fmt: skip
MX_STATE_NAMES = {s[0] for s in g.MX_STATES}
ES_PROVINCES = {name: code for code, name, _ in g.ES_PROVINCES}
EMAIL = re.compile(r"^[a-z0-9.]+@[a-z0-9.-]+\.[a-z]+$")


def rfc_ok(value: str) -> bool:
    return mx_rfc.is_valid(value, validate_check_digits=True)


def with_ids(records: list[dict], key: str) -> list[dict]:
    """What the sandbox hands back after creating them."""
    return [{**r, key: f"id{i}" if key == "Id" else i + 1} for i, r in enumerate(records)]


# ---------------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------------

_FM_CLIENTS = with_ids(g.facturama_clients(30, 1), "Id")
_FM_PRODUCTS = g.facturama_products(30, 1)
_FD_CLIENTS = with_ids(g.facturadirecta_clients(30, 1), "id")
_FD_PRODUCTS = g.facturadirecta_products(30, 1)

GENERATORS: dict[str, Callable[[int], object]] = {
    "facturama_clients": lambda s: g.facturama_clients(
        200, s, no_rfc=0.1, duplicate_rfc=0.1, unicode_names=0.1
    ),
    "facturama_products": lambda s: g.facturama_products(200, s),
    "facturama_estimates": lambda s: g.facturama_estimates(50, s, clients=_FM_CLIENTS, products=_FM_PRODUCTS),
    "facturadirecta_clients": lambda s: g.facturadirecta_clients(200, s, invalid_rfc=0.1, long_names=0.1),
    "facturadirecta_products": lambda s: g.facturadirecta_products(200, s),
    "facturadirecta_estimates": lambda s: g.facturadirecta_estimates(
        50, s, clients=_FD_CLIENTS, products=_FD_PRODUCTS
    ),
    "clientify_overlap": lambda s: g.clientify_overlap("facturama", _FM_CLIENTS, 0.5, s),
    "clientify_contacts_mx": lambda s: g.clientify_contacts(100, s),
    "clientify_contacts_es": lambda s: g.clientify_contacts(100, s, country="ES"),
    "clientify_companies_mx": lambda s: g.clientify_companies(100, s),
    "clientify_companies_es": lambda s: g.clientify_companies(100, s, country="ES"),
    "clientify_products": lambda s: g.clientify_products(100, s),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_same_output_other_seed_differs(name: str) -> None:
    make = GENERATORS[name]
    assert make(7) == make(7)
    assert make(7) != make(8)


def test_global_random_untouched() -> None:
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    g.facturama_clients(50, 1)
    g.facturadirecta_clients(50, 1)
    assert random.random() == expected


# ---------------------------------------------------------------------------------------------------
# Facturama
# ---------------------------------------------------------------------------------------------------


def test_facturama_clients_shape_and_valid_unique_rfcs() -> None:
    records = g.facturama_clients(3000, 5)
    rfcs = [r["Rfc"] for r in records]
    assert len(set(rfcs)) == len(rfcs)
    assert all(rfc_ok(x) for x in rfcs)
    lengths = Counter(len(x) for x in rfcs)
    assert lengths == {12: 1200, 13: 1800}
    for r in records:
        assert set(r) == FACTURAMA_CLIENT_KEYS
        assert set(r["Address"]) == ADDRESS_KEYS
        company = len(r["Rfc"]) == 12
        assert r["FiscalRegime"] in (("601", "603") if company else ("605", "612", "626"))
        assert r["Name"] == r["Name"].upper() and r["Name"].isascii()
        assert company == (r["Name"].split()[-1] in ("CV", "SC", "AC"))
        if not company:
            assert len(r["Name"].split()) in (3, 4)
        assert re.fullmatch(r"\d{5}", r["Address"]["ZipCode"]) and r["TaxZipCode"] == r["Address"]["ZipCode"]
        assert r["Address"]["State"] in MX_STATE_NAMES and r["Address"]["Country"] == "MEX"
        assert EMAIL.match(r["Email"])
        assert r["CfdiUse"] in {"G01", "G03", "D01", "S01", "CP01", "I04", "I08"}
    assert len({r["Email"] for r in records}) == len(records)


def test_facturama_client_defects_exact() -> None:
    n = 1000
    records = g.facturama_clients(
        n,
        3,
        no_rfc=0.05,
        invalid_rfc=0.04,
        generic_rfc=0.03,
        duplicate_rfc=0.06,
        unicode_names=0.1,
        long_names=0.02,
    )
    rfcs = [r["Rfc"] for r in records]
    assert rfcs.count("") == 50
    assert sum(x in g.MX_GENERIC_RFCS for x in rfcs) == 30
    invalid = [x for x in rfcs if x and x not in g.MX_GENERIC_RFCS and not rfc_ok(x)]
    assert len(invalid) == 40
    assert all(len(x) in (12, 13) for x in invalid)
    valid = [x for x in rfcs if rfc_ok(x)]
    assert len(valid) == n - 50 - 30 - 40 and len(valid) - len(set(valid)) == 60
    names = [r["Name"] for r in records]
    assert sum(not x.isascii() for x in names) == 100
    assert sum(len(x) >= 250 for x in names) == 20
    assert all(len(x) <= 320 for x in names)
    foreign = [r for r in records if r["Rfc"] == "XEXX010101000"]
    assert all(r["TaxResidence"] and r["NumRegIdTrib"] for r in foreign)


def test_defect_fractions_must_fit() -> None:
    with pytest.raises(ValueError):
        g.facturama_clients(10, 1, no_rfc=0.6, invalid_rfc=0.6)


def test_facturama_products() -> None:
    records = g.facturama_products(1000, 2)
    skus = [r["IdentificationNumber"] for r in records if r["IdentificationNumber"]]
    assert len(skus) == 900 and len(set(skus)) == 900
    assert all(re.fullmatch(r"SKU-\d{6}", s) for s in skus)
    assert {r["IdentificationNumber"] for r in records if not r["IdentificationNumber"]} <= {"", None}
    for r in records:
        assert 2 <= len(r["Name"]) <= 50 and r["Description"]
        assert 1 <= len(r["Unit"]) <= 20 and r["UnitCode"] in ("E48", "H87")
        assert isinstance(r["Price"], float) and r["Price"] > 0
        assert Decimal(str(r["Price"])) == Decimal(str(r["Price"])).quantize(Decimal("0.01"))
        assert re.fullmatch(r"\d{8}", r["CodeProdServ"])
        assert r["Taxes"] == [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}]


def test_facturama_estimates_reference_only_products_with_sku() -> None:
    products = g.facturama_products(40, 4, sku_fraction=0.5)
    clients = with_ids(g.facturama_clients(20, 4), "Id")
    by_sku = {p["IdentificationNumber"]: p for p in products if p["IdentificationNumber"]}
    by_id = {c["Id"]: c for c in clients}
    for est in g.facturama_estimates(100, 4, clients=clients, products=products):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", est["Date"])
        assert est["Currency"] == "MXN" and est["Status"] in ("Pending", "Accepted", "Rejected", "Closed")
        receiver = by_id[est["Receiver"]["Id"]]
        assert est["Receiver"] == {"Id": receiver["Id"], "Rfc": receiver["Rfc"], "Name": receiver["Name"]}
        assert 1 <= len(est["Items"]) <= 10
        for item in est["Items"]:
            product = by_sku[item["IdentificationNumber"]]
            assert item["UnitPrice"] == product["Price"] and item["ProductCode"] == product["CodeProdServ"]
            subtotal = g.money(Decimal(str(item["Quantity"])) * Decimal(str(item["UnitPrice"])))
            assert Decimal(str(item["Subtotal"])) == subtotal
            base = subtotal - Decimal(str(item["Discount"]))
            tax = g.money(base * Decimal("0.16"))
            assert item["Taxes"][0]["Total"] == float(tax) and item["Total"] == float(base + tax)


def test_estimates_need_ids_and_skus() -> None:
    with pytest.raises(ValueError):
        g.facturama_estimates(1, 1, clients=g.facturama_clients(3, 1), products=_FM_PRODUCTS)
    with pytest.raises(ValueError):
        g.facturama_estimates(1, 1, clients=_FM_CLIENTS, products=g.facturama_products(5, 1, sku_fraction=0))
    with pytest.raises(ValueError):
        g.facturadirecta_estimates(
            1, 1, clients=_FD_CLIENTS, products=g.facturadirecta_products(5, 1, code_fraction=0)
        )


# ---------------------------------------------------------------------------------------------------
# FacturaDirecta
# ---------------------------------------------------------------------------------------------------


def test_facturadirecta_clients_valid_nif_nie_cif() -> None:
    records = g.facturadirecta_clients(3000, 6)
    codes = [r["taxCode"] for r in records]
    assert len(set(codes)) == len(codes)
    kinds = Counter()
    for r in records:
        code = r["taxCode"]
        assert es_nif.is_valid(code), code
        if r["legalType"] == "J":
            assert es_cif.is_valid(code) and r["name"] and "personName" not in r
            kinds["cif"] += 1
        else:
            assert not es_cif.is_valid(code) and r["personName"] and r["personSurname"] and "name" not in r
            kinds["dni" if code[0].isdigit() else "nie" if code[0] in "XYZ" else "klm"] += 1
        address = r["address"]
        assert set(address) == {"line1", "line2", "city", "province", "zipcode", "country"}
        assert address["country"] == "ES" and re.fullmatch(r"\d{5}", address["zipcode"])
        assert int(address["zipcode"][:2]) == ES_PROVINCES[address["province"]]
        assert r["language"] == "es" and r["billing"] == {"currency": "EUR"} and r["customAttributes"] == []
        assert EMAIL.match(r["email"]) and re.fullmatch(r"[679]\d{8}", r["phone"])
    assert kinds["cif"] == 1200
    assert kinds["dni"] > 1000 and kinds["nie"] > 100 and kinds["klm"] > 10


def test_facturadirecta_cif_check_character_by_letter() -> None:
    for r in g.facturadirecta_clients(2000, 9, company_fraction=1.0):
        code = r["taxCode"]
        if code[0] in "PQSNW":
            assert code[-1].isalpha(), code
        elif code[0] in "ABEH":
            assert code[-1].isdigit(), code


def test_facturadirecta_client_defects_exact() -> None:
    n = 1000
    records = g.facturadirecta_clients(
        n,
        8,
        no_rfc=0.05,
        invalid_rfc=0.05,
        generic_rfc=0.02,
        duplicate_rfc=0.05,
        unicode_names=0.1,
        long_names=0.03,
    )
    codes = [r["taxCode"] for r in records]
    assert codes.count("") == 50
    assert sum(c in g.ES_GENERIC_NIFS for c in codes) == 20
    assert sum(bool(c) and not es_nif.is_valid(c) for c in codes) == 50
    valid = [c for c in codes if es_nif.is_valid(c) and c not in g.ES_GENERIC_NIFS]
    assert len(valid) - len(set(valid)) == 50
    names = [" ".join(str(r.get(k, "")) for k in ("name", "personName", "personSurname")) for r in records]
    assert sum(not x.isascii() for x in names) == 100
    assert sum(len(x) >= 250 for x in names) == 30


def test_facturadirecta_products() -> None:
    records = g.facturadirecta_products(500, 3)
    codes = [r["productCode"] for r in records if r["productCode"]]
    assert len(codes) == 450 and len(set(codes)) == 450
    for r in records:
        assert re.fullmatch(r"\d+\.\d\d", r["price"]) and Decimal(r["price"]) > 0
        assert re.fullmatch(r"\d+\.\d\d", r["purchasePrice"])
        assert r["name"] and r["description"]


def test_facturadirecta_estimates() -> None:
    products = g.facturadirecta_products(40, 5, code_fraction=0.5)
    codes = {p["productCode"]: p for p in products if p["productCode"]}
    ids = {c["id"] for c in _FD_CLIENTS}
    for est in g.facturadirecta_estimates(100, 5, clients=_FD_CLIENTS, products=products):
        assert est["client"]["id"] in ids
        assert re.fullmatch(r"20\d{6}", est["estimateDate"])
        assert est["currency"] == "EUR" and est["status"] in ("pending", "accepted", "rejected", "closed")
        assert est["tax1"] == {"name": "IVA", "rate": "21.00"}
        assert 1 <= len(est["estimateLines"]) <= 10
        for line in est["estimateLines"]:
            product = codes[line["productCode"]]
            assert line["unitPrice"] == product["price"] and line["applyTax1"] == "true"
            assert Decimal(line["quantity"]) > 0 and 0 <= Decimal(line["discountRate"]) <= 100


# ---------------------------------------------------------------------------------------------------
# Clientify
# ---------------------------------------------------------------------------------------------------


def test_clientify_overlap_facturama() -> None:
    customers = g.facturama_clients(1000, 11, no_rfc=0.1, invalid_rfc=0.1, generic_rfc=0.1, duplicate_rfc=0.1)
    eligible = {r["Rfc"] for r in customers if rfc_ok(r["Rfc"]) and r["Rfc"] not in g.MX_GENERIC_RFCS}
    pairs = g.clientify_overlap("facturama", customers, 0.3, 1)
    assert len(pairs) == round(len(eligible) * 0.3)
    tax_ids = [body["taxpayer_identification_number"] for _, body in pairs]
    assert len(set(tax_ids)) == len(tax_ids) and set(tax_ids) <= eligible
    by_rfc: dict[str, dict] = {}
    for r in customers:
        by_rfc.setdefault(r["Rfc"], r)  # a duplicated tax id yields the first customer's record
    for resource, body in pairs:
        tax_id = body["taxpayer_identification_number"]
        assert resource == ("contacts" if len(tax_id) == 13 else "companies")
        assert "custom_fields" not in body
        assert body["email"] == by_rfc[tax_id]["Email"]
        assert body["addresses"][0]["type"] == 3 and body["addresses"][0]["country"] == "MX"
        if resource == "contacts":
            assert body["first_name"] and body["last_name"]
        else:
            assert body["name"]
    assert (
        g.clientify_overlap("facturama", customers, 1.0, 1)[0][1]["taxpayer_identification_number"]
        in eligible
    )


def test_clientify_overlap_facturadirecta() -> None:
    customers = g.facturadirecta_clients(500, 12, generic_rfc=0.1, invalid_rfc=0.1)
    pairs = g.clientify_overlap("facturadirecta", customers, 1.0, 0)
    assert len(pairs) == 400
    for resource, body in pairs:
        tax_id = body["taxpayer_identification_number"]
        assert tax_id not in g.ES_GENERIC_NIFS and es_nif.is_valid(tax_id)
        assert resource == ("companies" if es_cif.is_valid(tax_id) else "contacts")
        assert body["addresses"][0]["country"] == "ES"
    assert g.clientify_overlap("facturadirecta", customers, 0.0, 0) == []
    with pytest.raises(ValueError):
        g.clientify_overlap("alegra", customers, 0.5, 0)


def test_clientify_native_records() -> None:
    mx_contacts = g.clientify_contacts(500, 1)
    es_contacts = g.clientify_contacts(500, 1, country="ES")
    mx_companies = g.clientify_companies(500, 1)
    es_companies = g.clientify_companies(500, 1, country="ES")
    assert all(rfc_ok(c["taxpayer_identification_number"]) and len(c["taxpayer_identification_number"]) == 13
               for c in mx_contacts)  # fmt: skip
    assert all(rfc_ok(c["taxpayer_identification_number"]) and len(c["taxpayer_identification_number"]) == 12
               for c in mx_companies)  # fmt: skip
    assert all(g.tax_id_kind(c["taxpayer_identification_number"]) == "person" for c in es_contacts)
    assert all(g.tax_id_kind(c["taxpayer_identification_number"]) == "company" for c in es_companies)
    for batch in (mx_contacts, es_contacts, mx_companies, es_companies):
        ids = [c["taxpayer_identification_number"] for c in batch]
        assert len(set(ids)) == len(ids)
        assert all(EMAIL.match(c["email"]) for c in batch)
    products = g.clientify_products(300, 1)
    assert len({p["sku"] for p in products}) == 300
    assert all(re.fullmatch(r"\d+\.\d\d", p["price"]) for p in products)
    with pytest.raises(ValueError):
        g.clientify_contacts(1, 1, country="FR")


@pytest.mark.parametrize(
    ("tax_id", "kind"),
    [
        ("URE180429TM6", "company"), ("EKU9003173C9", "company"), ("CACX7605101P8", "person"),
        ("IAÑL750210963", "person"), ("XAXX010101000", None), ("XEXX010101000", None),
        ("RODJ899315654", None), ("12345678Z", "person"), ("X6089822C", "person"), ("B12345674", "company"),
        ("Q2826000H", "company"), ("12345678A", None), ("B12345675", None), ("00000000T", None), ("", None),
        (None, None),
    ],
)  # fmt: skip
def test_tax_id_kind(tax_id: str | None, kind: str | None) -> None:
    assert g.tax_id_kind(tax_id) == kind


def test_100k_clients_have_unique_valid_rfcs() -> None:
    """Scale check on content; the generator's speed is a target in ``make bench`` (bench/sandbox_checks.py)."""
    records = g.facturama_clients(100_000, 42)
    assert len(records) == 100_000
    rfcs = [r["Rfc"] for r in records]
    assert len(set(rfcs)) == len(rfcs)
    assert all(rfc_ok(x) for x in rfcs)
