"""The settled upper bound of a `$changes` read (README, "How push works", step 1).

Aidbox takes a write transaction's txid from `transaction_id_seq` when the transaction starts,
so txid 99 may commit after 100 is already visible (api/other/changes-api.md, "Possible Race
Condition"). A reader that moves past 100 while 99 is in flight loses 99 forever.

The bound used here is exact rather than time-based. We read the sequence's `last_value` H at
database time t, then, in a later statement, the start time of the oldest transaction still
open in the database. A transaction holding a txid <= H took it before t, so it started before
t. If no transaction that started before t is still open, every txid <= H is committed or
rolled back, and the window (checkpoint, H] can be read once and never changes again (new writes
get txids > H). Otherwise the last bound proven settled is kept, and the caller retries soon.

Both reads go through `$psql` (api/other/sql-endpoints.md), which the SDK itself relies on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from app.aidbox.client import AidboxClient
from app.aidbox.psql import PsqlError, rows
from app.errors import SyncError

# The highest txid handed out (`last_value` is not yet used while `is_called` is false), the
# sequence's cache (a backend caching values could hand out one <= head later: refused), and
# the time, as integer microseconds since the epoch: exact, and no timestamp format to parse.
_HEAD_SQL = (
    "SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END AS head, "
    "(SELECT seqcache FROM pg_sequence WHERE seqrelid = 'transaction_id_seq'::regclass) "
    "AS cache, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS at "
    "FROM transaction_id_seq s"
)
# Client backends of this database other than the one answering this query; idle pooled
# connections have no xact_start.
# A session of another role shows '<insufficient privilege>' instead of its query and no
# xact_start: then nothing can be proven, and the bound must not move.
_OLDEST_OPEN_SQL = (
    "SELECT (extract(epoch FROM min(xact_start)) * 1000000)::bigint AS oldest, "
    "count(*) FILTER (WHERE query = '<insufficient privilege>') AS hidden "
    "FROM pg_stat_activity "
    "WHERE datname = current_database() AND backend_type = 'client backend' "
    "AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class Observation:
    """A head observed at a database time."""

    head: int
    at: int  # microseconds since the epoch, database clock


class WatermarkError(SyncError):
    """`$psql` is not usable (no permission, or an unexpected answer)."""


class Watermark:
    """Tracks the highest txid proven settled in the local Aidbox's database."""

    def __init__(self, client: AidboxClient) -> None:
        self._client = client
        # Unsettled observations, oldest first; bounded: a long transaction blocks them all
        # alike, and the newest settle as soon as it ends.
        self._pending: deque[Observation] = deque(maxlen=64)
        self.settled = 0
        self.open_since: int | None = None  # start of the oldest open transaction, µs
        # One observation at a time: a caller's activity read proves settled only what was
        # observed before it, so two interleaved observations (the global serves many
        # clinics at once) could settle a head seen after the proof.
        self._observing = asyncio.Lock()

    @property
    def pending(self) -> bool:
        """A newer head was seen but is not settled yet."""
        return bool(self._pending)

    async def _query(self, sql: str) -> dict:
        try:
            return (await rows(self._client, sql))[0]
        except (PsqlError, IndexError) as exc:
            raise WatermarkError(str(exc) or "unexpected $psql answer: no row") from None

    async def advance(self) -> int:
        """Observe the database once and return the settled bound (never decreases)."""
        async with self._observing:
            return await self._observe()

    async def _observe(self) -> int:
        row = await self._query(_HEAD_SQL)
        head, at = int(row["head"]), int(row["at"])
        if int(row.get("cache") or 1) > 1:
            raise WatermarkError("transaction_id_seq caches values; the settled bound is unsafe")
        activity = await self._query(_OLDEST_OPEN_SQL)
        if int(activity.get("hidden") or 0):
            raise WatermarkError("$psql cannot see every session; grant pg_read_all_stats")
        oldest = activity.get("oldest")
        self.open_since = int(oldest) if oldest is not None else None
        # Observations are kept oldest first; each is settled once every transaction open now
        # started after it. Under a steady flow of short overlapping transactions the newest
        # is always blocked, while older ones settle: keeping only the newest would stall.
        self._pending.append(Observation(head, at))
        while self._pending and (self.open_since is None or self.open_since > self._pending[0].at):
            self.settled = max(self.settled, self._pending.popleft().head)
        if self._pending and self._pending[-1].head <= self.settled:
            self._pending.clear()
        return self.settled

    async def settle(self, wait: float, interval: float = 0.01) -> int:
        """Advance until everything committed before this call is settled, or `wait` seconds.

        Used by on-demand syncs: an operator's `$sync` should include every change committed
        before it, and the transactions still open then normally finish within milliseconds.
        """
        bound = await self.advance()
        target = self._pending[-1].head if self._pending else bound
        deadline = time.monotonic() + wait
        while bound < target and time.monotonic() < deadline:
            await asyncio.sleep(interval)
            bound = await self.advance()
        return bound
