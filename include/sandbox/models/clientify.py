"""Clientify records (clientify-api.md): DRF-style field validation and write semantics.

A stored body holds the record's fields without ``url``, ``id``, ``created`` and ``modified`` (those
come from the row) plus private ``_``-prefixed links (``_company_id``...). ``clientify_render`` rebuilds the
response with the recorded key order and absolute URLs for the request's host.

Write semantics (§8): POST creates; PUT and PATCH both apply only the fields sent; lists replace,
except ``custom_fields``, which merge by name (``value: null`` removes one); the singular ``email`` /
``phone`` are appended to ``emails`` (type 4) / ``phones`` (type 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from include.sandbox.clock import today
from include.sandbox.config import ClientifyConfig
from include.sandbox.money import q2, to_decimal
from include.sandbox.store import NewRow, Row, Session, Where

Errors = dict[str, Any]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CONTACT_STATUSES = (
    "visitor",
    "not-qualified-lead",
    "cold-lead",
    "warm-lead",
    "hot-lead",
    "lost-lead",
    "in-deal",
    "client",
    "lost-client",
    "other",
)
BUDGET_STATUSES = ("pending", "accepted", "rejected", "closed")
SOCIAL = (
    "linkedin_url",
    "linkedin_id",
    "linkedin_picture_url",
    "skype_username",
    "twitter_id",
    "facebook_url",
    "twitter_url",
    "googleplus_url",
    "pinterest_url",
    "foursquare_url",
    "aboutme_url",
    "klout_url",
    "instagram_url",
    "facebook_picture_url",
    "twitter_picture_url",
    "facebook_id",
    "google_id",
)


@dataclass(frozen=True)
class Kind:
    """A Clientify resource: its table, URL segment and custom-field content type."""

    name: str
    table: str
    label: str  # content type app label, the part before "|"
    model: str  # content type model name, the part after "|"


CONTACTS = Kind("contacts", "clientify_contacts", "contacts", "contact")
COMPANIES = Kind("companies", "clientify_companies", "companies", "company")
PRODUCTS = Kind("products", "clientify_products", "products", "product")
BUDGETS = Kind("budgets", "clientify_budgets", "budgets", "budget")
KINDS = {k.name: k for k in (CONTACTS, COMPANIES, PRODUCTS, BUDGETS)}
# -- field types -----------------------------------------------------------------------------------

# Scalar fields per resource: name -> type; the default decides nullability ("" is not nullable).
CONTACT_FIELDS: dict[str, tuple[str, Any]] = {
    "owner": ("str", None),
    "first_name": ("str", ""),
    "last_name": ("str", ""),
    "status": ("status", None),
    "title": ("str", ""),
    "contact_type": ("str", None),
    "contact_source": ("str", None),
    "picture_url": ("str", None),
    "description": ("str", ""),
    "remarks": ("str", ""),
    "summary": ("str", ""),
    "last_contact": ("datetime", None),
    "gdpr_accept": ("bool", False),
    "medium": ("str", ""),
    "birthday": ("date", None),
    "lead_scoring": ("int", 0),
    "manychat_url": ("str", None),
    "taxpayer_identification_number": ("str", ""),
    "unsubscribed": ("bool", False),
    "country": ("str", ""),
    "disclaimer": ("bool", False),
    "contact_sector": ("str", ""),
    **{name: ("str", "") for name in SOCIAL},
}
COMPANY_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("str", ""),
    "business_name": ("str", ""),
    "taxpayer_identification_number": ("str", ""),
    "sector": ("str", ""),
    "company_sector": ("str", ""),
    "fax": ("str", ""),
    "number_of_employees": ("int", None),
    "approx_employees": ("str", None),
    "founded": ("date", None),
    "online_since": ("date", None),
    "industry": ("str", ""),
    "rank": ("int", None),
    "rank_manual": ("int", None),
    "owner": ("str", None),
    "description": ("str", ""),
    "remarks": ("str", ""),
    "summary": ("str", ""),
    "private": ("bool", False),
    "picture_url": ("str", None),
    "facebook_url": ("str", ""),
    "twitter_url": ("str", ""),
    "linkedin_url": ("str", ""),
    "googleplus_url": ("str", ""),
    "instagram_url": ("str", ""),
}
PRODUCT_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("str", ""),
    "sku": ("str", ""),
    "description": ("str", ""),
    "price": ("decimal", "0.00"),
    "currency": ("str", "EUR"),
}
BUDGET_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("str", ""),
    "code": ("str", ""),
    "deal": ("str", None),
    "owner": ("str", None),
    "status": ("budget_status", "pending"),
    "currency": ("str", None),
    "date": ("date", None),
    "expiration_date": ("date", None),
    "comments": ("str", ""),
}
FIELDS = {
    "contacts": CONTACT_FIELDS,
    "companies": COMPANY_FIELDS,
    "products": PRODUCT_FIELDS,
    "budgets": BUDGET_FIELDS,
}


def scalar(kind: str, nullable: bool, value: Any) -> tuple[Any, str | None]:
    """(clean value, DRF error message or None)."""
    if value is None:
        return (None, None) if nullable else (None, "This field may not be null.")
    if kind == "str":
        if isinstance(value, dict | list):
            return None, "Not a valid string."
        if isinstance(value, bool):
            return str(value).lower(), None
        return str(value) if not isinstance(value, str) else value, None
    if kind == "int":
        if isinstance(value, bool):
            return None, "A valid integer is required."
        try:
            return int(str(value).strip()), None
        except ValueError:
            return None, "A valid integer is required."
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True, None
        if text in ("false", "0", "no", "off"):
            return False, None
        return None, "Must be a valid boolean."
    if kind == "decimal":
        try:
            return f"{q2(to_decimal(value))}", None
        except ValueError:
            return None, "A valid number is required."
    if kind == "date":
        try:
            return date.fromisoformat(str(value).strip()[:10]).isoformat(), None
        except ValueError:
            return None, "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
    if kind == "datetime":
        try:
            return datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")).isoformat(), None
        except ValueError:
            return (
                None,
                "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            )
    if kind in ("status", "budget_status"):
        choices = CONTACT_STATUSES if kind == "status" else BUDGET_STATUSES
        if value in choices:
            return value, None
        return None, f'"{value}" is not a valid choice.'
    raise AssertionError(kind)


# -- write context ---------------------------------------------------------------------------------


class SubIds:
    """Ids for ``emails``/``phones``/``addresses``/``websites``/``items`` rows, from one persistent counter."""

    KEY = "clientify:subitem"

    def __init__(self, session: Session) -> None:
        self.session = session
        self.value = int(session.meta(self.KEY, "10000000") or 10000000)
        self.start = self.value

    def next(self) -> int:
        self.value += 1
        return self.value

    def flush(self) -> None:
        if self.value != self.start:
            self.session.set_meta(self.KEY, str(self.value))
            self.start = self.value


@dataclass
class WriteContext:
    """What a write needs besides the body: config, session, definitions and id allocation."""

    cfg: ClientifyConfig
    session: Session
    ids: SubIds
    tick: Callable[[], int]
    defined: dict[str, set[str]]  # content label -> custom field names

    @classmethod
    def open(cls, cfg: ClientifyConfig, session: Session, tick: Callable[[], int]) -> WriteContext:
        defined: dict[str, set[str]] = {}
        for _, resource, name, _ in session.definitions("clientify"):
            defined.setdefault(resource, set()).add(name)
        return cls(cfg, session, SubIds(session), tick, defined)


# -- list fields -----------------------------------------------------------------------------------


def _items(value: Any, key: str, errors: Errors) -> list[Any] | None:
    if not isinstance(value, list):
        errors[key] = [f'Expected a list of items but got type "{type(value).__name__}".']
        return None
    return value


def _sub_list(
    value: Any, key: str, errors: Errors, ids: SubIds, build: Callable[[dict[str, Any]], tuple[dict, dict]]
) -> list[dict[str, Any]] | None:
    items = _items(value, key, errors)
    if items is None:
        return None
    out, item_errors = [], []
    for item in items:
        if not isinstance(item, dict):
            item_errors.append({"non_field_errors": ["Invalid data. Expected a dictionary."]})
            continue
        clean, problems = build(item)
        item_errors.append(problems)
        if not problems:
            out.append({"id": ids.next(), **clean})
    if any(item_errors):
        errors[key] = item_errors
        return None
    return out


def _type(item: dict[str, Any], default: int, problems: dict) -> int:
    value, message = scalar("int", False, item.get("type", default))
    if message:
        problems["type"] = [message]
    return value if value is not None else default


def _email_item(item: dict[str, Any]) -> tuple[dict, dict]:
    problems: dict[str, list[str]] = {}
    email = str(item.get("email") or "").strip()
    if not EMAIL.match(email):
        problems["email"] = ["Enter a valid email address."]
    return {"type": _type(item, 1, problems), "email": email}, problems


def _phone_item(item: dict[str, Any]) -> tuple[dict, dict]:
    problems: dict[str, list[str]] = {}
    phone = str(item.get("phone") or "").strip()
    if not phone:
        problems["phone"] = ["This field may not be blank."]
    return {"type": _type(item, 1, problems), "phone": phone, "unsubscribed": False}, problems


def _address_item(item: dict[str, Any]) -> tuple[dict, dict]:
    problems: dict[str, list[str]] = {}
    clean = {k: str(item.get(k) or "") for k in ("street", "city", "state", "country", "postal_code")}
    return {**clean, "type": _type(item, 1, problems)}, problems


def _website_item(item: dict[str, Any]) -> tuple[dict, dict]:
    problems: dict[str, list[str]] = {}
    return {"type": _type(item, 1, problems), "website": str(item.get("website") or "")}, problems


def _tags(value: Any, errors: Errors) -> list[str] | None:
    items = _items(value, "tags", errors)
    if items is None:
        return None
    return [str(t.get("name") if isinstance(t, dict) else t) for t in items]


def merge_custom_fields(
    current: list[dict[str, Any]], value: Any, label: str, w: WriteContext, errors: Errors
) -> list[dict[str, Any]] | None:
    """Merge ``[{field, value}]`` by name into ``current``; a name with no definition is rejected."""
    items = _items(value, "custom_fields", errors)
    if items is None:
        return None
    merged = {cf["field"]: cf["value"] for cf in current}
    problems: list[str] = []
    for item in items:
        if not isinstance(item, dict) or "field" not in item:
            problems.append("Each custom field needs a 'field' and a 'value'.")
            continue
        name = str(item["field"])
        if name not in w.defined.get(label, set()):
            if w.cfg.unknown_custom_field == "reject":
                problems.append(f"Custom field '{name}' does not exist.")
            continue
        if item.get("value") is None:
            merged.pop(name, None)
        else:
            merged[name] = item["value"]
    if problems:
        errors["custom_fields"] = problems
        return None
    return [{"field": name, "value": v} for name, v in merged.items()]


# -- generic apply ---------------------------------------------------------------------------------


def defaults(kind: Kind, cfg: ClientifyConfig) -> dict[str, Any]:
    """A new record's stored body: every field at its default, lists empty, no links."""
    body: dict[str, Any] = {name: default for name, (_, default) in FIELDS[kind.name].items()}
    body["custom_fields"] = []
    if "owner" in body:
        body["owner"] = cfg.owner
    if kind in (CONTACTS, COMPANIES):
        body.update(emails=[], phones=[], addresses=[], websites=[], tags=[])
    if kind is CONTACTS:
        body.update(
            status=cfg.contact_default_status, other_companies=[], _company_id=None, _company_name=None
        )
    if kind is BUDGETS:
        body.update(currency=cfg.budget_default_currency, items=[], _contact_id=None, _company_id=None)
    return body


