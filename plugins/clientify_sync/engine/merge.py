"""Field-level three-way merge of one record pair against the last synced snapshot (the base).

For each field: changed on one side only → that side's value goes to the other; changed on both to
the same value → nothing to write; changed on both to different values → a conflict, settled by the
per-field policy and recorded with both values.

Without a base (a pair matched for the first time, by tax ID or SKU) nobody "changed" anything: a
value missing on one side is filled from the other, and a real difference goes the invoicing
platform's way, as Clientify's own integration updates the CRM record from the invoicing one. Those
first-match differences are recorded beside the conflicts (``first_match``, with no base value), so a
user can review them, and counted apart: nobody edited anything against anybody.

Text that differs only in case, spacing or accents is the same value (``equivalent``): the CFDI
upper-cases names ("ACME SA" on Facturama is "Acme SA" in the CRM), and no API tells such values
apart in a search. It is neither a conflict nor a write. The price: an edit that only adds an accent
or changes case does not travel.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.engine.vocabulary import Side


@dataclass(frozen=True)
class FieldConflict:
    field: str
    invoicing_value: Any
    clientify_value: Any
    base_value: Any
    winner: Side


@dataclass
class MergeResult:
    merged: dict[str, Any]
    to_clientify: set[str] = field(default_factory=set)
    to_invoicing: set[str] = field(default_factory=set)
    conflicts: list[FieldConflict] = field(default_factory=list)
    first_match: list[FieldConflict] = field(default_factory=list)


def fold(value: str) -> str:
    """The form two texts are compared in: no accents, case-folded, single spaces, trimmed."""
    decomposed = unicodedata.normalize("NFKD", value)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


def equivalent(a: Any, b: Any) -> bool:
    """Equal, or texts equal after ``fold``."""
    if a == b:
        return True
    return isinstance(a, str) and isinstance(b, str) and fold(a) == fold(b)


def merge_fields(
    fields: tuple[str, ...],
    base: dict[str, Any] | None,
    invoicing: dict[str, Any],
    clientify: dict[str, Any],
    invoicing_wins: frozenset[str],
) -> MergeResult:
    """Merge ``invoicing`` and ``clientify`` against ``base``; return the result and what to write where."""
    result = MergeResult(merged={})
    for name in fields:
        inv_value, crm_value = invoicing.get(name, ""), clientify.get(name, "")
        value = _merge_one(name, base, inv_value, crm_value, invoicing_wins, result)
        result.merged[name] = value
        if not equivalent(value, crm_value):
            result.to_clientify.add(name)
        if not equivalent(value, inv_value):
            result.to_invoicing.add(name)
    return result


def _merge_one(
    name: str,
    base: dict[str, Any] | None,
    inv_value: Any,
    crm_value: Any,
    invoicing_wins: frozenset[str],
    result: MergeResult,
) -> Any:
    if equivalent(inv_value, crm_value):
        return inv_value
    if base is None:
        if _empty(inv_value):
            return crm_value
        if _empty(crm_value):
            return inv_value
        result.first_match.append(FieldConflict(name, inv_value, crm_value, None, Side.INVOICING))
        return inv_value
    base_value = base.get(name, "")
    if equivalent(inv_value, base_value):
        return crm_value
    if equivalent(crm_value, base_value):
        return inv_value
    winner = Side.INVOICING if name in invoicing_wins else Side.CLIENTIFY
    result.conflicts.append(FieldConflict(name, inv_value, crm_value, base_value, winner))
    return inv_value if winner is Side.INVOICING else crm_value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []
