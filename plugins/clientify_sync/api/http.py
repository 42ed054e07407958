"""The HTTP layer under every API client: one ``httpx.Client``, concurrency slots, rate budget,
retries, call accounting and the POST safety rule.

An ``ApiSession`` knows nothing about a particular API: the API module hands it a ``ResponseReader``
that maps statuses to exceptions and decodes bodies. Every attempt is counted in ``stats``.

POST safety: a POST that may have reached the server (read timeout, dropped connection, 500/502/504,
a truncated success body) is never re-sent; it raises ``UnconfirmedWriteError`` so the caller looks
the record up first. A POST is retried only when it provably was not processed: connect errors
(nothing was sent), 429 and 503. Exception: a POST that carries an ``Idempotency-Key`` header (the
FacturaDirecta REST API) is retried like a PUT, since the API answers a re-send of a request it already
ran with the stored answer instead of running it again; only when the last try still leaves the outcome
open does it raise ``UnconfirmedWriteError``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from clientify_sync.api.ratelimit import TokenBucket
from clientify_sync.api.redaction import install_httpx_log_redaction, redact_token
from clientify_sync.api.retry import RetryPolicy
from clientify_sync.api.settings import HttpSettings
from clientify_sync.api.stats import CallStats
from clientify_sync.errors import (
    ApiError,
    IdempotencyKeyInUseError,
    MalformedResponseError,
    NotFoundError,
    RetriableApiError,
    TransientApiError,
    UnconfirmedWriteError,
)

log = logging.getLogger("clientify_sync.api")

# Failures that prove the request never left: safe to retry even for a POST.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Statuses after which a POST may or may not have been applied.
MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})

Params = Mapping[str, str | int | float | Sequence[str]]  # a sequence: the parameter repeated
IDEMPOTENCY_HEADER = "idempotency-key"


class RequestBudget(Protocol):
    """Decides when the next request may leave: ``TokenBucket`` in one process, or a budget shared
    through the ledger by every task of an account (``clientify_sync.engine.budget``)."""

    def acquire(self) -> float:
        """Block until one request may be sent; return the seconds waited."""
        ...


class ResponseReader(Protocol):
    """What an API module supplies: its name, its status mapping and its body decoder."""

    @property
    def api(self) -> str:
        """The API's name, in logs, stats and errors."""
        ...

    def error_for(self, response: httpx.Response, method: str, route: str) -> ApiError | None:
        """The typed error for an unsuccessful response, or None when it succeeded."""

    def decode(self, response: httpx.Response, method: str, route: str) -> Any:
        """The decoded body of a successful response."""


class Requester(Protocol):
    """Sends one logical request and returns the decoded body: ``ApiSession``, or Clientify's failover."""

    def request(
        self,
        method: str,
        route: str,
        *,
        path_params: Mapping[str, object] | None = None,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        url: str | None = None,
        natural_key: str | None = None,
    ) -> Any:
        """See ``ApiSession.request``."""
        ...


@dataclass(frozen=True)
class Call:
    """One logical request; ``route`` is the template used in logs, stats and errors."""

    method: str
    route: str
    target: str
    params: Params | None = None
    json: Any = None
    content: bytes | None = None
    natural_key: str | None = None
    headers: Mapping[str, str] | None = None
    # Failures after which this replayable POST may have been applied (filled while it is retried).
    doubts: list[ApiError] = field(default_factory=list, compare=False)

    @property
    def label(self) -> str:
        return f"{self.method} {self.route}"

    @property
    def replayable(self) -> bool:
        """A POST with an ``Idempotency-Key``: a re-send is answered with the first answer, not run again."""
        return self.method == "POST" and any(
            name.lower() == IDEMPOTENCY_HEADER for name in self.headers or {}
        )


def fill_route(route: str, path_params: Mapping[str, object]) -> str:
    """Put URL-quoted values into a route template: ``/Client/{id}`` -> ``/Client/abc%2F1``."""
    return route.format(**{key: quote(str(value), safe="") for key, value in path_params.items()})


