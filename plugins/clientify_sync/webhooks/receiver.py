"""The webhook receiver: two public routes that verify their sender, store one inbox row, answer at once.

Mounted by the status app at ``/clientify-sync/webhooks`` as an app of its own, with nothing else on
it: Airflow authenticates none of a plugin's routes, and these are the only ones meant to be
reachable from the internet (expose just this prefix through the reverse proxy). Every route reads
the raw body first (capped: 413), proves the sender before parsing it (401, nothing stored; no
secret configured is a 401 too), stores one row per consuming integration in one INSERT, and
answers 200; 503 when the row cannot be stored (FacturaDirecta retries; for Clientify, which never
retries an answer, the clock run is the backstop). The payload is a hint: only the event type and
the record's id are kept (a run re-reads the record from its API).

- ``POST /facturadirecta/{account}``: ``Webhook-Signature`` (HMAC of the raw body, 5-minute window,
  current or previous secret), then the company and ``livemode`` of the account (a mismatch: 200,
  ignored); deduplicated on the event id (``whe_…``).
- ``POST /clientify/{slot}/{path_token}``: the ``X-Clientify-Secret`` header and the path token, both
  compared in constant time; ``slot`` is Clientify's webhook slot (``contacts``, ``companies``,
  ``products``, ``budgets``); deduplicated on event, record id and ``modified`` (or the record's
  content hash when it has none).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from clientify_sync.engine.ledger import write_transaction
from clientify_sync.engine.ledger.inbox import InboxEvent, add
from clientify_sync.vocabulary import Platform
from clientify_sync.webhooks.access_log import MaskPathToken
from clientify_sync.webhooks.config import WebhookConfig
from clientify_sync.webhooks.verify import WebhookRejected, secret_matches, verify_signature

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
CLIENTIFY, FACTURADIRECTA = "clientify", "facturadirecta"
# Clientify's webhook slot -> (synced entity, Clientify record type, which is also its events' prefix).
CLIENTIFY_SLOTS = {
    "contacts": ("contacts", "contact"),
    "companies": ("contacts", "company"),
    "products": ("products", "product"),
    "budgets": ("estimates", "budget"),
}
CLIENTIFY_ACTIONS = ("saved", "deleted")
# FacturaDirecta's event object -> synced entity; ``archived`` / ``unarchived`` are delete / restore.
FACTURADIRECTA_OBJECTS = {"contact": "contacts", "product": "products", "estimate": "estimates"}
FACTURADIRECTA_ACTIONS = ("created", "updated", "archived", "unarchived")
MAX_ID_CHARS = 64


# -- dependencies (replaced in tests) --------------------------------------------------------------------

_config = WebhookConfig()


def get_config() -> WebhookConfig:
    """The secrets and expectations, from the webhook connections (cached per process)."""
    return _config


class _Consumers:
    """The enabled platforms (each one's DAG consumes Clientify's events), re-read every minute."""

    def __init__(self) -> None:
        self.at = -1e9
        self.names: tuple[str, ...] = ()

    def __call__(self) -> tuple[str, ...]:
        if time.monotonic() - self.at > 60.0:
            try:
                from clientify_sync.integrations import load_integrations

                self.names = tuple(p.name.value for p in load_integrations().enabled_platforms)
            except Exception:  # noqa: BLE001 - an unreadable config stores for every platform (as the UI shows all)
                self.names = tuple(p.value for p in Platform)
            self.at = time.monotonic()
        return self.names


_consumers = _Consumers()


def get_ledger(request: Request) -> Callable[[], Engine]:
    """How a route gets the ledger engine (``create_receiver_app``'s ``ledger``): called inside the
    store, so that a failure to reach the ledger is a 503."""
    ledger: Callable[[], Engine] = request.app.state.ledger
    return ledger


def get_clientify_consumers() -> Sequence[str]:
    """The integrations a Clientify event is stored for."""
    return _consumers()


def get_clock() -> Callable[[], float]:
    """Unix time (the signature window is checked against it)."""
    return time.time


ConfigDep = Annotated[WebhookConfig, Depends(get_config)]
EngineFactory = Annotated[Callable[[], Engine], Depends(get_ledger)]
ConsumersDep = Annotated[Sequence[str], Depends(get_clientify_consumers)]
ClockDep = Annotated[Callable[[], float], Depends(get_clock)]


# -- helpers --------------------------------------------------------------------------------------------


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused with 413 beyond ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, "body too large")
    return bytes(body)


def _refuse(source: str, reason: str) -> HTTPException:
    log.info("%s webhook refused: %s", source, reason)
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "unauthorized")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not a JSON object")
    return body


def _record_id(value: Any) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, str))
        or not str(value)
        or len(str(value)) > MAX_ID_CHARS
    ):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "no usable record id")
    return str(value)


def _facturadirecta_id(record: Any) -> Any:
    """The id of an event's ``data.object``: the REST record envelope's ``content.uuid`` (what the API's
    GET returns), ``uuid`` when the object is the envelope's ``content`` (§15.9), or a root ``id``."""
    if not isinstance(record, dict):
        return None
    content = record.get("content")
    if isinstance(content, dict) and content.get("uuid"):
        return content["uuid"]
    return record.get("uuid") or record.get("id")


def _sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _parse_time(value: Any) -> datetime | None:
    """A source timestamp (ISO text or Unix seconds) as UTC, or None when it is neither."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def _ignored(source: str, reason: str) -> JSONResponse:
    log.info("%s webhook ignored: %s", source, reason)
    return JSONResponse({"status": "ignored"})


async def _store(
    engine_factory: Callable[[], Engine], event: InboxEvent, integrations: Sequence[str]
) -> JSONResponse:
    """One INSERT; 503 when the ledger cannot take it (the sender or the clock run tries again)."""

    def work() -> bool:
        with write_transaction(engine_factory()) as conn:
            return add(conn, event, integrations)

    try:
        new = await run_in_threadpool(work)
    except Exception as error:  # noqa: BLE001 - any failure to store is a 503, never a 2xx
        log.warning(
            "%s webhook not stored (%s): %s %s",
            event.source,
            type(error).__name__,
            event.entity,
            event.external_id,
        )
        return JSONResponse({"status": "unavailable"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    log.debug("%s webhook %s: %s %s/%s (%s)", event.source, "stored" if new else "duplicate", event.event_type,
              event.record_type, event.external_id, event.dedupe_key[:12])  # fmt: skip
    return JSONResponse({"status": "stored" if new else "duplicate"})


# -- the routes -----------------------------------------------------------------------------------------

router = APIRouter()


@router.post("/facturadirecta/{account}", name="facturadirecta_webhook")
async def facturadirecta_webhook(
    request: Request, account: str, config: ConfigDep, engine: EngineFactory, clock: ClockDep
) -> JSONResponse:
    """A FacturaDirecta event: signature first, then company and mode, then one row (dedupe: event id)."""
    raw = await read_body(request)
    expected = await run_in_threadpool(config.facturadirecta, account)
    if expected is None:
        raise _refuse(FACTURADIRECTA, f"account {account[:64]!r} has no webhook secret configured")
    try:
        verify_signature(
            raw, request.headers.get("webhook-signature"), expected.secrets, now=clock(),
            timestamp_header=request.headers.get("webhook-timestamp"),
        )  # fmt: skip
    except WebhookRejected as error:
        raise _refuse(FACTURADIRECTA, error.reason) from None
    body = _json(raw)
    if body.get("company_id") != expected.company_id:
        return _ignored(FACTURADIRECTA, "another company's event")
    if body.get("livemode") is not expected.livemode:
        return _ignored(
            FACTURADIRECTA, f"livemode {body.get('livemode')!r} on a livemode={expected.livemode} account"
        )
    event_type = str(body.get("type") or "")
    kind, _, action = event_type.partition(".")
    if kind not in FACTURADIRECTA_OBJECTS or action not in FACTURADIRECTA_ACTIONS:
        return _ignored(FACTURADIRECTA, f"event type {event_type[:64]!r}")
    event_id = body.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "no event id")
    data = body.get("data")
    record = data.get("object") if isinstance(data, dict) else None
    record_id = _record_id(_facturadirecta_id(record))
    event = InboxEvent(
        source=FACTURADIRECTA, entity=FACTURADIRECTA_OBJECTS[kind], record_type=kind, external_id=record_id,
        event_type=event_type, dedupe_key=_sha256(f"{FACTURADIRECTA}|{expected.company_id}|{event_id}"),
        payload_sha256=_sha256(raw), source_ts=_parse_time(body.get("created")),
    )  # fmt: skip
    return await _store(engine, event, [Platform.FACTURADIRECTA.value])


@router.post("/clientify/{slot}/{path_token}", name="clientify_webhook")
async def clientify_webhook(
    request: Request, slot: str, path_token: str, config: ConfigDep, engine: EngineFactory,
    consumers: ConsumersDep,
) -> JSONResponse:  # fmt: skip
    """A Clientify event: secret header and path token, then one row per enabled platform."""
    raw = await read_body(request)
    expected = await run_in_threadpool(config.clientify)
    if expected is None:
        raise _refuse(CLIENTIFY, "no webhook secret or path token configured")
    header_ok = secret_matches(request.headers.get("x-clientify-secret"), expected.secrets)
    token_ok = secret_matches(path_token, expected.path_tokens)
    if not (header_ok and token_ok):
        raise _refuse(
            CLIENTIFY, "wrong or missing " + ("X-Clientify-Secret" if not header_ok else "path token")
        )
    if slot not in CLIENTIFY_SLOTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such webhook slot")
    entity, record_type = CLIENTIFY_SLOTS[slot]
    body = _json(raw)
    hook = body.get("hook")
    event_type = str((hook.get("event") if isinstance(hook, dict) else None) or body.get("event") or "")
    kind, _, action = event_type.partition(".")
    if kind != record_type or action not in CLIENTIFY_ACTIONS:
        return _ignored(CLIENTIFY, f"event {event_type[:64]!r} on the {slot} slot")
    data = body.get("data")
    if not isinstance(data, dict):
        data = body.get(record_type)  # an older shape: the record under its own name
    if not isinstance(data, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "no record in the body")
    record_id = _record_id(data.get("id"))
    modified = data.get("modified")
    version = (
        str(modified)
        if modified
        else _sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str))
    )
    event = InboxEvent(
        source=CLIENTIFY, entity=entity, record_type=record_type, external_id=record_id, event_type=event_type,
        dedupe_key=_sha256(f"{event_type}|{record_id}|{version}"), payload_sha256=_sha256(raw),
        source_ts=_parse_time(modified),
    )  # fmt: skip
    return await _store(engine, event, list(consumers))


def create_receiver_app(ledger: Callable[[], Engine]) -> FastAPI:
    """An app with the receiver's routes and nothing else (no Airflow auth, no docs, no OpenAPI).

    Args:
        ledger: returns the ledger engine (the status app passes its own: same URL resolution, same
            pool, schema upgraded); may raise when the ledger is unreachable (the route answers 503).
    """
    app = FastAPI(title="clientify-sync webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ledger = ledger
    app.include_router(router)
    app.add_middleware(MaskPathToken)  # the access log must not show the Clientify path token
    return app
