"""The write pipeline's ordering rules: checkpoints follow their writes, in order, and a failure
stops everything after it (app/sync/pipeline.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from app.model import Counters
from app.sync.pipeline import Pipeline


class Sides:
    """A global and a clinic whose writes finish when the test says so, logging what happens."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()
        self.saved: list[int] = []

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def _run(self, name: str) -> None:
        self.log.append(f"start {name}")
        try:
            await self.gate(name).wait()
        except asyncio.CancelledError:
            self.log.append(f"cancelled {name}")
            raise
        if name in self.failing:
            self.log.append(f"fail {name}")
            raise RuntimeError(name)
        self.log.append(f"end {name}")

    async def write(self, batch: str) -> Counters:
        await self._run(f"write {batch}")
        return Counters(written=1)

    async def save(self, upper: int, counters: Counters) -> None:
        await self._run(f"save {upper}")
        self.saved.append(upper)

    def open(self, *names: str) -> None:
        for name in names:
            self.gate(name).set()


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition()` holds (each step yields once, no timers)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_checkpoint_k_is_saved_while_batch_k_plus_1_is_written() -> None:
    sides = Sides()
    pipeline = Pipeline(sides.write, sides.save)
    await pipeline.submit("a", 10)
    sides.open("write a")
    await pipeline.submit("b", 20)
    # Batch b is on its way while checkpoint 10 is being saved: neither waits for the other.
    assert "start write b" in sides.log and "start save 10" in sides.log
    assert sides.log.index("end write a") < sides.log.index("start save 10")
    sides.open("save 10", "write b", "save 20")
    await pipeline.finish()
    assert sides.saved == [10, 20]


async def test_a_batch_waits_for_the_checkpoint_before_the_previous_one() -> None:
    # At most one acknowledged batch may be ahead of the saved checkpoint.
    sides = Sides()
    pipeline = Pipeline(sides.write, sides.save)
    await pipeline.submit("a", 10)
    sides.open("write a")
    await pipeline.submit("b", 20)
    sides.open("write b")  # b is acknowledged, but checkpoint 10 is still being saved
    third = asyncio.create_task(pipeline.submit("c", 30))
    await _until(lambda: "end write b" in sides.log)
    sides.open("save 10")
    await third
    assert sides.log.index("end save 10") < sides.log.index("start write c")
    sides.open("save 20", "write c", "save 30")
    await pipeline.finish()
    assert sides.saved == [10, 20, 30]


async def test_a_failed_write_stops_later_batches_and_keeps_earlier_checkpoints() -> None:
    sides = Sides()
    sides.failing.add("write b")
    pipeline = Pipeline(sides.write, sides.save)
    await pipeline.submit("a", 10)
    sides.open("write a", "save 10")
    await pipeline.submit("b", 20)
    sides.open("write b")
    with pytest.raises(RuntimeError, match="write b"):
        await pipeline.submit("c", 30)
    await pipeline.drain()
    assert sides.saved == [10]  # the checkpoint of the acknowledged batch, not past it
    assert "start write c" not in sides.log


async def test_a_failed_checkpoint_stops_later_batches() -> None:
    # A checkpoint refused (If-Match: another runner took the stream) must end the run.
    sides = Sides()
    sides.failing.add("save 10")
    pipeline = Pipeline(sides.write, sides.save)
    await pipeline.submit("a", 10)
    sides.open("write a")
    await pipeline.submit("b", 20)
    sides.open("save 10", "write b")
    with pytest.raises(RuntimeError, match="save 10"):
        await pipeline.submit("c", 30)
    await pipeline.drain()
    assert sides.saved == []
    assert "start write c" not in sides.log and "start save 20" not in sides.log


async def test_drain_after_a_failure_elsewhere_saves_the_acknowledged_batch() -> None:
    # Reading or anonymizing the next batch failed: the batch in flight still gets its
    # checkpoint once acknowledged, so the next run does not send it again.
    sides = Sides()
    pipeline = Pipeline(sides.write, sides.save)
    await pipeline.submit("a", 10)
    sides.open("write a", "save 10")
    await pipeline.drain()
    assert sides.saved == [10]


async def test_cancel_stops_what_is_in_flight() -> None:
    sides = Sides()
    pipeline = Pipeline(sides.write, sides.save)
    await pipeline.submit("a", 10)
    pipeline.cancel()
    await _until(lambda: "cancelled write a" in sides.log)
    sides.open("write a", "save 10")
    assert "end write a" not in sides.log and sides.saved == []
