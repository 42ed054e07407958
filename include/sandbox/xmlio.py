"""FacturaDirecta XML: hardened parsing into nested dicts and schema-driven rendering.

A schema is a tuple of nodes in document order: ``Leaf`` (a value element and how it is written:
CDATA or plain text), ``Group`` (an element with children, merged element-wise on update) and
``Repeated`` (a container of repeated items, replaced wholesale). Rendering follows the schema so
element order, CDATA and empty elements match the documented examples.

Parsing never resolves entities, never touches the network and refuses any DOCTYPE, so billion-laughs
and XXE payloads are rejected as invalid input instead of being expanded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
INDENT = "    "
# Characters XML 1.0 cannot carry; stripped on output so a response always parses.
_INVALID_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
CDATA_KINDS = frozenset({"cdata"})


class XmlInputError(ValueError):
    """The request body is not acceptable XML (malformed, wrong root, DOCTYPE, empty)."""


@dataclass(frozen=True)
class Leaf:
    """A value element. ``kind`` says how it is written (``cdata``) and validated (the rest)."""

    name: str
    kind: str = "cdata"
    optional: bool = False


@dataclass(frozen=True)
class Group:
    name: str
    children: tuple[Node, ...]
    optional: bool = False


@dataclass(frozen=True)
class Repeated:
    name: str
    item: str
    children: tuple[Leaf, ...]
    optional: bool = False


Node = Leaf | Group | Repeated


# -- parsing ---------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    # One parser per call: lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        strip_cdata=True,
    )


def parse(raw: bytes, root: str) -> etree._Element:
    """Parse the raw request bytes (never a decoded str: it may carry an encoding declaration)."""
    if not raw.strip():
        raise XmlInputError("El cuerpo de la petición está vacío")
    if _DOCTYPE.search(raw):
        raise XmlInputError("No se admiten declaraciones DOCTYPE ni entidades")
    try:
        element = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlInputError(f"XML mal formado: {exc}") from None
    tree = element.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XmlInputError("No se admiten declaraciones DOCTYPE ni entidades")
    if element.tag != root:
        raise XmlInputError(f"Se esperaba el elemento <{root}> y se recibió <{element.tag}>")
    return element


def _text(element: etree._Element) -> str:
    return "".join(element.itertext()).strip()


def read(element: etree._Element, schema: Iterable[Node]) -> dict[str, Any]:
    """Known children of ``element`` as a nested dict of strings; absent elements are absent keys.

    Unknown elements are ignored. A ``Repeated`` container becomes a list of item dicts.
    """
    out: dict[str, Any] = {}
    for node in schema:
        child = element.find(node.name)
        if child is None:
            continue
        if isinstance(node, Leaf):
            out[node.name] = _text(child)
        elif isinstance(node, Group):
            out[node.name] = read(child, node.children)
        else:
            out[node.name] = [read(item, node.children) for item in child.findall(node.item)]
    return out


# -- rendering -------------------------------------------------------------------------------------


def escape_text(value: str) -> str:
    value = _INVALID_CHARS.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cdata(value: str) -> str:
    value = _INVALID_CHARS.sub("", value)
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _leaf(node: Leaf, value: Any, depth: int) -> str:
    text = "" if value is None else str(value)
    inner = cdata(text) if node.kind in CDATA_KINDS else escape_text(text)
    return f"{INDENT * depth}<{node.name}>{inner}</{node.name}>\n"


def render_nodes(schema: Iterable[Node], record: dict[str, Any], depth: int, template: bool = False) -> str:
    """Elements of ``record`` in schema order; missing non-optional elements are rendered empty."""
    parts: list[str] = []
    pad = INDENT * depth
    for node in schema:
        present = node.name in record and record[node.name] is not None
        if not present and node.optional and not template:
            continue
        value = record.get(node.name)
        if isinstance(node, Leaf):
            parts.append(_leaf(node, value, depth))
        elif isinstance(node, Group):
            inner = render_nodes(node.children, value or {}, depth + 1, template)
            parts.append(f"{pad}<{node.name}>\n{inner}{pad}</{node.name}>\n")
        else:
            items = list(value or [])
            if template and not items:
                items = [{}]
            if not items:
                parts.append(f"{pad}<{node.name}></{node.name}>\n")
                continue
            inner = "".join(
                f"{pad}{INDENT}<{node.item}>\n"
                f"{render_nodes(node.children, item, depth + 2, template)}"
                f"{pad}{INDENT}</{node.item}>\n"
                for item in items
            )
            parts.append(f"{pad}<{node.name}>\n{inner}{pad}</{node.name}>\n")
    return "".join(parts)


def render_element(
    name: str, schema: Iterable[Node], record: dict[str, Any], depth: int = 0, template: bool = False
) -> str:
    pad = INDENT * depth
    return f"{pad}<{name}>\n{render_nodes(schema, record, depth + 1, template)}{pad}</{name}>\n"


def document(name: str, schema: Iterable[Node], record: dict[str, Any], template: bool = False) -> bytes:
    return (DECLARATION + render_element(name, schema, record, 0, template)).encode()


def list_document(
    plural: str, singular: str, schema: Iterable[Node], records: list[dict[str, Any]], total: int
) -> bytes:
    """``<clients total="N">`` with one full ``<client>`` per record (``<clients total="N"/>`` if none)."""
    schema = tuple(schema)
    if not records:
        return f'{DECLARATION}<{plural} total="{total}"/>\n'.encode()
    body = "".join(render_element(singular, schema, record, 1) for record in records)
    return f'{DECLARATION}<{plural} total="{total}">\n{body}</{plural}>\n'.encode()


def status_document(status: int) -> bytes:
    """``<xml><httpStatus>N</httpStatus></xml>``: the documented body of 404, DELETE 200 and 401."""
    return f"{DECLARATION}<xml>\n{INDENT}<httpStatus>{status}</httpStatus>\n</xml>\n".encode()


def error_document(status: int, code: str, message: str) -> bytes:
    return (
        f"{DECLARATION}<xml>\n{INDENT}<httpStatus>{status}</httpStatus>\n"
        f"{INDENT}<errorCode>{escape_text(code)}</errorCode>\n"
        f"{INDENT}<errorMessage>{cdata(message)}</errorMessage>\n</xml>\n"
    ).encode()
