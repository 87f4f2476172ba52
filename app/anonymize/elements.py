"""What a walker does to one element beyond its step: references, values of unknown datatype,
and the checks an object gets once its children are done. Shared by both walkers
(``compiled.py`` for ``anonymize``, ``traced.py`` for ``explain``), so that they cannot
disagree on any of it.

The engine owns what no profile can change: every Reference (by its FHIR type, or by its shape
where the type is unknown) is reduced to ``{resourceType, id}`` with a pseudonymous id
(headquarters' own id for a type the clinic pulls, docs/pull.md), or removed when it has none
or its ``resourceType`` is not an R4 resource type (``display``, ``identifier`` and the rest
never survive); local references follow their renamed contained resources; an element missing
a child FHIR requires is removed; an age over 89 in any time unit is aggregated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.anonymize.fhir_types import code_system_key, is_resource_type
from app.anonymize.frames import Frame
from app.anonymize.methods import (
    DROP,
    ages_past,
    aggregated,
    is_number,
    is_time,
    over_age,
)
from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.safe_harbor import MAX_REPORTABLE_AGE, US_STATES, ZIP_COUNTRIES
from app.anonymize.shared import Shared
from app.anonymize.tree import CompiledRule, Node

# An absolute reference in Aidbox format is {"uri": ...}; a choice-type URI (value.uri) has the
# same shape, and Safe Harbor treats both as URLs: removed unless a rule names their uri. A
# logical reference ({"identifier": ...}, no id) carries an identifier and is always removed.
_LOOSE_REFERENCE_KEYS = frozenset({"uri", "display", "type", "identifier", "extension"})

# A FHIR-format relative reference, "Patient/123" or "Patient/123/_history/2" (R4
# references.html, "Literal References"): Aidbox stores it so where it does not know the
# element's datatype (an untyped first-class attribute written through /fhir).
_LITERAL = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")

# A reference's target as sent, (resourceType, pseudonymous id), and its local id.
Targets = dict[tuple[str, str], str]
Target = tuple[tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class Change:
    """One element the plan changed: where (FHIRPath-like, with indexes), how, and which rule."""

    path: str
    action: str
    rule: str


@dataclass(slots=True)
class Context:
    """What one call to the engine carries through the walk of one resource."""

    key: PseudonymKey
    today: date
    local_ids: dict[str, str]  # contained resource id -> the id it is sent with
    trace: list[Change] | None  # explain: every change, with its path and rule
    shared: Shared  # headquarters' own resources of the pulled types (``Plan.shared``)
    # anonymize_with_targets: the references sent, in order (an object removed after its
    # children were walked takes its own back, see ``finish``)
    targets: list[Target] | None = None
    # Ages under 90 are judged with the dates that leave beside them (engine.py): the years
    # since the earliest of those (0 on a first walk), and the ages sent (None: none yet).
    elapsed: int = 0
    ages: list[Any] | None = None

    def age_sent(self, age: Any) -> bool:
        """Whether an age (a number of years, or a time Quantity) may leave as the walk knows
        so far, noting it when it may (``ages_past``). Anything else (a birth date given to
        the ``age`` method) is no age the dates of the resource can judge: not noted, so that
        its resource is not read again for them."""
        if ages_past(age, self.elapsed):
            return False
        if not (is_number(age) or type(age) is dict) or type(age) is bool:
            return True
        if self.ages is None:
            self.ages = []
        self.ages.append(age)
        return True

    def record(self, path: str | None, action: str, rule: str) -> None:
        """Note one change, when tracing (and the walker knows where it is)."""
        if self.trace is not None and path is not None:
            self.trace.append(Change(path, action, rule))


def finish(
    obj: dict, out: dict[str, Any], frame: Frame, ctx: Context, path: str | None, mark: int
) -> Any:
    """What an object's datatype requires of it once its children are decided: an age over 89
    aggregated, an extension with no value removed, an element missing a child FHIR requires
    removed. ``mark``: how many targets were noted before its children were walked (those
    noted since are not sent when it is removed or replaced)."""
    result: Any = DROP
    if frame.withheld is not None and _withheld(obj.get("system"), frame.withheld):
        ctx.record(path, "removed", "engine: a code system withheld by the profile")
        if ctx.targets is not None:
            del ctx.targets[mark:]
        return DROP
    if frame.zip3 or frame.states is not None:
        _us_only(obj, out, frame, ctx, path)
        if not out:
            return DROP
    if frame.quantity and type(out.get("value")) is list:
        # R4 Quantity.value is 0..1: a list of numbers is no value an age's checks can read
        ctx.record(path, "removed", "engine: a Quantity whose value is an array")
    # the age as the clinic wrote it, and the unit it leaves with (what a profile keeps of
    # its units may read as another unit than the whole did)
    elif (
        frame.quantity
        and "value" in out
        and (over_age(obj, in_years=frame.is_age) or over_age(out))
    ):
        ctx.record(path, "age", "engine: an age over 89 is aggregated")
        result = aggregated(MAX_REPORTABLE_AGE)
    elif (
        frame.quantity
        and "value" in out
        and (frame.is_age or is_time(obj))
        and not (ctx.age_sent(obj) and ctx.age_sent(out))
    ):
        ctx.record(path, "removed", "engine: an age a date of the resource puts over 89 today")
    elif frame.extension and "value" not in out and "extension" not in out:
        ctx.record(path, "removed", "engine: an extension without its value")
    elif frame.required and not frame.required <= out.keys():
        ctx.record(path, "removed", "engine: an element FHIR requires in it was removed")
    else:
        return out
    if ctx.targets is not None:
        del ctx.targets[mark:]  # what was walked inside it is not sent
    return result


def _withheld(system: Any, withheld: frozenset[str]) -> bool:
    """A Coding's system among those withheld (``code_system_key``: any spelling of the
    same system); a system that is no string names none of them, and the profile's rules
    judge it."""
    return type(system) is str and code_system_key(system) in withheld


def _us_only(obj: dict, out: dict[str, Any], frame: Frame, ctx: Context, path: str | None) -> None:
    """Remove from an Address outside the US what only a US address may send: a ZIP3 (a rule
    of US ZIP codes), and a US state's code or name (which abroad names a place below a
    state)."""
    zip3 = frame.zip3 and "postalCode" in out
    state = frame.states is not None and _us_state(out.get("state"), frame.states)
    if not (zip3 or state) or not _abroad(obj):
        return
    for name, sent, what in (("postalCode", zip3, "a ZIP3"), ("state", state, "a US state")):
        if sent:
            del out[name]
            where = f"{path}.{name}" if path is not None else None
            ctx.record(where, "removed", f"engine: {what} in an address outside the US")


def _us_state(value: Any, listed: frozenset[str]) -> bool:
    """A US state's code or name that the profile does not list as a state of its own:
    outside the US, "MI" is Milan's province and "CO" Como's, below a state
    (§164.514(b)(2)(i)(B)); "WA" may be Western Australia's, where a clinic lists it."""
    if type(value) is not str:
        return False
    folded = value.strip().casefold()
    return folded in US_STATES and folded not in listed


