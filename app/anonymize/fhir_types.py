"""The FHIR R4 datatype of every element, keyed the way Aidbox stores resources.

The table ``fhir_r4_types.json`` is generated from the published R4 StructureDefinitions by
``tools/generate_fhir_types.py`` (its docstring names the source and the command). In Aidbox
format a choice element ``value[x]`` is one object keyed by type name (``value.Quantity``), so a
choice here is a type of kind ``choice`` whose elements are its options.

    quantity = fhir_type("Observation").elements["value"].type.elements["Quantity"].type
    quantity.is_a("Quantity")          # True; Age and Duration are Quantities too
    fhir_type("date").accepts("2024-02-30")   # shape only, as the R4 regex says
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

TABLE = Path(__file__).with_name("fhir_r4_types.json")

# R4 datatypes.html: integer is a 32-bit signed number (a phone number typed as one is not);
# positiveInt and unsignedInt are its parts from 1 and from 0.
_LOWEST = {"positiveInt": 1, "unsignedInt": 0}
# An open choice (R4 datatypes.html, "Open Type Element": about 50 options) offers every type;
# the clinical choices offer a few (Condition.onset[x]: 5).
_OPEN_TYPES = 20


@dataclass(eq=False, slots=True)
class FhirType:
    """One FHIR type: primitive, complex datatype, resource, backbone element, or a choice."""

    name: str
    kind: str
    base: FhirType | None = None
    elements: dict[str, ElementType] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    accepts: Callable[[Any], bool] = field(default=lambda value: True)
    _reach: dict[str, bool] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"FhirType({self.name})"

    @property
    def lineage(self) -> Iterator[FhirType]:
        """This type, then its base, its base's base, up to Element / Resource."""
        current: FhirType | None = self
        while current is not None:
            yield current
            current = current.base

    def is_a(self, name: str) -> bool:
        """True when this type is ``name`` or derives from it (Age is a Quantity)."""
        return any(t.name == name for t in self.lineage)

    @property
    def is_primitive(self) -> bool:
        """True for the FHIR primitive types (string, date, code, ...)."""
        return self.kind == "primitive"

    def reaches(self, names: frozenset[str]) -> bool:
        """True when an element of one of the types ``names`` can occur anywhere below."""
        key = ",".join(sorted(names))
        found = self._reach.get(key)
        if found is None:
            found = _reaches(self, names)
            self._reach[key] = found
        return found


@dataclass(frozen=True, slots=True, eq=False)
class ElementType:
    """What an element holds: its type, and the codes of its required binding (``code`` only).

    ``accepts(value)`` is True when the value is valid for the element: of its type, and in
    its value set when it has one.
    """

    type: FhirType
    codes: frozenset[str] | None = None
    accepts: Callable[[Any], bool] = field(init=False)

    def __post_init__(self) -> None:
        codes = self.codes
        if codes is None:  # the type's own test (types get theirs before any element is made)
            object.__setattr__(self, "accepts", self.type.accepts)
        else:
            object.__setattr__(self, "accepts", lambda value: type(value) is str and value in codes)


def _reaches(start: FhirType, names: frozenset[str]) -> bool:
    # A primitive's own id and extensions are a separate element in JSON (``_birthDate``): its
    # value holds nothing, so the search does not go through primitives.
    seen: set[int] = set()
    stack = [] if start.is_primitive else [start]
    while stack:
        current = stack.pop()
        for element in current.elements.values():
            child = element.type
            if any(t.name in names for t in child.lineage):
                return True
            if id(child) not in seen and not child.is_primitive:
                seen.add(id(child))
                stack.append(child)
    return False


def _is_object(value: Any) -> bool:
    return type(value) is dict


def _checker(name: str, pattern: str | None, lineage: list[str]) -> Callable[[Any], bool]:
    """The value test of a primitive: JSON type, range, and the R4 regex (whole value)."""
    if "boolean" in lineage:
        return lambda value: type(value) is bool
    if "integer" in lineage:
        low = _LOWEST.get(name, -(2**31))
        return lambda value: type(value) is int and low <= value < 2**31
    if "decimal" in lineage:
        return lambda value: type(value) is int or type(value) is float
    if pattern is None:
        return lambda value: type(value) is str
    return _matching(re.compile(pattern))


