"""Random FHIR R4 resources (Aidbox format) with a unique token in every place that may carry PHI.

Built from the same FHIR R4 definitions as the engine (``app/anonymize/fhir_types.py``), but
with their own notion of what is PHI and what is utility, taken from Safe Harbor rather than
from the engine: every string, markdown, id, URL, base64 value, unbound code and date carries
a fresh token (a date carries its month, ``2017-03``: the year may leave, the month may not);
the utility that a default-deny profile may keep gets values a token can never equal (codes of
code systems, valid codes of required value sets, numbers, booleans, resolvable references).

    shape = Shape(trusted={("QuestionnaireResponse.item", "linkId")}, questions=["Pain score"])
    resource, tracker = draw(random_resource(["Observation"], shape))
    tracker.tokens     # every PHI token planted
    tracker.trusted    # those planted where the profile is trusted to send strings as they are
    tracker.codings    # (top-level element, system, code) of the codings planted at the top
    tracker.targets    # (top-level element, resourceType, local id) of top-level references

Some strings FHIR does not constrain are sent as they are by design (a Coding's code and
system, a QuestionnaireResponse item's linkId): ``Shape.trusted`` names those places. It is a
fixed, reviewed list, never derived from the profile under test (else a profile that wrongly
keeps a string would exempt it): tokens are planted there too, half of the time, and recorded
in ``tracker.trusted``; everywhere else a token that leaves is a leak.

Beyond the definitions, the drawings hold what an EHR or a hand edit adds: elements the type
does not define (``status: {text: ...}`` on a type without status), contained resources of
types R4 does not define, references whose ``resourceType`` is free text.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from app.anonymize.fhir_types import ElementType, FhirType, fhir_type

_counter = itertools.count()
UCUM = "http://unitsofmeasure.org"
SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.238"]
CODES = ["8867-4", "85354-9", "38341003", "2106-3", "72166-2"]
UNITS = [("mg", "mg"), ("mm[Hg]", "mmHg"), ("kg", "kg"), ("/min", "/min"), ("%", "%")]
# Elements that no value of a resource carries in Aidbox format, or that the engine owns.
_SKIP = frozenset({"contained", "resourceType"})


# Names drawn for elements a type does not define: the "*" entry's status-like names, and
# attributes no profile declares.
MADE_UP = ("status", "intent", "active", "note", "nickname")
UNKNOWN_TYPE = "PatientNote"  # a contained resource type R4 does not define


@dataclass(frozen=True)
class Shape:
    """What the drawn resources must look like for the profile under test."""

    trusted: frozenset[tuple[str, str]] = frozenset()  # (owner type, element) sent as is
    questions: tuple[str, ...] = ()  # question texts whose answers the profile allows


@dataclass
class Tracker:
    """What one drawn resource holds: its tokens, and the utility that must survive."""

    tokens: list[str] = field(default_factory=list)
    trusted: set[str] = field(default_factory=set)
    codings: set[tuple[str, str, str]] = field(default_factory=set)
    targets: set[tuple[str, str, str]] = field(default_factory=set)
    top: str = ""  # the top-level element being drawn

    def token(self, shape: str = "word") -> str:
        """A fresh token; ``shape`` makes it valid where a value must look a certain way."""
        number = next(_counter)
        value = {
            "word": f"phi{number}tok",
            "digits": f"9{number:09d}7",
            "uuid": f"4{number:07d}-7777-4777-8777-777777777777",
        }[shape]
        self.tokens.append(value)
        return value


def _primitive(draw: st.DrawFn, element: ElementType, tracker: Tracker, required: bool) -> Any:
    kind = element.type
    if element.codes is not None:
        if not required and draw(st.integers(0, 4)) == 0:  # dirty data: text in a bound code
            return tracker.token()
        return draw(st.sampled_from(sorted(element.codes)))
    lineage = {t.name for t in kind.lineage}
    if "boolean" in lineage:
        return draw(st.booleans())
    if "integer" in lineage:
        return draw(st.integers(1, 80))
    if "decimal" in lineage:
        return draw(st.sampled_from([1.5, 7, 42.25, 80]))
    if kind.name == "time":
        return "10:30:00"
    if kind.name in ("date", "dateTime", "instant"):
        year, month = draw(st.integers(2000, 2024)), draw(st.integers(1, 12))
        planted = f"{year}-{month:02d}"
        tracker.tokens.append(planted)
        return f"{planted}-17" if kind.name == "date" else f"{planted}-17T08:15:00Z"
    if kind.name == "oid":
        return f"urn:oid:1.2.{tracker.token('digits')}"
    if kind.name == "uuid":
        return f"urn:uuid:{tracker.token('uuid')}"
    if kind.name == "base64Binary":
        return tracker.token()  # letters and digits: valid base64 as well
    if kind.name == "xhtml":
        return f"<div>{tracker.token()}</div>"
    if "uri" in lineage:
        return f"http://{tracker.token()}.example/x"
    return tracker.token()  # string, markdown, id, code without a value set


def _coding(
    tracker: Tracker, draw: st.DrawFn, utility: bool, trusted: frozenset[tuple[str, str]]
) -> dict[str, Any]:
    system, code = draw(st.sampled_from(SYSTEMS)), draw(st.sampled_from(CODES))
    if ("Coding", "code") in trusted and draw(st.integers(0, 3)) == 0:
        code = tracker.token()  # where a code is trusted, a code that carries PHI
        tracker.trusted.add(code)
    elif utility:
        tracker.codings.add((tracker.top, system, code))
    coding: dict[str, Any] = {"system": system, "code": code, "display": tracker.token()}
    if draw(st.booleans()):
        coding["version"] = tracker.token()
    return coding


def _reference(tracker: Tracker, draw: st.DrawFn, required: bool, utility: bool) -> dict[str, Any]:
    shapes = ["target", "display", "identifier", "untyped"]
    shape = "target" if required else draw(st.sampled_from(shapes))
    if shape == "untyped":  # a reference whose type is text typed by hand
        return {"resourceType": tracker.token(), "id": tracker.token()}
    if shape == "target":
        target = draw(st.sampled_from(["Patient", "Practitioner", "Encounter", "Organization"]))
        local = tracker.token()
        if utility:
            tracker.targets.add((tracker.top, target, local))
        return {"resourceType": target, "id": local, "display": tracker.token()}
    if shape == "display":
        return {"display": tracker.token()}
    return {"identifier": {"system": "urn:x", "value": tracker.token()}, "id": tracker.token()}


def _quantity(tracker: Tracker, draw: st.DrawFn) -> dict[str, Any]:
    code, unit = draw(st.sampled_from(UNITS))
    quantity: dict[str, Any] = {"value": draw(st.sampled_from([3, 12.5, 80])), "system": UCUM}
    quantity["code"] = code
    quantity["unit"] = unit if draw(st.booleans()) else tracker.token()
    return quantity


@dataclass
class _Draw:
    """One drawing: hypothesis's draw, the shape, the tracker."""

    draw: st.DrawFn
    shape: Shape
    tracker: Tracker

    def complex(self, kind: FhirType, depth: int, required: bool, utility: bool) -> Any:
        draw, tracker = self.draw, self.tracker
        if kind.is_a("Coding"):
            return _coding(tracker, draw, utility, self.shape.trusted)
        if kind.is_a("Reference"):
            return _reference(tracker, draw, required, utility)
        if kind.is_a("Quantity") and draw(st.booleans()):
            return _quantity(tracker, draw)
        if kind.kind == "choice":
            option = draw(st.sampled_from(sorted(kind.elements)))
            inner = kind.elements[option].type
            direct = any(inner.is_a(t) for t in ("Coding", "CodeableConcept", "Reference"))
            return {option: self.value(kind, option, depth + 1, required, utility and direct)}
        names = sorted(n for n in kind.elements if n not in _SKIP)
        extra = 1 if depth >= 4 else 4  # deep enough: what FHIR requires, and one more
        chosen = kind.required | set(draw(st.lists(st.sampled_from(names), max_size=extra)))
        out = {}
        for name in sorted(chosen):
            nested = utility and kind.is_a("CodeableConcept") and name == "coding"
            out[name] = self.value(kind, name, depth + 1, name in kind.required, nested)
        allowed = kind.name == "QuestionnaireResponse.item" and self.shape.questions
        if allowed and draw(st.booleans()):  # an allowed question: its answers may leave
            out["text"] = draw(st.sampled_from(self.shape.questions))
        self.made_up(kind, out)
        return out

    def made_up(self, kind: FhirType, out: dict[str, Any]) -> None:
        """Now and then, an element ``kind`` does not define, holding a token."""
        names = [name for name in MADE_UP if name not in kind.elements]
        if names and self.draw(st.integers(0, 5)) == 0:
            name = self.draw(st.sampled_from(names))
            out[name] = {"text": self.tracker.token(), "by": [self.tracker.token()]}

    def value(self, owner: FhirType, name: str, depth: int, required: bool, utility: bool) -> Any:
        element = owner.elements[name]
        count = self.draw(st.integers(1, 2)) if self.draw(st.booleans()) else None
        values = [
            self.one(owner, name, element, depth, required, utility) for _ in range(count or 1)
        ]
        return values if count is not None else values[0]

    def one(
        self,
        owner: FhirType,
        name: str,
        element: ElementType,
        depth: int,
        required: bool,
        utility: bool,
    ) -> Any:
        if any((kind.name, name) in self.shape.trusted for kind in owner.lineage):
            if self.draw(st.booleans()):
                return f"kept-{name}-{self.draw(st.integers(1, 3))}"
            planted = len(self.tracker.tokens)
            value = _primitive(self.draw, element, self.tracker, required)
            self.tracker.trusted.update(self.tracker.tokens[planted:])
            return value
        if element.type.is_primitive:
            return _primitive(self.draw, element, self.tracker, required)
        return self.complex(element.type, depth, required, utility)


