"""The compiled rule tree the walker reads: rules bound to their methods, and per element a
node with its rule and the edges to its children (unfiltered, and one per item filter).

Built by ``plan.compile_profile`` (``descend``, ``attach``); read-only afterwards but for
``Edge.memo``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from app.anonymize.paths import Segment
from app.anonymize.pseudonym import PseudonymKey

Leaf = Callable[[Any, PseudonymKey, date], Any]


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready to apply: the method bound to its parameters, and how it treats references.

    ``is_keep`` (keep, default keep) sends the element and lets what is inside it be decided by
    the rules and datatypes below. Any other method decides for the whole element: ``whole``
    replaces it (redact, replace), or ``leaf`` is applied to every primitive inside it.
    References are rewritten to pseudonymous ids by keep and pseudonymize and removed by the
    others; absolute (``uri``) references survive only a keep rule naming their ``uri`` element.
    """

    index: int
    label: str
    method: str
    leaf: Leaf
    whole: Callable[[Any], Any] | None = None
    rewrites_references: bool = False
    takes_quantity: bool = False
    removes: bool = False  # redact: lets the walker skip an element without a call
    is_keep: bool = False
    values: frozenset[str] = frozenset()  # the rule's own list, casefolded (state, country)


@dataclass(frozen=True, slots=True)
class Matcher:
    """An item filter: ``test(item[key])``. ``retain`` keeps ``key`` on items that survive."""

    key: str
    test: Callable[[Any], bool]
    ident: tuple[str, ...]
    retain: bool


@dataclass(eq=False, slots=True)
class Node:
    """One element of the tree: its rule, its children by key, the lowest rule index below."""

    rule: CompiledRule | None = None
    children: dict[str, Edge] = field(default_factory=dict)
    below: int | None = None
    retain: tuple[str, ...] = ()
    # The element is judged on its own: a keep it would inherit from an ancestor does not
    # cover it (a questionnaire item without text, whose question nobody can read).
    detached: bool = False


_MEMO_LIMIT = 4096
_MISS = object()


@dataclass(eq=False, slots=True)
class Edge:
    """The nodes reachable through one key: unfiltered, and one per filter.

    ``seal`` (after compilation) precomputes ``keys``, the item keys the filters read, whose
    values memoize the selected node (questionnaire items repeat the same linkId/text in every
    response).
    """

    plain: Node | None = None
    filtered: list[tuple[Matcher, Node]] = field(default_factory=list)
    # Merged into an item's node when no filter matches it (a question no rule names).
    otherwise: Node | None = None
    keys: tuple[str, ...] = ()
    memo: dict[tuple[Any, ...], Node | None] = field(default_factory=dict)

    def seal(self) -> Edge:
        """Precompute ``keys``; call once every filter is added."""
        self.keys = tuple(dict.fromkeys(matcher.key for matcher, _ in self.filtered))
        return self

    def nodes(self) -> Iterator[Node]:
        """Every node this edge leads to."""
        if self.plain is not None:
            yield self.plain
        for _, node in self.filtered:
            yield node
        if self.otherwise is not None:
            yield self.otherwise

    def select(self, item: Any) -> Node | None:
        """The node for one item: the unfiltered node merged with every matching filter's."""
        if not self.filtered or type(item) is not dict:
            return self.plain
        probe = tuple([item.get(key) for key in self.keys])
        try:
            node = self.memo.get(probe, _MISS)
        except TypeError:  # a filtered key holding an object or array: not memoizable
            return self._resolve(item)
        if node is _MISS:
            node = self._resolve(item)
            # The only write to a compiled plan: idempotent, bounded, safe to race.
            if len(self.memo) < _MEMO_LIMIT:
                self.memo[probe] = node
        return node  # type: ignore[return-value]

    def _resolve(self, item: dict[str, Any]) -> Node | None:
        node = self.plain
        matched = False
        for matcher, child in self.filtered:
            if matcher.test(item.get(matcher.key)):
                node, matched = merge(node, child), True
        if not matched and self.otherwise is not None:
            node = merge(node, self.otherwise)
        return node


def earlier_rule(a: CompiledRule | None, b: CompiledRule | None) -> CompiledRule | None:
    """The rule that comes first in the profile (None if neither)."""
    if a is None or (b is not None and b.index < a.index):
        return b
    return a


def lowest(a: int | None, b: int | None) -> int | None:
    """The smaller of two optional rule indexes."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def merge(a: Node | None, b: Node) -> Node:
    """One node doing what both do (an item selected by several filters)."""
    if a is None or a is b:
        return b
    children = dict(a.children)
    for name, edge in b.children.items():
        children[name] = _merge_edges(children.get(name), edge)
    return Node(
        rule=earlier_rule(a.rule, b.rule),
        children=children,
        below=lowest(a.below, b.below),
        retain=tuple(dict.fromkeys(a.retain + b.retain)),
        detached=a.detached or b.detached,
    )


def _merge_edges(a: Edge | None, b: Edge) -> Edge:
    if a is None or a is b:
        return b
    plain = merge(a.plain, b.plain) if b.plain is not None else a.plain
    otherwise = merge(a.otherwise, b.otherwise) if b.otherwise is not None else a.otherwise
    filtered = list(a.filtered)
    for matcher, node in b.filtered:
        for i, (existing, other) in enumerate(filtered):
            if existing.ident == matcher.ident:
                filtered[i] = (existing, merge(other, node))
                break
        else:
            filtered.append((matcher, node))
    return Edge(plain=plain, filtered=filtered, otherwise=otherwise).seal()


# Marks the elements the engine owns at the root of every type (resourceType, id, contained).
ENGINE_OWNED = Edge()


def _path_matcher(segment: Segment) -> Matcher:
    assert segment.filter is not None
    key, expected = segment.filter.key, segment.filter.value
    return Matcher(key, lambda value: value == expected, ("=", key, expected), retain=True)


def descend(node: Node, segment: Segment) -> Node:
    """The node of ``segment`` below ``node``, made if it is not there yet."""
    edge = node.children.setdefault(segment.name, Edge())
    if segment.filter is None:
        if edge.plain is None:
            edge.plain = Node()
        return edge.plain
    matcher = _path_matcher(segment)
    for existing, child in edge.filtered:
        if existing.ident == matcher.ident:
            return child
    child = Node(retain=(matcher.key,))
    edge.filtered.append((matcher, child))
    return child


def attach(node: Node, rule: CompiledRule) -> None:
    """Give ``node`` the rule, unless an earlier one of the profile is already there."""
    node.rule = earlier_rule(node.rule, rule)
