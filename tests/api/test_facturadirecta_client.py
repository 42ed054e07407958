"""FacturaDirecta resources over a mock transport: XML bodies, paging, filters, auth styles."""

from __future__ import annotations

import base64

import httpx
import pytest

from clientify_sync.api import xmlcodec
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.errors import MalformedResponseError, NotFoundError, ValidationError

from .scripted import FD_TOKEN, Script, Sleeps, facturadirecta_settings, handler_transport, xml_response

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def xml_list(records: int, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        start = int(request.url.params.get("start", "0"))
        limit = min(int(request.url.params.get("limit", "100")), 250)
        chunk = "".join(
            f"<client><id>{i}</id><name><![CDATA[C{i}]]></name></client>"
            for i in range(start, min(start + limit, records))
        )
        return xml_response(200, f'{DECLARATION}<clients total="{records}">{chunk}</clients>')

    return handler_transport(handle)


def client_with(transport: httpx.BaseTransport, **settings: object) -> FacturaDirectaClient:
    return FacturaDirectaClient(facturadirecta_settings(**settings), transport=transport, sleep=Sleeps())


def test_listing_pages_with_start_and_limit_250() -> None:
    seen: list[httpx.Request] = []
    pages = list(client_with(xml_list(600, seen)).clients.iter_pages())
    assert {page.position: len(page.records) for page in pages} == {1: 250, 2: 250, 3: 100}
    assert pages[-1].progress() == "page 3/3, 600/600 records"
    assert dict(seen[0].url.params) == {"start": "0", "limit": "250"}  # the first page alone, then the rest
    assert sorted((dict(r.url.params) for r in seen[1:]), key=lambda params: int(params["start"])) == [
        {"start": "250", "limit": "250"},
        {"start": "500", "limit": "250"},
    ]
    assert pages[0].records[0] == {"id": "0", "name": "C0"}


def test_an_empty_list_yields_no_pages() -> None:
    script = Script([xml_response(200, f'{DECLARATION}<clients total="0"/>')])
    assert list(client_with(script.transport).clients.iter_pages()) == []


def test_find_builds_filters_and_custom_attribute_parameters() -> None:
    script = Script(
        [xml_response(200, f'{DECLARATION}<clients total="1"><client><id>7</id></client></clients>')]
    )
    found = client_with(script.transport).clients.find(
        taxCode="B12345674", custom_attributes={"ID_CRM": "735"}
    )
    assert found == [{"id": "7"}]
    params = script.requests[0].url.params
    assert (params["taxCode"], params["customAttributeName:ID_CRM"]) == ("B12345674", "735")


def test_find_needs_a_filter_and_at_most_three_custom_attributes() -> None:
    client = client_with(Script([]).transport)
    with pytest.raises(ValueError, match="at least one filter"):
        client.clients.find()
    with pytest.raises(ValueError, match="at most 3"):
        client.clients.find(custom_attributes={"a": "1", "b": "2", "c": "3", "d": "4"})


def test_basic_auth_uses_the_token_as_user() -> None:
    script = Script([xml_response(200, "<client><id>1</id></client>")])
    client_with(script.transport).clients.get(1)
    expected = base64.b64encode(f"{FD_TOKEN}:x".encode()).decode()
    assert script.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert "api_token" not in str(script.requests[0].url)


def test_query_auth_puts_the_token_in_the_query() -> None:
    script = Script([xml_response(200, "<client><id>1</id></client>")])
    client_with(script.transport, auth_style="query").clients.get(1)
    assert script.requests[0].url.params["api_token"] == FD_TOKEN
    assert "authorization" not in script.requests[0].headers


def test_create_posts_xml_with_cdata_and_returns_the_record() -> None:
    script = Script(
        [
            xml_response(
                200, f"{DECLARATION}<client><id>81</id><taxCode><![CDATA[B12345674]]></taxCode></client>"
            )
        ]
    )
    body = {
        "legalType": "J",
        "name": "ACME",
        "taxCode": "B12345674",
        "customAttributes": [{"label": "ID_CRM", "value": "735"}],
    }
    created = client_with(script.transport).clients.create(body)
    assert created == {"id": "81", "taxCode": "B12345674"}
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/api/clients.xml")
    assert request.headers["Content-Type"].startswith("application/xml")
    assert xmlcodec.to_record(xmlcodec.parse(request.content)) == body
    assert b"<name><![CDATA[ACME]]></name>" in request.content


def test_update_is_a_partial_put_and_clears_a_custom_attribute_sent_without_value() -> None:
    script = Script([xml_response(200, "<client><id>80</id></client>")])
    client = client_with(script.transport)
    assert client.clients.update(80, {"customAttributes": [{"label": "ID_CRM", "value": None}]}) == {
        "id": "80"
    }
    request = script.requests[0]
    assert (request.method, request.url.path) == ("PUT", "/api/clients/80.xml")
    assert request.content.endswith(
        b"<client><customAttributes><customAttribute><label><![CDATA[ID_CRM]]></label></customAttribute>"
        b"</customAttributes></client>"
    )


def test_delete_accepts_the_ok_envelope_and_template_is_a_put() -> None:
    template = "<client><id></id><name></name><customAttributes><customAttribute><label>ID_CRM</label><value></value></customAttribute></customAttributes></client>"
    script = Script(
        [xml_response(200, "<xml><httpStatus>200</httpStatus></xml>"), xml_response(200, template)]
    )
    client = client_with(script.transport)
    assert client.clients.delete(80) is None
    assert client.clients.template()["customAttributes"] == [{"label": "ID_CRM", "value": ""}]
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("DELETE", "/api/clients/80.xml"),
        ("PUT", "/api/clients.xml"),
    ]


