"""Runs the push streams: on a timer, on subscription wake-ups, and on `$sync` requests.

Streams of the same `order` run concurrently (bounded by SYNC_CONCURRENCY); lower orders go
first so referenced types usually reach the global before their referrers. A stream never has
two runs at once in this process (a lock per stream); across processes the checkpoint's
If-Match keeps them from both advancing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from app.aidbox.client import AidboxClient
from app.anonymize import PseudonymKey
from app.errors import SyncError
from app.model import ChangesInfo, Counters, Direction, StreamConfig
from app.sync.checkpoint import CheckpointStore
from app.sync.config import ConfigSource
from app.sync.feed import Change, ChangeFeed, current_state
from app.sync.instance import InstanceCheck, InstanceInactive
from app.sync.metrics import SyncMetrics
from app.sync.quarantine import records as quarantine_records
from app.sync.reconcile import Reconciler
from app.sync.sent import SentCache
from app.sync.sink import ClinicState, GlobalSink
from app.sync.stream import Limits, PushStream, RunSummary, failure_reason
from app.sync.watermark import Watermark

log = logging.getLogger("aidbox_sync.runner")

_FIRST_RECHECK = 0.02  # seconds before looking again at a bound held back by an open transaction


class UnknownStream(SyncError, LookupError):
    """A stream was asked for that the configuration does not enable."""


class PushService:
    """All push streams of one clinic."""

    def __init__(
        self,
        *,
        local: AidboxClient,
        global_: AidboxClient,
        key: PseudonymKey,
        limits: Limits,
        poll_interval: float,
        concurrency: int,
        owner: str,
        settle_timeout: float = 2.0,
        on_push_types: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.local = local
        # Told the enabled push types at each load of the configuration (subscriptions).
        self._on_push_types = on_push_types
        self.global_ = global_
        self.key = key
        self.config = ConfigSource(local)
        self.instance = InstanceCheck(global_, key.namespace)
        self.checkpoints = CheckpointStore(local)
        self.metrics = SyncMetrics()
        self.wakeups: dict[str, int] = {}
        self._limits = limits
        self.owner = owner
        self._poll_interval = poll_interval
        self._settle_timeout = settle_timeout
        self._watermark = Watermark(local)
        self._sent = SentCache()
        self._streams: dict[str, PushStream] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._semaphore = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        # Highest version each stream has fully pushed in this process, for wait_synced().
        self._reached: dict[str, int] = {}
        self._progress = asyncio.Condition()

    # -- building blocks -------------------------------------------------------------------

    async def read_local(self, resource_type: str, local_id: str) -> Change | None:
        """The clinic's current copy of a resource, as a change (None if gone)."""
        return await current_state(self.local, resource_type, local_id)

    def _sink(self, clinic: ClinicState) -> GlobalSink:
        return GlobalSink(self.global_, clinic)

    def stream(self, resource_type: str) -> PushStream:
        """The stream of a type (created on first use)."""
        if resource_type not in self._streams:
            self._streams[resource_type] = PushStream(
                resource_type,
                local=self.local,
                global_=self.global_,
                # Windows no larger than a transaction: the first batch leaves sooner.
                feed=ChangeFeed(self.local, resource_type, page_size=self._limits.max_entries),
                sink_for=self._sink,
                checkpoints=self.checkpoints,
                sent=self._sent,
                read_local=self.read_local,
                limits=self._limits,
                owner=self.owner,
            )
        return self._streams[resource_type]

    def lock(self, resource_type: str) -> asyncio.Lock:
        """The lock that keeps one run (or reset) of a stream at a time in this process."""
        return self._locks.setdefault(resource_type, asyncio.Lock())

    # -- running ---------------------------------------------------------------------------

    async def _run_one(self, cfg: StreamConfig, bound: int) -> RunSummary:
        stream = self.stream(cfg.type)
        # The stream's lock first: callers queued on one stream must not hold the slots that
        # other streams need.
        async with self.lock(cfg.type), self._semaphore:
            in_force = self.config.current
            pushed = frozenset(s.type for s in in_force.config.enabled_streams(Direction.PUSH))
            summary = await stream.run(bound, in_force.plan, self.key, pushed=pushed)
        self.metrics.observe_run(
            summary.stream, summary.version, summary.counters, summary.error is None, time.time()
        )
        async with self._progress:
            self._reached[cfg.type] = max(self._reached.get(cfg.type, 0), summary.version)
            self._progress.notify_all()
        return summary

    async def wait_synced(self, resource_type: str, version: int) -> None:
        """Return once the stream of `resource_type` has pushed everything up to `version`."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._reached.get(resource_type, 0) >= version)

    async def sync(
        self, types: Iterable[str] | None = None, *, wait_settled: bool = True
    ) -> list[RunSummary]:
        """Run the enabled push streams (all, or those of `types`) up to the settled bound.

        With `wait_settled`, first wait (bounded) for transactions open now to finish, so the
        run includes every change committed before the call. Nothing runs unless headquarters
        has this clinic registered and active (InstanceInactive).
        """
        streams = await self._enabled(types)
        await self.instance.require_active()
        if wait_settled:
            bound = await self._watermark.settle(self._settle_timeout)
        else:
            bound = await self._watermark.advance()
        summaries: list[RunSummary] = []
        for _, group in itertools.groupby(streams, key=lambda s: s.order):
            summaries += await asyncio.gather(*(self._run_one(s, bound) for s in group))
        return summaries

    async def requeue(
        self, stream_id: str | None = None, record_id: str | None = None
    ) -> list[RunSummary]:
        """Send the quarantined changes (all, of one stream, or one record's) again, streams
        in run order,
        each as the clinic's current state (docs/push.md, "Quarantine and $requeue"), under
        the configuration in force now (the cause may have been fixed in the profile)."""
        await self.instance.require_active()
        held = await quarantine_records(self.local, stream_id, record_id)
        if record_id is not None and not held:
            raise UnknownStream(f"SyncQuarantine/{record_id} does not exist")
        in_force = await self.config.load()
        enabled = in_force.config.enabled_streams(Direction.PUSH)
        pushed = frozenset(s.type for s in enabled)
        summaries = []
        for cfg in enabled:
            stream = self.stream(cfg.type)
            if mine := [r for r in held if r.stream == stream.id]:
                async with self.lock(cfg.type), self._semaphore:
                    summary = await stream.requeue(mine, in_force.plan, self.key, pushed=pushed)
                summaries.append(summary)
        for orphan in sorted({r.stream for r in held} - {s.stream for s in summaries}):
            error = "no enabled stream: enable it in SyncConfig to requeue its quarantine"
            summaries.append(RunSummary(orphan, 0, Counters(), error=error))
        return summaries

    async def reconcile(
        self, types: Iterable[str] | None = None, *, repair: bool = False
    ) -> list[dict[str, object]]:
        """Compare headquarters with the anonymized clinic, per enabled push type (all, or
        those of `types`); with `repair`, fix each difference through the push's writes
        (docs/push.md, "Reconciliation"). One report per type; a type that fails says why."""
        streams = await self._enabled(types)
        await self.instance.require_active()
        in_force = await self.config.load()
        pushed = frozenset(s.type for s in in_force.config.enabled_streams(Direction.PUSH))
        reconciler = Reconciler(self.local, self.global_, in_force.plan, self.key)
        reports: list[dict[str, object]] = []
        for cfg in streams:
            stream = self.stream(cfg.type)
            try:
                async with self.lock(cfg.type), self._semaphore:
                    drift, repaired = await stream.reconcile(
                        reconciler, in_force.plan, self.key, pushed=pushed, repair=repair
                    )
            except Exception as exc:  # this type's report says why; the others go on
                reason = failure_reason(exc)
                log.error("reconcile %s failed: %s", cfg.type, reason)
                reports.append({"type": cfg.type, "error": reason})
                continue
            report = drift.as_json()
            if repaired is not None:
                report["repaired"] = repaired.as_json()
                if repaired.error:
                    report["error"] = repaired.error
            reports.append(report)
        return reports

    def watermark_status(self) -> dict[str, object]:
        """The settled bound, and what holds it back (an open transaction) if anything."""
        since = self._watermark.open_since
        return {
            "settled": self._watermark.settled,
            "waiting": self._watermark.pending,
            "oldestOpenTransactionSince": (
                datetime.fromtimestamp(since / 1e6, UTC).isoformat() if since else None
            ),
        }

    def wake(self, resource_type: str) -> None:
        """A subscription saw a change of `resource_type`: run soon (coalesced)."""
        self.wakeups[resource_type] = self.wakeups.get(resource_type, 0) + 1
        self._wake.set()

    async def run_forever(self) -> None:
        """Background loop: run after each wake-up, or every poll interval."""
        recheck = _FIRST_RECHECK
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                await self.sync(wait_settled=False)
            except InstanceInactive:
                pass  # said once, when it changed (app/sync/instance.py), and in $sync-status
            except Exception as exc:  # keep the loop alive; the cause is in status and logs
                log.error("sync cycle failed: %s", failure_reason(exc))
            if self._watermark.pending:
                # A transaction was still open: look again soon, backing off while it lasts.
                await asyncio.sleep(recheck)
                recheck = min(recheck * 2, self._poll_interval)
                self._wake.set()
            else:
                recheck = _FIRST_RECHECK

    async def _enabled(self, types: Iterable[str] | None) -> list[StreamConfig]:
        """The enabled push streams of the configuration in force (those of `types`, which
        must all be enabled)."""
        enabled = (await self.config.load()).config.enabled_streams(Direction.PUSH)
        if self._on_push_types is not None:
            try:
                await self._on_push_types([s.type for s in enabled])
            except Exception as exc:  # polling still covers the type; the next load retries
                log.warning("could not follow the push types: %s", failure_reason(exc))
        if types is None:
            return enabled
        wanted = set(types)
        if missing := wanted - {s.type for s in enabled}:
            raise UnknownStream(f"no enabled push stream for {', '.join(sorted(missing))}")
        return [s for s in enabled if s.type in wanted]

    async def reset(self, direction: Direction, resource_type: str, version: int) -> ChangesInfo:
        """Move a stream's checkpoint back to `version` (a replay, e.g. a backfill from 0).

        Runs under the stream's lock, so no run of it is under way, and forgets what was sent
        for the type, so the replay re-sends even unchanged resources. The counters restart.
        """
        await self._enabled([resource_type])
        async with self.lock(resource_type):
            info = await self.checkpoints.load(direction, resource_type)
            if version > info.version:
                raise ValueError(
                    f"version {version} is ahead of the checkpoint {info.version}: "
                    "moving forward would skip changes"
                )
            saved = await self.checkpoints.save(
                # The counters restart with the replay (Counters: "since ... last reset").
                info.model_copy(
                    update={"version": version, "status": "idle", "counters": Counters()}
                )
            )
            self._sent.forget_type(resource_type)
            return saved
