"""Compile a profile once into a plan: per resource type a tree of element names to rules,
plus the profile's datatype entries, datatype selectors and age codes.

Rule semantics (what the tree encodes, ``frames.py`` applies):

- a rule other than ``keep`` handles the element its path selects and everything inside it,
  unless a rule earlier in the profile selects something inside it;
- ``keep`` sends the element, and what is inside it follows the rules that name it, and where
  none does, its FHIR datatype's entry in ``datatypes`` (a Coding keeps system and code);
- elements no rule selects, outside kept elements, get the type's default action.

Each tree node carries its own rule and the lowest rule index found below it (``below``), so
the walker applies a rule to a whole subtree at once whenever nothing below it could win.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from app.anonymize.fhir_types import FhirType, code_system_key
from app.anonymize.paths import parse_path
from app.anonymize.profile import (
    ANY_TYPE,
    RECURSIVE_ELEMENTS,
    UNKNOWN_DATATYPE,
    DatatypeRules,
    MethodSpec,
    Profile,
    QuestionRule,
)
from app.anonymize.questions import add_questions
from app.anonymize.rules import LAST, compile_rule, default_rule
from app.anonymize.shared import NONE_SHARED, Shared
from app.anonymize.tree import (
    ENGINE_OWNED,
    CompiledRule,
    Edge,
    Node,
    attach,
    descend,
    lowest,
)


def _wire_recursion(root: Node, name: str) -> None:
    """Make ``name`` inside ``name`` (and inside its ``answer``) lead back to the top edge,
    so rules on ``item`` apply at every nesting depth."""
    edge = root.children.get(name)
    if edge is None:
        return
    if edge.plain is None:
        edge.plain = Node()  # unmatched items must still be walked for nested matches
    for item in edge.nodes():
        item.children[name] = edge
        answers = item.children.setdefault("answer", Edge())
        if answers.plain is None:
            answers.plain = Node()
        for answer in answers.nodes():
            answer.children[name] = edge


def _all_nodes(root: Node) -> list[Node]:
    seen: dict[int, Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        for edge in node.children.values():
            stack.extend(edge.nodes())
    return list(seen.values())


def _compute_below(root: Node) -> None:
    """``below`` = lowest rule index strictly under each node; a fixpoint, as items recurse."""
    nodes = _all_nodes(root)
    changed = True
    while changed:
        changed = False
        for node in nodes:
            low = node.below
            for edge in node.children.values():
                for child in edge.nodes():
                    low = lowest(low, child.rule.index if child.rule is not None else None)
                    low = lowest(low, child.below)
            if low != node.below:
                node.below = low
                changed = True


@dataclass(frozen=True, slots=True, eq=False)
class DatatypeEntry:
    """How elements of one datatype are sent where no rule names them (profile ``datatypes``):
    a ``method`` for the whole value, or ``rules`` for its elements and a ``default``."""

    method: CompiledRule | None
    rules: dict[str, CompiledRule]
    default: CompiledRule | None


@dataclass(frozen=True, slots=True, eq=False)
class Datatypes:
    """The datatype entries of a profile, looked up along a type's lineage."""

    entries: dict[str, DatatypeEntry]
    unknown: DatatypeEntry | None  # elements FHIR does not define ("*")

    def entry(self, fhir: FhirType) -> DatatypeEntry | None:
        """The entry of the nearest type in ``fhir``'s lineage that has one."""
        for ancestor in fhir.lineage:
            found = self.entries.get(ancestor.name)
            if found is not None:
                return found
        return None


@dataclass(slots=True, eq=False)
class TypePlan:
    """The compiled rules of one resource type, and the frames built from them (``frames.py``
    memoizes there, the only state a compiled plan changes)."""

    resource_type: str
    root: Node
    default: CompiledRule
    drop_contained: CompiledRule | None
    selectors: dict[str, CompiledRule]  # datatype name -> the first rule selecting it
    datatypes: Datatypes
    age_codes: frozenset[str]  # the codes of ageCodes, under any system
    age_rule: CompiledRule
    withheld_systems: frozenset[str]  # withheldCodeSystems: their Codings are removed
    # The rules are the type's own entry: a first segment the type does not define is a
    # first-class attribute it declares. Not for "*", whose paths name FHIR elements of
    # whichever type it covers.
    declares_attributes: bool = False
    frames: dict[tuple[int, int, int, int], Any] = field(default_factory=dict)
    roots: dict[str, Any] = field(default_factory=dict)  # resource type -> its root frame
    selectors_below: dict[str, int | None] = field(default_factory=dict)

    def selector(self, fhir: FhirType) -> CompiledRule | None:
        """The datatype rule selecting elements of ``fhir`` (or of a type it derives from)."""
        for ancestor in fhir.lineage:
            found = self.selectors.get(ancestor.name)
            if found is not None:
                return found
        return None

    def selector_below(self, fhir: FhirType) -> int | None:
        """The lowest index of the datatype rules that can select something inside ``fhir``."""
        if fhir.name not in self.selectors_below:
            self.selectors_below[fhir.name] = min(
                (
                    rule.index
                    for name, rule in self.selectors.items()
                    if fhir.reaches(frozenset({name}))
                ),
                default=None,
            )
        return self.selectors_below[fhir.name]


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled profile. Build it with ``compile_profile``; apply it with ``anonymize``."""

    profile_id: str
    types: dict[str, TypePlan]
    fallback: TypePlan
    security_label: dict[str, str] | None
    today: date | None = None
    # Headquarters' own resources, of the types this clinic pulls (docs/pull.md): a reference
    # to one keeps its id. Set from the configuration in force, not by a profile.
    shared: Shared = NONE_SHARED

    def for_type(self, resource_type: str) -> TypePlan:
        """The plan of a type, or of ``*`` (or the profile default) for types not listed."""
        return self.types.get(resource_type, self.fallback)


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every type plan of a profile shares."""

    datatypes: Datatypes
    age_codes: frozenset[str]  # the codes of ageCodes, under any system
    age_rule: CompiledRule
    withheld_systems: frozenset[str]
    questions: list[QuestionRule]


