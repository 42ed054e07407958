"""FacturaDirecta records (facturadirecta-api.md): schemas, value formats, partial updates, totals.

Records are nested dicts of strings in canonical form (``"18.00"``, ``"true"``, ``"20130729"``), so
rendering is a plain walk of the schema. Input comes either from parsed XML (all strings) or from
the data generator (Python values); ``coerce`` normalises both the same way.

Custom attributes follow the seed document exactly: an absent ``customAttribute`` leaves the field
untouched, one with a value sets it, one without a value (or with an empty ``<value/>``) clears it,
and a label the object does not define fails the whole call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.money import q2, to_decimal
from include.sandbox.store import NewRow
from include.sandbox.taxids import normalise_tax_code, spanish_tax_code_kind
from include.sandbox.xmlio import Group, Leaf, Node, Repeated

UNKNOWN_ATTRIBUTE = "Se ha recibido un atributo personalizado que no existe en el objeto"
ESTIMATE_STATUSES = ("pending", "accepted", "rejected", "closed")


class InputError(ValueError):
    """Becomes 400 ``INVALID_INPUT_DATA`` with this (Spanish) message."""


def _tax(name: str) -> Group:
    return Group(name, (Leaf("name", "text"), Leaf("rate", "rate")), optional=True)


CUSTOM = Repeated("customAttributes", "customAttribute", (Leaf("label"), Leaf("value")), optional=True)
CLIENT: tuple[Node, ...] = (
    Leaf("id", "int"),
    Leaf("legalType"),
    Leaf("name", optional=True),
    Leaf("personName", optional=True),
    Leaf("personSurname", optional=True),
    Leaf("taxCode"),
    Leaf("tradeName"),
    Leaf("noEInvoice", "bool"),
    Group("address", tuple(Leaf(n) for n in ("line1", "line2", "city", "province", "zipcode", "country"))),
    Leaf("website", "text"),
    Leaf("language", "text"),
    Leaf("email", "text"),
    Leaf("phone"),
    Leaf("mobilePhone", "text"),
    Leaf("notes"),
    Leaf("companyCode"),
    Group(
        "billing",
        (
            Leaf("currency", "text"),
            _tax("tax1"),
            _tax("tax2"),
            Group("bank", (Leaf("country", "text"), Leaf("name"), Leaf("accountNumber"), Leaf("swift"))),
            Leaf("paymentMean", "text"),
            Leaf("payableDayInMonth1", "day"),
            Leaf("payableDayInMonth2", "day"),
            Repeated("dueDates", "dueDate", (Leaf("delayInDays", "int"), Leaf("rate", "rate"))),
            Leaf("customInvoiceNotes", "bool"),
            Leaf("invoiceNotes"),
        ),
    ),
    CUSTOM,
)
PRODUCT: tuple[Node, ...] = (
    Leaf("id", "int"),
    Leaf("productCode"),
    Leaf("name"),
    Leaf("description"),
    Leaf("price", "money"),
    Leaf("purchasePrice", "money"),
    Leaf("discountRate", "rate"),
    Leaf("applyTax1", "bool"),
    Leaf("applyTax2", "bool"),
    Group("provider", (Leaf("id", "int"),)),
    Leaf("stockEnabled", "bool"),
    Leaf("stock", "qty"),
    CUSTOM,
)
LINE: tuple[Leaf, ...] = (
    Leaf("productCode"),
    Leaf("description"),
    Leaf("quantity", "qty"),
    Leaf("unitPrice", "money"),
    Leaf("discountRate", "rate"),
    Leaf("applyTax1", "bool"),
    Leaf("applyTax2", "bool"),
)
ESTIMATE: tuple[Node, ...] = (
    Leaf("id", "int"),
    Leaf("estimateNumber", "int"),
    Leaf("estimateSerial"),
    Leaf("estimateDate", "date"),
    Leaf("expirationDate", "date"),
    Group("client", (Leaf("id", "int"),)),
    Leaf("currency", "text"),
    Leaf("subject"),
    Leaf("notes"),
    Leaf("status"),
    _tax("tax1"),
    _tax("tax2"),
    Repeated("estimateLines", "estimateLine", LINE),
    Leaf("totalNetAmount", "money"),
    Leaf("totalTax1", "money"),
    Leaf("totalTax2", "money"),
    Leaf("totalAmount", "money"),
    CUSTOM,
)
READ_ONLY = {"id", "totalNetAmount", "totalTax1", "totalTax2", "totalAmount"}


@dataclass(frozen=True)
class Resource:
    plural: str
    singular: str
    table: str
    schema: tuple[Node, ...]


CLIENTS = Resource("clients", "client", "facturadirecta_clients", CLIENT)
PRODUCTS = Resource("products", "product", "facturadirecta_products", PRODUCT)
ESTIMATES = Resource("estimates", "estimate", "facturadirecta_estimates", ESTIMATE)
RESOURCES = {r.plural: r for r in (CLIENTS, PRODUCTS, ESTIMATES)}


# -- value formats ---------------------------------------------------------------------------------


def _format(kind: str, value: Any, path: str) -> str:
    """One leaf in canonical text; ``""`` stays empty (an element sent empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, date | datetime) and kind == "date":
        return value.strftime("%Y%m%d")
    else:
        text = str(value).strip()
    if text == "" or kind in ("cdata", "text"):
        return str(value) if kind in ("cdata", "text") else ""
    try:
        if kind in ("int", "day"):
            number = int(text)
            if number < 0 or (kind == "day" and not 1 <= number <= 31):
                raise ValueError
            return str(number)
        if kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "1"):
                return "true"
            if lowered in ("false", "0"):
                return "false"
            raise ValueError
        if kind in ("rate", "money"):
            return f"{q2(to_decimal(text))}"
        if kind == "qty":
            to_decimal(text)
            return text
        if kind == "date":
            digits = text.replace("-", "")
            datetime.strptime(digits, "%Y%m%d")
            return digits
    except ValueError:
        raise InputError(f"El valor '{text}' del elemento {path} no es válido") from None
    raise AssertionError(kind)


