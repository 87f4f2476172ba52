"""The anonymization methods: one pure function per method, on one value.

Each function takes a primitive (or, for ``age``, a Quantity) and returns the value to send or
``DROP`` when nothing may be sent. Walking composite elements and references is the engine's job
(``compiled.py``, ``traced.py``, ``elements.py``); these functions never see a whole resource.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Final

import orjson

from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.safe_harbor import (
    COUNTRIES,
    MAX_REPORTABLE_AGE,
    RESTRICTED_ZIP3,
    RESTRICTED_ZIP3_REPLACEMENT,
    SUBDIVISIONS,
    US_STATES,
)


class _Drop:
    """Marker for "remove this element"; a singleton so that ``is`` tests are enough."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()

# Time units an age may be written in: UCUM codes (with their length in years), and the unit
# words people type, each mapped to a code. Quantity.unit is free text, so any other unit is
# dropped: default-deny. UCUM's "a" is the Julian year (365.25 d) like "a_j"; "a_g" is the
# Gregorian year; "ann" (annum) is no UCUM code but is typed as one.
_UCUM: Final = "http://unitsofmeasure.org"
_YEARS_PER: Final = {
    "a": 1.0,
    "a_j": 1.0,
    "a_g": 365.2425 / 365.25,
    "mo": 1 / 12,
    "mo_j": 1 / 12,
    "mo_g": 365.2425 / 365.25 / 12,
    "wk": 7 / 365.25,
    "d": 1 / 365.25,
    "h": 1 / 8766,
    "min": 1 / 525_960,
    "s": 1 / 31_557_600,
}
_UNIT_WORDS: Final = {
    **{code: code for code in _YEARS_PER},
    # as typed in English (abbreviated too: "yo", "y/o", "year(s)") and in the languages the
    # shipped profile reads questions in (German, Spanish, French, Italian)
    **{
        word: "a"
        for word in (
            *("ann", "annum", "y", "yr", "yrs", "yr(s)", "year", "years", "year(s)"),
            *("yo", "y/o", "y.o", "jahr", "jahre", "jahren", "lebensjahr", "lebensjahre"),
            *("año", "años", "ano", "anos"),
            *("an", "ans", "anno", "anni"),
        )
    },
    **{
        word: "mo"
        for word in (
            *("mos", "month", "months", "month(s)", "monat", "monate", "mes", "meses"),
            *("mois", "mese", "mesi"),
        )
    },
    **{
        word: "wk"
        for word in (
            *("wks", "week", "weeks", "week(s)", "woche", "wochen", "semana", "semanas"),
            *("semaine", "semaines", "settimana", "settimane"),
        )
    },
    **{
        word: "d"
        for word in (
            *("day", "days", "day(s)", "tag", "tage", "día", "días", "dia", "dias"),
            *("jour", "jours", "giorno", "giorni"),
        )
    },
    **{word: "h" for word in ("hr", "hrs", "hour", "hours")},
    **{word: "min" for word in ("mins", "minute", "minutes")},
    **{word: "s" for word in ("sec", "secs", "second", "seconds")},
}
_COMPARATORS: Final = frozenset({"<", "<=", ">=", ">"})


def _code_unit(quantity: dict[str, Any], *, any_system: bool = False) -> str | None:
    """The UCUM time code a Quantity's ``code`` names: with the UCUM system, a UCUM time code;
    with no system at all, a code or unit word typed without it (``code: "a"``); else None.
    ``any_system``: under another system too (a system misspelt ``http://unitsofmeasure.org/``):
    whoever reads the age may take the code so, and a profile that drops the system sends the
    code alone."""
    code = quantity.get("code")
    if type(code) is not str:
        return None
    system = quantity.get("system")
    if system == _UCUM:
        return code if code in _YEARS_PER else None
    if system is not None and not any_system:
        return None
    if code in _YEARS_PER:
        return code
    return _time_word(code.strip())


def _time_word(typed: str) -> str | None:
    """The UCUM time code a code or unit word names as typed, case aside; a single capital
    letter is a unit of its own, UCUM being case-sensitive ("A", the ampere; "D", a diopter),
    no time."""
    if len(typed) == 1 and typed.isupper():
        return None
    return _UNIT_WORDS.get(typed.lower())


# What follows a unit word when an age is written out: "years old", "años de edad".
_AGE_WORDS: Final = re.compile(r"\s+(?:old|of age|de edad|compiuti|d'âge)$")


def _word_unit(quantity: dict[str, Any]) -> str | None:
    """The UCUM time code a Quantity's ``unit`` word names (``_time_word``), or None; read
    also without a final dot ("yrs.") and the words that say it is an age ("years old")."""
    unit = quantity.get("unit")
    if type(unit) is not str:
        return None
    typed = unit.strip()
    found = _time_word(typed)
    if found is None and len(typed) > 1:
        found = _UNIT_WORDS.get(_AGE_WORDS.sub("", typed.lower().rstrip(".")))
    return found


