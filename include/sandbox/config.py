"""Runtime configuration of each emulator: credentials, paths and the **Assumed** behaviours.

Every fact the reference marks as assumed is a field here, so a test can flip it through
``PUT /_sandbox/config`` and a client can be checked against the alternative. Where a public source
shows how the real API behaves, the default does the same (strict) and the other value is the lenient
one a test may turn on; docs/sandbox.md names the source of each. ``POST /_sandbox/reset`` restores the
values the process started with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type or outside its choices."""


@dataclass
class ApiConfig:
    """Shared update/validation logic; subclasses only declare fields and choices."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def copy(self) -> ApiConfig:
        return dataclasses.replace(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` atomically: validate every key first, then assign."""
        current = self.as_dict()
        unknown = sorted(set(changes) - set(current))
        if unknown:
            raise ConfigError(f"unknown config keys: {unknown}; known: {sorted(current)}")
        checked = {key: self._check(key, current[key], value) for key, value in changes.items()}
        for key, value in checked.items():
            setattr(self, key, value)

    def _check(self, key: str, default: Any, value: Any) -> Any:
        expected = type(default)
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false")
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{key} must be an integer")
        if expected is str and not isinstance(value, str):
            raise ConfigError(f"{key} must be a string")
        if expected is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key} must be a number")
            value = float(value)
        choices = self.CHOICES.get(key)
        if choices is not None and value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)}")
        return self._check_extra(key, value)

    def _check_extra(self, key: str, value: Any) -> Any:
        """Per-API checks beyond type and choices (a subclass hook)."""
        return value