@st.composite
def random_resource(
    draw: st.DrawFn, types: list[str], shape: Shape
) -> tuple[dict[str, Any], Tracker]:
    """A resource of one of ``types``: a few top-level elements, nested up to four deep."""
    resource_type = draw(st.sampled_from(types))
    owner = fhir_type(resource_type)
    assert owner is not None
    tracker = Tracker()
    drawing = _Draw(draw, shape, tracker)
    names = sorted(n for n in owner.elements if n not in _SKIP | {"id"})
    chosen = sorted(owner.required | set(draw(st.lists(st.sampled_from(names), max_size=6))))
    resource: dict[str, Any] = {"resourceType": resource_type, "id": tracker.token()}
    for name in chosen:
        tracker.top = name
        kind = owner.elements[name].type
        # utility is tracked where nothing FHIR requires can take it away with its parent
        utility = kind.kind == "choice" or any(
            kind.is_a(t) for t in ("Coding", "CodeableConcept", "Reference")
        )
        resource[name] = drawing.value(owner, name, 1, name in owner.required, utility)
    tracker.top = ""
    drawing.made_up(owner, resource)
    if draw(st.integers(0, 4)) == 0:
        resource["contained"] = [
            {
                "resourceType": UNKNOWN_TYPE,
                "id": tracker.token(),
                "status": tracker.token(),
                "meta": {"profile": [f"http://{tracker.token()}.example/x"]},
            }
        ]
    return resource, tracker
