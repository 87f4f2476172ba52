"""The clinics' AccessPolicy as shipped (manifest/policies/aidbox-sync-clinics.yaml): facts of
its text that no emulated request can show."""

from __future__ import annotations

import re

from app.aidbox.manifest import load_manifest
from app.anonymize.fhir_types import is_resource_type
from app.registry.instances import default_types
from app.registry.scope import PUSHED_ID
from app.registry.types import REGISTRABLE_TYPES, unregistrable
from app.settings import AppSettings, Role
from app.sync.fence import MAX_FENCE_ENTRIES
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


def test_the_bundle_size_allowed_is_the_apps_largest_transaction() -> None:
    # The most entries a clinic's transaction holds: the largest batch SYNC_BATCH_MAX_ENTRIES
    # allows (targets created on referrers' behalf included: app/sync/sink.py splits a batch
    # they outgrow) and the fence's entries; the policy refuses a longer bundle.
    largest = AppSettings.model_fields["batch_max_entries"].metadata
    [bound] = re.findall(r"jsonb_array_length\(r\.body -> 'entry'\) BETWEEN 1 AND (\d+)", _query())
    assert int(bound) == max(m.le for m in largest if hasattr(m, "le")) + MAX_FENCE_ENTRIES