# A JSON string shaped as a FHIR date, dateTime or instant, or a partial one (R4
# datatypes.html): the year it begins with.
_QUOTED_DATE = re.compile(rb'"([0-9]{4})(?:-[0-9]{2}(?:-[0-9]{2}(?:T[^"]*)?)?)?"')
# Keys (as orjson writes them, before a value) whose values date no age: names and codes
# (R4 QuestionnaireResponse.item.linkId, Coding.code: strings, a "1950" among them), and a
# birth date, which says when an age was 0: its own year is what tells an age over 89, and it
# leaves only when it does not (generalize_date).
_UNDATED_KEYS = (b'"linkId":', b'"code":', b'"birthDate":')


def is_time(quantity: dict[str, Any]) -> bool:
    """True for a Quantity whose code or unit word names a time unit (an age, or a length of
    time that may be read as one)."""
    return _code_unit(quantity, any_system=True) is not None or _word_unit(quantity) is not None


def is_number(value: Any) -> bool:
    """True for a JSON number (int or float; a bool is not one)."""
    return type(value) is int or type(value) is float


def aggregated(max_age: int) -> dict[str, Any]:
    """The single "90 or older" category as an Age (§164.514(b)(2)(i)(C))."""
    return {
        "value": max_age + 1,
        "comparator": ">=",
        "unit": "years",
        "system": _UCUM,
        "code": "a",
    }


def over_age(
    quantity: dict[str, Any], max_age: int = MAX_REPORTABLE_AGE, *, in_years: bool = False
) -> bool:
    """True for a Quantity that is a length of time over ``max_age`` years, in whatever time
    unit its code or its unit word names (when both name one and they disagree, either one
    over ``max_age`` is enough). ``in_years``: the Quantity is an age whatever it says (an
    Age, which R4 constraint age-1 makes a time; an age-coded value), so with no time unit it
    is read in years (§164.514(b)(2)(i)(C))."""
    number = quantity.get("value")
    if not is_number(number):
        return False
    by_code, by_word = _code_unit(quantity, any_system=True), _word_unit(quantity)
    if by_code is None and by_word is None:
        return in_years and number > max_age
    return (by_code is not None and number * _YEARS_PER[by_code] > max_age) or (
        by_word is not None and number * _YEARS_PER[by_word] > max_age
    )


def years_since_earliest(resource: Any, today: date, max_age: int = MAX_REPORTABLE_AGE) -> int:
    """How many years ago the earliest date anywhere in ``resource`` is, among the dates
    whose year may leave (none more than ``max_age`` years ago, none in the future); 0 without
    one. Any string shaped as a FHIR date counts, whatever its element, but a name, a code or
    a birth date (``_UNDATED_KEYS``). Read from the
    resource's JSON (a walk in Python costs twenty times more); a resource that is no JSON
    (a key that is no string) is read as dated ``max_age`` years ago."""
    try:
        text = orjson.dumps(resource, default=_unserializable)
    except TypeError:
        return max_age
    oldest = today.year - max_age
    years = [
        year
        for found in _QUOTED_DATE.finditer(text)
        if oldest <= (year := int(found[1])) <= today.year
        and not text.endswith(_UNDATED_KEYS, 0, found.start())
    ]
    return today.year - min(years) if years else 0


def _unserializable(value: Any) -> None:
    return None  # not JSON, so not a date


def ages_past(value: Any, elapsed: int, max_age: int = MAX_REPORTABLE_AGE) -> bool:
    """True for an age of at most ``max_age`` (a number of years, or a Quantity in a time unit
    or none) that, measured ``elapsed`` years ago, is over ``max_age`` today: sent with the
    date it was measured at, it says what ``max_age + 1`` and over may not
    (§164.514(b)(2)(i)(C): "elements of dates (including year) indicative of such age")."""
    if elapsed <= 0 or type(value) is bool:
        return False
    # An age of n at a date in year Y is a birth in year Y - n or Y - n - 1: "past" as soon as
    # the earlier one would be removed as a birth year (``generalize_date``), so from
    # n + 1 + elapsed > max_age on (fractions of a year are counted as a whole one).
    if is_number(value):
        return max_age - elapsed - 1 < value <= max_age
    if type(value) is dict and is_number(value.get("value")):
        return not over_age(value, max_age, in_years=True) and over_age(
            value, max_age - elapsed - 1, in_years=True
        )
    return False


def _age_units(quantity: dict[str, Any]) -> dict[str, str]:
    """The time units of an age that may be sent: a unit word, and the UCUM code (with its
    system, so that a code typed without one still says what it measures)."""
    kept: dict[str, str] = {}
    if _word_unit(quantity) is not None:
        kept["unit"] = quantity["unit"]
    code = _code_unit(quantity)
    if code is not None:
        kept["system"], kept["code"] = _UCUM, code
    return kept


def keep(value: Any, values: frozenset[str] | None = None) -> Any:
    """Send the value unchanged; with ``values``, only when it is one of them."""
    if values is not None and (not isinstance(value, str) or value not in values):
        return DROP
    return value


def redact(value: Any) -> _Drop:
    """Remove the value."""
    return DROP


