"""The settled bound's bookkeeping (app/sync/watermark.py), on answers given here: one
Watermark serves concurrent callers (every clinic's pull at headquarters), so its observations
must not interleave; and what holds a bound back is only a transaction that may hold a txid
at or below it."""

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
        if "transaction_id_seq s" in sql:
            seen.append("head")
            return [{"head": next(head), "cache": 1}]
        seen.append("proof")
        if not slow.is_set():
            slow.set()
            await asyncio.sleep(0)  # let the other caller run, if it may
            await asyncio.sleep(0)
        seen.append("proved")
        return [{"holders": None, "oldest": None}]

    monkeypatch.setattr(watermark, "rows", rows)
    mark = Watermark(client=None)  # type: ignore[arg-type]
    bounds = await asyncio.gather(mark.advance(), mark.advance())
    assert seen == ["head", "proof", "proved"] * 2
    assert bounds == [100, 101]  # each caller's proof settled its own observation only


async def test_a_steady_flow_of_overlapping_writers_never_stalls_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every observation is held back by two writers, one of them also holding the next one
    # back: the newest never settles, the older ones do, however many are seen (more than the
    # observations kept: the oldest kept are the next to settle, and are never dropped).
    observed = iter(range(200))
    current: list[int] = [0]

    async def rows(client: Any, sql: str) -> list[dict[str, Any]]:
        if "transaction_id_seq s" in sql:
            current[0] = next(observed)
            return [{"head": 1_000 + current[0], "cache": 1}]
        k = current[0]
        return [{"holders": f"3/{k} 3/{k + 1}", "oldest": 1}]

    monkeypatch.setattr(watermark, "rows", rows)
    mark = Watermark(client=None)  # type: ignore[arg-type]
    bounds = [await mark.advance() for _ in range(200)]
    assert bounds[:2] == [0, 0]
    assert bounds[2:] == [1_000 + k for k in range(198)]  # two behind, all the way
    assert mark.pending


async def test_a_long_writer_holds_back_only_what_it_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A writer open across a hundred observations holds all of them back (its txid may be
    # below any of their heads); once it ends, the newest settles at once, although the
    # observations made meanwhile were more than those kept.
    answers = iter(
        [({"head": 1_000 + k, "cache": 1}, {"holders": "5/77", "oldest": 1}) for k in range(100)]
        + [({"head": 1_100, "cache": 1}, {"holders": None, "oldest": None})]
    )
    pair: list[Any] = []

    async def rows(client: Any, sql: str) -> list[dict[str, Any]]:
        if "transaction_id_seq s" in sql:
            pair[:] = next(answers)
            return [pair[0]]
        return [pair[1]]

    monkeypatch.setattr(watermark, "rows", rows)
    mark = Watermark(client=None)  # type: ignore[arg-type]
    assert {await mark.advance() for _ in range(100)} == {0}
    assert mark.open_since == 1
    assert await mark.advance() == 1_100
    assert not mark.pending and mark.open_since is None


async def test_callers_waiting_for_one_observation_share_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Many clinics ask headquarters' bound at once: those that waited while one observation
    # ran need one begun after their call, and one serves them all (two observations for
    # five callers, not five), each bound proven after its caller asked.
    heads = iter(range(100, 200))
    observed: list[int] = []

    async def rows(client: Any, sql: str) -> list[dict[str, Any]]:
        if "transaction_id_seq s" in sql:
            observed.append(next(heads))
            return [{"head": observed[-1], "cache": 1}]
        await asyncio.sleep(0)
        return [{"holders": None, "oldest": None}]

    monkeypatch.setattr(watermark, "rows", rows)
    mark = Watermark(client=None)  # type: ignore[arg-type]
    bounds = await asyncio.gather(*(mark.advance() for _ in range(5)))
    assert observed == [100, 101]
    assert bounds == [100, 101, 101, 101, 101]
