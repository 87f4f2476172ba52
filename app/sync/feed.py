"""Reads the changes of one resource type from a source's Changes API (source.py: the clinic's
own Aidbox for push, headquarters through the global App for pull).

Only settled windows (lo, hi] are read (see watermark.py), so a window's content can shrink
(a resource updated again moves to a later txid) but never grow. A window that holds more than
a page is split by txid until each part fits a page, then read once; this needs no assumption
about the order of `changes` in a page, which the documentation does not state
(api/other/changes-api.md: `version=lo,hi` is lo-exclusive, hi-inclusive; 304 when nothing
changed). How many changes a window holds is learned as the feed goes: while it knows nothing
(at the start, after an empty window or a large transaction) it counts with an id-only probe
(`omit-resources`); once it has read a window, it cuts the next from the density it saw and
reads it at once, and only a page that overflows (read again, split) costs a second request.
So a backlog is read in about one request per page, and no request covers more of the
remaining range than the next page's share of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from app.errors import SyncError

Event = Literal["created", "updated", "deleted"]


class ChangeId(NamedTuple):
    """Which change a write comes from: enough to log or quarantine it, and no body."""

    resource_type: str
    id: str
    version: int

    @property
    def reference(self) -> str:
        """`Type/id`, as a quarantine record names the resource (`resourceId`)."""
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True)
class Change:
    """One change event: the resource's state after the event (Aidbox format)."""

    event: Event
    resource_type: str
    id: str
    version: int
    resource: dict[str, Any]

    @property
    def deleted(self) -> bool:
        """A delete event: the target must remove the resource."""
        return self.event == "deleted"

    def identity(self) -> ChangeId:
        """The change without its body."""
        return ChangeId(self.resource_type, self.id, self.version)


class FeedError(SyncError):
    """The Changes API answered something this reader cannot use."""


