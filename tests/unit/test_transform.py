"""The two transforms (app/sync/transform.py): push anonymizes, pull copies."""

from __future__ import annotations

from dataclasses import replace

import orjson

from app.anonymize import Shared
from app.sync.feed import Change
from app.sync.transform import Anonymize, Copy
from tests.support.clinic import KEY, encounter, safe_harbor


def _entry(outgoing: object) -> dict:
    return orjson.loads(outgoing.encoded)  # type: ignore[attr-defined]


def test_pull_copies_the_body_and_id_without_the_servers_own_meta() -> None:
    org = {
        "resourceType": "Organization",
        "id": "org-1",
        "name": "North Clinic",
        "partOf": {"resourceType": "Organization", "id": "org-0"},
        "meta": {"versionId": "41", "lastUpdated": "2026-12-01T10:00:00Z", "tag": [{"code": "x"}]},
    }
    out = Copy()(Change("updated", "Organization", "org-1", 41, org))
    entry = _entry(out)
    assert entry["request"] == {"method": "PUT", "url": "/Organization/org-1"}
    assert entry["resource"] == {**org, "meta": {"tag": [{"code": "x"}]}}
    assert out.depends_on == {("Organization", "org-0"): "org-0"}
    gone = Copy()(Change("deleted", "Organization", "org-1", 42, {}))
    assert _entry(gone)["request"] == {"method": "DELETE", "url": "/Organization/org-1"}


def test_a_pushed_reference_to_a_pulled_type_keeps_headquarters_id_and_no_other_does() -> None:
    body = encounter("e1", "p1") | {
        "serviceProvider": {"resourceType": "Organization", "id": "org-1", "display": "North"}
    }
    change = Change("updated", "Encounter", "e1", 3, body)
    shared = Shared(frozenset({"Organization"}), {"Organization": {"org-1"}})
    plan = replace(safe_harbor(), shared=shared)
    out = Anonymize(plan, KEY)(change)
    sent = _entry(out)["resource"]
    assert sent["serviceProvider"] == {"resourceType": "Organization", "id": "org-1"}
    assert sent["subject"] == {"resourceType": "Patient", "id": KEY.resource_id("Patient", "p1")}
    # Headquarters' own resource is never pushed on the Encounter's behalf.
    assert ("Organization", "org-1") not in out.depends_on
    plain = _entry(Anonymize(safe_harbor(), KEY)(change))["resource"]
    assert plain["serviceProvider"]["id"] == KEY.resource_id("Organization", "org-1")
    assert out.depends_on == {("Patient", KEY.resource_id("Patient", "p1")): "p1"}


def test_a_push_depends_only_on_the_references_it_sends() -> None:
    # The safe-harbor profile sends an Encounter's subject and drops what it does not name
    # (here a made-up `sponsor` element): only a reference that is sent needs its target
    # at headquarters first; contained resources' references count too.
    body = encounter("e1", "p1") | {
        "sponsor": {"resourceType": "Practitioner", "id": "dr-1"},
        "contained": [
            {
                "resourceType": "Observation",
                "id": "o",
                "status": "final",
                "subject": {"resourceType": "Patient", "id": "p2"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            }
        ],
    }
    out = Anonymize(safe_harbor(), KEY)(Change("updated", "Encounter", "e1", 3, body))
    sent = _entry(out)["resource"]
    assert "sponsor" not in sent
    assert out.depends_on == {
        ("Patient", KEY.resource_id("Patient", "p1")): "p1",
        ("Patient", KEY.resource_id("Patient", "p2")): "p2",
    }
