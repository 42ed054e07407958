"""Facturama emulator contract (facturama-api.md): auth, routes, paging, fields, validation, estimates."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx
import pytest

from tests.fixtures.sandbox import SandboxHandle

ID = re.compile(r"^[A-Za-z0-9_-]{22}2$")
CLIENT_KEYS = [
    "Id",
    "Email",
    "EmailOp1",
    "EmailOp2",
    "Address",
    "Rfc",
    "Name",
    "CfdiUse",
    "FiscalRegime",
    "TaxZipCode",
    "TaxResidence",
    "NumRegIdTrib",
]
ADDRESS_KEYS = [
    "Street",
    "ExteriorNumber",
    "InteriorNumber",
    "Neighborhood",
    "ZipCode",
    "Locality",
    "Municipality",
    "State",
    "Country",
]
PRODUCT_KEYS = [
    "Id",
    "Unit",
    "UnitCode",
    "IdentificationNumber",
    "Name",
    "Description",
    "Price",
    "CodeProdServ",
    "CodeProdServName",
    "CuentaPredial",
    "CuentasPredial",
    "NumerosPedimento",
    "ObjetoImp",
    "TaxObject",
    "Category",
    "Taxes",
]
POSTMAN_CLIENT = {
    "Id": "",
    "Rfc": "URE180429TM6",
    "Name": "UNIVERSIDAD ROBOTICA ESPAÑOLA",
    "FiscalRegime": "601",
    "Email": "api@ejemplo.mx",
    "CfdiUse": "G03",
    "TaxZipCode": "86991",
    "Address": {
        "Street": "Calle de Pruebas",
        "ExteriorNumber": "123",
        "ZipCode": "86991",
        "State": "SAN LUIS POTOSI",
        "Country": "Mex",
    },
}
SDK_PRODUCT = {
    "Unit": "Servicio",
    "UnitCode": "E48",
    "IdentificationNumber": "WEB003",
    "Name": "Sitio Web CMS",
    "Description": "Desarrollo de sitio web empleando un CMS",
    "Price": 6500,
    "CodeProdServ": "43232408",
    "CuentaPredial": "123",
    "TaxObject": "02",
    "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}],
}


@pytest.fixture
def api(clean_sandbox: SandboxHandle):
    with clean_sandbox.facturama_client() as client:
        yield client


def decimals(response: httpx.Response):
    return json.loads(response.text, parse_float=Decimal)


def create_client(api: httpx.Client, **overrides) -> dict:
    response = api.post("/api/Client", json={**POSTMAN_CLIENT, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        pytest.param(None, 401, id="missing"),
        pytest.param(("sandbox-user", "wrong"), 401, id="wrong-password"),
        pytest.param(("other", "sandbox-password-fake"), 401, id="wrong-user"),
        pytest.param(("sandbox-user", "sandbox-password-fake"), 200, id="valid"),
    ],
)
def test_basic_auth(clean_sandbox: SandboxHandle, auth, expected) -> None:
    response = clean_sandbox.http.get(f"{clean_sandbox.facturama_url}/api/Client", auth=auth)
    assert response.status_code == expected
    if expected == 401:
        assert response.headers["www-authenticate"].startswith("Basic realm=")
        assert response.json() == {"Message": "Authorization has been denied for this request."}


def test_revoked_credentials_fail_mid_run(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    assert api.get("/Client").status_code == 200
    clean_sandbox.config("facturama", password="rotated")
    assert api.get("/Client").status_code == 401


# -- routes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/Client", "/Client", "/client", "/API/CLIENT", "/api/client/"])
def test_routes_answer_with_or_without_api_prefix_in_any_case(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 200


def test_ids_are_case_sensitive_even_though_routes_are_not(api: httpx.Client) -> None:
    created = create_client(api)
    assert api.get(f"/API/CLIENT/{created['Id']}").json()["Id"] == created["Id"]
    assert api.get(f"/api/Client/{created['Id'].swapcase()}").status_code == 404


def test_unknown_route_and_wrong_verb_use_aspnet_messages(api: httpx.Client) -> None:
    response = api.get("/api/Nothing/here")
    assert response.status_code == 404
    assert response.json()["Message"].startswith("No HTTP resource was found that matches the request URI '")
    assert "/api/Nothing/here" in response.json()["Message"]
    response = api.patch("/api/Client/abc", json={})
    assert response.status_code == 405
    assert response.json() == {"Message": "The requested resource does not support http method 'PATCH'."}


# -- clients ---------------------------------------------------------------------------------------


def test_create_returns_201_with_every_key_in_model_order_and_a_new_23_char_id(api: httpx.Client) -> None:
    created = create_client(api)
    assert list(created) == CLIENT_KEYS
    assert list(created["Address"]) == ADDRESS_KEYS
    assert ID.match(created["Id"]) and len(created["Id"]) == 23
    assert created["Address"]["Neighborhood"] is None and created["TaxResidence"] is None
    assert created["Name"] == "UNIVERSIDAD ROBOTICA ESPAÑOLA"
    assert "Created" not in created and "Modified" not in created  # no timestamps on Facturama records


def test_server_assigns_the_id_and_ignores_one_in_the_body(api: httpx.Client) -> None:
    created = create_client(api, Id="3PzybenYOxj9bpbpBakv0w2")
    assert created["Id"] != "3PzybenYOxj9bpbpBakv0w2"


def test_binding_is_case_insensitive_and_rfc_is_normalised(api: httpx.Client) -> None:
    created = create_client(api, Rfc=" ure180429tm6 ")
    assert created["Rfc"] == "URE180429TM6"
    response = api.post(
        "/Client", json={"rfc": "EKU9003173C9", "name": "ESCUELA KEMPER URGATE", "email": "a@b.mx"}
    )
    assert response.status_code == 201
    assert response.json()["Rfc"] == "EKU9003173C9" and response.json()["Email"] == "a@b.mx"


def test_get_put_delete_by_id(api: httpx.Client) -> None:
    created = create_client(api)
    assert api.get(f"/Client/{created['Id']}", params={"type": "issued"}).json() == created
    updated = {**created, "Name": "UNIVERSIDAD ROBOTICA", "Email": "otro@ejemplo.mx"}
    response = api.put(f"/api/Client/{created['Id']}", json=updated)
    assert response.status_code == 204 and response.content == b""
    assert api.get(f"/Client/{created['Id']}").json() == updated
    response = api.delete(f"/api/Client/{created['Id']}")
    assert response.status_code == 200 and response.json() == updated
    response = api.get(f"/Client/{created['Id']}")
    assert response.status_code == 404
    assert response.json() == {"Message": "No se encontró el elemento."}
    assert api.delete(f"/Client/{created['Id']}").status_code == 404


def test_put_replaces_the_whole_object(api: httpx.Client) -> None:
    created = create_client(api)
    body = {"Rfc": created["Rfc"], "Name": "SOLO NOMBRE", "Email": "solo@ejemplo.mx"}
    assert api.put(f"/Client/{created['Id']}", json=body).status_code == 204
    stored = api.get(f"/Client/{created['Id']}").json()
    assert stored["FiscalRegime"] is None and stored["Address"]["Street"] is None


def test_legacy_dotnet_delete_by_query_parameter(api: httpx.Client) -> None:
    created = create_client(api)
    assert api.delete("/client/", params={"id": created["Id"]}).status_code == 200
    assert api.get(f"/client/{created['Id']}").status_code == 404


def test_status_codes_are_configurable(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.config("facturama", post_status=200, put_status=200, delete_status=204)
    response = api.post("/Client", json=POSTMAN_CLIENT)
    assert response.status_code == 200
    created = response.json()
    response = api.put(f"/Client/{created['Id']}", json={**created, "Name": "OTRO"})
    assert response.status_code == 200 and response.json()["Name"] == "OTRO"
    response = api.delete(f"/Client/{created['Id']}")
    assert response.status_code == 204 and response.content == b""


# -- listing ---------------------------------------------------------------------------------------


def test_get_client_is_silently_truncated_at_100_and_filters_by_keyword(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.seed("facturama", clients=150, seed=1)
    rows = api.get("/Client").json()
    assert isinstance(rows, list) and len(rows) == 100
    target = rows[42]
    found = api.get("/Client", params={"keyword": target["Rfc"].lower()}).json()
    assert [r["Id"] for r in found] == [target["Id"]]


def test_paged_list_envelope_counts_and_insertion_order(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    ids = clean_sandbox.seed("facturama", clients=250, seed=2)["ids"]["clients"]
    page = api.get("/api/Clients", params={"start": 0, "length": 100, "search": ""}).json()
    assert list(page) == ["recordsTotal", "recordsFiltered", "data"]
    assert page["recordsTotal"] == 250 and page["recordsFiltered"] == 250
    assert [r["Id"] for r in page["data"]] == ids[:100]
    assert list(page["data"][0]) == CLIENT_KEYS
    last = api.get("/Clients", params={"start": 200, "length": 100}).json()
    assert [r["Id"] for r in last["data"]] == ids[200:]
    assert api.get("/Clients", params={"start": 250, "length": 100}).json()["data"] == []


def test_paged_list_clamps_length_and_defaults_to_100(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.seed("facturama", clients=120, seed=3)
    assert len(api.get("/Clients", params={"start": 0, "length": 500}).json()["data"]) == 100
    assert len(api.get("/Clients").json()["data"]) == 100
    assert len(api.get("/Clients", params={"start": 0, "lenght": 7}).json()["data"]) == 7
    clean_sandbox.config("facturama", page_length_over_max="error")
    response = api.get("/Clients", params={"length": 101})
    assert response.status_code == 400 and "length" in response.json()["ModelState"]
    response = api.get("/Clients", params={"start": "abc"})
    assert response.status_code == 400 and response.json()["Message"] == "La solicitud no es válida."


def test_search_counts_filtered_before_slicing(api: httpx.Client) -> None:
    for i, rfc in enumerate(["URE180429TM6", "EKU9003173C9", "CACX7605101P8"]):
        create_client(api, Rfc=rfc, Name=f"CLIENTE {i}", Email=f"c{i}@robotica.mx" if i < 2 else "x@y.mx")
    page = api.get("/Clients", params={"start": 1, "length": 100, "search": "ROBOTICA"}).json()
    assert page["recordsTotal"] == 3 and page["recordsFiltered"] == 2 and len(page["data"]) == 1


# -- client validation -----------------------------------------------------------------------------


def model_state(response: httpx.Response, prefix: str | None = None) -> dict:
    """The ModelState with its keys' model prefix removed, after checking every key carries it (§4.5).

    The prefix defaults to the one the request's resource gets (``clientModel.``, ``productModel.``...).
    """
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["Message"] == "La solicitud no es válida."
    if prefix is None:
        resource = response.request.url.path.rstrip("/").split("/")[
            -1 if response.request.method == "POST" else -2
        ]
        prefix = f"{resource.lower()}Model."
    assert all(key.startswith(prefix) for key in body["ModelState"]), body["ModelState"]
    return {key[len(prefix) :]: messages for key, messages in body["ModelState"].items()}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        pytest.param({"Rfc": None}, "Rfc", id="rfc-required"),
        pytest.param({"Rfc": "RODJ899315654"}, "Rfc", id="rfc-pattern"),
        pytest.param({"Rfc": "ABC"}, "Rfc", id="rfc-length"),
        pytest.param({"Name": ""}, "Name", id="name-required"),
        pytest.param({"Email": "not-an-email"}, "Email", id="email"),
        pytest.param({"TaxZipCode": "8699"}, "TaxZipCode", id="zip"),
        pytest.param({"FiscalRegime": "999"}, "FiscalRegime", id="regime"),
        pytest.param({"CfdiUse": "X01"}, "CfdiUse", id="cfdi-use"),
    ],
)
def test_client_validation_errors(api: httpx.Client, changes: dict, key: str) -> None:
    state = model_state(api.post("/Client", json={**POSTMAN_CLIENT, **changes}))
    assert list(state) == [key] and all(isinstance(m, str) for m in state[key])


def test_legacy_cfdi_use_and_generic_rfcs_are_accepted(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.config("facturama", rfc_check_digit=True)
    create_client(api, CfdiUse="P01")
    create_client(api, Rfc="XAXX010101000")
    create_client(api, Rfc="XEXX010101000")


def test_rfc_check_digit_is_opt_in(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    wrong_digit = "URE180429TM5"
    create_client(api, Rfc=wrong_digit)
    clean_sandbox.config("facturama", rfc_check_digit=True)
    assert "Rfc" in model_state(api.post("/Client", json={**POSTMAN_CLIENT, "Rfc": wrong_digit}))
    for valid in ("EKU9003173C9", "IAÑL750210963", "ZUÑ920208KL4", "GARR900630G98"):
        create_client(api, Rfc=valid)


def test_strict_cfdi40_requires_the_receiver_fields(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    minimal = {"Rfc": "URE180429TM6", "Name": "UNIVERSIDAD ROBOTICA ESPAÑOLA", "Email": "a@b.mx"}
    assert api.post("/Client", json=minimal).status_code == 201
    clean_sandbox.config("facturama", strict_cfdi40=True)
    state = model_state(api.post("/Client", json=minimal))
    assert set(state) == {"FiscalRegime", "TaxZipCode", "CfdiUse"}
    clean_sandbox.config("facturama", client_email_required=False)
    state = model_state(api.post("/Client", json={**minimal, "Email": None}))
    assert set(state) == {"Email", "FiscalRegime", "TaxZipCode", "CfdiUse"}


def test_model_state_prefix_and_duplicate_rfc_switches(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    create_client(api)
    create_client(api)  # duplicates allowed by default
    clean_sandbox.config("facturama", modelstate_prefix="client.", reject_duplicate_rfc=True)
    assert "Name" in model_state(api.post("/Client", json={**POSTMAN_CLIENT, "Name": None}), prefix="client.")
    response = api.post("/Client", json=POSTMAN_CLIENT)
    assert response.status_code == 400 and set(response.json()) == {"Message"}
    create_client(api, Rfc="XAXX010101000")
    create_client(api, Rfc="XAXX010101000")  # generic RFCs identify no one


def test_malformed_json_is_a_400(api: httpx.Client) -> None:
    response = api.post("/Client", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["Message"] == "La solicitud no es válida."


# -- products --------------------------------------------------------------------------------------


def test_product_create_keeps_price_scale_default_category_and_key_order(api: httpx.Client) -> None:
    response = api.post("/api/Product", json=SDK_PRODUCT)
    assert response.status_code == 201
    product = response.json()
    assert list(product) == PRODUCT_KEYS
    assert '"Price":6500.0000' in response.text
    assert product["Category"] == "GENERAL"
    assert list(product["Taxes"][0]) == [
        "Name",
        "Rate",
        "IsRetention",
        "IsFederalTax",
        "IsQuota",
        "Total",
        "Base",
    ]
    assert product["Taxes"][0]["IsQuota"] is False


def test_product_accepts_numbers_and_booleans_as_strings(api: httpx.Client) -> None:
    body = {**SDK_PRODUCT, "Price": "200", "Taxes": [{"Name": "IVA", "Rate": "0.16", "IsRetention": "false"}]}
    response = api.post("/Product", json=body)
    assert response.status_code == 201
    assert '"Price":200.0000' in response.text
    assert response.json()["Taxes"][0]["IsRetention"] is False


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        pytest.param({"Unit": None}, "Unit", id="unit-required"),
        pytest.param({"Unit": "x" * 21}, "Unit", id="unit-length"),
        pytest.param({"UnitCode": ""}, "UnitCode", id="unit-code"),
        pytest.param({"Name": "X"}, "Name", id="name-length"),
        pytest.param({"Description": None}, "Description", id="description"),
        pytest.param({"Price": None}, "Price", id="price-required"),
        pytest.param({"Price": -1}, "Price", id="price-negative"),
        pytest.param({"Price": "abc"}, "Price", id="price-not-a-number"),
        pytest.param({"CodeProdServ": None}, "CodeProdServ", id="code-prod-serv"),
        pytest.param({"CuentaPredial": "12A"}, "CuentaPredial", id="cuenta-predial"),
        pytest.param({"IdentificationNumber": "S" * 51}, "IdentificationNumber", id="sku-length"),
    ],
)
def test_product_validation(api: httpx.Client, changes: dict, key: str) -> None:
    assert key in model_state(api.post("/Product", json={**SDK_PRODUCT, **changes}))


def test_products_page_and_search(api: httpx.Client) -> None:
    for sku in ("WEB003", "WEB004", "APP001"):
        assert api.post("/Product", json={**SDK_PRODUCT, "IdentificationNumber": sku}).status_code == 201
    page = api.get("/api/Products", params={"start": 0, "length": 10, "search": "web00"}).json()
    assert page["recordsTotal"] == 3 and page["recordsFiltered"] == 2
    assert [p["IdentificationNumber"] for p in api.get("/Product", params={"keyword": "APP"}).json()] == [
        "APP001"
    ]


# -- estimates -------------------------------------------------------------------------------------


def estimate_body(client: dict, **item_overrides) -> dict:
    item = {
        "ProductCode": "43232408",
        "IdentificationNumber": "WEB003",
        "Description": "Sitio Web CMS",
        "Unit": "Servicio",
        "UnitCode": "E48",
        "Quantity": 2,
        "UnitPrice": 6500,
        "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False}],
        **item_overrides,
    }
    return {
        "Folio": "COT-0041",
        "Date": "2026-05-03T10:00:00",
        "ExpirationDate": "2026-06-02T00:00:00",
        "Receiver": {"Id": client["Id"], "Rfc": client["Rfc"], "Name": client["Name"]},
        "Items": [item],
        "Subtotal": 1,
        "Total": 1,
    }


@pytest.fixture
def customer(api: httpx.Client) -> dict:
    assert api.post("/Product", json=SDK_PRODUCT).status_code == 201
    return create_client(api)


def test_estimate_amounts_are_computed_by_the_server(api: httpx.Client, customer: dict) -> None:
    response = api.post("/api/Estimate", json=estimate_body(customer))
    assert response.status_code == 201, response.text
    est = decimals(response)
    assert list(est) == [
        "Id",
        "Folio",
        "Date",
        "ExpirationDate",
        "Currency",
        "Status",
        "Observations",
        "Receiver",
        "Items",
        "Subtotal",
        "Discount",
        "Total",
    ]
    assert ID.match(est["Id"]) and est["Currency"] == "MXN" and est["Status"] == "Pending"
    item = est["Items"][0]
    assert item["Subtotal"] == Decimal("13000.00")
    assert item["Taxes"] == [
        {
            "Name": "IVA",
            "Rate": Decimal("0.16"),
            "IsRetention": False,
            "Base": Decimal("13000.00"),
            "Total": Decimal("2080.00"),
        }
    ]
    assert item["Total"] == Decimal("15080.00")
    assert (est["Subtotal"], est["Discount"], est["Total"]) == (
        Decimal("13000.00"),
        Decimal("0.00"),
        Decimal("15080.00"),
    )
    assert '"Subtotal":13000.00' in response.text and '"UnitPrice":6500.00' in response.text


def test_estimate_discount_retention_and_half_up_rounding(api: httpx.Client, customer: dict) -> None:
    body = estimate_body(
        customer,
        Quantity=1,
        UnitPrice="1.35",
        Discount="0.10",
        Taxes=[
            {"Name": "IVA", "Rate": "0.16", "IsRetention": False},
            {"Name": "ISR", "Rate": "0.10", "IsRetention": True},
        ],
    )
    item = decimals(api.post("/Estimate", json=body))["Items"][0]
    # Base 1.25: IVA 0.2 -> 0.20; ISR 0.125 -> 0.13 half-up (half-even would give 0.12).
    assert item["Subtotal"] == Decimal("1.35")
    assert [t["Base"] for t in item["Taxes"]] == [Decimal("1.25"), Decimal("1.25")]
    assert [t["Total"] for t in item["Taxes"]] == [Decimal("0.20"), Decimal("0.13")]
    assert item["Total"] == Decimal("1.32")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        pytest.param(lambda b: b["Receiver"].update(Id="nope"), "Receiver.Id", id="unknown-receiver"),
        pytest.param(lambda b: b["Receiver"].update(Rfc="EKU9003173C9"), "Receiver.Rfc", id="rfc-mismatch"),
        pytest.param(
            lambda b: b["Items"][0].update(IdentificationNumber="NOPE"),
            "Items[0].IdentificationNumber",
            id="unknown-sku",
        ),
        pytest.param(lambda b: b["Items"][0].update(Quantity=0), "Items[0].Quantity", id="quantity"),
        pytest.param(lambda b: b["Items"][0].update(UnitPrice=-1), "Items[0].UnitPrice", id="price"),
        pytest.param(
            lambda b: b["Items"][0].update(Description=""), "Items[0].Description", id="description"
        ),
        pytest.param(lambda b: b.update(Items=[]), "Items", id="no-items"),
        pytest.param(lambda b: b.update(Date=None), "Date", id="date"),
        pytest.param(lambda b: b.update(Status="Draft"), "Status", id="status"),
    ],
)
def test_estimate_validation(api: httpx.Client, customer: dict, mutate, key: str) -> None:
    body = estimate_body(customer)
    mutate(body)
    assert key in model_state(api.post("/Estimate", json=body))


def test_estimate_item_without_sku_needs_no_product(api: httpx.Client, customer: dict) -> None:
    body = estimate_body(customer, IdentificationNumber=None, Taxes=[])
    assert decimals(api.post("/Estimate", json=body))["Total"] == Decimal("13000.00")


def test_estimate_crud_and_paging(api: httpx.Client, customer: dict) -> None:
    created = api.post("/Estimate", json=estimate_body(customer)).json()
    changed = {**estimate_body(customer, Quantity=1), "Status": "accepted"}
    assert api.put(f"/Estimate/{created['Id']}", json=changed).status_code == 204
    stored = decimals(api.get(f"/api/Estimate/{created['Id']}"))
    assert stored["Status"] == "Accepted" and stored["Total"] == Decimal("7540.00")
    page = api.get("/Estimates", params={"start": 0, "length": 10, "search": "COT-0041"}).json()
    assert page["recordsFiltered"] == 1 and page["data"][0]["Id"] == created["Id"]
    assert api.delete(f"/Estimate/{created['Id']}").status_code == 200
    assert api.get(f"/Estimate/{created['Id']}").status_code == 404


def test_estimate_base_name_is_configurable(
    api: httpx.Client, clean_sandbox: SandboxHandle, customer: dict
) -> None:
    clean_sandbox.config("facturama", estimate_singular="Quote", estimate_plural="Quotes")
    assert api.post("/api/Quote", json=estimate_body(customer)).status_code == 201
    assert api.get("/quotes").json()["recordsTotal"] == 1
    assert api.get("/Estimates").status_code == 404
    assert api.post("/Estimate", json=estimate_body(customer)).status_code == 404


def test_estimate_can_inherit_catalogue_taxes(
    api: httpx.Client, clean_sandbox: SandboxHandle, customer: dict
) -> None:
    body = estimate_body(customer)
    del body["Items"][0]["Taxes"]
    assert decimals(api.post("/Estimate", json=body))["Total"] == Decimal("13000.00")
    clean_sandbox.config("facturama", estimate_inherit_product_taxes=True)
    assert decimals(api.post("/Estimate", json=body))["Total"] == Decimal("15080.00")
