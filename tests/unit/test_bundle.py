"""Pure building blocks of the push: references, ordering, batching, collapsing."""

from __future__ import annotations

import gc
from types import ModuleType

import orjson

from app.anonymize import anonymize
from app.sync.bundle import (
    Outgoing,
    batches,
    digest,
    find_references,
    order_by_references,
    transaction,
)
from app.sync.feed import Change, latest_per_resource
from app.sync.sent import SentCache
from app.sync.sink import missing_reference
from app.sync.transform import Anonymize
from tests.support.clinic import KEY, patient, safe_harbor


def change(rtype: str, rid: str, version: int = 1, event: str = "updated") -> Change:
    return Change(event, rtype, rid, version, {"resourceType": rtype, "id": rid})  # type: ignore[arg-type]


def put(rtype: str, rid: str, deps: dict | None = None, body: dict | None = None) -> Outgoing:
    return Outgoing(
        change(rtype, rid).identity(),
        "PUT",
        rtype,
        rid,
        body or {"resourceType": rtype, "id": rid},
        deps or {},
    )


def delete(rtype: str, rid: str, target_id: str) -> Outgoing:
    source = change(rtype, rid, event="deleted").identity()
    return Outgoing(source, "DELETE", rtype, target_id, None)


def test_find_references_in_aidbox_format_including_contained_and_nested() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"resourceType": "Patient", "id": "p1", "display": "x"},
        "performer": [{"resourceType": "Practitioner", "id": "pr1"}],
        "contained": [
            {
                "resourceType": "Device",
                "id": "d1",
                "owner": {"resourceType": "Organization", "id": "org"},
            }
        ],
        "component": [{"value": {"Reference": {"resourceType": "Encounter", "id": "e1"}}}],
    }
    assert find_references(resource) == {
        ("Patient", "p1"),
        ("Practitioner", "pr1"),
        ("Organization", "org"),
        ("Encounter", "e1"),
    }


def test_targets_are_ordered_before_their_referrers() -> None:
    obs = put("Observation", "o", {("Patient", "p"): "lp", ("Encounter", "e"): "le"})
    enc = put("Encounter", "e", {("Patient", "p"): "lp"})
    pat = put("Patient", "p")
    ordered = order_by_references([obs, enc, pat])
    assert [i.target_id for i in ordered] == ["p", "e", "o"]


def test_a_reference_cycle_is_broken_once_and_nothing_is_lost() -> None:
    a = put("Patient", "a", {("Patient", "b"): "b"})
    b = put("Patient", "b", {("Patient", "a"): "a"})
    assert [i.target_id for i in order_by_references([a, b])] == ["b", "a"]


def test_batches_are_bounded_by_count_and_bytes() -> None:
    items = [
        put("Patient", f"p{i}", body={"resourceType": "Patient", "id": f"p{i}", "x": "y" * 100})
        for i in range(10)
    ]
    by_count = list(batches(items, max_entries=3, max_bytes=10**6))
    sizes = [len(b) for b in by_count]
    assert len(sizes) == 4  # as few as the bound allows
    assert max(sizes) - min(sizes) <= 1  # evenly filled, no small tail
    one_size = items[0].size()
    by_bytes = list(batches(items, max_entries=100, max_bytes=one_size * 2))
    assert all(sum(i.size() for i in b) <= one_size * 2 for b in by_bytes)
    assert sum(len(b) for b in by_bytes) == 10


def test_transaction_entries_are_put_and_delete_in_order() -> None:
    bundle = orjson.loads(
        orjson.dumps(transaction([put("Patient", "g1"), delete("Patient", "x", "gx")]))
    )
    assert bundle["type"] == "transaction"
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "PUT", "url": "/Patient/g1"},
        {"method": "DELETE", "url": "/Patient/gx"},
    ]
    assert "resource" not in bundle["entry"][1]


def test_several_changes_of_one_resource_collapse_to_the_latest() -> None:
    changes = [
        change("Patient", "a", 5),
        change("Patient", "b", 6),
        change("Patient", "a", 7, "deleted"),
    ]
    latest = latest_per_resource(changes)
    assert [(c.id, c.version, c.event) for c in latest] == [
        ("b", 6, "updated"),
        ("a", 7, "deleted"),
    ]


def test_missing_reference_is_read_from_aidbox_422() -> None:
    # api/batch-transaction.md: diagnostics name the missing target.
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "expression": ["Observation.subject"],
                "diagnostics": "Referenced resource Patient/clinic-a-abc does not exist",
            }
        ],
    }
    assert missing_reference(outcome) == ("Patient", "clinic-a-abc")
    assert (
        missing_reference({"resourceType": "OperationOutcome", "issue": [{"diagnostics": "x"}]})
        is None
    )


