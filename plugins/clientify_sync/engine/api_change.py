"""A connection moved to another API of its platform (FacturaDirecta classic ↔ REST): re-link from scratch.

The invoicing ids the ledger holds (numeric on the classic API, ``con_…``/``est_…`` on the REST API) name
nothing on the other API, so the first run after the move (a full one) forgets this scope's invoicing
records, links and pending invoicing creates, and links every record again (Clientify's stale link values
are ignored: ``mapping.clientify.linked_id``). No record is created twice on either side. The ledger
remembers which API each scope was last synced with (meta ``invoicing_api:<integration>:<entity>``),
written after the forget: a crash in between forgets again, which changes nothing (the re-link entries
of estimates, below, are kept).

How each entity is linked again:

- contacts and products: by their natural key, tax ID or SKU, by matching (``planner``).
- estimates: by our reference, the Clientify budget id in the link attribute/field (``ID_CRM``). The sync
  puts it on every estimate it links, whichever side made it: on the estimates it creates from a budget,
  and written back on those it sends to Clientify. So an estimate created in FacturaDirecta carries it
  too, although its budget's code names its old id (``FD-80``), which no key read on the other API can
  equal. Each estimate link becomes a re-link entry (a pending invoicing create: the budget as its
  source, ``CLI-<budget id>`` as the key, the link's merge base as what was sent); reconcile settles it
  as it settles a create whose answer was lost: the estimate read with that reference is linked to its
  budget with that base and both hashes unknown, so nothing is created and an edit made on either side
  since the last classic run is merged, not overwritten. The document number is no key here: the
  references do not say it carries over, and the sandbox numbers each API on its own (``1`` vs
  ``2026/0001``). The move is refused, before anything is forgotten, when a linked estimate as last read
  on the old API did not carry the reference. On the new API it must have moved with the account:
  FacturaDirecta's REST API is assumed to show the account's custom attribute as the custom field of the
  same title (**(inferred)**, facturadirecta-rest-api.md §10, §15.16); an estimate read there without it
  is linked by nothing and would be made again (docs/deploy.md, moving between the FacturaDirecta APIs,
  says what to check first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.pending import Create
from clientify_sync.engine.mapping.estimates import CRM_PREFIX
from clientify_sync.engine.vocabulary import INV, Entity, JobSpec, Mode
from clientify_sync.errors import ConfigurationError

log = logging.getLogger(__name__)


def api_key(ledger: Ledger) -> str:
    """The meta key remembering which API this ledger scope was last synced with."""
    return f"invoicing_api:{ledger.integration}:{ledger.entity}"


def follow_api_change(ledger: Ledger, spec: JobSpec, api: str) -> None:
    """Forget this scope's invoicing side when ``api`` is not the one the ledger last synced with.

    A full run re-links; a modified run would see only part of Clientify and is refused, naming the
    DAG to run with ``mode=full``. Estimate links are kept as re-link entries (see the module docstring).
    """
    key = api_key(ledger)
    stored = ledger.meta.get(key)
    if stored == api or spec.dry_run:
        return
    if stored is None:
        ledger.meta.set(key, api)
        return
    platform = spec.platform.value
    if spec.mode is not Mode.FULL:
        keys = "our estimate reference" if spec.entity is Entity.ESTIMATES else "tax ID or SKU"
        raise ConfigurationError(
            f"the {platform} connection moved from its {stored} API to its {api} API: run "
            f"{platform}_{spec.entity.value} once with mode=full, which links every record again by {keys}"
        )
    estimates = spec.entity is Entity.ESTIMATES

    def refuse(why: str) -> ConfigurationError:
        return ConfigurationError(
            f"the {platform} connection moved from its {stored} API to its {api} API: {why}"
        )

    relinks = relink_entries(ledger, refuse) if estimates else []

    def forget(conn: Connection) -> None:
        records = ledger.records.forget(INV, conn)
        links = ledger.links.forget_all(conn)
        if not estimates:  # an estimate's pending create is found by its reference on either API: kept
            pending = [e.id for e in ledger.pending.all() if e.target == INV]
            ledger.pending.delete(pending, conn)
        ledger.pending.add(conn, relinks, spec.run_id)
        log.warning("%s API changed %s -> %s: %d records and %d links forgotten, %d to re-link by reference",
                    platform, stored, api, records, links, len(relinks))  # fmt: skip

    ledger.write(forget)
    # After: a crash in between forgets again, which finds no link left and keeps the re-link entries.
    ledger.meta.set(key, api)


def relink_entries(ledger: Ledger, refuse: Callable[[str], ConfigurationError]) -> list[Create]:
    """One re-link entry per estimate link: found again by the reference ``CLI-<budget id>`` the estimate
    carries on either API, linked with the link's merge base (else the estimate as last read: an entry
    without one would be left to matching, which cannot pair a budget coded ``FD-<old id>``).

    Refused, before anything is forgotten, when an estimate as last read on the old API did not carry
    its budget's id (no link attribute on that connection): it would be found by nothing and made again.
    """
    pairs = ledger.links.identities()
    bases = ledger.links.bases(int(i) for i in pairs["link_id"])
    read = ledger.records.fetch(INV, zip(pairs["inv_type"], pairs["inv_id"], strict=True), with_raw=False)
    entries, unreferenced = [], 0
    for row in pairs.itertuples():
        inv = (str(row.inv_type), str(row.inv_id))
        record = read.get(inv)
        unreferenced += record is None or record["link"] != str(row.crm_id)
        base = bases.get(int(row.link_id)) or (record["data"] if record else {})
        source = (str(row.crm_type), str(row.crm_id))
        entries.append(Create(INV, inv[0], source, f"{CRM_PREFIX}{row.crm_id}", dict(base)))
    if unreferenced:
        raise refuse(
            f"{unreferenced} of {len(entries)} linked estimates carry no Clientify budget id in their link "
            "attribute, so nothing would find them again: switch back, set link_attribute (ID_CRM) on that "
            "connection and run the estimates DAG once, which writes it on every estimate, then switch"
        )
    return entries
