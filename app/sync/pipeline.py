"""Writes batches to the target and checkpoints each, overlapped but checkpointed in order.

A push run alternates two writes to two servers: a transaction to the global, then the
checkpoint in the clinic. Done one after the other, the global waits for every checkpoint and
for every round trip; the pipeline keeps up to `depth` batches in flight while the checkpoint
of the last acknowledged one is saved, without giving up the rule that a checkpoint never
passes an unacknowledged change (README, "How push works").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.model import Counters
from app.sync.bundle import Footprint

Payload = TypeVar("Payload")


log = logging.getLogger("aidbox_sync.pipeline")


@dataclass
class _Flight:
    """A batch on its way: its write, the checkpoint it allows, and what it touches."""

    task: asyncio.Task[Counters]
    upper: int
    footprint: Footprint | None


class Pipeline(Generic[Payload]):
    """Writes batches to the target, up to `depth` at once, and saves a checkpoint after each.

    Under four rules:
    - batches in flight together never clash (their footprints), so the order in which they
      commit cannot change what the target holds; a batch that clashes waits for the one it
      clashes with;
    - checkpoints are saved in the order of the batches, each once its batch and every one
      before it is acknowledged, one at a time: a failed write stops every later checkpoint;
    - a checkpoint that fails (If-Match: another runner took the stream, or the checkpoint was
      reset) cancels every write in flight at once;
    - writes only overlap a checkpoint while the stream's lease, renewed by the last saved
      checkpoint, has at least `overlap_for` seconds left to run; after a slow write they go
      one after the other again, so no write starts on a lease another runner may have taken.

    With `save_every`, a checkpoint is saved at most that often (seconds): the ones between are
    folded into the next, and the last is always saved. A checkpoint saved later never passes
    an unacknowledged write; it only means a longer replay after a crash. Pull wants it: its
    checkpoints and its writes go to the same Aidbox, which does both on one machine.
    """

    def __init__(
        self,
        write: Callable[[Payload], Awaitable[Counters]],
        save: Callable[[int, Counters], Awaitable[None]],
        *,
        overlap_for: float,
        save_every: float = 0.0,
        depth: int = 1,
    ) -> None:
        self._write = write
        self._save = save
        self._overlap_for = overlap_for
        self._save_every = save_every
        self._depth = depth
        self._last_save = -float("inf")
        self._unsaved: tuple[int, Counters] | None = None  # acknowledged, its save folded
        self._flights: deque[_Flight] = deque()  # oldest first
        self._failed = False  # a write failed: nothing after it is checkpointed
        self._saving: asyncio.Task[None] | None = None
        # When the lease was last confirmed (the claim just before the first submit, then
        # each saved checkpoint); construction time is earlier than the claim, so it is safe.
        self._confirmed = time.monotonic()

    @property
    def idle(self) -> bool:
        """Nothing was submitted yet."""
        return not self._flights and self._saving is None

    def _refusal(self) -> BaseException | None:
        """The error of the last checkpoint, if it failed."""
        task = self._saving
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def _after_save(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        if task.exception() is None:
            self._confirmed = time.monotonic()
        else:
            for flight in self._flights:  # no write beside a refused checkpoint may land
                flight.task.cancel()

    def _lease_old(self) -> bool:
        return time.monotonic() - self._confirmed > self._overlap_for

    async def _retire(self) -> tuple[int, Counters]:
        """Wait for the oldest write in flight and for the checkpoint before it; returns what
        the write covered, for its own checkpoint."""
        # Still listed while awaited: a checkpoint refused meanwhile cancels it too.
        flight = self._flights[0]
        try:
            counters = await flight.task
        except asyncio.CancelledError:
            self._failed = True
            current = asyncio.current_task()
            refusal = self._refusal()
            if refusal is not None and not (current and current.cancelling()):
                raise refusal from None  # the cause: a checkpoint was refused
            raise
        except BaseException:
            self._failed = True  # no checkpoint may pass it
            raise
        finally:
            self._flights.popleft()
        await self._saved()
        return flight.upper, counters

    def _checkpoint(self, written: tuple[int, Counters] | None, *, now: bool = False) -> None:
        """Save the checkpoint of what was acknowledged (with what earlier folded saves
        covered), unless it is folded into the next one (`save_every`); `now` saves it."""
        if self._unsaved is not None:
            upper, counters = written if written is not None else (self._unsaved[0], Counters())
            written, self._unsaved = (upper, self._unsaved[1].add(counters)), None
        if written is None:
            return
        if not now and time.monotonic() - self._last_save < self._save_every:
            self._unsaved = written
            return
        self._last_save = time.monotonic()
        self._saving = asyncio.create_task(self._save(*written))
        self._saving.add_done_callback(self._after_save)

    def _must_wait(self, footprint: Footprint | None) -> bool:
        """Whether a batch touching `footprint` must wait for the oldest write in flight."""
        if not self._flights:
            return False
        if len(self._flights) >= self._depth or self._lease_old():
            return True
        return footprint is None or any(
            f.footprint is None or footprint.clashes(f.footprint) for f in self._flights
        )

    async def submit(self, batch: Payload, upper: int, footprint: Footprint | None = None) -> None:
        """Send `batch` as soon as the rules allow; `upper` is the checkpoint to save once it
        and every batch before it are written. Without a footprint it waits for every batch
        before it."""
        written = None
        while self._must_wait(footprint):
            self._checkpoint(written)
            written = await self._retire()
        if written is not None and self._lease_old():
            self._checkpoint(written, now=True)  # the lease is getting old: renew it first
            written = None
            await self._saved()
        # The write goes first: the target must not wait for the clinic's checkpoint.
        task = asyncio.create_task(self._write(batch))
        self._flights.append(_Flight(task, upper, footprint))
        self._checkpoint(written)
        await asyncio.sleep(0)  # both start before the caller reads the next window

    async def _saved(self) -> None:
        if self._saving is not None:
            await self._saving

    async def _retire_all(self) -> tuple[int, Counters] | None:
        """Retire every write in flight, in order, checkpointing all but the last, which is
        returned (None if nothing was in flight)."""
        written = None
        while self._flights:
            self._checkpoint(written)
            written = await self._retire()
        return written

    async def finish(self) -> None:
        """Wait until every submitted batch is written and checkpointed."""
        self._checkpoint(await self._retire_all(), now=True)
        await self._saved()

    async def drain(self) -> None:
        """After a failure: let what is in flight end, so every acknowledged write keeps its
        checkpoint, up to the first that failed. Errors met here are the caller's failure
        again, or a consequence of it."""
        written = None
        with _dropped():
            while self._flights and not self._failed:
                self._checkpoint(written)
                written = None
                written = await self._retire()
        later = [flight.task for flight in self._flights]
        if later:  # after a failed one: they end, but checkpoint nothing
            # Still listed while awaited: a run cancelled meanwhile cancels them (``cancel``).
            await asyncio.wait(later)
            for task in later:
                if not task.cancelled():
                    task.exception()  # retrieved: asyncio must not log it with its arguments
            self._flights.clear()
        with _dropped():
            self._checkpoint(written, now=True)
        with _dropped():
            await self._saved()
        if self._unsaved is not None:  # folded into a save that the failure stopped
            with _dropped():
                self._checkpoint(None, now=True)
                await self._saved()

    def cancel(self) -> None:
        """Stop whatever is still in flight; failures nobody awaited are dropped here, so
        asyncio never logs them with their arguments."""
        for task in (*(f.task for f in self._flights), self._saving):
            if task is None:
                continue
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # marks it retrieved


@contextlib.contextmanager
def _dropped() -> Iterator[None]:
    """Swallow an error the caller already reports (its type goes to the debug log)."""
    try:
        yield
    except Exception as exc:
        log.debug("while draining the pipeline: %s", type(exc).__name__)
