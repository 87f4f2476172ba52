"""read_ahead (app/sync/feed.py): the next window is fetched while the caller works on the
current one, and no more than that."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from app.sync.feed import read_ahead


class Source:
    """Yields 0, 1, 2, ... and records what it produced and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.produced: list[int] = []
        self.closed = False

    async def items(self) -> AsyncGenerator[int, None]:
        try:
            for i in range(self.n):
                await asyncio.sleep(0)  # a request to the source
                if i == self.fail_at:
                    raise RuntimeError(f"source failed at {i}")
                self.produced.append(i)
                yield i
        finally:
            self.closed = True


async def _settle() -> None:
    for _ in range(20):  # let the fetch task run as far as it may
        await asyncio.sleep(0)


async def test_one_item_is_fetched_ahead_and_no_more() -> None:
    source = Source(10)
    seen = []
    async with contextlib.aclosing(read_ahead(source.items())) as items:
        async for item in items:
            await _settle()
            # while the caller holds `item`, only the next one may exist already
            assert source.produced[-1] <= item + 1
            seen.append(item)
    assert seen == list(range(10))
    assert source.closed


async def test_an_error_of_the_source_comes_after_the_items_before_it() -> None:
    source = Source(10, fail_at=3)
    seen = []
    with pytest.raises(RuntimeError, match="source failed at 3"):
        async for item in read_ahead(source.items()):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert source.closed


async def test_a_caller_that_stops_early_closes_the_source() -> None:
    source = Source(10)
    async with contextlib.aclosing(read_ahead(source.items())) as items:
        async for item in items:
            if item == 2:
                break
    await _settle()
    assert source.closed
    assert source.produced[-1] <= 3
