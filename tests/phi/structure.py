"""Checks of what a text scan cannot see: ages over 89 and the years that reveal them, and
the references a resource sends.

Ages and years are small numbers and four digits, which also occur as legitimate output, so
they are checked on structure (45 CFR §164.514(b)(2)(i)(C)): no length of time over 89 years
unless aggregated, no plain number over 90 in an observation coded as an age, no date more
than 89 years before ``today``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from tests.phi.model import UCUM

AGE_CODES = {
    *("30525-0", "21611-9", "21612-7", "29553-5", "30972-4", "63900-5"),
    *("445518008", "424144002", "397659008"),
}
AGGREGATED = {"value": 90, "comparator": ">=", "unit": "years", "system": UCUM, "code": "a"}
_YEARS_PER = {"a": 1, "a_j": 1, "a_g": 1, "mo": 1 / 12, "wk": 7 / 365.25, "d": 1 / 365.25}
_UNIT_WORDS = {"years": "a", "ann": "a", "months": "mo", "weeks": "wk", "days": "d"}
# Elements of the corpus whose value is a date or dateTime (besides choice options).
_DATE_ELEMENTS = {
    "birthDate", "recordedDate", "authored", "created", "start", "end", "issued", "date",
    "dateTime",
}  # fmt: skip


def nodes(tree: Any) -> Iterator[Any]:
    """Every object, array and value in ``tree``, the tree itself first."""
    yield tree
    children = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    for child in children:
        yield from nodes(child)


def references(tree: Any) -> set[tuple[str, str]]:
    """The (resourceType, id) of every reference in ``tree`` reduced to those two alone, as the
    engine sends a pseudonymized one."""
    return {
        (node["resourceType"], node["id"])
        for node in nodes(tree)
        if isinstance(node, dict) and set(node) == {"resourceType", "id"}
    }


def _values(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _values(value, (*path, name))
    elif isinstance(node, list):
        for value in node:
            yield from _values(value, path)
    yield path, node


def years(quantity: dict[str, Any], age: bool = False) -> float | None:
    """The length of a time Quantity in years, by the longest of the units it names (a UCUM
    code, with its system or none, or a unit word); None when it is not a time. An ``age``
    (an Age, always a time) with no time unit is in years."""
    code = quantity.get("code")
    by_code = code if quantity.get("system") in (UCUM, None) and str(code) in _YEARS_PER else None
    by_word = _UNIT_WORDS.get(str(quantity.get("unit")).lower())
    units = [_YEARS_PER[str(unit)] for unit in (by_code, by_word) if unit] or ([1] if age else [])
    value = quantity.get("value")
    return value * max(units) if units and isinstance(value, int | float) else None


def _is_age_code(code: Any) -> bool:
    codings = code.get("coding", []) if isinstance(code, dict) else []
    return any(isinstance(c, dict) and c.get("code") in AGE_CODES for c in codings)


def age_violations(resource: dict[str, Any], today: date) -> list[tuple[str, ...]]:
    """The places of one resource that tell an age over 89 (empty when there are none)."""
    found = []
    for path, value in _values(resource):
        dated = isinstance(value, str) and path and path[-1] in _DATE_ELEMENTS
        if dated and value[:4].isdigit() and int(value[:4]) < today.year - 89:
            found.append(path)
        if isinstance(value, dict) and value != AGGREGATED:
            length = years(value, age=path[-1:] == ("Age",))
            if length is not None and length > 89:
                found.append(path)
    for holder in [resource, *resource.get("component", [])]:
        if isinstance(holder, dict) and _is_age_code(holder.get("code")):
            value = holder.get("value")
            for kind in ("integer", "decimal"):  # a plain number there is an age in years
                if isinstance(value, dict) and value.get(kind, 0) > 90:
                    found.append(("value", kind))
    return found
