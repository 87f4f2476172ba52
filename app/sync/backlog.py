"""Changes read from the clinic and not sent yet, cut into full transactions.

The feed cuts windows by txid, so their sizes vary (a window holds at most a page, often
less). Transactions made of whole windows would leave part of each transaction empty, and the
global pays per transaction. The backlog cuts batches at any change instead, and gives each
batch the checkpoint it completes: the upper bound of the last window none of whose changes is
still waiting (README, "How push works": the checkpoint never passes an unsent change).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import islice

from app.sync.feed import Change


@dataclass(frozen=True)
class Batch:
    """Changes to send together, and the checkpoint once they are written."""

    changes: list[Change]
    upper: int


class Backlog:
    """Waiting changes of one stream, one per resource, in the order they were read."""

    def __init__(self, start: int) -> None:
        # id -> (latest change, upper bound of the window it was read in); insertion order is
        # read order, and a resource changed again moves to the end with its later window.
        self._waiting: dict[str, tuple[Change, int]] = {}
        self._uppers: list[int] = []  # windows read and not yet covered by a checkpoint
        self._covered = start
        self._read = start  # upper bound of the last window read
        # Resources read as their current state, newer than the window that held them (the
        # feed resolves an ambiguous delete that way): id -> that version. A later window may
        # still bring an older change of theirs, which must not follow the newer state out.
        self._ahead: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, upper: int | None, changes: list[Change]) -> None:
        """Take in the changes of the window that ends at `upper`; windows come in order.
        `upper` None: a part of the next window, whose end comes with its last part (feed.py,
        a transaction larger than a page); no checkpoint passes its changes until then."""
        if upper is None:
            # Tagged just after the last window read: a checkpoint may reach that window,
            # never the one these changes belong to.
            self._take_in(self._read + 1, changes)
            return
        if upper <= self._read:
            raise ValueError(f"window up to {upper} is not after the one up to {self._read}")
        self._read = upper
        self._take_in(upper, changes)
        self._uppers.append(upper)
        # Windows past a version hold only later changes: nothing older can come any more.
        self._ahead = {rid: v for rid, v in self._ahead.items() if v > upper}

    def _take_in(self, upper: int, changes: list[Change]) -> None:
        for change in changes:
            if change.version <= self._ahead.get(change.id, -1):
                continue  # an older state than one already taken in or sent
            if change.version > upper:
                self._ahead[change.id] = change.version
            # A later change of a waiting resource replaces it: only the last state is sent.
            self._waiting.pop(change.id, None)
            self._waiting[change.id] = (change, upper)

    def take(self, count: int) -> Batch:
        """The `count` changes read first, with the highest checkpoint that passes none of
        the changes still waiting."""
        ids = list(islice(self._waiting, count))
        changes = [self._waiting.pop(i)[0] for i in ids]
        if self._waiting:
            # The change read first still waits: its window and every later one stay open.
            first_open = next(iter(self._waiting.values()))[1]
            done = bisect.bisect_left(self._uppers, first_open)
        else:
            done = len(self._uppers)
        if done:
            self._covered = self._uppers[done - 1]
            del self._uppers[:done]
        return Batch(changes, self._covered)
