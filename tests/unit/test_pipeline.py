"""The write pipeline's ordering rules: checkpoints follow their writes, in order, and a failure
stops everything after it (app/sync/pipeline.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest

from app.model import Counters
from app.sync.bundle import Footprint
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

    def pipeline(
        self, overlap_for: float = 60, save_every: float = 0, depth: int = 1
    ) -> Pipeline[str]:
        return Pipeline(
            self.write, self.save, overlap_for=overlap_for, save_every=save_every, depth=depth
        )


def writes(*ids: str, creates: tuple[str, ...] = ()) -> Footprint:
    """A batch writing Patients `ids`, which may create the Patients `creates` if absent."""
    return Footprint(
        frozenset(("Patient", i) for i in ids), frozenset(("Patient", i) for i in creates)
    )


async def b_beside_checkpoint_10(sides: Sides) -> Pipeline[str]:
    """Batch a written and acknowledged; batch b sent while checkpoint 10 is being saved."""
    pipeline = sides.pipeline()
    await pipeline.submit("a", 10)
    sides.open("write a")
    await pipeline.submit("b", 20)
    return pipeline


async def a_and_b_side_by_side(sides: Sides) -> Pipeline[str]:
    """Two transactions in flight: batch a (Patient p1), then batch b (p2) beside it."""
    pipeline = sides.pipeline(depth=2)
    await pipeline.submit("a", 10, writes("p1"))
    await pipeline.submit("b", 20, writes("p2"))
    return pipeline


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition()` holds (each step yields once, no timers)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _idle() -> None:
    """Let every task that can run, run, until all wait on a gate (no gate opens by itself)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_checkpoint_k_is_saved_while_batch_k_plus_1_is_written() -> None:
    sides = Sides()
    pipeline = await b_beside_checkpoint_10(sides)
    # Batch b is on its way while checkpoint 10 is being saved; the global goes first.
    assert "start write b" in sides.log and "start save 10" in sides.log
    assert sides.log.index("end write a") < sides.log.index("start write b")
    assert sides.log.index("start write b") < sides.log.index("start save 10")
    sides.open("save 10", "write b", "save 20")
    await pipeline.finish()
    assert sides.saved == [10, 20]


async def test_a_batch_waits_for_the_checkpoint_before_the_previous_one() -> None:
    # At most one acknowledged batch may be ahead of the saved checkpoint.
    sides = Sides()
    pipeline = await b_beside_checkpoint_10(sides)
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
    pipeline = sides.pipeline()
    await pipeline.submit("a", 10)
    sides.open("write a", "save 10")
    await pipeline.submit("b", 20)
    sides.open("write b")
    with pytest.raises(RuntimeError, match="write b"):
        await pipeline.submit("c", 30)
    await pipeline.drain()
    assert sides.saved == [10]  # the checkpoint of the acknowledged batch, not past it
    assert "start write c" not in sides.log


async def test_a_failed_write_waits_for_the_checkpoint_still_being_saved() -> None:
    # The run records its failure only after the checkpoint of batch a is saved, or the two
    # writes of ChangesInfo would race.
    sides = Sides()
    sides.failing.add("write b")
    pipeline = await b_beside_checkpoint_10(sides)
    sides.open("write b")  # fails while checkpoint 10 is still being saved

    async def drain() -> None:
        await pipeline.drain()
        sides.log.append("drained")

    drained = asyncio.create_task(drain())
    await _until(lambda: "fail write b" in sides.log)
    sides.open("save 10")
    await drained
    assert sides.log.index("end save 10") < sides.log.index("drained")
    assert sides.saved == [10]


async def test_a_refused_checkpoint_cancels_the_write_beside_it() -> None:
    # Refused by If-Match: another runner may own the stream now, so the batch written beside
    # the checkpoint must not land, and the run ends with the refusal as its cause.
    sides = Sides()
    sides.failing.add("save 10")
    pipeline = await b_beside_checkpoint_10(sides)
    sides.open("save 10")
    await _until(lambda: "cancelled write b" in sides.log)
    with pytest.raises(RuntimeError, match="save 10"):
        await pipeline.submit("c", 30)
    await pipeline.drain()
    sides.open("write b")
    assert sides.saved == []
    assert "end write b" not in sides.log and "start write c" not in sides.log


