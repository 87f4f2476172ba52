"""Subscriptions that wake the push streams (SDK `subscriptions`; developer-experience/apps.md).

An event is only a hint that something changed (delivery is at most once, possibly late);
the Changes API stays the source of truth, so a lost event costs at most one poll interval.
The App also follows `SyncConfig` itself: a push type enabled later gets its subscription
without a restart, by a new registration of the App's manifest (`PUT /App/<id>`).
"""

from __future__ import annotations

import logging
from typing import Any

from aidbox_python_sdk.sdk import SDK
from aiohttp import web

from app.aidbox.client import AidboxClient
from app.aidbox.keys import sync_service_key

log = logging.getLogger("aidbox_sync.subscriptions")


async def wake_push_stream(event: dict[str, Any], request: web.Request) -> None:
    """Wake the stream of the changed resource's type (the event body is not kept)."""
    resource_type = (event.get("resource") or {}).get("resourceType")
    if isinstance(resource_type, str):
        request.app[sync_service_key].wake(resource_type)


# Its changes wake the runner too, which then loads it and follows its push types.
CONFIG_TYPE = "SyncConfig"


class Subscriptions:
    """The types the App is subscribed to; more are added, and the App re-registered, as the
    configuration enables them (disabled ones stay until a restart: a wake-up of a type that
    is not pushed is harmless)."""

    def __init__(self, sdk: SDK, own: AidboxClient) -> None:
        self._sdk = sdk
        self._own = own
        self.watched: set[str] = set()

    def subscribe(self, resource_types: list[str]) -> None:
        """Subscribe at start-up, before the SDK registers the App."""
        for resource_type in [CONFIG_TYPE, *resource_types]:
            if resource_type not in self.watched:
                self._sdk.subscription(resource_type)(wake_push_stream)
                self.watched.add(resource_type)

    async def follow(self, resource_types: list[str]) -> None:
        """Subscribe to push types enabled since start-up, and register the App again."""
        new = [t for t in resource_types if t not in self.watched]
        if not new:
            return
        self.subscribe(new)
        manifest = self._sdk.build_manifest()
        await self._own.call("PUT", f"/App/{manifest['id']}", json=manifest)
        log.info("subscribed to %s (enabled in SyncConfig)", ", ".join(new))
