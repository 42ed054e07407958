"""Seeding the FacturaDirecta REST store from the generator's FacturaDirecta records.

Why convert instead of generating anew: both APIs front the same accounts, so ``POST /_sandbox/seed`` with
``"target": "both"`` puts the *same* generated clients, products and estimates in both stores (different
ids, as on the real service), which is what a test moving an account from one API to the other needs.
Seeded records are existing data: they skip request validation (a duplicate or invalid NIF stays) but get
the same normalisation, default accounts, computed totals, numbering and an ``inserted`` activity record
(username ``ami@facturadirecta.com``, the system user, ``details.importSource: "sandbox-seed"``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from include.sandbox import fd_rest_store as db
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.fd_rest_errors import Problems
from include.sandbox.models import facturadirecta_rest as model
from include.sandbox.models.facturadirecta_rest import CONTACT, ESTIMATE, PRODUCT
from include.sandbox.models.facturadirecta_rest_totals import VAT_BY_RATE
from include.sandbox.money import to_decimal
from include.sandbox.store import Session, Where

SYSTEM_USER = "ami@facturadirecta.com"
SEED_DETAILS = {"importSource": "sandbox-seed"}


def contact_main(record: dict[str, Any], account: str) -> dict[str, Any]:
    """A classic client as a REST contact: persons get ``name`` = given name + surnames (§15 question 2:
    no separate person fields are documented)."""
    address = record.get("address") or {}
    if record.get("legalType") == "F":
        name = " ".join(p for p in (record.get("personName"), record.get("personSurname")) if p)
    else:
        name = record.get("name") or ""
    main: dict[str, Any] = {"name": name, "title": model.contact_title(name)}
    tax_code = model.normalise_fiscal_id(record.get("taxCode") or "")
    if tax_code:
        main["fiscalId"] = tax_code
    for key, value in (
        ("email", record.get("email")),
        ("phone", record.get("phone")),
        ("address", ", ".join(p for p in (address.get("line1"), address.get("line2")) if p)),
        ("zipcode", address.get("zipcode")),
        ("city", address.get("city")),
        ("region", address.get("province")),
        ("country", address.get("country")),
        ("currency", (record.get("billing") or {}).get("currency")),
    ):
        if value:
            main[key] = value
    if tax_code and main.get("country"):
        main["fiscalIdCountry"] = main["country"]
    main["accounts"] = {"client": account}
    model.fill_credit_accounts(main["accounts"])
    return main


def product_main(record: dict[str, Any]) -> dict[str, Any]:
    """A classic product: ``productCode`` → ``sku``; its VAT and price → the sales facet (discount base 1)."""
    main: dict[str, Any] = {"name": record["name"], "title": record["name"].strip(), "currency": "EUR"}
    if record.get("productCode"):
        main["sku"] = record["productCode"]
    sales: dict[str, Any] = {
        "tax": ["S_IVA_21"] if record.get("applyTax1", "true") == "true" else [],
        "account": model.DEFAULT_SALES_ACCOUNT,
    }
    if record.get("price"):
        sales["price"] = to_decimal(record["price"])
    rate = to_decimal(record.get("discountRate") or "0")
    if rate:
        sales["discountRate"] = rate / 100
    if record.get("description"):
        sales["description"] = record["description"]
    main["sales"] = sales
    if record.get("purchasePrice"):
        main["purchases"] = {
            "tax": ["P_IVA_21"],
            "account": model.DEFAULT_PURCHASES_ACCOUNT,
            "price": to_decimal(record["purchasePrice"]),
        }
    return main


def estimate_main(
    record: dict[str, Any], contact_id: str, product_ids: dict[str, str], cfg: FacturaDirectaConfig
) -> dict[str, Any]:
    """A classic estimate as sent to the REST API (totals are computed by ``read_estimate``)."""
    rate = to_decimal(((record.get("tax1") or {}).get("rate")) or "0")
    vat = VAT_BY_RATE.get(rate.normalize() if rate else Decimal(0), "S_IVA_21")
    day = record["estimateDate"]
    lines = []
    for line in record.get("estimateLines") or []:
        discount = to_decimal(line.get("discountRate") or "0")
        item: dict[str, Any] = {
            "text": line.get("description") or "",
            "quantity": to_decimal(line["quantity"]),
            "unitPrice": to_decimal(line["unitPrice"]),
            "tax": [vat] if line.get("applyTax1", "true") == "true" else [],
        }
        if discount:
            item["discountRate"] = (
                discount if cfg.rest_estimate_discount_scale == "percent" else discount / 100
            )
        if product_ids.get(line.get("productCode") or ""):
            item["document"] = product_ids[line["productCode"]]
        lines.append(item)
    return {
        "contact": contact_id,
        "date": f"{day[:4]}-{day[4:6]}-{day[6:8]}",
        "currency": record.get("currency") or "EUR",
        "baseState": record.get("status") or "pending",
        "lines": lines,
    }


def insert(
    s: Session,
    cfg: FacturaDirectaConfig,
    now_us: int,
    clients: list[dict[str, Any]],
    products: list[dict[str, Any]],
    estimates: list[dict[str, Any]],
    client_ids: list[str] | None = None,
) -> dict[str, list[str]]:
    """Insert converted records into the main company; ``estimates`` name clients by ``client.id`` = the
    1-based position in ``client_ids`` (default: the contacts inserted here)."""
    company = cfg.rest_company_id
    write: dict[str, Any] = {"username": SYSTEM_USER, "request": None, "details": SEED_DETAILS}
    mains: dict[str, dict[str, Any]] = {}
    created: dict[str, list[str]] = {"rest_contacts": [], "rest_products": [], "rest_estimates": []}
    if clients:
        first = int(db.next_account(s, company, "client", len(clients))[3:])
        mains = {
            model.new_id(CONTACT.prefix): contact_main(r, f"430{first + i:04d}")
            for i, r in enumerate(clients)
        }
        contacts = [(rid, {"main": main, "tags": [], "archived": False}) for rid, main in mains.items()]
        db.save_many(s, CONTACT, company, contacts, now_us, **write)
        created["rest_contacts"] = list(mains)
    product_ids: dict[str, str] = {}
    if products:
        rows = [
            (model.new_id(PRODUCT.prefix), {"main": product_main(r), "tags": [], "archived": False})
            for r in products
        ]
        db.save_many(s, PRODUCT, company, rows, now_us, **write)
        created["rest_products"] = [rid for rid, _ in rows]
        for (rid, _), record in zip(rows, products, strict=True):
            if record.get("productCode"):
                product_ids.setdefault(record["productCode"], rid)
    if not estimates:
        return created
    if not product_ids:
        for row in s.select(PRODUCT.table, Where(PRODUCT.table).eq("k1", company)):
            if row.body["main"].get("sku"):
                product_ids.setdefault(row.body["main"]["sku"], row.rid)
    targets = client_ids or created["rest_contacts"]

    def contact(rid: str) -> dict[str, Any] | None:
        row = db.live(s, CONTACT, company, rid)
        return mains.get(rid) or (row.body["main"] if row else None)

    def product(rid: str) -> dict[str, Any] | None:
        row = db.live(s, PRODUCT, company, rid)
        return row.body["main"] if row else None

    look = model.EstimateLookups(contact, product, lambda: model.parse_day((model.iso(now_us) or "")[:10]))
    defs = db.definitions(s, company)
    numbered = []
    for record in estimates:
        sent = estimate_main(record, targets[int(record["client"]["id"]) - 1], product_ids, cfg)
        problems = Problems()
        main = model.read_estimate(sent, problems, cfg, defs, look, stored=None)
        problems.check()
        if record.get("notes"):  # the same document's notes, where the REST mappers assume them (§15 q. 1):
            main["notes"] = record["notes"]  # existing data, so not refused as an undocumented field
        main["series"] = "default"
        main["docNumber"] = db.next_number(
            s,
            company,
            "default",
            main["date"][:4],
            lambda n: db.doc_number_taken(s, ESTIMATE, company, "default", n),
        )
        numbered.append((model.new_id(ESTIMATE.prefix), {"main": main, "tags": [], "archived": False}))
    db.save_many(s, ESTIMATE, company, numbered, now_us, **write)
    created["rest_estimates"] = [rid for rid, _ in numbered]
    return created


def stored_targets(s: Session, cfg: FacturaDirectaConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """Existing REST contacts (ids) and products (in the generator's classic shape) for estimates-only seeds."""
    company = cfg.rest_company_id
    contacts = [row.rid for row in s.select(CONTACT.table, Where(CONTACT.table).eq("k1", company))]
    products = []
    for row in s.select(PRODUCT.table, Where(PRODUCT.table).eq("k1", company)):
        main = row.body["main"]
        price = (main.get("sales") or {}).get("price")
        products.append(
            {
                "productCode": main.get("sku") or "",
                "name": main["name"],
                "price": f"{price}" if price is not None else "0.00",
            }
        )
    return contacts, products
