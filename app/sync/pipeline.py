"""Writes batches to the global and checkpoints each, overlapped but strictly in order.

A push run alternates two writes to two servers: a transaction to the global, then the
checkpoint in the clinic. Done one after the other, the global waits for every checkpoint;
the pipeline saves checkpoint k while batch k+1 is written, without giving up the rule that
a checkpoint never passes an unacknowledged change (README, "How push works").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from app.model import Counters

Payload = TypeVar("Payload")


log = logging.getLogger("aidbox_sync.pipeline")


class Pipeline(Generic[Payload]):
    """Writes batches to the global and saves a checkpoint after each, overlapped but in order.

    The checkpoint of batch k is saved while batch k+1 is written, under three rules:
    - batch k+1 is only sent once batch k is acknowledged and checkpoint k-1 is saved, so a
      failed write stops every later one and the saves trail the writes by one batch at most;
    - a checkpoint that fails (If-Match: another runner took the stream, or the checkpoint was
      reset) cancels the write running beside it at once;
    - the two only overlap while the stream's lease, renewed by the last saved checkpoint, has
      at least `overlap_for` seconds left to run; after a slow write they go one after the other
      again, so no write starts on a lease that another runner may already have taken.

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
    ) -> None:
        self._write = write
        self._save = save
        self._overlap_for = overlap_for
        self._save_every = save_every
        self._last_save = -float("inf")
        self._unsaved: tuple[int, Counters] | None = None  # acknowledged, its save folded
        self._writing: asyncio.Task[Counters] | None = None
        self._upper = 0
        self._saving: asyncio.Task[None] | None = None
        # When the lease was last confirmed (the claim just before the first submit, then
        # each saved checkpoint); construction time is earlier than the claim, so it is safe.
        self._confirmed = time.monotonic()

    @property
    def idle(self) -> bool:
        """Nothing was submitted yet."""
        return self._writing is None and self._saving is None

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
        elif self._writing is not None:
            self._writing.cancel()  # the write beside a refused checkpoint must not land

    async def _acknowledged(self) -> tuple[int, Counters] | None:
        """Wait for the write in flight and for the checkpoint before it; returns what the
        write covered, for its own checkpoint (None if nothing was in flight)."""
        if self._writing is None:
            return None
        try:
            counters = await self._writing
        except asyncio.CancelledError:
            current = asyncio.current_task()
            refusal = self._refusal()
            if refusal is not None and not (current and current.cancelling()):
                raise refusal from None  # the cause: the checkpoint beside it was refused
            raise
        upper, self._writing = self._upper, None
        if self._saving is not None:
            await self._saving
        return upper, counters

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

    async def submit(self, batch: Payload, upper: int) -> None:
        """Send `batch` once the batch before it is through; `upper` is the checkpoint to
        save once it is written."""
        written = await self._acknowledged()
        if written is not None and time.monotonic() - self._confirmed > self._overlap_for:
            self._checkpoint(written, now=True)  # the lease is getting old: renew it first
            written = None
            await self._saved()
        self._upper = upper
        # The write goes first: the global must not wait for the clinic's checkpoint.
        self._writing = asyncio.create_task(self._write(batch))
        self._checkpoint(written)
        await asyncio.sleep(0)  # both start before the caller reads the next window

    async def _saved(self) -> None:
        if self._saving is not None:
            await self._saving

    async def finish(self) -> None:
        """Wait until every submitted batch is written and checkpointed."""
        self._checkpoint(await self._acknowledged(), now=True)
        await self._saved()

    async def drain(self) -> None:
        """After a failure: let what is in flight end, so every acknowledged write keeps its
        checkpoint. Errors met here are the caller's failure again, or a consequence of it."""
        with _dropped():
            self._checkpoint(await self._acknowledged(), now=True)
        with _dropped():
            await self._saved()
        if self._unsaved is not None:  # folded into a save that the failure stopped
            with _dropped():
                self._checkpoint(None, now=True)
                await self._saved()

    def cancel(self) -> None:
        """Stop whatever is still in flight; failures nobody awaited are dropped here, so
        asyncio never logs them with their arguments."""
        for task in (self._writing, self._saving):
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
