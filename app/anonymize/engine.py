"""Apply a compiled plan to one Aidbox-format resource: ``anonymize`` and ``explain``.

The walker builds a new resource and never mutates or shares the input's containers. It owns
what no profile can change: the id is pseudonymized, every reference is reduced to
``{resourceType, id}`` with a pseudonymous id (``display``, ``identifier`` and the rest dropped),
local references follow their renamed contained resources, and the profile's security label is
set in ``meta.security``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from app.anonymize.methods import DROP
from app.anonymize.plan import Plan, TypePlan
from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.tree import ENGINE_OWNED, CompiledRule, Edge, Node

# An absolute reference in Aidbox format is {"uri": ...}; a choice-type URI (value.uri) has the
# same shape, and Safe Harbor treats both as URLs: removed unless a rule names their uri. A
# logical reference ({"identifier": ...}, no id) carries an identifier and is always removed.
_LOOSE_REFERENCE_KEYS = frozenset({"uri", "display", "type", "identifier", "extension"})


@dataclass(frozen=True, slots=True)
class Change:
    """One element the plan changed: where (FHIRPath-like, with indexes), how, and which rule."""

    path: str
    action: str
    rule: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """What would leave the clinic for one resource, and why each element changed."""

    resource: dict[str, Any]
    changes: tuple[Change, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the ``$anonymize`` dry run; paths and rule names only, no values."""
        return {
            "resource": self.resource,
            "changes": [{"path": c.path, "action": c.action, "rule": c.rule} for c in self.changes],
        }


@dataclass(slots=True)
class _Context:
    key: PseudonymKey
    today: date
    local_ids: dict[str, str]
    default: CompiledRule
    trace: list[Change] | None


def anonymize(resource: dict[str, Any], plan: Plan, key: PseudonymKey) -> dict[str, Any]:
    """The resource to send to the global: a new dict; the input is never modified."""
    return _resource(resource, plan, key, None)


def explain(resource: dict[str, Any], plan: Plan, key: PseudonymKey) -> Explanation:
    """``anonymize`` plus the list of changed elements and the rule behind each change."""
    trace: list[Change] = []
    out = _resource(resource, plan, key, trace)
    return Explanation(out, tuple(trace))


def _resource(
    resource: dict[str, Any], plan: Plan, key: PseudonymKey, trace: list[Change] | None
) -> dict[str, Any]:
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str):
        raise ValueError("not a resource: no resourceType")
    today = plan.today or date.today()
    local_ids: dict[str, str] = {}
    contained = resource.get("contained")
    if isinstance(contained, list):
        # Contained ids only need to be unique inside the container: renumber them, so that
        # whatever a clinic put in them stays behind.
        for position, item in enumerate(contained):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                local_ids.setdefault(item["id"], f"c{position}")
    type_plan = plan.for_type(resource_type)
    ctx = _Context(key, today, local_ids, type_plan.default, trace)
    new_id = None
    if "id" in resource:
        new_id = key.resource_id(resource_type, str(resource["id"]))
        _record(ctx, f"{resource_type}.id", "pseudonymized", "engine: resource id")
    out = _body(resource, new_id, type_plan, ctx, resource_type)
    if isinstance(contained, list):
        items = _contained(contained, type_plan, plan, ctx, resource_type)
        if items:
            out["contained"] = items
    if plan.security_label is not None:
        meta = out.get("meta")
        out["meta"] = {
            **(meta if isinstance(meta, dict) else {}),
            "security": [dict(plan.security_label)],
        }
    return out


def _body(
    resource: dict[str, Any], new_id: str | None, type_plan: TypePlan, ctx: _Context, path: str
) -> dict[str, Any]:
    """resourceType, the new id, then every other element but contained through the rules."""
    out: dict[str, Any] = {"resourceType": resource["resourceType"]}
    if new_id is not None:
        out["id"] = new_id
    walked = _walk(resource, type_plan.root, None, ctx, path)
    if walked is not DROP:
        out.update(walked)
    return out


def _contained(
    contained: list[Any], container: TypePlan, plan: Plan, ctx: _Context, path: str
) -> list[dict[str, Any]]:
    if container.drop_contained is not None:
        _record(ctx, f"{path}.contained", "removed", container.drop_contained.label)
        return []
    items = []
    for position, item in enumerate(contained):
        item_type = item.get("resourceType") if isinstance(item, dict) else None
        if not isinstance(item_type, str):
            continue
        type_plan = plan.for_type(item_type)
        inner = _Context(ctx.key, ctx.today, ctx.local_ids, type_plan.default, ctx.trace)
        # Nested contained resources are not valid FHIR (dom-2) and are dropped with the rest.
        new_id = ctx.local_ids.get(item["id"]) if isinstance(item.get("id"), str) else None
        items.append(_body(item, new_id, type_plan, inner, f"{path}.contained[{position}]"))
    return items


def _record(ctx: _Context, path: str, action: str, rule: str) -> None:
    if ctx.trace is not None:
        ctx.trace.append(Change(path, action, rule))


def _walk(obj: dict, node: Node, cover: CompiledRule | None, ctx: _Context, path: str) -> Any:
    """An object under a tree node: keys with an edge go down it, others get ``cover`` or the
    type default."""
    out: dict[str, Any] = {}
    children = node.children
    fallback = cover if cover is not None else ctx.default
    tracing = ctx.trace is not None
    for name, value in obj.items():
        here = f"{path}.{name}" if tracing else path
        edge = children.get(name)
        if edge is None:
            if fallback.removes and not tracing:
                continue  # the common default-deny case, without a call
            result = _apply(value, fallback, ctx, here)
        elif edge is ENGINE_OWNED:
            continue
        elif edge.terminal is not None:  # nothing below: one rule for the whole value
            rule = edge.terminal
            result = _apply(
                value, rule if cover is None or rule.index < cover.index else cover, ctx, here
            )
        elif type(value) is list:
            result = _items(value, edge, cover, ctx, here)
        else:
            result = _item(value, edge, cover, ctx, here)
        if result is not DROP:
            out[name] = result
    return out if out else DROP


