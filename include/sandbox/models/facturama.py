"""Facturama records: Json.NET-style binding, §4.4/§5.2 validation, §9 estimate totals, .NET key order.

Binding mimics ASP.NET Web API + Json.NET: property names match case-insensitively, numbers and
booleans sent as strings are accepted, unknown properties are ignored, and every model property is
present in the output (``null`` when absent). Validation errors are collected per property path
(``Rfc``, ``Address.ZipCode``, ``Items[0].Quantity``) and returned as ``ModelState``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from include.sandbox.config import FacturamaConfig
from include.sandbox.money import q2, quantize, to_decimal
from include.sandbox.taxids import normalise_rfc, rfc_problem

Errors = dict[str, list[str]]
# A field type: "str" | "decimal" | "bool", a nested schema (tuple), or a one-item list for arrays.
Spec = Any
Schema = tuple[tuple[str, Spec], ...]

STR, DEC, BOOL = "str", "decimal", "bool"
ADDRESS: Schema = tuple(
    (name, STR)
    for name in (
        "Street",
        "ExteriorNumber",
        "InteriorNumber",
        "Neighborhood",
        "ZipCode",
        "Locality",
        "Municipality",
        "State",
        "Country",
    )
)
CLIENT: Schema = (
    ("Id", STR),
    ("Email", STR),
    ("EmailOp1", STR),
    ("EmailOp2", STR),
    ("Address", ADDRESS),
    ("Rfc", STR),
    ("Name", STR),
    ("CfdiUse", STR),
    ("FiscalRegime", STR),
    ("TaxZipCode", STR),
    ("TaxResidence", STR),
    ("NumRegIdTrib", STR),
)
TAX: Schema = (
    ("Name", STR),
    ("Rate", DEC),
    ("IsRetention", BOOL),
    ("IsFederalTax", BOOL),
    ("IsQuota", BOOL),
    ("Total", DEC),
    ("Base", DEC),
)
PRODUCT: Schema = (
    ("Id", STR),
    ("Unit", STR),
    ("UnitCode", STR),
    ("IdentificationNumber", STR),
    ("Name", STR),
    ("Description", STR),
    ("Price", DEC),
    ("CodeProdServ", STR),
    ("CodeProdServName", STR),
    ("CuentaPredial", STR),
    ("CuentasPredial", [STR]),
    ("NumerosPedimento", [STR]),
    ("ObjetoImp", STR),
    ("TaxObject", STR),
    ("Category", STR),
    ("Taxes", [TAX]),
)
RECEIVER: Schema = (("Id", STR), ("Rfc", STR), ("Name", STR))
ITEM_TAX: Schema = (("Name", STR), ("Rate", DEC), ("IsRetention", BOOL), ("Base", DEC), ("Total", DEC))
ITEM: Schema = (
    ("ProductCode", STR),
    ("IdentificationNumber", STR),
    ("Description", STR),
    ("Unit", STR),
    ("UnitCode", STR),
    ("Quantity", DEC),
    ("UnitPrice", DEC),
    ("Discount", DEC),
    ("Subtotal", DEC),
    ("Taxes", [ITEM_TAX]),
    ("Total", DEC),
)
ESTIMATE: Schema = (
    ("Id", STR),
    ("Folio", STR),
    ("Date", STR),
    ("ExpirationDate", STR),
    ("Currency", STR),
    ("Status", STR),
    ("Observations", STR),
    ("Receiver", RECEIVER),
    ("Items", [ITEM]),
    ("Subtotal", DEC),
    ("Discount", DEC),
    ("Total", DEC),
)

FISCAL_REGIMES = frozenset(
    "601 603 605 606 607 608 610 611 612 614 615 616 620 621 622 623 624 625 626".split()
)
CFDI_USES = frozenset(
    ["G01", "G02", "G03", "S01", "CP01", "CN01", "P01"]
    + [f"I{n:02d}" for n in range(1, 9)]
    + [f"D{n:02d}" for n in range(1, 11)]
)
ESTIMATE_STATUSES = ("Pending", "Accepted", "Rejected", "Closed")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ZIP = re.compile(r"^\d{5}$")
CUENTA_PREDIAL = re.compile(r"^[0-9]{1,150}$")
# SAT c_ObjetoImp (CFDI 4.0): 01 not subject, 02 subject (taxed), 03-08 the later variants.
TAX_OBJECTS = frozenset(f"{n:02d}" for n in range(1, 9))
# Optional strings a PUT may not send as "" (§4.5), with the maximum length ASP.NET would quote.
CLIENT_OPTIONAL = (
    "EmailOp1",
    "EmailOp2",
    "CfdiUse",
    "FiscalRegime",
    "TaxZipCode",
    "TaxResidence",
    "NumRegIdTrib",
)
PRODUCT_OPTIONAL = (
    "IdentificationNumber",
    "CodeProdServName",
    "CuentaPredial",
    "ObjetoImp",
    "TaxObject",
    "Category",
)
MAX_LENGTHS = {"CuentaPredial": 150, "IdentificationNumber": 50}
CURRENCY = re.compile(r"^[A-Z]{3}$")
MEXICO_CITY = ZoneInfo("America/Mexico_City")


def _add(errors: Errors, key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _required(errors: Errors, key: str) -> None:
    """ASP.NET's ``[Required]`` message, in English as Facturama answers it (facturama-mcp, §4.5)."""
    _add(errors, key, f"The {key.rsplit('.', 1)[-1]} field is required.")


