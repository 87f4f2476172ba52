"""The fence's numbering with transactions in flight side by side (app/sync/fence.py,
docs/push.md "Fenced writes"): which token a transaction takes, when, and why no token of a
stopped run can land after the next run has begun writing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sync.fence import MAX_IN_FLIGHT, Scan, Token, TokenWindow


def scanned(known: int, exists: set[int]) -> set[int]:
    """What a run's scan from `known` finds, the reads answered from `exists`."""
    scan = Scan(known)
    while seqs := scan.wanted():
        scan.record(seqs, [seq in exists for seq in seqs])
    return scan.present


def test_the_first_token_creates_every_number_an_older_run_may_still_land() -> None:
    window = TokenWindow(10, {12}, depth=2)
    first = window.take()
    # 11 is missing below 12 (an older run's transaction may still be on its way), and up to
    # MAX_IN_FLIGHT numbers past 12 may be too.
    assert first.seqs == (11, 13, 14, 15, 16)
    assert not window.ready()  # nothing else is sent before the first one landed
    window.land(first)
    assert window.last == 16 and window.take() == Token(17)


def test_token_n_is_taken_only_once_every_token_up_to_n_minus_depth_landed() -> None:
    window = TokenWindow(0, (), depth=2)
    window.land(window.take())  # 1..4
    a, b = window.take(), window.take()
    assert (a.seq, b.seq) == (5, 6) and not window.ready()
    window.land(b)  # out of order: 5 is still on its way
    assert window.last == 4 and not window.ready()
    window.land(a)
    assert window.last == 6 and window.take() == Token(7)


def test_a_refused_token_is_taken_again_before_any_new_number() -> None:
    window = TokenWindow(0, (), depth=2)
    first = window.take()
    window.give_back(first)  # refused whole: nothing of it committed
    assert window.take() == first  # the reserve goes with it
    window.land(first)
    a, b = window.take(), window.take()
    window.give_back(a)
    window.land(b)
    assert window.take() == a and window.last == MAX_IN_FLIGHT


def test_a_depth_beyond_what_the_reserve_covers_is_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        TokenWindow(0, (), depth=MAX_IN_FLIGHT + 1)


def test_the_scan_reads_past_short_gaps_and_stops_after_max_in_flight_missing() -> None:
    gap = MAX_IN_FLIGHT - 1
    exists = {1, 2, 3, 3 + gap + 1, 3 + gap + 2}
    assert scanned(0, exists) == exists
    far = 3 + gap + 2 + MAX_IN_FLIGHT + 1  # beyond MAX_IN_FLIGHT missing numbers: no run's
    assert far not in scanned(0, exists | {far})
    # exactly MAX_IN_FLIGHT - 1 missing at the start, wherever the reads' chunks fall
    assert scanned(0, {1, 1 + MAX_IN_FLIGHT}) == {1, 1 + MAX_IN_FLIGHT}
    assert scanned(0, {MAX_IN_FLIGHT}) == {MAX_IN_FLIGHT}


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_no_token_of_a_stopped_run_can_land_once_the_next_run_has_written(seed: int) -> None:
    """Runs one after another, each stopped at a random point with tokens still on their way,
    which may land at any later moment: once a run's first transaction has landed, none of
    them can land any more, and the scan from the checkpoint finds every token there is."""
    rng = random.Random(seed)
    exists: set[int] = set()
    late: set[int] = set()  # tokens of stopped runs that may still land
    saved = 0  # ChangesInfo.fence: only ever moved forward (state.advanced)
    for _run in range(rng.randint(1, 6)):
        depth = rng.randint(1, MAX_IN_FLIGHT)
        while True:  # open, until the first transaction lands
            present = scanned(saved, exists)
            assert not {n for n in exists if n > saved} - present  # nothing exists unseen
            window = TokenWindow(saved, present, depth)
            first = window.take()
            landing = {n for n in late if rng.random() < 0.3}  # late ones landing meanwhile
            exists |= landing
            late -= landing
            if landing & set(first.seqs):
                continue  # 409: the fence looks for the last token again
            break
        window.land(first)
        exists |= set(first.seqs)
        late -= set(first.seqs)  # their numbers are taken now: they fail with 409
        assert not late, f"{sorted(late)} could still land after the run began writing"
        in_flight: list[Token] = []
        for _step in range(rng.randint(0, 30)):
            choice = rng.random()
            if choice < 0.45 and window.ready():
                in_flight.append(window.take())
            elif in_flight and choice < 0.85:
                token = in_flight.pop(rng.randrange(len(in_flight)))
                window.land(token)
                exists |= set(token.seqs)
            elif in_flight:
                window.give_back(in_flight.pop(rng.randrange(len(in_flight))))
            for token in in_flight:  # the window's rule, as the reserve relies on it
                assert token.seq <= window.last + depth
            if rng.random() < 0.3:
                saved = max(saved, window.last)
        late |= {n for token in in_flight for n in token.seqs}  # the run stops here
