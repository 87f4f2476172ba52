"""The breaker: a stream whose writes the global refuses wholesale stops instead of
quarantining everything (docs/push.md, "The breaker").

A refusal of one resource is the resource's problem; a refusal of most of them is headquarters'
(a new profile or FHIRSchema there), and quarantining a whole stream for it would turn a fix at
headquarters into a long `$requeue`. The breaker judges the most recent entries, at least
`min_entries` of them, and opens when more than `ratio` of them were refused.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from app.errors import SyncError


class BreakerOpen(SyncError):
    """Most of what a stream sends is refused: the stream stops until the cause is fixed."""

    def __init__(self, message: str, logged: str) -> None:
        super().__init__(message)
        self._logged = logged

    @property
    def logged(self) -> str:
        """The message with the example refusal's codes only."""
        return self._logged


@dataclass
class Breaker:
    """Counts of the recent batches of one run."""

    ratio: float = 0.5
    min_entries: int = 20
    _recent: deque[tuple[int, int]] = field(default_factory=deque)  # (sent, refused) per batch

    def judge(self, sent: int, refused: int, reason: str, logged: str = "") -> None:
        """Record a batch's outcome; raise BreakerOpen if the recent entries are refused
        beyond the ratio. `reason`: one refusal's reason, to say what headquarters answers;
        `logged`: the same as a log line may carry it."""
        self._recent.append((sent, refused))
        # Keep the fewest most recent batches that still hold `min_entries` entries.
        while len(self._recent) > 1 and self._total()[0] - self._recent[0][0] >= self.min_entries:
            self._recent.popleft()
        total, refusals = self._total()
        if total >= self.min_entries and refusals > self.ratio * total:

            def said(example: str) -> str:
                return (
                    f"{refusals} of the last {total} entries refused by headquarters (e.g. "
                    f"{example}); the stream stops without quarantining them: fix the cause "
                    "there, then $sync"
                )

            raise BreakerOpen(said(reason), said(logged or reason))

    def _total(self) -> tuple[int, int]:
        return sum(s for s, _ in self._recent), sum(r for _, r in self._recent)