def _empty_strings(record: dict[str, Any], names: tuple[str, ...], errors: Errors, prefix: str = "") -> None:
    """§4.5: an optional string sent as ``""`` fails its minimum length of 1 on a PUT."""
    for name in names:
        if record.get(name) == "" and f"{prefix}{name}" not in errors:
            limit = MAX_LENGTHS.get(name)
            bounds = (
                f"a minimum length of 1 and a maximum length of {limit}" if limit else "a minimum length of 1"
            )
            _add(errors, f"{prefix}{name}", f"The field {name} must be a string with {bounds}.")


# -- binding ---------------------------------------------------------------------------------------


def _bind_scalar(kind: str, value: Any, path: str, errors: Errors) -> Any:
    if value is None:
        return None
    if kind == STR:
        if isinstance(value, dict | list):
            _add(errors, path, f"Unexpected character encountered while parsing value. Path '{path}'.")
            return None
        if isinstance(value, bool):
            return "True" if value else "False"
        return value if isinstance(value, str) else str(value)
    if kind == DEC:
        try:
            return to_decimal(value)
        except ValueError:
            _add(errors, path, f"Could not convert string to decimal: {value}. Path '{path}'.")
            return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int):
        return value != 0
    _add(errors, path, f"Could not convert string to boolean: {value}. Path '{path}'.")
    return None


_CANONICAL: dict[int, frozenset[str]] = {}


def bind(payload: Any, schema: Schema, errors: Errors, path: str = "") -> dict[str, Any]:
    """Every schema property in order, matched case-insensitively; conversion errors go to ``errors``."""
    if not isinstance(payload, dict):
        payload = {}
    names = _CANONICAL.get(id(schema))
    if names is None:
        names = _CANONICAL[id(schema)] = frozenset(name for name, _ in schema)
    # Fast path: every key already spelled like the model (what SDKs and the generator send).
    exact = payload.keys() <= names
    source = payload if exact else {str(k).lower(): v for k, v in payload.items()}
    out: dict[str, Any] = {}
    for name, spec in schema:
        value = source.get(name if exact else name.lower())
        if value is None:
            out[name] = None
        elif spec == STR and isinstance(value, str):
            out[name] = value
        elif isinstance(spec, tuple | list):
            out[name] = _bind_nested(name, spec, value, errors, f"{path}.{name}" if path else name)
        else:
            out[name] = _bind_scalar(spec, value, f"{path}.{name}" if path else name, errors)
    return out


def _bind_nested(name: str, spec: Spec, value: Any, errors: Errors, key: str) -> Any:
    if isinstance(spec, tuple):
        if isinstance(value, dict):
            return bind(value, spec, errors, key)
        _add(errors, key, f"Error converting value to type '{name}'. Path '{key}'.")
        return None
    if not isinstance(value, list):
        _add(errors, key, f"Cannot deserialize the current JSON value into an array. Path '{key}'.")
        return None
    item_spec = spec[0]
    if isinstance(item_spec, tuple):
        return [bind(item, item_spec, errors, f"{key}[{i}]") for i, item in enumerate(value)]
    return [_bind_scalar(item_spec, item, f"{key}[{i}]", errors) for i, item in enumerate(value)]


