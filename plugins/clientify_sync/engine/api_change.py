"""A connection moved to another API of its platform (FacturaDirecta classic ↔ REST): re-link from scratch.

The invoicing ids the ledger holds (numeric on the classic API, ``con_…`` on the REST API) name nothing
on the other API, so the first run after the move forgets this scope's invoicing records, links and
pending invoicing creates, and matching links every record again by tax ID or SKU (Clientify's stale
link values are ignored: ``mapping.clientify.linked_id``). No record is created twice on either side.
The ledger remembers which API each scope was last synced with (meta ``invoicing_api:<integration>:
<entity>``), written after the forget: a crash in between forgets again, which changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import INV, Entity, JobSpec, Mode
from clientify_sync.errors import ConfigurationError

log = logging.getLogger(__name__)


def api_key(ledger: Ledger) -> str:
    """The meta key remembering which API this ledger scope was last synced with."""
    return f"invoicing_api:{ledger.integration}:{ledger.entity}"


def follow_api_change(ledger: Ledger, spec: JobSpec, api: str) -> None:
    """Forget this scope's invoicing side when ``api`` is not the one the ledger last synced with.

    A full run re-links; a modified run would see only part of Clientify and is refused, naming the
    DAG to run with ``mode=full``. Estimates carry no key both APIs share (a document created in
    FacturaDirecta is known to Clientify by its classic id only), so their move is refused too
    (docs/deploy.md, moving between the FacturaDirecta APIs).
    """
    key = api_key(ledger)
    stored = ledger.meta.get(key)
    if stored == api or spec.dry_run:
        return
    if stored is None:
        ledger.meta.set(key, api)
        return
    platform = spec.platform.value
    if spec.entity is Entity.ESTIMATES:
        raise ConfigurationError(
            f"the {platform} connection moved from its {stored} API to its {api} API: estimates "
            "cannot be re-linked automatically yet (documents created in FacturaDirecta are known to Clientify "
            "by their old ids); see docs/deploy.md, moving between the FacturaDirecta APIs"
        )
    if spec.mode is not Mode.FULL:
        raise ConfigurationError(
            f"the {platform} connection moved from its {stored} API to its {api} API: run "
            f"{platform}_{spec.entity.value} once with mode=full, which links every record again by tax ID or SKU"
        )

    def forget(conn: Connection) -> None:
        records = ledger.records.forget(INV, conn)
        links = ledger.links.forget_all(conn)
        pending = [e["id"] for e in ledger.pending.all() if e["target"] == INV]
        ledger.pending.delete(pending, conn)
        log.warning("%s API changed %s -> %s: %d records and %d links forgotten, re-linking by key",
                    platform, stored, api, records, links)  # fmt: skip

    ledger.write(forget)
    ledger.meta.set(key, api)  # after: a crash in between forgets again, which changes nothing
