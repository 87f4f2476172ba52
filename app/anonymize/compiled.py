"""The walker ``anonymize`` runs: each frame's steps (``frames.py``) turned into closures.

A frame's walk keeps a table (two for a frame whose ``value`` may be an age), filled the first
time each child name is met: per name, the validity test of a primitive sent as it is (handled
in the loop itself, without a call: most of what is sent), or a handler for any other child (a
nested object, a method, a reference, an item filter), or neither for a child that is removed.
The handlers do what the steps say and nothing else: which step applies to an element is
decided only in ``frames.py``, and what is done to a reference or a finished object only in
``elements.py``. ``traced.py`` walks the same steps one by one to record each change
(``explain``); tests/unit/anonymize/test_properties.py shows the two walkers agree on random
resources under several profiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.anonymize.elements import (
    Context,
    apply_loose,
    complete,
    is_age,
    is_reference,
    reference,
    shaped,
)
from app.anonymize.frames import (
    APPLY,
    DESCEND,
    DROP,
    KEEP,
    LOOSE,
    REFERENCE,
    SELECT,
    SKIP,
    Frame,
    Step,
)
from app.anonymize.methods import DROP as REMOVED

Handler = Callable[[Any, Context], Any]  # one value (not an array) -> its output or REMOVED

_TABLE_LIMIT = 4096  # names a frame remembers (frames.py memoizes its steps as far)


def walker(frame: Frame) -> Handler:
    """The walk of the objects ``frame`` describes (built once per frame, filled as it goes).

    It also takes what is not an object: removed, or, where FHIR does not define the element,
    given the frame's rule whole (a value where an object of unknown datatype was expected)."""
    found = frame.walk
    if found is None:
        found = frame.walk = _Walker(frame).run
    return found


def handler(step: Step) -> Handler:
    """What is done to one value (not an array) of an element with this step."""
    found = step.handle
    if found is None:
        found = step.handle = _handler(step)
    return found


def _handler(step: Step) -> Handler:
    kind = step.kind
    rule = step.rule
    if kind == KEEP:
        accepts = step.accepts
        return lambda value, ctx: value if accepts(value) else REMOVED
    if kind == DESCEND:
        assert step.frame is not None
        return walker(step.frame)
    if kind == APPLY:
        apply = step.apply
        assert apply is not None
        return apply
    if kind == REFERENCE:
        assert rule is not None
        node = step.node
        return lambda value, ctx: (
            reference(value, rule, ctx, None, node) if type(value) is dict else REMOVED
        )
    if kind == LOOSE:
        assert rule is not None
        node = step.node
        return lambda value, ctx: apply_loose(value, rule, ctx, None, node)
    if kind == SELECT:
        select = step.select
        assert select is not None
        return lambda value, ctx: handler(select(value))(value, ctx)
    return lambda value, ctx: REMOVED  # SKIP, DROP: only reached for items of a selection


Entry = tuple[Callable[[Any], bool] | None, Handler | None]  # (test, None), (None, handler)
_REMOVED_ENTRY: Entry = (None, None)


class _Table:
    """A frame's children by name: (the test of a primitive sent as it is, None), (None, the
    handler of any other child), or (None, None) for a child that is removed."""

    __slots__ = ("aged", "entries", "frame")

    def __init__(self, frame: Frame, aged: bool) -> None:
        self.frame = frame
        self.aged = aged  # ``value`` holds the patient's age (the code says so)
        self.entries: dict[str, Entry] = {}

    def learn(self, name: str) -> Entry:
        """Decide the child ``name``."""
        step = self.frame.step(name)
        if step.kind in (SKIP, DROP):
            entry = _REMOVED_ENTRY
        else:
            if self.aged and name == "value":
                step = self.frame.age_step()
            entry = (step.accepts, None) if step.kind == KEEP else (None, handler(step))
        if len(self.entries) < _TABLE_LIMIT:
            self.entries[name] = entry
        return entry


class _Walker:
    __slots__ = ("aged", "frame", "loose", "plain")

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.plain = _Table(frame, aged=False)
        self.aged = _Table(frame, aged=True) if frame.ages else None
        self.loose = shaped(frame)

    def run(self, obj: Any, ctx: Context) -> Any:
        """The output of one object: its children by their table, then its datatype's checks.

        The walker's inner loop (bench/anonymize.py)."""
        loose = self.loose
        if type(obj) is not dict:
            return REMOVED if loose is None else apply_loose(obj, loose, ctx, None)
        frame = self.frame
        if loose is not None and is_reference(obj):
            return reference(obj, loose, ctx, None, frame.node)
        table = self.plain
        if self.aged is not None and is_age(obj.get("code"), frame.plan.age_codes):
            table = self.aged
        entries = table.entries
        finishing = frame.finishing
        # elements.mark, inlined: this loop runs for every object of every pushed resource
        begin = len(ctx.targets) if finishing and ctx.targets is not None else 0
        out: dict[str, Any] = {}
        for name, value in obj.items():
            entry = entries.get(name)
            if entry is None:
                entry = table.learn(name)
            accepts, handle = entry
            if accepts is not None:
                if type(value) is not list:
                    if accepts(value):
                        out[name] = value
                else:
                    items = [item for item in value if accepts(item)]
                    if items:
                        out[name] = items
            elif handle is not None:
                if type(value) is list:
                    results = []
                    for item in value:
                        result = handle(item, ctx)
                        if result is not REMOVED:
                            results.append(result)
                    if results:
                        out[name] = results
                else:
                    result = handle(value, ctx)
                    if result is not REMOVED:
                        out[name] = result
        if out and not finishing and not frame.retain:
            return out  # most objects: nothing more to do, without a call
        return complete(obj, out, frame, ctx, None, begin)
