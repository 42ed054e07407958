"""The error tree: shape, messages and picklability."""

from __future__ import annotations

import pickle

import pytest

from clientify_sync import errors
from clientify_sync.errors import (
    ApiError,
    AuthenticationError,
    FatalApiError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RetriableApiError,
    TransientApiError,
    UnconfirmedWriteError,
    ValidationError,
)


@pytest.mark.parametrize(
    ("error_class", "parent"),
    [
        pytest.param(errors.ConfigurationError, errors.ClientifySyncError, id="configuration"),
        pytest.param(ApiError, errors.ClientifySyncError, id="api"),
        pytest.param(FatalApiError, ApiError, id="fatal"),
        pytest.param(AuthenticationError, FatalApiError, id="auth"),
        pytest.param(NotFoundError, FatalApiError, id="not-found"),
        pytest.param(ValidationError, FatalApiError, id="validation"),
        pytest.param(MalformedResponseError, FatalApiError, id="malformed"),
        pytest.param(RetriableApiError, ApiError, id="retriable"),
        pytest.param(RateLimitedError, RetriableApiError, id="rate-limited"),
        pytest.param(TransientApiError, RetriableApiError, id="transient"),
        pytest.param(UnconfirmedWriteError, errors.ClientifySyncError, id="unconfirmed"),
    ],
)
def test_error_tree_matches_the_architecture(error_class: type, parent: type) -> None:
    assert error_class.__mro__[1] is parent


def test_unconfirmed_write_is_not_an_api_error_so_nothing_retries_it() -> None:
    assert not issubclass(UnconfirmedWriteError, ApiError)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            ValidationError(
                "facturama", "POST", "/Client", 400, "La solicitud no es válida.", {"Rfc": ["bad"]}
            ),
            id="validation",
        ),
        pytest.param(
            RateLimitedError("clientify", "GET", "/v1/contacts/", 429, "slow", retry_after=2.5), id="429"
        ),
        pytest.param(
            TransientApiError("facturadirecta", "GET", "/api/clients.xml", None, "ReadTimeout"),
            id="transient",
        ),
        pytest.param(
            UnconfirmedWriteError("clientify", "POST", "/v1/contacts/", "B12345674", 504, "x"),
            id="unconfirmed",
        ),
    ],
)
def test_errors_survive_pickling_with_every_field(error: Exception) -> None:
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert vars(restored) == vars(error)
    assert str(restored) == str(error)


def test_api_error_message_names_api_method_route_status_and_detail() -> None:
    error = ValidationError(
        "clientify",
        "POST",
        "/v1/contacts/",
        400,
        "validation failed",
        {"email": ["Enter a valid email address."]},
    )
    assert str(error) == (
        "clientify POST /v1/contacts/ -> 400: validation failed [email: Enter a valid email address.]"
    )


def test_detail_is_truncated_to_about_500_characters() -> None:
    error = TransientApiError("facturama", "GET", "/Clients", 500, "x" * 5000)
    assert len(error.detail) == 500


def test_unconfirmed_write_keeps_the_natural_key_out_of_the_message() -> None:
    error = UnconfirmedWriteError("facturama", "POST", "/Client", "URE180429TM6", None, "ReadTimeout")
    assert error.natural_key == "URE180429TM6"
    assert "URE180429TM6" not in str(error) and "URE180429TM6" not in repr(error)
