"""Remembers what the global last received per resource, so unchanged bodies are not re-sent.

A clinic edit that only touches removed elements (a phone number) anonymizes to the body the
global already has; re-sending it would only add a version on the global. The memory is
bounded (LRU) and in-process: after a restart the first change of each resource is sent again,
which is harmless (PUT of the same body).
"""

from __future__ import annotations

from collections import OrderedDict

from app.sync.bundle import Outgoing, Ref

_DELETED = "deleted"


class SentCache:
    """Last digest sent per global resource."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Ref, str] = OrderedDict()

    @staticmethod
    def _fingerprint(item: Outgoing) -> str:
        return item.body_digest or _DELETED

    def unchanged(self, item: Outgoing) -> bool:
        """The global already holds exactly this state."""
        return self._items.get(item.key) == self._fingerprint(item)

    def remember(self, item: Outgoing) -> None:
        """Record a successful write."""
        self._items[item.key] = self._fingerprint(item)
        self._items.move_to_end(item.key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def forget(self, ref: Ref) -> None:
        """Drop what is known of one resource (it is to be sent whatever the memory says)."""
        self._items.pop(ref, None)

    def forget_type(self, resource_type: str) -> None:
        """Drop what is known of one type (its stream replays)."""
        for ref in [ref for ref in self._items if ref[0] == resource_type]:
            del self._items[ref]
