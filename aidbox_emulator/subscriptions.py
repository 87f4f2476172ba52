"""App subscriptions (deprecated, still what the SDK uses): deliver committed changes to Apps.

Body from developer-experience/apps.md (Node SDK types; the SDK reads `event.tx.id`):
`{"type": "subscription", "handler", "event": {"action", "resource", "previous"?, "tx": {"id"}}}`
POSTed to the App's endpoint with `Authorization: Basic base64(<app-id>:<secret>)`. Delivery
timing and retries are open: the emulator delivers after COMMIT, in the background, and retries
with bounded backoff until a 2xx, then gives up (events are hints; $changes is the truth).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import aiohttp
import asyncpg

from .transactions import Event

log = logging.getLogger("aidbox_emulator")

MAX_ATTEMPTS = 8
FIRST_DELAY = 0.05
MAX_DELAY = 2.0


def app_auth(app: dict[str, Any]) -> dict[str, str]:
    """Headers Aidbox authenticates to an App endpoint with: Basic <app-id>:<endpoint.secret>."""
    secret = (app.get("endpoint") or {}).get("secret") or ""
    return {"Authorization": aiohttp.encode_basic_auth(app["id"], secret)}


class Deliveries:
    """Background delivery of subscription events, with a way for tests to await quiescence."""

    def __init__(self, pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
        self._pool = pool
        self._http = http
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, events: list[Event]) -> None:
        """Queue delivery of committed events to every App subscribed to their types."""
        self._spawn(self._fan_out(events))

    async def idle(self) -> None:
        """Return once no delivery is pending (including retries)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel pending deliveries."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fan_out(self, events: list[Event]) -> None:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, resource FROM app WHERE resource ? 'subscriptions'")
        apps = [{"id": r["id"], **r["resource"]} for r in rows]
        for event in events:
            rtype = event.resource["resourceType"]
            for app in apps:
                sub = (app.get("subscriptions") or {}).get(rtype)
                if sub and sub.get("handler"):
                    self._spawn(self._deliver(app, sub["handler"], event))

    async def _deliver(self, app: dict[str, Any], handler: str, event: Event) -> None:
        body: dict[str, Any] = {"action": event.action, "resource": event.resource}
        if event.previous is not None:
            body["previous"] = event.previous
        body["tx"] = {"id": event.txid}
        payload = {"type": "subscription", "handler": handler, "event": body}
        url = (app.get("endpoint") or {}).get("url")
        delay = FIRST_DELAY
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self._http.post(url, json=payload, headers=app_auth(app)) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        return
                    log.warning("subscription %s → %s answered %s", handler, url, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("subscription %s → %s failed: %s", handler, url, exc)
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
        log.error("subscription %s → %s dropped after %d attempts", handler, url, MAX_ATTEMPTS)
