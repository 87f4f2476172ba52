"""Remembers what the global last received per resource, so unchanged bodies are not re-sent.

A clinic edit that only touches removed elements (a phone number) anonymizes to the body the
global already has; re-sending it would only add a version on the global. The memory is
bounded (LRU) and in-process: after a restart the first change of each resource is sent again,
which is harmless (PUT of the same body).

It keeps two numbers per resource, not the ids and digests themselves: a backfill of
100,000 resources then holds a few megabytes, not tens (bench/ceiling.py prints the App's
memory). The key is a 48-bit hash of the resource's id under its type's number (16 bits, so a
type can be forgotten); the value, 64 bits of the body's SHA-256, or for a deletion 64 bits of
another hash of the id. "Unchanged" wrongly needs the key and the value of two different
states to collide, about one chance in 2^64 per comparison; a collision of keys alone only
sends a body again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from app.sync.bundle import Outgoing, Ref

_ID_BITS = 48
_TYPES = 1 << 16


class SentCache:
    """Last body sent per global resource, as numbers."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[int, int] = OrderedDict()
        self._types: dict[str, int] = {}  # type → its number in the keys' top 16 bits

    def _key(self, ref: Ref) -> int:
        number = self._types.setdefault(ref[0], len(self._types))
        if number >= _TYPES:
            raise ValueError("more resource types than the memory of what was sent can tell")
        hashed = hashlib.blake2b(ref[1].encode(), digest_size=6).digest()
        return (number << _ID_BITS) | int.from_bytes(hashed, "big")

    @staticmethod
    def _fingerprint(item: Outgoing) -> int:
        if item.body_digest:
            return int(item.body_digest[:16], 16)
        # A deletion has no body: a hash of the id, other than the key's, so that two
        # deletions whose keys collide still differ.
        hashed = hashlib.blake2b(item.target_id.encode(), digest_size=8, person=b"deleted")
        return int.from_bytes(hashed.digest(), "big")

    def unchanged(self, item: Outgoing) -> bool:
        """The global already holds exactly this state."""
        return self._items.get(self._key(item.key)) == self._fingerprint(item)

    def remember(self, item: Outgoing) -> None:
        """Record a successful write."""
        key = self._key(item.key)
        self._items[key] = self._fingerprint(item)
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def forget(self, ref: Ref) -> None:
        """Drop what is known of one resource (it is to be sent whatever the memory says)."""
        self._items.pop(self._key(ref), None)

    def forget_type(self, resource_type: str) -> None:
        """Drop what is known of one type (its stream replays)."""
        number = self._types.get(resource_type)
        if number is None:
            return
        for key in [k for k in self._items if k >> _ID_BITS == number]:
            del self._items[key]
