"""Keep the Clientify path token out of the API server's access log.

Why: Airflow's ``HttpAccessLogMiddleware`` (``airflow.api_fastapi.common.http_access_log``) logs every
request's ``scope["path"]`` verbatim once the app has answered, and only redacts the query string. A
Clientify target ends in our path token, a secret as good as the ``X-Clientify-Secret`` header, so
every delivery wrote it to the API server's log (seen in the end-to-end run). The receiver's routes
need the real path to match, so this middleware masks it in the shared ASGI scope *after* the
receiver has answered: the access log, which reads the path in a ``finally`` around the whole app,
then logs ``…/clientify/<slot>/***``.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

MASK = "***"
_TOKEN = re.compile(r"(/clientify/[^/]*/)[^/]+(/?)$")


def masked(path: str) -> str:
    """``…/clientify/<slot>/<token>`` as ``…/clientify/<slot>/***``; any other path unchanged."""
    return _TOKEN.sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", path)


class MaskPathToken:
    """ASGI middleware: after the wrapped app, ``scope["path"]`` and ``raw_path`` lose the path token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                scope["path"] = masked(str(scope.get("path", "")))
                raw = scope.get("raw_path")
                if isinstance(raw, bytes):
                    scope["raw_path"] = masked(raw.decode("latin-1")).encode("latin-1")
