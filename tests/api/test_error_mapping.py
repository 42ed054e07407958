"""One status-to-exception function per API."""

from __future__ import annotations

import httpx
import pytest

from clientify_sync.api.clientify import clientify_error
from clientify_sync.api.facturadirecta import facturadirecta_error
from clientify_sync.api.facturama import facturama_error
from clientify_sync.errors import (
    AuthenticationError,
    FatalApiError,
    NotFoundError,
    RateLimitedError,
    TransientApiError,
    ValidationError,
)

from .scripted import json_response, xml_response

STATUS_TABLE = [
    pytest.param(401, AuthenticationError, id="401"),
    pytest.param(403, AuthenticationError, id="403"),
    pytest.param(400, ValidationError, id="400"),
    pytest.param(422, ValidationError, id="422"),
    pytest.param(409, ValidationError, id="409-duplicate"),
    pytest.param(404, NotFoundError, id="404"),
    pytest.param(429, RateLimitedError, id="429"),
    pytest.param(500, TransientApiError, id="500"),
    pytest.param(502, TransientApiError, id="502"),
    pytest.param(503, TransientApiError, id="503"),
    pytest.param(504, TransientApiError, id="504"),
    pytest.param(405, FatalApiError, id="405-other"),
]


@pytest.mark.parametrize(("status", "expected"), STATUS_TABLE)
def test_facturama_statuses(status: int, expected: type) -> None:
    error = facturama_error(json_response(status, {"Message": "m"}), "GET", "/Clients")
    assert type(error) is expected and error.status == status and error.route == "/Clients"


@pytest.mark.parametrize(("status", "expected"), STATUS_TABLE)
def test_clientify_statuses(status: int, expected: type) -> None:
    error = clientify_error(json_response(status, {"detail": "Not found."}), "GET", "/v1/contacts/{id}/")
    assert type(error) is expected and error.api == "clientify"


@pytest.mark.parametrize(("status", "expected"), STATUS_TABLE)
def test_facturadirecta_statuses(status: int, expected: type) -> None:
    body = f"<?xml version='1.0' encoding='UTF-8'?><xml><httpStatus>{status}</httpStatus></xml>"
    error = facturadirecta_error(xml_response(status, body), "GET", "/api/clients/{id}.xml")
    assert type(error) is expected and error.api == "facturadirecta"


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(json_response(200, {"Id": "x"}), id="200"),
        pytest.param(json_response(201, {"Id": "x"}), id="201"),
        pytest.param(httpx.Response(204), id="204"),
    ],
)
def test_success_is_not_an_error(response: httpx.Response) -> None:
    assert facturama_error(response, "POST", "/Client") is None
    assert clientify_error(response, "POST", "/v1/contacts/") is None


def test_facturama_model_state_is_flattened_per_field() -> None:
    body = {
        "Message": "La solicitud no es válida.",
        "ModelState": {
            "client.Rfc": ["RFC inválido", "RFC requerido"],
            "Items[0].Quantity": ["> 0"],
            "": ["x"],
        },
    }
    error = facturama_error(json_response(400, body), "POST", "/Client")
    assert error.detail == "La solicitud no es válida."
    assert error.field_errors == {
        "Rfc": ["RFC inválido", "RFC requerido"],
        "Items[0].Quantity": ["> 0"],
        "_": ["x"],
    }


def test_facturama_model_state_with_a_camel_case_model_prefix_names_the_field() -> None:
    body = {
        "Message": "The request is invalid.",
        "ModelState": {
            "clientModel.Email": ["The Email field is required."],
            "productModel.Taxes[0].Rate": ["out of range"],
            "Rfc": ["bare names still work"],
            "clientModel": ["a model-level message"],
        },
    }
    error = facturama_error(json_response(400, body), "PUT", "/Client/{id}")
    assert error.field_errors == {
        "Email": ["The Email field is required."],
        "Taxes[0].Rate": ["out of range"],
        "Rfc": ["bare names still work"],
        "clientModel": ["a model-level message"],
    }
    assert "Email: The Email field is required." in str(error)


def test_clientify_missing_api_key_404_is_an_authentication_error() -> None:
    error = clientify_error(json_response(404, {"detail": "Api key not provided."}), "GET", "/v1/users/")
    assert isinstance(error, AuthenticationError) and error.status == 404


def test_clientify_html_404_is_not_found_with_a_short_text_detail() -> None:
    page = "<!DOCTYPE html><html><head><title>Not Found</title></head><body>" + "x" * 5000 + "</body></html>"
    response = httpx.Response(404, content=page.encode(), headers={"content-type": "text/html"})
    error = clientify_error(response, "GET", "/v1/nothing/")
    assert isinstance(error, NotFoundError) and error.detail == "Not Found"


def test_clientify_drf_field_map_becomes_field_errors() -> None:
    body = {
        "email": ["Enter a valid email address."],
        "emails": [{}, {"email": ["bad"]}],
        "non_field_errors": ["nope"],
    }
    error = clientify_error(json_response(400, body), "POST", "/v1/contacts/")
    assert error.field_errors == {
        "email": ["Enter a valid email address."],
        "emails[1].email": ["bad"],
        "non_field_errors": ["nope"],
    }
    assert error.detail == "nope"


def test_clientify_duplicate_409_is_a_validation_error_with_its_detail() -> None:
    detail = "Contact with this taxpayer_identification_number already exists."
    error = clientify_error(json_response(409, {"detail": detail}), "POST", "/v1/contacts/")
    assert isinstance(error, ValidationError) and error.detail == detail


def test_facturadirecta_error_code_and_message() -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><xml><httpStatus>400</httpStatus><errorCode>INVALID_INPUT_DATA</errorCode>'
        "<errorMessage><![CDATA[Se ha recibido un atributo personalizado que no existe en el objeto]]></errorMessage></xml>"
    )
    error = facturadirecta_error(xml_response(400, body), "PUT", "/api/clients/{id}.xml")
    assert isinstance(error, ValidationError)
    assert error.field_errors == {
        "INVALID_INPUT_DATA": ["Se ha recibido un atributo personalizado que no existe en el objeto"]
    }
    assert error.detail.startswith("INVALID_INPUT_DATA: Se ha recibido")


def test_facturadirecta_envelope_is_honoured_on_a_200() -> None:
    body = "<?xml version='1.0' encoding='UTF-8'?><xml><httpStatus>404</httpStatus></xml>"
    assert isinstance(
        facturadirecta_error(xml_response(200, body), "GET", "/api/clients/{id}.xml"), NotFoundError
    )


def test_facturadirecta_ok_envelope_is_success() -> None:
    body = "<?xml version='1.0' encoding='UTF-8'?><xml><httpStatus>200</httpStatus></xml>"
    assert facturadirecta_error(xml_response(200, body), "DELETE", "/api/clients/{id}.xml") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, id="date-in-the-past"),
        pytest.param("soon", None, id="garbage"),
    ],
)
def test_retry_after_header_is_parsed(header: str, expected: float | None) -> None:
    error = clientify_error(
        json_response(429, {"detail": "throttled"}, {"Retry-After": header}), "GET", "/v1/x/"
    )
    assert error.retry_after == expected


def test_retry_after_as_a_future_http_date() -> None:
    import datetime
    from email.utils import format_datetime

    future = format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30), usegmt=True
    )
    error = facturama_error(json_response(429, {"Message": "m"}, {"Retry-After": future}), "GET", "/Clients")
    assert 25 <= error.retry_after <= 31
