"""Strict defaults that follow the real APIs (docs/sandbox.md, "Strict defaults"), and their lenient switches.

Each test first shows what the real API does (the default), then flips the switch a test would use for
the lenient alternative, so a switch that stopped working fails here.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.sandbox import SandboxHandle

CLIENT = {
    "Rfc": "URE180429TM6",
    "Name": "UNIVERSIDAD ROBOTICA ESPAÑOLA",
    "FiscalRegime": "601",
    "Email": "api@ejemplo.mx",
    "CfdiUse": "G03",
    "TaxZipCode": "86991",
    "Address": {"Street": "Calle de Pruebas", "ExteriorNumber": "123", "ZipCode": "86991", "Country": "MEX"},
}
# facturama-mcp 1.0.0rc2's product create body: CodeProdServ, free-text Unit, TaxObject "02" when taxed.
PRODUCT = {
    "Name": "Sitio Web CMS",
    "Description": "Desarrollo de sitio web",
    "Price": 6500,
    "CodeProdServ": "43232408",
    "UnitCode": "E48",
    "Unit": "Servicio",
    "TaxObject": "02",
    "IdentificationNumber": "WEB003",
    "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False}],
}
EMAIL_REQUIRED = {"clientModel.Email": ["The Email field is required."]}


@pytest.fixture
def fm(clean_sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with clean_sandbox.facturama_client() as client:
        yield client


@pytest.fixture
def crm(clean_sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with clean_sandbox.clientify_client() as client:
        yield client


def invalid(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Message"] == "La solicitud no es válida."
    return body["ModelState"]


def created(response: httpx.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


# -- Facturama: Email on every client write --------------------------------------------------------


@pytest.mark.parametrize("email", [None, "", "   ", "missing"])
def test_facturama_client_create_requires_email(fm: httpx.Client, email: str | None) -> None:
    body = (
        {k: v for k, v in CLIENT.items() if k != "Email"}
        if email == "missing"
        else {**CLIENT, "Email": email}
    )
    assert invalid(fm.post("/api/Client", json=body)) == EMAIL_REQUIRED


def test_facturama_client_update_requires_email_too(fm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    client = created(fm.post("/api/Client", json=CLIENT))
    assert invalid(fm.put(f"/api/Client/{client['Id']}", json={**client, "Email": None})) == EMAIL_REQUIRED
    assert fm.get(f"/api/Client/{client['Id']}").json()["Email"] == "api@ejemplo.mx"  # nothing changed
    clean_sandbox.config("facturama", client_email_required=False)
    assert fm.put(f"/api/Client/{client['Id']}", json={**client, "Email": None}).status_code == 204
    assert fm.get(f"/api/Client/{client['Id']}").json()["Email"] is None


def test_facturama_old_client_without_email_cannot_be_updated_until_one_is_sent(
    fm: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.config("facturama", client_email_required=False)
    old = created(fm.post("/api/Client", json={**CLIENT, "Email": None}))  # made before the rule
    clean_sandbox.config("facturama", client_email_required=True)
    assert invalid(fm.put(f"/api/Client/{old['Id']}", json={**old, "Name": "NUEVO NOMBRE"})) == EMAIL_REQUIRED
    assert fm.put(f"/api/Client/{old['Id']}", json={**old, "Email": "nuevo@ejemplo.mx"}).status_code == 204


# -- Facturama: "" in optional strings on a PUT -----------------------------------------------------


def test_facturama_put_rejects_empty_optional_strings(fm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    product = created(fm.post("/api/Product", json={**PRODUCT, "CuentaPredial": "123"}))
    state = invalid(fm.put(f"/api/Product/{product['Id']}", json={**product, "CuentaPredial": ""}))
    assert state == {
        "productModel.CuentaPredial": [
            "The field CuentaPredial must be a string with a minimum length of 1 and a maximum length of 150."
        ]
    }
    client = created(fm.post("/api/Client", json=CLIENT))
    state = invalid(
        fm.put(
            f"/api/Client/{client['Id']}",
            json={**client, "TaxResidence": "", "Address": {**client["Address"], "Locality": ""}},
        )
    )
    assert set(state) == {"clientModel.TaxResidence", "clientModel.Address.Locality"}
    # The same values are fine without "" (None), and on a POST (the Postman samples send "Id": "").
    assert fm.put(f"/api/Product/{product['Id']}", json={**product, "CuentaPredial": None}).status_code == 204
    created(fm.post("/api/Client", json={**CLIENT, "Id": "", "TaxResidence": ""}))
    clean_sandbox.config("facturama", put_empty_strings="accept")
    assert fm.put(f"/api/Product/{product['Id']}", json={**product, "CuentaPredial": ""}).status_code == 204


# -- Facturama: ModelState keys carry the model name ------------------------------------------------


def test_facturama_model_state_keys_are_prefixed_with_the_model(
    fm: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    assert set(invalid(fm.post("/api/Client", json={**CLIENT, "Rfc": None}))) == {"clientModel.Rfc"}
    assert set(invalid(fm.post("/api/Product", json={**PRODUCT, "Unit": None}))) == {"productModel.Unit"}
    clean_sandbox.config("facturama", modelstate_prefix="")
    assert set(invalid(fm.post("/api/Client", json={**CLIENT, "Rfc": None}))) == {"Rfc"}
    assert set(invalid(fm.post("/api/Product", json={**PRODUCT, "Unit": None}))) == {"Unit"}


# -- Facturama: the zip code travels in Address.ZipCode and TaxZipCode -----------------------------


def test_facturama_tax_zip_code_alone_is_dropped_silently(
    fm: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    alone = created(fm.post("/api/Client", json={**CLIENT, "Address": {"Street": "Sin CP"}}))
    assert alone["TaxZipCode"] is None and alone["Address"]["ZipCode"] is None
    assert fm.get(f"/api/Client/{alone['Id']}").json()["TaxZipCode"] is None
    both = created(fm.post("/api/Client", json=CLIENT))
    assert both["TaxZipCode"] == "86991" and both["Address"]["ZipCode"] == "86991"
    # A PUT that sends only TaxZipCode loses the stored zip the same way.
    assert fm.put(f"/api/Client/{both['Id']}", json={**both, "Address": None}).status_code == 204
    assert fm.get(f"/api/Client/{both['Id']}").json()["TaxZipCode"] is None
    clean_sandbox.config("facturama", zip_code_needs_address=False)
    kept = created(fm.post("/api/Client", json={**CLIENT, "Address": None}))
    assert kept["TaxZipCode"] == "86991"


# -- Facturama: products: Unit free text and required, TaxObject -----------------------------------


def test_facturama_product_needs_unit_and_tax_object(fm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    product = created(fm.post("/api/Product", json=PRODUCT))
    assert product["TaxObject"] == "02" and product["Unit"] == "Servicio"
    assert created(fm.post("/api/Product", json={**PRODUCT, "Unit": "Hora de consultoría"}))["Unit"] == (
        "Hora de consultoría"
    )  # free text, not a SAT code
    assert invalid(fm.post("/api/Product", json={**PRODUCT, "TaxObject": None})) == {
        "productModel.TaxObject": ["The TaxObject field is required."]
    }
    assert set(invalid(fm.post("/api/Product", json={**PRODUCT, "TaxObject": "99"}))) == {
        "productModel.TaxObject"
    }
    assert invalid(fm.post("/api/Product", json={**PRODUCT, "Unit": ""})) == {
        "productModel.Unit": ["The Unit field is required."]
    }
    clean_sandbox.config("facturama", product_tax_object_required=False)
    assert created(fm.post("/api/Product", json={**PRODUCT, "TaxObject": None}))["TaxObject"] is None


# -- estimates resources as unknowns ---------------------------------------------------------------


def test_facturama_estimates_can_be_absent(fm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    assert fm.get("/api/Estimates").status_code == 200
    clean_sandbox.config("facturama", estimates_available=False)
    for method, path in (
        ("GET", "/api/Estimates"),
        ("GET", "/Estimate"),
        ("POST", "/api/Estimate"),
        ("GET", "/api/Estimate/abc"),
    ):
        response = fm.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 404, (method, path)
        assert response.json()["Message"].startswith(
            "No HTTP resource was found that matches the request URI"
        )
    assert fm.get("/api/Clients").status_code == 200


def test_clientify_budgets_can_be_absent(crm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    assert crm.get("/v1/budgets/").status_code == 200
    clean_sandbox.config("clientify", budgets_available=False)
    for method, path in (("GET", "/v1/budgets/"), ("POST", "/v1/budgets/"), ("GET", "/v1/budgets/4000001/")):
        response = crm.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), path
    assert crm.get("/v1/contacts/").status_code == 200
    clean_sandbox.config("clientify", budgets_path="/v1/quotes/")
    assert crm.get("/v1/quotes/").status_code == 404  # absent under any configured path


def test_facturadirecta_estimates_can_be_absent(clean_sandbox: SandboxHandle) -> None:
    with clean_sandbox.facturadirecta_client() as fd:
        assert fd.get("/api/estimates.xml").status_code == 200
        clean_sandbox.config("facturadirecta", estimates_available=False)
        for method, path in (
            ("GET", "/api/estimates.xml"),
            ("POST", "/api/estimates.xml"),
            ("GET", "/api/estimates/1.xml"),
            ("GET", "/api/estimates/send/1.xml"),
        ):
            response = fd.request(method, path)
            assert response.status_code == 404, path
            assert b"<httpStatus>404</httpStatus>" in response.content
        assert fd.get("/api/clients.xml").status_code == 200


# -- Clientify: paging past the end ----------------------------------------------------------------


def test_clientify_page_past_the_end_is_invalid_page(crm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.seed("clientify", contacts=5, seed=1)
    assert len(crm.get("/v1/contacts/", params={"page_size": 5}).json()["results"]) == 5
    response = crm.get("/v1/contacts/", params={"page_size": 5, "page": 2})
    assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}
    clean_sandbox.config("clientify", invalid_page="empty")
    page = crm.get("/v1/contacts/", params={"page_size": 5, "page": 2}).json()
    assert page["count"] == 5 and page["results"] == [] and page["next"] is None


# -- Clientify: modified[...] formats and an ignored filter ----------------------------------------


def _contacts(crm: httpx.Client, **params: str) -> httpx.Response:
    return crm.get("/v1/contacts/", params={"page_size": 100, **params})


FORMATS = {
    "iso": [
        "2020-01-01T00:00:00",
        "2020-01-01T00:00:00.123456",
        "2020-01-01T00:00:00Z",
        "2020-01-01T00:00:00.5+01:00",
    ],
    "minute": ["2020-01-01T00:00"],
    "date": ["2020-01-01", "2020/01/01"],
}


@pytest.mark.parametrize("accepted", ["iso", "minute", "date"])
def test_clientify_date_filter_formats_are_a_switch(
    crm: httpx.Client, clean_sandbox: SandboxHandle, accepted: str
) -> None:
    clean_sandbox.seed("clientify", contacts=3, seed=2)
    for values in FORMATS.values():
        for value in values:
            assert _contacts(crm, **{"modified[gte]": value}).json()["count"] == 3, value
    clean_sandbox.config("clientify", date_filter_formats=accepted)
    for shape, values in FORMATS.items():
        for value in values:
            response = _contacts(crm, **{"modified[gte]": value})
            if shape == accepted:
                assert response.json()["count"] == 3, value
            else:
                assert response.status_code == 400, value
                assert response.json() == {"modified[gte]": ["Enter a valid date/time."]}
    clean_sandbox.config("clientify", date_filter_invalid="ignore")
    other = next(v for shape, vs in FORMATS.items() if shape != accepted for v in vs)
    assert _contacts(crm, **{"modified[gte]": other}).json()["count"] == 3  # dropped, not honoured


def test_clientify_bad_date_filter_formats_config_is_rejected(clean_sandbox: SandboxHandle) -> None:
    response = clean_sandbox.http.put(
        f"{clean_sandbox.clientify_url}/_sandbox/config", json={"date_filter_formats": "iso,epoch"}
    )
    assert response.status_code == 400
    assert (
        clean_sandbox.config("clientify", date_filter_formats=" date , iso")["date_filter_formats"]
        == "date,iso"
    )


def test_clientify_modified_filter_can_be_ignored(crm: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    first = crm.post("/v1/contacts/", json={"first_name": "Antes"}).json()
    second = crm.post("/v1/contacts/", json={"first_name": "Después"}).json()
    watermark = {"modified[gte]": second["modified"]}
    assert [c["id"] for c in _contacts(crm, **watermark).json()["results"]] == [second["id"]]
    clean_sandbox.config("clientify", modified_filter="ignored")
    ids = {c["id"] for c in _contacts(crm, **watermark).json()["results"]}
    assert ids == {first["id"], second["id"]}  # a record older than the watermark comes back: detectable
    # created[...] still filters: only modified[...] is ignored.
    assert _contacts(crm, **{"created[gte]": second["created"]}).json()["count"] == 1
