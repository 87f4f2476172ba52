"""The leak scanner other suites reuse: what counts as a token occurring."""

from __future__ import annotations

from tests.phi.corpus import Planted
from tests.phi.scanner import find_planted


def test_finds_tokens_in_objects_text_and_bytes_case_insensitively() -> None:
    token = Planted("Jane Doe", "name", "Patient.name")
    assert find_planted([token], {"display": "JANE DOE"}) == [token]
    assert find_planted(["Jane Doe"], "error for jane doe: 422") == ["Jane Doe"]
    assert find_planted(["Jane Doe"], b'{"x": "Jane Doe"}') == ["Jane Doe"]
    assert find_planted(["Jane Doe"], {"display": "Jane Roe"}) == []


def test_tokens_must_stand_alone_so_pseudonyms_do_not_match_by_chance() -> None:
    assert find_planted(["lee"], "clinic-a-qsleepz2x") == []
    assert find_planted(["02139"], "a02139f") == []
    assert find_planted(["02139"], "zip 02139-4307") == ["02139"]
    assert find_planted(["Lee"], "Lee, Ann") == ["Lee"]


def test_a_month_token_catches_dates_and_datetimes_but_not_the_year() -> None:
    assert find_planted(["1961-04"], {"birthDate": "1961-04-12"}) == ["1961-04"]
    assert find_planted(["1961-04"], {"t": "1961-04-12T10:00:00Z"}) == ["1961-04"]
    assert find_planted(["1961-04"], {"birthDate": "1961"}) == []