class ApiSession:
    """Thread-safe request runner shared by the resources of one API client."""

    def __init__(
        self,
        reader: ResponseReader,
        settings: HttpSettings,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_response: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        """``on_response`` sees every answer's status and headers before its body is read (retries
        included): the FacturaDirecta REST client's rate-limit gate reads ``X-RateLimit-*`` there."""
        install_httpx_log_redaction()
        self.api = reader.api
        self.settings = settings
        self.stats = CallStats(reader.api)
        self._reader = reader
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._bucket: RequestBudget = TokenBucket(settings.requests_per_minute, sleep=sleep)
        self._retry = RetryPolicy(settings, sleep=sleep)
        self._client = httpx.Client(
            base_url=settings.base_url,
            auth=auth,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(
                max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
            ),
            transport=transport,
            follow_redirects=False,
            event_hooks={"response": [on_response]} if on_response is not None else None,
        )

    def request(
        self,
        method: str,
        route: str,
        *,
        path_params: Mapping[str, object] | None = None,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        url: str | None = None,
        natural_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send with retries and return the decoded body (None for an empty one).

        Args:
            route: path template (``/v1/contacts/{id}/``); logged and counted instead of the URL.
            url: an absolute URL to follow instead of ``route`` (a ``next`` link); only its path and
                query are used, always against this client's own host.
            natural_key: the record's natural key (RFC, SKU...), carried by ``UnconfirmedWriteError``.
            headers: headers of this request only (an ``Idempotency-Key`` makes a POST replayable).
        """
        target = self.rebase(url) if url else fill_route(route, path_params or {})
        call = Call(method, route, target, params, json, content, natural_key, headers)
        try:
            return self._retry.run(
                lambda attempt: self._attempt(call, attempt), label=f"{self.api} {call.label}"
            )
        except (RetriableApiError, MalformedResponseError) as error:
            if call.replayable and (call.doubts or isinstance(error, IdempotencyKeyInUseError)):
                # The re-sends did not settle it (or the first request with this key is still running).
                raise self._unconfirmed(call, error) from error
            raise

    def share_budget(self, budget: RequestBudget) -> None:
        """Draw every request from ``budget`` instead of this client's own token bucket."""
        self._bucket = budget

    def rebase(self, url: str) -> str:
        """Keep a followed link on our own origin so credentials never go to another host."""
        link = httpx.URL(url)
        base = httpx.URL(self.settings.base_url)
        if (link.scheme, link.host, link.port) == (base.scheme, base.host, base.port):
            return url
        return str(base.copy_with(path=link.path, query=link.query or None))

    def _attempt(self, call: Call, attempt: int) -> Any:
        with self._slots:
            self._bucket.acquire()
            started = time.monotonic()
            try:
                response = self._client.request(
                    call.method,
                    call.target,
                    params=call.params,
                    json=call.json,
                    content=call.content,
                    headers=call.headers,
                )
            except httpx.RequestError as exc:
                self._record(call, None, attempt, started, failed=True)
                raise self._transport_failure(call, exc) from exc
        try:
            result = self._interpret(call, response, attempt)
        except Exception:
            self._record(call, response.status_code, attempt, started, failed=True)
            raise
        self._record(call, response.status_code, attempt, started, failed=False)
        return result

    def _record(self, call: Call, status: int | None, attempt: int, started: float, *, failed: bool) -> None:
        elapsed = time.monotonic() - started
        self.stats.record(call.method, call.route, status, attempt, elapsed, failed=failed)
        shown = status if status is not None else "no response"
        log.debug("%s %s -> %s in %.3fs (attempt %d)", self.api, call.label, shown, elapsed, attempt)

    def _transport_failure(self, call: Call, exc: httpx.RequestError) -> Exception:
        reason = redact_token(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        error = TransientApiError(self.api, call.method, call.route, None, reason)
        if isinstance(exc, NOT_SENT_ERRORS):
            return error
        return self._unconfirmed_if_post(call, error)

    def _interpret(self, call: Call, response: httpx.Response, attempt: int) -> Any:
        error = self._reader.error_for(response, call.method, call.route)
        if error is not None:
            if call.method == "DELETE" and attempt > 1 and isinstance(error, NotFoundError):
                return None  # an earlier attempt deleted it; its answer was lost in transit
            if isinstance(error, TransientApiError) and error.status in MAYBE_APPLIED_STATUSES:
                raise self._unconfirmed_if_post(call, error)
            raise error
        try:
            return self._reader.decode(response, call.method, call.route)
        except (TransientApiError, MalformedResponseError) as unreadable:
            # A 2xx we cannot read: for a POST the write may have happened, so it is unconfirmed.
            raise self._unconfirmed_if_post(call, unreadable) from None

    def _unconfirmed_if_post(
        self, call: Call, error: TransientApiError | MalformedResponseError
    ) -> Exception:
        if call.method != "POST":
            return error
        if call.replayable:
            call.doubts.append(error)  # retried as it is: the API replays it if it was applied
            return error
        return self._unconfirmed(call, error)

    def _unconfirmed(self, call: Call, error: ApiError) -> UnconfirmedWriteError:
        return UnconfirmedWriteError(
            self.api, call.method, call.route, call.natural_key, error.status, error.detail or "no response"
        )

    def close(self) -> None:
        self._client.close()
