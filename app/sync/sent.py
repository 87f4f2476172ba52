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

Only this process writes its clinic's resources at the target (one service per clinic, README),
but two of its streams may write one resource: its own, and another one creating it on a
referrer's behalf and deleting it again when the source deleted it meanwhile (sink.py). While
such a deletion is decided, the resource is doubted: the memory holds nothing of it, and a
write sent before the doubt ended is not remembered, since the deletion may have landed after it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from app.sync.bundle import Outgoing, Ref

_ID_BITS = 48
_TYPES = 1 << 16


class SentCache:
    """Last body sent per global resource, as numbers."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[int, int] = OrderedDict()
        self._types: dict[str, int] = {}  # type → its number in the keys' top 16 bits
        self._doubted: dict[int, int] = {}  # key → doubts open on it
        self._doubts = 0  # doubts begun or ended, ever: what `mark` reads

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

    def mark(self) -> int:
        """Taken before a write is sent, and given back to `remember` once it landed."""
        return self._doubts

    def remember(self, item: Outgoing, since: int) -> None:
        """Record a successful write sent after `since` (a `mark`); nothing if a resource
        was doubted since, for a doubt's deletion may have landed after the write."""
        key = self._key(item.key)
        if since != self._doubts or key in self._doubted:
            return
        self._items[key] = self._fingerprint(item)
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    @contextmanager
    def doubting(self, ref: Ref) -> Iterator[None]:
        """While the body: the target's state of `ref` is unknown (another stream of this
        process may delete it); nothing is remembered of it before, during, or from writes
        sent before the end."""
        key = self._key(ref)
        self._items.pop(key, None)
        self._doubted[key] = self._doubted.get(key, 0) + 1
        self._doubts += 1
        try:
            yield
        finally:
            self._doubts += 1
            left = self._doubted.pop(key) - 1
            if left:
                self._doubted[key] = left
            self._items.pop(key, None)

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
