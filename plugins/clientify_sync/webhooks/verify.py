"""Who sent a webhook: FacturaDirecta's signature and Clientify's shared secret, checked in constant time.

FacturaDirecta signs like Stripe: ``Webhook-Signature: t=<unix>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, ``"<t>.<raw body>"``), refused when ``t`` is more than 5 minutes from now. Clientify
signs nothing: the only proof is the ``X-Clientify-Secret`` header registered with the slot (and the
path token we put in the target URL). Both accept a previous secret beside the current one, so a
rotation loses no delivery. Nothing here reads a body as JSON: a signature is checked on the raw bytes
before anything parses them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from clientify_sync.errors import ClientifySyncError

TOLERANCE_S = 300
# A secret or path token shorter than this is treated as not configured (guessable).
MIN_SECRET_CHARS = 16


class WebhookRejected(ClientifySyncError):
    """A delivery that is not proven to come from its sender (answered 401, nothing stored).

    ``reason`` is for our log only; the sender learns nothing beyond the status.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def usable(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The configured secrets long enough to count (empty: fail closed)."""
    return tuple(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)


def sign(raw: bytes, secret: str, timestamp: int) -> str:
    """The ``Webhook-Signature`` header FacturaDirecta sends for ``raw`` (tests and the sandbox use it)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, raw)}"


def _mac(secret: str, timestamp: int | str, raw: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()


def parse_signature(header: str) -> tuple[str, list[str]]:
    """``t=…,v1=…[,v1=…]`` as the timestamp text and every ``v1`` value (other schemes ignored).

    Raises:
        WebhookRejected: no timestamp or no ``v1``.
    """
    timestamp, signatures = "", []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value.strip()
        elif key == "v1":
            signatures.append(value.strip())
    if not timestamp.isdigit() or not signatures:
        raise WebhookRejected("malformed Webhook-Signature")
    return timestamp, signatures


def verify_signature(
    raw: bytes, header: str | None, secrets: Sequence[str], *, now: float, timestamp_header: str | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> int:  # fmt: skip
    """Check FacturaDirecta's signature of ``raw`` with any of ``secrets``; return its timestamp.

    Every (secret, ``v1``) pair is compared with ``hmac.compare_digest``. A ``Webhook-Timestamp``
    header, when sent, must equal the signed ``t``.

    Raises:
        WebhookRejected: no secret configured, no or malformed header, no matching signature, or a
            timestamp more than ``tolerance_s`` from ``now`` (a replay).
    """
    if not secrets:
        raise WebhookRejected("no webhook secret configured")
    if not header:
        raise WebhookRejected("no Webhook-Signature")
    timestamp, signatures = parse_signature(header)
    if timestamp_header is not None and timestamp_header.strip() != timestamp:
        raise WebhookRejected("Webhook-Timestamp differs from the signed timestamp")
    expected = [_mac(secret, timestamp, raw) for secret in secrets]
    matched = False
    for candidate in expected:
        for given in signatures:
            matched |= hmac.compare_digest(candidate.encode(), given.encode())
    if not matched:
        raise WebhookRejected("signature mismatch")
    if abs(now - int(timestamp)) > tolerance_s:
        raise WebhookRejected("timestamp outside the tolerance")
    return int(timestamp)


def secret_matches(given: str | None, secrets: Sequence[str]) -> bool:
    """Whether ``given`` equals one of ``secrets``, compared in constant time (none configured: False)."""
    if not given or not secrets:
        return False
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret.encode(), given.encode())
    return matched
