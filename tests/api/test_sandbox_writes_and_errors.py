"""Writes and each error type, against the sandbox."""

from __future__ import annotations

import pickle

import pytest

from clientify_sync.errors import (
    AuthenticationError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    TransientApiError,
    ValidationError,
)

from .sandbox_clients import clientify_for, facturadirecta_for, facturama_for, sent

FM_CLIENT = {"Rfc": "URE180429TM6", "Name": "UNIVERSIDAD ROBOTICA ESPAÑOLA", "Email": "api@ejemplo.mx",
             "FiscalRegime": "601", "CfdiUse": "G03", "TaxZipCode": "86991"}  # fmt: skip


def test_facturama_create_get_update_delete(clean_sandbox) -> None:
    with facturama_for(clean_sandbox) as client:
        created = client.clients.create(FM_CLIENT)
        assert client.clients.get(created["Id"])["Rfc"] == "URE180429TM6"
        assert client.clients.update(created["Id"], {**created, "Name": "OTRA"}) is None  # sandbox PUT -> 204
        assert client.clients.get(created["Id"])["Name"] == "OTRA"
        client.clients.delete(created["Id"])
        with pytest.raises(NotFoundError):
            client.clients.get(created["Id"])


def test_facturama_validation_error_carries_model_state(clean_sandbox) -> None:
    with facturama_for(clean_sandbox) as client, pytest.raises(ValidationError) as caught:
        client.clients.create({"Name": "SIN RFC"})
    assert caught.value.status == 400 and "Rfc" in caught.value.field_errors
    assert pickle.loads(pickle.dumps(caught.value)).field_errors == caught.value.field_errors


def test_facturama_bad_password_is_an_authentication_error(clean_sandbox) -> None:
    with facturama_for(clean_sandbox, password="wrong-password") as client:
        with pytest.raises(AuthenticationError) as caught:
            list(client.clients.iter_records())
        assert caught.value.status == 401
        assert client.test_connection()[0] is False


def test_clientify_writes_and_field_errors(clean_sandbox) -> None:
    with clientify_for(clean_sandbox) as client:
        contact = client.contacts.create({"first_name": "Ana", "email": "ana@example.com"})
        assert client.contacts.update(contact["id"], {"last_name": "López"})["last_name"] == "López"
        with pytest.raises(ValidationError) as caught:
            client.contacts.create({"email": "not-an-email"})
        assert caught.value.field_errors.get("email") == ["Enter a valid email address."]
        client.contacts.delete(contact["id"])
        with pytest.raises(NotFoundError):
            client.contacts.get(contact["id"])


def test_clientify_custom_fields_and_link_lookup(clean_sandbox) -> None:
    with clientify_for(clean_sandbox) as client:
        with pytest.raises(ValidationError, match="does not exist"):
            client.contacts.create(
                {"first_name": "A", "custom_fields": [{"field": "in_facturama", "value": "x"}]}
            )
        definition = client.custom_fields.ensure("in_facturama", "contacts | contact")
        assert client.custom_fields.ensure("in_facturama", "contacts | contact")["id"] == definition["id"]
        created = client.contacts.create(
            {"first_name": "A", "custom_fields": [{"field": "in_facturama", "value": "abc"}]}
        )
        client.contacts.create(
            {"first_name": "B", "custom_fields": [{"field": "in_facturama", "value": "abcd"}]}
        )
        assert [c["id"] for c in client.contacts.find_by_custom_field("in_facturama", "abc")] == [
            created["id"]
        ]


def test_clientify_duplicate_tax_id_409_is_a_validation_error(clean_sandbox) -> None:
    clean_sandbox.config("clientify", duplicate_tax_id_409=True)
    with clientify_for(clean_sandbox) as client:
        client.contacts.create({"first_name": "A", "taxpayer_identification_number": "URE180429TM6"})
        with pytest.raises(ValidationError) as caught:
            client.contacts.create({"first_name": "B", "taxpayer_identification_number": "URE180429TM6"})
    assert caught.value.status == 409


def test_clientify_invalid_token_is_an_authentication_error(clean_sandbox) -> None:
    with clientify_for(clean_sandbox, api_key="bogus123") as client:
        assert client.test_connection() == (
            False,
            "Clientify rejected the credentials (HTTP 401): Invalid token.",
        )


def test_clientify_unknown_route_html_404_is_not_found(clean_sandbox) -> None:
    with (
        clientify_for(clean_sandbox, budgets_path="/v1/no-such-thing/") as client,
        pytest.raises(NotFoundError),
    ):
        list(client.budgets.iter_records())


@pytest.mark.parametrize("auth_style", ["basic", "query"])
def test_facturadirecta_writes_custom_attributes_and_errors(clean_sandbox, auth_style: str) -> None:
    with facturadirecta_for(clean_sandbox, auth_style=auth_style) as client:
        body = {"legalType": "J", "name": "ACME ]]> SL", "taxCode": "B12345674",
                "customAttributes": [{"label": "ID_CRM", "value": "735"}]}  # fmt: skip
        created = client.clients.create(body)
        assert created["name"] == "ACME ]]> SL"
        assert [c["id"] for c in client.clients.find(custom_attributes={"ID_CRM": "735"})] == [created["id"]]
        client.clients.update(created["id"], {"customAttributes": [{"label": "ID_CRM", "value": None}]})
        assert client.clients.get(created["id"])["customAttributes"] == [{"label": "ID_CRM", "value": ""}]
        with pytest.raises(ValidationError) as caught:
            client.clients.update(created["id"], {"customAttributes": [{"label": "NOPE", "value": "1"}]})
        assert "INVALID_INPUT_DATA" in caught.value.field_errors
        client.clients.delete(created["id"])
        with pytest.raises(NotFoundError):
            client.clients.get(created["id"])


def test_facturadirecta_wrong_token_is_an_authentication_error(clean_sandbox) -> None:
    with facturadirecta_for(clean_sandbox, token="wrong-token-000000") as client:
        with pytest.raises(AuthenticationError):
            client.clients.get(1)
        assert client.test_connection()[0] is False


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param("429", RateLimitedError, id="429"),
        pytest.param("500", TransientApiError, id="500"),
        pytest.param("502", TransientApiError, id="502"),
        pytest.param("503", TransientApiError, id="503"),
        pytest.param("504", TransientApiError, id="504"),
    ],
)
def test_persistent_server_errors_surface_typed_after_bounded_retries(
    clean_sandbox, status: str, error: type
) -> None:
    clean_sandbox.faults(
        "clientify", [{"path": "^/v1/products/", "rates": {status: 1.0}, "retry_after": 0.01}]
    )
    with clientify_for(clean_sandbox, max_retries=2) as client, pytest.raises(error) as caught:
        client.products.get(1)
    assert caught.value.status == int(status)
    expected_calls = 1 if status == "500" else 3  # 500 is not retried
    assert sent(clean_sandbox, "clientify", "GET") == expected_calls


def test_html_instead_of_json_is_malformed_and_not_retried(clean_sandbox) -> None:
    clean_sandbox.seed("facturama", clients=1)
    clean_sandbox.faults("facturama", [{"path": "(?i)^/clients", "rates": {"html": 1.0}}])
    with facturama_for(clean_sandbox) as client, pytest.raises(MalformedResponseError, match="HTML"):
        list(client.clients.iter_records())
    assert sent(clean_sandbox, "facturama", "GET") == 1
