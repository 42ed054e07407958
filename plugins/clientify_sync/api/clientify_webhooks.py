"""Clientify API v2 webhook slots: ``GET/POST/DELETE /v2/webhooks/{entity}/`` and ``POST …/activate/``.

One slot per entity, each holding one target URL (realtime.md §1.1, from Clientify's own n8n package):
``GET`` answers ``{entity, target, is_active, events}`` (404, or an empty ``target``, when the slot is
free); ``POST {"target", "headers"}`` answers 201, or 409 when the slot is taken. The v2 API lives on
another host (``ClientifySettings.v2_base_url``) with the same ``Authorization: Token`` key, so this is a
client of its own, built only by the registration command (never by a sync run).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from clientify_sync.api.auth import TokenHeaderAuth
from clientify_sync.api.clientify import API, clientify_error
from clientify_sync.api.http import ApiSession
from clientify_sync.api.responses import JsonReader
from clientify_sync.api.settings import ClientifySettings
from clientify_sync.errors import MalformedResponseError, NotFoundError

SLOT_ROUTE = "/v2/webhooks/{entity}/"
ACTIVATE_ROUTE = "/v2/webhooks/{entity}/activate/"


@dataclass(frozen=True)
class Slot:
    """One entity's webhook slot as ``GET`` shows it (``target`` empty: free)."""

    entity: str
    target: str
    is_active: bool

    @property
    def free(self) -> bool:
        return not self.target


class ClientifyWebhookSlots:
    """The v2 webhook-slot API of one Clientify account (``close()`` when done)."""

    def __init__(
        self, settings: ClientifySettings, transport: httpx.BaseTransport | None = None, *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        v2 = dataclasses.replace(settings, base_url=settings.v2_base_url(), fallback_host="")
        self.base_url = v2.base_url
        self._session = ApiSession(
            JsonReader(API, clientify_error), v2, auth=TokenHeaderAuth(settings.api_key),
            headers={"Accept": "application/json"}, transport=transport, sleep=sleep,
        )  # fmt: skip

    def get(self, entity: str) -> Slot:
        """The slot of ``entity`` (a 404 is a free slot)."""
        try:
            body = self._session.request("GET", SLOT_ROUTE, path_params={"entity": entity})
        except NotFoundError as error:
            if error.detail == "Api key not provided.":
                raise
            return Slot(entity, "", False)
        return _slot(entity, body, "GET")

    def register(self, entity: str, target: str, headers: Mapping[str, str]) -> Slot:
        """Point the free slot of ``entity`` at ``target``; Clientify sends ``headers`` with every delivery.

        Raises:
            ConflictError: the slot already holds a target (409).
            ValidationError: Clientify refused the URL (400 ``{"target": [...]}``).
        """
        body = self._session.request(
            "POST",
            SLOT_ROUTE,
            path_params={"entity": entity},
            json={"target": target, "headers": dict(headers)},
        )
        return _slot(entity, body, "POST") if isinstance(body, dict) else Slot(entity, target, True)

    def activate(self, entity: str) -> None:
        """Switch a slot that was switched off back on."""
        self._session.request("POST", ACTIVATE_ROUTE, path_params={"entity": entity})

    def delete(self, entity: str) -> None:
        """Free the slot of ``entity``."""
        self._session.request("DELETE", SLOT_ROUTE, path_params={"entity": entity})

    def close(self) -> None:
        self._session.close()


def _slot(entity: str, body: Any, method: str) -> Slot:
    if not isinstance(body, dict):
        raise MalformedResponseError(API, method, SLOT_ROUTE, 200, "expected {entity, target, is_active}")
    return Slot(entity, str(body.get("target") or ""), bool(body.get("is_active")))