def _type_plan(
    resource_type: str,
    rules: list[Any],
    default: Literal["keep", "redact"],
    shared: _Shared,
    source: str | None = None,
) -> TypePlan:
    """``source`` is the profile entry the rules come from, when it is ``*``."""
    source = source or resource_type
    root = Node()
    offset = 0
    if resource_type == "QuestionnaireResponse" and shared.questions:
        add_questions(root, shared.questions)
        offset = len(shared.questions)  # question rules come first: they target answers
    drop_contained = None
    selectors: dict[str, CompiledRule] = {}
    for index, rule in enumerate(rules):
        compiled = compile_rule(rule, offset + index, f"{source}.rules[{index}]")
        if rule.datatype is not None:
            selectors.setdefault(rule.datatype, compiled)
            continue
        segments = parse_path(rule.path)
        if segments[0].name == "contained":
            drop_contained = compiled
            continue
        node = root
        for segment in segments:
            node = descend(node, segment)
        attach(node, compiled)
    recursive = RECURSIVE_ELEMENTS.get(resource_type)
    if recursive:
        _wire_recursion(root, recursive)
    _compute_below(root)
    for node in _all_nodes(root):
        for edge in node.children.values():
            edge.seal()
    for name in ("resourceType", "id", "contained"):
        root.children[name] = ENGINE_OWNED
    return TypePlan(
        resource_type=resource_type,
        root=root,
        default=default_rule(default, resource_type),
        drop_contained=drop_contained,
        selectors=selectors,
        datatypes=shared.datatypes,
        age_codes=shared.age_codes,
        age_rule=shared.age_rule,
        withheld_systems=shared.withheld_systems,
        declares_attributes=source != ANY_TYPE,
    )


def _datatype_entry(entry: DatatypeRules) -> DatatypeEntry:
    # Entries come after every rule of a resource: a rule naming an element always wins.
    label = f"datatypes.{entry.type}"
    spec = entry.to_spec()
    return DatatypeEntry(
        method=compile_rule(spec, LAST, label) if spec is not None else None,
        rules={
            rule.path or "": compile_rule(rule, LAST, f"{label}.rules[{index}]")
            for index, rule in enumerate(entry.rules)
        },
        default=default_rule(entry.default, label) if entry.default is not None else None,
    )


def _datatypes(profile: Profile) -> Datatypes:
    entries = {entry.type: _datatype_entry(entry) for entry in profile.datatypes}
    return Datatypes(entries, entries.pop(UNKNOWN_DATATYPE, None))


def compile_profile(profile: Profile, *, today: date | None = None) -> Plan:
    """Compile a validated profile. ``today`` pins the date ``age`` measures against (tests);
    by default each call to ``anonymize`` uses the current date."""
    entries = {entry.type: entry for entry in profile.resources}
    questions = profile.questionnaire.questions
    shared = _Shared(
        datatypes=_datatypes(profile),
        # A listed code counts whatever system it is sent under: the system is free text (an
        # OID, "LN", a trailing slash, none), and the code leaves with the value it marks.
        age_codes=frozenset(c.code for c in profile.age_codes),
        age_rule=compile_rule(MethodSpec(method="age"), LAST, "ageCodes"),
        withheld_systems=frozenset(map(code_system_key, profile.withheld_code_systems)),
        questions=questions,
    )
    types: dict[str, TypePlan] = {}
    for resource_type, entry in entries.items():
        if resource_type != ANY_TYPE:
            default = entry.default or profile.default
            types[resource_type] = _type_plan(resource_type, entry.rules, default, shared)
    wildcard = entries.get(ANY_TYPE)
    fallback_rules = wildcard.rules if wildcard else []
    fallback_default = (wildcard.default if wildcard else None) or profile.default
    no_questions = replace(shared, questions=[])
    fallback = _type_plan(ANY_TYPE, fallback_rules, fallback_default, no_questions)
    if "QuestionnaireResponse" not in types and questions:
        types["QuestionnaireResponse"] = _type_plan(
            "QuestionnaireResponse", fallback_rules, fallback_default, shared, ANY_TYPE
        )
    label = profile.security_label
    return Plan(
        profile_id=profile.id,
        types=types,
        fallback=fallback,
        security_label=label.model_dump(exclude_none=True) if label else None,
        today=today,
    )