class ChangeSource(Protocol):
    """An Aidbox end a stream reads (source.py)."""

    # The most entries one id-only read may ask for, if the source has a limit.
    max_probe: int | None

    async def head(self, resource_type: str) -> int:
        """The type's latest version this reader may read up to."""

    async def changes(
        self, resource_type: str, lo: int, hi: int, count: int, *, probe: bool
    ) -> list[Any]:
        """The raw `changes` entries of the window (lo, hi], at most `count`; with `probe`,
        resources reduced to their ids (`omit-resources`)."""

    async def current(self, resource_type: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current state of each id that exists, by id."""


# Aidbox's storage statuses (database/overview.md); a recreated resource is, for the target,
# an update.
_EVENTS: dict[str, Event] = {
    "created": "created",
    "updated": "updated",
    "recreated": "updated",
    "deleted": "deleted",
}


# The event of an entry headquarters' App answers in place of a change the calling clinic may
# not learn of, not even its id (another clinic's resource, app/registry/pull.py): it counts
# toward its window, as the change it replaces would, and is no change.
HIDDEN = "hidden"


def _hidden(item: Any) -> bool:
    return isinstance(item, dict) and item.get("event") == HIDDEN


def _to_change(resource_type: str, item: Any, upper: int) -> tuple[Change, bool]:
    """A change and whether its version is known (deleted entries may carry no versionId;
    they are then placed at the window's upper bound)."""
    resource = item.get("resource") if isinstance(item, dict) else None
    event = _EVENTS.get(item.get("event")) if isinstance(item, dict) else None
    if event is None or not isinstance(resource, dict) or not resource.get("id"):
        raise FeedError(f"{resource_type} $changes entry without a known event or an id")
    version_id = (resource.get("meta") or {}).get("versionId")
    version = int(version_id) if version_id else upper
    return Change(event, resource_type, resource["id"], version, resource), bool(version_id)


def latest_per_resource(changes: list[Change]) -> list[Change]:
    """Collapse several changes of one id to the latest, oldest first."""
    latest: dict[str, Change] = {}
    for change in changes:
        kept = latest.get(change.id)
        if kept is None or change.version >= kept.version:
            latest[change.id] = change
    return sorted(latest.values(), key=lambda c: c.version)


def _reach(page_size: int, density: float | None, quiet: int) -> int | None:
    """How many txids a probe may cover while nothing is known of the density: as many as
    should hold nine tenths of a page at one change per txid (as writes of one resource at a
    time give), or after an empty window twice its width (a quiet stretch is crossed in a
    few probes, each no wider than needed). None once a window overflowed: its parts are
    counted as they are."""
    if density is None:
        return max(1, int(page_size * 0.9))
    if density == 0:
        return max(1, 2 * quiet)
    return None


def split_point(lo: int, hi: int, page_size: int, density: float | None) -> int:
    """Where to cut a window (lo, hi] that holds more than a page: after as many txids as
    should hold nine tenths of a page at the density last seen, so that windows come close
    to a full page, but never past the middle (the estimate is then too low: halving is
    surer). Before any window was read, one change per txid is assumed, as writes of one
    resource at a time give. After an empty window (density 0) nothing is assumed: halving
    crosses a long quiet stretch in a few probes, where any fixed span would take thousands.
    Any cut is correct; a good one only saves probes.
    """
    middle = (lo + hi) // 2
    if density == 0:
        return middle
    per_txid = 1.0 if density is None else density
    span = int(page_size * 0.9 / per_txid)
    return lo + max(1, min(span, middle - lo))


async def read_current(source: ChangeSource, resource_type: str, resource_id: str) -> Change | None:
    """A resource's current state at the source as an update, or None if it is gone."""
    resource = (await source.current(resource_type, [resource_id])).get(resource_id)
    if resource is None:
        return None
    version = int((resource.get("meta") or {}).get("versionId") or 0)
    return Change("updated", resource_type, resource_id, version, resource)


T = TypeVar("T")


async def read_ahead(items: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """`items`, with the next one fetched while the caller works on the current one.

    The source serves the next page in its own process while this one anonymizes and writes the
    last: the two overlap instead of taking turns. One item is held ahead, no more (a page of
    bodies: memory stays bounded). An error of the source reaches the caller in order, after
    the items before it; when the caller stops early, the fetch under way is cancelled."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=1)

    async def fetch() -> None:
        try:
            async for item in items:
                await queue.put((True, item))
                await queue.join()  # the next is fetched once the caller has taken this one
        except Exception as exc:
            await queue.put((False, exc))
            return
        finally:
            await items.aclose()  # also when cancelled while it waits for the caller
        await queue.put((False, None))

    fetcher = asyncio.create_task(fetch())
    try:
        while True:
            more, item = await queue.get()
            queue.task_done()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
            del item  # the caller may free what it was given (a page of bodies)
    finally:
        fetcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetcher


class ChangeFeed:
    """Changes of one resource type in the local Aidbox."""

    def __init__(self, source: ChangeSource, resource_type: str, page_size: int = 1000) -> None:
        self._source = source
        self.resource_type = resource_type
        self.page_size = page_size

    async def head(self) -> int:
        """The type's latest version at the source."""
        return await self._source.head(self.resource_type)

    async def _changes(self, lo: int, hi: int, count: int, *, probe: bool) -> list[Any]:
        return await self._source.changes(self.resource_type, lo, hi, count, probe=probe)

    async def _page(self, lo: int, hi: int, count: int) -> tuple[int, list[tuple[Change, bool]]]:
        """How many entries the window's page holds, and its changes."""
        entries = await self._changes(lo, hi, count, probe=False)
        changes = [_to_change(self.resource_type, i, hi) for i in entries if not _hidden(i)]
        return len(entries), changes

    async def _size(self, lo: int, hi: int) -> int:
        """How many changes the window holds, or page_size + 1 for "more than a page"."""
        return len(await self._changes(lo, hi, self.page_size + 1, probe=True))

    async def _current(self, resource_id: str, upper: int) -> Change:
        """The resource's state now, as a change (a delete if it is gone)."""
        return (await self._current_states([resource_id], upper))[0]

    async def _collapse(self, page: list[tuple[Change, bool]], upper: int) -> list[Change]:
        """One change per resource. When a resource has several entries and one of them has no
        version (a delete), their order is unknown, so the source's current state decides."""
        entries: dict[str, list[tuple[Change, bool]]] = {}
        for change, exact in page:
            entries.setdefault(change.id, []).append((change, exact))
        ambiguous = [
            rid for rid, items in entries.items() if len(items) > 1 and not all(e for _, e in items)
        ]
        resolved = [await self._current(rid, upper) for rid in ambiguous]
        plain = [c for rid, items in entries.items() if rid not in ambiguous for c, _ in items]
        return latest_per_resource(plain + resolved)

    async def _large_transaction(
        self, a: int, b: int
    ) -> AsyncIterator[tuple[int | None, list[Change]]]:
        """The window (a, b] of one transaction larger than a page, a page at a time: its ids
        first (ids only, `omit-resources`), then the current state of each, by `_id` lists.
        Every part but the last is yielded with upper None: the window is not complete."""
        count, limit = self.page_size + 1, self._source.max_probe
        while len(probe := await self._changes(a, b, count, probe=True)) >= count:
            if limit is not None and count >= limit:
                raise FeedError(
                    f"{self.resource_type}: one transaction holds {limit:,} changes or more, "
                    "more than the source answers at once; split such a load into smaller "
                    "transactions"
                )
            count *= 4  # ids only: small, however large the transaction
            if limit is not None:
                count = min(count, limit)
        ids = sorted(
            {str((item.get("resource") or {}).get("id")) for item in probe if not _hidden(item)}
        )
        del probe
        if not ids:  # all of it hidden: the window is complete, and empty for this reader
            yield b, []
        for start in range(0, len(ids), self.page_size):
            part = await self._current_states(ids[start : start + self.page_size], b)
            yield (b if start + self.page_size >= len(ids) else None), part

    async def _current_states(self, ids: list[str], upper: int) -> list[Change]:
        """The source's current state of each id, as changes (a delete for one that is gone)."""
        found = await self._source.current(self.resource_type, ids)
        out = []
        for rid in ids:
            resource = found.get(rid)
            if resource is None:
                stub = {"resourceType": self.resource_type, "id": rid}
                out.append(Change("deleted", self.resource_type, rid, upper, stub))
            else:
                version = int((resource.get("meta") or {}).get("versionId") or upper)
                out.append(Change("updated", self.resource_type, rid, version, resource))
        return out

    async def windows(self, lo: int, hi: int) -> AsyncIterator[tuple[int | None, list[Change]]]:
        """Changes in the settled window (lo, hi] as consecutive sub-windows, oldest first.

        Yields `(upper, changes)`: every change up to `upper` has been yielded once the pair is
        consumed, so a caller may checkpoint at `upper`. One change per resource per pair. The
        list is the caller's: emptying it leaves no body of the window held here. A window of
        one transaction larger than a page comes in parts; all but its last have upper None
        (more of the window follows: no checkpoint may pass it yet).
        """
        windows = [(lo, hi)] if hi > lo else []
        density: float | None = None  # changes per txid in the last window read
        measured = False  # density was measured by a page read (not a bound, nor a guess)
        quiet = 0  # txids of the last empty window
        width = 0  # txids of the last window read
        while windows:
            a, b = windows.pop()
            if density and measured:  # a window it says is too large is cut unread
                # ... and one more than twice as wide as the last is cut too: a density seen
                # on a sparse stretch says nothing of a bulk load that may follow it.
                if b - a > 1 and (density * (b - a) > self.page_size or b - a > 2 * width):
                    cut = min(split_point(a, b, self.page_size, density), a + 2 * width)
                    windows += [(cut, b), (a, cut)]
                    continue
            else:  # nothing known: count first, with a cheap id-only probe
                # ... of no more txids than it can use: a count covers its whole window at the
                # source, so a probe of the whole backlog would cost as much as reading it.
                reach = _reach(self.page_size, density, quiet)
                if reach is not None and b - a > reach:
                    windows += [(a + reach, b), (a, a + reach)]
                    continue
                size = await self._size(a, b) if b - a > 1 else None
                if size is not None and size > self.page_size:
                    cut = split_point(a, b, self.page_size, density)
                    windows += [(cut, b), (a, cut)]
                    continue
                if size == 0:
                    density, quiet = 0.0, b - a  # settled and empty: it stays so, no page
                    yield b, []
                    continue
            count = self.page_size + 1  # one more than a page: "full" means "more than a page"
            entries, page = await self._page(a, b, count)
            if entries >= count:
                page.clear()
                if b - a > 1:
                    # Denser than the last window: split with the density this one showed at
                    # least, and count the parts before reading them (ids only: an
                    # overflowing page of bodies costs more than a probe).
                    density, measured = count / (b - a), False
                    cut = split_point(a, b, self.page_size, density)
                    windows += [(cut, b), (a, cut)]
                    continue
                # One transaction wrote more resources of this type than a page holds: a
                # single txid cannot be split by version, so it is read in parts of a page.
                async with contextlib.aclosing(self._large_transaction(a, b)) as parts:
                    async for part in parts:
                        yield part
                density = None
                continue
            density, measured, width = entries / (b - a), True, b - a
            if not entries:
                quiet = b - a
            changes = await self._collapse(page, b)
            page.clear()  # from here the bodies are only in `changes`, which the caller owns
            yield b, changes
