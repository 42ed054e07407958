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
    """What the engine needs from a mapping, for one entity on one side."""

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


class FullObjectMapper:
    """Mixin for APIs whose PUT replaces the whole object (Facturama): an update starts from what the
    API holds, so fields we do not map are carried over; ``_apply`` sets the changed ones."""

    def _apply(self, body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        raise NotImplementedError

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body = copy.deepcopy(raw)
        self._apply(body, data, changed)
        return body
