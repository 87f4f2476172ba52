"""Start-up work on the App's own Aidbox that must precede the SDK's registration.

Custom resource types are defined first (FHIRSchema, contract §1), because the SDK's seeds
(conditional creates of SyncConfig and the profiles) need the types to exist.
"""

from __future__ import annotations

import logging

from app.aidbox.client import AidboxClient
from app.aidbox.manifest import Manifest
from app.model import Direction, SyncConfig

log = logging.getLogger("aidbox_sync.bootstrap")


async def define_custom_resources(client: AidboxClient, manifest: Manifest) -> None:
    """Create or update each FHIRSchema (PUT is idempotent: 201 first time, 200 after)."""
    for schema in manifest.schemas:
        await client.call("PUT", f"/fhir/FHIRSchema/{schema['id']}", json=schema)
    log.info("custom resources defined: %s", ", ".join(manifest.custom_types))


async def push_types_to_watch(client: AidboxClient, manifest: Manifest) -> list[str]:
    """Types to subscribe to: from the stored SyncConfig, or the seed on first start."""
    resp = await client.call("GET", "/SyncConfig/default", accept=(404, 410))
    body = resp.body if resp.status == 200 else manifest.seeds.get("SyncConfig", {}).get("default")
    if not body:
        return []
    try:
        config = SyncConfig.model_validate(body)
    except ValueError:
        log.error("SyncConfig/default is invalid; no subscriptions until it is fixed")
        return []
    return [s.type for s in config.enabled_streams(Direction.PUSH)]
