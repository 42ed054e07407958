"""The Assets the sync DAGs publish: one per platform and entity, with stable names and URIs.

An asset event means "this entity of this platform was synced with Clientify by a run that finished
completely" (the ``commit`` task's outlet). The estimates DAG of a platform waits for both its
contacts and its products assets, so estimates are only reconciled once the customers and products
they reference are linked.

Names and URIs are part of the schedule's identity in the metadata DB: renaming one orphans the
old asset, so keep them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Asset

from clientify_sync.engine.vocabulary import Entity, Platform
from clientify_sync.provider import URI_SCHEME

if TYPE_CHECKING:
    from urllib.parse import SplitResult

__all__ = ["INBOX_URI_SCHEME", "URI_SCHEME", "inbox_asset", "normalize_uri", "sync_asset"]
# The inbox assets' own scheme: ``clientify-sync://`` URIs are checked to be exactly <platform>/<entity>.
INBOX_URI_SCHEME = "clientify-sync-inbox"
INBOX_SUFFIX = "_inbox"
_PLATFORMS = tuple(platform.value for platform in Platform)
_ENTITIES = tuple(entity.value for entity in Entity)


def normalize_uri(parts: SplitResult) -> SplitResult:
    """Check a ``clientify-sync://<platform>/<entity>`` URI (the scheme's handler, see provider.py).

    Airflow calls it for every asset of this scheme once the distribution is installed, so a typo in
    a hand-written asset (``clientify-sync://facturama/contact``) fails the DAG import instead of
    creating an asset no sync ever updates.

    Raises:
        ValueError: an unknown platform or entity, or anything after the entity.
    """
    platform, entity = parts.netloc.lower(), parts.path.strip("/").lower()
    if platform not in _PLATFORMS or entity not in _ENTITIES or parts.query:
        raise ValueError(
            f"{URI_SCHEME} URIs are {URI_SCHEME}://<{'|'.join(_PLATFORMS)}>/<{'|'.join(_ENTITIES)}>, "
            f"got {parts.geturl()!r}"
        )
    return parts._replace(netloc=platform, path=f"/{entity}")


def inbox_asset(platform: Platform | str, entity: Entity | str) -> Asset:
    """The asset an entity's webhook inbox wakes its DAG through: watched on the triggerer by an
    ``InboxTrigger`` that fires, debounced, when new events wait (``clientify_sync.webhooks``).

    An event is only a wake-up: the run it starts claims the inbox's rows and re-reads each named
    record (Airflow can leave events that arrive during a run unconsumed, issue #56050; the trigger
    fires again while signalled rows stay pending, and the clock run covers the rest).
    """
    from airflow.sdk import AssetWatcher

    from clientify_sync.webhooks.trigger import InboxTrigger

    platform, entity = Platform(platform).value, Entity(entity).value
    name = f"{platform}_{entity}{INBOX_SUFFIX}"
    trigger = InboxTrigger(integration=platform, entity=entity)
    return Asset(
        name=name, uri=f"{INBOX_URI_SCHEME}://{platform}/{entity}", group="clientify_sync",
        extra={"platform": platform, "entity": entity}, watchers=[AssetWatcher(name=name, trigger=trigger)],
    )  # fmt: skip


def is_inbox_asset(asset: Asset) -> bool:
    return asset.name.endswith(INBOX_SUFFIX)


def sync_asset(platform: Platform | str, entity: Entity | str) -> Asset:
    """Return the Asset a ``{platform}_{entity}`` DAG publishes.

    Raises:
        ValueError: an unknown platform or entity.
    """
    platform, entity = Platform(platform).value, Entity(entity).value
    return Asset(
        name=f"{platform}_{entity}",
        uri=f"{URI_SCHEME}://{platform}/{entity}",
        group="clientify_sync",
        extra={"platform": platform, "entity": entity},
    )


FACTURAMA_CONTACTS = sync_asset(Platform.FACTURAMA, Entity.CONTACTS)
FACTURAMA_PRODUCTS = sync_asset(Platform.FACTURAMA, Entity.PRODUCTS)
FACTURAMA_ESTIMATES = sync_asset(Platform.FACTURAMA, Entity.ESTIMATES)
FACTURADIRECTA_CONTACTS = sync_asset(Platform.FACTURADIRECTA, Entity.CONTACTS)
FACTURADIRECTA_PRODUCTS = sync_asset(Platform.FACTURADIRECTA, Entity.PRODUCTS)
FACTURADIRECTA_ESTIMATES = sync_asset(Platform.FACTURADIRECTA, Entity.ESTIMATES)
