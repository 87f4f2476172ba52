"""The walker ``explain`` runs: every element by its step, one by one, each change recorded
with its path and the rule behind it.

It applies the same steps (``frames.py``) and element operations (``elements.py``) as the
walker ``anonymize`` runs (``compiled.py``), and so sends the same resource; it is slower,
building every element's path, which only a dry run needs.
"""

from __future__ import annotations

from typing import Any

from app.anonymize.elements import (
    Context,
    apply_loose,
    complete,
    is_age,
    is_reference,
    mark,
    reference,
    shaped,
)
from app.anonymize.frames import APPLY, DESCEND, KEEP, LOOSE, REFERENCE, SELECT, SKIP, Frame, Step
from app.anonymize.frames import DROP as DROP_STEP
from app.anonymize.methods import DROP


def walk(obj: dict, frame: Frame, ctx: Context, path: str) -> Any:
    """An object's children, each by its step; then what the object's datatype requires."""
    loose = shaped(frame)
    if loose is not None and is_reference(obj):
        return reference(obj, loose, ctx, path, frame.node)
    begin = mark(ctx, frame)
    out: dict[str, Any] = {}
    ages = frame.ages and is_age(obj.get("code"), frame.plan.age_codes)
    for name, value in obj.items():
        step = frame.step(name)
        here = f"{path}.{name}"
        if step.kind <= DROP_STEP:  # SKIP or DROP
            if step.kind != SKIP:
                ctx.record(here, "removed", _label(step))
            continue
        if ages and name == "value":
            step = frame.age_step()
        if type(value) is list:
            result = _items(step, value, ctx, here)
        else:
            result = _one(step.select(value) if step.kind == SELECT else step, value, ctx, here)  # type: ignore[misc]
        if result is not DROP:
            out[name] = result
    return complete(obj, out, frame, ctx, path, begin)


def _items(step: Step, values: list, ctx: Context, path: str) -> Any:
    """An array, item by item (each with its own step when filtered)."""
    out = []
    select = step.select if step.kind == SELECT else None
    for position, item in enumerate(values):
        here = f"{path}[{position}]"
        result = _one(step if select is None else select(item), item, ctx, here)
        if result is not DROP:
            out.append(result)
    return out if out else DROP


def _one(step: Step, value: Any, ctx: Context, path: str) -> Any:
    kind = step.kind
    if kind == DESCEND:
        frame = step.frame
        assert frame is not None
        if type(value) is dict:
            return walk(value, frame, ctx, path)
        if frame.owner is None and step.rule is not None:
            return apply_loose(value, step.rule, ctx, path)
        ctx.record(path, "removed", _invalid(step))
        return DROP
    if kind == KEEP:
        if step.accepts(value):
            return value
        ctx.record(path, "removed", _invalid(step))
        return DROP
    if kind == APPLY:
        rule = step.rule
        assert rule is not None and step.apply is not None
        result = step.apply(value, ctx)
        if result is DROP or result != value:
            ctx.record(path, "removed" if result is DROP else rule.method, rule.label)
        return result
    if kind == REFERENCE:
        assert step.rule is not None
        if type(value) is dict:
            return reference(value, step.rule, ctx, path, step.node)
        ctx.record(path, "removed", _invalid(step))
        return DROP
    if kind == LOOSE:
        assert step.rule is not None
        return apply_loose(value, step.rule, ctx, path, step.node)
    ctx.record(path, "removed", _label(step))
    return DROP


def _label(step: Step) -> str:
    return step.rule.label if step.rule is not None else "engine"


def _invalid(step: Step) -> str:
    kind = step.element.type.name if step.element is not None else "its datatype"
    return f"engine: not a valid {kind}"
