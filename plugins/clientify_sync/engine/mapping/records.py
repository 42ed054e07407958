"""The raw API records the mappers read, typed at the seam where the engine reads them.

Each ``read()`` binds its raw dict once (``typing.cast``) to one of these shapes and reads its fields
through that name, so a renamed or misspelt field is a type error (mypy) instead of a ``KeyError`` or a
silently empty value at run time. Free at run time: a ``TypedDict`` is a plain ``dict``, no check runs.

Field names are the APIs' own (/work/shared/reference/*-api.md, and the golden corpus in
tests/engine/mapping/golden/), limited to what the mappers read plus a few fields that name the record;
``total=False`` because an API may omit any of them (the mappers treat absent and ``None`` alike), ids
``Required``: every record read has one. ``Number``: a JSON number or the decimal string some APIs send.
"""

from __future__ import annotations

from typing import Generic, Required, TypedDict, TypeVar

Number = int | float | str

# Facturama (PascalCase JSON; facturama-api.md).


class FacturamaAddress(TypedDict, total=False):
    Street: str | None
    ExteriorNumber: str | None
    InteriorNumber: str | None
    Neighborhood: str | None
    Municipality: str | None
    Locality: str | None
    State: str | None
    ZipCode: str | None
    Country: str | None


class FacturamaClient(TypedDict, total=False):
    Id: Required[str]
    Rfc: str | None
    Name: str | None
    Email: str | None
    TaxZipCode: str | None
    CfdiUse: str | None
    FiscalRegime: str | None
    Address: FacturamaAddress | None


class FacturamaTax(TypedDict, total=False):
    Name: str
    Rate: Number | None
    IsRetention: bool
    IsFederalTax: bool


class FacturamaProduct(TypedDict, total=False):
    Id: Required[str]
    IdentificationNumber: str | None
    Name: str | None
    Description: str | None
    Price: Number | None
    Unit: str | None
    UnitCode: str | None
    CodeProdServ: str | None
    TaxObject: str | None
    Taxes: list[FacturamaTax] | None


class FacturamaReceiver(TypedDict, total=False):
    Id: str
    Rfc: str | None
    Name: str | None


class FacturamaEstimateItem(TypedDict, total=False):
    IdentificationNumber: str | None
    Description: str | None
    Quantity: Number | None
    UnitPrice: Number | None
    Discount: Number | None
    Taxes: list[FacturamaTax] | None


class FacturamaEstimate(TypedDict, total=False):
    """The assumed ``Estimate`` resource (estimates.py)."""

    Id: Required[str]
    Folio: str | None
    Receiver: FacturamaReceiver | None
    Items: list[FacturamaEstimateItem] | None
    Date: str | None
    ExpirationDate: str | None
    Currency: str | None
    Status: str | None
    Observations: str | None
    Total: Number | None


# Clientify (snake_case DRF JSON; clientify-api.md). Custom fields are read by facts.custom_field_value.


class ClientifyCustomField(TypedDict, total=False):
    field: str
    value: str | None


class ClientifyEmail(TypedDict, total=False):
    type: int
    email: str | None


class ClientifyAddress(TypedDict, total=False):
    type: int
    street: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


class ClientifyCustomer(TypedDict, total=False):
    """A contact (a person: ``first_name``/``last_name``) or a company (``name``): one mapper reads both."""

    id: Required[int]
    first_name: str | None
    last_name: str | None
    name: str | None
    taxpayer_identification_number: str | None
    emails: list[ClientifyEmail] | None
    addresses: list[ClientifyAddress] | None
    custom_fields: list[ClientifyCustomField] | None
    modified: str | None


class ClientifyProduct(TypedDict, total=False):
    id: Required[int]
    sku: str | None
    name: str | None
    price: Number | None
    modified: str | None
    custom_fields: list[ClientifyCustomField] | None


class ClientifyBudgetItem(TypedDict, total=False):
    product: str | None  # the product's URL
    product_id: int | None
    sku: str | None
    name: str | None
    description: str | None
    quantity: Number | None
    price: Number | None
    discount: Number | None
    tax: Number | None