def test_unknown_id_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        client_with(
            Script([xml_response(404, "<xml><httpStatus>404</httpStatus></xml>")]).transport
        ).products.get(3)


def test_an_unwritable_value_is_a_validation_error_before_sending() -> None:
    script = Script([])
    with pytest.raises(ValidationError) as caught:
        client_with(script.transport).clients.create({"name": "bell\x07"})
    assert caught.value.field_errors == {"name": ["name: contains a character XML cannot carry"]}
    assert script.requests == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            httpx.Response(
                200, content=b"<!DOCTYPE html><html>oops</html>", headers={"content-type": "text/html"}
            ),
            id="html",
        ),
        pytest.param(
            xml_response(
                200,
                '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><client><name>&x;</name></client>',
            ),
            id="xxe",
        ),
        pytest.param(httpx.Response(200, content=b'{"not": "xml"}'), id="json"),
        pytest.param(xml_response(200, "<clients total='1'><client/></clients>"), id="list-for-a-record"),
    ],
)
def test_unusable_success_bodies_are_malformed_and_not_retried(body: httpx.Response) -> None:
    script = Script([body, xml_response(200, "<client><id>1</id></client>")])
    with pytest.raises(MalformedResponseError) as caught:
        client_with(script.transport).clients.get(1)
    assert script.left == 1
    assert "root:" not in str(caught.value)  # nothing from /etc/passwd


def test_a_list_with_the_wrong_root_is_malformed() -> None:
    script = Script([xml_response(200, "<estimates total='1'><estimate/></estimates>")])
    with pytest.raises(MalformedResponseError, match="expected a <clients> list"):
        list(client_with(script.transport).clients.iter_pages())


def test_test_connection_lists_one_client() -> None:
    script = Script([
        xml_response(200, f'{DECLARATION}<clients total="42"><client><id>1</id></client></clients>'),
        xml_response(200, f'{DECLARATION}<estimates total="0"/>'),
    ])  # fmt: skip
    assert client_with(script.transport).test_connection() == (
        True,
        "Connected to FacturaDirecta at https://acme.facturadirecta.test (42 clients)",
    )
    assert dict(script.requests[0].url.params) == {"limit": "1"}
    assert script.requests[1].url.path == "/api/estimates.xml"
