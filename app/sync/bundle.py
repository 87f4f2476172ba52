"""Pure building blocks of what is sent to the global: entries, ordering, batches.

Aidbox runs transaction entries in the order listed, and checks references on write
(api/batch-transaction.md), so targets are placed before the resources that refer to them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import InitVar, dataclass, field
from typing import Any, Literal

import orjson

from app.sync.feed import ChangeId

Ref = tuple[str, str]  # (resourceType, id)

# The largest entry the push sends, in its JSON bytes as sent (request included). Headquarters'
# policy for clinics refuses a body over twice this, counted in PostgreSQL's text of it, which
# is at most 1.5 times these bytes (docs/access-control.md, "Size limits and cost"); a larger
# entry is quarantined at the clinic, never sent (sink.py). No larger than the largest batch
# (SYNC_BATCH_MAX_BYTES), so that a transaction of it alone stays within the policy too.
MAX_ENTRY_BYTES = 500_000


def find_references(resource: dict[str, Any]) -> set[Ref]:
    """Every Aidbox-format reference `{resourceType, id}` inside a resource body.

    `contained` resources are resource bodies, not references, but their own references count.
    """
    found: set[Ref] = set()

    def walk(node: Any, top: bool) -> None:
        if isinstance(node, dict):
            rtype, rid = node.get("resourceType"), node.get("id")
            if not top and isinstance(rtype, str) and isinstance(rid, str):
                found.add((rtype, rid))
            for key, value in node.items():
                if key == "contained" and isinstance(value, list):
                    for item in value:
                        walk(item, True)
                elif isinstance(value, dict | list):
                    walk(value, False)
        elif isinstance(node, list):
            for item in node:
                walk(item, False)

    walk(resource, True)
    return found


def digest(resource: dict[str, Any]) -> str:
    """Content hash of an outgoing body (key order independent)."""
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


# What a server adds or keeps beside a resource's content: Aidbox's `resource` column holds the
# body without id, resourceType and meta.versionId/lastUpdated (database/overview.md).
_BESIDE_CONTENT = ("id", "resourceType", "meta")


def content_digest(resource: dict[str, Any]) -> str:
    """Hash of a resource's content, as the clinic would send it and as a server stores it:
    without id, resourceType and meta (so a stored row and a sent body compare equal)."""
    return digest({k: v for k, v in resource.items() if k not in _BESIDE_CONTENT})


@dataclass(frozen=True)
class Outgoing:
    """One write to the global, tied to the local change it comes from.

    It keeps the entry as JSON bytes and the hash of its body, made once, when it is built
    (while the previous transaction is in flight), and of the local change only its identity:
    neither the clinic's body nor the anonymized one is held while the batch waits or travels,
    and freeing a written batch costs next to nothing before the next one leaves.
    """

    source: ChangeId
    method: Literal["PUT", "DELETE"]
    target_type: str
    target_id: str
    # Serialized into `encoded`, then dropped; required, so that neither a forgotten argument
    # nor `dataclasses.replace` can make a PUT without its body.
    body: InitVar[dict[str, Any] | None]
    # Global reference -> local id of the target, to push a missing target first.
    depends_on: dict[Ref, str] = field(default_factory=dict)
    # A missing target pushed on a referrer's behalf: created only if still absent, so it can
    # never overwrite a newer state written meanwhile by the target's own stream.
    if_absent: bool = False
    # The transaction entry as JSON bytes, and the hash of the body (None for deletes).
    encoded: bytes = field(init=False, repr=False, compare=False)
    body_digest: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self, body: dict[str, Any] | None) -> None:
        # Frozen: derived fields are set once, here, through object.__setattr__.
        object.__setattr__(self, "encoded", orjson.dumps(self._entry(body)))
        object.__setattr__(self, "body_digest", digest(body) if body is not None else None)

    @property
    def key(self) -> Ref:
        """The global resource this entry writes."""
        return (self.target_type, self.target_id)

    def _entry(self, body: dict[str, Any] | None) -> dict[str, Any]:
        """The transaction entry (Aidbox format)."""
        if self.if_absent:
            # Conditional create, the form the SDK uses for seeds (aidbox-python-sdk sdk.py).
            request = {"method": "POST", "url": f"/{self.target_type}?_id={self.target_id}"}
        else:
            request = {"method": self.method, "url": f"/{self.target_type}/{self.target_id}"}
        entry: dict[str, Any] = {"request": request}
        if body is not None:
            entry["resource"] = body
        return entry

    def size(self) -> int:
        """Serialized size of the entry in bytes."""
        return len(self.encoded)


def order_by_references(items: list[Outgoing]) -> list[Outgoing]:
    """Stable topological order: an entry comes after the entries it references.

    A reference cycle (rare: Patient.link both ways) is broken where it is first met; if Aidbox
    then refuses the transaction, the sink bisects it like any other refusal.
    """
    by_key = {item.key: item for item in items}
    placed: set[Ref] = set()
    visiting: set[Ref] = set()
    ordered: list[Outgoing] = []

    def place(item: Outgoing) -> None:
        if item.key in placed or item.key in visiting:
            return
        visiting.add(item.key)
        for ref in sorted(item.depends_on):
            target = by_key.get(ref)
            if target is not None and target.method == "PUT":
                place(target)
        visiting.discard(item.key)
        placed.add(item.key)
        ordered.append(item)

    for item in items:
        place(item)
    return ordered


def batches(items: list[Outgoing], max_entries: int, max_bytes: int) -> Iterator[list[Outgoing]]:
    """Split into batches bounded by entry count and serialized bytes.

    Counts are spread evenly (450 entries with a bound of 200 go as 150 + 150 + 150, not
    200 + 200 + 50): as few transactions as the bound allows, none of them a small tail. An
    entry larger than `max_bytes` travels alone (the push sends none larger than
    MAX_ENTRY_BYTES: sink.py).
    """
    count = -(-len(items) // max_entries)  # as few batches as the count bound allows
    for part in range(count):
        # Evenly: part sizes differ by at most one.
        lo = part * len(items) // count
        hi = (part + 1) * len(items) // count
        yield from _by_bytes(items[lo:hi], max_bytes)


def _by_bytes(items: list[Outgoing], max_bytes: int) -> Iterator[list[Outgoing]]:
    batch: list[Outgoing] = []
    size = 0
    for item in items:
        item_size = item.size()
        if batch and size + item_size > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def transaction(items: Iterable[Outgoing], first: Iterable[Any] = ()) -> dict[str, Any]:
    """A transaction Bundle of the entries, in the given order, after the entries `first`
    (the fence's).

    The entries are the ready bytes of each Outgoing (`orjson.Fragment`): serialize the Bundle
    with orjson, which copies them as they are.
    """
    entries = [*first, *(orjson.Fragment(i.encoded) for i in items)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass(frozen=True)
class Footprint:
    """What a batch touches at the target: the resources it writes, and those it may create
    on a referrer's behalf when the target misses them (sink.py, "Refusals").

    Two batches clash when one writes what the other writes or may create: only then could the
    order in which they commit change what the target ends with. Two that may both create the
    same missing target do not clash: each creates it only if absent, from the source's current
    state.
    """

    writes: frozenset[Ref]
    creates: frozenset[Ref]

    @classmethod
    def of(cls, items: Iterable[Outgoing]) -> Footprint:
        """The footprint of a batch of writes."""
        writes: set[Ref] = set()
        creates: set[Ref] = set()
        for item in items:
            writes.add(item.key)
            creates.update(item.depends_on)
        return cls(frozenset(writes), frozenset(creates))

    def clashes(self, other: Footprint) -> bool:
        """Whether the two batches' outcome could depend on the order they commit in."""
        return not (
            self.writes.isdisjoint(other.writes)
            and self.writes.isdisjoint(other.creates)
            and self.creates.isdisjoint(other.writes)
        )