def _abroad(address: dict) -> bool:
    """Whether an Address says it is outside the US: by its country, else by its state; one
    that says neither is read as a US address."""
    for said, us in (("country", ZIP_COUNTRIES), ("state", US_STATES)):
        value = address.get(said)
        if type(value) is str:
            if value.strip():
                return value.strip().casefold() not in us
        elif value is not None:
            return True  # no place anyone can read: not a US one either
    return False


def complete(
    obj: dict, out: dict[str, Any], frame: Frame, ctx: Context, path: str | None, mark: int
) -> Any:
    """An object once its children are walked: removed when nothing of it is left; else with
    the filter's own key kept (an extension's url) and what its datatype requires (``finish``)."""
    if not out:
        return DROP
    for name in frame.retain:
        if name in obj:
            out.setdefault(name, obj[name])
    return finish(obj, out, frame, ctx, path, mark) if frame.finishing else out


def mark(ctx: Context, frame: Frame) -> int:
    """Where the targets of an object's children begin (``finish``)."""
    return len(ctx.targets) if frame.finishing and ctx.targets is not None else 0


def shaped(frame: Frame) -> CompiledRule | None:
    """The rule an object of ``frame`` takes whole when it is shaped like a reference: the
    frame's cover, where FHIR does not define the element (a first-class attribute or inside
    one; never a resource's root, which has no cover). Whatever the rules name inside it,
    such an object is a reference (``reference``), as it is where a rule takes it whole
    (``apply_loose``)."""
    return frame.cover if frame.owner is None else None


