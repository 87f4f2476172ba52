"""Where a stream reads: the Aidbox whose changes it carries, and that Aidbox's settled bound.

- Push reads the clinic's own Aidbox: its Changes API (api/other/changes-api.md), searches by
  `_id` for current states, and the settled bound proven with `$psql` (watermark.py).
- Pull reads headquarters through the global App's operations (docs/pull.md): the same answers,
  already cut to what this clinic may have, and headquarters' settled bound, which the global
  App proves on its own Aidbox; a clinic never gets `$changes`, searches or `$psql` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.aidbox.client import AidboxClient, AidboxError
from app.sync.feed import FeedError

# Ids per search by `_id` list: keeps the request line short (a few kilobytes).
ID_LIST = 50
# Entries of one id-only `$pull-changes` read (docs/pull.md): how large one transaction of a
# pulled type may be at headquarters. Aidbox's own `$changes` states no maximum `_count`.
HEADQUARTERS_MAX_PROBE = 200_000


def _changes_list(resource_type: str, status: int, body: Any) -> list[Any]:
    if status == 304:
        return []
    # Only 304 means "nothing": a 200 without a changes list is not an empty window.
    changes = body.get("changes") if isinstance(body, dict) else None
    if not isinstance(changes, list):
        raise FeedError(f"{resource_type} $changes answered {status} without changes")
    return changes


def _window(lo: int, hi: int, count: int, probe: bool) -> dict[str, str]:
    params = {"version": f"{lo},{hi}", "_count": str(count)}
    if probe:
        params["omit-resources"] = "true"  # ids only: counting needs no bodies
    return params


class AidboxSource:
    """An Aidbox's own Changes API and searches (the clinic's, for push)."""

    max_probe: int | None = None

    def __init__(self, client: AidboxClient) -> None:
        self.client = client

    async def head(self, resource_type: str) -> int:
        """The type's latest version (`GET /<Type>/$changes`)."""
        resp = await self.client.call("GET", f"/{resource_type}/$changes")
        return int((resp.body or {}).get("version", 0))

    async def changes(
        self, resource_type: str, lo: int, hi: int, count: int, *, probe: bool
    ) -> list[Any]:
        """The raw `changes` of the window (lo, hi], at most `count` of them."""
        try:
            resp = await self.client.call(
                "GET", f"/{resource_type}/$changes", params=_window(lo, hi, count, probe)
            )
        except AidboxError as exc:
            if exc.status == 404:
                raise FeedError(f"unknown resource type {resource_type}") from None
            raise
        return _changes_list(resource_type, resp.status, resp.body)

    async def current(self, resource_type: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current state of each id that exists, by id."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ID_LIST):
            chunk = ids[start : start + ID_LIST]
            params = {"_id": ",".join(chunk), "_count": str(len(chunk))}
            resp = await self.client.call("GET", f"/{resource_type}", params=params)
            for entry in (resp.body or {}).get("entry") or []:
                resource = entry.get("resource") or {}
                found[str(resource.get("id"))] = resource
        return found


class HeadquartersSource:
    """Headquarters' administrative data as this clinic may have it: the global App's
    `$pull-changes` and `$pull-read` (docs/pull.md, "The operations")."""

    max_probe: int | None = HEADQUARTERS_MAX_PROBE

    def __init__(self, client: AidboxClient) -> None:
        self.client = client

    async def bound(self, resource_type: str, *, settle: bool) -> tuple[int, bool]:
        """Headquarters' settled bound, and whether a newer head still waits to settle."""
        params = {"type": resource_type, **({"settle": "true"} if settle else {})}
        resp = await self.client.call("GET", "/$pull-changes", params=params)
        body = resp.body if isinstance(resp.body, dict) else {}
        return int(body.get("version", 0)), bool(body.get("pending"))

    async def head(self, resource_type: str) -> int:
        """The settled bound: all this clinic may read of headquarters."""
        return (await self.bound(resource_type, settle=False))[0]

    async def changes(
        self, resource_type: str, lo: int, hi: int, count: int, *, probe: bool
    ) -> list[Any]:
        """The window (lo, hi], one entry per change of headquarters' own `$changes`; what
        this clinic may not have comes as a deletion."""
        params = {"type": resource_type, **_window(lo, hi, count, probe)}
        resp = await self.client.call("GET", "/$pull-changes", params=params)
        return _changes_list(resource_type, resp.status, resp.body)

    async def current(self, resource_type: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Headquarters' current state of each id this clinic may have, by id."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ID_LIST):
            chunk = ids[start : start + ID_LIST]
            params = {"type": resource_type, "_id": ",".join(chunk)}
            resp = await self.client.call("GET", "/$pull-read", params=params)
            for resource in (resp.body or {}).get("resources") or []:
                found[str(resource.get("id"))] = resource
        return found


class HeadquartersBound:
    """Headquarters' settled bound, as the global App proves it. One bound covers every type
    (txids are headquarters-wide); it is asked through a type this clinic pulls, which the
    global App authorizes."""

    def __init__(self, source: HeadquartersSource) -> None:
        self._source = source
        self.settled = 0
        self.pending = False

    async def ask(self, resource_type: str, *, settle: bool) -> int:
        """The bound now (never decreases); with `settle`, once the transactions open at
        headquarters now have ended (headquarters bounds that wait itself)."""
        bound, self.pending = await self._source.bound(resource_type, settle=settle)
        self.settled = max(self.settled, bound)
        return self.settled
