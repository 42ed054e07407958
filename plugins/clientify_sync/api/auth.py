"""httpx auth flows for the two non-Basic schemes; credentials are added only when a request is sent."""

from __future__ import annotations

from collections.abc import Generator

import httpx


class TokenHeaderAuth(httpx.Auth):
    """Clientify: ``Authorization: Token <api key>``."""

    def __init__(self, api_key: str) -> None:
        self._header = f"Token {api_key}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "TokenHeaderAuth(***)"


class QueryTokenAuth(httpx.Auth):
    """FacturaDirecta ``?api_token=``; the httpx log filter masks it (see ``api.redaction``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params({"api_token": self._token})
        yield request

    def __repr__(self) -> str:
        return "QueryTokenAuth(***)"
