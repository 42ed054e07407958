"""One error tree for the whole package.

Callers branch on the class, never on message text: ``AuthenticationError`` stops a run,
``ValidationError`` fails one record, ``RetriableApiError`` may be tried again later,
``UnconfirmedWriteError`` means "look the record up before creating it again" and
``SystemicFailure`` stops a run whose writes keep failing.

The run report's reason code for a failed or skipped record is the ``reason`` class attribute of the
error (``RecordError`` and its subclasses before any call, the ``ApiError`` tree for an API's
answer), never a name derived from the class.

Every error is picklable (Airflow may ship it to another process) and carries only what is safe to
log: the API name, the HTTP method, the route *template* (``/Client/{id}``, never a URL with query
values or tokens), the status and a truncated detail.
"""

from __future__ import annotations

from typing import Any

DETAIL_LIMIT = 500


def truncate(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Cap a server-supplied text so an error never quotes a whole response body."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ClientifySyncError(Exception):
    """Root of every error raised by this package."""


class ConfigurationError(ClientifySyncError):
    """A connection or setting is missing, malformed or unknown."""


class ApiError(ClientifySyncError):
    """An API answered (or failed to answer) a request in a way the caller must handle.

    ``reason`` (class attribute) is the run report's code for a record whose write failed this way.

    Attributes:
        api: ``"facturama"``, ``"clientify"`` or ``"facturadirecta"``.
        method: HTTP method of the request.
        route: path template of the request (``/v1/contacts/{id}/``), no query values.
        status: HTTP status, or None when no response arrived.
        detail: the parsed server message, truncated.
        field_errors: per-field messages (Facturama ModelState, Clientify DRF map,
            FacturaDirecta errorCode -> errorMessage).
    """

    reason = "api_error"

    def __init__(
        self,
        api: str,
        method: str,
        route: str,
        status: int | None = None,
        detail: str = "",
        field_errors: dict[str, list[str]] | None = None,
    ) -> None:
        """Keep the safe-to-log facts of the failed request.

        Args:
            api: the API's name.
            method: HTTP method.
            route: path template, without query values.
            status: HTTP status, or None when no response arrived.
            detail: the server's message (truncated here).
            field_errors: per-field messages, copied.
        """
        self.api = api
        self.method = method
        self.route = route
        self.status = status
        self.detail = truncate(detail)
        self.field_errors = {key: list(values) for key, values in (field_errors or {}).items()}
        super().__init__(self._message())

    def _message(self) -> str:
        status = self.status if self.status is not None else "no response"
        text = f"{self.api} {self.method} {self.route} -> {status}"
        if self.detail:
            text += f": {self.detail}"
        if self.field_errors:
            fields = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in self.field_errors.items())
            text += f" [{truncate(fields, 300)}]"
        return text

    def _state(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "detail": self.detail,
            "field_errors": self.field_errors,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickling replays ``args`` positionally; rebuild from the named fields instead.
        return (_rebuild, (type(self), self._state()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._message()!r})"


def _rebuild(cls: type[ClientifySyncError], state: dict[str, Any]) -> ClientifySyncError:
    return cls(**state)


class FatalApiError(ApiError):
    """Retrying the same request will not help."""

    reason = "fatal_api_error"


class AuthenticationError(FatalApiError):
    """Bad credentials, inactive subscription or missing permission: stop the run."""

    reason = "authentication_error"


class PlanLimitExceededError(AuthenticationError):
    """403 ``plan_limit_exceeded``: the account's plan caps what was being created (FacturaDirecta's REST
    API: 10 clients on the free plan, 100 on Bronce, 20 custom fields...).

    Every further create of that kind fails the same way until the plan changes, so one such error stops
    the creates instead of failing record after record; as an ``AuthenticationError`` it stops the run.
    ``detail`` carries the API's message, which names the cap.
    """

    reason = "plan_limit_exceeded"


class NotFoundError(FatalApiError):
    """The record or route does not exist."""

    reason = "not_found_error"


class ValidationError(FatalApiError):
    """The API rejected the record (400/422) or a duplicate (409): fail this record, go on."""

    reason = "validation_error"


class ConflictError(ValidationError):
    """409: the record clashes with the API's state (a duplicate tax id, product ``externalId`` or
    estimate number; a delete blocked by documents): fail this record; the caller may look the other up."""

    reason = "api_conflict"


class IdempotencyKeyReusedError(ValidationError):
    """422 ``idempotency_key_reused``: the key was used before for another request. For a create this
    means an earlier create with that key went through (the API keeps only successful answers), so the
    client reports the create as unconfirmed rather than failed."""

    reason = "idempotency_key_reused"


class MalformedResponseError(FatalApiError):
    """A success status with a body that is HTML, not JSON/XML, or hostile XML."""

    reason = "malformed_response_error"


class RetriableApiError(ApiError):
    """The request may succeed if sent again later.

    ``retry_after`` is the pause in seconds the server asked for (``Retry-After`` on 429 or 503),
    or None.
    """

    reason = "transient_error"

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "retry_after": self.retry_after}