def is_age(code: Any, codes: frozenset[str]) -> bool:
    """True when a CodeableConcept carries one of the age codes, under any system or none.

    Read as the walker sends it, whatever its shape: an array where R4 has one concept, a
    lone Coding where R4 has an array, a list of codes where R4 has one, are all sent, so an
    age code in them counts too."""
    for concept in code if type(code) is list else (code,):
        codings = concept.get("coding") if type(concept) is dict else None
        if type(codings) is dict:
            codings = (codings,)
        elif type(codings) is not list:
            continue
        for coding in codings:
            value = coding.get("code") if type(coding) is dict else None
            if type(value) is str:
                if value in codes:
                    return True
            elif type(value) is list and not codes.isdisjoint(
                item for item in value if type(item) is str
            ):
                return True
    return False


def apply_loose(
    value: Any, rule: CompiledRule, ctx: Context, path: str | None, node: Node | None = None
) -> Any:
    """Apply one rule to a whole element whose datatype is unknown (references by shape)."""
    result = rule.whole(value) if rule.whole is not None else _loose(value, rule, ctx, node)
    if ctx.trace is not None and (result is DROP or result != value):
        if result is DROP:
            action = "removed"
        elif rule.is_keep:
            action = "references rewritten"
        else:
            action = rule.method
        ctx.record(path, action, rule.label)
    return result


def _object(obj: dict, rule: CompiledRule, ctx: Context, node: Node | None = None) -> Any:
    if is_reference(obj):
        return reference(obj, rule, ctx, None, node)
    if rule.takes_quantity and is_number(obj.get("value")):
        return _leaf(obj, rule, ctx)
    out = {}
    for name, value in obj.items():
        result = _loose(value, rule, ctx)
        if result is not DROP:
            out[name] = result
    return out if out else DROP


def _list(values: list, rule: CompiledRule, ctx: Context, node: Node | None = None) -> Any:
    out = []
    for value in values:
        result = _loose(value, rule, ctx, node if type(value) is dict else None)
        if result is not DROP:
            out.append(result)
    return out if out else DROP


# What the rule's ``leaf`` may be given: JSON's own scalars, never a container.
_SCALARS = (str, int, float, bool, type(None))


def _loose(value: Any, rule: CompiledRule, ctx: Context, node: Node | None = None) -> Any:
    """One value under a rule, by what it is: an object (maybe a reference), an array, or one
    of JSON's scalars. Anything else is removed, a container of another class than a parser's
    (a caller's dict subclass, a tuple) included: no container may reach ``leaf`` whole (a keep
    would send it as it is), and none is read as an object either, since the walker above,
    which would apply the rules named inside it, does not read it so."""
    kind = type(value)
    if kind is dict:
        return _object(value, rule, ctx, node)
    if kind is list:
        return _list(value, rule, ctx, node)
    if isinstance(value, _SCALARS):
        return _leaf(value, rule, ctx)
    return DROP


def _leaf(value: Any, rule: CompiledRule, ctx: Context) -> Any:
    """The rule's method on one value; under ``age``, an age that a date of the same
    resource puts over 89 today is removed (``Context.age_sent``), as where FHIR types it."""
    result = rule.leaf(value, ctx.key, ctx.today)
    if rule.takes_quantity and result is not DROP and not ctx.age_sent(value):
        return DROP
    return result


