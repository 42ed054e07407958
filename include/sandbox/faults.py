"""Fault injection for the sandbox servers, as a pure ASGI middleware.

Why pure ASGI (not Starlette's ``BaseHTTPMiddleware``): some faults must act below the response
object — sleep before answering, send headers and then close the socket, or send half a body under
the full ``Content-Length``. Only raw ``send`` calls can do that.

Rules are plain dicts (they travel through the ``/_sandbox/faults`` control endpoint as JSON)::

    {"method": "POST", "path": r"^/v1/contacts/", "latency_ms": 50,
     "rates": {"429": 0.1, "503": 0.05, "drop": 0.01}, "retry_after": 2, "count": 10, "seed": 7}

Each rule owns a ``random.Random`` seeded from its ``seed`` (default: the injector's seed), advanced
once per matching request while the rule is active, so the same request sequence gives the same
faults on every run. At most one fault per request: the first active rule whose draw hits wins; the
fault kinds are tried in the fixed order of ``FAULT_KINDS`` over cumulative rates.

What a client sees (httpx, over a real socket):

- ``"429"``, ``"500"``, ``"502"``, ``"503"``, ``"504"``: that status with a small error body
  (``Retry-After`` on 429 and 503); the inner app is not called.
- ``"timeout"``: nothing for ``timeout_s`` seconds (``httpx.ReadTimeout`` for a shorter client
  timeout); then the request goes through normally. A client that gives up aborts it.
- ``"drop"``: status line and headers with a ``Content-Length``, then the connection closes
  (``httpx.RemoteProtocolError``); the inner app is not called.
- ``"truncate"``: the inner app runs (a write happens), then half its body is sent under the full
  ``Content-Length`` and the connection closes (``httpx.RemoteProtocolError``).
- ``"html"``: an HTML proxy page, ``text/html``, status ``html_status`` (default 200; ``None`` runs
  the inner app and keeps its status).
- ``"xml_bomb"``: 200 ``application/xml`` billion-laughs document.
- ``"xxe"``: 200 ``application/xml`` document whose element uses an external entity
  (``xxe_target``, default ``file:///etc/passwd``; ``XXE_HTTP_TARGET`` is the network variant).

Latency: ``latency_ms`` is added to every matching request (summed over matching rules), plus
``latency_per_item_ms`` times the page size the request asks for (query parameter ``items_param``,
``items_default`` when absent, clamped to 1..``items_max``), so a list page costs in proportion to its
size. A separate *profile* layer (``set_profile``; ``include/sandbox/latency.py`` builds them) gives each
request the latency of its first matching profile rule, under any fault rules. Every added delay is
counted (``delayed``, ``delay_ms`` per rule; ``counters()`` for the whole injector), so tests can assert
that latency was applied without timing it.

Paths under ``/_sandbox/`` are never faulted (the control surface must stay reachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorBody = Callable[[int], tuple[bytes, str]]

CONTROL_PREFIX = "/_sandbox/"
STATUS_FAULTS = ("429", "500", "502", "503", "504")
FAULT_KINDS = (*STATUS_FAULTS, "timeout", "drop", "truncate", "html", "xml_bomb", "xxe")
METHODS = ("*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
XXE_FILE_TARGET = "file:///etc/passwd"
XXE_HTTP_TARGET = "http://127.0.0.1:9/"

_RULE_DEFAULTS: dict[str, Any] = {
    "method": "*",
    "path": ".*",
    "latency_ms": 0,
    "latency_per_item_ms": 0,
    "items_param": None,
    "items_default": 1,
    "items_max": None,
    "rates": {},
    "retry_after": 1,
    "timeout_s": 30.0,
    "count": None,
    "seed": None,
    "html_status": 200,
    "xxe_target": XXE_FILE_TARGET,
}
# Keys reported by rules() that configure() accepts back and ignores.
_REPORT_KEYS = ("applied", "delayed", "delay_ms")


# --------------------------------------------------------------------------------------------------
# Rules and decisions
# --------------------------------------------------------------------------------------------------


@dataclass
class _Rule:
    """A validated rule with its own RNG and remaining-count state."""

    spec: dict[str, Any]
    pattern: re.Pattern[str]
    rng: random.Random
    applied: int = 0
    delayed: int = 0
    delay_ms: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        wanted = self.spec["method"]
        return (wanted == "*" or wanted == method) and self.pattern.search(path) is not None

    def latency(self, query: Callable[[], dict[str, list[str]]]) -> float:
        """This rule's delay for one request: fixed part plus per-item part scaled by the page size asked for."""
        per_item = self.spec["latency_per_item_ms"]
        if not per_item:
            return self.spec["latency_ms"]
        items = self.spec["items_default"]
        param = self.spec["items_param"]
        if param:
            raw = (query().get(param) or [""])[0]
            if raw.strip().isdigit():
                items = int(raw)
        if self.spec["items_max"] is not None:
            items = min(items, self.spec["items_max"])
        return self.spec["latency_ms"] + per_item * max(items, 1)

    def report(self) -> dict[str, Any]:
        return {
            **self.spec,
            "rates": dict(self.spec["rates"]),
            "applied": self.applied,
            "delayed": self.delayed,
            "delay_ms": round(self.delay_ms, 3),
        }

    @property
    def active(self) -> bool:
        count = self.spec["count"]
        return bool(self.spec["rates"]) and (count is None or self.applied < count)

    def draw(self) -> str | None:
        """Advance the RNG once and pick a fault kind (or none) over cumulative rates."""
        u = self.rng.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:
            rate = self.spec["rates"].get(kind, 0.0)
            if rate <= 0:
                continue
            cumulative += rate
            if u < cumulative:
                return kind
        return None


