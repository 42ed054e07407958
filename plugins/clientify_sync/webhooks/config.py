"""The receiver's secrets and expectations, read from Airflow connections of their own.

Why separate connections: the API connections' extras are validated and closed (``api/settings.py``),
and the API server, which runs the receiver, then reads only webhook secrets, never an API key.

- ``clientify_sync_webhooks_clientify``: extras ``webhook_secret`` (the ``X-Clientify-Secret`` value
  registered with every slot), ``webhook_secret_previous`` (accepted too, during a rotation),
  ``webhook_path_token`` (the unguessable last segment of the target URL) and
  ``webhook_path_token_previous``.
- ``clientify_sync_webhooks_facturadirecta_<account>``: extras ``webhook_secret`` (the endpoint's
  ``whsec_…`` signing secret), ``webhook_secret_previous``, ``company_id`` (``com_…``: events of
  another company are ignored) and ``livemode`` (default true: test events are ignored on a live
  account, live events on a sandbox one). ``<account>`` is the last segment of the route.

A missing connection or a secret shorter than ``verify.MIN_SECRET_CHARS`` means "not configured":
every delivery is refused (fail closed). Values are cached for ``CACHE_TTL_S`` per process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.webhooks.verify import usable

log = logging.getLogger(__name__)

CLIENTIFY_CONN_ID = "clientify_sync_webhooks_clientify"
FACTURADIRECTA_CONN_PREFIX = "clientify_sync_webhooks_facturadirecta_"
ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
CACHE_TTL_S = 30.0
CACHE_MAX = 256  # accounts named in URLs: a flood of made-up ones must not grow the cache forever


@dataclass(frozen=True)
class ClientifyWebhook:
    """What a Clientify delivery must carry: one of ``secrets`` in the header, one of ``path_tokens``."""

    secrets: tuple[str, ...] = field(repr=False)
    path_tokens: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class FacturaDirectaWebhook:
    """What a FacturaDirecta delivery must be: signed with one of ``secrets``, of this company and mode."""

    secrets: tuple[str, ...] = field(repr=False)
    company_id: str
    livemode: bool = True


def clientify_from_extra(extra: dict[str, Any]) -> ClientifyWebhook | None:
    """The Clientify expectations of a connection's extras (None: not configured)."""
    secrets = usable((extra.get("webhook_secret"), extra.get("webhook_secret_previous")))
    tokens = usable((extra.get("webhook_path_token"), extra.get("webhook_path_token_previous")))
    if not secrets or not tokens:
        return None
    return ClientifyWebhook(secrets, tokens)


def facturadirecta_from_extra(extra: dict[str, Any]) -> FacturaDirectaWebhook | None:
    """The FacturaDirecta expectations of a connection's extras (None: not configured)."""
    secrets = usable((extra.get("webhook_secret"), extra.get("webhook_secret_previous")))
    company = str(extra.get("company_id") or "")
    if not secrets or not company:
        return None
    livemode = extra.get("livemode", True)
    if isinstance(livemode, str):
        livemode = livemode.strip().lower() not in ("false", "0", "no")
    return FacturaDirectaWebhook(secrets, company, bool(livemode))


def _connection_extra(conn_id: str) -> dict[str, Any] | None:
    """A connection's extras through Airflow's secrets backends (None when there is no such connection)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return dict(conn.extra_dejson or {})


class WebhookConfig:
    """The receiver's view of the connections, each cached for ``ttl_s`` (a rotation shows within it)."""

    def __init__(
        self, read: Callable[[str], dict[str, Any] | None] = _connection_extra, ttl_s: float = CACHE_TTL_S
    ):
        self._read = read
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def _extra(self, conn_id: str) -> dict[str, Any] | None:
        with self._lock:
            cached = self._cache.get(conn_id)
            if cached and time.monotonic() - cached[0] < self._ttl_s:
                return cached[1]
        try:
            extra = self._read(conn_id)
        except Exception as error:  # noqa: BLE001 - a failing lookup refuses the delivery, never crashes
            log.warning(
                "webhook connection %s could not be read (%s): refusing deliveries",
                conn_id,
                type(error).__name__,
            )
            return None
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[conn_id] = (time.monotonic(), extra)
        return extra

    def clientify(self) -> ClientifyWebhook | None:
        """Clientify's expectations, or None when not configured."""
        extra = self._extra(CLIENTIFY_CONN_ID)
        return clientify_from_extra(extra) if extra is not None else None

    def facturadirecta(self, account: str) -> FacturaDirectaWebhook | None:
        """One FacturaDirecta account's expectations, or None (unknown account, not configured)."""
        if not ACCOUNT.match(account):
            return None
        extra = self._extra(FACTURADIRECTA_CONN_PREFIX + account)
        return facturadirecta_from_extra(extra) if extra is not None else None