def replace(value: Any, constant: str) -> str:
    """Send ``constant`` instead of the value."""
    return constant


def pseudonymize(value: Any, key: PseudonymKey) -> str | _Drop:
    """Keyed HMAC-SHA256 pseudonym of a string or number; anything else is removed."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return DROP
    return key.pseudonym(str(value))


def _year(value: Any) -> str | None:
    """The year of a FHIR date, dateTime or instant ("2023", "2023-05", "2023-05-17T10:00Z")."""
    if type(value) is not str or len(value) < 4 or (len(value) > 4 and value[4] != "-"):
        return None
    year = value[:4]
    return year if year.isdigit() and year.isascii() else None


def _reveals_age(year: str, today: date, max_age: int) -> bool:
    """A year more than ``max_age`` years ago says the person is older than ``max_age``."""
    return today.year - int(year) > max_age


def generalize_date(value: Any, today: date, max_age: int = MAX_REPORTABLE_AGE) -> str | _Drop:
    """Keep only the year of a date, dateTime, instant or partial date; non-dates are removed.

    Safe Harbor §164.514(b)(2)(i)(C) allows the year of dates related to an individual, but not
    "elements of dates (including year) indicative of" an age over 89: a date more than 89
    years ago (a birth date, a childhood event) is removed whole. The result is a valid FHIR
    ``date``/``dateTime`` but not an ``instant`` (the engine removes it where one is due).
    """
    year = _year(value)
    if year is None or _reveals_age(year, today, max_age):
        return DROP
    return year


def zip3(value: Any) -> str | _Drop:
    """First three digits of a US ZIP code (5, 5+4 or 3 digits); restricted prefixes become 000.

    Anything that is not a US ZIP code is removed: Safe Harbor §164.514(b)(2)(i)(B) only allows
    the three-digit ZIP prefix, and other countries' postal codes have no such rule.
    """
    if not isinstance(value, str):
        return DROP
    code = value.strip()
    digits = code.replace("-", "", 1) if len(code) == 10 and code[5] == "-" else code
    if len(digits) not in (3, 5, 9) or not digits.isdigit() or not digits.isascii():
        return DROP
    prefix = digits[:3]
    return RESTRICTED_ZIP3_REPLACEMENT if prefix in RESTRICTED_ZIP3 else prefix


def age(value: Any, max_age: int, today: date) -> Any:
    """Cap an age, or reduce a birth date to its year unless that year says "over ``max_age``".

    - a number above ``max_age`` becomes ``max_age + 1`` (the single "90 or older" category),
      and a number below zero (no age) is removed, in a Quantity too;
    - a Quantity/Age (a dict with a numeric ``value``) over ``max_age`` years, in whatever time
      unit it is written (UCUM code, with or without its system, or unit word; none, or one
      that is not a time, means years), becomes "``max_age + 1`` years or more"; a younger one
      keeps its value and its time unit, any other unit (free text) is dropped;
    - anything else is a date, handled as ``generalize_date`` does: its year, or removed
      entirely when the person may be older than ``max_age`` today (``today.year - year >
      max_age``: the year alone would then be "indicative of such age", §164.514(b)(2)(i)(C)).
    """
    if isinstance(value, bool):
        return DROP
    if isinstance(value, int | float):
        # no age is below zero: "-123456789" is a number typed into an age field (an SSN)
        return DROP if value < 0 else max_age + 1 if value > max_age else value
    if isinstance(value, dict):
        if not is_number(value.get("value")) or value["value"] < 0:
            return DROP
        if over_age(value, max_age, in_years=True):
            return aggregated(max_age)
        capped: dict[str, Any] = _age_units(value)
        capped["value"] = value["value"]
        # Quantity.comparator is a required binding (FHIR R4 quantity-comparator): any other
        # string is free text and may hold PHI.
        if value.get("comparator") in _COMPARATORS:
            capped["comparator"] = value["comparator"]
        return capped
    return generalize_date(value, today, max_age)


def state(value: Any, extra: frozenset[str] = frozenset()) -> str | _Drop:
    """A US state, district or outlying area (code or name), another country's first-level ISO
    3166-2 subdivision code (``SUBDIVISIONS``), or one of ``extra`` (casefolded; a clinic outside
    the US lists its state names): else removed.

    §164.514(b)(2)(i)(B): a city, a street or a ZIP code typed into a state field is a
    subdivision smaller than a state and must not leave.
    """
    if not isinstance(value, str):
        return DROP
    # sent without the spaces around it, which could carry what no reader sees
    trimmed = value.strip()
    folded = trimmed.casefold()
    if folded in US_STATES or folded in SUBDIVISIONS or folded in extra:
        return trimmed
    return DROP


def country(value: Any, extra: frozenset[str] = frozenset()) -> str | _Drop:
    """An ISO 3166-1 country (alpha-2, alpha-3 or name) or one of ``extra``: else removed."""
    if not isinstance(value, str):
        return DROP
    trimmed = value.strip()
    folded = trimmed.casefold()
    return trimmed if folded in COUNTRIES or folded in extra else DROP
