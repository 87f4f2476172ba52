"""The clinics' AccessPolicy as shipped (manifest/policies/aidbox-sync-clinics.yaml): facts of
its text that no emulated request can show."""

from __future__ import annotations

import re
from typing import Any, cast

import orjson

from app.aidbox.manifest import load_manifest
from app.anonymize.fhir_types import is_resource_type
from app.registry.instances import default_types
from app.registry.scope import PUSHED_ID
from app.registry.types import REGISTRABLE_TYPES, unregistrable
from app.settings import AppSettings, Role
from app.sync.bundle import MAX_ENTRY_BYTES, transaction
from app.sync.fence import KEEP, MAX_FENCE_ENTRIES, Fence, Token
from tests.support.clinic import clinic_key


def _query() -> str:
    return load_manifest(Role.GLOBAL).policies["aidbox-sync-clinics"]["sql"]["query"]


def test_the_query_holds_no_question_mark() -> None:
    # Aidbox binds {{...}} with JDBC placeholders (tutorials/security-access-control-tutorials/
    # debug-access-control.md shows `?` for each bound value): a `?` of the query's own, a
    # jsonb operator or a regex, would be taken for one. The emulator binds $n and cannot tell.
    assert "?" not in _query()


def _registrable_in_policy() -> list[str]:
    found = re.search(
        r"registrable \(rtype\) AS \(\s*SELECT unnest\('\{([^}]*)\}'::text\[\]\)", _query()
    )
    assert found is not None, "the policy's registrable CTE"
    return [name.strip() for name in found.group(1).split(",")]


def test_the_policy_refuses_the_types_registration_refuses() -> None:
    # Defence in depth holds only while the policy's list is registration's list.
    in_policy = _registrable_in_policy()
    assert len(in_policy) == len(set(in_policy))
    assert set(in_policy) == REGISTRABLE_TYPES


def test_registrable_types_are_fhir_r4_resource_types_and_hold_the_default_push() -> None:
    assert all(is_resource_type(name) for name in REGISTRABLE_TYPES)
    assert not REGISTRABLE_TYPES & {"Resource", "DomainResource"}
    assert set(default_types()) <= REGISTRABLE_TYPES
    assert unregistrable(["Patient", "Subscription", "Patient", {"x": 1}, "Subscription"]) == [
        "Subscription",
        "{'x': 1}",
    ]


def test_references_to_pulled_data_exclude_the_pushed_shape_the_pull_excludes() -> None:
    # A reference outside the namespace passes only to an offered type by an id the pull
    # could have delivered: scope.py's PUSHED_ID ids are never pulled, nor may they be named.
    found = re.search(r"node ->> 'id' !~ '([^']+)'", _query())
    assert found is not None, "the policy's pushed-shape exclusion"
    in_policy = re.compile(found.group(1))
    samples = [
        clinic_key("clinic-b").resource_id("Organization", "o1"),
        f"b-{'0' * 26}",
        f"{'x' * 24}-{'f' * 26}",
        f"{'x' * 25}-{'f' * 26}",
        f"b-{'0' * 25}",
        f"b-{'A' * 26}",
        f"-{'0' * 26}",
        "org-1",
        "US-CA",
    ]
    for rid in samples:
        assert bool(in_policy.fullmatch(rid)) == bool(PUSHED_ID.fullmatch(rid)), rid


def _largest(setting: str) -> int:
    return max(m.le for m in AppSettings.model_fields[setting].metadata if hasattr(m, "le"))


def test_the_bundle_size_allowed_is_the_apps_largest_transaction() -> None:
    # The most entries a clinic's transaction holds: the largest batch SYNC_BATCH_MAX_ENTRIES
    # allows (targets created on referrers' behalf included: app/sync/sink.py splits a batch
    # they outgrow) and the fence's entries; the policy refuses a longer bundle.
    [bound] = re.findall(r"jsonb_array_length\(r\.body -> 'entry'\) BETWEEN 1 AND (\d+)", _query())
    assert int(bound) == _largest("batch_max_entries") + MAX_FENCE_ENTRIES


# The policy counts PostgreSQL's text of a jsonb value, which adds a space after each `,` and
# `:` of the App's compact JSON: at most 1.5 times its bytes (`[0,0]` -> `[0, 0]`). Twice
# leaves room for numbers PostgreSQL writes out longer (`1e-05` as `0.00001`).
_JSONB_TEXT = 2


def test_the_byte_limits_allowed_hold_the_apps_largest_entry_and_transaction() -> None:
    [request_limit] = re.findall(r"octet_length\(r\.body::text\) > (\d+)", _query())
    [body_limit] = re.findall(r"octet_length\(w\.body::text\) > (\d+)", _query())
    largest_batch = _largest("batch_max_bytes")
    # An entry larger than the batch bound travels alone (app/sync/bundle.py batches), and
    # the push sends none larger than MAX_ENTRY_BYTES (app/sync/sink.py): no transaction's
    # entries exceed the largest batch.
    assert largest_batch >= MAX_ENTRY_BYTES
    assert int(body_limit) >= _JSONB_TEXT * MAX_ENTRY_BYTES
    # With the most fence entries a transaction opens with, of the longest stream and
    # instance ids and numbers, and the Bundle around them all.
    longest = max(REGISTRABLE_TYPES, key=len)
    fence = Fence(cast(Any, None), clinic_key("c" * 24), f"push-{longest}", epoch=10**12, known=0)
    seq = 10**12
    first = fence.entries(Token(seq, tuple(range(seq + 1, seq + 8))), "f" * 64)
    assert len(first) == MAX_FENCE_ENTRIES
    around = len(orjson.dumps(transaction([], first))) + _largest("batch_max_entries")
    assert seq > KEEP and _JSONB_TEXT * (largest_batch + around) <= int(request_limit)
