"""How each element is handled: the decisions of the rules and the datatypes, made once.

A walker (``compiled.py``, ``traced.py``) asks a ``Frame`` (the children of one kind of
element: its FHIR type, its node in the rule tree, the rule it inherits, its datatype's entry)
for the ``Step`` of each child name. A step is decided the first time its name is met and
memoized; frames are interned per type plan, so recursive elements (QuestionnaireResponse
items) reuse them. Nothing here sees a value: decisions depend on names, types and rules only
(item filters aside, which read the filtered key of each item).

The order in which one element is decided (``docs/anonymization.md`` tells it to users):

0. an element the (known) FHIR type of its parent does not define is removed, unless it is a
   first-class attribute at a resource's root that a rule of the type's own entry names, or
   that the ``*`` datatype entry sends under a default of keep (``_undefined``); at the root
   of a type R4 does not define, every element is such an attribute;
1. a rule other than keep inherited from an ancestor, earlier in the profile than any rule
   naming this element, handles it whole;
2. a rule naming it (its path, or a datatype rule selecting its type) decides;
3. inside a kept element, the parent datatype's entry decides (its rule for this name, or its
   default); else the element's own datatype entry (``Identifier: redact``); else it is kept
   as its type allows (a primitive only when valid, a complex element by its own children);
4. outside kept elements, the type's default.

A non-keep rule applies to a whole element unless a rule earlier in the profile selects
something inside it; then the walker goes in, and the rule covers what that one does not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.anonymize.fhir_types import ElementType, FhirType, fhir_type
from app.anonymize.methods import DROP as REMOVED
from app.anonymize.plan import DatatypeEntry, TypePlan
from app.anonymize.tree import ENGINE_OWNED, CompiledRule, Edge, Node, earlier_rule, lowest

# Step kinds (ints, compared in the walker's inner loop)
SKIP = 0  # owned by the engine (resourceType, id, contained at the root)
DROP = 1  # removed
KEEP = 2  # a primitive sent as it is, when valid for its datatype
APPLY = 3  # a method on the whole value (a primitive, a Quantity for age, redact/replace)
DESCEND = 4  # a complex value: its children decided by ``frame``
REFERENCE = 5  # a Reference: reduced to a pseudonymous {resourceType, id} or removed
LOOSE = 6  # a value of unknown datatype under a rule: applied without types
SELECT = 7  # array items selected by a filter: ``select(item)`` gives each item's step

_MEMO_LIMIT = 4096


def _anything(value: Any) -> bool:
    return True


@dataclass(eq=False, slots=True)
class Step:
    """What the walker does with one child: ``kind`` and what that kind needs."""

    kind: int
    rule: CompiledRule | None = None  # the deciding rule (method, and label for explain)
    element: ElementType | None = None  # the child's datatype, when FHIR defines it
    frame: Frame | None = None  # DESCEND: how the child's own children are handled
    node: Node | None = None  # REFERENCE, LOOSE: where a rule may name a uri
    select: Callable[[Any], Step] | None = None  # SELECT
    accepts: Callable[[Any], bool] = _anything  # KEEP: is the value valid for its datatype
    apply: Callable[[Any, Any], Any] | None = None  # APPLY: (value, Context) -> result
    handle: Any = None  # the step as a closure, built by compiled.handler


SKIP_STEP = Step(SKIP)
# An element the FHIR type of its parent does not define, where no declared first-class
# attribute can be (see ``_undefined``): removed, whatever rule covers its parent.
UNDEFINED_STEP = Step(
    DROP,
    CompiledRule(
        index=sys.maxsize,
        label="engine: not an element of its FHIR type",
        method="redact",
        leaf=lambda value, key, today: value,
        removes=True,
    ),
)


def _keep(rule: CompiledRule, element: ElementType) -> Step:
    return Step(KEEP, rule, element, accepts=element.accepts)


@dataclass(eq=False, slots=True)
class Frame:
    """The children of one kind of element, and how each of them is handled."""

    plan: TypePlan
    owner: FhirType | None  # the element's datatype; None when FHIR does not define it
    node: Node | None  # its node in the rule tree
    cover: CompiledRule | None  # the rule it inherits (None at a resource's root)
    entry: DatatypeEntry | None  # its datatype's entry, when that has rules for children
    steps: dict[str, Step] = field(default_factory=dict)
    retain: tuple[str, ...] = ()  # filter keys kept on a selected item (extension url)
    required: frozenset[str] = frozenset()  # children FHIR requires: without them, removed
    quantity: bool = False  # a Quantity: over 89 years in a time unit is aggregated
    is_age: bool = False  # an Age: over 89 is aggregated, in years when no time unit is given
    extension: bool = False  # an Extension: removed when neither value nor extension is left
    zip3: bool = False  # an Address whose postalCode goes by zip3: only from a US address
    # an Address whose state goes by state: a US one only from the US, unless the rule lists
    # it (the clinic's own states: Western Australia's WA); None for any other frame
    states: frozenset[str] | None = None
    # a Coding, when the profile withholds code systems (withheldCodeSystems): one of those
    # is removed whole; None for any other frame
    withheld: frozenset[str] | None = None
    finishing: bool = False  # one of the above: the walker checks the object's output
    ages: bool = False  # has code and value, and the profile lists age codes
    _age_step: Step | None = None
    walk: Any = None  # the frame as a closure, built by compiled.walker

    def step(self, name: str) -> Step:
        """The step of the child ``name`` (decided once)."""
        found = self.steps.get(name)
        if found is None:
            found = _decide(self, name)
            if len(self.steps) < _MEMO_LIMIT:
                self.steps[name] = found
        return found

    def age_step(self) -> Step:
        """The step of ``value`` when ``code`` says it is the patient's age."""
        if self._age_step is None:
            assert self.owner is not None
            value = self.owner.elements["value"]
            self._age_step = _whole(self, value, None, self.plan.age_rule, None)
        return self._age_step


