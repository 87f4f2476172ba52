"""Apply a compiled plan to one Aidbox-format resource: ``anonymize`` and ``explain``.

The engine builds a new resource and never mutates or shares the input's containers; what to do
with each element is decided once per place by ``frames.py``, and applied by one of two
walkers: ``compiled.py`` (``anonymize``: the steps as closures) or ``traced.py`` (``explain``:
one by one, each change recorded). Here is what belongs to a resource as a whole: its id is
pseudonymized; contained resources are renumbered (local references follow them, see
``elements.py``) or removed; and the profile's security label is set in ``meta.security``.
What no profile can change inside a resource (references, required children, ages over 89)
is told in ``elements.py``; a primitive is only sent when it is valid for its datatype (a code
in its required value set, a date shaped as a date).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.anonymize import frames, traced
from app.anonymize.compiled import walker
from app.anonymize.elements import Change, Context, Target, Targets
from app.anonymize.fhir_types import is_resource_type
from app.anonymize.frames import Frame
from app.anonymize.methods import DROP, ages_past, years_since_earliest
from app.anonymize.plan import Plan, TypePlan
from app.anonymize.pseudonym import PseudonymKey


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


def anonymize(resource: dict[str, Any], plan: Plan, key: PseudonymKey) -> dict[str, Any]:
    """The resource to send to the global: a new dict; the input is never modified."""
    return _resource(resource, plan, key, None)


def anonymize_with_targets(
    resource: dict[str, Any], plan: Plan, key: PseudonymKey
) -> tuple[dict[str, Any], Targets]:
    """``anonymize``, and the targets of the pseudonymized references it sends, each with its
    local id (what the global must hold before it accepts the resource; references to
    headquarters' own resources, kept as they are, are not among them). One walk does both."""
    targets: list[Target] = []
    out = _resource(resource, plan, key, None, targets)
    return out, dict(targets)


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
    targets: list[Target] | None = None,
    elapsed: int = 0,
) -> dict[str, Any]:
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str):
        raise ValueError("not a resource: no resourceType")
    if type(resource) is not dict:
        resource = dict(resource)  # the walkers take plain dicts only (what orjson gives)
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
    ctx = Context(key, today, local_ids, trace, plan.shared, targets, elapsed)
    new_id = None
    if "id" in resource:
        new_id = key.resource_id(resource_type, str(resource["id"]))
        ctx.record(f"{resource_type}.id", "pseudonymized", "engine: resource id")
    walked = resource
    if plan.security_label is not None:
        walked = _without_security(resource)
        if walked is not resource:  # the clinic's labels, or a meta that is no Meta, whole
            replaced = "meta.security" if "meta" in walked else "meta"
            ctx.record(f"{resource_type}.{replaced}", "replaced", "engine: the security label")
    out = _body(walked, new_id, frames.root(type_plan, resource_type), ctx, resource_type)
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
    if ctx.ages is not None:
        # An age under 90 leaves only if no date leaving with it says the patient is over 89
        # today (80 in 2014): those are known once the walk is done; walked again, without them.
        dated = years_since_earliest(out, today)
        if dated > elapsed and any(ages_past(age, dated) for age in ctx.ages):
            for since_first in (trace, targets):
                if since_first is not None:
                    since_first.clear()
            return _resource(resource, plan, key, trace, targets, dated)
    return out


def _without_security(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without the clinic's ``meta.security``, which the profile's label replaces:
    not walked, so that nothing inside it (a reference in an extension) counts as sent."""
    meta = resource.get("meta")
    if meta is None or (type(meta) is dict and "security" not in meta):
        return resource
    if type(meta) is not dict:  # no Meta: replaced whole by the label
        return {k: v for k, v in resource.items() if k != "meta"}
    return {**resource, "meta": {k: v for k, v in meta.items() if k != "security"}}


_TODAY: list[Any] = [None, 0.0]  # the date, and until when (monotonic seconds) it is trusted


def _today() -> date:
    """``date.today()``, read at most once a second (it costs as much as a small resource)."""
    now = time.monotonic()
    if now >= _TODAY[1]:
        _TODAY[0], _TODAY[1] = date.today(), now + 1.0
    return _TODAY[0]


def _body(
    resource: dict[str, Any], new_id: str | None, frame: Frame, ctx: Context, path: str
) -> dict[str, Any]:
    """resourceType, the new id, then every other element but contained through the frame."""
    out: dict[str, Any] = {"resourceType": resource["resourceType"]}
    if new_id is not None:
        out["id"] = new_id
    if ctx.trace is None:
        walked = walker(frame)(resource, ctx)
    else:
        walked = traced.walk(resource, frame, ctx, path)
    if walked is not DROP:
        out.update(walked)
    return out


def _contained(
    contained: list[Any], container: TypePlan, plan: Plan, ctx: Context, path: str
) -> list[dict[str, Any]]:
    if container.drop_contained is not None:
        ctx.record(f"{path}.contained", "removed", container.drop_contained.label)
        return []
    items = []
    for position, item in enumerate(contained):
        if not _sendable(item):
            # a type R4 does not define has no elements the profile could decide for: its
            # strings, meta and all would leave as they are, so none of it does
            ctx.record(f"{path}.contained[{position}]", "removed", "engine: not an R4 resource")
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
