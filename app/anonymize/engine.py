"""Apply a compiled plan to one Aidbox-format resource: ``anonymize`` and ``explain``.

The walker builds a new resource and never mutates or shares the input's containers; what to do
with each element is decided once per place by ``frames.py``. It owns what no profile can
change: the id is pseudonymized; every Reference (by its FHIR type, or by its shape where the
type is unknown) is reduced to ``{resourceType, id}`` with a pseudonymous id (headquarters' own
id for a type the clinic pulls, docs/pull.md), or removed when it
has none or its ``resourceType`` is not an R4 resource type (``display``, ``identifier`` and the
rest never survive); local references follow
their renamed contained resources; a primitive is only sent when it is valid for its datatype
(a code in its required value set, a date shaped as a date); an element missing a child FHIR
requires is removed; an age over 89 in any time unit is aggregated; and the profile's
security label is set in ``meta.security``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.anonymize import frames
from app.anonymize.fhir_types import is_resource_type
from app.anonymize.frames import (
    APPLY,
    DESCEND,
    KEEP,
    LOOSE,
    REFERENCE,
    SELECT,
    SKIP,
    Frame,
    Leaves,
    Step,
)
from app.anonymize.frames import (
    DROP as DROP_STEP,
)
from app.anonymize.methods import DROP, aggregated, is_number, over_age
from app.anonymize.plan import Plan, TypePlan
from app.anonymize.pseudonym import PseudonymKey
from app.anonymize.safe_harbor import MAX_REPORTABLE_AGE
from app.anonymize.tree import CompiledRule, Node

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


# A reference's target as sent, (resourceType, pseudonymous id), and its local id.
Targets = dict[tuple[str, str], str]


@dataclass(slots=True)
class _Context:
    key: PseudonymKey
    today: date
    local_ids: dict[str, str]
    trace: list[Change] | None
    shared_types: frozenset[str]
    targets: Targets | None = None


def anonymize(resource: dict[str, Any], plan: Plan, key: PseudonymKey) -> dict[str, Any]:
    """The resource to send to the global: a new dict; the input is never modified."""
    return _resource(resource, plan, key, None)


def anonymize_with_targets(
    resource: dict[str, Any], plan: Plan, key: PseudonymKey
) -> tuple[dict[str, Any], Targets]:
    """``anonymize``, and the targets of the pseudonymized references it sends, each with its
    local id (what the global must hold before it accepts the resource; references to
    headquarters' own resources, kept as they are, are not among them). One walk does both."""
    targets: Targets = {}
    return _resource(resource, plan, key, None, targets), targets


def explain(resource: dict[str, Any], plan: Plan, key: PseudonymKey) -> Explanation:
    """``anonymize`` plus the list of changed elements and the rule behind each change."""
    trace: list[Change] = []
    out = _resource(resource, plan, key, trace)
    return Explanation(out, tuple(trace))


def _resource(
    resource: dict[str, Any],
    plan: Plan,
    key: PseudonymKey,
    trace: list[Change] | None,
    targets: Targets | None = None,
) -> dict[str, Any]:
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str):
        raise ValueError("not a resource: no resourceType")
    today = plan.today or _today()
    local_ids: dict[str, str] = {}
    contained = resource.get("contained")
    type_plan = plan.for_type(resource_type)
    if isinstance(contained, list) and type_plan.drop_contained is None:
        # Contained ids only need to be unique inside the container: renumber them, so that
        # whatever a clinic put in them stays behind. Only the resources that are sent get
        # one: a local reference to any other is removed.
        for position, item in enumerate(contained):
            if _sendable(item) and isinstance(item.get("id"), str):
                local_ids.setdefault(item["id"], f"c{position}")
    ctx = _Context(key, today, local_ids, trace, plan.shared_types, targets)
    new_id = None
    if "id" in resource:
        new_id = key.resource_id(resource_type, str(resource["id"]))
        _record(ctx, f"{resource_type}.id", "pseudonymized", "engine: resource id")
    out = _body(resource, new_id, frames.root(type_plan, resource_type), ctx, resource_type)
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


_TODAY: list[Any] = [None, 0.0]  # the date, and until when (monotonic seconds) it is trusted


def _today() -> date:
    """``date.today()``, read at most once a second (it costs as much as a small resource)."""
    now = time.monotonic()
    if now >= _TODAY[1]:
        _TODAY[0], _TODAY[1] = date.today(), now + 1.0
    return _TODAY[0]


def _body(
    resource: dict[str, Any], new_id: str | None, frame: Frame, ctx: _Context, path: str
) -> dict[str, Any]:
    """resourceType, the new id, then every other element but contained through the frame."""
    out: dict[str, Any] = {"resourceType": resource["resourceType"]}
    if new_id is not None:
        out["id"] = new_id
    walked = _walk(resource, frame, ctx, path)
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
        if not _sendable(item):
            # a type R4 does not define has no elements the profile could decide for: its
            # strings, meta and all would leave as they are, so none of it does
            _record(ctx, f"{path}.contained[{position}]", "removed", "engine: not an R4 resource")
            continue
        item_type = item["resourceType"]
        frame = frames.root(plan.for_type(item_type), item_type)
        # Nested contained resources are not valid FHIR (dom-2) and are dropped with the rest.
        new_id = ctx.local_ids.get(item["id"]) if isinstance(item.get("id"), str) else None
        items.append(_body(item, new_id, frame, ctx, f"{path}.contained[{position}]"))
    return items


