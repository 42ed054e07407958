"""FacturaDirecta XML <-> plain nested dicts, parsed with a hardened lxml parser.

Reading: element names become keys, leaf text becomes ``str`` (``""`` when empty), nested elements
become dicts, and list containers (``customAttributes``, ``dueDates``, ``estimateLines``, any
``<things>`` of ``<thing>`` children, any element whose children all share one repeated tag) become
lists. Attributes are ignored except ``total`` on a list root.

Writing: the XML declaration, then strings wrapped in CDATA as the API does, except the elements
the API writes as plain text (``website``, ``language``, ``email``, ``currency``, ``paymentMean``)
and non-strings (numbers, booleans, dates). A ``None`` value writes no element at all, which is how a
partial PUT leaves a field untouched and how ``{"label": "X", "value": None}`` clears a custom
attribute.

Hostile input: any DOCTYPE or ENTITY declaration is rejected before parsing (billion laughs, XXE);
the parser itself also refuses to resolve entities, load DTDs, touch the network or build huge trees.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

LIST_CONTAINERS = {
    "customAttributes": "customAttribute",
    "dueDates": "dueDate",
    "estimateLines": "estimateLine",
}
PLAIN_TEXT_ELEMENTS = frozenset({"website", "language", "email", "currency", "paymentMean"})
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_INVALID_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HOSTILE = re.compile(rb"<!\s*(doctype|entity)", re.IGNORECASE)


class XmlCodecError(ValueError):
    """Base of the codec's own errors; the client turns them into API errors with context."""


class HostileXmlError(XmlCodecError):
    """The document declares a DOCTYPE or ENTITY (entity expansion or external entity attack)."""


class NotXmlError(XmlCodecError):
    """The body is HTML or not XML at all."""


class BrokenXmlError(XmlCodecError):
    """The body starts like XML but does not parse, most likely cut short in transit."""


class XmlEncodeError(XmlCodecError):
    """A value cannot be written as XML (invalid character or element name)."""

    def __init__(self, element: str, message: str) -> None:
        self.element = element
        super().__init__(f"{element}: {message}")


def _hardened_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, dtd_validation=False
    )


def parse(raw: bytes) -> etree._Element:
    """Parse raw response bytes (never a decoded ``str``: lxml honours the declared encoding)."""
    view = _scan_text(raw)
    head = view.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:14].lower().startswith((b"<!doctype html", b"<html")):
        raise NotXmlError("HTML page instead of XML")
    if not head.startswith(b"<"):
        raise NotXmlError("response body is not XML")
    if _HOSTILE.search(view):
        raise HostileXmlError("XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        root = etree.fromstring(raw, parser=_hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise BrokenXmlError(f"unparseable XML ({exc.msg})") from None
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs lack DocInfo.doctype
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise HostileXmlError("XML with a DOCTYPE or ENTITY declaration is refused")
    return root


def _scan_text(raw: bytes) -> bytes:
    """The bytes to sniff and search for declarations; UTF-16 documents are re-encoded as UTF-8."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace").encode("utf-8")
    return raw


def to_value(element: etree._Element) -> dict[str, Any] | list[Any] | str:
    """Convert one element (see the module docstring for the rules)."""
    children = [child for child in element if isinstance(child.tag, str)]
    if element.tag in LIST_CONTAINERS or (children and _is_list(element.tag, children)):
        return [to_value(child) for child in children]
    if not children:
        return element.text or ""
    grouped: dict[str, list[Any]] = {}
    for child in children:
        grouped.setdefault(child.tag, []).append(to_value(child))
    # A tag repeated among different siblings becomes a list; a single one stays a value.
    return {tag: values[0] if len(values) == 1 else values for tag, values in grouped.items()}


def _is_list(tag: str, children: list[etree._Element]) -> bool:
    tags = {child.tag for child in children}
    if len(tags) != 1:
        return False
    (child_tag,) = tags
    return len(children) > 1 or tag == f"{child_tag}s"


def to_record(root: etree._Element) -> dict[str, Any]:
    """A single record element (``<client>…</client>``) as a dict."""
    value = to_value(root)
    return value if isinstance(value, dict) else {}


def to_list(root: etree._Element) -> tuple[list[dict[str, Any]], int | None]:
    """A list root (``<clients total="N"><client>…``) as (records, total)."""
    records = [to_record(child) for child in root if isinstance(child.tag, str)]
    total = root.get("total")
    return records, int(total) if total is not None and total.strip().isdigit() else None


def encode(root: str, record: Mapping[str, Any]) -> bytes:
    """Write ``record`` as ``<root>…</root>`` with the XML declaration, UTF-8."""
    parts = [XML_DECLARATION]
    _write(parts, root, record)
    return "".join(parts).encode("utf-8")


def _write(out: list[str], tag: str, value: Any) -> None:
    if not _NAME.match(tag):
        raise XmlEncodeError(tag, "not a valid XML element name")
    if value is None:
        return
    if isinstance(value, Mapping):
        out.append(f"<{tag}>")
        for key, item in value.items():
            _write(out, key, item)
        out.append(f"</{tag}>")
    elif isinstance(value, list | tuple):
        item_tag = _item_tag(tag)
        out.append(f"<{tag}>")
        for item in value:
            _write(out, item_tag, item)
        out.append(f"</{tag}>")
    else:
        out.append(f"<{tag}>{_scalar(tag, value)}</{tag}>")


def _item_tag(tag: str) -> str:
    if tag in LIST_CONTAINERS:
        return LIST_CONTAINERS[tag]
    if tag.endswith("s") and len(tag) > 1:
        return tag[:-1]
    raise XmlEncodeError(tag, "a list needs a plural container name")


def _scalar(tag: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    text = str(value)
    if _INVALID_CHARS.search(text):
        raise XmlEncodeError(tag, "contains a character XML cannot carry")
    if tag in PLAIN_TEXT_ELEMENTS:
        return escape(text)
    return cdata(text)


def cdata(text: str) -> str:
    """Wrap in CDATA; a ``]]>`` inside is split across two sections so it survives intact."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"
