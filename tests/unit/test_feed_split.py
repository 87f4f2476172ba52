"""Where the feed cuts a window that holds more than a page (app/sync/feed.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.sync.feed import split_point


def test_nothing_known_yet_assumes_one_change_per_txid() -> None:
    # A backlog of 5,000 single-resource writes: the first window is one probe away.
    assert split_point(0, 5000, page_size=200, density=None) == 180
    # A narrow window holding more than a page: txids hold several changes, so halve.
    assert split_point(100, 300, page_size=200, density=None) == 200


def test_the_density_last_seen_aims_at_nine_tenths_of_a_page() -> None:
    # One change per txid: 180 txids should hold 180 changes, a page of 200 nearly full.
    assert split_point(1000, 6000, page_size=200, density=1.0) == 1180
    # Sparse: one change every 10 txids.
    assert split_point(0, 100_000, page_size=200, density=0.1) == 1800


def test_after_an_empty_window_the_next_cut_halves() -> None:
    assert split_point(0, 1_000_000, page_size=200, density=0.0) == 500_000


def test_an_estimate_beyond_the_middle_falls_back_to_the_middle() -> None:
    # The window holds more than a page, so a span that should hold less reaches too far.
    assert split_point(0, 100, page_size=200, density=0.5) == 50


@given(
    lo=st.integers(0, 10**9),
    width=st.integers(2, 10**6),
    page=st.integers(1, 5000),
    density=st.one_of(st.none(), st.just(0.0), st.floats(1e-6, 1e6)),
)
def test_the_cut_is_always_strictly_inside_the_window(
    lo: int, width: int, page: int, density: float | None
) -> None:
    # Both parts are non-empty, so splitting always ends.
    assert lo < split_point(lo, lo + width, page, density) < lo + width