def apply(kind: Kind, body: dict[str, Any], payload: Any, w: WriteContext, creating: bool) -> Errors:
    """Validate ``payload`` and apply it onto ``body`` in place; returns DRF-style errors (empty = ok)."""
    errors: Errors = {}
    if not isinstance(payload, dict):
        return {
            "non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(payload).__name__}."]
        }
    for name, (field_type, default) in FIELDS[kind.name].items():
        if name not in payload:
            continue
        value, message = scalar(field_type, default is None, payload[name])
        if message:
            errors[name] = [message]
        else:
            body[name] = value
    if kind in (CONTACTS, COMPANIES):
        _apply_lists(body, payload, w, errors)
    if "custom_fields" in payload:
        merged = merge_custom_fields(
            body.get("custom_fields") or [], payload["custom_fields"], kind.label, w, errors
        )
        if merged is not None:
            body["custom_fields"] = merged
    if kind is CONTACTS and "other_companies" in payload:
        items = _items(payload["other_companies"], "other_companies", errors)
        if items is not None:
            body["other_companies"] = items
    if kind is CONTACTS and "company" in payload:
        _apply_company(body, payload["company"], w, errors)
    if kind is COMPANIES and creating and not (body.get("name") or "").strip():
        errors.setdefault(
            "name", ["This field is required." if "name" not in payload else "This field may not be blank."]
        )
    if kind is PRODUCTS and creating and not (body.get("name") or "").strip():
        errors.setdefault(
            "name", ["This field is required." if "name" not in payload else "This field may not be blank."]
        )
    if kind is BUDGETS:
        _apply_budget(body, payload, w, errors, creating)
    return errors


