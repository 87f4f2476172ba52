"""Issue 13 end to end: the planted corpus, loaded into a clinic the way EHR feeds load it (FHIR
R4 over /fhir), pushed by the App, then everything headquarters holds, current and history,
and everything the clinic says about it (logs, $sync-status, quarantine) scanned for every
planted token; the clinical codes and values must have arrived."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest

from aidbox_emulator.fhir_format import to_fhir
from app.aidbox.client import AidboxClient
from app.registry.instances import default_types
from tests.phi.corpus import Corpus, generate_corpus
from tests.phi.scanner import find_planted
from tests.phi.structure import age_violations
from tests.support.apps import RunningApp
from tests.support.clinic import KEY, resources, versions
from tests.support.headquarters import CLINIC, Headquarters

# Every tenth patient is over 89: twelve patients give two of them, and 214 resources.
PATIENTS = 12
TYPES = [
    "Practitioner",
    "Patient",
    "Coverage",
    "Encounter",
    "Appointment",
    "Condition",
    "Observation",
    "QuestionnaireResponse",
]


async def load_as_a_feed(local_root: AidboxClient, corpus: Corpus) -> None:
    """One FHIR transaction of PUTs, as an interface engine sends a batch of messages."""
    organization = {"resourceType": "Organization", "id": "clinic-org", "name": "Clinic"}
    entries = [organization, *corpus.resources]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                "resource": to_fhir(r),
            }
            for r in entries
        ],
    }
    resp = await local_root.call("POST", "/fhir", json=bundle)
    assert resp.status == 200, resp.body


async def everything_stored(global_root: AidboxClient, resource_types: list[str]) -> list[Any]:
    """Every version the global keeps of these types: current rows and history."""
    found = []
    for rtype in resource_types:
        by_id = await versions(global_root, rtype)
        found.extend(v.resource for history in by_id.values() for v in history)
    return found


def _codes(resource: dict[str, Any]) -> set[str]:
    return {c["code"] for c in resource.get("code", {}).get("coding", [])}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus(patients=PATIENTS)


async def test_no_planted_token_reaches_headquarters_and_the_clinical_content_does(
    sync_app: RunningApp,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    corpus: Corpus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Coverage is pushed too, and the Organizations it refers to: here they are the clinic's
    # own data, so this clinic pushes Organization instead of pulling it (one way only).
    await headquarters.register(CLINIC, types=[*default_types(), "Coverage", "Organization"])
    await load_as_a_feed(local_root, corpus)
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    config["streams"] = [s for s in config["streams"] if s["type"] != "Organization"]
    config["streams"].append({"type": "Coverage", "direction": "push", "order": 15})
    config["streams"].append({"type": "Organization", "direction": "push", "order": 3})
    await local_root.call("PUT", "/SyncConfig/default", json=config)

    resp = await local_root.call("POST", "/$sync")
    assert resp.status == 200, resp.body
    streams = {s["stream"]: s for s in resp.body["streams"]}
    assert all(streams[f"push-{t}"]["quarantined"] == 0 for t in TYPES), streams

    held = {t: await resources(global_root, t) for t in TYPES}
    assert {t: len(held[t]) for t in TYPES} == {
        t: sum(1 for r in corpus.resources if r["resourceType"] == t) for t in TYPES
    }
    stored = await everything_stored(global_root, [*TYPES, "Organization"])
    status = (await local_root.call("GET", "/$sync-status")).body
    quarantine = (await local_root.call("GET", "/SyncQuarantine")).body
    for seen in (stored, caplog.text, status, quarantine, resp.body):
        assert find_planted(corpus.planted, seen) == []
    for resource in (r for by_id in held.values() for r in by_id.values()):
        assert age_violations(resource, date.today()) == [], resource

    # the clinical content arrived: codes, values, answers, references between resources
    observations = list(held["Observation"].values())
    assert {"8867-4", "85354-9", "30525-0", "72166-2"} <= set().union(*map(_codes, observations))
    rates = sorted(
        r["value"]["Quantity"]["value"]
        for r in corpus.resources
        if r["resourceType"] == "Observation" and "8867-4" in _codes(r)
    )
    assert sorted(
        o["value"]["Quantity"]["value"] for o in observations if "8867-4" in _codes(o)
    ) == (rates)
    conditions = list(held["Condition"].values())
    assert {"44054006", "49436004"} <= set().union(*map(_codes, conditions))
    pains = [
        item["answer"][0]["value"]["integer"]
        for response in held["QuestionnaireResponse"].values()
        for item in response["item"]
        if item["linkId"] == "pain"
    ]
    assert len(pains) == 2 * PATIENTS
    first = next(r for r in corpus.resources if r["resourceType"] == "Patient")
    patient = KEY.resource_id("Patient", first["id"])
    assert all(
        c["beneficiary"]["resourceType"] == "Patient" and c["status"] == "active"
        for c in held["Coverage"].values()
    )
    assert any(c["beneficiary"]["id"] == patient for c in held["Coverage"].values())
