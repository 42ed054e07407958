"""FacturaDirecta REST/JSON records (facturadirecta-rest-api.md): validation, full-replace writes,
computed fields and the envelope. No HTTP and no store here: the router supplies lookups.

Stored body of a contact, product or estimate: ``{"main": {...}, "tags": [...], "archived": bool}``
plus internal keys starting with ``_``. A PUT builds ``main`` again from what was sent (§7-§9: anything
omitted is erased), except product ``stock`` (kept when omitted, products.md@71a967a), estimate
numbering (kept, inferred) and custom-field values hidden from the caller (kept, inferred).
Amounts are ``Decimal`` inside and plain JSON numbers outside (``2178``, ``378.5``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.fd_rest_errors import Problems
from include.sandbox.models import facturadirecta_rest_totals as totals
from include.sandbox.store import NewRow
from include.sandbox.taxids import spanish_tax_code_kind

# -- kinds, ids, plans ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str  # content.type and activity documentType
    plural: str  # path segment and scope resource
    prefix: str
    table: str
    article: str  # Spanish UI text of the activity description


CONTACT = Kind("contact", "contacts", "con_", "facturadirecta_rest_contacts", "el contacto")
PRODUCT = Kind("product", "products", "pro_", "facturadirecta_rest_products", "el producto")
ESTIMATE = Kind("estimate", "estimates", "est_", "facturadirecta_rest_estimates", "el presupuesto")
KINDS = {k.plural: k for k in (CONTACT, PRODUCT, ESTIMATE)}
CUSTOM_FIELDS_TABLE = "facturadirecta_rest_custom_fields"
ACTIVITY_TABLE = "facturadirecta_rest_activity"
IDEMPOTENCY_TABLE = "facturadirecta_rest_idempotency"

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CFI_ID = re.compile(r"cfi_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
DOC_TYPES = (
    "invoice",
    "estimate",
    "deliveryNote",
    "clientOrder",
    "purchaseOrder",
    "bill",
    "payroll",
    "contact",
)
ESTIMATE_STATES = ("pending", "accepted", "rejected", "closed")
ACCOUNT_KEYS = ("client", "clientCredit", "provider", "providerCredit", "employee", "employeeCredit")
# Spanish chart of accounts: the credit account of each facet (430→438 as in contacts.md's example; the
# provider and employee pairs are inferred).
CREDIT_OF = {
    "client": ("clientCredit", "438"),
    "provider": ("providerCredit", "407"),
    "employee": ("employeeCredit", "460"),
}
DEFAULT_SALES_ACCOUNT = "7000000"
DEFAULT_PURCHASES_ACCOUNT = "6000000"
MAX_CUSTOM_FIELDS = 20

# errors.md@03f4cd9, contacts.md@03f4cd9: caps per plan (None = unlimited), rate limits per minute.
PLANS: dict[str, dict[str, int | None]] = {
    "gratis": {"clients": 10, "employees": 1, "rate": 30},
    "bronce": {"clients": 100, "employees": 2, "rate": 60},
    "plata": {"clients": None, "employees": 5, "rate": 120},
    "oro": {"clients": None, "employees": 20, "rate": 300},
    "diamante": {"clients": None, "employees": None, "rate": 600},
}


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4()}"


def is_id(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and re.fullmatch(re.escape(prefix) + UUID, value) is not None


# -- time ----------------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def iso(micros: int | None) -> str | None:
    """``YYYY-MM-DDTHH:mm:ss.sssZ`` (pagination.md@03f4cd9)."""
    if micros is None:
        return None
    moment = EPOCH + timedelta(microseconds=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso_ms(text: str) -> int:
    """The documented filter format only; raises ``ValueError`` otherwise (also for impossible dates)."""
    if not ISO_MS.fullmatch(text):
        raise ValueError(text)
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def parse_iso_any(text: str) -> int:
    """Activity ``minDate``/``maxDate``: any ISO 8601 date-time (a naive one is UTC) or date."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` that exists (``2026-02-30`` raises ``ValueError``, estimates.md@afc30cc)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return date.fromisoformat(text)


# -- field readers -------------------------------------------------------------------------------------

