"""The breaker opens on wholesale refusals only (app/sync/breaker.py)."""

from __future__ import annotations

import pytest

from app.sync.breaker import Breaker, BreakerOpen


def test_refusals_of_few_entries_never_open_it() -> None:
    breaker = Breaker(ratio=0.5, min_entries=20)
    for _ in range(4):
        breaker.judge(4, 4, "422 x")  # 16 entries, all refused: too few to judge
    with pytest.raises(BreakerOpen, match=r"20 of the last 20 entries refused.*422 x"):
        breaker.judge(4, 4, "422 x")


def test_it_opens_above_the_ratio_not_at_it() -> None:
    breaker = Breaker(ratio=0.5, min_entries=20)
    breaker.judge(20, 10, "r")  # exactly half: the resources' problem
    with pytest.raises(BreakerOpen):
        Breaker(ratio=0.5, min_entries=20).judge(20, 11, "r")


def test_it_judges_the_recent_entries_not_the_whole_run() -> None:
    breaker = Breaker(ratio=0.5, min_entries=20)
    for _ in range(50):
        breaker.judge(20, 0, "")  # a long healthy run
    with pytest.raises(BreakerOpen):
        breaker.judge(20, 15, "r")  # then headquarters starts refusing


def test_a_ratio_of_one_turns_it_off() -> None:
    breaker = Breaker(ratio=1.0, min_entries=1)
    for _ in range(10):
        breaker.judge(200, 200, "r")