def empty(schema: Schema) -> dict[str, Any]:
    return {name: None for name, _ in schema}


# -- clients ---------------------------------------------------------------------------------------


def clean_client(
    payload: Any, cfg: FacturamaConfig, errors: Errors, *, validate: bool = True, replacing: bool = False
) -> dict[str, Any]:
    """Bind a client body; with ``validate`` apply the §4.4/§4.5 rules (seeding skips them: stored data may
    be bad). ``replacing`` marks a PUT, where optional ``""`` strings fail (§4.5)."""
    client = bind(payload, CLIENT, errors)
    client["Address"] = client["Address"] or empty(ADDRESS)
    if client["Rfc"] is not None:
        client["Rfc"] = normalise_rfc(client["Rfc"])
    if not validate:
        return client
    if _blank(client["Rfc"]):
        _required(errors, "Rfc")
    else:
        problem = rfc_problem(client["Rfc"], cfg.rfc_check_digit)
        if problem:
            _add(errors, "Rfc", problem)
    if _blank(client["Name"]):
        _required(errors, "Name")
    if cfg.client_email_required and _blank(client["Email"]):
        _required(errors, "Email")
    if replacing and cfg.put_empty_strings == "reject":
        optional = CLIENT_OPTIONAL if cfg.client_email_required else ("Email", *CLIENT_OPTIONAL)
        _empty_strings(client, optional, errors)
        _empty_strings(client["Address"], tuple(name for name, _ in ADDRESS), errors, "Address.")
    if not _blank(client["Email"]) and not EMAIL.match(client["Email"].strip()):
        _add(errors, "Email", "El campo Email no es una dirección de correo electrónico válida.")
    if not _blank(client["TaxZipCode"]) and not ZIP.match(client["TaxZipCode"]):
        _add(errors, "TaxZipCode", "El campo TaxZipCode debe contener 5 dígitos.")
    if not _blank(client["FiscalRegime"]) and client["FiscalRegime"].strip() not in FISCAL_REGIMES:
        _add(errors, "FiscalRegime", f"El régimen fiscal '{client['FiscalRegime']}' no es válido.")
    if not _blank(client["CfdiUse"]) and client["CfdiUse"].strip().upper() not in CFDI_USES:
        _add(errors, "CfdiUse", f"El uso de CFDI '{client['CfdiUse']}' no es válido.")
    if cfg.strict_cfdi40:
        for name in ("Email", "FiscalRegime", "TaxZipCode", "CfdiUse"):
            if _blank(client[name]) and name not in errors:
                _required(errors, name)
    if cfg.zip_code_needs_address and _blank(client["Address"]["ZipCode"]):
        # §4.5: only TaxZipCode sent -> the write succeeds and the zip code is not stored.
        client["TaxZipCode"] = None
    return client


def client_search(client: dict[str, Any]) -> str:
    return "\x1f".join(str(client.get(k) or "") for k in ("Rfc", "Name", "Email")).lower()


# -- products --------------------------------------------------------------------------------------


def _length(errors: Errors, key: str, value: str | None, low: int, high: int, required: bool) -> None:
    if _blank(value):
        if required:
            _required(errors, key)
        return
    assert value is not None
    if not low <= len(value) <= high:
        _add(
            errors,
            key,
            f"The field {key} must be a string with a minimum length of {low} and a maximum length "
            f"of {high}.",
        )


