"""FacturaDirecta REST error bodies (errors.md@03f4cd9): ``{statusCode, message, type?, errors?[], code?, …}``.

One exception type carries status, body and headers from any layer (model, router, gate) to the
response, like ``errors.VendorError`` does for the other emulators.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from include.sandbox import jsonio

JSON = "application/json; charset=utf-8"


class RestError(Exception):
    """An error answer: ``extra`` holds optional root members (``requiredScope``, ``companyId``…)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,  # noqa: A002 - the documented member name
        errors: list[dict[str, Any]] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.type = type
        self.errors = errors
        self.code = code
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"statusCode": self.status, "message": self.message}
        if self.type is not None:
            out["type"] = self.type
        if self.errors is not None:
            out["errors"] = self.errors
        if self.code is not None:
            out["code"] = self.code
        out.update(self.extra)
        return out

    def encoded(self) -> bytes:
        return jsonio.dumps(self.body()).encode()

    def response(self) -> Response:
        return Response(self.encoded(), status_code=self.status, media_type=JSON, headers=self.headers)


def validation(errors: list[dict[str, Any]]) -> RestError:
    """400 ``Validation failed`` / ``ValidationError`` with dotted paths (``content.main.lines.0.unitPrice``)."""
    return RestError(400, "Validation failed", type="ValidationError", errors=errors)


def not_found() -> RestError:
    """404 for an unknown id and for another company's id alike (never revealed)."""
    return RestError(404, "Not Found")


def conflict(message: str, path: str | None = None, code: str | None = None) -> RestError:
    item: dict[str, Any] = {"message": message}
    if path:
        item["path"] = path
    if code:
        item["code"] = code
    return RestError(409, message, errors=[item])


def plan_limit(message: str) -> RestError:
    """403 with ``errors[0].code = "plan_limit_exceeded"`` and a message naming the cap."""
    return RestError(403, message, errors=[{"code": "plan_limit_exceeded", "message": message}])


def coded(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> RestError:
    """Idempotency answers: the code in ``errors[0].code`` (idempotency.md@38abd0c)."""
    return RestError(status, message, errors=[{"code": code, "message": message}], headers=headers)


class Problems:
    """Collects every field error of one request before answering (one 400 naming all paths)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, path: str, message: str, code: str = "invalid") -> None:
        self.items.append({"path": path, "message": message, "code": code})

    def check(self) -> None:
        if self.items:
            raise validation(self.items)
