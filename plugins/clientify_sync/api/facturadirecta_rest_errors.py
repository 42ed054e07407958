"""FacturaDirecta REST answers into our error tree (facturadirecta-rest-api.md §5, §6).

The body of every error is ``{statusCode, message, type?, errors?[{path?, message, code?}], code?,
requiredScope?}``. The code that matters sits in ``errors[0].code`` or at the root; the text is never
parsed. Field paths (``content.main.lines.0.unitPrice``) become ``field_errors`` keys.

| Answer | Error |
|---|---|
| 400 | ``ValidationError`` (paths in ``field_errors``) |
| 401, 403 | ``AuthenticationError``; 403 ``plan_limit_exceeded``: ``PlanLimitExceededError`` |
| 404 | ``NotFoundError`` |
| 409 | ``ConflictError``; ``idempotency_key_in_use``: ``IdempotencyKeyInUseError`` (retried) |
| 422 | ``ValidationError``; ``idempotency_key_reused``: ``IdempotencyKeyReusedError`` |
| 429 | ``RateLimitedError``, waiting ``Retry-After``, else until ``X-RateLimit-Reset`` |
| 5xx | ``TransientApiError`` |
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from clientify_sync.api.responses import (
    decode_json,
    json_or_none,
    looks_like_html,
    parse_retry_after,
    text_detail,
)
from clientify_sync.api.statusmap import error_class_for
from clientify_sync.errors import (
    ApiError,
    ConflictError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    PlanLimitExceededError,
    RetriableApiError,
)

API = "facturadirecta"
PLAN_LIMIT = "plan_limit_exceeded"
KEY_IN_USE = "idempotency_key_in_use"
KEY_REUSED = "idempotency_key_reused"
RESET_WAIT_MAX_S = 60.0  # calendar-minute windows: a reset is never further away

_BY_CODE: dict[tuple[int, str], type[ApiError]] = {
    (403, PLAN_LIMIT): PlanLimitExceededError,
    (409, KEY_IN_USE): IdempotencyKeyInUseError,
    (422, KEY_REUSED): IdempotencyKeyReusedError,
}


def error_codes(body: Any) -> list[str]:
    """The machine codes of an error body: the root ``code``, then each ``errors[].code``."""
    if not isinstance(body, dict):
        return []
    items = body.get("errors")
    listed = items if isinstance(items, list) else []
    codes = [body.get("code"), *(item.get("code") for item in listed if isinstance(item, dict))]
    return [code for code in codes if isinstance(code, str) and code]


def field_errors(body: Any) -> dict[str, list[str]]:
    """``{"content.main.fiscalId": ["..."]}`` from ``errors[]`` (an item without a path is keyed by its code)."""
    out: dict[str, list[str]] = {}
    items = body.get("errors") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        key = item.get("path") or item.get("code")
        if isinstance(key, str) and key:
            out.setdefault(key, []).append(str(item.get("message") or ""))
    return out


def rest_error(response: httpx.Response, method: str, route: str) -> ApiError | None:
    """The one status-to-exception function of the REST API (see the module docstring)."""
    status = response.status_code
    error_class = error_class_for(status)
    if error_class is None:
        return None
    body = json_or_none(response)
    codes = error_codes(body)
    error_class = next((_BY_CODE[(status, code)] for code in codes if (status, code) in _BY_CODE), None) or (
        ConflictError if status == 409 else error_class
    )
    kwargs: dict[str, Any] = {}
    if issubclass(error_class, RetriableApiError):
        kwargs["retry_after"] = retry_after(response)
    return error_class(
        API, method, route, status, _detail(response, body, codes), field_errors(body), **kwargs
    )


def retry_after(response: httpx.Response, *, now: float | None = None) -> float | None:
    """``Retry-After``, else the seconds until ``X-RateLimit-Reset`` (capped at a minute), else None."""
    stated = parse_retry_after(response.headers.get("retry-after"), now=now)
    if stated is not None:
        return stated
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if not reset.isdigit():
        return None
    current = time.time() if now is None else now
    return min(max(0.0, int(reset) - current), RESET_WAIT_MAX_S)


def _detail(response: httpx.Response, body: Any, codes: list[str]) -> str:
    if isinstance(body, dict):
        parts = [str(body.get("message") or ""), *(f"[{code}]" for code in codes)]
        if body.get("requiredScope"):
            parts.append(f"(required scope: {body['requiredScope']})")
        return " ".join(part for part in parts if part)
    if not response.content.strip():
        return ""
    return text_detail(response) if looks_like_html(response) else "error body without the JSON error shape"


class FacturaDirectaRestReader:
    """Status mapping and JSON decoding for the REST client's session."""

    api = API

    def error_for(self, response: httpx.Response, method: str, route: str) -> ApiError | None:
        return rest_error(response, method, route)

    def decode(self, response: httpx.Response, method: str, route: str) -> Any:
        return decode_json(response, API, method, route)
