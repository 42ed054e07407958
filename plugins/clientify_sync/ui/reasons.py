"""A record's state and its reason in words: what the records explorer says on every row.

The engine keeps reasons as identifiers (``duplicate_tax_id``, ``no_tax_id``, ``validation_error``);
a user reads "duplicate tax ID", with what the record waits for, the API's message it failed with, or
who won a conflict. A reason without words here is shown as its identifier with spaces, so a reason
added to the engine later still reads, only less well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The first words are the reason's name as the report shows it (``duplicate tax ID``); after the colon,
# what it means for the record.
REASONS = {
    # quarantined: matching would have to guess
    "duplicate_tax_id": "duplicate tax ID: another record holds the same tax ID; matching never guesses",
    "duplicate_sku": "duplicate SKU: another product holds the same SKU; matching never guesses",
    "duplicate_reference": "duplicate reference: another estimate holds the same reference",
    "link_conflict": "link conflict: its link names a record already linked to another one",
    # skipped: out of scope until the record changes
    "no_tax_id": "no tax ID: customers are matched by tax ID",
    "invalid_tax_id": "invalid tax ID: not a valid RFC / NIF",
    "generic_tax_id": "generic tax ID: a placeholder RFC / NIF (e.g. XAXX010101000) that identifies no one",
    "other_platform": "other platform: its tax ID belongs to the other integration's country",
    "missing_email": "missing e-mail: the invoicing platform requires one",
    "no_sku": "no SKU: products are matched by SKU",
    "rounding_product": "the rounding product: kept on the invoicing side only",
    "line_without_sku": "a line without SKU: it names no product the other side knows",
    "linked_record_missing": "linked record missing: its link field names an invoicing record that is gone",
    "clientify_record_unknown": "linked Clientify record never read: it may have been deleted",
    "totals_mismatch": "totals mismatch: its total does not match its lines",
    "not_representable": "not representable: the other side cannot hold it exactly",
    "totals_not_representable": "totals not representable: the other side's totals would differ",
    "unsupported_tax_mix": "unsupported tax mix: the other side takes one VAT rate per document",
    "discount_not_representable": "discount not representable on the other side",
}
PLATFORMS = {"facturama": "Facturama", "facturadirecta": "FacturaDirecta", "clientify": "Clientify"}
# What each state's badge says.
BADGES = {
    "in_sync": "in sync",
    "created": "created",
    "updated": "updated",
    "conflict": "conflict",
    "quarantined": "quarantined",
    "skipped": "skipped",
    "deferred": "deferred",
    "failed": "failed",
    "changed": "changed",
    "unsettled": "not synced yet",
}


def reason_words(reason: str | None) -> str:
    """A reason in words (its identifier with spaces when it has none here)."""
    if not reason:
        return ""
    return REASONS.get(reason, reason.replace("_", " "))


def describe(state: Mapping[str, Any], integration: str) -> str:
    """Why a record is in ``state`` (a ``cs_record_states`` row, or one the view derived), in words.

    Args:
        state: ``state``, ``reason``, ``detail`` and ``target`` (the side a write went to).
        integration: the invoicing platform, to name the side written to.
    """
    name, reason, detail = state["state"], state.get("reason"), state.get("detail")
    target = state.get("target")
    where = PLATFORMS.get(integration if target == "invoicing" else str(target), str(target))
    if name == "failed":
        words = reason_words(reason) or "failed"
        return f"{words}: {detail}" if detail else words
    if name == "deferred":
        return f"waiting for {detail} to be linked first" if detail else reason_words(reason) or "waiting"
    if name == "conflict":
        won = f" ({detail})" if detail else ""
        return f"a field edited on both sides since the last sync{won}; written to {where}"
    if name == "created":
        return f"created in {where}"
    if name == "updated":
        return f"updated in {where}" + (f" ({detail})" if detail else "")
    if name == "in_sync":
        return "linked, nothing to write"
    if name == "changed":
        return "changed since the last sync: the next run syncs it"
    if name == "unsettled":
        return "no run has settled it yet"
    words = reason_words(reason)
    return f"{words} ({detail})" if detail and name == "skipped" else words
