"""XML <-> dict conversion and the hardened parser."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from clientify_sync.api import xmlcodec

SEED_CLIENT = """<?xml version="1.0" encoding="UTF-8"?>
<client>
  <id>80</id>
  <legalType><![CDATA[J]]></legalType>
  <name><![CDATA[Nombre Cliente]]></name>
  <address><line1><![CDATA[primera linea]]></line1><line2><![CDATA[]]></line2><country><![CDATA[ES]]></country></address>
  <website>www.facturadirecta.com</website>
  <mobilePhone></mobilePhone>
  <billing>
    <currency>EUR</currency>
    <tax1><name>IVA</name><rate>18.00</rate></tax1>
    <dueDates><dueDate><delayInDays>30</delayInDays><rate>50.00</rate></dueDate></dueDates>
  </billing>
  <customAttributes>
    <customAttribute><label><![CDATA[ID_CRM]]></label><value><![CDATA[735]]></value></customAttribute>
    <customAttribute><label><![CDATA[Campo 2]]></label><value></value></customAttribute>
  </customAttributes>
</client>"""


def test_a_record_becomes_nested_dicts_with_list_containers() -> None:
    record = xmlcodec.to_record(xmlcodec.parse(SEED_CLIENT.encode()))
    assert record["id"] == "80"
    assert record["name"] == "Nombre Cliente"
    assert record["address"] == {"line1": "primera linea", "line2": "", "country": "ES"}
    assert record["mobilePhone"] == ""
    assert record["billing"]["tax1"] == {"name": "IVA", "rate": "18.00"}
    # a one-element dueDates is still a list
    assert record["billing"]["dueDates"] == [{"delayInDays": "30", "rate": "50.00"}]
    assert record["customAttributes"] == [
        {"label": "ID_CRM", "value": "735"},
        {"label": "Campo 2", "value": ""},
    ]


def test_empty_list_containers_are_empty_lists() -> None:
    record = xmlcodec.to_record(
        xmlcodec.parse(b"<estimate><estimateLines/><customAttributes></customAttributes></estimate>")
    )
    assert record == {"estimateLines": [], "customAttributes": []}


def test_any_element_of_repeated_children_is_a_list() -> None:
    root = xmlcodec.parse(
        b"<estimate><payments><payment><a>1</a></payment><payment><a>2</a></payment></payments></estimate>"
    )
    assert xmlcodec.to_record(root) == {"payments": [{"a": "1"}, {"a": "2"}]}


def test_a_list_root_gives_records_and_total() -> None:
    root = xmlcodec.parse(
        b'<clients total="251"><client><id>1</id></client><client><id>2</id></client></clients>'
    )
    assert xmlcodec.to_list(root) == ([{"id": "1"}, {"id": "2"}], 251)


def test_encode_writes_declaration_cdata_strings_and_plain_values() -> None:
    body = {
        "legalType": "J",
        "name": "ACME & Hijos <SA>",
        "email": "a&b@example.com",
        "noEInvoice": False,
        "address": {"zipcode": "08500", "line2": ""},
        "billing": {"currency": "EUR", "paymentMean": "02", "tax1": {"rate": Decimal("21.00")}},
        "estimateDate": datetime.date(2026, 5, 3),
        "quantity": 2,
        "skipped": None,
    }
    xml = xmlcodec.encode("client", body).decode()
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><client>')
    assert "<name><![CDATA[ACME & Hijos <SA>]]></name>" in xml
    assert "<email>a&amp;b@example.com</email>" in xml
    assert "<noEInvoice>false</noEInvoice>" in xml
    assert "<line2><![CDATA[]]></line2>" in xml
    assert "<currency>EUR</currency>" in xml and "<paymentMean>02</paymentMean>" in xml
    assert "<rate>21.00</rate>" in xml
    assert "<estimateDate>20260503</estimateDate>" in xml
    assert "<quantity>2</quantity>" in xml
    assert "skipped" not in xml


def test_a_custom_attribute_without_value_is_written_without_value_element() -> None:
    body = {"customAttributes": [{"label": "ID_CRM", "value": "735"}, {"label": "Campo 2", "value": None}]}
    xml = xmlcodec.encode("client", body).decode()
    assert (
        "<customAttributes>"
        "<customAttribute><label><![CDATA[ID_CRM]]></label><value><![CDATA[735]]></value></customAttribute>"
        "<customAttribute><label><![CDATA[Campo 2]]></label></customAttribute>"
        "</customAttributes>"
    ) in xml


def test_lists_use_their_singular_item_names() -> None:
    body = {"estimateLines": [{"quantity": 1}], "billing": {"dueDates": [{"delayInDays": 30}]}}
    xml = xmlcodec.encode("estimate", body).decode()
    assert "<estimateLines><estimateLine><quantity>1</quantity></estimateLine></estimateLines>" in xml
    assert "<dueDates><dueDate><delayInDays>30</delayInDays></dueDate></dueDates>" in xml


def test_cdata_terminator_inside_a_value_round_trips() -> None:
    tricky = "a]]>b]]]]>c<![CDATA[d"
    xml = xmlcodec.encode("client", {"notes": tricky})
    assert xmlcodec.to_record(xmlcodec.parse(xml)) == {"notes": tricky}


def test_round_trip_of_unicode_and_nesting() -> None:
    body = {
        "name": "IAÑL Ñandú — ü",
        "address": {"city": "Vic"},
        "customAttributes": [{"label": "L", "value": "v"}],
    }
    assert xmlcodec.to_record(xmlcodec.parse(xmlcodec.encode("client", body))) == body


@pytest.mark.parametrize(
    ("value", "element"),
    [
        pytest.param({"notes": "bell\x07"}, "notes", id="control-char"),
        pytest.param({"bad name": "x"}, "bad name", id="name"),
    ],
)
def test_unwritable_values_raise_an_encode_error_naming_the_element(value: dict, element: str) -> None:
    with pytest.raises(xmlcodec.XmlEncodeError) as caught:
        xmlcodec.encode("client", value)
    assert caught.value.element == element


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<client><name>&lol3;</name></client>"""


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(xmlcodec.HostileXmlError):
        xmlcodec.parse(BILLION_LAUGHS)


def test_external_entities_are_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-FILE-CONTENT")
    document = f'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY xxe SYSTEM "file://{secret}">]><client><name>&xxe;</name></client>'
    with pytest.raises(xmlcodec.HostileXmlError) as caught:
        xmlcodec.parse(document.encode())
    assert "TOP-SECRET" not in str(caught.value)


def test_declarations_are_found_in_utf16_documents_too() -> None:
    document = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE c [<!ENTITY a "b">]><client/>'
    with pytest.raises(xmlcodec.HostileXmlError):
        xmlcodec.parse(document.encode("utf-16"))


def test_the_parser_itself_does_not_expand_entities_even_without_the_prescan() -> None:
    parser = xmlcodec._hardened_parser()
    from lxml import etree

    root = etree.fromstring(BILLION_LAUGHS, parser=parser)
    assert len(etree.tostring(root)) < 1000


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"<!DOCTYPE html><html><body>502</body></html>", xmlcodec.NotXmlError, id="html"),
        pytest.param(b"  <html><head></head></html>", xmlcodec.NotXmlError, id="html-no-doctype"),
        pytest.param(b'{"json": true}', xmlcodec.NotXmlError, id="json"),
        pytest.param(
            b'<?xml version="1.0"?><clients total="3"><client><id>1</id></cli',
            xmlcodec.BrokenXmlError,
            id="cut",
        ),
    ],
)
def test_non_xml_and_broken_bodies_are_told_apart(body: bytes, error: type) -> None:
    with pytest.raises(error):
        xmlcodec.parse(body)


def test_a_declared_encoding_is_honoured_because_raw_bytes_are_parsed() -> None:
    document = '<?xml version="1.0" encoding="ISO-8859-1"?><client><name>Ñandú</name></client>'.encode(
        "latin-1"
    )
    assert xmlcodec.to_record(xmlcodec.parse(document)) == {"name": "Ñandú"}


def test_a_tag_repeated_among_other_siblings_becomes_a_list() -> None:
    root = xmlcodec.parse(b"<client><phone>1</phone><name>A</name><phone>2</phone></client>")
    assert xmlcodec.to_record(root) == {"phone": ["1", "2"], "name": "A"}