async def test_an_old_lease_is_renewed_before_the_next_write() -> None:
    # With no lease time to spare, checkpoint and next write go one after the other.
    sides = Sides()
    pipeline = sides.pipeline(overlap_for=0)
    await pipeline.submit("a", 10)
    sides.open("write a", "save 10", "write b", "save 20")
    await pipeline.submit("b", 20)
    await pipeline.finish()
    assert sides.log.index("end save 10") < sides.log.index("start write b")
    assert sides.saved == [10, 20]


async def test_drain_after_a_failure_elsewhere_saves_the_acknowledged_batch() -> None:
    # Reading or anonymizing the next batch failed: the batch in flight still gets its
    # checkpoint once acknowledged, so the next run does not send it again.
    sides = Sides()
    pipeline = sides.pipeline()
    await pipeline.submit("a", 10)
    sides.open("write a", "save 10")
    await pipeline.drain()
    assert sides.saved == [10]


async def test_cancel_stops_the_write_and_the_checkpoint_in_flight() -> None:
    sides = Sides()
    pipeline = await b_beside_checkpoint_10(sides)
    pipeline.cancel()
    await _until(lambda: {"cancelled write b", "cancelled save 10"} <= set(sides.log))
    sides.open("write b", "save 10")
    assert "end write b" not in sides.log and sides.saved == []


async def test_cancel_leaves_no_unretrieved_failure_for_asyncio_to_log() -> None:
    # asyncio would log a task's unretrieved exception with its arguments, bypassing the
    # stream's rule that only our own errors are logged in full.
    reported: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: reported.append(context["message"])
    )
    sides = Sides()
    sides.failing.add("write a")
    pipeline = sides.pipeline()
    await pipeline.submit("a", 10)
    sides.open("write a")
    await _until(lambda: "fail write a" in sides.log)
    pipeline.cancel()  # the run was cancelled while preparing the next batch
    del pipeline
    gc.collect()
    assert reported == []


async def test_checkpoints_saved_at_most_so_often_fold_into_the_next_and_the_last_is_saved() -> (
    None
):
    sides = Sides()
    sides.open("write a", "write b", "write c", "save 10", "save 30")
    pipeline = sides.pipeline(save_every=3600)
    for batch, upper in (("a", 10), ("b", 20), ("c", 30)):
        await pipeline.submit(batch, upper)
    await pipeline.finish()
    assert sides.saved == [10, 30]  # the first, then the last, which covers the one between


async def test_a_failure_still_saves_a_folded_checkpoint_of_acknowledged_writes() -> None:
    sides = Sides()
    sides.failing.add("write c")
    sides.open("write a", "write b", "write c", "save 10", "save 20")
    pipeline = sides.pipeline(save_every=3600)
    await pipeline.submit("a", 10)
    await pipeline.submit("b", 20)
    with pytest.raises(RuntimeError, match="write c"):
        await pipeline.submit("c", 30)
        await pipeline.finish()
    await pipeline.drain()
    assert sides.saved == [10, 20]  # b was acknowledged: its checkpoint is kept, c's is not


# Two transactions in flight (depth 2): they never clash, and checkpoints stay in order.


async def test_batches_that_touch_different_resources_are_written_side_by_side() -> None:
    sides = Sides()
    pipeline = await a_and_b_side_by_side(sides)
    assert {"start write a", "start write b"} <= set(sides.log)
    third = asyncio.create_task(pipeline.submit("c", 30, writes("p3")))
    sides.open("write b")  # b is acknowledged before a: its checkpoint waits for a
    await _until(lambda: "end write b" in sides.log)
    assert "start write c" not in sides.log  # two in flight at most, a still among them
    assert not third.done() and sides.saved == []
    sides.open("write a", "save 10", "save 20", "write c", "save 30")
    await third
    await pipeline.finish()
    assert sides.saved == [10, 20, 30]