class RateLimitedError(RetriableApiError):
    """429; ``retry_after`` says how long the server wants us to wait, when it says."""


class IdempotencyKeyInUseError(RetriableApiError):
    """409 ``idempotency_key_in_use``: a request with the same ``Idempotency-Key`` is still running; sent
    again after ``retry_after``, it is answered with that request's result."""


class TransientApiError(RetriableApiError):
    """5xx, transport failures (timeouts, refused or dropped connections) and truncated bodies."""


class UnconfirmedWriteError(ClientifySyncError):
    """A POST whose request may have reached the server, but whose outcome is unknown.

    The client never re-sends such a POST unless it carries an ``Idempotency-Key`` (then the API replays
    it; this error means even the re-sends left the outcome open); the caller looks the record up by
    ``natural_key`` (RFC, SKU, tax code, folio...) before creating it again. Its ``reason`` is the free text of what
    went wrong (``ReadTimeout``, ...), not a report code: the report says ``unconfirmed_create``.
    """

    def __init__(
        self,
        api: str,
        method: str,
        route: str,
        natural_key: str | None = None,
        status: int | None = None,
        reason: str = "",
    ) -> None:
        self.api = api
        self.method = method
        self.route = route
        self.natural_key = natural_key
        self.status = status
        self.reason = truncate(reason, 200)
        super().__init__(self._message())

    def _message(self) -> str:
        status = self.status if self.status is not None else "no response"
        return (
            f"{self.api} {self.method} {self.route} -> {status}: outcome unknown ({self.reason}); "
            "check whether the record exists before creating it again"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        state = {
            "api": self.api,
            "method": self.method,
            "route": self.route,
            "natural_key": self.natural_key,
            "status": self.status,
            "reason": self.reason,
        }
        return (_rebuild, (type(self), state))

    def __repr__(self) -> str:
        return f"UnconfirmedWriteError({self._message()!r})"


class RecordError(ClientifySyncError):
    """One record cannot be written on a side as it stands; the run goes on without it.

    Raised by the mappings before any API call, so nothing half-written is left behind. Each kind is
    a subclass whose class attributes say how it ends: ``reason`` is the report's reason code and
    ``outcome`` is ``"failed"`` (the data is wrong: dead-lettered and retried) or ``"skipped"`` (out
    of scope until the record changes). Anything else a mapping raises is a programming error and
    is not turned into a dead letter.
    """

    outcome = "failed"
    reason = "bad_record"

    def __init__(self, detail: str) -> None:
        """Keep what to tell the user about this record.

        Args:
            detail: what is wrong and, where it helps, how to fix it (truncated here).
        """
        self.detail = truncate(detail)
        super().__init__(f"{self.reason}: {self.detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), {"detail": self.detail}))


class RecordSkipped(RecordError):
    """The record is out of what the target side can hold (no e-mail, a line without SKU): skipped."""

    outcome = "skipped"


class MissingEmailError(RecordSkipped):
    """Facturama requires ``Email`` on every client write; the customer has none."""

    reason = "missing_email"


class LineWithoutSkuError(RecordSkipped):
    """A document line names no product SKU, so it cannot reference a product on the other side."""

    reason = "line_without_sku"


class CreatedTwiceError(RecordError):
    """An earlier try of this create left more than one record on the target: linking one would hide
    the other, so the item fails and the records are named for a person to merge."""

    reason = "link_conflict"


class DependencyMissingError(RecordError):
    """A document's customer or product is not linked on the target side (yet): the document waits."""

    reason = "dependency_missing"


class UnrepresentableError(RecordError):
    """The target side cannot hold the record exactly (amounts, discounts, tax mix); the subclass says how."""

    reason = "not_representable"


class TotalsNotRepresentableError(UnrepresentableError):
    """The target side's own totals would differ from the source's by at least a cent."""

    reason = "totals_not_representable"


class UnsupportedTaxMixError(UnrepresentableError):
    """The document's lines carry VAT rates the target cannot combine (FacturaDirecta: one per document)."""

    reason = "unsupported_tax_mix"


class DiscountNotRepresentableError(UnrepresentableError):
    """A line's discount amount is no rate the target keeps (FacturaDirecta: two-decimal percentages)."""

    reason = "discount_not_representable"


class SystemicFailure(ClientifySyncError):
    """Too many consecutive transient failures: the API is down, so the run stops here.

    Built like any exception, from one message (``SystemicFailure("10 consecutive ...")``); the
    watermark is not advanced, and the records not written are picked up by the next run.
    """