def coerce(schema: tuple[Node, ...], data: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Canonical strings for every known element present in ``data``; unknown keys are dropped."""
    out: dict[str, Any] = {}
    for node in schema:
        if node.name not in data or node.name in READ_ONLY and not path:
            continue
        value = data[node.name]
        where = f"{path}/{node.name}" if path else node.name
        if node is CUSTOM:
            out[node.name] = _custom_input(value)
        elif isinstance(node, Leaf):
            out[node.name] = _format(node.kind, value, where)
        elif isinstance(node, Group):
            if value in (None, ""):
                value = {}
            if not isinstance(value, dict):
                raise InputError(f"El elemento {where} no es válido")
            out[node.name] = coerce(node.children, value, where)
        else:
            items = value if isinstance(value, list) else [] if value in (None, "") else None
            if items is None:
                raise InputError(f"El elemento {where} no es válido")
            out[node.name] = [coerce(node.children, item, f"{where}/{node.item}") for item in items]
    return out


def _custom_input(value: Any) -> list[dict[str, Any]]:
    """``[{label, value|None}]`` (``None``: sent without a value, i.e. clear)."""
    items = value if isinstance(value, list) else []
    out = []
    for item in items:
        label = str(item.get("label") or "").strip()
        raw = item.get("value")
        out.append({"label": label, "value": None if raw is None else str(raw)})
    return out


def merge(schema: tuple[Node, ...], current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Partial update: element-wise inside groups (address, billing, bank...), lists replaced wholesale."""
    out = dict(current)
    for node in schema:
        if node.name not in changes or node is CUSTOM:
            continue
        if isinstance(node, Group):
            out[node.name] = merge(node.children, current.get(node.name) or {}, changes[node.name])
        else:
            out[node.name] = changes[node.name]
    return out


def apply_custom(stored: dict[str, str], sent: list[dict[str, Any]], defined: list[str]) -> dict[str, str]:
    """Seed 003 rules: absent untouched, a value sets, no value or empty clears, unknown label fails."""
    values = dict(stored)
    for item in sent:
        if item["label"] not in defined:
            raise InputError(UNKNOWN_ATTRIBUTE)
        if item["value"] in (None, ""):
            values.pop(item["label"], None)
        else:
            values[item["label"]] = item["value"]
    return values


# -- per-resource rules ----------------------------------------------------------------------------


@dataclass
class Lookups:
    """Reads a write needs, supplied by the router inside its transaction."""

    client: Callable[[int], dict[str, Any] | None]
    product_by_code: Callable[[str], tuple[int, dict[str, Any]] | None]
    next_estimate_number: Callable[[str, int | None], int]
    company_codes: Callable[[], list[str]]


def prepare(
    resource: Resource,
    current: dict[str, Any] | None,
    changes: dict[str, Any],
    defined: list[str],
    cfg: FacturaDirectaConfig,
    look: Lookups,
    *,
    auto_code: bool = False,
) -> dict[str, Any]:
    """The record after a create (``current`` None) or a partial update; raises ``InputError``."""
    creating = current is None
    base = current or {}
    sent_custom = changes.get("customAttributes") or []
    values = apply_custom(base.get("_custom", {}), sent_custom, defined)
    record = merge(resource.schema, base, changes)
    record["_custom"] = values
    record.pop("customAttributes", None)
    if resource is CLIENTS:
        _client_rules(record, changes, creating, cfg, look, auto_code)
    elif resource is PRODUCTS:
        _product_rules(record, creating)
    else:
        _estimate_rules(record, changes, creating, cfg, look)
    return record


def _client_rules(
    record: dict[str, Any],
    changes: dict[str, Any],
    creating: bool,
    cfg: FacturaDirectaConfig,
    look: Lookups,
    auto_code: bool,
) -> None:
    legal = (record.get("legalType") or "").strip().upper()
    if not legal and creating:
        legal = (
            "J"
            if (record.get("name") or "").strip()
            else "F"
            if (record.get("personName") or "").strip()
            else ""
        )
        if not legal:
            raise InputError("Debe indicarse el tipo legal (legalType) del cliente")
    if legal not in ("F", "J"):
        raise InputError(f"El tipo legal '{legal}' no es válido; valores posibles: F, J")
    record["legalType"] = legal
    if (
        creating
        and legal == "F"
        and not all((record.get(k) or "").strip() for k in ("personName", "personSurname"))
    ):
        raise InputError("Para personas físicas (F) son obligatorios los campos personName y personSurname")
    if creating and legal == "J" and not (record.get("name") or "").strip():
        raise InputError("Para personas jurídicas (J) es obligatorio el campo name")
    tax_code = (record.get("taxCode") or "").strip()
    if (
        cfg.validate_tax_code
        and "taxCode" in changes
        and tax_code
        and spanish_tax_code_kind(tax_code) is None
    ):
        raise InputError(f"El código fiscal '{tax_code}' no es válido")
    billing = record.setdefault("billing", {})
    due = billing.get("dueDates") or []
    if len(due) > 4:
        raise InputError("Se pueden indicar como máximo cuatro vencimientos")
    if due and sum((to_decimal(d.get("rate") or "0") for d in due), Decimal(0)) != 100:
        raise InputError("Los porcentajes de los vencimientos (dueDates/dueDate/rate) deben sumar 100")
    if creating:
        sent_billing = changes.get("billing") or {}
        if "tax1" not in sent_billing and "tax2" not in sent_billing:
            _default_taxes(billing, cfg)
        record.setdefault("noEInvoice", "false")
        record.setdefault("language", cfg.default_language)
        billing.setdefault("currency", cfg.default_currency)
        billing.setdefault("customInvoiceNotes", "false")
    if auto_code and not (record.get("companyCode") or "").strip():
        codes = [c for c in look.company_codes() if c]
        if all(c.isdigit() for c in codes):
            record["companyCode"] = str(max((int(c) for c in codes), default=0) + 1)


def _default_taxes(target: dict[str, Any], cfg: FacturaDirectaConfig) -> None:
    if cfg.default_tax1_name:
        target["tax1"] = {
            "name": cfg.default_tax1_name,
            "rate": f"{q2(to_decimal(cfg.default_tax1_rate or '0'))}",
        }
    if cfg.default_tax2_name:
        target["tax2"] = {
            "name": cfg.default_tax2_name,
            "rate": f"{q2(to_decimal(cfg.default_tax2_rate or '0'))}",
        }


def _product_rules(record: dict[str, Any], creating: bool) -> None:
    if creating and not (record.get("name") or "").strip():
        raise InputError("El campo name es obligatorio")
    if creating:
        record.setdefault("applyTax1", "true")
        record.setdefault("applyTax2", "false")
        record.setdefault("stockEnabled", "false")


def _estimate_rules(
    record: dict[str, Any], changes: dict[str, Any], creating: bool, cfg: FacturaDirectaConfig, look: Lookups
) -> None:
    if not record.get("estimateDate"):
        raise InputError("El campo estimateDate es obligatorio (formato AAAAMMDD)")
    client_id = (record.get("client") or {}).get("id") or ""
    client = look.client(int(client_id)) if client_id else None
    if client is None:
        raise InputError(f"No existe el cliente indicado en client/id ({client_id or 'vacío'})")
    status = (record.get("status") or "pending").strip().lower()
    if status not in ESTIMATE_STATUSES:
        raise InputError(
            f"El estado '{status}' no es válido; valores posibles: {', '.join(ESTIMATE_STATUSES)}"
        )
    record["status"] = status
    if creating:
        record.setdefault("currency", cfg.default_currency)
        if "tax1" not in changes and "tax2" not in changes:
            billing = client.get("billing") or {}
            if billing.get("tax1") or billing.get("tax2"):
                for key in ("tax1", "tax2"):
                    if billing.get(key):
                        record[key] = dict(billing[key])
            else:
                _default_taxes(record, cfg)
    number = record.get("estimateNumber") or ""
    serial = record.get("estimateSerial") or ""
    if creating or "estimateNumber" in changes or "estimateSerial" in changes:
        record["estimateNumber"] = str(look.next_estimate_number(serial, int(number) if number else None))
    if creating or "estimateLines" in changes:
        record["estimateLines"] = [
            _line(i, line, look) for i, line in enumerate(record.get("estimateLines") or [])
        ]
    _totals(record)


def _line(i: int, line: dict[str, Any], look: Lookups) -> dict[str, Any]:
    out = {
        "productCode": line.get("productCode", ""),
        "description": line.get("description", ""),
        "quantity": line.get("quantity") or "1",
        "unitPrice": line.get("unitPrice", ""),
        "discountRate": line.get("discountRate") or "0.00",
        "applyTax1": line.get("applyTax1") or "true",
        "applyTax2": line.get("applyTax2") or "false",
    }
    code = (out["productCode"] or "").strip()
    if code:
        found = look.product_by_code(code)
        if found is None:
            raise InputError(
                f"No existe ningún producto con el código '{code}' (estimateLines/estimateLine[{i + 1}])"
            )
        product = found[1]
        out["description"] = out["description"] or product.get("description") or product.get("name") or ""
        out["unitPrice"] = out["unitPrice"] or product.get("price") or ""
    if not out["unitPrice"]:
        raise InputError(f"El campo unitPrice es obligatorio (estimateLines/estimateLine[{i + 1}])")
    return out


def _totals(record: dict[str, Any]) -> None:
    """§9: lineNet = round(q x p x (1 - d/100), 2); taxes on the lines that apply them; half-up."""
    net_total = Decimal(0)
    taxable = {"1": Decimal(0), "2": Decimal(0)}
    for line in record.get("estimateLines") or []:
        factor = 1 - to_decimal(line["discountRate"]) / 100
        net = q2(to_decimal(line["quantity"]) * to_decimal(line["unitPrice"]) * factor)
        net_total += net
        for n in ("1", "2"):
            if line.get(f"applyTax{n}") == "true":
                taxable[n] += net
    taxes = {}
    for n in ("1", "2"):
        tax = record.get(f"tax{n}") or {}
        rate = to_decimal(tax["rate"]) if tax.get("rate") else Decimal(0)
        taxes[n] = q2(taxable[n] * rate / 100)
    record["totalNetAmount"] = f"{q2(net_total)}"
    record["totalTax1"], record["totalTax2"] = f"{taxes['1']}", f"{taxes['2']}"
    record["totalAmount"] = f"{q2(net_total + taxes['1'] + taxes['2'])}"


# -- rows and output -------------------------------------------------------------------------------


def new_row(resource: Resource, record: dict[str, Any]) -> NewRow:
    """Lookups: clients k1 taxCode, k2 e-mail, k3 code; products k1 code; estimates k1 client, k2 status,
    k3 date. Custom attribute values go to ``idx`` for ``customAttributeName:`` filters."""
    index = [(f"ca:{label}", value) for label, value in (record.get("_custom") or {}).items()]
    row = NewRow(body=record, index=index)
    if resource is CLIENTS:
        keys = ("name", "tradeName", "taxCode", "personName", "personSurname")
        row.search = "\x1f".join(record.get(k) or "" for k in keys).lower()
        row.k1 = normalise_tax_code(record.get("taxCode") or "") or None
        row.k2 = (record.get("email") or "").strip().lower() or None
        row.k3 = record.get("companyCode") or None
    elif resource is PRODUCTS:
        row.search = "\x1f".join(record.get(k) or "" for k in ("name", "description", "productCode")).lower()
        row.k1 = record.get("productCode") or None
    else:
        row.search = "\x1f".join(
            record.get(k) or "" for k in ("subject", "estimateSerial", "estimateNumber")
        ).lower()
        row.k1 = (record.get("client") or {}).get("id") or None
        row.k2 = record.get("status")
        row.k3 = record.get("estimateDate")
    return row


def for_output(seq: int, record: dict[str, Any], defined: list[str]) -> dict[str, Any]:
    """The record as rendered: id first, one ``customAttribute`` per defined label."""
    out = {k: v for k, v in record.items() if not k.startswith("_")}
    out["id"] = str(seq)
    if defined:
        values = record.get("_custom") or {}
        out["customAttributes"] = [{"label": label, "value": values.get(label, "")} for label in defined]
    return out


def template_record(defined: list[str]) -> dict[str, Any]:
    return {"customAttributes": [{"label": label, "value": ""} for label in defined]} if defined else {}


def schema_for(resource: Resource, defined: list[str]) -> tuple[Node, ...]:
    """Without definitions the ``customAttributes`` element is not rendered at all."""
    return resource.schema if defined else tuple(n for n in resource.schema if n is not CUSTOM)


_TOKEN = re.compile(r"^customAttributeName:(.+)$")


def custom_filters(params: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """``customAttributeName:NAME=value`` pairs; more than ``limit`` different or a repeated NAME fails."""
    found: list[tuple[str, str]] = []
    for key, value in params:
        match = _TOKEN.match(key)
        if not match:
            continue
        name = match.group(1)
        if any(name == seen for seen, _ in found):
            raise InputError(f"No se puede repetir el filtro por el campo personalizado '{name}'")
        found.append((name, value))
    if len(found) > limit:
        raise InputError(f"Se puede filtrar como máximo por {limit} campos personalizados diferentes")
    return found
