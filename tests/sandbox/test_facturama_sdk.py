"""Facturama's official Python SDK, unchanged, against the sandbox: clients and products CRUD and paging.

The SDK keeps its settings in module globals (``url_base``, ``_credentials``); the fixture sets them to
the sandbox and restores them. It calls ``{url_base}/api/Client``, ``/api/Clients?start&length&search``
and sends ``?type=issued`` on every GET by id.
"""

from __future__ import annotations

from collections.abc import Iterator

import facturama
import pytest

from tests.fixtures.sandbox import SandboxHandle

CLIENT = {
    "Email": "api@ejemplo.mx",
    "Rfc": "URE180429TM6",
    "Name": "UNIVERSIDAD ROBOTICA ESPAÑOLA",
    "CfdiUse": "G03",
    "FiscalRegime": "601",
    "TaxZipCode": "86991",
    "Address": {
        "Street": "Calle de Pruebas",
        "ExteriorNumber": "123",
        "ZipCode": "86991",
        "State": "SAN LUIS POTOSI",
        "Country": "MEX",
    },
}
PRODUCT = {
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
def sdk(clean_sandbox: SandboxHandle) -> Iterator[object]:
    saved = (facturama.url_base, facturama._credentials, facturama.sandbox)
    facturama.url_base = clean_sandbox.facturama_url
    facturama._credentials = (clean_sandbox.facturama_user, clean_sandbox.facturama_password)
    try:
        yield facturama
    finally:
        facturama.url_base, facturama._credentials, facturama.sandbox = saved


def test_sdk_client_crud_and_paging(sdk) -> None:
    created = facturama.Client.create(CLIENT)
    assert len(created["Id"]) == 23 and created["Rfc"] == "URE180429TM6"
    assert facturama.Client.retrieve(created["Id"]) == created
    page = facturama.Client.list(0, 10, "ROBOTICA")
    assert page["recordsTotal"] == 1 and page["data"][0]["Id"] == created["Id"]
    assert [c["Id"] for c in facturama.Client.all()] == [created["Id"]]
    assert facturama.Client.update({**created, "Name": "UNIVERSIDAD ROBOTICA"}, created["Id"]) == {
        "status": True
    }
    assert facturama.Client.retrieve(created["Id"])["Name"] == "UNIVERSIDAD ROBOTICA"
    assert facturama.Client.delete(created["Id"])["Id"] == created["Id"]
    with pytest.raises(facturama.ResourceNotFoundError) as raised:
        facturama.Client.retrieve(created["Id"])
    assert raised.value.error_json == {"Message": "No se encontró el elemento."}


def test_sdk_product_crud_and_paging(sdk) -> None:
    created = facturama.Product.create(PRODUCT)
    assert created["IdentificationNumber"] == "WEB003" and created["Price"] == 6500
    assert facturama.Product.retrieve(created["Id"])["Name"] == "Sitio Web CMS"
    facturama.Product.create({**PRODUCT, "IdentificationNumber": "WEB004", "Name": "Tienda en línea"})
    page = facturama.Product.list(0, 1, "")
    assert page["recordsTotal"] == 2 and len(page["data"]) == 1
    assert facturama.Product.list(1, 100, "WEB004")["data"] == []
    assert facturama.Product.update({**created, "Price": 7000}, created["Id"]) == {"status": True}
    assert facturama.Product.retrieve(created["Id"])["Price"] == 7000
    facturama.Product.delete(created["Id"])
    assert facturama.Product.list(0, 100, "")["recordsTotal"] == 1


def test_sdk_maps_validation_and_auth_errors(sdk, clean_sandbox: SandboxHandle) -> None:
    with pytest.raises(facturama.MalformedRequestError) as raised:
        facturama.Client.create({**CLIENT, "Rfc": "NOT-AN-RFC"})
    assert raised.value.error_json["Message"] == "La solicitud no es válida."
    assert "clientModel.Rfc" in raised.value.error_json["ModelState"]
    facturama._credentials = (clean_sandbox.facturama_user, "wrong")
    with pytest.raises(facturama.AuthenticationError):
        facturama.Client.all()
