"""Subscriptions that wake the push streams (SDK `subscriptions`; developer-experience/apps.md).

An event is only a hint that something changed (delivery is at most once, possibly late);
the Changes API stays the source of truth, so a lost event costs at most one poll interval.
"""

from __future__ import annotations

import logging
from typing import Any

from aidbox_python_sdk.sdk import SDK
from aiohttp import web

from app.aidbox.keys import push_service_key

log = logging.getLogger("aidbox_sync.subscriptions")


async def wake_push_stream(event: dict[str, Any], request: web.Request) -> None:
    """Wake the stream of the changed resource's type (the event body is not kept)."""
    resource_type = (event.get("resource") or {}).get("resourceType")
    if isinstance(resource_type, str):
        request.app[push_service_key].wake(resource_type)


def register_subscriptions(sdk: SDK, resource_types: list[str]) -> None:
    """Subscribe to changes of each push type."""
    for resource_type in resource_types:
        sdk.subscription(resource_type)(wake_push_stream)
