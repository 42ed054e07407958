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

__all__ = ["URI_SCHEME", "normalize_uri", "sync_asset"]
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
