"""Writes batches to the global and checkpoints each, overlapped but strictly in order.

A push run alternates two writes to two servers: a transaction to the global, then the
checkpoint in the clinic. Done one after the other, the global waits for every checkpoint;
the pipeline saves checkpoint k while batch k+1 is written, without giving up the rule that
a checkpoint never passes an unacknowledged change (DESIGN.md §4.2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from app.model import Counters

Batch = TypeVar("Batch")


class Pipeline(Generic[Batch]):
    """Writes batches to the global and saves a checkpoint after each, overlapped but in order.

    The checkpoint of batch k is saved while batch k+1 is written. Batch k+1 is only sent
    once batch k is acknowledged and checkpoint k-1 is saved: a failed write stops every
    later one, and at most one acknowledged batch is ever ahead of the saved checkpoint.
    """

    def __init__(
        self,
        write: Callable[[Batch], Awaitable[Counters]],
        save: Callable[[int, Counters], Awaitable[None]],
    ) -> None:
        self._write = write
        self._save = save
        self._writing: asyncio.Task[Counters] | None = None
        self._upper = 0
        self._saving: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing was submitted yet."""
        return self._writing is None and self._saving is None

    async def _acknowledged(self) -> tuple[int, Counters] | None:
        """Wait for the write in flight and for the checkpoint before it; returns what the
        write covered, for its own checkpoint (None if nothing was in flight)."""
        if self._writing is None:
            return None
        counters, upper = await self._writing, self._upper
        self._writing = None
        if self._saving is not None:
            await self._saving
        return upper, counters

    def _checkpoint(self, written: tuple[int, Counters] | None) -> None:
        if written is not None:
            self._saving = asyncio.create_task(self._save(*written))

    async def submit(self, batch: Batch, upper: int) -> None:
        """Send `batch` (every change up to `upper`) once the batch before it is through."""
        written = await self._acknowledged()
        # The write goes first: the global must not wait for the clinic's checkpoint.
        self._upper = upper
        self._writing = asyncio.create_task(self._write(batch))
        self._checkpoint(written)
        await asyncio.sleep(0)  # both start before the caller reads the next window

    async def finish(self) -> None:
        """Wait until every submitted batch is written and checkpointed."""
        self._checkpoint(await self._acknowledged())
        if self._saving is not None:
            await self._saving

    async def drain(self) -> None:
        """After a failure: let what is in flight end, so every acknowledged write keeps its
        checkpoint; errors here were already met, or are met again, by the caller."""
        with contextlib.suppress(Exception):
            self._checkpoint(await self._acknowledged())
        with contextlib.suppress(Exception):
            if self._saving is not None:
                await self._saving

    def cancel(self) -> None:
        """Stop whatever is still in flight."""
        for task in (self._writing, self._saving):
            if task is not None and not task.done():
                task.cancel()
