"""Cutting read changes into full transactions, each with the checkpoint it completes
(app/sync/backlog.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sync.backlog import Backlog
from app.sync.feed import Change


def _change(rid: str, version: int) -> Change:
    return Change("updated", "Patient", rid, version, {"id": rid})


def _ids(changes: list[Change]) -> list[str]:
    return [c.id for c in changes]


def test_batches_are_full_across_windows_and_checkpoint_the_last_window_done() -> None:
    backlog = Backlog(start=100)
    backlog.add(110, [_change("a", 101), _change("b", 105), _change("c", 110)])
    backlog.add(120, [_change("d", 111), _change("e", 115), _change("f", 119), _change("g", 120)])
    backlog.add(130, [_change("h", 125), _change("i", 130)])
    first = backlog.take(5)
    # d and e of the second window are sent, f and g still wait: only the first window is done.
    assert (_ids(first.changes), first.upper) == (["a", "b", "c", "d", "e"], 110)
    rest = backlog.take(5)
    assert (_ids(rest.changes), rest.upper) == (["f", "g", "h", "i"], 130)
    assert len(backlog) == 0


def test_parts_of_a_window_hold_the_checkpoint_until_its_last_part_is_sent() -> None:
    backlog = Backlog(start=100)
    backlog.add(110, [_change("a", 105)])
    backlog.add(None, [_change("b", 111), _change("c", 111)])  # a large transaction at 111
    first = backlog.take(3)
    # Everything read is sent, but more of the window up to 111 is still to come.
    assert (_ids(first.changes), first.upper) == (["a", "b", "c"], 110)
    backlog.add(None, [_change("d", 111)])
    backlog.add(111, [_change("e", 111)])
    assert backlog.take(1).upper == 110  # e waits
    last = backlog.take(1)
    assert (_ids(last.changes), last.upper) == (["e"], 111)


def test_a_later_change_replaces_the_waiting_one_and_takes_its_place() -> None:
    backlog = Backlog(start=0)
    backlog.add(10, [_change("a", 3), _change("b", 7)])
    backlog.add(20, [_change("a", 15)])
    assert len(backlog) == 2
    batch = backlog.take(1)
    # a's first state is never sent; its window is done once b is.
    assert (_ids(batch.changes), batch.upper) == (["b"], 10)
    last = backlog.take(1)
    assert ([c.version for c in last.changes], last.upper) == ([15], 20)


def test_empty_windows_before_a_waiting_change_are_covered() -> None:
    backlog = Backlog(start=0)
    backlog.add(10, [_change("a", 10)])
    backlog.add(20, [])
    backlog.add(30, [_change("b", 25)])
    assert backlog.take(1).upper == 20


def test_a_batch_that_completes_no_window_keeps_the_checkpoint() -> None:
    backlog = Backlog(start=50)
    backlog.add(60, [_change(f"p{i}", 51 + i) for i in range(5)])
    assert backlog.take(2).upper == 50
    assert backlog.take(2).upper == 50
    assert backlog.take(2).upper == 60


def test_the_checkpoint_stays_before_a_window_whose_first_change_was_taken_alone() -> None:
    backlog = Backlog(start=0)
    backlog.add(100, [_change("a", 10), _change("b", 20), _change("c", 30)])
    assert backlog.take(1).upper == 0
    backlog.add(200, [_change("d", 150)])
    # b and c of the first window still wait.
    assert backlog.take(1).upper == 0
    assert backlog.take(3).upper == 200


def test_an_older_change_after_a_newer_current_state_is_not_sent() -> None:
    # The feed read a@50 as the clinic's current state while reading the window up to 10;
    # the window up to 30 then holds a@30, an older state that must not follow it out.
    backlog = Backlog(start=0)
    backlog.add(10, [_change("a", 50)])
    assert [c.version for c in backlog.take(1).changes] == [50]
    backlog.add(30, [_change("a", 30), _change("b", 25)])
    backlog.add(40, [_change("a", 35)])
    batch = backlog.take(5)
    assert ([(c.id, c.version) for c in batch.changes], batch.upper) == ([("b", 25)], 40)
    # A later change of a leaves as usual.
    backlog.add(60, [_change("a", 55)])
    assert [c.version for c in backlog.take(5).changes] == [55]


def test_windows_must_come_in_order() -> None:
    backlog = Backlog(start=100)
    with pytest.raises(ValueError):
        backlog.add(100, [])
    backlog.add(200, [])
    with pytest.raises(ValueError):
        backlog.add(150, [])


# Windows of changes to a few resources (so some change several times), and batch sizes.
windows = st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), min_size=1, max_size=12)


@given(windows=windows, sizes=st.lists(st.integers(1, 7), min_size=1, max_size=30))
def test_a_checkpoint_never_passes_a_change_that_was_not_sent(
    windows: list[list[str]], sizes: list[int]
) -> None:
    backlog = Backlog(start=0)
    read: list[tuple[Change, int]] = []  # every change added, with its window's upper bound
    sent: list[Change] = []
    checkpoints: list[tuple[int, int]] = []  # (checkpoint, how many changes were sent by then)
    sizes_left = iter(sizes)
    for n, ids in enumerate(windows, 1):
        upper = n * 100
        changes = []
        # The feed yields one change per resource per window, versions inside the window.
        for i, rid in enumerate(dict.fromkeys(ids)):
            changes.append(_change(rid, upper - 10 + i))
        backlog.add(upper, changes)
        read += [(c, upper) for c in changes]
        size = next(sizes_left, None)
        while size is not None and len(backlog) >= size:  # as the stream does
            batch = backlog.take(size)
            assert len(batch.changes) == size
            sent += batch.changes
            checkpoints.append((batch.upper, len(sent)))
    final = backlog.take(len(backlog))
    sent += final.changes
    checkpoints.append((final.upper, len(sent)))
    assert final.upper == len(windows) * 100  # everything sent: every window is done
    assert [u for u, _ in checkpoints] == sorted(u for u, _ in checkpoints)
    for checkpoint, count in checkpoints:
        # A replay from the checkpoint reads every window above it. So each resource's last
        # change at or below it was sent by then, or the resource changed again above it.
        below: dict[str, Change] = {c.id: c for c, upper in read if upper <= checkpoint}
        above = {c.id for c, upper in read if upper > checkpoint}
        for rid, change in below.items():
            assert change in sent[:count] or rid in above
    # Each resource's last state is sent, and no state twice.
    assert len(sent) == len({(c.id, c.version) for c in sent})
    assert all(c in sent for c in {c.id: c for c, _ in read}.values())