def _items(values: list, edge: Edge, cover: CompiledRule | None, ctx: _Context, path: str) -> Any:
    out = []
    tracing = ctx.trace is not None
    for position, value in enumerate(values):
        result = _item(value, edge, cover, ctx, f"{path}[{position}]" if tracing else path)
        if result is not DROP:
            out.append(result)
    return out if out else DROP


def _item(value: Any, edge: Edge, cover: CompiledRule | None, ctx: _Context, path: str) -> Any:
    node = edge.select(value)
    if node is None:
        return _apply(value, cover if cover is not None else ctx.default, ctx, path)
    rule = node.rule
    if rule is not None and (cover is None or rule.index < cover.index):
        cover = rule
    below = node.below
    # cover.index == below: the rule below is cover itself (reached again through nested items)
    if below is not None and type(value) is dict and _is_reference(value):
        return _reference(value, cover if cover is not None else ctx.default, ctx, path, node)
    if below is None or type(value) is not dict or (cover is not None and cover.index <= below):
        return _apply(value, cover if cover is not None else ctx.default, ctx, path)
    result = _walk(value, node, cover, ctx, path)
    if result is not DROP:
        for name in node.retain:  # the filter's own key (e.g. extension url) stays with the item
            if name in value:
                result.setdefault(name, value[name])
    return result


def _apply(value: Any, rule: CompiledRule, ctx: _Context, path: str) -> Any:
    """Apply one rule to a whole element."""
    if rule.whole is not None:
        result = rule.whole(value)
    elif type(value) is dict:
        result = _object(value, rule, ctx)
    elif type(value) is list:
        result = _list(value, rule, ctx)
    else:
        result = rule.leaf(value, ctx.key, ctx.today)
    if ctx.trace is not None and (result is DROP or result != value):
        if result is DROP:
            action = "removed"
        elif rule.is_keep:
            action = "references rewritten"
        else:
            action = rule.method
        ctx.trace.append(Change(path, action, rule.label))
    return result


def _object(obj: dict, rule: CompiledRule, ctx: _Context) -> Any:
    if _is_reference(obj):
        return _reference(obj, rule, ctx, None)
    if rule.takes_quantity and _is_number(obj.get("value")):
        return rule.leaf(obj, ctx.key, ctx.today)
    out = {}
    leaf = rule.leaf
    for name, value in obj.items():
        kind = type(value)
        if kind is dict:
            result = _object(value, rule, ctx)
        elif kind is list:
            result = _list(value, rule, ctx)
        else:
            result = leaf(value, ctx.key, ctx.today)
        if result is not DROP:
            out[name] = result
    return out if out else DROP


def _list(values: list, rule: CompiledRule, ctx: _Context) -> Any:
    out = []
    leaf = rule.leaf
    for value in values:
        kind = type(value)
        if kind is dict:
            result = _object(value, rule, ctx)
        elif kind is list:
            result = _list(value, rule, ctx)
        else:
            result = leaf(value, ctx.key, ctx.today)
        if result is not DROP:
            out.append(result)
    return out if out else DROP


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _is_reference(obj: dict) -> bool:
    if "resourceType" in obj:
        return "id" in obj
    if "localRef" in obj:
        return True
    return ("uri" in obj or "identifier" in obj) and obj.keys() <= _LOOSE_REFERENCE_KEYS


def _reference(
    ref: dict, rule: CompiledRule, ctx: _Context, path: str | None, node: Node | None = None
) -> Any:
    """A reference as a whole: rewritten to a pseudonymous {resourceType, id} or removed.

    ``node`` is the reference's place in the tree when the walker reached it there; only then
    can a rule name its ``uri`` element.
    """
    if "resourceType" not in ref and "localRef" not in ref:
        result = _uri_reference(ref, rule, node)
    elif rule.whole is not None:
        result = rule.whole(ref)
    elif not rule.rewrites_references:
        result = DROP
    elif "localRef" in ref:
        target = ctx.local_ids.get(ref["localRef"]) if isinstance(ref["localRef"], str) else None
        result = DROP if target is None else {"localRef": target}
    else:
        resource_type, local_id = ref["resourceType"], ref["id"]
        if isinstance(resource_type, str) and isinstance(local_id, str | int):
            result = {
                "resourceType": resource_type,
                "id": ctx.key.resource_id(resource_type, str(local_id)),
            }
        else:
            result = DROP
    if path is not None and ctx.trace is not None:
        action = "removed" if result is DROP else "reference rewritten"
        ctx.trace.append(Change(path, action, rule.label))
    return result


def _uri_reference(ref: dict, rule: CompiledRule, node: Node | None) -> Any:
    """An absolute URL (Safe Harbor (N)) survives only a keep rule naming its ``uri`` element
    (``subject.uri``, ``value.uri``) that comes before whatever rule covers the reference; a
    logical reference (identifier only) never does."""
    edge = node.children.get("uri") if node is not None and "uri" in ref else None
    named = edge.plain.rule if edge is not None and edge.plain is not None else None
    if named is not None and named.index < rule.index:
        return {"uri": ref["uri"]} if named.method == "keep" else DROP
    return rule.whole(ref) if rule.whole is not None else DROP
