"""One transaction holding more changes of a type than a page (app/sync/feed.py): counted by
its ids, in reads no larger than the source answers, then read by id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from app.sync.feed import ChangeFeed, FeedError

TXID = 10


class OneTransaction:
    """A source (an Aidbox end) whose only change is one transaction of `size` Patients at
    txid 10; it refuses id-only reads larger than `max_probe`, as headquarters' `$pull-changes`
    refuses a `_count` above its limit (docs/pull.md)."""

    def __init__(self, size: int, max_probe: int | None) -> None:
        self.ids = [f"p{n:05d}" for n in range(size)]
        self.max_probe = max_probe
        self.asked: list[int] = []

    async def head(self, resource_type: str) -> int:
        return TXID

    async def changes(
        self, resource_type: str, lo: int, hi: int, count: int, *, probe: bool
    ) -> list[Any]:
        if probe:
            self.asked.append(count)
            if self.max_probe is not None and count > self.max_probe:
                raise AssertionError(f"_count {count} above the source's limit")
        if not lo < TXID <= hi:
            return []
        meta = {"versionId": str(TXID)}
        resources = [{"resourceType": resource_type, "id": i, "meta": meta} for i in self.ids]
        if probe:
            resources = [{"resourceType": resource_type, "id": i} for i in self.ids]
        return [{"event": "created", "resource": r} for r in resources[:count]]

    async def current(self, resource_type: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        meta = {"versionId": str(TXID)}
        return {i: {"resourceType": resource_type, "id": i, "meta": meta} for i in ids}


async def _read(source: OneTransaction) -> list[str]:
    read = []
    async for _, changes in ChangeFeed(source, "Patient", page_size=5).windows(0, TXID):
        read += [c.id for c in changes]
    return read


async def test_a_transaction_within_the_sources_limit_is_read_whole_once() -> None:
    source = OneTransaction(size=35, max_probe=40)
    assert await _read(source) == source.ids
    assert max(source.asked) == 40  # 6, 24, then the limit, not 96


async def test_a_transaction_beyond_the_sources_limit_stops_with_an_error_that_says_so() -> None:
    source = OneTransaction(size=90, max_probe=40)
    with pytest.raises(FeedError, match="one transaction holds 40 changes or more"):
        await _read(source)


async def test_a_source_without_a_limit_is_read_however_large_the_transaction() -> None:
    source = OneTransaction(size=700, max_probe=None)
    assert await _read(source) == source.ids
