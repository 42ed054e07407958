"""Authentication dependencies, one per API, each failing exactly as its reference says.

Credentials are read from the live config on every request, so a test can "revoke" them mid-run with
``PUT /_sandbox/config``.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import Request

from include.sandbox.config import ClientifyConfig, FacturaDirectaConfig, FacturamaConfig
from include.sandbox.context import ctx
from include.sandbox.errors import drf_detail, fd_status, json_error


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (user, "")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def facturama_auth(request: Request) -> None:
    """HTTP Basic with the account's API user and password; else 401 with a Basic challenge."""
    cfg = ctx(request).config
    assert isinstance(cfg, FacturamaConfig)
    creds = _basic(request.headers.get("authorization", ""))
    if creds and _same(creds[0], cfg.user) and _same(creds[1], cfg.password):
        return
    raise json_error(
        401,
        {"Message": "Authorization has been denied for this request."},
        {"WWW-Authenticate": f'Basic realm="{cfg.realm}"'},
    )


def clientify_auth(request: Request) -> None:
    """``Authorization: Token <key>``: no key -> 404 ``Api key not provided.``, a wrong one -> 401."""
    cfg = ctx(request).config
    assert isinstance(cfg, ClientifyConfig)
    header = request.headers.get("authorization")
    scheme, _, key = (header or "").strip().partition(" ")
    if not header or scheme.lower() != "token":
        raise drf_detail(404, "Api key not provided.")
    if not key.strip() or not _same(key.strip(), cfg.token):
        raise drf_detail(401, "Invalid token.", {"WWW-Authenticate": "Token"})


def facturadirecta_auth(request: Request) -> None:
    """``?api_token=TOKEN`` or Basic ``TOKEN:anything``; else 401 ``<xml><httpStatus>401</httpStatus></xml>``."""
    cfg = ctx(request).config
    assert isinstance(cfg, FacturaDirectaConfig)
    token = request.query_params.get("api_token")
    if token is None:
        creds = _basic(request.headers.get("authorization", ""))
        token = creds[0] if creds else None
    if token is not None and _same(token, cfg.token):
        return
    raise fd_status(401, {"WWW-Authenticate": f'Basic realm="{cfg.realm}"'})
