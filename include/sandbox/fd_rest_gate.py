"""The FacturaDirecta REST request gate, a pure ASGI middleware in front of the REST routes.

Why one layer: what every request goes through is ordered, and most of it needs the raw exchange
(the whole response for idempotency, headers on every answer):

1. ``X-Request-Id`` and ``X-Api-Version`` on every answer (``accept-version``: a known version is applied,
   anything else falls back to the current one; authentication.md@38abd0c).
2. The ``facturadirecta-api-key`` header, ``<6 alphanumerics>.<32 alphanumerics>``: missing, malformed or
   unknown → 401. A key acts only on its own company: another ``/api/{companyId}`` → 403.
3. Rate limits per company and calendar minute (30/60/120/300/600 by plan): ``X-RateLimit-Limit``,
   ``-Remaining``, ``-Reset`` on every answer; over the limit ``Retry-After`` is added and the request is
   still served, unless ``rest_rate_limit_enforced`` turns it into a 429.
4. Scopes ``<resource>:read`` (GET) / ``<resource>:write``: missing → 403 ``token_scope_missing`` with
   ``requiredScope``.
5. ``Idempotency-Key`` on POST/PUT/DELETE (idempotency.md@38abd0c): 16-255 visible ASCII (quotes
   stripped) else 400 ``invalid_idempotency_key``; per company, 24 h on the sandbox clock, bound to
   method, path, query and the body compared semantically. A replay answers the stored status and body with
   ``Idempotent-Replayed: true``, ``Idempotent-Original-Date`` and ``Idempotent-Original-Request-Id``; the
   same key while the first request runs → 409 ``idempotency_key_in_use`` + ``Retry-After``; with another
   request → 422 ``idempotency_key_reused``. Only 2xx answers are stored (an error releases the key), and
   the key is echoed in ``Idempotency-Key``. 401/403/429 happen before, so they never consume a key.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool

from include.sandbox import jsonio
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.context import ApiContext
from include.sandbox.fd_rest_errors import JSON, RestError, coded
from include.sandbox.fd_rest_runtime import RestRuntime
from include.sandbox.models.facturadirecta_rest import IDEMPOTENCY_TABLE, PLANS
from include.sandbox.store import NewRow, Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KEY_FORMAT = re.compile(r"[A-Za-z0-9]{6}\.[A-Za-z0-9]{32}")
KNOWN_VERSIONS = ("1.0.8", "1.0.9", "1.0.10")
IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
WRITE_METHODS = ("POST", "PUT", "DELETE")
# Path segment after the company -> scope resource (None: no scope needed).
SCOPE_RESOURCES = {
    "contacts": "contacts",
    "products": "products",
    "estimates": "estimates",
    "customFields": "customFields",
    "activity": "activity",
    "settings": "settings",
    "webhooks": "webhooks",
    "apiKeyInfo": None,
}
_PATH = re.compile(r"^/api/(?P<company>[^/]+)(?:/(?P<resource>[^/]+))?")


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    key: str
    plan: str
    scopes: frozenset[str]

    def rate_limit(self, cfg: FacturaDirectaConfig) -> int:
        return cfg.rest_rate_limit or int(PLANS[self.plan]["rate"] or 0)


def companies(cfg: FacturaDirectaConfig) -> dict[str, Company]:
    """The main company (``rest_*``) and the second one (``rest_other_*``, every scope)."""
    scopes = frozenset(s.strip() for s in cfg.rest_scopes.split(",") if s.strip())
    every = frozenset(f"{r}:{a}" for r in SCOPE_RESOURCES.values() if r for a in ("read", "write"))
    return {
        cfg.rest_company_id: Company(
            cfg.rest_company_id, cfg.rest_company_name, cfg.rest_api_key, cfg.rest_plan, scopes
        ),
        cfg.rest_other_company_id: Company(
            cfg.rest_other_company_id,
            "Otra Empresa, S.L.",
            cfg.rest_other_api_key,
            cfg.rest_other_plan,
            every,
        ),
    }


def required_scope(method: str, path: str) -> str | None:
    match = _PATH.match(path)
    if not match or match["company"] == "profile" or not match["resource"]:
        return None
    resource = SCOPE_RESOURCES.get(match["resource"])
    if resource is None:
        return None
    return f"{resource}:{'read' if method in ('GET', 'HEAD') else 'write'}"


def applied_version(requested: str | None, cfg: FacturaDirectaConfig) -> str:
    if requested and (requested in KNOWN_VERSIONS or requested == cfg.rest_version):
        return requested
    return cfg.rest_version


# -- idempotency records (store) -------------------------------------------------------------------


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """Method, path, sorted query and the body compared semantically (key order and spaces ignored)."""
    try:
        canonical = (
            json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")) if body.strip() else ""
        )
    except ValueError:
        canonical = body.decode("latin-1")
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return hashlib.sha256(jsonio.dumps([method, path, pairs, canonical]).encode()).hexdigest()


class IdempotencyLog:
    """``facturadirecta_rest_idempotency`` rows: ``rid`` = company + key, ``created`` = first request."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(
        self, company: str, key: str, fp: str, request_id: str, now_ms: int
    ) -> tuple[str, dict[str, Any] | None]:
        """``("run", None)`` for a first use; else ``replay`` (stored answer), ``in_flight`` or ``reused``."""
        rid = f"{company} {key}"
        with self.store.session(write=True) as s:
            row = s.get(IDEMPOTENCY_TABLE, rid=rid)
            if row is not None and (row.created or 0) // 1000 + IDEMPOTENCY_TTL_MS <= now_ms:
                s.delete(IDEMPOTENCY_TABLE, row.seq)
                row = None
            if row is None:
                body = {"fp": fp, "state": "in_flight", "requestId": request_id, "date": now_ms}
                s.insert(IDEMPOTENCY_TABLE, [NewRow(body=body, rid=rid, k1=company, created=now_ms * 1000)])
                return "run", None
        if row.body["fp"] != fp:
            return "reused", None
        if row.body["state"] == "in_flight":
            return "in_flight", None
        return "replay", row.body

    def finish(self, company: str, key: str, status: int, content_type: str, body: bytes) -> None:
        """Keep a 2xx answer for replays; any other outcome releases the key."""
        rid = f"{company} {key}"
        with self.store.session(write=True) as s:
            row = s.get(IDEMPOTENCY_TABLE, rid=rid)
            if row is None:
                return
            if not 200 <= status < 300:
                s.delete(IDEMPOTENCY_TABLE, row.seq)
                return
            stored = {
                **row.body,
                "state": "done",
                "status": status,
                "contentType": content_type,
                "body": body.decode("utf-8"),
            }
            s.replace(
                IDEMPOTENCY_TABLE, row.seq, NewRow(body=stored, rid=rid, k1=company, created=row.created)
            )

    def release(self, company: str, key: str) -> None:
        with self.store.session(write=True) as s:
            row = s.get(IDEMPOTENCY_TABLE, rid=f"{company} {key}")
            if row is not None and row.body["state"] == "in_flight":
                s.delete(IDEMPOTENCY_TABLE, row.seq)


