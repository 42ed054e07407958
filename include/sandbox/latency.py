"""Latency profiles: what each request costs on the real service, as first-match latency rules per API.

Why: loopback answers in milliseconds, so a sync that looks fast here can take hours against the real
APIs. A profile makes the sandbox as slow as the services are (or a fixed fraction of that, ``scale``)
for ``make demo``, tests and ``make bench``. Profiles use the fault layer's latency rules
(``include/sandbox/faults.py``): the first matching rule of a request gives its delay, and list rules
scale with the page size asked for.

``realistic`` figures:

- Clientify list pages: 24 ms per record of the requested page (``page_size``, default 20, at most
  100), i.e. **2.4 s per 100-record page**, as a live ETL log against the real API shows
  (``NicoJSuarez2/etl_clientify`` ``log/etl.log``, cited in clientify-api.md §3.1).
- Everything else is a **stated guess** (no public figure): Clientify detail GET 300 ms, writes 500 ms,
  the custom-field list (unpaged) 500 ms; Facturama paged lists 200 ms + 4 ms per record (600 ms per
  100), ``GET /Client`` (100 rows) 600 ms, detail GET 250 ms, writes 400 ms; FacturaDirecta lists
  200 ms + 2 ms per record (400 ms per 100, 700 ms per 250; the REST API's lists and activity pages
  alike, 1.2 s per 500), detail GET 250 ms, writes 400 ms.
"""

from __future__ import annotations

from typing import Any

PROFILE_NAMES = ("none", "realistic")

# Clientify: the one measured figure (clientify-api.md §3.1): 2.4 s per 100-record list page.
CLIENTIFY_MS_PER_LISTED_RECORD = 24.0

_REALISTIC: dict[str, list[dict[str, Any]]] = {
    "clientify": [
        {
            "method": "GET",
            "path": r"^/v1/(contacts|companies|products|budgets)/$",
            "latency_per_item_ms": CLIENTIFY_MS_PER_LISTED_RECORD,
            "items_param": "page_size",
            "items_default": 20,
            "items_max": 100,
        },
        {"method": "GET", "path": r"^/v1/custom-fields/$", "latency_ms": 500},  # guess
        {"method": "GET", "path": ".*", "latency_ms": 300},  # guess
        {"method": "*", "path": ".*", "latency_ms": 500},  # guess (writes)
    ],
    "facturama": [
        {
            "method": "GET",
            "path": r"^/(clients|products|estimates)$",
            "latency_ms": 200,
            "latency_per_item_ms": 4,
            "items_param": "length",
            "items_default": 100,
            "items_max": 100,
        },  # guess
        {
            "method": "GET",
            "path": r"^/(client|product|estimate)$",
            "latency_ms": 600,
        },  # guess (first 100 rows)
        {"method": "GET", "path": ".*", "latency_ms": 250},  # guess
        {"method": "*", "path": ".*", "latency_ms": 400},  # guess (writes)
    ],
    "facturadirecta": [
        {
            "method": "GET",
            "path": r"^/api/(clients|products|estimates)\.xml$",
            "latency_ms": 200,
            "latency_per_item_ms": 2,
            "items_param": "limit",
            "items_default": 100,
            "items_max": 250,
        },  # guess
        # The REST API on the same port (fd_rest_app.py): offset lists up to 500, activity up to 100.
        {
            "method": "GET",
            "path": r"^/api/com_[^/]+/(contacts|products|estimates|customFields)$",
            "latency_ms": 200,
            "latency_per_item_ms": 2,
            "items_param": "limit",
            "items_default": 50,
            "items_max": 500,
        },  # guess
        {
            "method": "GET",
            "path": r"^/api/com_[^/]+/activity$",
            "latency_ms": 200,
            "latency_per_item_ms": 2,
            "items_param": "limit",
            "items_default": 50,
            "items_max": 100,
        },  # guess
        {"method": "GET", "path": ".*", "latency_ms": 250},  # guess
        {"method": "*", "path": ".*", "latency_ms": 400},  # guess (writes)
    ],
}


def profile_rules(name: str, api: str, scale: float = 1.0) -> list[dict[str, Any]]:
    """The profile's rules for one API, every latency multiplied by ``scale`` (``none``: no rules)."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown latency profile {name!r}; known: {list(PROFILE_NAMES)}")
    if scale < 0:
        raise ValueError("the latency scale must not be negative")
    if name == "none":
        return []
    rules = []
    for rule in _REALISTIC[api]:
        scaled = dict(rule)
        for key in ("latency_ms", "latency_per_item_ms"):
            if key in scaled:
                scaled[key] = scaled[key] * scale
        rules.append(scaled)
    return rules
