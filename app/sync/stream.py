"""One push stream: a resource type's changes from the clinic to the global.

A run reads settled sub-windows of changes after the checkpoint, anonymizes them, writes them to
the global in full batches, and only then advances the checkpoint to the end of the last
sub-window none of whose changes still waits (backlog.py). A crash at any point replays from
the last checkpoint; the global's writes are idempotent PUT/DELETE on deterministic ids, so a
replay never forks (README, "How push works"; docs/push.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.aidbox.client import AidboxClient
from app.anonymize import Plan, PseudonymKey
from app.errors import SyncError
from app.model import ChangesInfo, Counters, Direction, LastError, Lease, QuarantineRecord
from app.sync.backlog import Backlog, Batch
from app.sync.breaker import Breaker
from app.sync.bundle import Outgoing, batches, order_by_references
from app.sync.checkpoint import CheckpointStore
from app.sync.clinic_state import ClinicReader, LocalReader
from app.sync.feed import Change, ChangeFeed, ChangeId
from app.sync.fence import Fence
from app.sync.pipeline import Pipeline
from app.sync.quarantine import quarantine, record_id, release
from app.sync.reconcile import Drift, Reconciler
from app.sync.sent import SentCache
from app.sync.sink import ClinicState, GlobalSink
from app.sync.transform import to_outgoing

log = logging.getLogger("aidbox_sync.stream")

# Changes anonymized between two yields to the event loop (about a millisecond of work).
_YIELD_EVERY = 32


@dataclass(frozen=True)
class Limits:
    """Batch bounds for transactions to the global."""

    max_entries: int = 200
    max_bytes: int = 1_000_000
    lease_seconds: float = 60.0  # a runner that stops renewing is replaced after this
    # The breaker (breaker.py): more than this share of at least that many recent entries
    # refused stops the stream.
    breaker_ratio: float = 0.5
    breaker_min_entries: int = 20


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
    """A failure as stored in status and logs. Only our own errors keep their message (made of
    statuses, ids and OperationOutcome diagnostics, app/errors.py); any other exception might
    quote a body."""
    if isinstance(exc, SyncError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} (details withheld: may quote a resource)"


@dataclass(frozen=True)
class _Prepared:
    """A batch anonymized and ready to send, with what preparing it counted."""

    outgoing: list[Outgoing]
    counters: Counters


@dataclass
class _Progress:
    """The last checkpoint a run saved, and what the run did so far."""

    info: ChangesInfo
    total: Counters


class PushStream:
    """Moves one resource type's changes to the global."""

    def __init__(
        self,
        resource_type: str,
        *,
        local: AidboxClient,
        global_: AidboxClient,
        feed: ChangeFeed,
        sink_for: Callable[[ClinicState], GlobalSink],
        checkpoints: CheckpointStore,
        sent: SentCache,
        read_local: LocalReader,
        limits: Limits,
        owner: str,
    ) -> None:
        self.resource_type = resource_type
        self.id = ChangesInfo.stream_id(Direction.PUSH, resource_type)
        self._local = local
        self._feed = feed
        self._checkpoints = checkpoints
        self._sent = sent
        self._read_local = read_local
        self._limits = limits
        self._sink_for = sink_for
        self._owner = owner
        # (checkpoint versionId, bound): nothing unsent up to bound while the checkpoint is
        # unchanged. An edit of the checkpoint (a reset, in the console too) invalidates it.
        self._verified: tuple[str | None, int] = (None, 0)
        self._saved = 0  # highest checkpoint this process wrote
        self._global = global_
        self._fence: Fence | None = None  # the current run's, once it claimed the stream

    async def run(
        self, bound: int, plan: Plan, key: PseudonymKey, *, pushed: frozenset[str]
    ) -> RunSummary:
        """Push every change up to the settled `bound`; the checkpoint follows each write.
        `pushed`: the types this clinic pushes (a missing reference target of another type
        is never pushed on a referrer's behalf)."""
        total = Counters()
        try:
            info = await self._checkpoints.load(Direction.PUSH, self.resource_type)
        except Exception as exc:
            reason = failure_reason(exc)
            log.error("stream %s: cannot read its checkpoint: %s", self.id, reason)
            return RunSummary(self.id, 0, total, error=reason)
        if held := self._held_elsewhere(info):
            return RunSummary(self.id, info.version, total, error=held)
        if info.version < self._saved:
            # Moved back behind this process (a reset in the console): replay even unchanged.
            self._sent.forget_type(self.resource_type)
        start = info.version
        if self._verified[0] == info.version_id:
            start = max(start, self._verified[1])
        if bound <= start:
            return RunSummary(self.id, start, total)

        clinic = ClinicReader(self._read_local, plan, key, pushed=pushed, stream_id=self.id)
        progress = _Progress(info, Counters())
        try:
            await self._drain(progress, start, bound, plan, key, self._sink_for(clinic))
        except Exception as exc:
            reason = failure_reason(exc)
            log.error("stream %s failed at version %s: %s", self.id, progress.info.version, reason)
            await self._record_failure(progress.info, reason)
            return RunSummary(self.id, progress.info.version, progress.total, error=reason)
        self._verified = (progress.info.version_id, bound)
        return RunSummary(self.id, bound, progress.total)

    def _held_elsewhere(self, info: ChangesInfo) -> str | None:
        """Why this process may not write the stream now: another process runs it (one
        runner per stream, docs/push.md)."""
        held = info.lease
        if held and held.owner != self._owner and held.until > datetime.now(UTC):
            return f"held by runner {held.owner} until {held.until.isoformat()}"
        return None

    async def write_now(
        self,
        changes: list[Change],
        extra: list[str],
        plan: Plan,
        key: PseudonymKey,
        *,
        pushed: frozenset[str],
    ) -> tuple[RunSummary, list[Outgoing]]:
        """Write the current states `changes`, and delete the global ids `extra`, outside a
        run but the way a run writes: claimed, fenced, quarantining what is refused. Each is
        sent whatever the memory of what was sent says; the checkpoint does not move. Returns
        the summary and the items headquarters now holds."""
        info = await self._checkpoints.load(Direction.PUSH, self.resource_type)
        if held := self._held_elsewhere(info):
            return RunSummary(self.id, info.version, Counters(), error=held), []
        progress = _Progress(info, Counters())
        clinic = ClinicReader(self._read_local, plan, key, pushed=pushed, stream_id=self.id)
        sink = self._sink_for(clinic)
        try:
            await self._claim(progress, sink, key)
            prepared = await self._prepare(changes, plan, key)
            rtype = self.resource_type
            gone = [Outgoing(ChangeId(rtype, g, 0), "DELETE", rtype, g, body=None) for g in extra]
            items = [*prepared.outgoing, *gone]
            for item in items:
                self._sent.forget(item.key)
            counters, settled = await self._write(items, sink, self._breaker())
            counters = prepared.counters.add(counters)
            progress.info = await self._checkpoints.save(
                progress.info.model_copy(
                    update={
                        "fence": self._fence_position(progress.info),
                        "counters": progress.info.counters.add(counters),
                    }
                )
            )
        except Exception as exc:
            reason = failure_reason(exc)
            log.error("stream %s: writing out of a run failed: %s", self.id, reason)
            return RunSummary(self.id, progress.info.version, Counters(), error=reason), []
        return RunSummary(self.id, progress.info.version, counters), settled

    async def requeue(
        self,
        records: list[QuarantineRecord],
        plan: Plan,
        key: PseudonymKey,
        *,
        pushed: frozenset[str],
    ) -> RunSummary:
        """Send quarantined changes again, oldest first, each as the clinic's current state
        of its resource (or its deletion). A resource's records go once the global holds its
        current state; a refusal of it again leaves one record, of the current version."""
        by_resource: dict[str, list[QuarantineRecord]] = {}
        for record in sorted(records, key=lambda r: r.version):
            by_resource.setdefault(record.resourceId, []).append(record)
        changes = []
        for resource_id, kept in by_resource.items():
            local_id = resource_id.partition("/")[2]
            changes.append(await self._current(local_id, kept[-1].version))
        summary, settled = await self.write_now(changes, [], plan, key, pushed=pushed)
        if summary.error:
            return summary
        for item in settled:
            for record in by_resource.pop(f"{item.source.resource_type}/{item.source.id}", []):
                await release(self._local, record.id)
        # Refused again, or not anonymizable: only the current version's record stays.
        current = {record_id(self.id, change.identity()) for change in changes}
        for left in by_resource.values():
            for record in left:
                if record.id not in current:
                    await release(self._local, record.id)
        return summary

    async def reconcile(
        self,
        reconciler: Reconciler,
        plan: Plan,
        key: PseudonymKey,
        *,
        pushed: frozenset[str],
        repair: bool,
    ) -> tuple[Drift, RunSummary | None]:
        """Compare headquarters with the clinic for this type, partition by partition; with
        `repair`, write each partition's differences as they are found (write_now)."""
        drift = Drift(self.resource_type)
        partitions = await reconciler.partitions(self.resource_type)
        repaired = RunSummary(self.id, 0, Counters()) if repair else None
        for partition in range(partitions):
            found = await reconciler.compare(self.resource_type, partition, partitions, drift)
            if repaired is None or not (found.resend or found.delete):
                continue
            changes = [await self._current(local_id, 0) for local_id in found.resend]
            done, _ = await self.write_now(changes, found.delete, plan, key, pushed=pushed)
            repaired.counters = repaired.counters.add(done.counters)
            repaired.version, repaired.error = done.version, done.error
            if done.error:
                break
        return drift, repaired

    async def _current(self, local_id: str, version: int) -> Change:
        """The clinic's current state of one of this type's resources, or its deletion
        (at `version`, the last one known) when the clinic no longer has it."""
        found = await self._read_local(self.resource_type, local_id)
        return found or Change("deleted", self.resource_type, local_id, version, {})

    def _breaker(self) -> Breaker:
        return Breaker(self._limits.breaker_ratio, self._limits.breaker_min_entries)

    async def _drain(
        self,
        progress: _Progress,
        start: int,
        bound: int,
        plan: Plan,
        key: PseudonymKey,
        sink: GlobalSink,
    ) -> None:
        """Push (start, bound], checkpointing after each batch; `progress` always holds the
        last checkpoint saved, also when this raises.

        Windows are gathered in a backlog and sent in full batches; batch k+1 is read and
        anonymized while batch k is written, and the pipeline saves checkpoint k during write
        k+1, so the global never waits for the clinic. Empty windows are remembered in memory
        only: persisting them would itself be a write (a new txid) and wake every stream again.
        """
        started = datetime.now(UTC)
        breaker = self._breaker()

        async def write(batch: _Prepared) -> Counters:
            counters, _ = await self._write(batch.outgoing, sink, breaker)
            return batch.counters.add(counters)

        async def save(upper: int, counters: Counters) -> None:
            progress.info = await self._advance(progress.info, upper, counters, started)
            progress.total = progress.total.add(counters)

        pipeline = Pipeline(write, save, overlap_for=self._limits.lease_seconds / 2)

        async def send(batch: Batch) -> None:
            if pipeline.idle:
                await self._claim(progress, sink, key)
            prepared, upper = await self._prepare(batch.changes, plan, key), batch.upper
            # The batch held the last references to the clinic's bodies (the feed and the
            # loop let go of them): they go now, while the write before is still in flight,
            # not after it, and PHI is kept no longer than needed (a traceback aside).
            del batch
            await pipeline.submit(prepared, upper)

        backlog = Backlog(start)
        full = self._limits.max_entries
        try:
            async for upper, changes in self._feed.windows(start, bound):
                backlog.add(upper, changes)
                changes.clear()  # the backlog holds them now, and nothing else may
                while len(backlog) >= full:
                    await send(backlog.take(full))
            if len(backlog):
                await send(backlog.take(len(backlog)))
            await pipeline.finish()
            if progress.info.status == "failed":
                progress.info = await self._advance(
                    progress.info, progress.info.version, Counters(), started
                )
        except Exception:
            await pipeline.drain()  # every acknowledged write keeps its checkpoint
            raise
        finally:
            pipeline.cancel()  # cancelled (shutdown): no write may land after the run

    async def _claim(self, progress: _Progress, sink: GlobalSink, key: PseudonymKey) -> None:
        """Take the stream's lease, or renew our own: a lease left by an earlier run may be
        about to lapse. Called before the first write to the global, with no write in flight:
        If-Match makes the claim atomic, so of two runners only one goes on. The claim's
        version is the run's epoch, which fences its writes at the global (fence.py)."""
        progress.info = await self._checkpoints.save(
            progress.info.model_copy(update={"lease": self._lease()})
        )
        fence = Fence(
            self._global,
            key,
            self.id,
            epoch=int(progress.info.version_id or 0),
            known=progress.info.fence,
        )
        await fence.open()
        sink.fence = fence
        self._fence = fence

    async def _prepare(self, changes: list[Change], plan: Plan, key: PseudonymKey) -> _Prepared:
        """Anonymize a batch of changes; one that cannot be anonymized is quarantined."""
        outgoing: list[Outgoing] = []
        refused = 0
        for n, change in enumerate(changes, 1):
            if n % _YIELD_EVERY == 0:
                # Anonymizing is CPU work on the event loop: let the transaction in flight
                # move its bytes meanwhile, or the global would wait for this batch.
                await asyncio.sleep(0)
            try:
                outgoing.append(to_outgoing(change, plan, key))
            except Exception as exc:  # one malformed resource must not stop the stream
                # The exception text may quote the resource, so only its type is kept.
                global_id = key.resource_id(change.resource_type, change.id)
                reason = f"anonymization failed: {type(exc).__name__}"
                refused += await self._quarantine(change.identity(), global_id, reason)
        return _Prepared(outgoing, Counters(read=len(changes), quarantined=refused))

    async def _write(
        self, outgoing: list[Outgoing], sink: GlobalSink, breaker: Breaker
    ) -> tuple[Counters, list[Outgoing]]:
        """Send what the global does not hold yet; record what it wrote or refused, unless
        the breaker opens (BreakerOpen: the refusals are then not quarantined). Returns the
        counts, and the items the global now holds (written, or unchanged since sent)."""
        settled: list[Outgoing] = []
        fresh: list[Outgoing] = []
        for item in outgoing:  # one look at the memory per item: this is the hot path
            (settled if self._sent.unchanged(item) else fresh).append(item)
        counters = Counters(skipped=len(settled))
        limits = self._limits
        for batch in batches(order_by_references(fresh), limits.max_entries, limits.max_bytes):
            result = await sink.write(batch)
            for item in result.written:
                # A conditional create that found the resource there wrote nothing we know of.
                if not item.if_absent or item.key in result.created:
                    self._sent.remember(item)
            # A target pushed on a referrer's behalf belongs to its own stream, which records
            # and counts it; here only this stream's changes are.
            refusals = [(i, reason) for i, reason in result.quarantined if not i.if_absent]
            sent = sum(1 for i in batch if not i.if_absent)
            breaker.judge(sent, len(refusals), refusals[0][1] if refusals else "")
            rejected = 0
            for item, reason in refusals:
                rejected += await self._quarantine(item.source, item.target_id, reason)
            own = [i for i in result.written if not i.if_absent]
            settled += own
            counters = counters.add(
                Counters(
                    written=sum(1 for i in own if i.method == "PUT"),
                    deleted=sum(1 for i in own if i.method == "DELETE"),
                    quarantined=rejected,
                )
            )
        return counters, settled

    async def _quarantine(self, change: ChangeId, global_id: str, reason: str) -> int:
        """Record a refused change in the clinic (its local id stays there) and log it once,
        by its pseudonymous id only; 1 if the refusal is new, 0 if a replay saw it before."""
        if not await quarantine(self._local, self.id, change, reason):
            return 0
        log.error(
            "stream %s: version %s of %s/%s quarantined: %s",
            self.id,
            change.version,
            change.resource_type,
            global_id,
            reason,
        )
        return 1

    def _fence_position(self, info: ChangesInfo) -> int:
        """The last fence token known written, to keep in the checkpoint (fence.py)."""
        return max(self._fence.last if self._fence is not None else 0, info.fence)

    def _lease(self) -> Lease:
        return Lease(
            owner=self._owner,
            until=datetime.now(UTC) + timedelta(seconds=self._limits.lease_seconds),
        )

    async def _advance(
        self, info: ChangesInfo, version: int, counters: Counters, started: datetime
    ) -> ChangesInfo:
        self._saved = max(self._saved, version)
        now = datetime.now(UTC)
        updated = info.model_copy(
            update={
                "lease": self._lease() if info.lease else None,
                "version": version,
                "fence": self._fence_position(info),
                "status": "idle",
                "counters": info.counters.add(counters),
                "lastStartedAt": started,
                "lastFinishedAt": now,
                "lastSuccessAt": now,
            }
        )
        return await self._checkpoints.save(updated)

    async def _record_failure(self, info: ChangesInfo, reason: str) -> None:
        failed = info.model_copy(
            update={
                "status": "failed",
                "lastFinishedAt": datetime.now(UTC),
                "lastError": LastError(at=datetime.now(UTC), message=reason[:500]),
            }
        )
        try:
            await self._checkpoints.save(failed)
        except Exception as exc:  # the failure is already logged; status is best effort
            log.warning("stream %s: could not record failure: %s", self.id, type(exc).__name__)
