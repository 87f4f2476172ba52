"""The anonymization methods: one pure function per method, on one value.

Each function takes a primitive (or, for ``age``, a Quantity) and returns the value to send or
``DROP`` when nothing may be sent. Walking composite elements and references is the engine's job
(``engine.py``); these functions never see a whole resource.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.safe_harbor import RESTRICTED_ZIP3, RESTRICTED_ZIP3_REPLACEMENT


class _Drop:
    """Marker for "remove this element"; a singleton so that ``is`` tests are enough."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()

# What an Age keeps besides its value: UCUM codes of time units, and the usual unit words.
# Quantity.unit is free text, so any other unit (or a non-UCUM system) is dropped: default-deny.
_UCUM: Final = "http://unitsofmeasure.org"
_AGE_CODES: Final = frozenset({"a", "mo", "wk", "d", "h", "min"})
_AGE_UNITS: Final = frozenset(
    {
        "a",
        "yr",
        "year",
        "years",
        "mo",
        "month",
        "months",
        "wk",
        "week",
        "weeks",
        "d",
        "day",
        "days",
        "h",
        "hour",
        "hours",
        "min",
        "minute",
        "minutes",
    }
)


def _age_units(quantity: dict[str, Any]) -> dict[str, str]:
    kept: dict[str, str] = {}
    unit = quantity.get("unit")
    if isinstance(unit, str) and unit.strip().lower() in _AGE_UNITS:
        kept["unit"] = unit
    if quantity.get("system") == _UCUM and quantity.get("code") in _AGE_CODES:
        kept["system"], kept["code"] = _UCUM, quantity["code"]
    return kept


def keep(value: Any) -> Any:
    """Send the value unchanged."""
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
    if not isinstance(value, str) or len(value) < 4 or (len(value) > 4 and value[4] != "-"):
        return None
    year = value[:4]
    return year if year.isdigit() and year.isascii() else None


def generalize_date(value: Any) -> str | _Drop:
    """Keep only the year of a date, dateTime, instant or partial date; non-dates are removed.

    Safe Harbor §164.514(b)(2)(i)(C) allows the year of dates related to an individual. The
    result is a valid FHIR ``date``/``dateTime`` but not an ``instant``: profiles redact instants.
    """
    year = _year(value)
    return DROP if year is None else year


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

    - a number above ``max_age`` becomes ``max_age + 1`` (the single "90 or older" category);
    - a Quantity/Age (a dict with a numeric ``value``) is capped the same way and gets
      ``comparator: ">="``; it keeps a time unit (UCUM code, or a unit word such as "years"),
      anything else is dropped;
    - a date becomes its year, or is removed entirely when the person may be older than
      ``max_age`` today (``today.year - year > max_age``: the year alone would then be "indicative
      of such age", §164.514(b)(2)(i)(C)).
    """
    if isinstance(value, bool):
        return DROP
    if isinstance(value, int | float):
        return max_age + 1 if value > max_age else value
    if isinstance(value, dict):
        number = value.get("value")
        if isinstance(number, bool) or not isinstance(number, int | float):
            return DROP
        capped: dict[str, Any] = _age_units(value)
        if number > max_age:
            capped["value"] = max_age + 1
            capped["comparator"] = ">="
        else:
            capped["value"] = number
            if isinstance(value.get("comparator"), str):
                capped["comparator"] = value["comparator"]
        return capped
    year = _year(value)
    if year is None or today.year - int(year) > max_age:
        return DROP
    return year
