"""Settling creates whose outcome a crash or an outage left unknown (``ledger.pending``).

A create is journaled before its POST and deleted once its link is saved, so an entry left behind is a
create that may or may not have made a record. Before anything is created again the record is looked
for, and when found it is linked with what the create sent as the merge base and both hashes unknown:
the next merge sees an edit made on either side since as that side's, where a first match by key (no
base) would let one side overwrite it. Either way the entry is then deleted, in the same transaction
as the link.

- Creates into **Clientify** are settled by the extract step that reads Clientify (it holds its pool):
  a record Clientify made carries our link field and a ``modified`` after the unadvanced watermark, so
  it is found by link field, else by natural key.
- Creates into the **invoicing platform** are settled by reconcile, from the listing the run staged
  (found by natural key): no extra call.
- The applier settles an earlier try's entries of the same run itself (``Applier(unsettled=…)``).
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.pending import PendingCreate
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.plan import Ref
from clientify_sync.engine.vocabulary import CRM, INV, Side

log = logging.getLogger(__name__)


class Finder(Protocol):
    """A side that can look a record up by link value, then by natural key."""

    def find(self, link_value: str | None, key: str | None) -> list[SideRecord]: ...


def settle_clientify_creates(ledger: Ledger, clientify: Finder, run_id: str) -> int:
    """Look each pending create into Clientify up (one search each), stage and link what is found;
    return how many entries were settled."""
    settled = 0
    for entry in ledger.pending.all():
        if entry.target != CRM:
            continue  # settled by reconcile, once the invoicing listing is staged
        found = clientify.find(entry.source_id, entry.natural_key)
        ledger.records.stage(found, run_id)
        log.info("pending create %s: %d found in Clientify", entry.source_id, len(found))
        made = Ref(found[0].rtype, found[0].rid) if len(found) == 1 else None
        _settle(ledger, entry, Side.INVOICING, made, run_id)
        settled += 1
    return settled


def settle_invoicing_creates(ledger: Ledger, run_id: str) -> int:
    """Settle each pending create into the invoicing platform from the listing this run staged; return
    how many entries were settled."""
    settled = 0
    for entry in ledger.pending.all():
        if entry.target != INV:
            continue
        found = ledger.records.seen_with_key(INV, entry.natural_key, run_id)
        made = Ref(*found[0]) if len(found) == 1 else None
        _settle(ledger, entry, Side.CLIENTIFY, made, run_id)
        settled += 1
    return settled


def _settle(ledger: Ledger, entry: PendingCreate, source_side: Side, made: Ref | None, run_id: str) -> None:
    """Link what the create ``made`` and delete the entry, in one transaction. Nothing found, or an
    entry of an older version (no ``sent``): nothing is linked, matching decides."""
    source, sent = Ref(entry.source_type, entry.source_id), entry.sent
    link = None if made is None or sent is None else _settled_link(ledger, source_side, source, made)

    def write(conn: Connection) -> None:
        if link is not None:
            inv, crm = link
            ledger.links.save(inv, crm, base=sent, inv_hash="", crm_hash="", run_id=run_id, conn=conn)
        ledger.pending.delete(entry.id, conn)

    ledger.write(write)


def _settled_link(ledger: Ledger, source_side: Side, source: Ref, made: Ref) -> tuple[Ref, Ref] | None:
    """The (invoicing, Clientify) pair to link, or ``None`` when either is linked already (an apply
    settled it meanwhile: matching decides)."""
    inv, crm = (source, made) if source_side is Side.INVOICING else (made, source)
    return None if ledger.links.find(inv=inv) or ledger.links.find(crm=crm) else (inv, crm)
