"""Clientify responses: the recorded key order, read-only defaults and absolute URLs per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from include.sandbox.config import ClientifyConfig
from include.sandbox.models.clientify import BUDGETS, COMPANIES, CONTACTS, PRODUCTS, Kind
from include.sandbox.store import Row

CONTACT_ORDER = (
    "url",
    "id",
    "owner",
    "owner_id",
    "owner_name",
    "first_name",
    "last_name",
    "status",
    "title",
    "company",
    "company_details",
    "contact_type",
    "contact_source",
    "emails",
    "phones",
    "addresses",
    "picture_url",
    "custom_fields",
    "other_companies",
    "tags",
    "description",
    "remarks",
    "summary",
    "created",
    "modified",
    "last_contact",
    "related_tasks",
    "deals",
    "page_views",
    "total_visits",
    "first_visit",
    "last_visit",
    "gdpr_accept",
    "visitor_key",
    "attachments",
    "websites",
    "medium",
    "channel",
    "linkedin_url",
    "linkedin_id",
    "linkedin_picture_url",
    "skype_username",
    "birthday",
    "twitter_id",
    "lead_scoring",
    "facebook_url",
    "twitter_url",
    "googleplus_url",
    "pinterest_url",
    "foursquare_url",
    "aboutme_url",
    "klout_url",
    "instagram_url",
    "manychat_url",
    "facebook_picture_url",
    "twitter_picture_url",
    "facebook_id",
    "google_id",
    "taxpayer_identification_number",
    "unsubscribed",
    "automations",
    "gdpr_acceptance_date",
    "country",
    "integrations",
    "disclaimer",
    "contact_sector",
)
CONTACT_READ_ONLY = {
    "related_tasks": [],
    "deals": [],
    "page_views": 0,
    "total_visits": 0,
    "first_visit": None,
    "last_visit": None,
    "visitor_key": "",
    "attachments": [],
    "channel": "integrations-api",
    "automations": [],
    "gdpr_acceptance_date": None,
    "integrations": [],
}
COMPANY_ORDER = (
    "url",
    "id",
    "name",
    "business_name",
    "taxpayer_identification_number",
    "sector",
    "company_sector",
    "fax",
    "number_of_employees",
    "approx_employees",
    "founded",
    "online_since",
    "industry",
    "rank",
    "rank_manual",
    "owner",
    "owner_name",
    "owner_picture",
    "description",
    "remarks",
    "summary",
    "created",
    "modified",
    "last_viewed",
    "last_interaction",
    "private",
    "picture_url",
    "facebook_url",
    "twitter_url",
    "linkedin_url",
    "googleplus_url",
    "instagram_url",
    "emails",
    "phones",
    "websites",
    "addresses",
    "tags",
    "custom_fields",
)
PRODUCT_ORDER = (
    "url",
    "id",
    "name",
    "sku",
    "description",
    "price",
    "currency",
    "custom_fields",
    "created",
    "modified",
)
BUDGET_ORDER = (
    "url",
    "id",
    "name",
    "code",
    "contact",
    "company",
    "deal",
    "owner",
    "status",
    "currency",
    "date",
    "expiration_date",
    "comments",
    "items",
    "subtotal",
    "tax_amount",
    "total",
    "custom_fields",
    "created",
    "modified",
)


def resource_url(base_url: str, path: str, ident: int | None) -> str | None:
    return None if ident is None else f"{base_url}{path}{ident}/"


@dataclass(frozen=True)
class Renderer:
    """Turns rows into responses for one request (absolute URLs need the request's base URL)."""

    cfg: ClientifyConfig
    base_url: str
    format_time: Callable[[int | None], str | None]

    def url(self, kind: Kind, ident: int | None) -> str | None:
        path = self.cfg.budgets_path if kind is BUDGETS else f"/v1/{kind.name}/"
        return resource_url(self.base_url, path, ident)

    def render(self, kind: Kind, row: Row) -> dict[str, Any]:
        body = row.body
        common = {
            "url": self.url(kind, row.seq),
            "id": row.seq,
            "created": self.format_time(row.created),
            "modified": self.format_time(row.modified),
        }
        if kind is CONTACTS:
            company_id = body.get("_company_id")
            extra = {
                **CONTACT_READ_ONLY,
                "owner_id": self.cfg.owner_id,
                "owner_name": self.cfg.owner_name,
                "company": self.url(COMPANIES, company_id),
                "company_details": None
                if company_id is None
                else {
                    "id": company_id,
                    "name": body.get("_company_name"),
                    "url": self.url(COMPANIES, company_id),
                },
            }
            return _ordered(CONTACT_ORDER, body, common, extra)
        if kind is COMPANIES:
            extra = {
                "owner_name": self.cfg.owner_name,
                "owner_picture": None,
                "last_viewed": None,
                "last_interaction": None,
            }
            return _ordered(COMPANY_ORDER, body, common, extra)
        if kind is PRODUCTS:
            price = body.get("price")
            extra = {"price": price if self.cfg.price_as_string or price is None else Decimal(price)}
            return _ordered(PRODUCT_ORDER, body, common, extra)
        items = [
            {
                "id": i["id"],
                "product": self.url(PRODUCTS, i["product_id"]),
                **{k: v for k, v in i.items() if k != "id"},
            }
            for i in body.get("items") or []
        ]
        extra = {
            "contact": self.url(CONTACTS, body.get("_contact_id")),
            "company": self.url(COMPANIES, body.get("_company_id")),
            "items": items,
        }
        return _ordered(BUDGET_ORDER, body, common, extra)


def _ordered(order: tuple[str, ...], body: dict[str, Any], *layers: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in order:
        for layer in layers:
            if key in layer:
                out[key] = layer[key]
                break
        else:
            out[key] = body.get(key)
    return out
