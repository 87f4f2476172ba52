"""A stream's state in one place: its checkpoint, its lease and its run facts (`ChangesInfo`).

The transitions are pure (a new `ChangesInfo` from the old one and the time), so the rules can
be tested without I/O; `StreamState` applies them and saves each through the checkpoint
store, with If-Match (checkpoint.py), so that of two runners only one advances a stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.model import ChangesInfo, Counters, LastError, Lease
from app.sync.checkpoint import CheckpointStore

log = logging.getLogger("aidbox_sync.stream")


@dataclass(frozen=True)
class Runner:
    """Who runs streams in this process, and for how long a claim holds without renewal."""

    owner: str
    lease_seconds: float

    def lease(self, now: datetime) -> Lease:
        """A lease taken or renewed at `now`."""
        return Lease(owner=self.owner, until=now + timedelta(seconds=self.lease_seconds))


def held_elsewhere(info: ChangesInfo, owner: str, now: datetime) -> str | None:
    """Why `owner` may not write the stream now: another runner holds an unexpired lease (one
    runner per stream, docs/push.md)."""
    held = info.lease
    if held and held.owner != owner and held.until > now:
        return f"held by runner {held.owner} until {held.until.isoformat()}"
    return None


def claimed(info: ChangesInfo, runner: Runner, now: datetime) -> ChangesInfo:
    """The stream taken (or its lease renewed) by `runner`."""
    return info.model_copy(update={"lease": runner.lease(now)})


def advanced(
    info: ChangesInfo,
    runner: Runner,
    *,
    version: int,
    fence: int,
    counters: Counters,
    started: datetime,
    now: datetime,
) -> ChangesInfo:
    """Everything up to `version` applied on the target: the checkpoint moves there, the lease
    is renewed if held, the run's counts are added and the stream is idle again."""
    return info.model_copy(
        update={
            "lease": runner.lease(now) if info.lease else None,
            "version": version,
            "fence": max(fence, info.fence),
            "status": "idle",
            "counters": info.counters.add(counters),
            "lastStartedAt": started,
            "lastFinishedAt": now,
            "lastSuccessAt": now,
        }
    )


def counted(info: ChangesInfo, *, fence: int, counters: Counters) -> ChangesInfo:
    """Writes made outside a run (`$requeue`, `$reconcile`): counted, checkpoint unmoved."""
    return info.model_copy(
        update={"fence": max(fence, info.fence), "counters": info.counters.add(counters)}
    )


def failed(info: ChangesInfo, reason: str, now: datetime) -> ChangesInfo:
    """A run that stopped: the reason (never a body: stream.failure_reason) and when."""
    return info.model_copy(
        update={
            "status": "failed",
            "lastFinishedAt": now,
            "lastError": LastError(at=now, message=reason[:500]),
        }
    )


def rewound(info: ChangesInfo, version: int) -> ChangesInfo:
    """The checkpoint moved back to `version` for a replay; the counters restart with it.
    Moving forward would skip changes: refused (ValueError)."""
    if version > info.version:
        raise ValueError(
            f"version {version} is ahead of the checkpoint {info.version}: "
            "moving forward would skip changes"
        )
    return info.model_copy(update={"version": version, "status": "idle", "counters": Counters()})


class StreamState:
    """The last saved `ChangesInfo` of one stream in one run, and the saves that move it."""

    def __init__(self, store: CheckpointStore, runner: Runner, info: ChangesInfo) -> None:
        self._store = store
        self._runner = runner
        self.info = info

    async def _save(self, updated: ChangesInfo) -> ChangesInfo:
        self.info = await self._store.save(updated)
        return self.info

    async def claim(self) -> ChangesInfo:
        """Take the stream's lease, or renew our own (atomic by If-Match)."""
        return await self._save(claimed(self.info, self._runner, datetime.now(UTC)))

    async def advance(
        self, version: int, fence: int, counters: Counters, started: datetime
    ) -> ChangesInfo:
        """Save the checkpoint at `version` (see `advanced`)."""
        now = datetime.now(UTC)
        return await self._save(
            advanced(
                self.info,
                self._runner,
                version=version,
                fence=fence,
                counters=counters,
                started=started,
                now=now,
            )
        )

    async def count(self, fence: int, counters: Counters) -> ChangesInfo:
        """Save what writes outside a run did (see `counted`)."""
        return await self._save(counted(self.info, fence=fence, counters=counters))

    async def fail(self, reason: str) -> None:
        """Record a failure; best effort (the failure is already logged)."""
        try:
            await self._save(failed(self.info, reason, datetime.now(UTC)))
        except Exception as exc:
            log.warning("stream %s: could not record failure: %s", self.info.id, type(exc).__name__)
