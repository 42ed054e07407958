"""Per-API mappings between an API's own records and the canonical ``SideRecord``.

Each mapper reads a raw record into canonical fields, and builds the bodies that create a record or
update only the changed fields of an existing one (read-modify-write: fields we do not map are
carried over untouched).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from clientify_sync.engine.model import SideRecord


class Mapper(Protocol):
    """What the engine needs from a mapping, for one entity on one side.

    ``identity``: how to tell a raw record's (type, id) without reading it: ``(type, id key)``, the type
    ``None`` when the resource gives it. It lets staging skip an unchanged record, which is sound when
    the mapping depends on the raw record and the mapper's settings alone; a mapper that reads more
    (the estimates read the contacts' and products' ``Directory``) holds it as a setting with a
    ``fingerprint()``. ``None``: always mapped again (``engine/staging.py``).
    """

    @property
    def identity(self) -> tuple[str | None, str] | None: ...

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord: ...

    def rtype_for(self, kind: str | None) -> str: ...

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]: ...

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]: ...


class PartialUpdateMapper:
    """Mixin for APIs whose PUT is partial (Clientify, FacturaDirecta): a create is an update of
    every field from nothing, so both bodies come from one ``update_body``."""

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        return self.update_body(rtype, {}, data, set(data), link)


def without_empty_strings(value: Any) -> Any:
    """A copy with every ``""`` value dropped from dicts, at any depth.

    Facturama answers its own GET with ``""`` in optional strings (``CuentaPredial``) but rejects a PUT
    that sends them back (length >= 1); its MCP server strips them the same way before a PUT.
    """
    if isinstance(value, dict):
        return {key: without_empty_strings(item) for key, item in value.items() if item != ""}
    if isinstance(value, list):
        return [without_empty_strings(item) for item in value]
    return copy.deepcopy(value)


class FullObjectMapper:
    """Mixin for APIs whose PUT replaces the whole object (Facturama): an update starts from what the
    API holds (without its ``""`` values), so fields we do not map are carried over; ``_apply`` sets
    the changed ones and ``_complete`` adds what the API requires on every write."""

    def _apply(self, body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        raise NotImplementedError

    def _complete(self, body: dict[str, Any]) -> None:
        """Fill or check what every write needs (raise ``RecordError`` when it cannot be filled)."""

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = without_empty_strings(raw)
        self._apply(body, data, changed)
        self._complete(body)
        return body
