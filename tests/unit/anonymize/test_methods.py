"""Each anonymization method on its own: pure functions of one value."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from app.anonymize import PseudonymKey
from app.anonymize.methods import (
    DROP,
    age,
    ages_past,
    country,
    generalize_date,
    keep,
    over_age,
    pseudonymize,
    redact,
    replace,
    state,
    years_since_earliest,
    zip3,
)

TODAY = date(2025, 6, 1)
KEY = PseudonymKey(secret=b"k" * 32, namespace="clinic-a")


def test_keep_returns_the_value() -> None:
    assert keep("x") == "x"
    assert keep(3) == 3


def test_keep_with_values_sends_only_those() -> None:
    units = frozenset({"mmHg", "kg"})
    assert keep("kg", units) == "kg"
    assert keep("Dr Smith", units) is DROP
    assert keep({"x": 1}, units) is DROP
    assert keep(3, units) is DROP


def test_redact_removes() -> None:
    assert redact("Jane") is DROP


def test_replace_sends_the_constant() -> None:
    assert replace("Jane Doe", "***") == "***"


def test_pseudonymize_is_keyed_and_stable() -> None:
    first = pseudonymize("MRN-123", KEY)
    assert first == pseudonymize("MRN-123", KEY)
    assert first != "MRN-123"
    assert "123" not in first
    assert first != pseudonymize("MRN-124", KEY)
    other = PseudonymKey(secret=b"z" * 32, namespace="clinic-a")
    assert first != pseudonymize("MRN-123", other)


def test_pseudonymize_numbers_like_their_text_and_drops_other_types() -> None:
    assert pseudonymize(123, KEY) == pseudonymize("123", KEY)
    assert pseudonymize(True, KEY) is DROP
    assert pseudonymize(None, KEY) is DROP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-05-17", "2023"),  # date
        ("2023-05-17T10:11:12+02:00", "2023"),  # dateTime
        ("2023-05-17T10:11:12.123Z", "2023"),  # instant
        ("2023-05", "2023"),  # partial
        ("2023", "2023"),  # year only
    ],
)
def test_generalize_date_keeps_the_year(value: str, expected: str) -> None:
    assert generalize_date(value, TODAY) == expected


@pytest.mark.parametrize("value", ["17/05/2023", "May 2023", "20230517", "", "abcd", 2023, None])
def test_generalize_date_removes_what_is_not_a_date(value: object) -> None:
    assert generalize_date(value, TODAY) is DROP


def test_generalize_date_removes_a_year_that_reveals_an_age_over_89() -> None:
    # §164.514(b)(2)(i)(C): "all elements of dates (including year) indicative of such age"
    assert generalize_date("1936-07-04", TODAY) == "1936"  # 2025 - 1936 = 89
    assert generalize_date("1935-12-31T10:00:00Z", TODAY) is DROP  # 90 years ago
    assert generalize_date("1901", TODAY) is DROP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("02139", "021"),
        ("02139-4307", "021"),
        ("021394307", "021"),
        ("021", "021"),
        (" 10001 ", "100"),
        # restricted prefixes (population 20,000 or fewer) become 000
        ("03601", "000"),
        ("05901", "000"),
        ("89301-1234", "000"),
        ("102", "000"),
    ],
)
def test_zip3(value: str, expected: str) -> None:
    assert zip3(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "SW1A 1AA",
        "75008 Paris",
        "1234",
        "0213",
        "",
        2139,
        "\uff10\uff12\uff11\uff13\uff19",
    ],  # full-width digits
)
def test_zip3_removes_non_us_codes(value: object) -> None:
    assert zip3(value) is DROP


def test_every_restricted_zip3_becomes_000() -> None:
    from app.anonymize.safe_harbor import RESTRICTED_ZIP3

    assert len(RESTRICTED_ZIP3) == 17
    for prefix in RESTRICTED_ZIP3:
        assert zip3(prefix + "00") == "000"


@pytest.mark.parametrize(
    ("value", "expected"), [(45, 45), (89, 89), (90, 90), (104, 90), (95.5, 90)]
)
def test_age_caps_numbers_at_90(value: float, expected: int) -> None:
    assert age(value, 89, TODAY) == expected


def test_age_on_a_quantity_aggregates_to_90_or_more() -> None:
    old = {"value": 97, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
    assert age(old, 89, TODAY) == {
        "value": 90,
        "comparator": ">=",
        "unit": "years",
        "system": "http://unitsofmeasure.org",
        "code": "a",
    }
    young = {"value": 40, "unit": "years", "extension": [{"url": "x"}]}
    assert age(young, 89, TODAY) == {"value": 40, "unit": "years"}


def test_age_on_a_birth_date_keeps_the_year_only_when_it_cannot_say_over_89() -> None:
    assert age("1980-02-29", 89, TODAY) == "1980"
    assert age("1936-12-31", 89, TODAY) == "1936"  # 2025 - 1936 = 89: at most 89
    assert age("1935-12-31", 89, TODAY) is DROP  # may be 90 today: even the year goes
    assert age("1920", 89, TODAY) is DROP
    assert age("1990-05", 89, TODAY) == "1990"


def test_age_respects_a_custom_cap_and_drops_other_values() -> None:
    assert age(70, 65, TODAY) == 66
    assert age("unknown", 89, TODAY) is DROP
    assert age(True, 89, TODAY) is DROP
    assert age({"unit": "a"}, 89, TODAY) is DROP


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 1100, "unit": "months"},
        {"value": 1100, "system": "http://unitsofmeasure.org", "code": "mo"},
        {"value": 96, "unit": "years"},
        {"value": 96, "unit": " Yrs "},
        {"value": 5000, "unit": "wk"},
        {"value": 33_000, "system": "http://unitsofmeasure.org", "code": "d"},
        {"value": 96},
    ],
)
def test_age_aggregates_over_89_years_in_any_time_unit(quantity: dict[str, object]) -> None:
    assert age(quantity, 89, TODAY) == {
        "value": 90,
        "comparator": ">=",
        "unit": "years",
        "system": "http://unitsofmeasure.org",
        "code": "a",
    }


def test_over_age_tells_a_length_of_time_over_89_years() -> None:
    assert over_age({"value": 1080, "unit": "months"})  # exactly 90 years
    assert not over_age({"value": 1068, "unit": "months"})  # 89 years
    assert over_age({"value": 40_000, "system": "http://unitsofmeasure.org", "code": "d"})
    assert not over_age({"value": 120, "unit": "mmHg"})  # not a time
    assert not over_age({"value": 120})  # no unit: not known to be an age


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 95, "code": "a"},  # a UCUM code without its system
        {"value": 1150, "code": "mo"},
        {"value": 95, "unit": "ann"},
        {"value": 95, "unit": "a_j"},
        {"value": 95, "system": "http://unitsofmeasure.org", "code": "a_j"},
        {"value": 95, "system": "http://unitsofmeasure.org", "code": "a_g"},
        {"value": 95, "code": "ANN"},
        # a UCUM code and a unit word that disagree: the one that says over 89 is believed
        {"value": 95, "system": "http://unitsofmeasure.org", "code": "d", "unit": "years"},
    ],
)
def test_over_age_reads_codes_without_system_and_the_other_year_units(
    quantity: dict[str, object],
) -> None:
    assert over_age(quantity)


def test_an_age_without_a_time_unit_is_in_years() -> None:
    # an Age is a length of time (R4 age-1): without a unit it can only be read as years
    assert over_age({"value": 95}, in_years=True)
    assert over_age({"value": 95, "unit": "Jahre"}, in_years=True)
    assert not over_age({"value": 89}, in_years=True)
    assert not over_age({"value": 1000, "code": "d"}, in_years=True)  # 2.7 years
    assert not over_age({"value": 95})  # a Quantity without a time unit: not an age
    assert not over_age({"value": 95, "code": {"text": "Alice"}}, in_years=False)


def test_age_of_a_young_patient_in_a_code_without_system_says_its_unit() -> None:
    # 1000 days must not read as 1000 years: the code is sent with the UCUM system
    assert age({"value": 1000, "code": "d"}, 89, TODAY) == {
        "value": 1000,
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }


def test_age_keeps_only_time_units_never_free_text() -> None:
    # Quantity.unit is free text: a unit that is not a time unit may carry anything.
    assert age({"value": 40, "unit": "Smith"}, 89, TODAY) == {"value": 40}
    assert age({"value": 40, "system": "urn:local", "code": "a"}, 89, TODAY) == {"value": 40}
    ucum = {"value": 40, "system": "http://unitsofmeasure.org", "code": "mo", "unit": "months"}
    assert age(ucum, 89, TODAY) == ucum


@pytest.mark.parametrize(
    "value", ["MA", "ma", "Massachusetts", "US-MA", "PR", "DE-BY", "GB-ENG", "FR-IDF", "CA-ON"]
)
def test_state_keeps_states_and_subdivision_codes(value: str) -> None:
    assert state(value) == value


@pytest.mark.parametrize(
    "value",
    [
        *("02139", "Cambridge", "12 Main St", "Springfield County", "", "ma-1", 25, None),
        # shaped as ISO 3166-2 codes: invented (cities), or below a country's first level
        # (Milan, the City of London, Paris, the province of Madrid), or a municipality
        # where that is the first level (Slovenia)
        *("US-NYC", "US-BOS", "IT-MI", "GB-LND", "FR-75", "FR-75C", "ES-M", "SI-001"),
        # cities and towns at a country's first level: Ventspils, Funafuti, Pattaya, Ulsan
        *("LV-VEN", "TV-FUN", "TH-S", "KR-31"),
    ],
)
def test_state_removes_anything_smaller_or_else(value: object) -> None:
    assert state(value) is DROP


@pytest.mark.parametrize(("method", "value"), [(state, "CA"), (country, "US")])
def test_a_state_or_country_leaves_without_the_spaces_around_it(method: Any, value: str) -> None:
    # runs of spaces and tabs after a valid value would carry bits no reader sees
    assert method(f"  {value} \t\t \t\u00a0") == value


def test_state_accepts_the_listed_extra_states() -> None:
    assert state("Bavaria", frozenset({"bavaria"})) == "Bavaria"
    assert state("Munich", frozenset({"bavaria"})) is DROP


@pytest.mark.parametrize("value", ["US", "USA", "United States", "germany", "DE", "FRA"])
def test_country_keeps_iso_countries(value: str) -> None:
    assert country(value) == value


@pytest.mark.parametrize("value", ["02139", "Boston", "Main St 1", "", 840, None])
def test_country_removes_anything_else(value: object) -> None:
    assert country(value) is DROP


def test_an_age_keeps_only_a_valid_comparator_never_free_text() -> None:
    from datetime import date as _date

    from app.anonymize.methods import age

    today = _date(2025, 6, 1)
    assert age({"value": 30, "comparator": "John Smith 555-1234"}, 89, today) == {"value": 30}
    assert age({"value": 30, "comparator": "<"}, 89, today)["comparator"] == "<"


def test_the_years_since_a_resources_earliest_date_count_only_dates_whose_year_may_leave() -> None:
    today = date(2025, 6, 1)
    resource = {
        "effective": {"Period": {"start": "2001-02-03T04:05:06Z", "end": "2002"}},
        "note": [{"time": "1930-01-01"}],  # over 89 years ago: removed, dates nothing
        "issued": "2031-01-01",  # in the future
        "code": {"coding": [{"code": "1999-x"}]},  # no date: "1999-x" is not shaped as one
    }
    assert years_since_earliest(resource, today) == 24
    assert years_since_earliest({"status": "final"}, today) == 0


def test_the_years_since_the_earliest_date_leave_out_names_codes_and_birth_dates() -> None:
    today = date(2025, 6, 1)
    resource = {
        "birthDate": "1950",  # when an age was 0: it dates no other (its own year is checked)
        "item": [{"linkId": "1960", "answer": [{"value": {"date": "2010-04"}}]}],
        "code": {"coding": [{"system": "urn:clinic", "code": "1970"}]},
    }
    assert years_since_earliest(resource, today) == 15
    assert years_since_earliest({"period": ["1990", "2000"]}, today) == 35


@pytest.mark.parametrize(
    ("age", "elapsed", "past"),
    [
        (80, 10, True),
        # 80 measured early in 2016 may be a birth in 1935, 90 in late 2025: as a birth year,
        # 1935 would not leave (generalize_date), so neither does this age
        (80, 9, True),
        (79, 9, False),
        ({"value": 924, "unit": "months"}, 12, True),  # 77 years
        ({"value": 76, "unit": "a"}, 12, False),
        (95, 10, False),  # over 89 already: aggregated, not removed
        ({"value": 960, "unit": "months"}, 10, True),  # 80 years
        ({"value": 960, "unit": "months"}, 0, False),
        ({"value": 50}, 40, True),  # an age with no unit is in years
        (True, 100, False),
        ("80", 10, False),
    ],
)
def test_an_age_is_past_89_when_the_years_since_it_was_measured_put_it_there(
    age: object, elapsed: int, past: bool
) -> None:
    assert ages_past(age, elapsed) is past
