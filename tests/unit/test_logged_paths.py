"""What of a clinic's request path, and of a refusal, may reach a log line
(app/aidbox/client.py): logs may leave the clinic, and a local id may be an MRN."""

from __future__ import annotations

import pytest

from app.aidbox.client import hide_ids, outcome_codes


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/Patient/mrn-4711023", "/Patient/…"),
        ("/Patient/mrn-4711023/_history/2", "/Patient/…/_history/2"),
        # an unkeyed hash of stream, type, local id and version: a 7-digit MRN is found by
        # trying them all (app/sync/quarantine.py)
        ("/SyncQuarantine/q-d5073f0c2e", "/SyncQuarantine/…"),
        ("/ChangesInfo/push-Patient", "/ChangesInfo/push-Patient"),
        ("/AnonymizationProfile/safe-harbor", "/AnonymizationProfile/safe-harbor"),
        ("/Patient/$changes", "/Patient/$changes"),
        ("/$psql", "/$psql"),
        ("/fhir/Patient/mrn-4711023/_history/2", "/fhir/Patient/…/_history/2"),
        ("/fhir/Patient/$changes", "/fhir/Patient/$changes"),
        ("/Patient?_id=mrn-4711023", "/Patient?…"),
        ("/Patient/mrn-4711023?_format=json", "/Patient/…?…"),
    ],
)
def test_a_logged_path_names_no_local_id(path: str, logged: str) -> None:
    assert hide_ids(path) == logged


def test_a_logged_refusal_names_its_codes_and_paths_not_the_values_it_quotes() -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "code": "invalid",
                "diagnostics": "value 'Alice Smith' does not match the pattern",
                "expression": ["Observation.code.coding.0.code"],
            },
            {"code": "not-found", "diagnostics": "Referenced resource Organization/own-org"},
        ],
    }
    logged = outcome_codes(refusal)
    assert logged == "invalid (Observation.code.coding.0.code); not-found"
    assert outcome_codes({"text": "Alice"}) == "non-OperationOutcome error body"