def _apply_lists(body: dict[str, Any], payload: dict[str, Any], w: WriteContext, errors: Errors) -> None:
    builders = {
        "emails": _email_item,
        "phones": _phone_item,
        "addresses": _address_item,
        "websites": _website_item,
    }
    for name, build in builders.items():
        if name in payload:
            items = _sub_list(payload[name], name, errors, w.ids, build)
            if items is not None:
                body[name] = items
    if "tags" in payload:
        tags = _tags(payload["tags"], errors)
        if tags is not None:
            body["tags"] = tags
    email = payload.get("email")
    if email not in (None, ""):
        clean, problems = _email_item({"email": email, "type": 4})
        if problems:
            errors["email"] = problems["email"]
        elif clean["email"].lower() not in {e["email"].lower() for e in body["emails"]}:
            body["emails"] = [*body["emails"], {"id": w.ids.next(), **clean}]
    phone = payload.get("phone")
    if phone not in (None, ""):
        clean, _ = _phone_item({"phone": phone, "type": 1})
        if clean["phone"] not in {p["phone"] for p in body["phones"]}:
            body["phones"] = [*body["phones"], {"id": w.ids.next(), **clean}]


def ref_id(value: Any, segment: str) -> int | None:
    """An id from ``123``, ``"123"`` or a resource URL ``.../v1/<segment>/123/``; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    found = re.search(rf"{re.escape(segment.strip('/'))}/(\d+)/?$", text)
    return int(found.group(1)) if found else None


def _apply_company(body: dict[str, Any], value: Any, w: WriteContext, errors: Errors) -> None:
    """``company``: a URL or id links an existing company; a name finds one by name or creates it."""
    if value in (None, ""):
        body["_company_id"], body["_company_name"] = None, None
        return
    s = w.session
    company_id = ref_id(value, "companies")
    row = s.get(COMPANIES.table, seq=company_id) if company_id is not None else None
    if row is None and company_id is None and isinstance(value, str):
        rows = s.select(COMPANIES.table, Where(COMPANIES.table).eq("k3", value.strip().lower()), limit=1)
        row = rows[0] if rows else None
        if row is None and w.cfg.contact_company_autocreate:
            company = defaults(COMPANIES, w.cfg)
            company["name"] = value.strip()
            row = insert(COMPANIES, company, w)
    if row is None:
        errors["company"] = ["Invalid hyperlink - Object does not exist."]
        return
    body["_company_id"], body["_company_name"] = row.seq, row.body.get("name")


def _apply_budget(
    body: dict[str, Any], payload: dict[str, Any], w: WriteContext, errors: Errors, creating: bool
) -> None:
    s = w.session
    for key, kind in (("contact", CONTACTS), ("company", COMPANIES)):
        if key not in payload:
            continue
        if payload[key] in (None, ""):
            body[f"_{key}_id"] = None
            continue
        ident = ref_id(payload[key], kind.name)
        if ident is None or s.get(kind.table, seq=ident) is None:
            errors[key] = ["Invalid hyperlink - Object does not exist."]
        else:
            body[f"_{key}_id"] = ident
    if (
        body.get("_contact_id") is None
        and body.get("_company_id") is None
        and not {"contact", "company"} & set(errors)
    ):
        errors["non_field_errors"] = ["A budget needs a contact or a company."]
    if creating and not body.get("date"):
        body["date"] = today(w.cfg.timezone).isoformat()
    if "items" in payload:
        items = _budget_items(payload["items"], w, errors)
        if items is not None:
            body["items"] = items
    _budget_totals(body)


def _budget_items(value: Any, w: WriteContext, errors: Errors) -> list[dict[str, Any]] | None:
    items = _items(value, "items", errors)
    if items is None:
        return None
    out, item_errors = [], []
    for item in items:
        problems: dict[str, list[str]] = {}
        if not isinstance(item, dict):
            item_errors.append({"non_field_errors": ["Invalid data. Expected a dictionary."]})
            continue
        ident = ref_id(item.get("product"), "products") if item.get("product") is not None else None
        product = w.session.get(PRODUCTS.table, seq=ident) if ident is not None else None
        if product is None:
            problems["product"] = (
                ["This field is required."]
                if item.get("product") is None
                else ["Invalid hyperlink - Object does not exist."]
            )
        amounts: dict[str, Decimal] = {}
        fallback_price = product.body.get("price") if product else None
        for key, default in (("quantity", None), ("price", fallback_price), ("discount", "0"), ("tax", "0")):
            raw = item.get(key, default)
            if raw is None:
                if (
                    product is not None or key != "price"
                ):  # no price to default to: the product error says why
                    problems[key] = ["This field is required."]
                continue
            try:
                amounts[key] = q2(to_decimal(raw))
            except ValueError:
                problems[key] = ["A valid number is required."]
        if "quantity" in amounts and amounts["quantity"] <= 0:
            problems["quantity"] = ["Ensure this value is greater than or equal to 0.01."]
        item_errors.append(problems)
        if problems or product is None:
            continue
        subtotal = q2(amounts["quantity"] * amounts["price"] - amounts["discount"])
        total = q2(subtotal * (1 + amounts["tax"] / 100))
        out.append(
            {
                "id": w.ids.next(),
                "product_id": product.seq,
                "sku": product.body.get("sku", ""),
                "name": product.body.get("name", ""),
                "description": str(item.get("description") or ""),
                **{k: f"{v}" for k, v in amounts.items()},
                "subtotal": f"{subtotal}",
                "total": f"{total}",
            }
        )
    if any(item_errors):
        errors["items"] = item_errors
        return None
    return out


def _budget_totals(body: dict[str, Any]) -> None:
    """§11: read-only sums of the line amounts."""
    subtotal = sum((Decimal(i["subtotal"]) for i in body["items"]), Decimal(0))
    total = sum((Decimal(i["total"]) for i in body["items"]), Decimal(0))
    body["subtotal"], body["total"] = f"{q2(subtotal)}", f"{q2(total)}"
    body["tax_amount"] = f"{q2(total - subtotal)}"


# -- rows ------------------------------------------------------------------------------------------


def normalise_tax_id(value: str | None) -> str | None:
    text = re.sub(r"[\s.\-]", "", value or "").upper()
    return text or None


def new_row(kind: Kind, body: dict[str, Any], created: int, modified: int) -> NewRow:
    """Lookup columns: k1 tax id / sku / contact id, k2 company id, k3 company name / status."""
    index: list[tuple[str, str]] = [
        (f"cf:{cf['field']}", _cf_text(cf["value"])) for cf in body.get("custom_fields") or []
    ]
    index += [("@email", e["email"].lower()) for e in body.get("emails") or []]
    index += [("@phone", p["phone"]) for p in body.get("phones") or []]
    row = NewRow(body=body, created=created, modified=modified, index=index)
    if kind is CONTACTS:
        emails = " ".join(e["email"] for e in body["emails"])
        row.search = "\x1f".join(
            [body["first_name"], body["last_name"], emails, body["taxpayer_identification_number"]]
        ).lower()
        row.k1 = normalise_tax_id(body["taxpayer_identification_number"])
        row.k2 = str(body["_company_id"]) if body.get("_company_id") else None
        row.k3 = body.get("status")
    elif kind is COMPANIES:
        row.search = "\x1f".join([body["name"], body["business_name"]]).lower()
        row.k1 = normalise_tax_id(body["taxpayer_identification_number"])
        row.k3 = (body["name"] or "").strip().lower()
    elif kind is PRODUCTS:
        row.search = "\x1f".join([body["name"], body["sku"], body["description"]]).lower()
        row.k1 = body["sku"] or None
    else:
        row.search = "\x1f".join([body["name"], body["code"]]).lower()
        row.k1 = str(body["_contact_id"]) if body.get("_contact_id") else None
        row.k2 = str(body["_company_id"]) if body.get("_company_id") else None
        row.k3 = body.get("status")
    return row


def _cf_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def insert(kind: Kind, body: dict[str, Any], w: WriteContext) -> Row:
    now = w.tick()
    seq = w.session.insert(kind.table, [new_row(kind, body, now, now)])[0]
    return Row(seq=seq, rid=str(seq), body=body, created=now, modified=now)
