"""FacturaDirecta emulator contract (facturadirecta-api.md and every example of seed 003)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from lxml import etree

from tests.fixtures.sandbox import SandboxHandle
from tests.sandbox import seed003_examples as seed003

XML_TYPE = "application/xml; charset=UTF-8"


@pytest.fixture
def api(clean_sandbox: SandboxHandle):
    with clean_sandbox.facturadirecta_client() as client:
        yield client


def xml(response: httpx.Response) -> etree._Element:
    assert response.headers["content-type"] == XML_TYPE
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return etree.fromstring(response.content)


def leaves(element: etree._Element, prefix: str = "") -> dict[str, str]:
    """Leaf path -> text, for comparing documents regardless of whitespace."""
    out: dict[str, str] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        path = f"{prefix}/{child.tag}"
        if len(child):
            out.update(leaves(child, path))
        else:
            out[path] = child.text or ""
    return out


def cdata_leaves(raw: bytes) -> set[str]:
    """Names of the leaf elements written with CDATA (``<name><![CDATA[``)."""
    element = etree.fromstring(raw, etree.XMLParser(strip_cdata=False))
    return {el.tag for el in element.iter() if len(el) == 0 and b"<![CDATA[" in etree.tostring(el)}


def post(api: httpx.Client, resource: str, body: str | bytes, **params) -> etree._Element:
    response = api.post(
        f"/api/{resource}.xml",
        content=body,
        params=params,
        headers={"Content-Type": "application/xml", "Accept": "application/xml"},
    )
    assert response.status_code == 200, response.text
    return xml(response)


def put(api: httpx.Client, path: str, body: str | bytes) -> httpx.Response:
    return api.put(path, content=body, headers={"Content-Type": "application/xml"})


def assert_invalid(response: httpx.Response, message: str | None = None) -> None:
    assert response.status_code == 400, response.text
    root = xml(response)
    assert root.tag == "xml" and root.findtext("httpStatus") == "400"
    assert root.findtext("errorCode") == "INVALID_INPUT_DATA"
    if message is not None:
        assert root.findtext("errorMessage") == message


def client_xml(name: str = "Cliente", **elements: str) -> str:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in elements.items())
    return f"<client><legalType>J</legalType><name><![CDATA[{name}]]></name>{inner}</client>"


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, 401, id="missing"),
        pytest.param({"params": {"api_token": "wrong"}}, 401, id="wrong-query-token"),
        pytest.param({"auth": ("wrong", "x")}, 401, id="wrong-basic-token"),
        pytest.param({"params": {"api_token": "fake-facturadirecta-sandbox-token"}}, 200, id="query-token"),
        pytest.param({"auth": ("fake-facturadirecta-sandbox-token", "x")}, 200, id="basic-token-x"),
        pytest.param(
            {"auth": ("fake-facturadirecta-sandbox-token", "anything")}, 200, id="basic-any-password"
        ),
    ],
)
def test_token_auth(clean_sandbox: SandboxHandle, kwargs: dict, expected: int) -> None:
    response = clean_sandbox.http.get(f"{clean_sandbox.facturadirecta_url}/api/clients.xml", **kwargs)
    assert response.status_code == expected
    if expected == 401:
        assert xml(response).findtext("httpStatus") == "401" and len(xml(response)) == 1
        assert response.headers["www-authenticate"] == 'Basic realm="FacturaDirecta"'


# -- seed 003 examples -----------------------------------------------------------------------------


def test_seed_create_example(api: httpx.Client) -> None:
    client = post(api, "clients", seed003.CREATE_BODY.encode())
    assert client.tag == "client" and int(client.findtext("id")) > 0
    sent = leaves(etree.fromstring(seed003.CREATE_BODY.encode()))
    got = leaves(client)
    for path, text in sent.items():
        if path.endswith("/rate"):
            assert Decimal(got[path]) == Decimal(text)
        else:
            assert got[path] == text, path
    assert client.findtext("billing/dueDates/dueDate/rate") == "30.00"
    assert [a.findtext("label") for a in client.iterfind("customAttributes/customAttribute")] == ["ID_CRM"]


def test_response_format_matches_the_documented_get_example(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.control(
        "facturadirecta", "DELETE", "custom-attributes", {"resource": "clients", "label": "ID_CRM"}
    )
    created = post(api, "clients", seed003.CREATE_BODY.encode())
    path = f"/api/clients/{created.findtext('id')}.xml"
    assert put(api, path, seed003.GET_RESPONSE.encode()).status_code == 200
    response = api.get(path)
    expected = etree.fromstring(seed003.GET_RESPONSE.encode())
    got_leaves, expected_leaves = leaves(xml(response)), leaves(expected)
    assert set(got_leaves) == set(expected_leaves)
    for leaf, text in expected_leaves.items():
        assert got_leaves[leaf] == (created.findtext("id") if leaf == "/id" else text), leaf
    assert cdata_leaves(response.content) == cdata_leaves(seed003.GET_RESPONSE.encode())
    assert [el.tag for el in xml(response)] == [el.tag for el in expected]


def test_seed_partial_update_example(api: httpx.Client) -> None:
    created = post(api, "clients", seed003.CREATE_BODY.encode())
    path = f"/api/clients/{created.findtext('id')}.xml"
    response = put(api, path, seed003.UPDATE_BODY.encode())
    assert response.status_code == 200
    client = xml(response)
    assert client.findtext("id") == created.findtext("id")
    assert client.findtext("legalType") == "F"
    assert (client.findtext("personName"), client.findtext("personSurname")) == (
        "Nombre Cliente",
        "Apellidos Cliente",
    )
    # Absent inside billing: tax1/tax2 and customInvoiceNotes keep their values (element-wise merge).
    assert (client.findtext("billing/tax1/name"), client.findtext("billing/tax1/rate")) == ("IVA", "18.00")
    assert (client.findtext("billing/tax2/name"), client.findtext("billing/tax2/rate")) == ("IRPF", "-15.00")
    assert client.findtext("billing/customInvoiceNotes") == "false"
    assert client.findtext("billing/bank/name") == "CatalunyaCaixa"
    assert client.findtext("billing/paymentMean") == "02"
    assert (client.findtext("billing/payableDayInMonth1"), client.findtext("billing/payableDayInMonth2")) == (
        "7",
        "27",
    )
    assert [d.findtext("rate") for d in client.iterfind("billing/dueDates/dueDate")] == ["50.00", "50.00"]
    assert leaves(xml(api.get(path))) == leaves(client)


def test_partial_update_touches_only_the_elements_sent(api: httpx.Client) -> None:
    created = post(api, "clients", seed003.CREATE_BODY.encode())
    path = f"/api/clients/{created.findtext('id')}.xml"
    client = xml(put(api, path, b"<client><address><city><![CDATA[Manlleu]]></city></address></client>"))
    assert client.findtext("address/city") == "Manlleu"
    assert client.findtext("address/line1") == "primera linea de dirección"
    assert leaves(client) == {**leaves(created), "/address/city": "Manlleu"}


@pytest.fixture
def campos(api: httpx.Client, clean_sandbox: SandboxHandle) -> str:
    """A client with Campo 1 = Valor 1 and Campo 2 = Valor 2 (the seed's starting point); its path."""
    clean_sandbox.define_custom_attribute("clients", "Campo 1")
    clean_sandbox.define_custom_attribute("clients", "Campo 2")
    body = seed003.CREATE_BODY.replace("</client>", seed003.CUSTOM_ATTRIBUTES + "</client>")
    client = post(api, "clients", body.encode())
    assert custom(client) == {"ID_CRM": "", "Campo 1": "Valor 1", "Campo 2": "Valor 2"}
    return f"/api/clients/{client.findtext('id')}.xml"


def custom(element: etree._Element) -> dict[str, str]:
    return {
        a.findtext("label"): a.findtext("value") for a in element.iterfind("customAttributes/customAttribute")
    }


def test_seed_custom_attribute_update_keeps_the_absent_one(api: httpx.Client, campos: str) -> None:
    client = xml(put(api, campos, f"<client>{seed003.UPDATE_CAMPO_1}</client>".encode()))
    assert custom(client) == {"ID_CRM": "", "Campo 1": "Valor 1b", "Campo 2": "Valor 2"}


def test_seed_custom_attribute_without_value_is_cleared(api: httpx.Client, campos: str) -> None:
    put(api, campos, f"<client>{seed003.UPDATE_CAMPO_1}</client>".encode())
    client = xml(put(api, campos, f"<client>{seed003.UPDATE_CAMPO_1_CLEAR_CAMPO_2}</client>".encode()))
    assert custom(client) == {"ID_CRM": "", "Campo 1": "Valor 1", "Campo 2": ""}
    assert custom(xml(api.get(campos))) == {"ID_CRM": "", "Campo 1": "Valor 1", "Campo 2": ""}


def test_empty_value_element_also_clears(api: httpx.Client, campos: str) -> None:
    body = (
        "<client><customAttributes><customAttribute><label>Campo 1</label><value/></customAttribute>"
        "</customAttributes></client>"
    )
    assert custom(xml(put(api, campos, body.encode())))["Campo 1"] == ""


def test_seed_unknown_custom_attribute_error(api: httpx.Client, campos: str) -> None:
    body = (
        "<client><customAttributes><customAttribute><label>Campo 3</label><value>x</value></customAttribute>"
        "</customAttributes></client>"
    )
    response = put(api, campos, body.encode())
    assert_invalid(response, "Se ha recibido un atributo personalizado que no existe en el objeto")
    assert leaves(xml(response)) == leaves(etree.fromstring(seed003.UNKNOWN_ATTRIBUTE_ERROR.encode()))
    assert custom(xml(api.get(campos)))["Campo 1"] == "Valor 1"  # nothing changed
    create = seed003.CREATE_BODY.replace("</client>", body[len("<client>") :])
    assert_invalid(api.post("/api/clients.xml", content=create.encode()))


def test_seed_paging_examples(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.seed("facturadirecta", clients=260, seed=5)
    ids = lambda root: [int(c.findtext("id")) for c in root.iterfind("client")]  # noqa: E731
    first = xml(api.get("/api/clients.xml"))
    assert first.tag == "clients" and first.get("total") == "260" and len(first) == 100
    all_ids = (
        ids(first)
        + ids(xml(api.get("/api/clients.xml?start=100")))
        + ids(xml(api.get("/api/clients.xml?start=200")))
    )
    assert all_ids == sorted(all_ids) and len(set(all_ids)) == 260
    assert ids(xml(api.get("/api/clients.xml?start=100"))) == all_ids[100:200]
    assert ids(xml(api.get("/api/clients.xml?limit=50"))) == all_ids[:50]
    assert ids(xml(api.get("/api/clients.xml?limit=50&start=50"))) == all_ids[50:100]
    assert len(xml(api.get("/api/clients.xml?limit=300"))) == 250
    empty = api.get("/api/clients.xml?start=260")
    assert (
        xml(empty).get("total") == "260"
        and len(xml(empty)) == 0
        and b'<clients total="260"/>' in empty.content
    )
    for bad in ("start=-1", "limit=abc", "start=x"):
        assert_invalid(api.get(f"/api/clients.xml?{bad}"))
    clean_sandbox.config("facturadirecta", limit_over_max="error")
    assert_invalid(api.get("/api/clients.xml?limit=251"))
    # The documented URLs for client 80, literally.
    assert xml(api.get("/api/clients/80.xml")).findtext("id") == "80"
    assert xml(api.delete("/api/clients/80.xml")).findtext("httpStatus") == "200"
    assert api.get("/api/clients/80.xml").status_code == 404


def test_seed_filter_examples(api: httpx.Client) -> None:
    wanted = post(
        api,
        "clients",
        client_xml(taxCode="B12341234", companyCode="430000021").replace(
            "</client>",
            "<customAttributes><customAttribute><label>ID_CRM</label><value>735</value>"
            "</customAttribute></customAttributes></client>",
        ),
    )
    post(api, "clients", client_xml("Otro", taxCode="B12345674", companyCode="430000022"))
    only = [wanted.findtext("id")]
    found = lambda query: [c.findtext("id") for c in xml(api.get(f"/api/clients.xml?{query}")).iter("client")]  # noqa: E731
    assert found("taxCode=B12341234") == only
    assert found("taxCode=b-1234%201234") == only  # normalised
    assert found("taxCode=ESB12341234") == only
    assert found("code=430000021") == only
    assert found("customAttributeName:ID_CRM=735") == only
    assert found("customAttributeName:ID_CRM=73") == []
    assert xml(api.get("/api/clients.xml?code=430000021")).get("total") == "1"


def test_term_email_and_owner_filters(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    acme = post(
        api,
        "clients",
        client_xml("ACME Industrial SL", tradeName="Acme", taxCode="B65410011").replace(
            "</client>", "<email>Facturas@Acme.es</email></client>"
        ),
    ).findtext("id")
    person = post(
        api,
        "clients",
        "<client><legalType>F</legalType><personName>Ana</personName>"
        "<personSurname>García López</personSurname><email>ana@correo.es</email>"
        "</client>",
    ).findtext("id")

    def found(query: str) -> list[str | None]:
        return sorted(c.findtext("id") for c in xml(api.get(f"/api/clients.xml?{query}")).iter("client"))

    assert found("term=industrial") == found("term=B6541") == found("term=acme") == [acme]
    assert found("term=garc%C3%ADa") == [person]
    assert found("email=facturas@acme.es") == [acme]
    assert found("email=acme.es") == []
    assert found("email=acme.es&emailMatch=contains") == [acme]
    assert found("email=acme.es&emailMatch=bogus") == []
    owner = clean_sandbox.config("facturadirecta")["owner_email"]
    assert found(f"ownerEmail={owner}") == sorted([acme, person])
    assert found("ownerEmail=someone@else.es") == []


def test_custom_attribute_filters_allow_three_different_fields(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    for label in ("A", "B", "C"):
        clean_sandbox.define_custom_attribute("clients", label)
    attrs = "".join(
        f"<customAttribute><label>{k}</label><value>{v}</value></customAttribute>"
        for k, v in (("ID_CRM", "1"), ("A", "2"), ("B", "3"), ("C", "4"))
    )
    client = post(
        api,
        "clients",
        client_xml().replace("</client>", f"<customAttributes>{attrs}</customAttributes></client>"),
    )
    three = "customAttributeName:ID_CRM=1&customAttributeName:A=2&customAttributeName:B=3"
    assert [c.findtext("id") for c in xml(api.get(f"/api/clients.xml?{three}")).iter("client")] == [
        client.findtext("id")
    ]
    assert_invalid(api.get(f"/api/clients.xml?{three}&customAttributeName:C=4"))
    assert_invalid(api.get("/api/clients.xml?customAttributeName:A=2&customAttributeName:A=3"))


def test_seed_get_delete_and_not_found_examples(api: httpx.Client) -> None:
    created = post(api, "clients", seed003.CREATE_BODY.encode())
    path = f"/api/clients/{created.findtext('id')}.xml"
    assert leaves(xml(api.get(path))) == leaves(created)
    response = api.delete(path)
    assert response.status_code == 200
    assert leaves(xml(response)) == leaves(etree.fromstring(seed003.DELETE_OK.encode()))
    for response in (
        api.get(path),
        api.delete(path),
        put(api, path, b"<client/>"),
        api.get("/api/clients/80.xml"),
    ):
        assert response.status_code == 404
        root = xml(response)
        assert root.tag == "xml" and [(c.tag, c.text) for c in root] == [("httpStatus", "404")]
        assert leaves(root) == leaves(etree.fromstring(seed003.NOT_FOUND.encode()))


def test_seed_template_example(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.define_custom_attribute("clients", "Campo 1")
    response = api.put("/api/clients.xml")
    template = xml(response)
    assert template.tag == "client"
    labels = [
        (a.findtext("label"), a.findtext("value"))
        for a in template.iterfind("customAttributes/customAttribute")
    ]
    assert labels == [("ID_CRM", ""), ("Campo 1", "")]
    expected = set(leaves(etree.fromstring(seed003.GET_RESPONSE.encode())))
    assert expected <= set(leaves(template))
    assert {"/personName", "/personSurname"} <= set(leaves(template))
    assert all(text == "" for path, text in leaves(template).items() if "customAttribute" not in path)


# -- request formats and hardening -----------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml", None])
def test_accepted_request_content_types(api: httpx.Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post("/api/clients.xml", content=client_xml().encode(), headers=headers)
    assert response.status_code == 200 and xml(response).findtext("name") == "Cliente"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<client><name>unclosed</client>", id="malformed"),
        pytest.param(b"", id="empty"),
        pytest.param(b"<product><name>x</name></product>", id="wrong-root"),
        pytest.param(
            b'<?xml version="1.0"?>\n<!DOCTYPE client [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            b"<client><legalType>J</legalType><name>&xxe;</name></client>",
            id="xxe",
        ),
        pytest.param(
            b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            b"<client><name>&lol2;</name></client>",
            id="entity-expansion",
        ),
    ],
)
def test_bad_xml_is_invalid_input(api: httpx.Client, body: bytes) -> None:
    response = api.post("/api/clients.xml", content=body, headers={"Content-Type": "application/xml"})
    assert_invalid(response)
    assert b"root:" not in response.content
    assert xml(api.get("/api/clients.xml")).get("total") == "0"


def test_cdata_and_plain_text_in_responses(api: httpx.Client) -> None:
    response = api.post("/api/clients.xml", content=seed003.CREATE_BODY.encode())
    text = response.text
    for plain in (
        "<website>www.facturadirecta.com</website>",
        "<language>es</language>",
        "<email>email@facturadirecta.com</email>",
        "<currency>EUR</currency>",
        "<paymentMean>01</paymentMean>",
    ):
        assert plain in text
    assert "<name><![CDATA[Nombre Cliente]]></name>" in text
    assert "<zipcode><![CDATA[08500]]></zipcode>" in text
    special = post(api, "clients", "<client><name>A &amp; B &lt;S.L.&gt; ]]&gt; end</name></client>")
    assert special.findtext("name") == "A & B <S.L.> ]]> end"
    assert (
        xml(api.get(f"/api/clients/{special.findtext('id')}.xml")).findtext("name") == "A & B <S.L.> ]]> end"
    )


# -- client rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            "<client><legalType>F</legalType><personName>Ana</personName></client>", id="F-needs-surname"
        ),
        pytest.param("<client><legalType>J</legalType><tradeName>x</tradeName></client>", id="J-needs-name"),
        pytest.param("<client><legalType>X</legalType><name>x</name></client>", id="bad-legal-type"),
        pytest.param("<client><taxCode>B12341234</taxCode></client>", id="no-name-at-all"),
        pytest.param(
            client_xml().replace(
                "</client>",
                "<billing><dueDates><dueDate><delayInDays>30</delayInDays>"
                "<rate>60</rate></dueDate></dueDates></billing></client>",
            ),
            id="due-dates-not-100",
        ),
        pytest.param(
            client_xml().replace(
                "</client>", "<billing><payableDayInMonth1>32</payableDayInMonth1></billing></client>"
            ),
            id="payable-day",
        ),
        pytest.param(client_xml().replace("</client>", "<noEInvoice>maybe</noEInvoice></client>"), id="bool"),
    ],
)
def test_client_create_rules(api: httpx.Client, body: str) -> None:
    assert_invalid(api.post("/api/clients.xml", content=body.encode()))


def test_legal_type_is_inferred_and_defaults_apply(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    company = post(api, "clients", "<client><name>Solo Nombre SL</name></client>")
    assert company.findtext("legalType") == "J"
    assert (company.findtext("billing/tax1/name"), company.findtext("billing/tax1/rate")) == ("IVA", "21.00")
    assert company.find("billing/tax2") is None
    assert company.findtext("billing/currency") == "EUR" and company.findtext("language") == "es"
    person = post(
        api, "clients", "<client><personName>Ana</personName><personSurname>Gil</personSurname></client>"
    )
    assert person.findtext("legalType") == "F" and person.find("name") is None
    only_tax2 = post(
        api,
        "clients",
        client_xml().replace(
            "</client>", "<billing><tax2><name>IRPF</name><rate>-15</rate></tax2></billing></client>"
        ),
    )
    assert only_tax2.find("billing/tax1") is None and only_tax2.findtext("billing/tax2/rate") == "-15.00"


def test_auto_create_company_code(api: httpx.Client) -> None:
    post(api, "clients", client_xml(companyCode="430000021"))
    auto = post(api, "clients", client_xml("Nuevo"), autoCreateCompanyCode="true")
    assert auto.findtext("companyCode") == "430000022"
    post(api, "clients", client_xml("Alfa", companyCode="ABC"))
    assert (
        post(api, "clients", client_xml("Otro"), autoCreateCompanyCode="true").findtext("companyCode") == ""
    )


def test_tax_code_validation_is_opt_in(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    post(api, "clients", client_xml(taxCode="B12345675"))
    clean_sandbox.config("facturadirecta", validate_tax_code=True)
    assert_invalid(api.post("/api/clients.xml", content=client_xml(taxCode="B12345675").encode()))
    post(api, "clients", client_xml(taxCode="B12345674"))


# -- products and estimates ------------------------------------------------------------------------

PRODUCT = (
    "<product><productCode><![CDATA[WEB003]]></productCode><name><![CDATA[Sitio Web CMS]]></name>"
    "<description><![CDATA[Desarrollo web]]></description><price>6500</price></product>"
)


def test_products(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    product = post(api, "products", PRODUCT)
    assert [el.tag for el in product] == [
        "id",
        "productCode",
        "name",
        "description",
        "price",
        "purchasePrice",
        "discountRate",
        "applyTax1",
        "applyTax2",
        "provider",
        "stockEnabled",
        "stock",
        "customAttributes",
    ]
    assert (product.findtext("price"), product.findtext("applyTax1"), product.findtext("applyTax2")) == (
        "6500.00",
        "true",
        "false",
    )
    assert_invalid(api.post("/api/products.xml", content=PRODUCT.encode()))  # productCode is unique
    path = f"/api/products/{product.findtext('id')}.xml"
    assert xml(put(api, path, b"<product><price>12.5</price></product>")).findtext("price") == "12.50"
    assert [p.findtext("id") for p in xml(api.get("/api/products.xml?code=WEB003")).iter("product")] == [
        product.findtext("id")
    ]
    assert xml(api.get("/api/products.xml?term=desarrollo")).get("total") == "1"
    assert xml(api.put("/api/products.xml")).findtext("productCode") == ""
    assert api.delete(path).status_code == 200


@pytest.fixture
def estimate_parties(api: httpx.Client) -> tuple[str, str]:
    client = post(api, "clients", seed003.CREATE_BODY.encode())  # billing taxes IVA 18, IRPF -15
    post(api, "products", PRODUCT)
    return client.findtext("id"), "WEB003"


def estimate_xml(client_id: str, lines: str, extra: str = "") -> str:
    return (
        f"<estimate><estimateDate>20260503</estimateDate><client><id>{client_id}</id></client>{extra}"
        f"<estimateLines>{lines}</estimateLines></estimate>"
    )


def test_estimate_totals(api: httpx.Client, estimate_parties) -> None:
    client_id, code = estimate_parties
    lines = (
        f"<estimateLine><productCode>{code}</productCode><quantity>2</quantity></estimateLine>"
        "<estimateLine><description>Hosting</description><quantity>3</quantity><unitPrice>10.05</unitPrice>"
        "<discountRate>5</discountRate><applyTax2>true</applyTax2></estimateLine>"
    )
    est = post(api, "estimates", estimate_xml(client_id, lines, "<totalAmount>1</totalAmount>"))
    line = est.find("estimateLines/estimateLine")
    assert (line.findtext("description"), line.findtext("unitPrice")) == ("Desarrollo web", "6500.00")
    # lineNet: 13000.00 and round(3 x 10.05 x 0.95, 2) = 28.64 (28.6425); IVA 18% on both, IRPF -15% on line 2.
    assert est.findtext("totalNetAmount") == "13028.64"
    assert est.findtext("totalTax1") == "2345.16"
    assert est.findtext("totalTax2") == "-4.30"
    assert est.findtext("totalAmount") == "15369.50"
    assert (est.findtext("tax1/rate"), est.findtext("tax2/rate")) == ("18.00", "-15.00")
    assert est.findtext("status") == "pending" and est.findtext("currency") == "EUR"
    assert est.findtext("estimateNumber") == "1"
    second = post(
        api,
        "estimates",
        estimate_xml(client_id, f"<estimateLine><productCode>{code}</productCode></estimateLine>"),
    )
    assert second.findtext("estimateNumber") == "2"


def test_estimate_update_replaces_lines_only_when_sent(api: httpx.Client, estimate_parties) -> None:
    client_id, code = estimate_parties
    est = post(
        api,
        "estimates",
        estimate_xml(
            client_id, f"<estimateLine><productCode>{code}</productCode><quantity>2</quantity></estimateLine>"
        ),
    )
    path = f"/api/estimates/{est.findtext('id')}.xml"
    kept = xml(put(api, path, b"<estimate><status>accepted</status></estimate>"))
    assert kept.findtext("status") == "accepted" and len(kept.find("estimateLines")) == 1
    assert kept.findtext("totalNetAmount") == "13000.00"
    replaced = xml(
        put(
            api,
            path,
            b"<estimate><estimateLines><estimateLine><description>Otro</description>"
            b"<quantity>1</quantity><unitPrice>100</unitPrice></estimateLine>"
            b"</estimateLines></estimate>",
        )
    )
    assert [el.findtext("description") for el in replaced.iter("estimateLine")] == ["Otro"]
    assert replaced.findtext("totalNetAmount") == "100.00" and replaced.findtext("totalAmount") == "118.00"
    assert xml(api.get(f"/api/estimates.xml?client={client_id}&status=accepted")).get("total") == "1"
    assert xml(api.get("/api/estimates.xml?dateFrom=20260504")).get("total") == "0"
    assert xml(api.get("/api/estimates.xml?dateFrom=20260501&dateTo=20260503")).get("total") == "1"
    assert api.get(f"/api/estimates/send/{est.findtext('id')}.xml").status_code == 200
    pdf = api.get(f"/api/estimates/{est.findtext('id')}.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert api.get("/api/estimates/999.pdf").status_code == 404


@pytest.mark.parametrize(
    ("client", "lines"),
    [
        pytest.param(
            "999",
            "<estimateLine><description>x</description><unitPrice>1</unitPrice></estimateLine>",
            id="unknown-client",
        ),
        pytest.param(
            None, "<estimateLine><productCode>NOPE</productCode></estimateLine>", id="unknown-product"
        ),
        pytest.param(None, "<estimateLine><description>x</description></estimateLine>", id="no-price"),
    ],
)
def test_estimate_references_must_exist(api: httpx.Client, estimate_parties, client, lines) -> None:
    client_id, _ = estimate_parties
    body = estimate_xml(client or client_id, lines)
    assert_invalid(api.post("/api/estimates.xml", content=body.encode()))


def test_product_delete_in_use_is_configurable(
    api: httpx.Client, clean_sandbox: SandboxHandle, estimate_parties
) -> None:
    client_id, code = estimate_parties
    post(
        api,
        "estimates",
        estimate_xml(client_id, f"<estimateLine><productCode>{code}</productCode></estimateLine>"),
    )
    product_id = xml(api.get(f"/api/products.xml?code={code}")).findtext("product/id")
    clean_sandbox.config("facturadirecta", product_delete_in_use="conflict")
    assert api.delete(f"/api/products/{product_id}.xml").status_code == 409
    clean_sandbox.config("facturadirecta", product_delete_in_use="allow")
    assert api.delete(f"/api/products/{product_id}.xml").status_code == 200
