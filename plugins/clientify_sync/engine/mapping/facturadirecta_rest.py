"""FacturaDirecta's REST/JSON API (``app.facturadirecta.com/api/{companyId}``, facturadirecta-rest-api.md
§7-§10) ↔ canonical contacts, products and estimates.

Why the same canonical data, keys and record types as the classic mappers (``facturadirecta.py``,
``estimates.FacturaDirectaEstimateMapper``): both APIs front the same accounts with different ids
(numeric vs ``con_…``/``pro_…``/``est_…``), so an account moving to the REST API re-links by tax ID, SKU
and our estimate reference only if both APIs read alike; ``client``/``product``/``estimate`` keep the
ledger, the reports and the status view unchanged. An estimate the sync did not create is ``FD-<id>``,
as on the classic API (its id is now an ``est_…``).

PUT replaces the whole record (§7-§9: anything not sent is erased), so an update is the record just
read with only the changed fields replaced (``FullObjectMapper``), less what the server computes.

The Clientify link is a custom field (``cfi_<uuid>`` in ``main.customFields``, §10) named by
``link_field_id``; ``None`` keeps it in the ledger only. Products take no custom fields (§8, the
emulator refuses them), so a product's link always lives in the ledger.

``identity`` names the id nested in the envelope (``content.uuid``), which staging reads by its dotted path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, cast

from clientify_sync.engine.documents import (
    Directory,
    RoundingPolicy,
    canonical_line,
    cents,
    dec,
    require_skus,
    rounding_adjustment,
)
from clientify_sync.engine.mapping import FullObjectMapper
from clientify_sync.engine.mapping.clientify import utc_iso
from clientify_sync.engine.mapping.estimates import CRM_PREFIX, _document, _linked_id, _status
from clientify_sync.engine.mapping.records import (
    RestContactMain,
    RestEstimateMain,
    RestProductMain,
    RestRecord,
)
from clientify_sync.engine.model import SideRecord, country, money, text
from clientify_sync.engine.taxid import classify_nif
from clientify_sync.engine.vocabulary import Side
from clientify_sync.errors import (
    ConfigurationError,
    DiscountNotRepresentableError,
    UnrepresentableError,
    UnsupportedTaxMixError,
)

ESTIMATE_PREFIX = "FD-"  # an estimate the sync did not create: the same prefix as on the classic API
# Sales VAT by our ``tax_rate`` (taxes.md@6f7d643 catalogue ids); a 0 % line is sent with no tax.
VAT_TAX_IDS = {Decimal(21): "S_IVA_21", Decimal(10): "S_IVA_10", Decimal(5): "S_IVA_5", Decimal(4): "S_IVA_4"}
VAT_RATES = {tax_id: rate for rate, tax_id in VAT_TAX_IDS.items()} | {"S_IVA_0": Decimal(0)}
DISCOUNT_SCALES = {"percent": Decimal(100), "fraction": Decimal(1)}  # §15.4: estimate lines' discountRate
# Line fields this mapping writes; the others of a line kept at its position (``account``) are carried over.
LINE_FIELDS = frozenset(
    {"text", "quantity", "unitPrice", "discount", "discountRate", "tax", "lineTotal", "document"}
)


def main_of(raw: dict[str, Any]) -> dict[str, Any]:
    """``content.main`` of a record as read (empty for ``{}``, the record a create starts from)."""
    main: dict[str, Any] = (raw.get("content") or {}).get("main") or {}
    return main


def rid_of(raw: dict[str, Any]) -> str:
    return str(raw["content"]["uuid"])


def custom_field(main: Mapping[str, Any], field_id: str | None) -> str | None:
    """A custom field's value (§10: ``main.customFields`` keyed by ``cfi_<uuid>``), None when unset."""
    if not field_id:
        return None
    return text((main.get("customFields") or {}).get(field_id)) or None


def json_number(value: Decimal | str) -> int | float:
    """An amount as the API prints it (``2178``, ``378.5``): a JSON number, exact to the cent."""
    amount = Decimal(value)
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def put(main: dict[str, Any], name: str, value: Any) -> None:
    """Set a mapped field, or drop it when empty (a full replace stores exactly what is sent)."""
    if value is None or value == "":
        main.pop(name, None)
    else:
        main[name] = value


