"""The source's current state of a resource, as the sink asks for it when the target refuses
something: a missing reference target to write first, or the state that replaced a refused
version (docs/push.md, "Refusals"). The source is the clinic for push, headquarters for pull.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.sync.bundle import Outgoing, Ref
from app.sync.feed import Change
from app.sync.transform import Transform

log = logging.getLogger("aidbox_sync.stream")

# Fetches a resource from the source by (type, source id) as a Change, or None if it is gone.
SourceRead = Callable[[str, str], Awaitable[Change | None]]


class SourceReader:
    """Answers the sink's questions for one run of one stream (sink.SourceState)."""

    def __init__(
        self,
        read: SourceRead,
        transform: Transform,
        *,
        carried: frozenset[str],
        stream_id: str,
    ) -> None:
        self._read = read
        self._transform = transform
        self._carried = carried
        self._stream = stream_id

    async def target(self, ref: Ref, source_id: str) -> Outgoing | None:
        """The source's copy of a missing target, only of a type carried in this direction:
        a reference to any other type is the profile's to handle (README, "References")."""
        if ref[0] not in self._carried:
            return None
        change = await self._read(ref[0], source_id)
        if change is None:
            return None
        try:
            return self._transform(change, if_absent=True)
        except Exception as exc:  # the referrer is then refused; the target's own stream
            # quarantines the target when it reads it
            log.warning(
                "stream %s: %s/%s cannot be transformed: %s",
                self._stream,
                ref[0],
                ref[1],
                type(exc).__name__,
            )
            return None

    async def holds(self, resource_type: str, source_id: str) -> bool:
        """Whether the source has the resource now."""
        return await self._read(resource_type, source_id) is not None

    async def current(self, item: Outgoing) -> list[Outgoing] | None:
        """None if `item` is the source's current state; else the write of the current state,
        or the deletion if the source deleted it ([] if the current state cannot be
        transformed: its own change is quarantined when the stream reads it)."""
        source = item.source
        change = await self._read(source.resource_type, source.id)
        if change is None:
            if item.method == "DELETE":
                return None
            change = Change("deleted", source.resource_type, source.id, source.version, {})
        elif item.method == "PUT" and change.version == source.version:
            return None
        try:
            return [self._transform(change)]
        except Exception:
            return []