def _applying(rule: CompiledRule, element: ElementType | None) -> Step:
    """An APPLY step: the method's result, when it is a valid value of the element. An age
    that a date of the same resource puts over 89 today is removed (``Context.age_sent``)."""
    whole, leaf = rule.whole, rule.leaf
    accepts = element.accepts if element is not None else _anything
    ages = rule.method == "age"

    def apply(value: Any, ctx: Any) -> Any:
        result = whole(value) if whole is not None else leaf(value, ctx.key, ctx.today)
        if ages and result is not REMOVED and not ctx.age_sent(value):
            return REMOVED
        return result if result is REMOVED or accepts(result) else REMOVED

    return Step(APPLY, rule, element, apply=apply)


def root(plan: TypePlan, resource_type: str) -> Frame:
    """The frame of a resource's own elements."""
    found = plan.roots.get(resource_type)
    if found is None:
        owner = fhir_type(resource_type)
        if owner is not None and owner.kind != "resource":
            owner = None
        found = _frame(plan, owner, plan.root, None, None)
        if len(plan.roots) < _MEMO_LIMIT:
            plan.roots[resource_type] = found
    return found


def _frame(
    plan: TypePlan,
    owner: FhirType | None,
    node: Node | None,
    cover: CompiledRule | None,
    entry: DatatypeEntry | None,
) -> Frame:
    key = (id(owner), id(node), id(cover), id(entry))
    found = plan.frames.get(key)
    if found is None:
        found = Frame(plan, owner, node, cover, entry)
        if node is not None:
            found.retain = node.retain
        if owner is not None:
            if owner.kind in ("complex", "backbone"):
                found.required = owner.required
            found.quantity = owner.is_a("Quantity")
            found.is_age = owner.is_a("Age")
            found.extension = owner.is_a("Extension")
            # zip3 is the rule of US ZIP codes; another rule on postalCode is the profile's
            found.zip3 = owner.is_a("Address") and _method_of(found, "postalCode") == "zip3"
            if owner.is_a("Address") and _method_of(found, "state") == "state":
                rule = found.step("state").rule
                found.states = rule.values if rule is not None else frozenset()
            if owner.is_a("Coding") and plan.withheld_systems:
                found.withheld = plan.withheld_systems
            found.finishing = (
                bool(found.required)
                or found.quantity
                or found.extension
                or found.zip3
                or found.states is not None
                or found.withheld is not None
            )
            value = owner.elements.get("value")
            found.ages = bool(
                plan.age_codes
                and "code" in owner.elements
                and value is not None
                and value.type.kind == "choice"
            )
        if len(plan.frames) < _MEMO_LIMIT:
            plan.frames[key] = found
    return found