_VALID_LIMIT = 16_384


def _matching(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    """A regex test that remembers the values that passed (code systems, codes, years repeat
    in every resource). Only valid values are kept: those are sent anyway; an invalid one,
    which may be dirty data holding PHI, is never retained."""
    valid: set[str] = set()

    def accepts(value: Any) -> bool:
        if type(value) is not str:
            return False
        if value in valid:
            return True
        if pattern.fullmatch(value) is None:
            return False
        if len(valid) < _VALID_LIMIT:
            valid.add(value)
        return True

    return accepts


@cache
def _types() -> dict[str, FhirType]:
    table = orjson.loads(TABLE.read_bytes())
    raw: dict[str, dict[str, Any]] = table["types"]
    value_sets = {url: frozenset(codes) for url, codes in table["valueSets"].items()}
    types = {name: FhirType(name, spec["kind"]) for name, spec in raw.items()}
    for name, spec in raw.items():
        own = types[name]
        own.base = types.get(spec.get("base") or "")
        own.required = frozenset(spec.get("required", ()))
    for name, spec in raw.items():
        own = types[name]
        if own.is_primitive:
            lineage = [t.name for t in own.lineage]
            own.accepts = _checker(name, spec.get("regex"), lineage)
        else:
            own.accepts = _is_object
    # A Range where an Age is another option of an element's few (Condition.onset[x],
    # Procedure.performed[x], FamilyMemberHistory.age[x], ...) is a range of ages: its low
    # and high are Ages. Not so where every type is an option (Extension.value[x]).
    age_range = FhirType("Range", "complex", types["Range"].base, accepts=_is_object)
    for name, spec in raw.items():
        own = types[name]
        for element, slot in spec["elements"].items():
            own.elements[element] = _element(types, name, element, slot, value_sets, age_range)
    age = ElementType(types["Age"])
    age_range.elements = {**types["Range"].elements, "low": age, "high": age}
    age_range.required = types["Range"].required
    return types


def _element(
    types: dict[str, FhirType],
    owner: str,
    element: str,
    slot: Any,
    value_sets: dict[str, frozenset[str]],
    age_range: FhirType,
) -> ElementType:
    if isinstance(slot, dict):
        choice = FhirType(f"{owner}.{element}", "choice", accepts=_is_object)
        options = {option: types[name] for option, name in slot.items()}
        if "Age" in options and "Range" in options and len(options) < _OPEN_TYPES:
            options["Range"] = age_range
        choice.elements = {option: ElementType(t) for option, t in options.items()}
        return ElementType(choice)
    if isinstance(slot, list):
        name, url = slot
        return ElementType(types[name], value_sets[url])
    return ElementType(types[slot])


def fhir_type(name: str) -> FhirType | None:
    """The FHIR R4 type of that name (``Patient``, ``Coding``, ``Observation.component``)."""
    return _types().get(name)


def datatype_names() -> frozenset[str]:
    """Names of the primitive and complex datatypes (what a profile's ``datatypes`` may name)."""
    return frozenset(t.name for t in _types().values() if t.kind in ("primitive", "complex"))


@cache
def _resource_types() -> frozenset[str]:
    abstract = {"Resource", "DomainResource"}
    return frozenset(t.name for t in _types().values() if t.kind == "resource") - abstract


def is_resource_type(name: Any) -> bool:
    """True for the names of the R4 resource types (``Patient``, ``Observation``, ...); not
    for the abstract ``Resource`` and ``DomainResource``, nor for anything but a string."""
    return type(name) is str and name in _resource_types()


def code_system_key(system: str) -> str:
    """A code system as compared with a profile's list: casefolded (a URN's "urn" and its
    namespace are case-insensitive, RFC 8141; an http URL's path is not, but a clinic's
    "fips64" means the same system, and matching more is the safe side), spacing, a
    trailing "/" and a "urn:oid:" prefix dropped (an OID names the same system bare)."""
    return system.strip().casefold().rstrip("/").removeprefix("urn:oid:")
