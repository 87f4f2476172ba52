"""The settled upper bound of a `$changes` read (README, "How push works", step 1).

Aidbox takes a write transaction's txid from `transaction_id_seq` when the transaction starts,
so txid 99 may commit after 100 is already visible (api/other/changes-api.md, "Possible Race
Condition"). A reader that moves past 100 while 99 is in flight loses 99 forever.

The bound used here is exact, and needs no clock. `nextval` takes a RowExclusiveLock on the
sequence that its transaction holds until it ends (PostgreSQL, src/backend/commands/sequence.c,
`lock_and_open_sequence`; shown by tests/integration/test_watermark.py), and `pg_locks` shows
every backend's locks to any user (PostgreSQL docs, "pg_locks"). We read the sequence's
`last_value` H, then, in a later statement, the transactions holding that lock: every
transaction that took a txid <= H and is still open is among them. Once none of those is open
any more, every txid <= H is committed or rolled back, and the window (checkpoint, H] can be
read once and never changes again (new writes get txids > H). Until then the last bound proven
settled is kept, and the caller retries soon. A transaction that only reads (a backup's
snapshot, a report) takes no txid and holds nothing back; a clock stepped back cannot settle a
bound early, since no times are compared.

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

# The highest txid handed out (`last_value` is not yet used while `is_called` is false), and
# the sequence's cache (a backend caching values could hand out one <= head later: refused).
_HEAD_SQL = (
    "SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END AS head, "
    "(SELECT seqcache FROM pg_sequence WHERE seqrelid = 'transaction_id_seq'::regclass) "
    "AS cache FROM transaction_id_seq s"
)
# The transactions of this database, other than the one answering, that took a value of the
# sequence (their virtual transaction ids, space-separated; NULL when none), and when the
# oldest of them started, as integer microseconds since the epoch, for `$sync-status` only
# (NULL where pg_stat_activity hides another role's session; a prepared transaction, which has
# no session, by when it was prepared: pg_prepared_xacts, readable by every role, PostgreSQL
# docs "pg_prepared_xacts"). A prepared transaction has no pid (IS DISTINCT FROM keeps it) and
# its virtual id changes when the server restarts: all of them are one holder, "prepared",
# which an observation waits for until none is left.
_HOLDERS_SQL = (
    "SELECT string_agg(DISTINCT CASE WHEN l.pid IS NULL THEN 'prepared' "
    "ELSE l.virtualtransaction END, ' ') AS holders, "
    "(extract(epoch FROM LEAST(min(a.xact_start), CASE WHEN bool_or(l.pid IS NULL) THEN "
    "(SELECT min(p.prepared) FROM pg_prepared_xacts AS p WHERE p.database = "
    "current_database()) END)) * 1000000)::bigint AS oldest "
    "FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'relation' AND l.relation = 'transaction_id_seq'::regclass "
    "AND l.mode = 'RowExclusiveLock' "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.pid IS DISTINCT FROM pg_backend_pid()"
)
_MAX_PENDING = 64


@dataclass(frozen=True)
class Observation:
    """A head, and the transactions that may hold a txid at or below it (those holding one
    when it was read, and still open after)."""

    head: int
    holders: frozenset[str]


class WatermarkError(SyncError):
    """`$psql` is not usable (no permission, or an unexpected answer)."""


class Watermark:
    """Tracks the highest txid proven settled in the local Aidbox's database."""

    def __init__(self, client: AidboxClient) -> None:
        self._client = client
        # Unsettled observations, oldest first, at most _MAX_PENDING (a newer one replaces the
        # newest kept: the oldest are the next to settle).
        self._pending: deque[Observation] = deque()
        self.settled = 0
        self.open_since: int | None = None  # start of the oldest transaction holding a txid, µs
        # One observation at a time: a caller's holders read proves settled only what was
        # observed before it, so two interleaved observations (the global serves many
        # clinics at once) could settle a head seen after the proof.
        self._observing = asyncio.Lock()
        # Observations begun and finished, counted: callers that waited for the lock while
        # one observation ran share the next one (every clinic's pull asks headquarters'
        # bound, with settle=true every 10 ms: one pair of queries serves them all).
        self._begun = 0
        self._finished = 0

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
        """Observe the database once and return the settled bound (never decreases): an
        observation that began after this call, this caller's or one it waited for."""
        wanted = self._begun + 1  # one in progress began before this call: not that one
        async with self._observing:
            if self._finished >= wanted:
                return self.settled
            self._begun += 1
            settled = await self._observe()
            self._finished = self._begun  # a failed one serves no one: each tries its own
            return settled

    async def _observe(self) -> int:
        row = await self._query(_HEAD_SQL)
        head = int(row["head"])
        if int(row.get("cache") or 1) > 1:
            raise WatermarkError("transaction_id_seq caches values; the settled bound is unsafe")
        found = await self._query(_HOLDERS_SQL)
        holders = frozenset(str(found.get("holders") or "").split())
        oldest = found.get("oldest")
        self.open_since = int(oldest) if oldest is not None and holders else None
        # Each observation settles once none of its holders is open. Under a steady flow of
        # short overlapping transactions the newest is always held back, while older ones
        # settle: keeping only the newest would stall.
        observed = Observation(head, holders)
        if len(self._pending) >= _MAX_PENDING:
            self._pending[-1] = observed  # settles no earlier than the one it replaces
        else:
            self._pending.append(observed)
        while self._pending and not (self._pending[0].holders & holders):
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
