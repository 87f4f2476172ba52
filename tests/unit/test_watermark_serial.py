"""One Watermark serves concurrent callers (every clinic's pull at headquarters): its
observations must not interleave (app/sync/watermark.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.sync import watermark
from app.sync.watermark import Watermark


async def test_concurrent_advances_observe_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing is open at any time: each observation settles at once. The first caller's
    # activity read is slow; without serialising, the second caller's head would be read
    # after that proof was taken, and settled by it.
    seen: list[str] = []
    head = iter(range(100, 200))
    slow = asyncio.Event()

    async def rows(client: Any, sql: str) -> list[dict[str, Any]]:
        if "transaction_id_seq" in sql:
            seen.append("head")
            return [{"head": next(head), "cache": 1, "at": 1_000}]
        seen.append("proof")
        if not slow.is_set():
            slow.set()
            await asyncio.sleep(0)  # let the other caller run, if it may
            await asyncio.sleep(0)
        seen.append("proved")
        return [{"oldest": None, "hidden": 0}]

    monkeypatch.setattr(watermark, "rows", rows)
    mark = Watermark(client=None)  # type: ignore[arg-type]
    bounds = await asyncio.gather(mark.advance(), mark.advance())
    assert seen == ["head", "proof", "proved"] * 2
    assert bounds == [100, 101]  # each caller's proof settled its own observation only
