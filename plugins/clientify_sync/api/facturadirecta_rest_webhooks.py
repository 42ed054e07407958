"""FacturaDirecta REST webhook endpoints: ``/{companyId}/webhooks/endpoints`` (facturadirecta-rest-api.md §12).

``POST`` ``{name, url, events}`` answers ``{content, signing_secret}``: the ``whsec_…`` secret is shown
there once (and by ``rotateSecret``), so the caller stores it at once and nothing here keeps or logs it.
``GET`` lists the company's endpoints (``{items}``), ``PUT …/{id}`` replaces the fields it is given
(``events`` whole), ``…/enable`` switches a disabled one back on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.api.facturadirecta_rest_errors import API
from clientify_sync.api.http import ApiSession
from clientify_sync.errors import MalformedResponseError


@dataclass(frozen=True)
class Endpoint:
    """One webhook endpoint as the API shows it (never with its secret)."""

    id: str
    url: str
    events: tuple[str, ...]
    enabled: bool


@dataclass(frozen=True)
class CreatedEndpoint:
    """A new endpoint and its signing secret (kept out of ``repr``: it must reach no log)."""

    endpoint: Endpoint
    signing_secret: str = field(repr=False)


class WebhookEndpoints:
    """The webhook endpoints of the client's company."""

    def __init__(self, session: ApiSession, company_root: str) -> None:
        self._session = session
        self.list_route = f"{company_root}/webhooks/endpoints"
        self.item_route = f"{self.list_route}/{{id}}"

    def all(self) -> list[Endpoint]:
        """Every endpoint of the company (deleted ones excepted; the list is not paged)."""
        body = self._session.request("GET", self.list_route)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise MalformedResponseError(API, "GET", self.list_route, 200, "expected {items: [...]}")
        return [_endpoint(item, "GET", self.list_route) for item in items]

    def create(self, name: str, url: str, events: list[str]) -> CreatedEndpoint:
        """Create an endpoint; its signing secret comes back only here.

        Sent with an ``Idempotency-Key`` of this call, so a re-send after a lost answer gets the first
        answer (and its secret) instead of a second endpoint.
        """
        headers = {"Idempotency-Key": f"clientify-sync-{uuid.uuid4()}"}
        body = self._session.request(
            "POST", self.list_route, json={"name": name, "url": url, "events": events}, headers=headers
        )
        secret = body.get("signing_secret") if isinstance(body, dict) else None
        if not isinstance(secret, str) or not secret:
            raise MalformedResponseError(
                API, "POST", self.list_route, 200, "expected {content, signing_secret}"
            )
        return CreatedEndpoint(_endpoint(body, "POST", self.list_route), secret)

    def set_events(self, endpoint_id: str, events: list[str]) -> Endpoint:
        """Replace an endpoint's event types."""
        body = self._session.request(
            "PUT", self.item_route, path_params={"id": endpoint_id}, json={"events": events}
        )
        return _endpoint(body, "PUT", self.item_route)

    def enable(self, endpoint_id: str) -> Endpoint:
        """Switch a disabled endpoint back on."""
        body = self._session.request("POST", f"{self.item_route}/enable", path_params={"id": endpoint_id})
        return _endpoint(body, "POST", f"{self.item_route}/enable")

    def rotate_secret(self, endpoint_id: str) -> str:
        """A new signing secret for an endpoint (the old one stops signing at once)."""
        route = f"{self.item_route}/rotateSecret"
        body = self._session.request("POST", route, path_params={"id": endpoint_id})
        secret = body.get("signing_secret") if isinstance(body, dict) else None
        if not isinstance(secret, str) or not secret:
            raise MalformedResponseError(API, "POST", route, 200, "expected {signing_secret}")
        return secret


def _endpoint(body: Any, method: str, route: str) -> Endpoint:
    """An endpoint from ``{content: {...}}`` or a bare list item."""
    item = body.get("content", body) if isinstance(body, dict) else None
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("id"), str)
        or not isinstance(item.get("url"), str)
    ):
        raise MalformedResponseError(API, method, route, 200, "expected a webhook endpoint {id, url, events}")
    events = item.get("events")
    return Endpoint(
        id=item["id"], url=item["url"], events=tuple(str(e) for e in events) if isinstance(events, list) else (),
        enabled=bool(item.get("enabled", True)),
    )  # fmt: skip