def _method_of(frame: Frame, name: str) -> str | None:
    """The method of the rule that decides the child ``name`` of ``frame``, if any."""
    rule = frame.step(name).rule
    return rule.method if rule is not None else None


def _decide(frame: Frame, name: str) -> Step:
    node = frame.node
    edge = node.children.get(name) if node is not None else None
    if edge is ENGINE_OWNED:
        return SKIP_STEP
    owner = frame.owner
    element = owner.elements.get(name) if owner is not None else None
    at_root = node is frame.plan.root
    declared = edge is not None and at_root and frame.plan.declares_attributes
    if element is None and not declared and (owner is not None or at_root):
        # at the root of a type R4 does not define, only the rules of its own entry can
        # describe what it holds: the "*" entry's paths name elements of R4 types
        return _undefined(frame)
    if edge is not None and edge.filtered:
        return _selecting(frame, name, element, edge)
    return _settle(frame, name, element, edge.plain if edge is not None else None)


def _undefined(frame: Frame) -> Step:
    """An element the FHIR type of its parent does not define (or any element at the root of
    a type R4 does not define), which no rule of the type's own entry declares. Aidbox stores
    first-class attributes at a resource's root (api/rest-api/other/aidbox-and-fhir-formats.md,
    "First-Class Extensions"): there, under a default of keep, the profile's ``*`` datatype
    entry decides; anywhere else, or without that entry, it is removed. The ``*`` resource
    entry's paths never declare one: they name the FHIR elements of whichever type it covers,
    and a type without ``intent`` has none to send."""
    plan = frame.plan
    own = plan.datatypes.unknown
    at_root = frame.node is plan.root and plan.default.is_keep
    if at_root and own is not None and own.method is not None:
        return _named(frame, None, None, own.method, None)
    return UNDEFINED_STEP


def _selecting(frame: Frame, name: str, element: ElementType | None, edge: Edge) -> Step:
    """Items of a filtered element each find their node (``Edge.select``), then their step,
    memoized by the values of the keys the filters read (questionnaire items repeat the same
    linkId and text in every response)."""
    keys = edge.keys
    memo: dict[tuple[Any, ...], Step] = {}
    plain = _settle(frame, name, element, edge.plain)

    def select(item: Any) -> Step:
        if type(item) is not dict:
            return plain
        probe = (item.get(keys[0]),) if len(keys) == 1 else tuple([item.get(k) for k in keys])
        try:
            found = memo.get(probe)
        except TypeError:  # a filtered key holding an object or array: not memoizable
            return _settle(frame, name, element, edge.select(item))
        if found is None:
            found = _settle(frame, name, element, edge.select(item))
            if len(memo) < _MEMO_LIMIT:
                memo[probe] = found
        return found

    return Step(SELECT, element=element, select=select)


def _settle(frame: Frame, name: str, element: ElementType | None, node: Node | None) -> Step:
    """The step of one element, from its node in the rule tree and its datatype."""
    plan = frame.plan
    fhir = element.type if element is not None else None
    named = node.rule if node is not None else None
    below = node.below if node is not None else None
    if fhir is not None and plan.selectors:
        named = earlier_rule(named, plan.selector(fhir))
        below = lowest(below, plan.selector_below(fhir))
    cover = frame.cover
    if cover is not None and cover.is_keep and node is not None and node.detached:
        cover = None  # judged on its own, as if it had no kept ancestor
    if cover is not None and not cover.is_keep and (named is None or cover.index < named.index):
        return _whole(frame, element, node, cover, below)
    if named is not None:
        return _named(frame, element, node, named, below)
    if cover is not None or plan.default.is_keep:
        return _by_datatype(frame, name, element, node, cover or plan.default, below)
    return _whole(frame, element, node, plan.default, below)