@dataclass(frozen=True)
class Decision:
    """What to do with one request: added latency, then at most one fault (with its rule)."""

    latency_ms: float = 0.0
    fault: str | None = None
    rule: dict[str, Any] = field(default_factory=dict)


def _normalise(rule: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and reject typos early: a silently ignored rule makes a test pass for nothing."""
    unknown = set(rule) - set(_RULE_DEFAULTS) - set(_REPORT_KEYS)
    if unknown:
        raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
    spec = {**_RULE_DEFAULTS, **{k: v for k, v in rule.items() if k not in _REPORT_KEYS}}
    spec["method"] = str(spec["method"]).upper()
    if spec["method"] not in METHODS:
        raise ValueError(f"unknown method {spec['method']!r}")
    rates = {str(k): float(v) for k, v in (spec["rates"] or {}).items()}
    bad = set(rates) - set(FAULT_KINDS)
    if bad:
        raise ValueError(f"unknown fault kinds: {sorted(bad)}; known: {list(FAULT_KINDS)}")
    if any(not 0.0 <= v <= 1.0 for v in rates.values()):
        raise ValueError("fault rates must be between 0 and 1")
    spec["rates"] = rates
    spec["latency_ms"] = float(spec["latency_ms"] or 0)
    spec["latency_per_item_ms"] = float(spec["latency_per_item_ms"] or 0)
    if spec["latency_ms"] < 0 or spec["latency_per_item_ms"] < 0:
        raise ValueError("latencies must not be negative")
    spec["items_default"] = int(spec["items_default"])
    if spec["items_max"] is not None:
        spec["items_max"] = int(spec["items_max"])
    if spec["items_param"] is not None:
        spec["items_param"] = str(spec["items_param"])
    spec["timeout_s"] = float(spec["timeout_s"])
    if spec["count"] is not None:
        spec["count"] = int(spec["count"])
    return spec


class FaultInjector:
    """Thread-safe rule set shared by the control endpoint (sync thread) and the server (event loop)."""

    def __init__(self, rules: list[dict[str, Any]] | None = None, *, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._profile: list[_Rule] = []
        self._profile_name = "none"
        self._counters = _zero_counters()
        self._in_flight = 0
        if rules:
            self.configure(rules)

    def _build(self, rule: dict[str, Any]) -> _Rule:
        spec = _normalise(rule)
        seed = self.seed if spec["seed"] is None else spec["seed"]
        return _Rule(spec=spec, pattern=re.compile(spec["path"]), rng=random.Random(seed))

    def configure(self, rules: list[dict[str, Any]]) -> None:
        """Replace every rule (and restart their RNGs and counts)."""
        built = [self._build(r) for r in rules]
        with self._lock:
            self._rules = built

    def add(self, rule: dict[str, Any]) -> None:
        """Append one rule after the existing ones."""
        built = self._build(rule)
        with self._lock:
            self._rules.append(built)

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[dict[str, Any]]:
        """The rules with defaults filled in, plus ``applied`` (faults injected so far) and the latency
        they added (``delayed`` requests, ``delay_ms`` in total)."""
        with self._lock:
            return [r.report() for r in self._rules]

    def set_profile(self, name: str, rules: list[dict[str, Any]]) -> None:
        """Replace the latency profile: first-match latency rules, kept apart from the fault rules."""
        built = [self._build(r) for r in rules]
        if any(r.spec["rates"] for r in built):
            raise ValueError("profile rules add latency only (no rates)")
        with self._lock:
            self._profile, self._profile_name = built, name

    def profile(self) -> dict[str, Any]:
        with self._lock:
            return {"profile": self._profile_name, "rules": [r.report() for r in self._profile]}

    def counters(self) -> dict[str, Any]:
        """Delays and timeout waits the middleware actually applied (``max_concurrent`` overlapping delays)."""
        with self._lock:
            return {**self._counters, "delay_ms": round(self._counters["delay_ms"], 3)}

    def reset_counters(self) -> None:
        with self._lock:
            self._counters = _zero_counters()
            for rule in (*self._rules, *self._profile):
                rule.delayed, rule.delay_ms = 0, 0.0

    def decide(self, method: str, path: str, query: str = "") -> Decision:
        """First matching profile rule, plus the latency of every matching fault rule; the first active rule
        that draws a fault wins. ``query`` (the raw query string) sizes per-item latency."""
        method = method.upper()
        latency = 0.0
        fault: str | None = None
        chosen: dict[str, Any] = {}
        parsed: dict[str, list[str]] | None = None

        def params() -> dict[str, list[str]]:
            nonlocal parsed
            if parsed is None:
                parsed = parse_qs(query, keep_blank_values=True)
            return parsed

        def add(rule: _Rule) -> None:
            nonlocal latency
            delay = rule.latency(params)
            if delay > 0:
                rule.delayed += 1
                rule.delay_ms += delay
                latency += delay

        with self._lock:
            profile = next((r for r in self._profile if r.matches(method, path)), None)
            if profile is not None:
                add(profile)
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                add(rule)
                if fault is not None or not rule.active:
                    continue
                kind = rule.draw()
                if kind is not None:
                    rule.applied += 1
                    fault, chosen = kind, rule.spec
        return Decision(latency_ms=latency, fault=fault, rule=chosen)

    @contextlib.contextmanager
    def delaying(self, latency_ms: float) -> Iterator[None]:
        """Count one applied delay and how many overlap (parallel requests must not be serialised)."""
        with self._lock:
            self._in_flight += 1
            self._counters["max_concurrent"] = max(self._counters["max_concurrent"], self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._counters["delayed"] += 1
                self._counters["delay_ms"] += latency_ms

    def count_timeout(self, abandoned: bool) -> None:
        """A ``timeout`` fault ended: the client gave up (``abandoned``) or the request went through."""
        with self._lock:
            self._counters["timeouts_abandoned" if abandoned else "timeouts_completed"] += 1


def _zero_counters() -> dict[str, Any]:
    return {
        "delayed": 0,
        "delay_ms": 0.0,
        "max_concurrent": 0,
        "timeouts_completed": 0,
        "timeouts_abandoned": 0,
    }


# --------------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------------


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_error_body(status: int) -> tuple[bytes, str]:
    """Generic JSON error: ``{"detail": "<reason>"}`` (DRF style; Clientify's shape)."""
    return json.dumps({"detail": _reason(status)}).encode(), "application/json"


def xml_error_body(status: int) -> tuple[bytes, str]:
    """FacturaDirecta's error envelope."""
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n  <httpStatus>{status}</httpStatus>\n</xml>\n'
    return body.encode(), "application/xml; charset=utf-8"


def html_page(status: int = 502) -> bytes:
    """A reverse-proxy error page: what a JSON/XML client gets when a gateway answers instead."""
    return (
        "<!DOCTYPE html>\n<html>\n<head><title>"
        f"{status} {_reason(status)}</title></head>\n<body>\n<center><h1>{status} {_reason(status)}</h1>"
        "</center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
    ).encode()


def xml_bomb() -> bytes:
    """Billion laughs: ten nested entity levels, about 3 GB if expanded."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<!DOCTYPE lolz [", ' <!ENTITY lol "lol">']
    for level in range(1, 10):
        ref = "lol" if level == 1 else f"lol{level - 1}"
        lines.append(f' <!ENTITY lol{level} "{("&" + ref + ";") * 10}">')
    lines += ["]>", "<lolz><name>&lol9;</name></lolz>", ""]
    return "\n".join(lines).encode()


def xxe_document(target: str = XXE_FILE_TARGET) -> bytes:
    """An external entity used inside an element: a resolving parser would read the file or URL."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE client [\n <!ENTITY xxe SYSTEM "{target}">\n]>\n'
        "<client><id>1</id><name>&xxe;</name></client>\n"
    ).encode()


# --------------------------------------------------------------------------------------------------
# ASGI plumbing
# --------------------------------------------------------------------------------------------------


def _headers(content_type: str, length: int, extra: list[tuple[bytes, bytes]] | None = None) -> list:
    return [
        (b"content-type", content_type.encode()),
        (b"content-length", str(length).encode()),
        *(extra or []),
    ]


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, extra: list | None = None
) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": _headers(content_type, len(body), extra)}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[int, list, bytes]:
    """Run the inner app to completion and keep its response instead of sending it."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return int(start.get("status", 500)), list(start.get("headers", [])), b"".join(chunks)


async def _buffer_request(receive: Receive) -> tuple[list[Message], bool]:
    """Read the whole request body now (so a later wait sees only a disconnect)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return messages, True
        messages.append(message)
        if not message.get("more_body", False):
            return messages, False


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that first replays the buffered body, then delegates."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _sleep_unless_disconnected(seconds: float, receive: Receive) -> bool:
    """Sleep; return False early if the client hung up meanwhile (so the server does not linger)."""
    waiter = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=seconds)
        return not (done and waiter.result().get("type") == "http.disconnect")
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await waiter