class RestRecordMapper(FullObjectMapper):
    """The REST envelope's write side: a PUT sends ``content.type``, the read record's ``main`` without the
    fields the server computes (``computed``) and its ``tags`` (omitted, they would be erased too)."""

    content_type: ClassVar[str]
    computed: ClassVar[frozenset[str]] = frozenset({"title"})  # "server-computed; do not send" (§8)

    def _link_field(self) -> str | None:
        """The custom field holding the Clientify link; None: the ledger holds it."""
        return None

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        main = {
            name: copy.deepcopy(value) for name, value in main_of(raw).items() if name not in self.computed
        }
        self._apply(main, data, changed)
        field_id = self._link_field()
        if field_id and link is not None:
            main["customFields"] = {**(main.get("customFields") or {}), field_id: link}
        self._complete(main)
        return {"content": {"type": self.content_type, "main": main}, "tags": list(raw.get("tags") or [])}

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        return self.update_body(rtype, {}, data, set(data), link)


CONTACT_FIELDS = {"name": "name", "email": "email", "street": "address", "city": "city", "state": "region",
                  "postal_code": "zipcode", "country": "country"}  # fmt: skip


@dataclass
class FacturaDirectaRestContactMapper(RestRecordMapper):
    """REST ``contact`` ↔ canonical contact. No person/company field is documented (§15.2): the NIF
    decides, as on the classic API (``taxid.classify_nif``), and a person's full name is ``name``."""

    identity: ClassVar[tuple[str | None, str] | None] = ("client", "content.uuid")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)
    content_type: ClassVar[str] = "contact"

    link_field_id: str | None = None

    def _link_field(self) -> str | None:
        return self.link_field_id

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        record = cast(RestRecord[RestContactMain], raw)
        main = cast(RestContactMain, main_of(raw))
        tax = classify_nif(main.get("fiscalId"))
        data = {
            "tax_id": tax.key,
            "name": text(main.get("name")),
            "email": text(main.get("email")).lower(),
            "street": text(main.get("address")),
            "city": text(main.get("city")),
            "state": text(main.get("region")),
            "postal_code": text(main.get("zipcode")),
            "country": country(main.get("country")),
        }
        return SideRecord(
            side=Side.INVOICING, rtype="client", rid=rid_of(raw), data=data, key=tax.key, kind=tax.kind,
            problem=tax.problem, link=custom_field(main, self.link_field_id),
            modified=utc_iso(record.get("modificationDate")), raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "client"

    def _apply(self, body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        for canonical, name in CONTACT_FIELDS.items():
            if canonical in changed:
                put(body, name, data[canonical])
        if "tax_id" in changed:
            put(body, "fiscalId", data["tax_id"])
            if data["tax_id"]:
                body["fiscalIdCountry"] = "ES"  # only Spanish NIFs sync here (classify_nif)


@dataclass
class FacturaDirectaRestProductMapper(RestRecordMapper):
    """REST ``product`` ↔ canonical product: the SKU is ``main.sku``, the price the sales facet's.

    A create makes a sales product (``sales_taxes``, ``sales_account``: the facet requires both, §8) in
    ``currency`` (required), described by its name as the classic mapper does.
    """

    identity: ClassVar[tuple[str | None, str] | None] = ("product", "content.uuid")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)
    content_type: ClassVar[str] = "product"

    currency: str = "EUR"
    sales_account: str = "7000000"
    sales_taxes: tuple[str, ...] = ("S_IVA_21",)

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        record = cast(RestRecord[RestProductMain], raw)
        main = cast(RestProductMain, main_of(raw))
        sku = text(main.get("sku"))
        data = {
            "sku": sku,
            "name": text(main.get("name")),
            "price": money((main.get("sales") or {}).get("price")),
        }
        return SideRecord(
            side=Side.INVOICING, rtype="product", rid=rid_of(raw), data=data, key=sku.upper(),
            problem=None if sku else "no_sku", modified=utc_iso(record.get("modificationDate")), raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "product"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        body = super().create_body(rtype, data, link)
        sales = body["content"]["main"].setdefault("sales", self._sales())
        sales.setdefault("description", data["name"])
        return body

    def _sales(self) -> dict[str, Any]:
        return {"tax": list(self.sales_taxes), "account": self.sales_account}

    def _apply(self, body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        for name in ("name", "sku"):
            if name in changed:
                put(body, name, data[name])
        if "price" in changed and (data["price"] or body.get("sales")):
            sales = body.setdefault("sales", self._sales())
            put(sales, "price", json_number(data["price"]) if data["price"] else None)

    def _complete(self, body: dict[str, Any]) -> None:
        body.setdefault("currency", self.currency)


@dataclass
class FacturaDirectaRestEstimateMapper(RestRecordMapper):
    """REST ``estimate`` ↔ canonical document.

    Lines: ``document`` is the product (``pro_…``, its SKU through the ``Directory``), ``tax`` one sales
    VAT id (``VAT_TAX_IDS``), the discount written as an amount (``discount``, exact to the cent) and read
    from either form. Totals are the server's (§9): line nets rounded, VAT rounded once per tax of the
    document, as the emulator and the classic API do, so our rounding adjustment line (no product, no
    tax, the policy's label) is the classic one. ``notes_field``: where notes live, a main field or a
    ``cfi_…`` custom field (the reference names no notes field, §15.1).
    """

    identity: ClassVar[tuple[str | None, str] | None] = ("estimate", "content.uuid")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)
    content_type: ClassVar[str] = "estimate"
    computed: ClassVar[frozenset[str]] = frozenset(
        {"title", "linesTotal", "totalBeforeTaxes", "taxes", "total"}
    )

    directory: Directory
    link_field_id: str | None = None
    notes_field: str = "notes"
    discount_scale: str = "percent"
    rounding: RoundingPolicy = field(default_factory=RoundingPolicy)
    # Product id → SKU, from the directory (state read once, not a setting: the directory's fingerprint
    # is already part of the mapping's, staging.py).
    _skus: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.discount_scale not in DISCOUNT_SCALES:
            raise ConfigurationError(f"discount_scale must be one of {sorted(DISCOUNT_SCALES)}")
        for key, ids in self.directory.products.items():
            if ids.get("inv"):
                self._skus[str(ids["inv"])] = key
        for key, raw in self.directory.inv_products_raw.items():
            product_id = text((raw.get("content") or {}).get("uuid"))
            if product_id:
                self._skus[product_id] = text(main_of(raw).get("sku")) or key

    def _link_field(self) -> str | None:
        return self.link_field_id

    def _is_rounding(self, line: Mapping[str, Any]) -> bool:
        """Our adjustment line: the policy's label, no product, no tax."""
        return (
            text(line.get("text")) == self.rounding.label and not line.get("document") and not line.get("tax")
        )

    def _net(self, line: Mapping[str, Any]) -> Decimal:
        """The server's line total: ``q2(quantity × unitPrice × (1 − rate) − discount)`` (§9)."""
        rate = dec(line.get("discountRate")) / DISCOUNT_SCALES[self.discount_scale]
        return cents(
            dec(line.get("quantity")) * dec(line.get("unitPrice")) * (1 - rate) - dec(line.get("discount"))
        )

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        record = cast(RestRecord[RestEstimateMain], raw)
        main, rid = cast(RestEstimateMain, main_of(raw)), rid_of(raw)
        lines, adjustment, problem = [], Decimal(0), None
        nets: dict[Decimal, Decimal] = {}  # line nets by VAT rate: the tax is rounded once per rate
        for line in main.get("lines") or []:
            net = self._net(line)
            if self._is_rounding(line):
                adjustment += net
                continue
            rate = vat_rate(line.get("tax"))
            if rate is None:
                problem, rate = problem or UnsupportedTaxMixError.reason, Decimal(0)
            nets[rate] = nets.get(rate, Decimal(0)) + net
            gross = dec(line.get("quantity")) * dec(line.get("unitPrice"))
            # The discount is what makes our net equal the server's, whichever form the line used.
            lines.append(canonical_line(self._skus.get(text(line.get("document")), ""), line.get("text"),
                                        line.get("quantity"), line.get("unitPrice"), cents(gross) - net, rate))  # fmt: skip
        if main.get("taxIncludedPrices"):
            problem = problem or UnrepresentableError.reason  # gross prices: no net unit price is exact
        link = custom_field(main, self.link_field_id)
        contact_id = text(main.get("contact"))
        data = {
            "customer": self.directory.inv_customer_keys.get(
                contact_id, f"facturadirecta-client:{contact_id}"
            ),
            "date": text(main.get("date"))[:10],
            "expiration_date": text(main.get("dueDate"))[:10],
            "currency": text(main.get("currency")).upper(),
            "status": _status(main.get("baseState")),
            "notes": self._notes(main),
            "lines": lines,
        }
        key = f"{CRM_PREFIX}{link}" if link else f"{ESTIMATE_PREFIX}{rid}"
        side_record = SideRecord(Side.INVOICING, "estimate", rid, data, key=key, problem=problem, link=link,
                                 modified=utc_iso(record.get("modificationDate")), raw=raw, rounding=adjustment)  # fmt: skip
        tax = sum((cents(net * rate / 100) for rate, net in nets.items()), Decimal(0))
        expected = sum(nets.values(), Decimal(0)) + adjustment + tax
        return _document(side_record, expected, main.get("total"), problem)

    def rtype_for(self, kind: str | None) -> str:
        return "estimate"

    def _notes(self, main: Mapping[str, Any]) -> str:
        if self.notes_field.startswith("cfi_"):
            return custom_field(main, self.notes_field) or ""
        return text(main.get(self.notes_field))

    def _apply(self, body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        if "customer" in changed:
            body["contact"] = _linked_id(self.directory, "customer", data["customer"], "inv")
        for canonical, name in (("date", "date"), ("expiration_date", "dueDate"), ("currency", "currency")):
            if canonical in changed:
                put(body, name, data[canonical])
        if "status" in changed:
            body["baseState"] = data["status"] or "pending"
        if "notes" in changed:
            if self.notes_field.startswith("cfi_"):
                body["customFields"] = dict(body.get("customFields") or {})
                put(body["customFields"], self.notes_field, data["notes"])
            else:
                put(body, self.notes_field, data["notes"])
        if changed & {"lines", "total"}:
            require_skus(data["lines"], "facturadirecta")
            before = [line for line in body.get("lines") or [] if not self._is_rounding(line)]
            lines = [
                self._line(line, before[i] if i < len(before) else {}) for i, line in enumerate(data["lines"])
            ]
            adjustment = rounding_adjustment(
                data["lines"], data.get("total"), target="facturadirecta", policy=self.rounding
            )
            if adjustment:
                lines.append({"text": self.rounding.label, "quantity": 1, "unitPrice": json_number(adjustment),
                              "tax": []})  # fmt: skip
            body["lines"] = lines
            if body.get("taxIncludedPrices"):
                body["taxIncludedPrices"] = False  # our unit prices are net

    def _line(self, line: dict[str, str], before: dict[str, Any]) -> dict[str, Any]:
        """A REST line; what we do not map of the line it replaces (``account``) is kept when that line
        was of the same product."""
        product_id = str(_linked_id(self.directory, "product", line["sku"], "inv"))
        discount, rate = dec(line["discount"]), dec(line["tax_rate"])
        if discount < 0:
            raise DiscountNotRepresentableError(
                f"a negative discount ({discount}) is no FacturaDirecta discount"
            )
        if rate and rate not in VAT_TAX_IDS:
            raise UnsupportedTaxMixError(
                f"FacturaDirecta has no sales VAT tax id for {rate} % (known: {sorted(map(str, VAT_TAX_IDS))})"
            )
        same = before.get("document") == product_id
        out = {k: copy.deepcopy(v) for k, v in before.items() if same and k not in LINE_FIELDS}
        out.update(text=line["description"] or self._product_text(line["sku"]), quantity=json_number(line["quantity"]),
                   unitPrice=json_number(line["unit_price"]), tax=[VAT_TAX_IDS[rate]] if rate else [],
                   document=product_id)  # fmt: skip
        if discount:
            out["discount"] = json_number(discount)
        return out

    def _product_text(self, sku: str) -> str:
        """A line's text is required (§9): an empty description takes the product's, as the classic API
        fills it."""
        main = main_of(self.directory.inv_products_raw.get(sku.upper(), {}))
        return text((main.get("sales") or {}).get("description")) or text(main.get("name")) or sku

    def _complete(self, body: dict[str, Any]) -> None:
        for line in body.get("lines") or []:
            line.pop("lineTotal", None)  # computed by the server; a stale one is a 400 (taxes.md@6f7d643)


def vat_rate(taxes: Any) -> Decimal | None:
    """A line's VAT rate from its tax ids: none is 0 %; one known VAT id its rate; anything else (IRPF, two
    VATs, an id we do not know) is None, which canonical lines cannot hold."""
    ids = list(taxes or [])
    if not ids:
        return Decimal(0)
    if len(ids) == 1 and ids[0] in VAT_RATES:
        return VAT_RATES[ids[0]]
    return None