@pytest.mark.parametrize(
    "second",
    [writes("p1"), writes("p9", creates=("p1",)), writes("p5")],
    ids=[
        "writes the same resource",
        "may create what the first writes",
        "writes what the first may create",
    ],
)
async def test_a_batch_that_clashes_with_the_one_in_flight_waits_for_it(
    second: Footprint,
) -> None:
    sides = Sides()
    pipeline = sides.pipeline(depth=2)
    await pipeline.submit("a", 10, writes("p1", creates=("p5",)))
    waiting = asyncio.create_task(pipeline.submit("b", 20, second))
    await _idle()
    assert "start write b" not in sides.log
    sides.open("write a", "save 10")
    await waiting
    assert sides.log.index("end write a") < sides.log.index("start write b")
    sides.open("write b", "save 20")
    await pipeline.finish()
    assert sides.saved == [10, 20]


async def test_batches_that_may_create_the_same_missing_target_do_not_clash() -> None:
    sides = Sides()
    pipeline = sides.pipeline(depth=2)
    await pipeline.submit("a", 10, writes("p1", creates=("p5",)))
    await pipeline.submit("b", 20, writes("p2", creates=("p5",)))
    assert {"start write a", "start write b"} <= set(sides.log)
    sides.open("write a", "write b", "save 10", "save 20")
    await pipeline.finish()
    assert sides.saved == [10, 20]


async def test_a_failed_write_keeps_the_later_one_beside_it_from_being_checkpointed() -> None:
    sides = Sides()
    sides.failing.add("write a")
    pipeline = await a_and_b_side_by_side(sides)
    sides.open("write b", "write a", "save 20")
    with pytest.raises(RuntimeError, match="write a"):
        await pipeline.finish()
    await pipeline.drain()
    assert "end write b" in sides.log  # it landed, but the checkpoint may not pass a
    assert sides.saved == []


async def test_a_refused_checkpoint_cancels_every_write_in_flight() -> None:
    sides = Sides()
    sides.failing.add("save 10")
    pipeline = sides.pipeline(depth=2)
    await pipeline.submit("a", 10, writes("p1"))
    sides.open("write a")
    await pipeline.submit("b", 20, writes("p2"))
    await pipeline.submit("c", 30, writes("p3"))  # beside b, while checkpoint 10 is saved
    sides.open("save 10")
    await _until(lambda: {"cancelled write b", "cancelled write c"} <= set(sides.log))
    with pytest.raises(RuntimeError, match="save 10"):
        await pipeline.finish()
    await pipeline.drain()
    assert sides.saved == []


async def test_a_checkpoint_refused_while_the_oldest_write_is_awaited_cancels_it_too() -> None:
    sides = Sides()
    sides.failing.add("save 10")
    pipeline = await a_and_b_side_by_side(sides)
    sides.open("write a")
    await pipeline.submit("c", 30, writes("p3"))  # a retired; c beside b; checkpoint 10 saved
    d = asyncio.create_task(pipeline.submit("d", 40, writes("p4")))  # waits for b
    await _idle()
    sides.open("save 10")  # refused
    await _until(lambda: {"cancelled write b", "cancelled write c"} <= set(sides.log))
    with pytest.raises(RuntimeError, match="save 10"):
        await d
    await pipeline.drain()
    assert sides.saved == []


async def test_a_run_cancelled_while_draining_cancels_the_writes_it_waited_for() -> None:
    sides = Sides()
    sides.failing.add("write a")
    pipeline = await a_and_b_side_by_side(sides)
    sides.open("write a")
    with pytest.raises(RuntimeError, match="write a"):
        await pipeline.finish()
    drain = asyncio.create_task(pipeline.drain())
    await _idle()  # drain waits for b, which checkpoints nothing
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    pipeline.cancel()  # what the stream does when its run ends
    await _until(lambda: "cancelled write b" in sides.log)
