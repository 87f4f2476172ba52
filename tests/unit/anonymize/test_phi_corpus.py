"""The planted-PHI corpus through the shipped profiles: no leak under Safe Harbor, the minimal
baseline leaks what Safe Harbor catches, outputs are deterministic and still link up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from app.anonymize import PseudonymKey, anonymize, compile_profile, load_profile
from app.anonymize.plan import Plan
from tests.phi.corpus import KINDS, Corpus, generate_corpus
from tests.phi.scanner import find_planted
from tests.phi.structure import age_violations

TODAY = date(2025, 6, 1)
KEY = PseudonymKey(secret=b"corpus-test-secret-0123456789-pa", namespace="clinic-a")
TYPES = {
    "Patient",
    "Encounter",
    "Appointment",
    "Observation",
    "Condition",
    "QuestionnaireResponse",
    "Practitioner",
    "Coverage",
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus()


def plan(name: str) -> Plan:
    return compile_profile(load_profile(name), today=TODAY)


@pytest.fixture(scope="module")
def safe_harbor_out(corpus: Corpus) -> list[dict[str, Any]]:
    compiled = plan("safe-harbor")
    return [anonymize(resource, compiled, KEY) for resource in corpus.resources]


def test_the_corpus_plants_every_kind_in_every_type(corpus: Corpus) -> None:
    assert len(corpus.entries) >= 1000
    assert {r["resourceType"] for r in corpus.resources} == TYPES
    assert {token.kind for token in corpus.planted} == set(KINDS)
    assert sum(1 for r in corpus.resources if r.get("contained")) >= 100
    assert sum(1 for r in corpus.resources if r.get("extension")) >= 100
    # every planted token is really in its resource
    for entry in corpus.entries[:50]:
        assert find_planted(entry.planted, entry.resource) == list(entry.planted)


def test_the_corpus_is_deterministic() -> None:
    assert generate_corpus(patients=3) == generate_corpus(patients=3)
    assert generate_corpus(patients=3) != generate_corpus(seed=1, patients=3)


def test_safe_harbor_leaks_no_planted_token(
    corpus: Corpus, safe_harbor_out: list[dict[str, Any]]
) -> None:
    leaks = find_planted(corpus.planted, safe_harbor_out)
    assert not leaks, Counter(token.where for token in leaks).most_common()


def test_safe_harbor_sends_no_age_over_89_and_no_year_more_than_89_years_ago(
    corpus: Corpus, safe_harbor_out: list[dict[str, Any]]
) -> None:
    for out in safe_harbor_out:
        assert age_violations(out, TODAY) == [], out
    old_patients = {KEY.resource_id("Patient", pid) for pid in corpus.age_over_89}
    assert len(old_patients) == 10
    for out in safe_harbor_out:
        if out["resourceType"] == "Patient" and out["id"] in old_patients:
            assert "birthDate" not in out  # not even the year
        subject = out.get("subject", {}).get("id")
        if out["resourceType"] == "QuestionnaireResponse" and subject in old_patients:
            ages = [i["answer"] for i in out["item"] if i["linkId"] == "age"]
            assert ages == [[{"value": {"integer": 90}}]]
            assert not [i for i in out["item"] if i["linkId"] == "born" and "answer" in i]


def test_the_age_checks_see_what_a_path_only_profile_sends(corpus: Corpus) -> None:
    minimal = plan("minimal")
    violations = [
        v for r in corpus.resources for v in age_violations(anonymize(r, minimal, KEY), TODAY)
    ]
    # birth dates (Patient, a birth-date Observation, a "Born on" answer), plain integer ages;
    # time quantities the engine aggregates whatever the profile, so they are shown apart
    assert {path[-1] for path in violations} >= {"birthDate", "dateTime", "date", "integer"}
    months = {"resourceType": "Condition", "onset": {"Age": {"value": 1100, "unit": "months"}}}
    assert age_violations(months, TODAY) == [("onset", "Age")]
    for unitless in ({"value": 95}, {"value": 95, "code": "a"}, {"value": 95, "unit": "ann"}):
        condition = {"resourceType": "Condition", "onset": {"Age": unitless}}
        assert age_violations(condition, TODAY) == [("onset", "Age")], unitless


def _own_leak_places(corpus: Corpus, compiled: Plan) -> set[str]:
    places = set()
    for entry in corpus.entries:
        places.update(
            t.where for t in find_planted(entry.planted, anonymize(entry.resource, compiled, KEY))
        )
    return places


# Places the Safe Harbor profile cleans and the user's baseline list does not.
MINIMAL_LEAKS = {
    "Patient.text.div",
    "Patient.meta.tag",
    "Patient.birthDate",
    "Patient.contact.name.family",
    "Patient.contact.telecom",
    "Patient.photo.data",
    "Patient.photo.url",
    "Patient.extension(fingerprint)",
    "Patient.extension(portal-ip)",
    "Patient.extension(race).text",
    "Encounter.identifier",
    "Encounter.period.start",
    "Encounter.reasonCode.text",
    "Encounter.hospitalization.preAdmissionIdentifier",
    "Encounter.contained.RelatedPerson.name.family",
    "Encounter.contained.RelatedPerson.telecom",
    "Encounter.extension(vehicle)",
    "Appointment.identifier",
    "Appointment.comment",
    "Appointment.start",
    "Observation.note",
    "Observation.value.string",
    "Observation.issued",
    "Observation.contained.Device.serialNumber",
    "Observation.contained.Device.udiCarrier",
    "Observation.component.value.SampledData.data",
    "Condition.code.text",
    "Condition.onset.dateTime",
    "Condition.abatement.string",
    "Practitioner.name.family",
    "Practitioner.identifier",
    "Practitioner.qualification.identifier",
    "Practitioner.telecom",
    "QuestionnaireResponse.authored",
    "QuestionnaireResponse.item.item(emergency phone)",
    "QuestionnaireResponse.item.item(insurance)",
    "QuestionnaireResponse.item(license plate)",
    "QuestionnaireResponse.item(IP Address)",
    "QuestionnaireResponse.item(free text)",
    "QuestionnaireResponse.item(selfie).data",
}


def test_the_minimal_baseline_leaks_what_safe_harbor_catches(corpus: Corpus) -> None:
    leaked = _own_leak_places(corpus, plan("minimal"))
    assert leaked >= MINIMAL_LEAKS, MINIMAL_LEAKS - leaked
    # ... while it does remove its own list
    for place in (
        "Patient.identifier(ssn)",
        "Patient.telecom(phone)",
        "Patient.address.line",
        "QuestionnaireResponse.item(Personal Email)",
        "QuestionnaireResponse.item(Phone)",
        "QuestionnaireResponse.item(Date of Birth)",
        "QuestionnaireResponse.item(Address).answer.item(City)",  # nested in a removed answer
    ):
        assert place not in leaked
    assert not {place for place in leaked if place.endswith(".id")}  # ids are pseudonymized


def test_same_input_and_key_give_identical_output(
    corpus: Corpus, safe_harbor_out: list[dict[str, Any]]
) -> None:
    again = plan("safe-harbor")
    same_key = PseudonymKey(secret=b"corpus-test-secret-0123456789-pa", namespace="clinic-a")
    assert [anonymize(r, again, same_key) for r in corpus.resources] == safe_harbor_out


def test_a_different_key_gives_different_pseudonyms(
    corpus: Corpus, safe_harbor_out: list[dict[str, Any]]
) -> None:
    other = PseudonymKey(secret=b"another-secret-0123456789abc-pad", namespace="clinic-a")
    compiled = plan("safe-harbor")
    for resource, first in zip(corpus.resources[:100], safe_harbor_out, strict=False):
        second = anonymize(resource, compiled, other)
        assert second["id"] != first["id"]
        assert first["id"].startswith("clinic-a-") and second["id"].startswith("clinic-a-")


def _references(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "resourceType" in node and "id" in node and len(node) == 2:
            yield node
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_references_between_anonymized_resources_still_resolve(
    safe_harbor_out: list[dict[str, Any]],
) -> None:
    ids = {(o["resourceType"], o["id"]) for o in safe_harbor_out}
    checked = 0
    for out in safe_harbor_out:
        contained = {c.get("id") for c in out.get("contained", [])}
        body = {k: v for k, v in out.items() if k not in ("resourceType", "id", "contained")}
        for ref in _references(body):
            if ref["resourceType"] in TYPES:
                assert (ref["resourceType"], ref["id"]) in ids
                checked += 1
        assert all(c.startswith("c") for c in contained if c)
    assert checked >= 2000
