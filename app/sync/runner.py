"""Runs a clinic's streams, both ways: on a timer, on subscription wake-ups, and on `$sync`.

Push streams (clinic → headquarters) wake on the clinic's subscriptions and on the timer; pull
streams (headquarters → clinic) on the timer, as headquarters cannot call a clinic. Streams of
the same `order` run concurrently (bounded by SYNC_CONCURRENCY); lower orders go first so
referenced types usually reach the target before their referrers. A stream never has two runs
at once in this process (a lock per stream); across processes the checkpoint's If-Match keeps
them from both advancing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from app.aidbox.client import AidboxClient, AidboxError
from app.anonymize import PseudonymKey
from app.errors import SyncError
from app.model import ChangesInfo, Counters, Direction, StreamConfig
from app.sync import state
from app.sync.checkpoint import CheckpointStore
from app.sync.config import ConfigSource, InForce
from app.sync.feed import Change, read_current
from app.sync.instance import InstanceCheck, InstanceInactive
from app.sync.local_edits import LocalEditScan
from app.sync.metrics import SyncMetrics
from app.sync.quarantine import records as quarantine_records
from app.sync.reconcile import Reconciler
from app.sync.repair import reconcile, requeue
from app.sync.sent import SentCache
from app.sync.shared_ids import HeadquartersIds
from app.sync.source import AidboxSource, HeadquartersBound, HeadquartersSource
from app.sync.state import Runner
from app.sync.stream import Ends, Limits, RunSummary, Stream, failure_reason, logged_reason
from app.sync.transform import Anonymize, Copy
from app.sync.watermark import Watermark

log = logging.getLogger("aidbox_sync.runner")

_FIRST_RECHECK = 0.02  # seconds before looking again at a bound held back by an open transaction


class UnknownStream(SyncError, LookupError):
    """A stream was asked for that the configuration does not enable."""


class SyncService:
    """All streams of one clinic, push and pull."""

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
        self.instance = InstanceCheck(global_, key.namespace)
        self.checkpoints = CheckpointStore(local)
        self.metrics = SyncMetrics()
        self.wakeups: dict[str, int] = {}
        self.clinic = AidboxSource(local)
        self.headquarters = HeadquartersSource(global_)
        self._limits = limits
        self.owner = owner
        self._runner = Runner(owner, limits.lease_seconds)
        self._poll_interval = poll_interval
        self._settle_timeout = settle_timeout
        self._watermark = Watermark(local)
        self._hq_bound = HeadquartersBound(self.headquarters)
        self.headquarters_ids = HeadquartersIds(self.headquarters, self._hq_bound)
        self.config = ConfigSource(local, self.headquarters_ids.ids)
        self.bound_errors: dict[Direction, str] = {}  # why a source's bound is unknown now
        self._edits = LocalEditScan(self.clinic, self.checkpoints)
        # Per direction: push and pull write to different Aidboxes.
        self._sent = {d: SentCache() for d in Direction}
        self._streams: dict[str, Stream] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._semaphore = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        # Highest version each stream has fully carried in this process, for wait_synced().
        self._reached: dict[str, int] = {}
        self._progress = asyncio.Condition()

    # -- building blocks -------------------------------------------------------------------

    async def read_local(self, resource_type: str, local_id: str) -> Change | None:
        """The clinic's current copy of a resource, as a change (None if gone)."""
        return await read_current(self.clinic, resource_type, local_id)

    def stream(self, resource_type: str, direction: Direction = Direction.PUSH) -> Stream:
        """The stream of a type and direction (created on first use)."""
        sid = ChangesInfo.stream_id(direction, resource_type)
        if sid not in self._streams:
            push = direction is Direction.PUSH
            self._streams[sid] = Stream(
                direction,
                resource_type,
                source=self.clinic if push else self.headquarters,
                target=self.global_ if push else self.local,
                local=self.local,
                checkpoints=self.checkpoints,
                sent=self._sent[direction],
                limits=self._limits,
                runner=self._runner,
                key=self.key,
            )
        return self._streams[sid]

    async def configured(self) -> InForce:
        """The configuration in force, with headquarters' own resources of its pulled types
        learned up to headquarters' bound now (shared_ids.py): what the push, a requeue, a
        reconciliation and the dry run anonymize with."""
        return await self._learned(await self.config.load())

    async def _learned(self, in_force: InForce) -> InForce:
        """`in_force`, once headquarters' own resources of its pulled types are learned."""
        await self.headquarters_ids.learn(in_force.plan.shared.types)
        return in_force

    def lock(self, stream_id: str) -> asyncio.Lock:
        """The lock that keeps one run (or reset) of a stream at a time in this process."""
        return self._locks.setdefault(stream_id, asyncio.Lock())

    def _ends(self, cfg: StreamConfig, in_force: InForce) -> Ends:
        carried = frozenset(s.type for s in in_force.config.enabled_streams(cfg.direction))
        if cfg.direction is Direction.PUSH:
            return Ends(Anonymize(in_force.plan, self.key), carried)

        async def look_for_local_edits() -> None:
            await self._look_for_local_edits(cfg.type)

        return Ends(Copy(), carried, before_writing=look_for_local_edits)

    # -- running ---------------------------------------------------------------------------

    async def _run_one(self, cfg: StreamConfig, bound: int, in_force: InForce) -> RunSummary:
        stream = self.stream(cfg.type, cfg.direction)
        # The stream's lock first: callers queued on one stream must not hold the slots that
        # other streams need.
        async with self.lock(stream.id), self._semaphore:
            ends = self._ends(cfg, in_force)
            summary = await stream.run(bound, ends)
        self.metrics.observe_run(
            summary.stream, summary.version, summary.counters, summary.error is None, time.time()
        )
        async with self._progress:
            self._reached[stream.id] = max(self._reached.get(stream.id, 0), summary.version)
            self._progress.notify_all()
        return summary

    async def _look_for_local_edits(self, resource_type: str) -> None:
        """Before a pull overwrites them, report the clinic's edits of pulled resources
        (local_edits.py), and forget having sent them: headquarters' next change of one is
        written even if its body is the one pulled before (a rename undone, a re-save). A
        failure to look never holds the pull back."""
        try:
            found = await self._edits.scan(resource_type, await self._watermark.advance())
            for change in found:
                self._sent[Direction.PULL].forget((change.resource_type, change.id))
        except Exception as exc:
            log.warning("pull %s: local edits not looked at: %s", resource_type, logged_reason(exc))

    def _unreached(self, cfg: StreamConfig, reason: str) -> RunSummary:
        sid = ChangesInfo.stream_id(cfg.direction, cfg.type)
        self.metrics.observe_run(sid, self._reached.get(sid, 0), Counters(), False, time.time())
        return RunSummary(sid, self._reached.get(sid, 0), Counters(), error=reason)

    async def wait_synced(
        self, resource_type: str, version: int, direction: Direction = Direction.PUSH
    ) -> None:
        """Return once the stream of `resource_type` has carried everything up to `version`."""
        sid = ChangesInfo.stream_id(direction, resource_type)
        async with self._progress:
            await self._progress.wait_for(lambda: self._reached.get(sid, 0) >= version)

    async def _push_bound(self, settle: bool) -> int:
        """The clinic's settled bound (watermark.py); a failure is kept for `$sync-status`."""
        try:
            bound = await (
                self._watermark.settle(self._settle_timeout)
                if settle
                else self._watermark.advance()
            )
        except SyncError as exc:
            self.bound_errors[Direction.PUSH] = failure_reason(exc)
            raise
        self.bound_errors.pop(Direction.PUSH, None)
        return bound

    async def _pull_bound(
        self, streams: list[StreamConfig], settle: bool
    ) -> tuple[int | None, dict[str, SyncError]]:
        """Headquarters' settled bound, asked through the pull streams' types in turn (one
        bound covers every type, source.py), and the streams whose type headquarters refused
        (not offered, or pushed by this clinic): one such type must not hold back the others.
        The bound is None when headquarters did not answer it for any type."""
        refused: dict[str, SyncError] = {}
        for cfg in streams:
            try:
                bound = await self._hq_bound.ask(cfg.type, settle=settle)
            except AidboxError as exc:
                if exc.transient:
                    raise
                refused[cfg.type] = exc
                continue
            self.bound_errors.pop(Direction.PULL, None)
            return bound, refused
        return None, refused

    async def sync(
        self,
        types: Iterable[str] | None = None,
        *,
        direction: Direction | None = None,
        wait_settled: bool = True,
    ) -> list[RunSummary]:
        """Run the enabled streams (all, of one direction, or those of `types`) up to their
        source's settled bound.

        With `wait_settled`, first wait (bounded) for transactions open now to finish, so the
        run includes every change committed before the call. Nothing runs unless headquarters
        has this clinic registered and active (InstanceInactive).
        """
        chosen = await self._enabled(types, direction)
        await self.instance.require_active()
        summaries: list[RunSummary] = []
        for way in Direction:
            streams = [s for s in chosen if s.direction is way]
            if not streams:
                continue
            if way is Direction.PUSH:
                # The clinic's own Aidbox: a failure stops the call (the operation says why).
                bound: int | None = await self._push_bound(wait_settled)
                try:
                    # the push runs with the configuration whose pulled types it learned (the
                    # one `_enabled` just loaded)
                    in_force = await self._learned(self.config.current)
                except SyncError as exc:  # headquarters unreachable: the push waits
                    reason = f"headquarters' own resources unknown: {failure_reason(exc)}"
                    self.bound_errors[Direction.PULL] = reason
                    log.error("push: headquarters' own resources unknown: %s", logged_reason(exc))
                    summaries += [self._unreached(s, reason) for s in streams]
                    continue
                if in_force.plan.shared.types:  # headquarters answered its bound again
                    self.bound_errors.pop(Direction.PULL, None)
            else:
                in_force = self.config.current
                try:
                    bound, refused = await self._pull_bound(streams, wait_settled)
                except SyncError as exc:
                    refused = {s.type: exc for s in streams}
                    bound = None
                if bound is None:
                    # Headquarters gave no bound: the pull waits, the push stands.
                    first = next(iter(refused.values()))
                    self.bound_errors[Direction.PULL] = failure_reason(first)
                    log.error("pull: headquarters' settled bound unknown: %s", logged_reason(first))
                summaries += [
                    self._unreached(s, failure_reason(refused[s.type]))
                    for s in streams
                    if s.type in refused
                ]
                streams = [s for s in streams if s.type not in refused]
            assert bound is not None or not streams
            for _, group in itertools.groupby(streams, key=lambda s: s.order):
                runs = (self._run_one(s, bound, in_force) for s in group)
                summaries += await asyncio.gather(*runs)
        return summaries

    async def requeue(
        self, stream_id: str | None = None, record_id: str | None = None
    ) -> list[RunSummary]:
        """Send the quarantined changes (all, of one stream, or one record's) again, streams
        in run order, each as the source's current state (docs/push.md, "Quarantine and
        $requeue"), under the configuration in force now (the cause may have been fixed)."""
        await self.instance.require_active()
        held = await quarantine_records(self.local, stream_id, record_id)
        if record_id is not None and not held:
            raise UnknownStream(f"SyncQuarantine/{record_id} does not exist")
        in_force = await self.configured()
        summaries = []
        for cfg in in_force.config.enabled_streams():
            stream = self.stream(cfg.type, cfg.direction)
            if mine := [r for r in held if r.stream == stream.id]:
                async with self.lock(stream.id), self._semaphore:
                    ends = self._ends(cfg, in_force)
                    summaries.append(await requeue(stream, mine, ends, self.local))
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
        streams = await self._enabled(types, Direction.PUSH)
        await self.instance.require_active()
        in_force = await self._learned(self.config.current)  # the one `_enabled` loaded
        reconciler = Reconciler(self.local, self.global_, in_force.plan, self.key)
        reports: list[dict[str, object]] = []
        for cfg in streams:
            stream = self.stream(cfg.type)
            try:
                ends = self._ends(cfg, in_force)
                async with self.lock(stream.id), self._semaphore:
                    drift, repaired = await reconcile(stream, reconciler, ends, repair=repair)
            except Exception as exc:  # this type's report says why; the others go on
                reason = failure_reason(exc)
                log.error("reconcile %s failed: %s", cfg.type, logged_reason(exc))
                reports.append({"type": cfg.type, "error": reason})
                continue
            report = drift.as_json()
            if repaired is not None:
                report["repaired"] = repaired.as_json()
                if repaired.error:
                    report["error"] = repaired.error
            reports.append(report)
        return reports

    def held_elsewhere(self, info: ChangesInfo) -> str | None:
        """Why this service may not run the stream now (another runner's lease), if so."""
        return state.held_elsewhere(info, self._runner.owner, datetime.now(UTC))

    def watermark_status(self) -> dict[str, object]:
        """The clinic's settled bound, and what holds it back (an open transaction) if any;
        headquarters' settled bound as last learned."""
        since = self._watermark.open_since
        return {
            "settled": self._watermark.settled,
            "waiting": self._watermark.pending,
            "oldestOpenTransactionSince": (
                datetime.fromtimestamp(since / 1e6, UTC).isoformat() if since else None
            ),
            "headquartersSettled": self._hq_bound.settled,
            # Pulled types whose list of headquarters' own resources could not be read last
            # (shared_ids.py): references to those not learned yet are removed meanwhile.
            "headquartersIdsError": dict(self.headquarters_ids.errors) or None,
            # Why the last attempt to learn a bound failed (None once one succeeds again).
            "error": self.bound_errors.get(Direction.PUSH),
            "headquartersError": self.bound_errors.get(Direction.PULL),
        }

    def wake(self, resource_type: str) -> None:
        """A subscription saw a change of `resource_type`: run soon (coalesced)."""
        self.wakeups[resource_type] = self.wakeups.get(resource_type, 0) + 1
        self._wake.set()

    async def _cycle(self, direction: Direction | None) -> None:
        try:
            await self.sync(direction=direction, wait_settled=False)
        except InstanceInactive:
            pass  # said once, when it changed (app/sync/instance.py), and in $sync-status
        except Exception as exc:  # keep the loop alive; the cause is in status and logs
            log.error("sync cycle failed: %s", logged_reason(exc))

    async def run_forever(self) -> None:
        """Background loop: push after each wake-up; both directions every poll interval."""
        recheck = _FIRST_RECHECK
        pull_due = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            now = time.monotonic()
            both = now >= pull_due
            if both:
                pull_due = now + self._poll_interval
            await self._cycle(None if both else Direction.PUSH)
            if self._watermark.pending:
                # A transaction was still open: look again soon, backing off while it lasts.
                await asyncio.sleep(recheck)
                recheck = min(recheck * 2, self._poll_interval)
                self._wake.set()
            else:
                recheck = _FIRST_RECHECK

    async def _enabled(
        self, types: Iterable[str] | None, direction: Direction | None = None
    ) -> list[StreamConfig]:
        """The enabled streams of the configuration in force, in run order (of `direction`;
        those of `types`, which must all be enabled)."""
        config = (await self.config.load()).config
        if self._on_push_types is not None:
            pushed = [s.type for s in config.enabled_streams(Direction.PUSH)]
            try:
                await self._on_push_types(pushed)
            except Exception as exc:  # polling still covers the type; the next load retries
                log.warning("could not follow the push types: %s", logged_reason(exc))
        enabled = config.enabled_streams(direction)
        if types is None:
            return enabled
        wanted = set(types)
        if missing := wanted - {s.type for s in enabled}:
            way = f"{direction.value} " if direction else ""
            raise UnknownStream(f"no enabled {way}stream for {', '.join(sorted(missing))}")
        return [s for s in enabled if s.type in wanted]

    async def reset(self, direction: Direction, resource_type: str, version: int) -> ChangesInfo:
        """Move a stream's checkpoint back to `version` (a replay, e.g. a backfill from 0).

        Runs under the stream's lock, so no run of it is under way, and forgets what was sent
        for the type, so the replay re-sends even unchanged resources. The counters restart.
        """
        await self._enabled([resource_type], direction)
        sid = ChangesInfo.stream_id(direction, resource_type)
        async with self.lock(sid):
            info = await self.checkpoints.load(direction, resource_type)
            saved = await self.checkpoints.save(state.rewound(info, version))
            self._sent[direction].forget_type(resource_type)
            return saved