def test_sent_cache_skips_only_identical_state_and_is_bounded() -> None:
    cache = SentCache(capacity=2)
    first = put("Patient", "p", body={"resourceType": "Patient", "id": "p", "gender": "male"})
    cache.remember(first, cache.mark())
    assert cache.unchanged(
        put("Patient", "p", body={"id": "p", "gender": "male", "resourceType": "Patient"})
    )
    assert not cache.unchanged(put("Patient", "p", body={"resourceType": "Patient", "id": "p"}))
    assert not cache.unchanged(delete("Patient", "p", "p"))
    cache.remember(put("Patient", "q"), cache.mark())
    cache.remember(put("Patient", "r"), cache.mark())
    assert not cache.unchanged(first)  # evicted


def test_sent_cache_trusts_no_write_of_a_resource_that_was_doubted_meanwhile() -> None:
    # Another stream deletes a resource at the target while it is doubted (app/sync/sink.py,
    # the undo of a create on a referrer's behalf): that deletion may land after any write
    # sent before the doubt ended, so none of those is remembered.
    cache = SentCache()
    p, other = put("Patient", "p"), put("Patient", "o")
    cache.remember(p, cache.mark())
    sent_before = cache.mark()
    with cache.doubting(p.key):
        assert not cache.unchanged(p)
        sent_during = cache.mark()
        cache.remember(p, sent_during)
        assert not cache.unchanged(p)
    cache.remember(p, sent_before)  # answered after the doubt ended
    cache.remember(p, sent_during)
    cache.remember(other, sent_before)
    assert not cache.unchanged(p) and not cache.unchanged(other)
    cache.remember(p, cache.mark())  # sent after the deletion was answered
    assert cache.unchanged(p)
    with cache.doubting(p.key), cache.doubting(p.key):
        pass
    assert not cache.unchanged(p)
    cache.remember(p, cache.mark())
    assert cache.unchanged(p)


def test_only_postgres_conflict_messages_make_an_error_transient() -> None:
    from app.aidbox.client import AidboxError

    def outcome(diagnostics: str) -> dict:
        return {"resourceType": "OperationOutcome", "issue": [{"diagnostics": diagnostics}]}

    conflict = outcome("could not serialize access due to read/write dependencies")
    deadlock = outcome("deadlock detected")
    # A pseudonymous id may contain "40001": a refusal naming it stays a refusal.
    refusal = outcome("Referenced resource Patient/clinic-a-ab40001cd does not exist")
    assert AidboxError("POST", "/", 412, conflict).transient
    assert AidboxError("POST", "/", 409, deadlock).transient
    assert not AidboxError("POST", "/", 422, refusal).transient
    assert AidboxError("POST", "/", 503, None).transient


def _held(outgoing: Outgoing) -> list[object]:
    """Every object reachable from an Outgoing's fields (classes and modules aside)."""
    seen: dict[int, object] = {}
    todo: list[object] = list(vars(outgoing).values())
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType):
            continue
        seen[id(obj)] = obj
        todo += gc.get_referents(obj)
    return list(seen.values())


def test_a_queued_write_holds_no_body_only_the_anonymized_entry_bytes() -> None:
    body = patient("p1", family="Zabriskie-Quill")
    outgoing = Anonymize(safe_harbor(), KEY)(Change("created", "Patient", "p1", 3, body))
    held = _held(outgoing)
    # Neither the clinic's body nor any dict of one: the PHI is freed once anonymized.
    assert not any(isinstance(o, dict) and o.get("resourceType") for o in held)
    assert not any(isinstance(o, str) and "Zabriskie" in o for o in held)
    # What leaves is the entry with the anonymized body, serialized once.
    entry = orjson.loads(outgoing.encoded)
    assert entry["request"] == {"method": "PUT", "url": f"/Patient/{outgoing.target_id}"}
    assert entry["resource"] == anonymize(body, safe_harbor(), KEY)
    assert outgoing.body_digest == digest(entry["resource"])
    assert b"Zabriskie" not in outgoing.encoded


def test_sent_cache_forgets_one_type_and_keeps_the_others() -> None:
    cache = SentCache()
    patient, encounter = put("Patient", "x"), put("Encounter", "x")  # the same id, two types
    cache.remember(patient, cache.mark())
    cache.remember(encounter, cache.mark())
    cache.forget_type("Patient")
    assert not cache.unchanged(patient)
    assert cache.unchanged(encounter)
    cache.forget(encounter.key)
    assert not cache.unchanged(encounter)
