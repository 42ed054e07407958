"""Vendor-shaped errors: one exception type carrying the exact status, body and headers to send.

Handlers and dependencies raise ``VendorError``; each app turns it into a response unchanged. The
builders below produce each API's documented error bodies so no handler assembles one by hand.
"""

from __future__ import annotations

from starlette.responses import Response

from include.sandbox import jsonio
from include.sandbox.xmlio import error_document, status_document

JSON = "application/json; charset=utf-8"
XML = "application/xml; charset=UTF-8"
HTML = "text/html; charset=utf-8"


class VendorError(Exception):
    """An error response, raised from anywhere below a route and rendered as is."""

    def __init__(
        self, status: int, body: bytes | str, media_type: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.media_type = media_type
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, media_type=self.media_type, headers=self.headers)


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonio.dumps(payload).encode(), status_code=status, media_type=JSON, headers=headers)


def json_error(status: int, payload: object, headers: dict[str, str] | None = None) -> VendorError:
    return VendorError(status, jsonio.dumps(payload), JSON, headers)


# -- Facturama (ASP.NET Web API HttpError) ---------------------------------------------------------

INVALID_REQUEST = "La solicitud no es válida."


def facturama_invalid(model_state: dict[str, list[str]]) -> VendorError:
    """400 ``{"Message": "La solicitud no es válida.", "ModelState": {...}}``."""
    return json_error(400, {"Message": INVALID_REQUEST, "ModelState": model_state})


def facturama_message(status: int, message: str) -> VendorError:
    """A bare ``{"Message": ...}`` (business rules, 404, 405, 500)."""
    return json_error(status, {"Message": message})


# -- Clientify (Django REST Framework) -------------------------------------------------------------


def drf_detail(status: int, detail: str, headers: dict[str, str] | None = None) -> VendorError:
    return json_error(status, {"detail": detail}, headers)


def django_not_found(path: str) -> VendorError:
    """Django's HTML 404 page for an unknown URL (clients must not expect JSON here)."""
    page = (
        '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
        f"  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
        f"  <!-- {path.replace('--', '- -')} -->\n</body>\n</html>\n"
    )
    return VendorError(404, page, HTML)


# -- FacturaDirecta (XML envelope) -----------------------------------------------------------------


def fd_status(status: int, headers: dict[str, str] | None = None) -> VendorError:
    """``<xml><httpStatus>N</httpStatus></xml>`` (404, 401, ...)."""
    return VendorError(status, status_document(status), XML, headers)


def fd_invalid(message: str, status: int = 400, code: str = "INVALID_INPUT_DATA") -> VendorError:
    """400 with ``errorCode`` ``INVALID_INPUT_DATA`` and a Spanish ``errorMessage``."""
    return VendorError(status, error_document(status, code, message), XML)