def is_reference(obj: dict) -> bool:
    """A reference by its shape, where the datatype is unknown (first-class attributes)."""
    if "resourceType" in obj:
        # with an id, a target; without, a typed logical reference or a resource put inline:
        # either way nothing of it may leave but a target (so it is removed)
        return True
    if "localRef" in obj or type(obj.get("reference")) is str:
        return True
    return ("uri" in obj or "identifier" in obj) and obj.keys() <= _LOOSE_REFERENCE_KEYS


def reference(
    ref: dict, rule: CompiledRule, ctx: Context, path: str | None, node: Node | None = None
) -> Any:
    """A reference as a whole: rewritten to a pseudonymous {resourceType, id} (kept as it is
    for one of headquarters' own resources, ``Plan.shared``) or removed.

    ``node`` is the reference's place in the rule tree; only there can a rule name its
    ``uri`` element. Nothing but the target survives: display, identifier, type, extensions
    and element ids are dropped, and a reference with no target (display or identifier only,
    or a ``resourceType`` that is not an R4 resource type) is removed. A FHIR-format literal
    (``{"reference": "Patient/1"}``, ``"#c1"``) is read as the target it names.
    """
    kept = False  # a reference to headquarters' own resource, sent as it is
    ref = _aidbox_form(ref)
    if ref is None:
        result = DROP
    elif "resourceType" not in ref and "localRef" not in ref:
        result = _uri_reference(ref, rule, node)
    elif rule.whole is not None:
        result = rule.whole(ref)
    elif not rule.rewrites_references:
        result = DROP
    elif "localRef" in ref:
        target = ctx.local_ids.get(ref["localRef"]) if isinstance(ref["localRef"], str) else None
        result = DROP if target is None else {"localRef": target}
    else:
        resource_type, local_id = ref["resourceType"], ref.get("id")
        # The type is sent as it is: only an R4 resource type's name, never a string typed there
        shared = isinstance(resource_type, str) and resource_type in ctx.shared.types
        if shared and not ctx.shared.holds(resource_type, local_id):
            # a resource of a pulled type that headquarters did not issue: the clinic's own,
            # whose id may say anything ("home-Jane-Doe-42-Elm-St"; shared.py)
            result = DROP
        elif shared:
            # Headquarters' own resource, pulled here: its id means the same there.
            result, kept = {"resourceType": resource_type, "id": local_id}, True
        elif is_resource_type(resource_type) and isinstance(local_id, str | int):
            target_id = ctx.key.resource_id(resource_type, str(local_id))
            result = {"resourceType": resource_type, "id": target_id}
            if ctx.targets is not None:
                ctx.targets.append(((resource_type, target_id), str(local_id)))
        else:
            result = DROP
    if ctx.trace is not None:
        action = "reference kept" if kept else "reference rewritten"
        ctx.record(path, "removed" if result is DROP else action, rule.label)
    return result


def _aidbox_form(ref: dict) -> dict | None:
    """The reference in Aidbox's form: as it is, unless it is a FHIR-format literal; then
    ``{resourceType, id}`` for a relative one, ``{localRef}`` for a contained one ("#id"), and
    None for anything else (an absolute URL in this form is not told apart from text: it is
    removed)."""
    if "resourceType" in ref or "localRef" in ref or "reference" not in ref:
        return ref
    literal = ref["reference"]
    if type(literal) is not str:
        return None
    if literal.startswith("#"):
        return {"localRef": literal[1:]}
    found = _LITERAL.fullmatch(literal)
    return None if found is None else {"resourceType": found[1], "id": found[2]}


def _uri_reference(ref: dict, rule: CompiledRule, node: Node | None) -> Any:
    """An absolute URL (Safe Harbor (N)) survives only a keep rule naming its ``uri`` element
    (``subject.uri``, ``value.uri``) that comes before whatever rule covers the reference; a
    logical reference (identifier only) never does."""
    edge = node.children.get("uri") if node is not None and "uri" in ref else None
    named = edge.plain.rule if edge is not None and edge.plain is not None else None
    if named is not None and (named.index < rule.index or rule.is_keep):
        return {"uri": ref["uri"]} if named.method == "keep" else DROP
    return rule.whole(ref) if rule.whole is not None else DROP