class ClientifyBudget(TypedDict, total=False):
    """The assumed ``budget`` (estimates.py); ``contact``/``company`` are URLs."""

    id: Required[int]
    code: str | None
    name: str | None
    contact: str | None
    company: str | None
    items: list[ClientifyBudgetItem] | None
    date: str | None
    expiration_date: str | None
    currency: str | None
    status: str | None
    comments: str | None
    total: Number | None
    modified: str | None
    custom_fields: list[ClientifyCustomField] | None


# FacturaDirecta classic API (XML read as nested dicts of strings; facturadirecta-api.md).


class FacturaDirectaCustomAttribute(TypedDict, total=False):
    label: str | None
    value: str | None


class FacturaDirectaAddress(TypedDict, total=False):
    line1: str | None
    line2: str | None
    city: str | None
    province: str | None
    zipcode: str | None
    country: str | None


class FacturaDirectaClient(TypedDict, total=False):
    id: Required[str]
    legalType: str | None  # "F" a person, "J" a company
    taxCode: str | None
    name: str | None
    personName: str | None
    personSurname: str | None
    email: str | None
    address: FacturaDirectaAddress | None
    customAttributes: list[FacturaDirectaCustomAttribute] | None


class FacturaDirectaProduct(TypedDict, total=False):
    id: Required[str]
    productCode: str | None
    name: str | None
    description: str | None
    price: str | None
    customAttributes: list[FacturaDirectaCustomAttribute] | None


class FacturaDirectaTax(TypedDict, total=False):
    name: str | None
    rate: str | None


class FacturaDirectaRef(TypedDict, total=False):
    id: str | None


class FacturaDirectaEstimateLine(TypedDict, total=False):
    productCode: str | None
    description: str | None
    quantity: str | None
    unitPrice: str | None
    discountRate: str | None
    applyTax1: str | None  # "true"/"false"


class FacturaDirectaEstimate(TypedDict, total=False):
    """The assumed ``estimate`` (estimates.py); dates are ``YYYYMMDD``."""

    id: Required[str]
    client: FacturaDirectaRef | None
    estimateDate: str | None
    expirationDate: str | None
    currency: str | None
    status: str | None
    notes: str | None
    tax1: FacturaDirectaTax | None
    estimateLines: list[FacturaDirectaEstimateLine] | None
    totalAmount: str | None
    customAttributes: list[FacturaDirectaCustomAttribute] | None


# FacturaDirecta REST API (JSON envelope ``{content: {uuid, type, main}, …}``; facturadirecta-rest-api.md
# §7-§10). Custom fields: ``main.customFields`` keyed by ``cfi_<uuid>``.

MainT = TypeVar("MainT")


class RestContent(TypedDict, Generic[MainT], total=False):
    uuid: Required[str]
    type: str
    main: MainT | None


class RestRecord(TypedDict, Generic[MainT], total=False):
    content: Required[RestContent[MainT]]
    creationDate: str | None
    modificationDate: str | None
    tags: list[str] | None
    webUrl: str | None


class RestContactMain(TypedDict, total=False):
    name: str | None
    fiscalId: str | None
    fiscalIdCountry: str | None
    email: str | None
    address: str | None
    city: str | None
    region: str | None
    zipcode: str | None
    country: str | None
    customFields: dict[str, str | None] | None


class RestSales(TypedDict, total=False):
    price: Number | None
    description: str | None
    account: str | None
    tax: list[str] | None


class RestProductMain(TypedDict, total=False):
    name: str | None
    sku: str | None
    currency: str | None
    sales: RestSales | None


class RestEstimateLine(TypedDict, total=False):
    document: str | None  # the product's id (``pro_…``)
    text: str | None
    quantity: Number | None
    unitPrice: Number | None
    discount: Number | None
    discountRate: Number | None
    tax: list[str] | None  # tax ids (``S_IVA_21``)
    account: str | None
    lineTotal: Number | None


class RestEstimateMain(TypedDict, total=False):
    contact: str | None  # the contact's id (``con_…``)
    date: str | None
    dueDate: str | None
    currency: str | None
    baseState: str | None
    notes: str | None
    lines: list[RestEstimateLine] | None
    taxIncludedPrices: bool | None
    total: Number | None
    customFields: dict[str, str | None] | None
