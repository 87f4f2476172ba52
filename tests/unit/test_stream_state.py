"""The stream state's transitions (app/sync/state.py), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.model import ChangesInfo, Counters, Direction, Lease
from app.sync.state import Runner, advanced, claimed, counted, failed, held_elsewhere, rewound

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ME = Runner("host-a http://app-a", lease_seconds=60)


def info(**fields: object) -> ChangesInfo:
    return ChangesInfo(
        id="pull-Organization", direction=Direction.PULL, type="Organization", **fields
    )


def test_a_live_lease_of_another_runner_holds_the_stream_and_a_lapsed_one_does_not() -> None:
    theirs = info(lease=Lease(owner="host-b", until=NOW + timedelta(seconds=5)))
    assert "held by runner host-b" in (held_elsewhere(theirs, ME.owner, NOW) or "")
    assert held_elsewhere(theirs, ME.owner, NOW + timedelta(seconds=6)) is None
    assert held_elsewhere(claimed(theirs, ME, NOW), ME.owner, NOW) is None


def test_advancing_moves_the_checkpoint_adds_the_counts_and_keeps_the_highest_fence() -> None:
    before = claimed(info(version=7, fence=12, counters=Counters(read=3, written=3)), ME, NOW)
    later = NOW + timedelta(seconds=30)
    after = advanced(
        before,
        ME,
        version=19,
        fence=4,
        counters=Counters(read=2, deleted=2),
        started=NOW,
        now=later,
    )
    assert (after.version, after.fence, after.status) == (19, 12, "idle")
    assert after.counters == Counters(read=5, written=3, deleted=2)
    assert after.lease is not None and after.lease.until == later + timedelta(seconds=60)
    assert after.lastSuccessAt == later and after.lastStartedAt == NOW


def test_advancing_without_a_lease_takes_none() -> None:
    after = advanced(info(), ME, version=1, fence=0, counters=Counters(), started=NOW, now=NOW)
    assert after.lease is None


def test_writes_outside_a_run_are_counted_without_moving_the_checkpoint() -> None:
    after = counted(info(version=9, fence=2), fence=5, counters=Counters(written=1))
    assert (after.version, after.fence, after.counters.written) == (9, 5, 1)


def test_a_failure_keeps_the_checkpoint_and_a_short_reason() -> None:
    after = failed(info(version=4), "x" * 900, NOW)
    assert (after.version, after.status) == (4, "failed")
    assert after.lastError is not None and len(after.lastError.message) == 500


def test_a_rewind_restarts_the_counters_and_never_moves_forward() -> None:
    after = rewound(info(version=10, counters=Counters(read=4)), 3)
    assert (after.version, after.counters) == (3, Counters())
    with pytest.raises(ValueError, match="ahead of the checkpoint"):
        rewound(info(version=10), 11)