def _sendable(item: Any) -> bool:
    """A contained resource of an R4 resource type (anything else is removed whole)."""
    return type(item) is dict and is_resource_type(item.get("resourceType"))


def _record(ctx: _Context, path: str, action: str, rule: str) -> None:
    if ctx.trace is not None:
        ctx.trace.append(Change(path, action, rule))


def _walk(obj: dict, frame: Frame, ctx: _Context, path: str) -> Any:
    """An object's children, each by its step; then what the object's datatype requires.

    Kept primitives and nested objects, most of what is sent, are handled in the loop itself:
    this is the walker's inner loop (bench/anonymize.py).
    """
    tracing = ctx.trace is not None
    if not tracing:
        leaves = frame.leaves
        if leaves is frames.UNKNOWN:
            leaves = frame.decide_leaves()
        if leaves is not None:
            return _walk_leaves(obj, leaves, frame, ctx, path)
    out: dict[str, Any] = {}
    steps = frame.steps
    ages = frame.ages and _is_age(obj.get("code"), frame.plan.age_codes)
    for name, value in obj.items():
        step = steps.get(name) or frame.step(name)
        kind = step.kind
        if kind <= DROP_STEP:  # SKIP or DROP: the common default-deny case, without a call
            if tracing and kind != SKIP:
                ctx.trace.append(Change(f"{path}.{name}", "removed", _label(step)))  # type: ignore[union-attr]
            continue
        if ages and name == "value":
            step = frame.age_step()
            kind = step.kind
        here = f"{path}.{name}" if tracing else path
        if type(value) is list:
            result = _items(step, value, ctx, here)
        else:
            result = _one(step.select(value) if kind == SELECT else step, value, ctx, here)  # type: ignore[misc]
        if result is not DROP:
            out[name] = result
    if not out:
        return DROP
    for name in frame.retain:  # the filter's own key (e.g. extension url) stays with the item
        if name in obj:
            out.setdefault(name, obj[name])
    return _finish(obj, out, frame, ctx, path) if frame.finishing else out


def _walk_leaves(obj: dict, leaves: Leaves, frame: Frame, ctx: _Context, path: str) -> Any:
    """``_walk`` for an object whose children are all primitives (a Coding, a Period): the
    same result, without the steps."""
    out: dict[str, Any] = {}
    kept, applied = leaves.kept, leaves.applied
    for name, value in obj.items():
        accepts = kept.get(name)
        if accepts is not None:
            if type(value) is not list:
                if accepts(value):
                    out[name] = value
            else:
                items = [item for item in value if accepts(item)]
                if items:
                    out[name] = items
            continue
        method = applied.get(name)
        if method is None:
            continue
        if type(value) is not list:
            result = method(value, ctx.key, ctx.today)
            if result is not DROP:
                out[name] = result
        else:
            results = [r for r in (method(v, ctx.key, ctx.today) for v in value) if r is not DROP]
            if results:
                out[name] = results
    if not out:
        return DROP
    return _finish(obj, out, frame, ctx, path) if frame.finishing else out


def _finish(obj: dict, out: dict[str, Any], frame: Frame, ctx: _Context, path: str) -> Any:
    if frame.quantity and "value" in out and over_age(obj, in_years=frame.is_age):
        _record(ctx, path, "age", "engine: an age over 89 is aggregated")
        return aggregated(MAX_REPORTABLE_AGE)
    if frame.extension and "value" not in out and "extension" not in out:
        _record(ctx, path, "removed", "engine: an extension without its value")
        return DROP
    if frame.required and not frame.required <= out.keys():
        _record(ctx, path, "removed", "engine: an element FHIR requires in it was removed")
        return DROP
    return out


def _items(step: Step, values: list, ctx: _Context, path: str) -> Any:
    """An array, item by item (each with its own step when filtered)."""
    out = []
    tracing = ctx.trace is not None
    select = step.select if step.kind == SELECT else None
    for position, item in enumerate(values):
        here = f"{path}[{position}]" if tracing else path
        result = _one(step if select is None else select(item), item, ctx, here)
        if result is not DROP:
            out.append(result)
    return out if out else DROP