def _named(
    frame: Frame,
    element: ElementType | None,
    node: Node | None,
    rule: CompiledRule,
    below: int | None,
) -> Step:
    """A rule names the element."""
    if rule.is_keep:
        return _kept(frame, element, node, rule)
    return _whole(frame, element, node, rule, below)


def _whole(
    frame: Frame,
    element: ElementType | None,
    node: Node | None,
    rule: CompiledRule,
    below: int | None,
) -> Step:
    """A rule other than keep takes the element whole, unless an earlier rule selects something
    inside it (then the walker goes in, the rule covering the rest)."""
    fhir = element.type if element is not None else None
    if below is not None and below < rule.index and (fhir is None or not fhir.is_primitive):
        if fhir is not None and fhir.is_a("Reference"):
            # the only part of a Reference a rule may name is its uri: _reference reads it
            return Step(REFERENCE, rule, element, node=node)
        return Step(DESCEND, rule, element, frame=_frame(frame.plan, fhir, node, rule, None))
    return _apply(frame, element, node, rule)


def _apply(
    frame: Frame, element: ElementType | None, node: Node | None, rule: CompiledRule
) -> Step:
    if rule.removes:
        return Step(DROP, rule, element)
    fhir = element.type if element is not None else None
    if fhir is None:
        return Step(LOOSE, rule, node=node)
    if fhir.is_a("Reference"):
        return Step(REFERENCE, rule, element, node=node)
    if (
        rule.whole is not None
        or fhir.is_primitive
        or (rule.takes_quantity and fhir.is_a("Quantity"))
    ):
        return _applying(rule, element)
    # a method over a complex value reaches its primitives through their own types
    return Step(DESCEND, rule, element, frame=_frame(frame.plan, fhir, node, rule, None))


def _kept(frame: Frame, element: ElementType | None, node: Node | None, rule: CompiledRule) -> Step:
    """The element is sent; inside it, the rules below and the datatypes decide."""
    fhir = element.type if element is not None else None
    if fhir is None:
        if node is not None and node.below is not None:
            return Step(DESCEND, rule, frame=_frame(frame.plan, None, node, rule, None))
        return Step(LOOSE, rule, node=node)
    if fhir.is_a("Reference"):
        return Step(REFERENCE, rule, element, node=node)
    if fhir.is_primitive:
        return _keep(rule, element)
    entry = frame.plan.datatypes.entry(fhir)
    if entry is not None and entry.method is not None:
        entry = None  # a whole-value entry says nothing about the children of a named element
    return Step(DESCEND, rule, element, frame=_frame(frame.plan, fhir, node, rule, entry))


def _by_datatype(
    frame: Frame,
    name: str,
    element: ElementType | None,
    node: Node | None,
    cover: CompiledRule,
    below: int | None,
) -> Step:
    """No rule names the element and an ancestor is kept: the datatypes decide."""
    entry = frame.entry
    if entry is not None:
        named = entry.rules.get(name)
        if named is not None:
            return _named(frame, element, node, named, below)
        if entry.default is not None and not entry.default.is_keep:
            return _whole(frame, element, node, entry.default, below)
    if element is None:
        if frame.owner is None:  # inside an element FHIR does not define: kept as it is
            return _kept(frame, None, node, cover)
        own = frame.plan.datatypes.unknown
    else:
        own = frame.plan.datatypes.entry(element.type)
    if own is not None and own.method is not None:
        return _named(frame, element, node, own.method, below)
    return _kept(frame, element, node, cover)