def clean_product(
    payload: Any, cfg: FacturamaConfig, errors: Errors, *, validate: bool = True, replacing: bool = False
) -> dict[str, Any]:
    """Bind a product body; with ``validate`` apply §5.2 and §4.5 (``Unit`` free text, ``TaxObject``)."""
    product = bind(payload, PRODUCT, errors)
    product["Category"] = product["Category"] or cfg.default_category
    for tax in product["Taxes"] or []:
        for flag in ("IsRetention", "IsFederalTax", "IsQuota"):
            tax[flag] = bool(tax[flag])
    if product["Price"] is not None:
        product["Price"] = quantize(product["Price"], cfg.price_decimals)
    if not validate:
        return product
    _length(errors, "Unit", product["Unit"], 1, 20, True)
    _length(errors, "Name", product["Name"], 2, 50, True)
    _length(errors, "IdentificationNumber", product["IdentificationNumber"], 0, 50, False)
    for name in ("UnitCode", "Description", "CodeProdServ"):
        if _blank(product[name]):
            _required(errors, name)
    if _blank(product["TaxObject"]):
        if cfg.product_tax_object_required:
            _required(errors, "TaxObject")
    elif product["TaxObject"].strip() not in TAX_OBJECTS:
        _add(errors, "TaxObject", f"El objeto de impuesto '{product['TaxObject']}' no es válido.")
    if replacing and cfg.put_empty_strings == "reject":
        _empty_strings(product, PRODUCT_OPTIONAL, errors)
    if product["Price"] is None and "Price" not in errors:
        _required(errors, "Price")
    elif product["Price"] is not None and product["Price"] < 0:
        _add(errors, "Price", "El campo Price debe ser mayor o igual a 0.")
    if not _blank(product["CuentaPredial"]) and not CUENTA_PREDIAL.match(product["CuentaPredial"]):
        _add(
            errors,
            "CuentaPredial",
            "El campo CuentaPredial debe coincidir con la expresión regular '[0-9]{1,150}'.",
        )
    for i, tax in enumerate(product["Taxes"] or []):
        if _blank(tax["Name"]):
            _required(errors, f"Taxes[{i}].Name")
    return product


def product_search(product: dict[str, Any]) -> str:
    keys = ("Name", "IdentificationNumber", "Description", "CodeProdServ")
    return "\x1f".join(str(product.get(k) or "") for k in keys).lower()


# -- estimates -------------------------------------------------------------------------------------


