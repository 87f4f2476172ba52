"""The clinic's current state of a resource, as the sink asks for it when the global refuses
something: a missing reference target to push first, or the state that replaced a refused
version (docs/push.md, "Refusals")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.anonymize import Plan, PseudonymKey
from app.sync.bundle import Outgoing, Ref
from app.sync.feed import Change
from app.sync.transform import to_outgoing

log = logging.getLogger("aidbox_sync.stream")

# Fetches a resource from the clinic by (type, local id) as a Change, or None if it is gone.
LocalReader = Callable[[str, str], Awaitable[Change | None]]


class ClinicReader:
    """Answers the sink's questions for one run of one stream (sink.ClinicState)."""

    def __init__(
        self,
        read_local: LocalReader,
        plan: Plan,
        key: PseudonymKey,
        *,
        pushed: frozenset[str],
        stream_id: str,
    ) -> None:
        self._read = read_local
        self._plan = plan
        self._key = key
        self._pushed = pushed
        self._stream = stream_id

    async def target(self, ref: Ref, local_id: str) -> Outgoing | None:
        """The clinic's copy of a missing target, only of a type this clinic pushes: a
        reference to any other type is the profile's to handle (README, "References")."""
        if ref[0] not in self._pushed:
            return None
        change = await self._read(ref[0], local_id)
        if change is None:
            return None
        try:
            return to_outgoing(change, self._plan, self._key, if_absent=True)
        except Exception as exc:  # the referrer is then refused; the target's own stream
            # quarantines the target when it reads it
            log.warning(
                "stream %s: %s/%s cannot be anonymized: %s",
                self._stream,
                ref[0],
                ref[1],
                type(exc).__name__,
            )
            return None

    async def current(self, item: Outgoing) -> list[Outgoing] | None:
        """None if `item` is the clinic's current state; else the write of the current state,
        or the deletion if the clinic deleted it ([] if the current state cannot be
        anonymized: its own change is quarantined when the stream reads it)."""
        source = item.source
        change = await self._read(source.resource_type, source.id)
        if change is None:
            if item.method == "DELETE":
                return None
            change = Change("deleted", source.resource_type, source.id, source.version, {})
        elif item.method == "PUT" and change.version == source.version:
            return None
        try:
            return [to_outgoing(change, self._plan, self._key)]
        except Exception:
            return []