_FISCAL_SEPARATORS = re.compile(r"[\s.\-/]")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ACCOUNT = re.compile(r"\d{3,12}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_LEGAL_FORMS = re.compile(
    r",?\s+(S\.?L\.?U?\.?|S\.?A\.?U?\.?|S\.?COOP\.?|S\.?L\.?L\.?|C\.?B\.?)$", re.IGNORECASE
)


class Reader:
    """Reads one object of the body under a dotted path, recording problems instead of raising."""

    def __init__(self, data: dict[str, Any], path: str, problems: Problems) -> None:
        self.data = data
        self.path = path
        self.p = problems

    def at(self, key: str | int) -> str:
        return f"{self.path}.{key}"

    def text(self, key: str, *, required: bool = False, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.p.add(self.at(key), f"must have required property '{key}'", "required")
            return None
        if not isinstance(value, str):
            self.p.add(self.at(key), "must be string", "invalid_type")
            return None
        if required and not value.strip():
            self.p.add(self.at(key), "must NOT have fewer than 1 characters", "required")
            return None
        if pattern is not None and value and not pattern.fullmatch(value):
            self.p.add(self.at(key), f'must match pattern "{pattern.pattern}"', "invalid_format")
            return None
        return value

    def number(
        self, key: str, *, required: bool = False, low: Decimal | None = None, high: Decimal | None = None
    ) -> Decimal | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.p.add(self.at(key), f"must have required property '{key}'", "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.p.add(self.at(key), "must be number", "invalid_type")
            return None
        number = Decimal(value)
        if (low is not None and number < low) or (high is not None and number > high):
            self.p.add(self.at(key), f"must be between {low} and {high}", "out_of_range")
            return None
        return number

    def flag(self, key: str, default: bool | None = None) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.p.add(self.at(key), "must be boolean", "invalid_type")
            return default
        return value

    def day(self, key: str) -> str | None:
        text = self.text(key, pattern=_DAY)
        if text:
            try:
                parse_day(text)
            except ValueError:
                self.p.add(self.at(key), "must be an existing date (YYYY-MM-DD)", "invalid_date")
                return None
        return text

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.data.get(key, default)
        if value not in choices:
            self.p.add(
                self.at(key),
                f"must be equal to one of the allowed values: {', '.join(choices)}",
                "invalid_enum",
            )
            return default
        return str(value)

    def obj(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.p.add(self.at(key), "must be object", "invalid_type")
            return None
        return value

    def array(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.p.add(self.at(key), "must be array", "invalid_type")
            return None
        return value

    def unknown(self, known: frozenset[str], keep: bool, out: dict[str, Any]) -> None:
        """Fields the reference does not name: kept as sent (the schema is not public, §15.1) or rejected."""
        for key in self.data:
            if key in known:
                continue
            if keep:
                out[key] = self.data[key]
            else:
                self.p.add(self.at(key), "must NOT have additional properties", "additional_property")


# -- envelope in ---------------------------------------------------------------------------------------


@dataclass
class Sent:
    """The checked top level of a write body."""

    main: dict[str, Any]
    tags: list[str]
    uuid: str | None


def read_envelope(payload: Any, kind: Kind, problems: Problems, *, creating: bool) -> Sent:
    """``{"content": {"type", "uuid"?, "main"}, "tags"?}``; ``content.type`` must name the resource."""
    if not isinstance(payload, dict):
        problems.add("", "must be object", "invalid_type")
        problems.check()
    content = payload.get("content")
    if not isinstance(content, dict):
        problems.add(
            "content",
            "must have required property 'content'" if content is None else "must be object",
            "required" if content is None else "invalid_type",
        )
        problems.check()
    if content.get("type", kind.name) != kind.name:
        problems.add("content.type", f"must be equal to constant '{kind.name}'", "invalid_enum")
    sent_uuid = content.get("uuid")
    if sent_uuid is not None and not is_id(sent_uuid, kind.prefix):
        problems.add("content.uuid", f"must be {kind.prefix}<uuid>", "invalid_format")
        sent_uuid = None
    main = content.get("main")
    if not isinstance(main, dict):
        problems.add(
            "content.main",
            "must have required property 'main'" if main is None else "must be object",
            "required" if main is None else "invalid_type",
        )
        main = {}
    tags = read_tags(payload.get("tags"), problems)
    return Sent(main=main, tags=tags, uuid=sent_uuid)


def read_tags(value: Any, problems: Problems, path: str = "tags") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        problems.add(path, "must be array of strings", "invalid_type")
        return []
    return list(dict.fromkeys(t for t in value if t.strip()))


# -- custom fields on documents ------------------------------------------------------------------------


def read_custom_values(
    r: Reader, doc_type: str, definitions: dict[str, dict[str, Any]], hidden: dict[str, Any]
) -> dict[str, Any] | None:
    """``main.customFields``: keys must be defined for the company (archived ones stay valid) and carry the
    document type; an unknown or malformed key is a 400 (custom-fields.md@72b2f19). ``hidden``: stored
    values the caller cannot see (definition no longer lists the type), kept across a PUT."""
    values = r.obj("customFields")
    if values is None:
        return dict(hidden) if hidden else None
    out = dict(hidden)
    for key, value in values.items():
        path = f"{r.at('customFields')}.{key}"
        definition = definitions.get(key)
        if not CFI_ID.fullmatch(key) or definition is None:
            r.p.add(path, f"unknown custom field '{key}'", "unknown_custom_field")
        elif doc_type not in definition["docTypes"]:
            r.p.add(path, f"custom field '{key}' is not defined for {doc_type}", "unknown_custom_field")
        elif value is not None and not isinstance(value, str | int | Decimal | bool):
            r.p.add(path, "must be string, number or boolean", "invalid_type")
        else:
            out[key] = value
    return out


def hidden_values(
    stored: dict[str, Any] | None, doc_type: str, definitions: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    return {
        k: v for k, v in (stored or {}).items() if doc_type not in definitions.get(k, {}).get("docTypes", ())
    }


def visible_values(
    stored: dict[str, Any], doc_type: str, definitions: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Removing a document type from a definition keeps the values but hides them (custom-fields.md)."""
    return {k: v for k, v in stored.items() if doc_type in definitions.get(k, {}).get("docTypes", ())}


# -- contacts ------------------------------------------------------------------------------------------

CONTACT_TEXT = ("email", "phone", "address", "zipcode", "city", "region", "vatEU", "owner", "externalId")
CONTACT_KNOWN = frozenset(
    {
        "name",
        "title",
        "country",
        "fiscalId",
        "fiscalIdCountry",
        "currency",
        "accounts",
        "customFields",
        *CONTACT_TEXT,
    }
)


def normalise_fiscal_id(value: str) -> str:
    """Stored without separators or spaces (contacts.md@03f4cd9)."""
    return _FISCAL_SEPARATORS.sub("", value).upper()


def contact_title(name: str) -> str:
    """``Acme Diseño`` for ``Acme Diseño S.L.`` (contacts.md example; computed, inferred)."""
    return _LEGAL_FORMS.sub("", name.strip()) or name.strip()


def read_contact(
    main: dict[str, Any],
    p: Problems,
    cfg: FacturaDirectaConfig,
    definitions: dict[str, dict[str, Any]],
    *,
    creating: bool,
    stored: dict[str, Any] | None,
    next_account: Callable[[str], str],
) -> dict[str, Any]:
    r = Reader(main, "content.main", p)
    out: dict[str, Any] = {}
    r.unknown(CONTACT_KNOWN, cfg.rest_unknown_fields == "keep", out)
    name = r.text("name", required=True)
    if name is not None:
        out["name"] = name
        out["title"] = contact_title(name)
    for key in CONTACT_TEXT:
        value = r.text(key)
        if value is not None:
            out[key] = value
    country = r.text("country", pattern=_COUNTRY)
    fiscal_country = r.text("fiscalIdCountry", pattern=_COUNTRY)
    currency = r.text("currency", pattern=_CURRENCY)
    if country:
        out["country"] = country
    if currency:
        out["currency"] = currency
    fiscal_id = r.text("fiscalId")
    if fiscal_id is not None:
        fiscal_id = normalise_fiscal_id(fiscal_id)
        spanish = fiscal_country == "ES" or (fiscal_country is None and country == "ES")
        if fiscal_id and spanish and spanish_tax_code_kind(fiscal_id) is None:
            p.add(r.at("fiscalId"), f"'{fiscal_id}' is not a valid NIF/NIE/CIF", "invalid_fiscal_id")
        out["fiscalId"] = fiscal_id
    if fiscal_country or (fiscal_id and country):
        out["fiscalIdCountry"] = fiscal_country or country
    accounts = _read_accounts(r, creating, next_account)
    if accounts:
        out["accounts"] = accounts
    previous = (stored or {}).get("customFields")
    keep_values = cfg.rest_put_omits_custom_fields == "keep" and "customFields" not in main
    if keep_values and previous:
        out["customFields"] = dict(previous)
    else:
        values = read_custom_values(
            r, "contact", definitions, hidden_values(previous, "contact", definitions)
        )
        if values is not None:
            out["customFields"] = values
    return out


def _read_accounts(r: Reader, creating: bool, next_account: Callable[[str], str]) -> dict[str, str]:
    """Facets by account: none on a create → a client with the default accounts; a main account alone
    gets its credit account (contacts.md@03f4cd9). A PUT without ``accounts`` erases them (full replace)."""
    sent = r.obj("accounts")
    accounts: dict[str, str] = {}
    if not sent:
        if creating:
            accounts["client"] = next_account("client")
    else:
        sub = Reader(sent, r.at("accounts"), r.p)
        for key in sent:
            if key not in ACCOUNT_KEYS:
                r.p.add(sub.at(key), "must NOT have additional properties", "additional_property")
        for key in ACCOUNT_KEYS:
            value = sub.text(key, pattern=_ACCOUNT)
            if value:
                accounts[key] = value
    fill_credit_accounts(accounts)
    return accounts


def fill_credit_accounts(accounts: dict[str, str]) -> None:
    """``4300001`` → ``clientCredit`` ``4380001`` (the credit group with the same sub-account)."""
    for facet, (credit, group) in CREDIT_OF.items():
        if facet in accounts and not accounts.get(credit):
            accounts[credit] = group + accounts[facet][3:]


def facets(main: dict[str, Any]) -> set[str]:
    accounts = main.get("accounts") or {}
    return {facet for facet in CREDIT_OF if accounts.get(facet)}


# -- products ------------------------------------------------------------------------------------------

PRODUCT_KNOWN = frozenset({"name", "title", "currency", "sku", "externalId", "sales", "purchases", "stock"})
FACET_KNOWN = frozenset({"tax", "account", "price", "discountRate", "description", "depreciable", "provider"})


def read_product(
    main: dict[str, Any],
    p: Problems,
    cfg: FacturaDirectaConfig,
    *,
    stored: dict[str, Any] | None,
    contact_exists: Callable[[str], bool],
) -> dict[str, Any]:
    r = Reader(main, "content.main", p)
    out: dict[str, Any] = {}
    if "customFields" in main:
        p.add(r.at("customFields"), "custom fields are not available on products", "unknown_custom_field")
    r.unknown(PRODUCT_KNOWN | {"customFields"}, cfg.rest_unknown_fields == "keep", out)
    out.pop("customFields", None)
    name = r.text("name", required=True)
    if name is not None:
        out["name"] = name
        out["title"] = name.strip()
    currency = r.text("currency", required=True, pattern=_CURRENCY)
    if currency:
        out["currency"] = currency
    for key in ("sku", "externalId"):
        value = r.text(key)
        if value is not None:
            out[key] = value
    for facet, catalogue in (("sales", totals.SALES_TAXES), ("purchases", totals.PURCHASE_TAXES)):
        sent = r.obj(facet)
        if sent is not None:
            out[facet] = _read_facet(Reader(sent, r.at(facet), p), facet, catalogue, cfg, contact_exists)
    stock = r.obj("stock")
    if stock is None and stored and stored.get("stock") is not None:
        out["stock"] = stored["stock"]  # products.md@71a967a: a PUT without main.stock keeps it
    elif stock is not None:
        sr = Reader(stock, r.at("stock"), p)
        enabled = sr.flag("enabled")
        if "enabled" not in stock:
            p.add(sr.at("enabled"), "must have required property 'enabled'", "required")
        out["stock"] = {"enabled": bool(enabled)}
        for key in ("minimum", "replenishLot"):
            amount = sr.number(key, low=Decimal(0))
            if amount is not None:
                out["stock"][key] = amount
    return out


def _read_facet(
    r: Reader,
    facet: str,
    catalogue: dict[str, totals.Tax],
    cfg: FacturaDirectaConfig,
    contact_exists: Callable[[str], bool],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    r.unknown(
        FACET_KNOWN if facet == "purchases" else FACET_KNOWN - {"depreciable", "provider"},
        cfg.rest_unknown_fields == "keep",
        out,
    )
    taxes = r.array("tax")
    if "tax" not in r.data:
        r.p.add(r.at("tax"), "must have required property 'tax'", "required")
    out["tax"] = read_tax_ids(taxes or [], r.at("tax"), catalogue, r.p, facet)
    account = r.text("account", required=True, pattern=_ACCOUNT)
    if account:
        out["account"] = account
    price = r.number("price")
    if price is not None:
        out["price"] = price
    rate = r.number("discountRate", low=Decimal(0), high=Decimal(1))  # base 1 (products.md@71a967a)
    if rate is not None:
        out["discountRate"] = rate
    description = r.text("description")
    if description is not None:
        out["description"] = description
    if facet == "purchases":
        depreciable = r.flag("depreciable")
        if depreciable is not None:
            out["depreciable"] = depreciable
        provider = r.text("provider")
        if provider is not None:
            if not contact_exists(provider):
                r.p.add(r.at("provider"), f"contact '{provider}' does not exist", "not_found")
            out["provider"] = provider
    return out


def read_tax_ids(
    values: list[Any], path: str, catalogue: dict[str, totals.Tax], p: Problems, facet: str = "sales"
) -> list[str]:
    """Catalogue ids only; the other catalogue's ids and auto-applied taxes are 400s (taxes.md@6f7d643)."""
    out = []
    for i, value in enumerate(values):
        tax = catalogue.get(value) if isinstance(value, str) else None
        if tax is None:
            p.add(f"{path}.{i}", f"unknown {facet} tax '{value}'", "unknown_tax")
        elif tax.auto_applied:
            p.add(
                f"{path}.{i}",
                f"tax '{value}' is applied automatically and must not be sent",
                "auto_applied_tax",
            )
        else:
            out.append(tax.id)
    return out


# -- estimates -----------------------------------------------------------------------------------------

ESTIMATE_KNOWN = frozenset(
    {
        "contact",
        "date",
        "dueDate",
        "currency",
        "lines",
        "linesTotal",
        "totalBeforeTaxes",
        "taxes",
        "total",
        "taxIncludedPrices",
        "baseState",
        "acceptedDate",
        "acceptedBy",
        "rejectedDate",
        "rejectedBy",
        "isProforma",
        "owner",
        "customFields",
        "series",
        "docNumber",
        "title",
        "mode",
    }
)
LINE_KNOWN = frozenset(
    {"text", "quantity", "unitPrice", "discount", "discountRate", "tax", "lineTotal", "document", "account"}
)


@dataclass
class EstimateLookups:
    contact: Callable[[str], dict[str, Any] | None]  # live contact main by id
    product: Callable[[str], dict[str, Any] | None]  # live product main by id
    today: Callable[[], date]


def read_estimate(
    main: dict[str, Any],
    p: Problems,
    cfg: FacturaDirectaConfig,
    definitions: dict[str, dict[str, Any]],
    look: EstimateLookups,
    *,
    stored: dict[str, Any] | None,
) -> dict[str, Any]:
    """The estimate without its number (the router numbers it); totals computed, checked in calcTotal."""
    r = Reader(main, "content.main", p)
    out: dict[str, Any] = {}
    r.unknown(ESTIMATE_KNOWN, cfg.rest_unknown_fields == "keep", out)
    contact_id = r.text("contact", required=True)
    contact = look.contact(contact_id) if contact_id else None
    if contact_id and contact is None:
        p.add(r.at("contact"), f"contact '{contact_id}' does not exist", "not_found")
    out["contact"] = contact_id
    out["_contactTitle"] = (contact or {}).get("title", "")
    out["date"] = r.day("date") or look.today().isoformat()
    for key in ("dueDate", "acceptedDate", "rejectedDate"):
        value = r.day(key)
        if value:
            out[key] = value
    out["currency"] = r.text("currency", pattern=_CURRENCY) or "EUR"
    out["taxIncludedPrices"] = bool(r.flag("taxIncludedPrices", False))
    out["baseState"] = r.choice("baseState", ESTIMATE_STATES, "pending")
    out["isProforma"] = bool(r.flag("isProforma", False))
    for key in ("acceptedBy", "rejectedBy", "owner"):
        value = r.text(key)
        if value is not None:
            out[key] = value
    mode = r.choice("mode", ("calcTotal", "totalProvided"), "calcTotal")
    if "mode" in main:
        out["mode"] = mode
    lines = _read_lines(r, cfg, look)
    _apply_totals(r, out, lines, cfg, mode)
    previous = (stored or {}).get("customFields")
    if cfg.rest_put_omits_custom_fields == "keep" and "customFields" not in main and previous:
        out["customFields"] = dict(previous)
    else:
        values = read_custom_values(
            r, "estimate", definitions, hidden_values(previous, "estimate", definitions)
        )
        if values is not None:
            out["customFields"] = values
    return out


def _read_lines(
    r: Reader, cfg: FacturaDirectaConfig, look: EstimateLookups
) -> list[tuple[dict[str, Any], totals.Line]]:
    sent = r.array("lines") or []
    high = Decimal(100) if cfg.rest_estimate_discount_scale == "percent" else Decimal(1)
    out = []
    for i, item in enumerate(sent):
        path = f"{r.at('lines')}.{i}"
        if not isinstance(item, dict):
            r.p.add(path, "must be object", "invalid_type")
            continue
        lr = Reader(item, path, r.p)
        line: dict[str, Any] = {}
        lr.unknown(LINE_KNOWN, cfg.rest_unknown_fields == "keep", line)
        text = lr.text("text", required=True)
        quantity = lr.number("quantity", required=True)
        unit_price = lr.number("unitPrice", required=True)
        discount = lr.number("discount", low=Decimal(0))
        rate = lr.number("discountRate", low=Decimal(0), high=high)
        taxes = read_tax_ids(lr.array("tax") or [], lr.at("tax"), totals.SALES_TAXES, r.p)
        product_id = lr.text("document")
        product = look.product(product_id) if product_id else None
        if product_id and product is None:
            r.p.add(lr.at("document"), f"product '{product_id}' does not exist", "not_found")
        account = lr.text("account", pattern=_ACCOUNT)
        line.update(text=text, quantity=quantity, unitPrice=unit_price)
        if discount is not None:
            line["discount"] = discount
        if rate is not None:
            line["discountRate"] = rate
        line["tax"] = taxes
        if product_id:
            line["document"] = product_id
        line["account"] = (
            account or ((product or {}).get("sales") or {}).get("account") or DEFAULT_SALES_ACCOUNT
        )
        sent_total = lr.number("lineTotal")
        if sent_total is not None:
            line["_sentTotal"] = sent_total
        if quantity is not None and unit_price is not None:
            out.append(
                (
                    line,
                    totals.Line(
                        quantity, unit_price, rate or Decimal(0), discount or Decimal(0), tuple(taxes)
                    ),
                )
            )
    return out


def _apply_totals(
    r: Reader,
    out: dict[str, Any],
    lines: list[tuple[dict[str, Any], totals.Line]],
    cfg: FacturaDirectaConfig,
    mode: str,
) -> None:
    """Computed totals; in ``calcTotal`` a sent total that differs is a 400 naming it (taxes.md@6f7d643)."""
    result = totals.compute(
        [line for _, line in lines],
        percent_discounts=cfg.rest_estimate_discount_scale == "percent",
        tax_included=out["taxIncludedPrices"],
        per_line=cfg.rest_tax_rounding == "line",
    )
    provided = mode == "totalProvided"
    for i, ((line, _), computed) in enumerate(zip(lines, result.line_totals, strict=True)):
        sent = line.pop("_sentTotal", None)
        if sent is not None and sent != computed and not provided:
            r.p.add(
                f"{r.at('lines')}.{i}.lineTotal",
                f"must be {computed} (computed from the line)",
                "total_mismatch",
            )
        line["lineTotal"] = sent if provided and sent is not None else computed
    out["lines"] = [line for line, _ in lines]
    computed_values = {
        "linesTotal": result.lines_total,
        "totalBeforeTaxes": result.before_taxes,
        "total": result.total,
    }
    for key, value in computed_values.items():
        sent = r.number(key)
        if sent is not None and sent != value and not provided:
            r.p.add(r.at(key), f"must be {value} (computed from the lines)", "total_mismatch")
        out[key] = sent if provided and sent is not None else value
    sent_taxes = r.array("taxes")
    if sent_taxes is not None and not provided and _tax_summary(sent_taxes) != _tax_summary(result.taxes):
        r.p.add(r.at("taxes"), "must match the taxes computed from the lines", "total_mismatch")
    out["taxes"] = sent_taxes if provided and sent_taxes is not None else result.taxes


def _tax_summary(taxes: list[Any]) -> set[tuple[Any, ...]]:
    out = set()
    for tax in taxes:
        if isinstance(tax, dict):
            out.add((tax.get("id"), _dec(tax.get("base")), _dec(tax.get("amount"))))
    return out


def _dec(value: Any) -> Decimal | None:
    return Decimal(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else None


def estimate_title(main: dict[str, Any]) -> str:
    word = "Proforma" if main.get("isProforma") else "Presupuesto"
    number = main.get("docNumber") or ""
    contact = main.get("_contactTitle") or ""
    return f"{word} {number} — {contact}".strip(" —") if contact else f"{word} {number}".strip()


def format_number(date_text: str, number: int) -> str:
    """``2026/0041``: the estimates example (estimates.md@afc30cc); yearly numbering (inferred)."""
    return f"{date_text[:4]}/{number:04d}"


def number_of(doc_number: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"(\d{4})/(\d+)", doc_number)
    return (match.group(1), int(match.group(2))) if match else None


def read_numbering(
    main: dict[str, Any], p: Problems, cfg: FacturaDirectaConfig
) -> tuple[str | None, str | None]:
    """``(series, docNumber)`` as sent: separate strings, or ``docNumber: {series, number}`` (§15.5)."""
    r = Reader(main, "content.main", p)
    if cfg.rest_estimate_docnumber == "object":
        sent = r.obj("docNumber")
        if sent is None:
            return None, None
        sr = Reader(sent, r.at("docNumber"), p)
        series = sr.text("series")
        number = sr.number("number", low=Decimal(1))
        return series, (
            format_number(main.get("date") or "0000", int(number)) if number is not None else None
        )
    return r.text("series"), r.text("docNumber")


def render_numbering(main: dict[str, Any], cfg: FacturaDirectaConfig) -> None:
    if cfg.rest_estimate_docnumber == "object":
        parsed = number_of(main.get("docNumber") or "")
        main["docNumber"] = {"series": main.pop("series", "default"), "number": parsed[1] if parsed else None}


# -- custom-field definitions --------------------------------------------------------------------------


def read_definition(payload: Any, p: Problems, *, creating: bool) -> dict[str, Any]:
    """``{id?, title, docTypes}`` (custom-fields.md@72b2f19); a client-chosen id must be ``cfi_<uuid v4>``."""
    if not isinstance(payload, dict):
        p.add("", "must be object", "invalid_type")
        p.check()
    out: dict[str, Any] = {}
    if creating and payload.get("id") is not None:
        chosen = payload["id"]
        if not isinstance(chosen, str) or not CFI_ID.fullmatch(chosen):
            p.add("id", "must be cfi_ followed by a lowercase UUID v4", "invalid_format")
        else:
            out["id"] = chosen
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        p.add("title", "must have required property 'title'", "required")
    else:
        out["title"] = title
    doc_types = payload.get("docTypes")
    if not isinstance(doc_types, list) or not doc_types:
        p.add("docTypes", "must be a non-empty array", "required")
    else:
        for i, value in enumerate(doc_types):
            if value not in DOC_TYPES:
                p.add(
                    f"docTypes.{i}",
                    f"must be equal to one of the allowed values: {', '.join(DOC_TYPES)}",
                    "invalid_enum",
                )
        out["docTypes"] = list(dict.fromkeys(v for v in doc_types if v in DOC_TYPES))
    return out


def render_definition(
    definition_id: str, body: dict[str, Any], created: int | None, modified: int | None
) -> dict[str, Any]:
    return {
        "id": definition_id,
        "title": body["title"],
        "docTypes": body["docTypes"],
        "archived": bool(body.get("archived")),
        "creationDate": iso(created),
        "modificationDate": iso(modified),
    }


# -- envelope out and rows -----------------------------------------------------------------------------


def js(value: Any) -> Any:
    """Decimals as JSON numbers the way a JavaScript server prints them (``2178``, ``378.5``)."""
    if isinstance(value, dict):
        return {k: js(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [js(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def web_url(company: str, kind: Kind, rid: str) -> str:
    """A browser link, not an API URL (contacts.md@03f4cd9); the exact form is not documented."""
    return f"https://app.facturadirecta.com/{company}/{kind.plural}/{rid}"


def envelope(
    kind: Kind,
    rid: str,
    body: dict[str, Any],
    created: int | None,
    modified: int | None,
    company: str,
    cfg: FacturaDirectaConfig,
    definitions: dict[str, dict[str, Any]],
    *,
    related: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{content: {type, uuid, main}, tags, creationDate, modificationDate, related?, webUrl}``."""
    main = dict(body["main"])
    if "customFields" in main:
        main["customFields"] = visible_values(main["customFields"], kind.name, definitions)
    if kind is ESTIMATE:
        main["title"] = estimate_title(main)
        render_numbering(main, cfg)
    content: dict[str, Any] = {"type": kind.name, "uuid": rid, "main": js(main)}
    if kind is ESTIMATE:
        content["attachments"] = []
    out: dict[str, Any] = {
        "content": content,
        "tags": list(body.get("tags") or []),
        "creationDate": iso(created),
        "modificationDate": iso(modified),
    }
    if body.get("archived"):
        out["archived"] = True
    if related is not None:
        out["related"] = related
    link = web_url(company, kind, rid)
    if cfg.rest_weburl == "content":
        content["webUrl"] = link
    else:
        out["webUrl"] = link
    return out


def live_key(company: str, archived: bool = False) -> str:
    """The ``k1`` column: the company for live rows, ``~company`` once archived (deleted)."""
    return f"~{company}" if archived else company


def new_row(kind: Kind, rid: str, company: str, body: dict[str, Any], created: int, modified: int) -> NewRow:
    """Lookups: contacts k2 fiscalId, k3 externalId; products k2 externalId, k3 sku; estimates k2 contact,
    k3 date. ``search`` starts with the lower-cased title, so ordering by it is alphabetical; tags in idx."""
    main = body["main"]
    row = NewRow(
        body=body,
        rid=rid,
        created=created,
        modified=modified,
        k1=live_key(company, bool(body.get("archived"))),
        index=[("tag", t) for t in body.get("tags") or []],
    )
    keys: tuple[str, ...]
    if kind is CONTACT:
        keys = ("title", "name", "fiscalId", "email", "vatEU", "externalId")
        row.k2, row.k3 = main.get("fiscalId") or None, main.get("externalId") or None
    elif kind is PRODUCT:
        keys = ("title", "sku", "externalId")
        row.k2, row.k3 = main.get("externalId") or None, main.get("sku") or None
    else:
        keys = ("_contactTitle", "docNumber", "series")
        row.k2, row.k3 = main.get("contact"), main.get("date")
    row.search = "\x1f".join(str(main.get(k) or "") for k in keys).lower()
    return row