def _one(step: Step, value: Any, ctx: _Context, path: str) -> Any:
    kind = step.kind
    if kind == DESCEND:
        frame = step.frame
        assert frame is not None
        if type(value) is dict:
            return _walk(value, frame, ctx, path)
        if frame.owner is None and step.rule is not None:
            return _apply(value, step.rule, ctx, path)
        _record(ctx, path, "removed", _invalid(step))
        return DROP
    if kind == KEEP:
        if step.accepts(value):
            return value
        _record(ctx, path, "removed", _invalid(step))
        return DROP
    if kind == APPLY:
        rule = step.rule
        assert rule is not None
        result = step.apply(value, ctx.key, ctx.today)
        if ctx.trace is not None and (result is DROP or result != value):
            ctx.trace.append(Change(path, "removed" if result is DROP else rule.method, rule.label))
        return result
    if kind == REFERENCE:
        assert step.rule is not None
        if type(value) is dict:
            return _reference(value, step.rule, ctx, path, step.node)
        _record(ctx, path, "removed", _invalid(step))
        return DROP
    if kind == LOOSE:
        assert step.rule is not None
        return _apply(value, step.rule, ctx, path, step.node)
    _record(ctx, path, "removed", _label(step))
    return DROP


def _label(step: Step) -> str:
    return step.rule.label if step.rule is not None else "engine"


def _invalid(step: Step) -> str:
    kind = step.element.type.name if step.element is not None else "its datatype"
    return f"engine: not a valid {kind}"


def _is_age(code: Any, codes: frozenset[tuple[str, str]]) -> bool:
    """True when a CodeableConcept carries one of the age codes."""
    codings = code.get("coding") if type(code) is dict else None
    if type(codings) is not list:
        return False
    return any(
        type(coding) is dict and (coding.get("system"), coding.get("code")) in codes
        for coding in codings
    )


def _apply(
    value: Any, rule: CompiledRule, ctx: _Context, path: str, node: Node | None = None
) -> Any:
    """Apply one rule to a whole element whose datatype is unknown (references by shape)."""
    if rule.whole is not None:
        result = rule.whole(value)
    elif type(value) is dict:
        result = _object(value, rule, ctx, node)
    elif type(value) is list:
        result = _list(value, rule, ctx, node)
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


def _object(obj: dict, rule: CompiledRule, ctx: _Context, node: Node | None = None) -> Any:
    if _is_reference(obj):
        return _reference(obj, rule, ctx, None, node)
    if rule.takes_quantity and is_number(obj.get("value")):
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


def _list(values: list, rule: CompiledRule, ctx: _Context, node: Node | None = None) -> Any:
    out = []
    leaf = rule.leaf
    for value in values:
        kind = type(value)
        if kind is dict:
            result = _object(value, rule, ctx, node)
        elif kind is list:
            result = _list(value, rule, ctx)
        else:
            result = leaf(value, ctx.key, ctx.today)
        if result is not DROP:
            out.append(result)
    return out if out else DROP


def _is_reference(obj: dict) -> bool:
    """A reference by its shape, where the datatype is unknown (first-class attributes)."""
    if "resourceType" in obj:
        return "id" in obj
    if "localRef" in obj:
        return True
    return ("uri" in obj or "identifier" in obj) and obj.keys() <= _LOOSE_REFERENCE_KEYS


def _reference(
    ref: dict, rule: CompiledRule, ctx: _Context, path: str | None, node: Node | None = None
) -> Any:
    """A reference as a whole: rewritten to a pseudonymous {resourceType, id} (kept as it is
    for a type the clinic pulls from headquarters, ``Plan.shared_types``) or removed.

    ``node`` is the reference's place in the rule tree; only there can a rule name its
    ``uri`` element. Nothing but the target survives: display, identifier, type, extensions
    and element ids are dropped, and a reference with no target (display or identifier only,
    or a ``resourceType`` that is not an R4 resource type) is removed.
    """
    kept = False  # a reference to headquarters' own resource, sent as it is
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
        resource_type, local_id = ref["resourceType"], ref.get("id")
        # The type is sent as it is: only an R4 resource type's name, never a string typed there
        shared = isinstance(resource_type, str) and resource_type in ctx.shared_types
        if shared and isinstance(local_id, str):
            # Headquarters' own resource, pulled here: its id means the same there.
            result, kept = {"resourceType": resource_type, "id": local_id}, True
        elif is_resource_type(resource_type) and isinstance(local_id, str | int):
            target_id = ctx.key.resource_id(resource_type, str(local_id))
            result = {"resourceType": resource_type, "id": target_id}
            if ctx.targets is not None:
                ctx.targets[(resource_type, target_id)] = str(local_id)
        else:
            result = DROP
    if path is not None and ctx.trace is not None:
        action = "reference kept" if kept else "reference rewritten"
        if result is DROP:
            action = "removed"
        ctx.trace.append(Change(path, action, rule.label))
    return result


def _uri_reference(ref: dict, rule: CompiledRule, node: Node | None) -> Any:
    """An absolute URL (Safe Harbor (N)) survives only a keep rule naming its ``uri`` element
    (``subject.uri``, ``value.uri``) that comes before whatever rule covers the reference; a
    logical reference (identifier only) never does."""
    edge = node.children.get("uri") if node is not None and "uri" in ref else None
    named = edge.plain.rule if edge is not None and edge.plain is not None else None
    if named is not None and (named.index < rule.index or rule.is_keep):
        return {"uri": ref["uri"]} if named.method == "keep" else DROP
    return rule.whole(ref) if rule.whole is not None else DROP