class FaultMiddleware:
    """Applies the injector's decisions to every HTTP request outside ``/_sandbox/``."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        body_kind: Literal["json", "xml"] = "json",
        *,
        error_body: ErrorBody | None = None,
    ) -> None:
        if body_kind not in ("json", "xml"):
            raise ValueError("body_kind must be 'json' or 'xml'")
        self.app = app
        self.injector = injector
        self.body_kind = body_kind
        self.error_body: ErrorBody = error_body or (xml_error_body if body_kind == "xml" else json_error_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        decision = self.injector.decide(scope["method"], scope["path"], query)
        if decision.latency_ms > 0:
            with self.injector.delaying(decision.latency_ms):
                await asyncio.sleep(decision.latency_ms / 1000)
        if decision.fault is None:
            await self.app(scope, receive, send)
            return
        handler = getattr(self, f"_fault_{decision.fault}", None) or self._fault_status
        await handler(decision, scope, receive, send)

    async def _fault_status(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        status = int(decision.fault or 500)
        body, content_type = self.error_body(status)
        extra = []
        if status in (429, 503):
            extra.append((b"retry-after", str(decision.rule.get("retry_after", 1)).encode()))
        await _respond(send, status, body, content_type, extra)

    async def _fault_timeout(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        messages, gone = await _buffer_request(receive)
        if gone or not await _sleep_unless_disconnected(decision.rule["timeout_s"], receive):
            self.injector.count_timeout(abandoned=True)
            return
        self.injector.count_timeout(abandoned=False)
        await self.app(scope, _replaying(messages, receive), send)

    async def _fault_drop(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        # Headers promise a body that never comes; returning early makes uvicorn close the socket. The
        # request body is read first: closing a socket with unread bytes makes Linux send a reset, which
        # a client sees as a read error instead of the short body a real dropped answer gives.
        if (await _buffer_request(receive))[1]:
            return
        content_type = "application/xml; charset=utf-8" if self.body_kind == "xml" else "application/json"
        await send({"type": "http.response.start", "status": 200, "headers": _headers(content_type, 1024)})

    async def _fault_truncate(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await _capture(self.app, scope, receive)
        kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        kept.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": kept})
        # more_body=True and then return: the server must close the connection mid-body.
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})

    async def _fault_html(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        status = decision.rule.get("html_status", 200)
        if status is None:
            status, _, _ = await _capture(self.app, scope, receive)
        await _respond(send, int(status), html_page(502), "text/html; charset=utf-8")

    async def _fault_xml_bomb(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(send, 200, xml_bomb(), "application/xml; charset=utf-8")

    async def _fault_xxe(self, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
        target = decision.rule.get("xxe_target") or XXE_FILE_TARGET
        await _respond(send, 200, xxe_document(target), "application/xml; charset=utf-8")