@dataclass
class FacturamaConfig(ApiConfig):
    """Facturama API Web emulator (facturama-api.md)."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "post_status": (200, 201),
        "put_status": (200, 204),
        "delete_status": (200, 204),
        "page_length_over_max": ("clamp", "error"),
        "put_empty_strings": ("reject", "accept"),
    }

    user: str = "sandbox-user"
    password: str = "sandbox-password-fake"
    realm: str = "apisandbox.facturama.mx"
    # §9: the estimates resource is a model; its base names are configurable.
    estimate_singular: str = "Estimate"
    estimate_plural: str = "Estimates"
    # §6: success codes are unknown; PUT 204 means no body, DELETE 200 returns the deleted object.
    post_status: int = 201
    put_status: int = 204
    delete_status: int = 200
    # §4.1/§4.2: GET /Client truncates; /Clients pages with length 1-100.
    list_truncate: int = 100
    page_length_default: int = 100
    page_length_max: int = 100
    page_length_over_max: str = "clamp"
    # §4.4: validation switches (assumed; the .NET 8 SDK's client-side CFDI 4.0 checks).
    strict_cfdi40: bool = False
    rfc_check_digit: bool = False
    reject_duplicate_rfc: bool = False
    reject_duplicate_sku: bool = False
    # §4.5 (facturama-mcp 1.0.0rc2): Email is required on every client write (POST and PUT).
    client_email_required: bool = True
    # §4.5: a PUT whose optional string fields hold "" fails (CuentaPredial needs length >= 1).
    put_empty_strings: str = "reject"
    # §4.5: the zip code is kept only when Address.ZipCode travels with TaxZipCode (else TaxZipCode dropped).
    zip_code_needs_address: bool = True
    # §4.5: CFDI 4.0 products carry TaxObject (c_ObjetoImp, "02" when taxed); required.
    product_tax_object_required: bool = True
    # §4.5: ModelState keys are prefixed with the model name ("clientModel.Email"); "{resource}" is
    # replaced by client/product/estimate. "" gives bare property names.
    modelstate_prefix: str = "{resource}Model."
    # §9: estimates are assumed; false answers 404 on every estimates route (an account without them).
    estimates_available: bool = True
    # §5.2: Price kept with 4 decimals; default Category.
    price_decimals: int = 4
    default_category: str = "GENERAL"
    # §9: an item without Taxes takes the catalogue product's taxes (off: what you send is what you get).
    estimate_inherit_product_taxes: bool = False


@dataclass
class ClientifyConfig(ApiConfig):
    """Clientify API v1 emulator (clientify-api.md)."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "default_ordering": ("-created", "created", "-modified", "modified", "-id", "id"),
        "unknown_custom_field": ("reject", "ignore"),
        "invalid_page": ("404", "empty"),
        "modified_filter": ("honoured", "ignored"),
        "date_filter_invalid": ("error", "ignore"),
    }
    DATE_FORMATS: ClassVar[tuple[str, ...]] = ("iso", "minute", "date")

    token: str = "fake-clientify-sandbox-token"
    # §11: the budgets path is assumed.
    budgets_path: str = "/v1/budgets/"
    # §11: false answers Django's HTML 404 on the budgets path (an account without budgets).
    budgets_available: bool = True
    # §3: DRF paging defaults.
    page_size_default: int = 20
    page_size_max: int = 100
    default_ordering: str = "-created"
    # §3.1: a page past the end is 404 {"detail": "Invalid page."} (DRF); "empty" answers 200 with no results.
    invalid_page: str = "404"
    # §3.1: created[...]/modified[...] formats the server reads, comma-separated: "iso" (full date-time,
    # seconds, optional microseconds and Z/offset), "minute" (YYYY-MM-DDTHH:MM), "date" (YYYY-MM-DD and
    # YYYY/MM/DD). All three are seen in working public clients; which ones the API honours is unknown.
    date_filter_formats: str = "iso,minute,date"
    # §3.1: a value in no accepted format -> 400 "Enter a valid date/time." ("error") or the filter is
    # dropped and everything is listed ("ignore").
    date_filter_invalid: str = "error"
    # §3.1: "ignored" makes the API ignore every modified[...] filter (lists everything), so a client can
    # be tested on detecting it.
    modified_filter: str = "honoured"
    # §4: naive date filters are read in the account's time zone; timestamps carry its offset.
    timezone: str = "Europe/Madrid"
    # §8: duplicate taxpayer id on POST -> 409 (one client's mock).
    duplicate_tax_id_409: bool = False
    # §7: a custom field with no definition -> 400 (or silently dropped).
    unknown_custom_field: str = "reject"
    # §12: find-or-create looks companies up by ?query=<tax id>, so query also matches it.
    company_query_matches_tax_id: bool = True
    # §6: product price as a DRF decimal string ("11.33") rather than a number.
    price_as_string: bool = True
    # §7: GET /v1/custom-fields/ returns everything with next=null (recorded) or pages like the rest.
    custom_fields_paged: bool = False
    # §5: a company name on a contact create finds or creates that company.
    contact_company_autocreate: bool = True
    contact_default_status: str = "cold-lead"
    # Owner shown on records and on /v1/users/.
    owner: str = "sandbox.owner@clientify.net"
    owner_id: int = 1
    owner_name: str = "Sandbox Owner"
    budget_default_currency: str = "EUR"
    # Absolute URLs (url, next, previous) are built from the request's Host unless this is set.
    public_base_url: str = ""
    # Webhooks (API v2 slots, realtime.md §1.1; docs/sandbox.md "Webhooks"): writes made with the account's
    # own API key are not echoed (true: they are, like a UI edit); the retry waits (1, 2, 4, 8, 16 s) are
    # multiplied by the time scale; the 5 s answer timeout is not; false answers 403 on /v2/webhooks/
    # (a key without the API add-on or of a non-administrator).
    webhook_echo_api_writes: bool = False
    webhook_time_scale: float = 1.0
    webhook_timeout_s: float = 5.0
    webhook_admin_key: bool = True

    def _check_extra(self, key: str, value: Any) -> Any:
        if key in ("webhook_time_scale", "webhook_timeout_s") and value < 0:
            raise ConfigError(f"{key} must not be negative")
        if key != "date_filter_formats":
            return value
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts or set(parts) - set(self.DATE_FORMATS):
            raise ConfigError(
                f"date_filter_formats must be a comma-separated subset of {list(self.DATE_FORMATS)}"
            )
        return ",".join(parts)

    def accepted_date_formats(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.date_filter_formats.split(",") if p.strip())