def read_key(raw: str) -> str | None:
    """Surrounding double quotes are ignored; 16-255 visible ASCII characters, no spaces."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if 16 <= len(key) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in key):
        return key
    return None


# -- the middleware --------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return messages, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class RestGate:
    """Wraps the REST FastAPI app; ``/_sandbox/`` paths go straight through."""

    def __init__(self, app: ASGIApp, context: ApiContext, runtime: RestRuntime) -> None:
        self.app = app
        self.context = context
        self.runtime = runtime
        self.log = IdempotencyLog(context.store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        await run_in_threadpool(self.runtime.sync)
        cfg = self.context.config
        assert isinstance(cfg, FacturaDirectaConfig)
        request_headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        request_id = uuid.uuid4().hex
        extra = {
            "X-Request-Id": request_id,
            "X-Api-Version": applied_version(request_headers.get("accept-version"), cfg),
        }
        known = companies(cfg)
        match = _PATH.match(scope["path"])
        path_company = match["company"] if match and match["company"] != "profile" else None
        raw_key = request_headers.get("facturadirecta-api-key", "")
        caller = next((c for c in known.values() if KEY_FORMAT.fullmatch(raw_key) and c.key == raw_key), None)
        counted = caller or known.get(path_company or "")
        if counted is not None:
            window = self.runtime.hit(counted.id, counted.rate_limit(cfg))
            extra.update(
                {
                    "X-RateLimit-Limit": str(window.limit),
                    "X-RateLimit-Remaining": str(window.remaining),
                    "X-RateLimit-Reset": str(window.reset_s),
                }
            )
            if window.over:
                extra["Retry-After"] = str(max(window.reset_s - self.runtime.now_ms() // 1000, 1))
        else:
            window = None
        error = self._refusal(scope, cfg, caller, path_company, window)
        if error is not None:
            await self._send_error(send, error, extra)
            return
        assert caller is not None
        scope.setdefault("state", {})["fd_rest"] = {
            "company": caller.id,
            "plan": caller.plan,
            "request_id": request_id,
        }
        raw_idempotency = request_headers.get("idempotency-key")
        if raw_idempotency is not None and scope["method"] in WRITE_METHODS:
            await self._idempotent(scope, receive, send, caller, raw_idempotency, extra)
            return
        await self.app(scope, receive, self._adding(send, extra))

    def _refusal(
        self,
        scope: Scope,
        cfg: FacturaDirectaConfig,
        caller: Company | None,
        path_company: str | None,
        window: Any,
    ) -> RestError | None:
        if caller is None:
            return RestError(401, "Unauthorized: missing or invalid facturadirecta-api-key")
        if path_company is not None and path_company != caller.id:
            return RestError(403, "The API key does not belong to this company")
        if window is not None and window.over and cfg.rest_rate_limit_enforced:
            return RestError(429, "Too Many Requests")
        needed = required_scope(scope["method"], scope["path"])
        if needed is not None and needed not in caller.scopes:
            return RestError(
                403, f"The API key lacks the scope {needed}", code="token_scope_missing", requiredScope=needed
            )
        return None

    @staticmethod
    def _adding(send: Send, extra: dict[str, str]) -> Send:
        async def adding(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_encode(extra)]}
            await send(message)

        return adding

    @staticmethod
    async def _send_error(send: Send, error: RestError, extra: dict[str, str]) -> None:
        await RestGate._send(send, error.status, JSON, error.encoded(), {**extra, **error.headers})

    @staticmethod
    async def _send(send: Send, status: int, content_type: str, body: bytes, extra: dict[str, str]) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *_encode(extra),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _idempotent(
        self, scope: Scope, receive: Receive, send: Send, caller: Company, raw: str, extra: dict[str, str]
    ) -> None:
        key = read_key(raw)
        if key is None:
            error = coded(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 16-255 visible ASCII characters without spaces",
            )
            await self._send_error(send, error, extra)
            return
        extra = {**extra, "Idempotency-Key": key}
        messages, body = await _read_body(receive)
        query = scope.get("query_string", b"").decode("latin-1")
        fp = fingerprint(scope["method"], scope["path"], query, body)
        now = self.runtime.now_ms()
        outcome, stored = await run_in_threadpool(
            self.log.begin, caller.id, key, fp, extra["X-Request-Id"], now
        )
        if outcome == "reused":
            error = coded(
                422, "idempotency_key_reused", "This Idempotency-Key was used with a different request"
            )
            await self._send_error(send, error, extra)
            return
        if outcome == "in_flight":
            error = coded(
                409,
                "idempotency_key_in_use",
                "A request with this Idempotency-Key is still running",
                {"Retry-After": "1"},
            )
            await self._send_error(send, error, extra)
            return
        if outcome == "replay":
            assert stored is not None
            replay = {
                **extra,
                "Idempotent-Replayed": "true",
                "Idempotent-Original-Date": formatdate(stored["date"] / 1000, usegmt=True),
                "Idempotent-Original-Request-Id": stored["requestId"],
            }
            await self._send(
                send, stored["status"], stored["contentType"], stored["body"].encode("utf-8"), replay
            )
            return
        hold = self.runtime.take(scope["method"], scope["path"])
        status, headers, chunks = 500, [], []

        async def capturing(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = int(message["status"]), list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        # The answer is stored before it is sent: a write whose answer the client never gets (a dropped
        # connection) is replayed, not run twice.
        try:
            if hold is not None:
                await self.runtime.wait(hold)
            await self.app(scope, _replaying(messages, receive), capturing)
        except BaseException:
            await run_in_threadpool(self.log.release, caller.id, key)
            raise
        body = b"".join(chunks)
        content_type = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"), JSON)
        await run_in_threadpool(self.log.finish, caller.id, key, status, content_type, body)
        kept = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode()),
                    *kept,
                    *_encode(extra),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
