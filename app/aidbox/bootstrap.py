"""Start-up work on the App's own Aidbox that must precede the SDK's registration.

Custom resource types are defined first (FHIRSchema; database/aidbox-schema/fhirschema.md),
because the SDK's seeds (conditional creates of SyncConfig) and the shipped profiles need the
types to exist. The global's access policies come after the App's registration
(install_policies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.aidbox.client import AidboxClient
from app.aidbox.manifest import Manifest
from app.anonymize import ProfileError, parse_profile
from app.model import Direction, SyncConfig

log = logging.getLogger("aidbox_sync.bootstrap")


async def define_custom_resources(client: AidboxClient, manifest: Manifest) -> None:
    """Create or update each FHIRSchema (PUT is idempotent: 201 first time, 200 after)."""
    for schema in manifest.schemas:
        await client.call("PUT", f"/fhir/FHIRSchema/{schema['id']}", json=schema)
    log.info("custom resources defined: %s", ", ".join(manifest.custom_types))


async def install_profiles(client: AidboxClient, manifest: Manifest) -> None:
    """Make each shipped profile (``safe-harbor``, ``minimal``) equal to the App's copy: the
    App's statement of what leaves a clinic (see _install)."""
    await _install(client, "AnonymizationProfile", manifest.profiles, _same_profile)


async def install_policies(client: AidboxClient, manifest: Manifest) -> None:
    """Make each shipped access policy equal to the App's copy: the App's statement of what a
    clinic may do at headquarters. After the App's registration: a policy may be linked to
    one of its operations, which Aidbox checks exists."""
    await _install(client, "AccessPolicy", manifest.policies, _same_body)


async def _install(
    client: AidboxClient,
    resource_type: str,
    bodies: dict[str, dict[str, object]],
    same: Callable[[object, dict[str, object]], bool],
) -> None:
    """When a release changes a shipped resource, the change must reach every Aidbox, so a
    stored copy that differs (an older release, or an edit in the console) is replaced, with
    one warning line. Resources of any other id are the operator's own and never touched:
    copy a shipped one to customize it."""
    for resource_id, body in bodies.items():
        path = f"/{resource_type}/{resource_id}"
        resp = await client.call("GET", path, accept=(404, 410))
        if resp.status == 200 and same(resp.body, body):
            continue
        await client.call("PUT", path, json=body)
        if resp.status == 200:
            log.warning(
                "%s/%s differed from this release's and was replaced; "
                "to customize it, copy it under another id",
                resource_type,
                resource_id,
            )


def _same_profile(stored: object, shipped: dict[str, object]) -> bool:
    if not isinstance(stored, dict):
        return False
    try:
        return parse_profile({**stored, "meta": None}) == parse_profile(shipped)
    except ProfileError:
        return False


def _same_body(stored: object, shipped: dict[str, object]) -> bool:
    return isinstance(stored, dict) and {k: v for k, v in stored.items() if k != "meta"} == shipped


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