@dataclass
class FacturaDirectaConfig(ApiConfig):
    """FacturaDirecta emulators: the classic XML API (facturadirecta-api.md) and, ``rest_*``, the REST/JSON
    API (facturadirecta-rest-api.md); one port, the same accounts."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "limit_over_max": ("clamp", "error"),
        "create_status": (200, 201),
        "product_delete_in_use": ("allow", "conflict"),
        "rest_plan": ("gratis", "bronce", "plata", "oro", "diamante"),
        "rest_other_plan": ("gratis", "bronce", "plata", "oro", "diamante"),
        "rest_unknown_query": ("error", "ignore"),
        "rest_unknown_fields": ("keep", "reject"),
        "rest_create_status": (200, 201),
        "rest_weburl": ("root", "content"),
        "rest_estimate_discount_scale": ("percent", "fraction"),
        "rest_estimate_docnumber": ("string", "object"),
        "rest_tax_rounding": ("document", "line"),
        "rest_deleted_fetch": ("404", "archived"),
        "rest_put_omits_custom_fields": ("clear", "keep"),
        "rest_contact_delete_with_estimates": ("conflict", "allow"),
        "rest_webhook_object": ("envelope", "content"),
        "rest_webhook_retry_livemode": ("false", "keep"),
    }

    token: str = "fake-facturadirecta-sandbox-token"
    realm: str = "FacturaDirecta"
    # §4: start/limit paging.
    limit_default: int = 100
    limit_max: int = 250
    limit_over_max: str = "clamp"
    # §5.5: POST answers 200.
    create_status: int = 200
    # §10: the API's own taxCode validation is unknown; rejecting an invalid NIF/NIE/CIF is opt-in.
    validate_tax_code: bool = False
    # §8: productCode unique per account; deleting a product used by an estimate line.
    unique_product_code: bool = True
    product_delete_in_use: str = "allow"
    # §5.4: up to 3 different customAttributeName filters.
    custom_attribute_filter_max: int = 3
    # §5.5: the account's default taxes, used when a create sends neither billing/tax1 nor tax2.
    default_tax1_name: str = "IVA"
    default_tax1_rate: str = "21.00"
    default_tax2_name: str = ""
    default_tax2_rate: str = ""
    default_currency: str = "EUR"
    default_language: str = "es"
    # §5.4 ownerEmail: every record belongs to the account owner.
    owner_email: str = "owner@sandbox.facturadirecta.test"
    # §9: estimate element names are assumed; false answers 404 on every estimates route.
    estimates_available: bool = True

    # -- REST/JSON "API pública" (facturadirecta-rest-api.md), same port, paths /api/profile and
    # /api/com_…; docs/sandbox.md "FacturaDirecta REST" cites the source of each default.
    # §2: one company per API key; the main company and a second one (cross-company 403/404 tests).
    rest_company_id: str = "com_5a1d7c3e-2b4f-4e6a-8c9d-0f1e2d3c4b5a"
    rest_company_name: str = "Sandbox Empresa, S.L."
    rest_api_key: str = "sbxKey.Sandbox0Rest0Api0Key000000000000"
    rest_scopes: str = (
        "contacts:read,contacts:write,products:read,products:write,estimates:read,estimates:write,"
        "customFields:read,customFields:write,activity:read,settings:read,webhooks:read,webhooks:write"
    )
    rest_plan: str = "diamante"
    rest_other_company_id: str = "com_0b7e5f1a-9c3d-4a2b-8e6f-7d1c2b3a4e5f"
    rest_other_api_key: str = "othKey.Other0Company0Key000000000000000"
    rest_other_plan: str = "gratis"
    # §3: requests per calendar minute per company; 0 = the plan's. Over it: Retry-After, still served,
    # unless enforced (429).
    rest_rate_limit: int = 0
    rest_rate_limit_enforced: bool = False
    # §2: accept-version / X-Api-Version.
    rest_version: str = "1.0.10"
    # §4 A: default page size (not stated; the examples show 50).
    rest_limit_default: int = 50
    # §15 open questions, one switch each (docs/sandbox.md says why each default).
    rest_unknown_query: str = "error"
    rest_unknown_fields: str = "keep"
    rest_create_status: int = 200
    rest_weburl: str = "root"
    rest_contacts_modification_filters: bool = False
    rest_estimate_discount_scale: str = "percent"
    rest_estimate_docnumber: str = "string"
    rest_tax_rounding: str = "document"
    rest_activity_cursor_on_last_page: bool = False
    rest_deleted_fetch: str = "404"
    rest_put_omits_custom_fields: str = "clear"
    rest_contact_delete_with_estimates: str = "conflict"
    # Webhooks (§12; docs/sandbox.md "Webhooks"): the retry waits (15 s … 36 h) are multiplied by the time
    # scale; the answer timeout is not documented; events of this company are live (false: a sandbox
    # company's); data.object is the envelope GET returns or its content (§15.9); a manual retry is
    # marked livemode false ("simulated events (sandbox or manual retries)") or kept; tag-only updates
    # emit *.updated (§15.13); writes through the API emit (not documented; assumed).
    rest_webhook_time_scale: float = 1.0
    rest_webhook_timeout_s: float = 10.0
    rest_webhook_livemode: bool = True
    rest_webhook_object: str = "envelope"
    rest_webhook_retry_livemode: str = "false"
    rest_webhook_tag_updates: bool = True
    rest_webhook_echo_api_writes: bool = True

    def _check_extra(self, key: str, value: Any) -> Any:
        if key in ("rest_webhook_time_scale", "rest_webhook_timeout_s") and value < 0:
            raise ConfigError(f"{key} must not be negative")
        if key == "rest_rate_limit" and value < 0:
            raise ConfigError("rest_rate_limit must not be negative (0: the plan's)")
        if key == "rest_limit_default" and not 1 <= value <= 500:
            raise ConfigError("rest_limit_default must be between 1 and 500")
        return value


CONFIG_TYPES: dict[str, type[ApiConfig]] = {
    "facturama": FacturamaConfig,
    "clientify": ClientifyConfig,
    "facturadirecta": FacturaDirectaConfig,
}
