"""Which webhook targets the sandbox may deliver to: loopback only.

Why: the sandbox runs beside real credentials and real networks, and a registered target is text
anyone with the fake key can set. Traffic must never leave the machine, so a target must be an
``http``/``https`` URL whose host is a loopback address literal (``127.0.0.0/8``, ``::1``) or the name
``localhost``. The real platforms do the opposite (public HTTPS only, realtime.md §1.1 and
facturadirecta-rest-api.md §12); docs/sandbox.md says so. The worker checks again before each send.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost",)


def target_problem(url: object) -> str | None:
    """Why ``url`` is not an acceptable target, or None when it is."""
    if not isinstance(url, str) or not url.strip():
        return "Enter a valid URL."
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "Enter a valid URL."
    del port  # parsed only to validate it
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter a valid URL."
    if parts.username or parts.password:
        return "Enter a valid URL."
    if not is_loopback_host(parts.hostname):
        return "The sandbox delivers webhooks to loopback addresses only (127.0.0.1, ::1, localhost)."
    return None


def is_loopback_host(host: str) -> bool:
    """A loopback IP literal or ``localhost`` (no other name is resolved)."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
