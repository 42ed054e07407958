"""The status -> exception table shared by the three APIs (each API module adds its quirks)."""

from __future__ import annotations

from clientify_sync.errors import (
    ApiError,
    AuthenticationError,
    FatalApiError,
    NotFoundError,
    RateLimitedError,
    TransientApiError,
    ValidationError,
)

_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthenticationError,  # valid credentials, action not permitted: still stop the run
    404: NotFoundError,
    409: ValidationError,  # duplicate
    422: ValidationError,
    429: RateLimitedError,
}


def error_class_for(status: int) -> type[ApiError] | None:
    """None for success; the class for anything else (3xx are not followed, so they are errors)."""
    if 200 <= status < 300:
        return None
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return TransientApiError if status >= 500 else FatalApiError
