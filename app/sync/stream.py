"""One stream: a resource type's changes from a source Aidbox to a target Aidbox.

Push carries the clinic's changes to headquarters, anonymized; pull carries headquarters'
administrative data to the clinic, unchanged (docs/pull.md). Both are this class with other
ends: a source (source.py), a transform (transform.py), a sink (sink.py) and a state
(state.py).

A run reads settled sub-windows of changes after the checkpoint, transforms them, writes them
to the target in full batches, and only then advances the checkpoint to the end of the last
sub-window none of whose changes still waits (backlog.py). A crash at any point replays from
the last checkpoint; the writes are idempotent PUT/DELETE on deterministic ids, fenced
(fence.py), so a replay never forks (docs/push.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.aidbox.client import AidboxClient
from app.anonymize import PseudonymKey
from app.errors import SyncError
from app.model import ChangesInfo, Counters, Direction
from app.sync.backlog import Backlog, Batch
from app.sync.breaker import Breaker
from app.sync.bundle import MAX_ENTRY_BYTES, Footprint, Outgoing
from app.sync.checkpoint import CheckpointStore
from app.sync.feed import Change, ChangeFeed, ChangeId, ChangeSource, read_ahead, read_current
from app.sync.fence import Fence
from app.sync.local_edits import witness
from app.sync.pipeline import Pipeline
from app.sync.quarantine import Superseded, quarantine
from app.sync.sent import SentCache
from app.sync.sink import Refusal, TransactionSink
from app.sync.source_state import SourceReader
from app.sync.state import Runner, StreamState, held_elsewhere
from app.sync.transform import Transform

log = logging.getLogger("aidbox_sync.stream")

# Changes transformed between two yields to the event loop (about a millisecond of work).
_YIELD_EVERY = 32


@dataclass(frozen=True)
class Limits:
    """Batch bounds for transactions to the target."""

    max_entries: int = 200
    max_bytes: int = 1_000_000
    # Transactions of one stream in flight at once, when their writes do not clash (fence.py
    # allows up to MAX_IN_FLIGHT).
    in_flight: int = 2
    lease_seconds: float = 60.0  # a runner that stops renewing is replaced after this
    # The breaker (breaker.py): more than this share of at least that many recent entries
    # refused stops the stream.
    breaker_ratio: float = 0.5
    breaker_min_entries: int = 20
    # Pull: a checkpoint at most this often (seconds). Its checkpoints and its transactions
    # go to the same Aidbox (the clinic), so each one saved costs the writes their time;
    # push saves after every transaction, in the clinic while headquarters writes.
    pull_checkpoint_every: float = 1.0


@dataclass(frozen=True)
class Ends:
    """What the configuration in force decides for a run: the transform, and the types
    carried in this direction (a missing reference target of another type is never written
    on a referrer's behalf)."""

    transform: Transform
    carried: frozenset[str]
    # Awaited before a run writes anything (only when there is something to carry): pull
    # looks for the clinic's own edits there, before it overwrites them (local_edits.py).
    before_writing: Callable[[], Awaitable[None]] | None = None


@dataclass
class RunSummary:
    """What one run of one stream did."""

    stream: str
    version: int
    counters: Counters
    error: str | None = None

    def as_json(self) -> dict:
        """The `$sync` answer for this stream."""
        out = {"stream": self.stream, "version": self.version, **self.counters.model_dump()}
        if self.error:
            out["error"] = self.error
        return out


def failure_reason(exc: BaseException) -> str:
    """A failure as stored in the clinic's status. Only our own errors keep their message
    (made of statuses, ids and OperationOutcome diagnostics, app/errors.py); any other
    exception might quote a body."""
    if isinstance(exc, SyncError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} (details withheld: may quote a resource)"


def logged_reason(exc: BaseException) -> str:
    """A failure as a log line carries it: ``failure_reason`` without what a server quoted
    (``SyncError.logged``)."""
    if isinstance(exc, SyncError):
        return f"{type(exc).__name__}: {exc.logged}"
    return failure_reason(exc)


@dataclass(frozen=True)
class _Prepared:
    """A batch transformed and ready to send, with what preparing it counted."""

    outgoing: list[Outgoing]
    counters: Counters


class Stream:
    """Moves one resource type's changes from its source to its target."""

    def __init__(
        self,
        direction: Direction,
        resource_type: str,
        *,
        source: ChangeSource,
        target: AidboxClient,
        local: AidboxClient,
        checkpoints: CheckpointStore,
        sent: SentCache,
        limits: Limits,
        runner: Runner,
        key: PseudonymKey,
    ) -> None:
        self.direction = direction
        self.resource_type = resource_type
        self.id = ChangesInfo.stream_id(direction, resource_type)
        self.source = source
        # Windows no larger than a transaction: the first batch leaves sooner.
        self._feed = ChangeFeed(source, resource_type, page_size=limits.max_entries)
        self._target = target
        self._local = local  # the clinic's Aidbox: checkpoints and quarantine live there
        self._checkpoints = checkpoints
        self._sent = sent
        self._limits = limits
        self._runner = runner
        self._key = key  # fence token ids (fence.py)
        # (checkpoint versionId, bound): nothing unsent up to bound while the checkpoint is
        # unchanged. An edit of the checkpoint (a reset, in the console too) invalidates it.
        self._verified: tuple[str | None, int] = (None, 0)
        self._fence: Fence | None = None  # the current run's, once it claimed the stream
        # The current run's quarantine records, by resource, once it wrote something.
        self._superseded: Superseded | None = None

    async def read(self, resource_type: str, source_id: str) -> Change | None:
        """The source's current state of a resource (of any type), or None if it is gone."""
        return await read_current(self.source, resource_type, source_id)

    async def current(self, source_id: str, version: int) -> Change:
        """The source's current state of one of this type's resources, or its deletion (at
        `version`, the last one known) when the source no longer has it."""
        found = await self.read(self.resource_type, source_id)
        return found or Change("deleted", self.resource_type, source_id, version, {})

    def position(self, info: ChangesInfo) -> int:
        """Up to where nothing is unsent: the checkpoint `info`, or the bound of a later run of
        this process that found only empty windows past it (kept in memory, see `_drain`)."""
        if self._verified[0] == info.version_id:
            return max(info.version, self._verified[1])
        return info.version

    async def run(self, bound: int, ends: Ends) -> RunSummary:
        """Carry every change up to the settled `bound`; the checkpoint follows each write."""
        try:
            info = await self._checkpoints.load(self.direction, self.resource_type)
        except Exception as exc:
            reason = failure_reason(exc)
            log.error("stream %s: cannot read its checkpoint: %s", self.id, logged_reason(exc))
            return RunSummary(self.id, 0, Counters(), error=reason)
        if held := held_elsewhere(info, self._runner.owner, datetime.now(UTC)):
            return RunSummary(self.id, info.version, Counters(), error=held)
        if self._verified[0] is not None and info.version_id != self._verified[0]:
            # Written by someone else since this process's last run of it (a reset, another
            # service that held the stream meanwhile): what this process remembers sending
            # may no longer be what the target holds, so it sends even what looks unchanged.
            # (Before its first run, the memory holds only what other streams of this
            # process wrote on its behalf, which the target does hold.)
            self._sent.forget_type(self.resource_type)
        start = self.position(info)
        if bound <= start:
            return RunSummary(self.id, start, Counters())

        if ends.before_writing is not None:
            await ends.before_writing()
            info = await self._checkpoints.load(self.direction, self.resource_type)
        state = StreamState(self._checkpoints, self._runner, info)
        total = Counters()
        try:
            total = await self._drain(state, start, bound, ends)
        except _Stopped as stop:
            reason = failure_reason(stop.cause)
            version, logged = state.info.version, logged_reason(stop.cause)
            log.error("stream %s failed at version %s: %s", self.id, version, logged)
            await state.fail(reason)
            return RunSummary(self.id, state.info.version, stop.total, error=reason)
        self._verified = (state.info.version_id, bound)
        return RunSummary(self.id, bound, total)

    def _sink(self, ends: Ends) -> TransactionSink:
        return TransactionSink(
            self._target,
            SourceReader(self.read, ends.transform, carried=ends.carried, stream_id=self.id),
            sent=self._sent,
            quarantine=self._quarantine,
            max_entries=self._limits.max_entries,
            max_bytes=self._limits.max_bytes,
            # Headquarters' policy limits what a clinic writes; a clinic's Aidbox, which the
            # pull writes to as the App, does not (docs/access-control.md, "Size limits and cost").
            max_entry_bytes=MAX_ENTRY_BYTES if self.direction is Direction.PUSH else None,
        )

    def _breaker(self) -> Breaker:
        return Breaker(self._limits.breaker_ratio, self._limits.breaker_min_entries)

    async def write_now(
        self, changes: list[Change], extra: list[str], ends: Ends
    ) -> tuple[RunSummary, list[Outgoing]]:
        """Write the current states `changes`, and delete the target ids `extra`, outside a
        run but the way a run writes: claimed, fenced, quarantining what is refused. Each is
        sent whatever the memory of what was sent says; the checkpoint does not move. Returns
        the summary and the items the target now holds."""
        if ends.before_writing is not None:
            await ends.before_writing()
        info = await self._checkpoints.load(self.direction, self.resource_type)
        if held := held_elsewhere(info, self._runner.owner, datetime.now(UTC)):
            return RunSummary(self.id, info.version, Counters(), error=held), []
        state = StreamState(self._checkpoints, self._runner, info)
        sink = self._sink(ends)
        try:
            await self._claim(state, sink)
            prepared = await self._prepare(changes, ends.transform)
            rtype = self.resource_type
            gone = [Outgoing(ChangeId(rtype, g, 0), "DELETE", rtype, g, body=None) for g in extra]
            items = [*prepared.outgoing, *gone]
            for item in items:
                self._sent.forget(item.key)
            delivery = await sink.deliver(items, self._breaker())
            counters = prepared.counters.add(delivery.counters)
            await state.count(self._fence_position(), counters)
        except Exception as exc:
            reason = failure_reason(exc)
            log.error("stream %s: writing out of a run failed: %s", self.id, logged_reason(exc))
            return RunSummary(self.id, state.info.version, Counters(), error=reason), []
        return RunSummary(self.id, state.info.version, counters), delivery.settled

    async def _drain(self, state: StreamState, start: int, bound: int, ends: Ends) -> Counters:
        """Carry (start, bound], checkpointing after each batch; returns the run's counts.
        On failure raises _Stopped, with `state` at the last checkpoint saved.

        Windows are gathered in a backlog and sent in full batches; batch k+1 is read and
        transformed while batch k is written, and the pipeline saves checkpoint k during write
        k+1, so the target never waits for the source. Empty windows are remembered in memory
        only: persisting them would itself be a write (a new txid) and wake every stream again.
        """
        started = datetime.now(UTC)
        breaker = self._breaker()
        sink = self._sink(ends)
        total = Counters()
        self._superseded = None

        async def write(batch: _Prepared) -> Counters:
            delivery = await sink.deliver(batch.outgoing, breaker)
            if self._superseded is None:  # read once something was written: records made
                # before are among them
                self._superseded = await Superseded.load(self._local, self.id)
            await self._superseded.written([item.source for item in delivery.settled])
            return batch.counters.add(delivery.counters)

        async def save(upper: int, counters: Counters) -> None:
            nonlocal total
            await state.advance(upper, self._fence_position(), counters, started)
            total = total.add(counters)

        pipeline = Pipeline(
            write,
            save,
            overlap_for=self._limits.lease_seconds / 2,
            save_every=self._limits.pull_checkpoint_every
            if self.direction is Direction.PULL
            else 0,
            depth=self._limits.in_flight,
        )

        async def send(batch: Batch) -> None:
            if pipeline.idle:
                await self._claim(state, sink)
            prepared, upper = await self._prepare(batch.changes, ends.transform), batch.upper
            # The batch held the last references to the source's bodies (the feed and the
            # loop let go of them): they go now, while the write before is still in flight,
            # not after it, and PHI is kept no longer than needed (a traceback aside).
            del batch
            await pipeline.submit(prepared, upper, Footprint.of(prepared.outgoing))

        backlog = Backlog(start)
        full = self._limits.max_entries
        try:
            # The next window is read while this one is anonymized and written; closed at
            # once when the run stops, so no read goes on holding bodies.
            async with contextlib.aclosing(read_ahead(self._feed.windows(start, bound))) as ws:
                async for upper, changes in ws:
                    backlog.add(upper, changes)
                    changes.clear()  # the backlog holds them now, and nothing else may
                    while len(backlog) >= full:
                        await send(backlog.take(full))
            if len(backlog):
                await send(backlog.take(len(backlog)))
            await pipeline.finish()
            if state.info.status == "failed":
                await state.advance(state.info.version, self._fence_position(), Counters(), started)
        except Exception as exc:
            await pipeline.drain()  # every acknowledged write keeps its checkpoint
            raise _Stopped(exc, total) from exc
        finally:
            pipeline.cancel()  # cancelled (shutdown): no write may land after the run
        return total

    async def _claim(self, state: StreamState, sink: TransactionSink) -> None:
        """Take the stream's lease, or renew our own: a lease left by an earlier run may be
        about to lapse. Called before the first write to the target, with no write in flight:
        If-Match makes the claim atomic, so of two runners only one goes on. The claim's
        version is the run's epoch, which fences its writes at the target (fence.py)."""
        info = await state.claim()
        fence = Fence(
            self._target,
            self._key,
            self.id,
            epoch=int(info.version_id or 0),
            known=info.fence,
            depth=self._limits.in_flight,
            # Pull tokens list what they write: the clinic's edits are told apart by it.
            witness=witness if self.direction is Direction.PULL else None,
        )
        await fence.open()
        sink.fence = fence
        self._fence = fence

    async def _prepare(self, changes: list[Change], transform: Transform) -> _Prepared:
        """Transform a batch of changes; one that cannot be transformed is quarantined."""
        outgoing: list[Outgoing] = []
        refused = 0
        for n, change in enumerate(changes, 1):
            if n % _YIELD_EVERY == 0:
                # Anonymizing is CPU work on the event loop: let the transaction in flight
                # move its bytes meanwhile, or the target would wait for this batch.
                await asyncio.sleep(0)
            try:
                outgoing.append(transform(change))
            except Exception as exc:  # one malformed resource must not stop the stream
                # The exception text may quote the resource, so only its type is kept.
                target_id = self._target_id(change)
                reason = f"transform failed: {type(exc).__name__}"
                refusal = Refusal(reason, reason)
                refused += await self._quarantine(change.identity(), target_id, refusal)
        return _Prepared(outgoing, Counters(read=len(changes), quarantined=refused))

    def _target_id(self, change: Change) -> str:
        """The id a change has at the target: pseudonymous at headquarters, the same below."""
        if self.direction is Direction.PUSH:
            return self._key.resource_id(change.resource_type, change.id)
        return change.id

    async def _quarantine(self, change: ChangeId, target_id: str, refusal: Refusal) -> int:
        """Record a refused change in the clinic (a local id, and what the target said, stay
        there) and log it once, by its id at the target only; 1 if the refusal is new, 0 if a
        replay saw it before."""
        if self._superseded is not None:
            self._superseded.add(change)
        if not await quarantine(self._local, self.id, change, refusal.recorded):
            return 0
        log.error(
            "stream %s: version %s of %s/%s quarantined: %s",
            self.id,
            change.version,
            change.resource_type,
            target_id,
            refusal.logged,
        )
        return 1

    def _fence_position(self) -> int:
        """The last fence token known written, to keep in the checkpoint (fence.py)."""
        return self._fence.last if self._fence is not None else 0


class _Stopped(Exception):
    """A run that failed: its cause, and what it did before."""

    def __init__(self, cause: BaseException, total: Counters) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
        self.total = total