def _local_datetime(value: str) -> str:
    """Any ISO date or date-time -> ``YYYY-MM-DDTHH:MM:SS`` local (Mexico City), no offset."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(MEXICO_CITY).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")


def _item_taxes(
    item: dict[str, Any], product: dict[str, Any] | None, cfg: FacturamaConfig
) -> list[dict[str, Any]]:
    if item["Taxes"] is not None or product is None or not cfg.estimate_inherit_product_taxes:
        return item["Taxes"] or []
    inherited = []
    for tax in product.get("Taxes") or []:
        # Catalogue retentions carry their rate in Total (§5.2).
        rate = tax.get("Rate") if tax.get("Rate") is not None else tax.get("Total")
        inherited.append({"Name": tax.get("Name"), "Rate": rate, "IsRetention": bool(tax.get("IsRetention"))})
    return inherited


def compute_item(item: dict[str, Any], taxes: list[dict[str, Any]]) -> dict[str, Any]:
    """§9: Subtotal = Q x P; tax Base = Subtotal - Discount; Total = Base + transferred - retained."""
    quantity, price = item["Quantity"], q2(item["UnitPrice"])
    discount = q2(item["Discount"] or Decimal(0))
    subtotal = q2(quantity * price)
    base = subtotal - discount
    total = base
    out_taxes = []
    for tax in taxes:
        amount = q2(base * tax["Rate"])
        retention = bool(tax.get("IsRetention"))
        total = total - amount if retention else total + amount
        out_taxes.append(
            {
                "Name": tax["Name"],
                "Rate": tax["Rate"],
                "IsRetention": retention,
                "Base": base,
                "Total": amount,
            }
        )
    return {
        **item,
        "UnitPrice": price,
        "Discount": discount,
        "Subtotal": subtotal,
        "Taxes": out_taxes,
        "Total": q2(total),
    }


def clean_estimate(
    payload: Any,
    cfg: FacturamaConfig,
    errors: Errors,
    find_client: Callable[[str], dict[str, Any] | None],
    find_product: Callable[[str], dict[str, Any] | None],
    *,
    validate: bool = True,
) -> dict[str, Any]:
    """Bind, check references and compute every amount; client-sent amounts are ignored."""
    est = bind(payload, ESTIMATE, errors)
    est["Currency"] = (est["Currency"] or "MXN").strip().upper()
    status = (est["Status"] or "Pending").strip()
    est["Status"] = next((s for s in ESTIMATE_STATUSES if s.lower() == status.lower()), status)
    for key in ("Date", "ExpirationDate"):
        if not _blank(est[key]):
            try:
                est[key] = _local_datetime(est[key])
            except ValueError:
                _add(errors, key, f"The value '{est[key]}' is not valid for {key}.")
    receiver = est["Receiver"] or empty(RECEIVER)
    est["Receiver"] = receiver
    if validate:
        if _blank(est["Date"]):
            _required(errors, "Date")
        if not CURRENCY.match(est["Currency"]):
            _add(errors, "Currency", f"La moneda '{est['Currency']}' no es válida.")
        if est["Status"] not in ESTIMATE_STATUSES:
            _add(errors, "Status", f"El estado '{est['Status']}' no es válido.")
        _check_receiver(receiver, errors, find_client)
        if not est["Items"]:
            _add(errors, "Items", "El presupuesto debe tener al menos un concepto.")
    items = []
    for i, item in enumerate(est["Items"] or []):
        product = None
        if not _blank(item["IdentificationNumber"]):
            product = find_product(item["IdentificationNumber"])
            if product is None and validate:
                _add(
                    errors,
                    f"Items[{i}].IdentificationNumber",
                    f"No existe un producto con IdentificationNumber '{item['IdentificationNumber']}'.",
                )
        if validate:
            _check_item(i, item, errors)
        if item["Quantity"] is None or item["UnitPrice"] is None:
            items.append(item)
            continue
        taxes = _item_taxes(item, product, cfg)
        if any(t.get("Rate") is None for t in taxes):
            for j, tax in enumerate(taxes):
                if tax.get("Rate") is None:
                    _required(errors, f"Items[{i}].Taxes[{j}].Rate")
            items.append(item)
            continue
        items.append(compute_item(item, taxes))
    est["Items"] = items
    computed = [it for it in items if isinstance(it.get("Total"), Decimal) and it.get("Subtotal") is not None]
    est["Subtotal"] = q2(sum((it["Subtotal"] for it in computed), Decimal(0)))
    est["Discount"] = q2(sum((it["Discount"] for it in computed), Decimal(0)))
    est["Total"] = q2(sum((it["Total"] for it in computed), Decimal(0)))
    return est


def _check_receiver(
    receiver: dict[str, Any], errors: Errors, find_client: Callable[[str], dict[str, Any] | None]
) -> None:
    if _blank(receiver["Id"]):
        _required(errors, "Receiver.Id")
        return
    client = find_client(receiver["Id"])
    if client is None:
        _add(errors, "Receiver.Id", f"No existe un cliente con Id '{receiver['Id']}'.")
    elif normalise_rfc(receiver["Rfc"] or "") != (client.get("Rfc") or ""):
        _add(errors, "Receiver.Rfc", "El RFC del receptor no coincide con el del cliente.")


def _check_item(i: int, item: dict[str, Any], errors: Errors) -> None:
    key = f"Items[{i}]"
    if _blank(item["Description"]):
        _required(errors, f"{key}.Description")
    if item["Quantity"] is None:
        _required(errors, f"{key}.Quantity")
    elif item["Quantity"] <= 0:
        _add(errors, f"{key}.Quantity", "El campo Quantity debe ser mayor que 0.")
    if item["UnitPrice"] is None:
        _required(errors, f"{key}.UnitPrice")
    elif item["UnitPrice"] < 0:
        _add(errors, f"{key}.UnitPrice", "El campo UnitPrice debe ser mayor o igual a 0.")
    if item["Discount"] is not None and item["Discount"] < 0:
        _add(errors, f"{key}.Discount", "El campo Discount debe ser mayor o igual a 0.")
    for j, tax in enumerate(item["Taxes"] or []):
        if _blank(tax["Name"]):
            _required(errors, f"{key}.Taxes[{j}].Name")


def estimate_search(est: dict[str, Any]) -> str:
    receiver = est.get("Receiver") or {}
    parts = (est.get("Folio"), receiver.get("Rfc"), receiver.get("Name"), est.get("Status"))
    return "\x1f".join(str(p or "") for p in parts).lower()
