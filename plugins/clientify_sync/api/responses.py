"""Reading response bodies safely: JSON decoding, HTML sniffing, error details, Retry-After.

Decision on unreadable success bodies (documented here because every client relies on it):
- a body that *starts* like the expected format but does not parse (JSON that opens with ``{``/``[``,
  XML that opens with ``<`` but is not HTML or hostile) was most likely cut short in transit, so it
  raises ``TransientApiError`` carrying the success status -- retried for GET/PUT/DELETE, turned into
  ``UnconfirmedWriteError`` for a POST (the server did process it);
- HTML, or a body in another format entirely, raises ``MalformedResponseError``: a proxy or login page
  will not turn into data on a retry.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from clientify_sync.errors import ApiError, MalformedResponseError, TransientApiError, truncate

_TAG = re.compile(r"<[^>]+>")


def looks_like_html(response: httpx.Response) -> bool:
    """True for an HTML page (content type or the first bytes say so)."""
    if "html" in response.headers.get("content-type", "").lower():
        return True
    head = response.content[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def decode_json(response: httpx.Response, api: str, method: str, route: str) -> Any:
    """Decode a success body as JSON; an empty body (204, or 200 with nothing) is None."""
    body = response.content
    if not body.strip():
        return None
    status = response.status_code
    if looks_like_html(response):
        raise MalformedResponseError(api, method, route, status, "HTML page instead of JSON")
    try:
        return json.loads(body)
    except ValueError:
        if body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
            raise TransientApiError(
                api, method, route, status, "truncated or unparseable JSON body"
            ) from None
        raise MalformedResponseError(api, method, route, status, "response body is not JSON") from None


def json_or_none(response: httpx.Response) -> Any:
    """Best-effort JSON of an error body; None when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def text_detail(response: httpx.Response) -> str:
    """A short plain-text rendering of a non-JSON error body (HTML tags stripped)."""
    text = response.content[:4000].decode("utf-8", errors="replace")
    if looks_like_html(response):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else _TAG.sub(" ", text)
    return truncate(text)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP-date relative to now; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # "-0000" dates parse as naive; they are UTC
        moment = moment.replace(tzinfo=datetime.UTC)
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


@dataclass(frozen=True)
class JsonReader:
    """Status mapping and JSON decoding for a JSON API's session (Facturama, Clientify)."""

    api: str
    error_for_status: Callable[[httpx.Response, str, str], ApiError | None]

    def error_for(self, response: httpx.Response, method: str, route: str) -> ApiError | None:
        return self.error_for_status(response, method, route)

    def decode(self, response: httpx.Response, method: str, route: str) -> Any:
        return decode_json(response, self.api, method, route)
