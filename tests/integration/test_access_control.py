"""Issue 14: only registered, active clinics sync, and the global Aidbox itself refuses
everything else a clinic's credentials might try (manifest/policies/aidbox-sync-clinics.yaml).

One emulated global with the App in global role, two emulated clinics; every refusal is the
global's own answer to a request made with a clinic's real credentials, as an attacker holding
them would make it."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aidbox_python_sdk.db import parse_psql_response

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from app.sync.bundle import MAX_ENTRY_BYTES
from tests.support.apps import RunningApp
from tests.support.clinic import (
    KEY,
    clinic_key,
    encounter,
    expected_global,
    global_state,
    observation,
    patient,
    resources,
)
from tests.support.headquarters import CLINIC, Headquarters

B = "clinic-b"
B_KEY = clinic_key(B)
TYPES = ["Patient", "Observation"]


def own(resource_type: str, local_id: str) -> str:
    """A global id in clinic A's namespace."""
    return KEY.resource_id(resource_type, local_id)


def theirs(resource_type: str, local_id: str) -> str:
    """A global id in clinic B's namespace."""
    return B_KEY.resource_id(resource_type, local_id)


@pytest.fixture
async def as_a(global_aidbox: Emulator, headquarters: Headquarters) -> AsyncIterator[AidboxClient]:
    """Clinic A's credentials at headquarters, in an attacker's hands."""
    async with AidboxClient(global_aidbox.url, CLINIC, headquarters.secrets[CLINIC]) as client:
        yield client


def refused(resp: Any) -> bool:
    return resp.status in (401, 403) and resp.body.get("resourceType") == "OperationOutcome"


def body(resource_type: str, global_id: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": global_id, **extra}


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def put(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"request": {"method": "PUT", "url": url}, "resource": resource}


# -- registration ------------------------------------------------------------------------


async def test_registration_answers_a_secret_once_rotates_it_and_is_idempotent(
    headquarters: Headquarters, global_aidbox: Emulator, global_root: AidboxClient
) -> None:
    first = await global_root.request(
        "POST", "/$register-instance", json={"id": "clinic-c", "name": "C", "region": "EU"}
    )
    assert first.status == 201
    secret = first.body["client"]["secret"]
    assert first.body["instance"]["status"] == "active"
    assert first.body["instance"]["types"]  # the default push types
    again = await global_root.request(
        "POST", "/$register-instance", json={"id": "clinic-c", "name": "C"}
    )
    assert again.status == 200 and "secret" not in again.body["client"]
    assert again.body["instance"]["region"] == "EU"  # what was not given stays
    stored = (await global_root.call("GET", "/Client/clinic-c")).body
    assert secret not in str(stored)
    async with AidboxClient(global_aidbox.url, "clinic-c", secret) as clinic:
        assert (await clinic.request("GET", "/AidboxInstance/clinic-c")).status == 200
        rotated = await global_root.call(
            "POST", "/$register-instance", json={"id": "clinic-c", "rotateSecret": True}
        )
        new = rotated.body["client"]["secret"]
        assert new != secret
        assert (await clinic.request("GET", "/AidboxInstance/clinic-c")).status == 401
    async with AidboxClient(global_aidbox.url, "clinic-c", new) as clinic:
        assert (await clinic.request("GET", "/AidboxInstance/clinic-c")).status == 200


@pytest.mark.parametrize(
    ("registration", "status"),
    [
        ({"id": "hq-app", "name": "x"}, 409),  # an existing Client that is no clinic's
        ({"id": "clinic_c", "name": "x"}, 400),  # not an instance id
        ({"id": "clinic-c"}, 422),  # a new clinic needs a name
        ({"id": "clinic-c", "name": "x", "types": []}, 400),
        ({"id": "clinic-c", "name": "x", "status": "gone"}, 400),
    ],
)
async def test_registration_refuses_what_it_must_not_do(
    headquarters: Headquarters,
    global_root: AidboxClient,
    registration: dict[str, Any],
    status: int,
) -> None:
    await global_root.call("PUT", "/Client/hq-app", json={"secret": "s", "grant_types": ["basic"]})
    resp = await global_root.request("POST", "/$register-instance", json=registration)
    assert resp.status == status, resp.body
    assert resp.body["resourceType"] == "OperationOutcome"
    assert (await global_root.request("GET", "/AidboxInstance/clinic-c")).status == 404


@pytest.mark.parametrize(
    "refused_types",
    [
        ["Client"],  # Aidbox's own, not FHIR R4
        ["AccessPolicy", "Patient"],
        ["User"],
        ["App"],
        ["FHIRSchema"],
        ["AidboxInstance"],  # the App's own
        ["SyncFence"],  # allowed by its own rule, never as a pushed type
        ["Subscription"],  # FHIR R4, but Aidbox acts on it: notifications to any endpoint
        ["SearchParameter", "Patient", "StructureDefinition"],
        ["ValueSet"],
        ["AuditEvent"],
        ["Endpoint"],
        ["Bundle"],
        ["Questionnaire"],
        ["Resource"],  # abstract
        ["Patients"],
    ],
    ids="+".join,
)
async def test_registration_refuses_types_that_are_not_clinical_data(
    headquarters: Headquarters, global_root: AidboxClient, refused_types: list[str]
) -> None:
    resp = await global_root.request(
        "POST", "/$register-instance", json={"id": "clinic-c", "name": "x", "types": refused_types}
    )
    assert resp.status == 422, resp.body
    assert resp.body["resourceType"] == "OperationOutcome"
    diagnostics = resp.body["issue"][0]["diagnostics"]
    for name in refused_types:
        assert (name in diagnostics) == (name != "Patient"), (name, diagnostics)
    # refused before anything is written: neither the instance nor its Client exists
    assert (await global_root.request("GET", "/AidboxInstance/clinic-c")).status == 404
    assert (await global_root.request("GET", "/Client/clinic-c")).status == 404


async def test_registration_takes_every_clinical_type(
    headquarters: Headquarters, global_root: AidboxClient
) -> None:
    wanted = ["Patient", "Observation", "CarePlan", "Coverage", "MedicationRequest", "Basic"]
    resp = await global_root.request(
        "POST", "/$register-instance", json={"id": "clinic-c", "name": "x", "types": wanted}
    )
    assert resp.status == 201, resp.body
    assert resp.body["instance"]["types"] == wanted


async def test_only_root_may_register(headquarters: Headquarters, as_a: AidboxClient) -> None:
    resp = await as_a.request("POST", "/$register-instance", json={"id": "x", "name": "x"})
    assert refused(resp)


# -- what a clinic's credentials can and cannot do ---------------------------------------


async def test_a_client_that_is_not_registered_is_refused_everything(
    headquarters: Headquarters, global_aidbox: Emulator, global_root: AidboxClient
) -> None:
    await global_root.call(
        "PUT", "/Client/stranger", json={"secret": "s3cret", "grant_types": ["basic"]}
    )
    pid = f"stranger-{'0' * 26}"
    async with AidboxClient(global_aidbox.url, "stranger", "s3cret") as stranger:
        for method, path, payload in [
            ("GET", "/AidboxInstance/stranger", None),
            ("PUT", f"/Patient/{pid}", body("Patient", pid)),
            ("POST", "/", transaction(put(body("Patient", pid)))),
            ("GET", "/Patient", None),
        ]:
            assert refused(await stranger.request(method, path, json=payload)), path


@pytest.fixture
async def b_patient(global_root: AidboxClient, b_app: RunningApp) -> str:
    """A Patient of clinic B at headquarters (written as root, as B's push would)."""
    pid = theirs("Patient", "p1")
    await global_root.call("PUT", f"/Patient/{pid}", json=body("Patient", pid, gender="male"))
    return pid


async def test_a_clinic_writes_and_reads_back_its_own_namespace(
    as_a: AidboxClient, b_patient: str
) -> None:
    pid = own("Patient", "p1")
    assert (await as_a.request("PUT", f"/Patient/{pid}", json=body("Patient", pid))).status == 201
    oid = own("Observation", "o1")
    obs = body("Observation", oid, status="final", subject={"resourceType": "Patient", "id": pid})
    obs["code"] = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    tx = await as_a.request("POST", "/", json=transaction(put(obs)))
    assert tx.status == 200, tx.body
    created = await as_a.request(
        "POST", f"/Patient?_id={own('Patient', 'p2')}", json=body("Patient", own("Patient", "p2"))
    )
    assert created.status == 201, created.body
    assert (await as_a.request("GET", f"/Patient/{pid}")).status == 200
    assert (await as_a.request("DELETE", f"/Observation/{oid}")).status == 200
    assert (await as_a.request("GET", f"/AidboxInstance/{CLINIC}")).status == 200


async def test_uris_that_name_no_resource_and_elements_called_reference_still_pass(
    headquarters: Headquarters, as_a: AidboxClient
) -> None:
    # What the reference checks must not refuse: a uri value that names no resource (a
    # valueUri a profile keeps), and FHIR elements called `reference` that hold an Aidbox
    # reference into the namespace (CarePlan.activity.reference).
    await headquarters.register(CLINIC, types=["Patient", "Appointment", "CarePlan"])
    pid, aid = own("Patient", "p7"), own("Appointment", "a7")
    extension = [{"url": "http://x.example/e", "value": {"uri": "http://loinc.org"}}]
    patient_body = body("Patient", pid, extension=extension)
    assert (await as_a.request("PUT", f"/Patient/{pid}", json=patient_body)).status == 201
    appointment = body("Appointment", aid, status="booked", participant=[{"status": "accepted"}])
    assert (await as_a.request("PUT", f"/Appointment/{aid}", json=appointment)).status == 201
    plan = body(
        "CarePlan",
        own("CarePlan", "c7"),
        status="active",
        intent="plan",
        subject={"resourceType": "Patient", "id": pid},
        activity=[{"reference": {"resourceType": "Appointment", "id": aid}}],
    )
    answer = await as_a.request("PUT", f"/CarePlan/{plan['id']}", json=plan)
    assert answer.status == 201, answer.body


def _cases() -> list[tuple[str, str, str, Any]]:
    """(what, method, path, body) a clinic must never be allowed, with clinic A's credentials."""
    mine, yours = own("Patient", "p9"), theirs("Patient", "p1")
    prefix = f"{CLINIC}-x-{'a' * 26}"  # clinic-a is a prefix of clinic-a-x
    to_b = {"resourceType": "Patient", "id": yours}
    observation_to_b = body(
        "Observation", own("Observation", "o9"), status="final", subject=to_b, code={"text": "x"}
    )
    contained_to_b = body(
        "Patient", mine, contained=[{"resourceType": "RelatedPerson", "id": "c0", "patient": to_b}]
    )

    def observation_with(subject: Any) -> dict[str, Any]:
        return body(
            "Observation", own("Observation", "o9"), status="final", subject=subject, code={}
        )

    # References the namespace check of {resourceType, id} does not see: a FHIR-style
    # `reference` string, or an Aidbox `uri` (absolute references, api/rest-api/other/
    # aidbox-and-fhir-formats.md) naming a resource. Neither is checked for existence, so
    # each would land, and read back through /fhir as a reference to B's patient.
    by_reference = observation_with({"reference": f"Patient/{yours}"})
    mine_o = by_reference["id"]
    by_relative_uri = observation_with({"uri": f"Patient/{yours}"})
    by_absolute_uri = observation_with({"uri": f"https://hq.example/fhir/Patient/{yours}"})
    by_versioned_uri = observation_with({"uri": f"Patient/{yours}/_history/1"})
    by_padded_uri = observation_with({"uri": f" Patient/{yours}"})
    by_urn = observation_with({"uri": "urn:uuid:6f1a9f9e-1111-4222-8333-444455556666"})
    by_padded_urn = observation_with({"uri": "\turn:uuid:6f1a9f9e-1111-4222-8333-444455556666"})
    by_search = observation_with({"uri": "Patient?identifier=urn:mrn|123"})
    # the same url as a resolver reads it: an empty segment, a letter or a slash
    # percent-encoded (RFC 3986 2.1), a backslash (a slash to WHATWG URL parsers)
    hq = "https://hq.example/fhir"
    by_doubled_slash = observation_with({"uri": f"{hq}/Patient//{yours}"})
    by_encoded_letter = observation_with({"uri": f"{hq}/%50atient/{yours}"})
    by_encoded_slash = observation_with({"uri": f"{hq}/Patient%2F{yours}"})
    by_backslash = observation_with({"uri": f"{hq}/Patient\\{yours}"})
    # a tab or a line break inside, which URL parsers strip (WHATWG URL; urllib.parse)
    by_tab = observation_with({"uri": f"{hq}/Pat\tient/{yours}"})
    by_line_break = observation_with({"uri": f"{hq}/Patient\n/{yours}"})
    contained_reference = body(
        "Patient",
        mine,
        contained=[
            {
                "resourceType": "RelatedPerson",
                "id": "c0",
                "patient": {"reference": f"Patient/{yours}"},
            }
        ],
    )
    in_an_extension = body(
        "Patient",
        mine,
        extension=[
            {"url": "http://x.example/e", "value": {"Reference": {"reference": f"Patient/{yours}"}}}
        ],
    )
    at_the_top = body("Patient", mine, reference=f"Patient/{yours}")
    not_a_string = observation_with({"reference": [f"Patient/{yours}"]})
    return [
        ("overwrite B's resource", "PUT", f"/Patient/{yours}", body("Patient", yours)),
        ("delete B's resource", "DELETE", f"/Patient/{yours}", None),
        ("read B's resource", "GET", f"/Patient/{yours}", None),
        ("a longer namespace", "PUT", f"/Patient/{prefix}", body("Patient", prefix)),
        ("an id of another shape", "PUT", f"/Patient/{CLINIC}-p9", body("Patient", f"{CLINIC}-p9")),
        (
            "a type it may not push",
            "PUT",
            f"/Device/{own('Device', 'd')}",
            body("Device", own("Device", "d")),
        ),
        ("B's id in the body", "PUT", f"/Patient/{mine}", body("Patient", yours)),
        ("a reference to B", "PUT", f"/Observation/{own('Observation', 'o9')}", observation_to_b),
        ("a contained reference to B", "PUT", f"/Patient/{mine}", contained_to_b),
        ("a reference string to B", "PUT", f"/Observation/{by_reference['id']}", by_reference),
        ("a relative uri to B", "PUT", f"/Observation/{by_reference['id']}", by_relative_uri),
        ("an absolute uri to B", "PUT", f"/Observation/{by_reference['id']}", by_absolute_uri),
        ("a versioned uri to B", "PUT", f"/Observation/{by_reference['id']}", by_versioned_uri),
        ("a padded uri to B", "PUT", f"/Observation/{by_reference['id']}", by_padded_uri),
        ("a urn uri", "PUT", f"/Observation/{by_reference['id']}", by_urn),
        ("a padded urn uri", "PUT", f"/Observation/{by_reference['id']}", by_padded_urn),
        ("a conditional uri", "PUT", f"/Observation/{by_reference['id']}", by_search),
        ("a uri with an empty segment", "PUT", f"/Observation/{mine_o}", by_doubled_slash),
        ("a uri with an encoded letter", "PUT", f"/Observation/{mine_o}", by_encoded_letter),
        ("a uri with an encoded slash", "PUT", f"/Observation/{mine_o}", by_encoded_slash),
        ("a uri with a backslash", "PUT", f"/Observation/{mine_o}", by_backslash),
        ("a uri with a tab", "PUT", f"/Observation/{mine_o}", by_tab),
        ("a uri with a line break", "PUT", f"/Observation/{mine_o}", by_line_break),
        ("a contained reference string", "PUT", f"/Patient/{mine}", contained_reference),
        ("a reference string in an extension", "PUT", f"/Patient/{mine}", in_an_extension),
        ("a reference string at the top", "PUT", f"/Patient/{mine}", at_the_top),
        (
            "a reference that is no object",
            "PUT",
            f"/Observation/{by_reference['id']}",
            not_a_string,
        ),
        ("a create with the id in the body only", "POST", "/Patient", body("Patient", mine)),
        ("a server-assigned id", "POST", "/Patient", {"resourceType": "Patient"}),
        ("a create whose body names B", "POST", f"/Patient?_id={mine}", body("Patient", yours)),
        (
            "a conditional create by identifier",
            "POST",
            "/Patient?identifier=x",
            {"resourceType": "Patient"},
        ),
        ("a conditional update", "PUT", "/Patient?identifier=x", {"resourceType": "Patient"}),
        ("a conditional delete", "DELETE", "/Patient?identifier=x", None),
        ("FHIR format", "PUT", f"/fhir/Patient/{mine}", body("Patient", mine)),
        # `//Patient/x` can parse as host `Patient`, path `/x` (RFC 3986 §4.2)
        ("a path starting with //", "PUT", f"//Patient/{mine}", body("Patient", mine)),
        ("a bundle at //", "POST", "//", transaction(put(body("Patient", mine)))),
        ("a search of a clinical type", "GET", "/Patient", None),
        ("a search by id", "GET", f"/Patient?_id={mine}", None),
        ("changes of a clinical type", "GET", "/Patient/$changes", None),
        ("history", "GET", f"/Patient/{mine}/_history", None),
        ("$psql", "POST", "/$psql", {"query": "SELECT 1"}),
        ("its own Client", "PUT", f"/Client/{CLINIC}", {"secret": "x", "grant_types": ["basic"]}),
        ("another Client", "GET", "/Client/root", None),
        ("a policy of its own", "PUT", "/AccessPolicy/mine", {"engine": "allow"}),
        ("the App", "PUT", "/App/aidbox-sync", {"type": "app"}),
        ("its own AidboxInstance", "PUT", f"/AidboxInstance/{CLINIC}", {"status": "active"}),
        ("B's AidboxInstance", "GET", f"/AidboxInstance/{B}", None),
        ("the clinics' list", "GET", "/AidboxInstance", None),
    ]


@pytest.mark.parametrize(
    ("what", "method", "path", "payload"), _cases(), ids=[c[0] for c in _cases()]
)
async def test_the_global_refuses_a_clinic_everything_else(
    as_a: AidboxClient,
    b_patient: str,
    global_root: AidboxClient,
    what: str,
    method: str,
    path: str,
    payload: Any,
) -> None:
    before = await global_state(global_root, ["Patient", "Observation", "Device"])
    resp = await as_a.request(method, path, json=payload)
    assert refused(resp), (what, resp.status, resp.body)
    assert await global_state(global_root, ["Patient", "Observation", "Device"]) == before


def _fence(global_id: str) -> dict[str, Any]:
    """A fence token as the push creates it (app/sync/fence.py)."""
    return body(
        "SyncFence",
        global_id,
        stream="push-Patient",
        seq=1,
        epoch=1,
        digest="d",
        at="2026-01-01T00:00:00Z",
    )


async def test_a_conditional_create_may_not_search_another_clinics_resources(
    as_a: AidboxClient, global_root: AidboxClient
) -> None:
    # A conditional create that matches answers the resource it found instead of creating
    # (api/rest-api/crud/create.md, "If-None-Exist header", "Conditional create via Bundle"):
    # any search but the id would read whatever it finds, whoever's it is.
    b_fence = theirs("SyncFence", "push-Patient#1")
    assert (await global_root.call("PUT", f"/SyncFence/{b_fence}", json=_fence(b_fence))).ok
    mine, fence = own("Patient", "p8"), own("SyncFence", "push-Patient#1")
    searches: list[tuple[str, str, dict[str, str], Any]] = [
        ("POST", "/SyncFence?.digest=d", {}, _fence(fence)),
        ("POST", "/SyncFence?stream=push-Patient", {}, _fence(fence)),
        ("POST", "/SyncFence", {"If-None-Exist": f"_id={b_fence}"}, _fence(fence)),
        ("POST", f"/Patient?_id={mine}", {"If-None-Exist": "identifier=x"}, body("Patient", mine)),
        ("POST", f"/Patient?_id={mine}&identifier=x", {}, body("Patient", mine)),
        ("POST", f"/Patient?identifier=x&_id={mine}", {}, body("Patient", mine)),
    ]
    entries = [
        {"method": "POST", "url": "SyncFence", "ifNoneExist": f"_id={b_fence}"},
        {"method": "POST", "url": f"Patient?_id={mine}", "ifNoneExist": "identifier=x"},
        {"method": "PUT", "url": f"Patient/{mine}", "ifNoneMatch": "*"},
    ]
    for request in entries:
        resource = _fence(fence) if "SyncFence" in request["url"] else body("Patient", mine)
        bundle = transaction({"request": request, "resource": resource})
        searches.append(("POST", "/", {}, bundle))
    for method, path, headers, payload in searches:
        resp = await as_a.request(method, path, json=payload, headers=headers)
        assert refused(resp), (path, headers, resp.status)
        assert b_fence not in json.dumps(resp.body)
    assert list(await resources(global_root, "SyncFence")) == [b_fence]
    assert mine not in await resources(global_root, "Patient")
    # the create the push makes, by its id, still passes
    created = await as_a.request("POST", f"/Patient?_id={mine}", json=body("Patient", mine))
    assert created.status == 201, created.body


async def test_one_forbidden_entry_fails_the_whole_transaction(
    as_a: AidboxClient, b_patient: str, global_root: AidboxClient
) -> None:
    good = body("Patient", own("Patient", "p3"))
    for bad in (
        put(body("Patient", b_patient, gender="female")),  # B's namespace
        {"request": {"method": "DELETE", "url": f"Patient/{b_patient}"}},
        {  # read by the policy as Patient/<own id>; a url parser finds host `Patient`
            "request": {"method": "PUT", "url": f"//Patient/{own('Patient', 'p4')}"},
            "resource": body("Patient", own("Patient", "p4")),
        },
        {  # a urn:uuid entry: created with a server-assigned id
            "fullUrl": "urn:uuid:6f1a9f9e-1111-4222-8333-444455556666",
            "request": {"method": "POST", "url": "Patient"},
            "resource": {"resourceType": "Patient"},
        },
    ):
        resp = await as_a.request("POST", "/", json=transaction(put(good), bad))
        assert refused(resp), bad
    held = await resources(global_root, "Patient")
    assert own("Patient", "p3") not in held
    assert held[b_patient]["gender"] == "male"


async def test_an_instance_edited_to_list_infrastructure_types_still_writes_none(
    headquarters: Headquarters, as_a: AidboxClient, global_root: AidboxClient
) -> None:
    # Defence in depth: the registration refuses these types, and the policy refuses writes of
    # them whatever an AidboxInstance lists (an operator's hand edit, an older registration).
    instance = (await global_root.call("GET", f"/AidboxInstance/{CLINIC}")).body
    infrastructure = ["AccessPolicy", "Client", "Subscription", "SearchParameter", "App"]
    edited = {**instance, "types": [*instance["types"], *infrastructure]}
    await global_root.call("PUT", f"/AidboxInstance/{CLINIC}", json=edited)
    attempts = {
        "AccessPolicy": {"engine": "allow"},  # a global policy that would allow anyone anything
        "Client": {"secret": "s3cret", "grant_types": ["basic"]},
        "Subscription": {
            "status": "active",
            "reason": "x",
            "criteria": "Patient",
            "channel": {"type": "rest-hook", "endpoint": "https://attacker.example/hook"},
        },
        "SearchParameter": {
            "url": "http://x.example/sp",
            "name": "x",
            "status": "active",
            "description": "x",
            "code": "x",
            "base": ["Patient"],
            "type": "token",
            "expression": "Patient.id",
        },
        "App": {"type": "app", "apiVersion": 1},
    }
    for rtype, payload in attempts.items():
        rid = own(rtype, "x")
        resp = await as_a.request("PUT", f"/{rtype}/{rid}", json={**payload, "id": rid})
        assert refused(resp), (rtype, resp.status, resp.body)
        entry = {"request": {"method": "PUT", "url": f"{rtype}/{rid}"}, "resource": payload}
        resp = await as_a.request("POST", "/", json=transaction(entry))
        assert refused(resp), (rtype, resp.status, resp.body)
        assert (await global_root.request("GET", f"/{rtype}/{rid}")).status == 404, rtype
    pid = own("Patient", "p8")
    assert (await as_a.request("PUT", f"/Patient/{pid}", json=body("Patient", pid))).status == 201

    # registering again (a suspension, say) drops what may not be registered, refuses nothing
    again = await headquarters.register(CLINIC, status="suspended")
    assert again["instance"]["types"] == instance["types"]
    assert again["instance"]["status"] == "suspended"


# -- pull: headquarters' administrative data --------------------------------------------


@pytest.fixture
async def hq_organization(headquarters: Headquarters, global_root: AidboxClient) -> str:
    """An Organization of headquarters' own, under its real id (an offered type)."""
    await global_root.call("PUT", "/Organization/org-1", json={"name": "HQ clinic network"})
    return "org-1"


def served_by(target: dict[str, Any]) -> dict[str, Any]:
    """Clinic A's Encounter of its own patient, whose serviceProvider is `target`."""
    return {**encounter(own("Encounter", "e1"), own("Patient", "p1")), "serviceProvider": target}


async def test_a_clinic_may_reference_headquarters_offered_resources_by_their_real_id(
    as_a: AidboxClient, hq_organization: str, global_root: AidboxClient
) -> None:
    pid = own("Patient", "p1")
    assert (await as_a.request("PUT", f"/Patient/{pid}", json=body("Patient", pid))).status == 201
    visit = served_by({"resourceType": "Organization", "id": hq_organization})
    resp = await as_a.request("POST", "/", json=transaction(put(visit)))
    assert resp.status == 200, resp.body
    held = await resources(global_root, "Encounter")
    assert held[visit["id"]]["serviceProvider"]["id"] == hq_organization

    # the SyncScope row is what allows it: a type no longer offered is refused again
    await global_root.call("DELETE", "/SyncScope/Organization")
    refused_now = await as_a.request("PUT", f"/Encounter/{visit['id']}", json=visit)
    assert refused(refused_now), refused_now.body


@pytest.mark.parametrize(
    ("what", "target"),
    [
        ("a type headquarters does not offer", {"resourceType": "Group", "id": "g-1"}),
        (
            "another clinic's pushed id of an offered type",
            {"resourceType": "Organization", "id": theirs("Organization", "o1")},
        ),
        ("an offered type without an id", {"resourceType": "Organization"}),
    ],
)
async def test_references_outside_the_namespace_are_still_refused(
    headquarters: Headquarters,
    as_a: AidboxClient,
    b_app: RunningApp,
    global_root: AidboxClient,
    what: str,
    target: dict[str, Any],
) -> None:
    # Each target exists at headquarters: only the policy stands in the way.
    await global_root.call("PUT", "/Group/g-1", json={"type": "person", "actual": True})
    other = theirs("Organization", "o1")
    await global_root.call("PUT", f"/Organization/{other}", json={"name": "B's own"})
    pid = own("Patient", "p1")
    assert (await as_a.request("PUT", f"/Patient/{pid}", json=body("Patient", pid))).status == 201
    visit = served_by(target)
    resp = await as_a.request("PUT", f"/Encounter/{visit['id']}", json=visit)
    assert refused(resp), (what, resp.status, resp.body)
    assert visit["id"] not in await resources(global_root, "Encounter")


async def test_a_clinic_cannot_write_headquarters_offered_resources(
    headquarters: Headquarters, as_a: AidboxClient, hq_organization: str, global_root: AidboxClient
) -> None:
    await headquarters.register(CLINIC, types=["Patient", "Organization"])
    changed = {"resourceType": "Organization", "id": hq_organization, "name": "taken over"}
    for method, path, payload in [
        ("PUT", f"/Organization/{hq_organization}", changed),
        ("POST", "/", transaction(put(changed))),
        ("DELETE", f"/Organization/{hq_organization}", None),
        ("POST", "/Organization?_id=org-2", {**changed, "id": "org-2"}),
    ]:
        assert refused(await as_a.request(method, path, json=payload)), (method, path)
    held = (await global_root.call("GET", f"/Organization/{hq_organization}")).body
    assert held["name"] == "HQ clinic network"


async def _pull(client: AidboxClient, op: str, rtype: str) -> Any:
    params = {"type": rtype} if op == "pull-changes" else {"type": rtype, "_id": "org-1"}
    return await client.request("GET", f"/${op}", params=params)


@pytest.mark.parametrize("op", ["pull-changes", "pull-read"])
async def test_only_active_clinics_pull_and_only_types_offered_to_them(
    headquarters: Headquarters,
    global_aidbox: Emulator,
    global_root: AidboxClient,
    as_a: AidboxClient,
    op: str,
) -> None:
    assert (await _pull(as_a, op, "Organization")).status == 200
    assert refused(await _pull(as_a, op, "Medication"))  # no SyncScope: not offered
    assert refused(await _pull(as_a, op, "SyncScope"))
    # a type the clinic pushes flows one way only
    await headquarters.register(CLINIC, types=["Patient", "Organization"])
    assert refused(await _pull(as_a, op, "Organization"))
    assert (await _pull(as_a, op, "Location")).status == 200
    # suspended: refused by the policy, before the App is asked
    await headquarters.register(CLINIC, status="suspended")
    assert refused(await _pull(as_a, op, "Location"))
    # a Client that is no clinic's, and root itself: no namespace, no scope
    await global_root.call(
        "PUT", "/Client/stranger", json={"secret": "s3cret", "grant_types": ["basic"]}
    )
    async with AidboxClient(global_aidbox.url, "stranger", "s3cret") as stranger:
        assert refused(await _pull(stranger, op, "Location"))
    assert refused(await _pull(global_root, op, "Location"))


# -- suspension, reactivation, removal ---------------------------------------------------


async def test_a_suspended_clinic_syncs_nothing_is_refused_and_resumes_exactly(
    b_app: RunningApp,
    b_root: AidboxClient,
    headquarters: Headquarters,
    global_aidbox: Emulator,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await b_root.call("PUT", "/Patient/p1", json=patient("p1"))
    assert (await b_root.call("POST", "/$sync")).status == 200
    assert await global_state(global_root, TYPES, B) == await expected_global(
        b_root, TYPES, key=B_KEY
    )

    # suspending is one field change, here as an operator would make it with PUT
    instance = (await global_root.call("GET", f"/AidboxInstance/{B}")).body
    await global_root.call("PUT", f"/AidboxInstance/{B}", json={**instance, "status": "suspended"})
    await b_root.call("PUT", "/Patient/p2", json=patient("p2", family="Jones"))
    await b_root.call("PUT", "/Observation/o1", json=observation("o1", "p2"))
    caplog.set_level(logging.INFO, logger="aidbox_sync")
    for _ in range(2):
        stopped = await b_root.request("POST", "/$sync")
        assert stopped.status == 409
        assert "suspended" in stopped.body["issue"][0]["diagnostics"]
    said = [r for r in caplog.records if "suspended at headquarters" in r.getMessage()]
    assert len(said) == 1  # once, when it changed
    status = (await b_root.call("GET", "/$sync-status")).body
    assert status["instance"]["state"] == "suspended"
    assert theirs("Patient", "p2") not in await resources(global_root, "Patient")

    # the client-side check bypassed: the global itself refuses B's own credentials
    async with AidboxClient(global_aidbox.url, B, headquarters.secrets[B]) as as_b:
        pid = theirs("Patient", "p2")
        assert refused(await as_b.request("PUT", f"/Patient/{pid}", json=body("Patient", pid)))
        assert refused(await as_b.request("POST", "/", json=transaction(put(body("Patient", pid)))))
        # ...while it may still read that it is suspended
        assert (await as_b.request("GET", f"/AidboxInstance/{B}")).body["status"] == "suspended"
    assert pid not in await resources(global_root, "Patient")

    await headquarters.register(B, status="active")
    resumed = await b_root.call("POST", "/$sync")
    assert resumed.status == 200
    assert await global_state(global_root, TYPES, B) == await expected_global(
        b_root, TYPES, key=B_KEY
    )
    assert (await b_root.call("GET", "/$sync-status")).body["instance"]["state"] == "active"


async def test_deleting_the_instance_revokes_everything(
    as_a: AidboxClient, global_root: AidboxClient, sync_app: RunningApp, local_root: AidboxClient
) -> None:
    await global_root.call("DELETE", f"/AidboxInstance/{CLINIC}")
    pid = own("Patient", "p1")
    assert refused(await as_a.request("PUT", f"/Patient/{pid}", json=body("Patient", pid)))
    assert refused(await as_a.request("GET", f"/AidboxInstance/{CLINIC}"))
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    stopped = await local_root.request("POST", "/$sync")
    assert stopped.status == 409
    status = (await local_root.call("GET", "/$sync-status")).body
    assert status["instance"]["state"] == "unregistered"


# -- the policy under the other reading of per-entry checks ------------------------------


def _render(query: str, request: dict[str, Any]) -> str:
    """The policy's query with each {{path}} replaced by the request object's value as a SQL
    literal, as the sql engine binds it (access-policies.md, "Interpolation Rules")."""

    def value(match: re.Match[str]) -> str:
        node: Any = request
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return "NULL"
        text = node if isinstance(node, str) else json.dumps(node)
        return "'" + text.replace("'", "''") + "'"

    return re.sub(r"\{\{([^}!]+)\}\}", value, query)


async def _policy_allows(global_root: AidboxClient, request: dict[str, Any]) -> bool:
    """What the clinics' policy, as installed, answers for a request object."""
    policy = (await global_root.call("GET", "/AccessPolicy/aidbox-sync-clinics")).body
    query = _render(policy["sql"]["query"], request)
    resp = await global_root.call("POST", "/$psql", json={"query": query})
    return bool(next(iter(parse_psql_response(resp.body)[0][0].values())))


async def test_the_path_a_request_is_judged_by_is_the_path_it_asks_for(
    headquarters: Headquarters, global_root: AidboxClient
) -> None:
    # The route's params name the resource; the uri says where the request went. Were a
    # route elsewhere (another prefix, an API of its own) to give an operation id and params
    # of a plain read, they must not speak for it.
    mine = own("Patient", "p5")
    read = {
        "client": {"id": CLINIC},
        "operation": {"id": "Read"},
        "request-method": "get",
        "params": {"resource/type": "Patient", "resource/id": mine},
    }
    assert await _policy_allows(global_root, {**read, "uri": f"/Patient/{mine}"})
    for uri in (f"/Organization/org-b/api/Patient/{mine}", f"/fhir/Patient/{mine}", None):
        assert not await _policy_allows(global_root, {**read, "uri": uri}), uri
    create = {**read, "operation": {"id": "Create"}, "request-method": "post", "params": {}}
    created = {**create, "params": {"resource/type": "Patient", "_id": mine}}
    created["resource"] = body("Patient", mine)
    created["query-string"] = f"_id={mine}"
    assert await _policy_allows(global_root, {**created, "uri": "/Patient"})
    assert not await _policy_allows(global_root, {**created, "uri": "/Patient/x/../"})


@pytest.mark.parametrize("shape", ["update", "create", "transaction entry"])
async def test_the_policy_refuses_a_body_whose_resource_type_is_not_its_urls(
    headquarters: Headquarters, global_root: AidboxClient, shape: str
) -> None:
    # Which one Aidbox writes is not documented (api/rest-api/crud/update.md, create.md,
    # api/batch-transaction.md); the emulator's 422 must not be all that stops a clinic's
    # AccessPolicy/<own id> {engine: allow}, a global policy allowing everyone everything.
    mine = own("Patient", "p5")
    foreign = body("AccessPolicy", mine, engine="allow")
    request: dict[str, Any] = {"client": {"id": CLINIC}, "resource": foreign}
    if shape == "update":
        request |= {"operation": {"id": "Update"}, "uri": f"/Patient/{mine}"}
        request["params"] = {"resource/type": "Patient", "resource/id": mine}
    elif shape == "create":
        request |= {"operation": {"id": "Create"}, "uri": "/Patient", "query-string": f"_id={mine}"}
        request["params"] = {"resource/type": "Patient", "_id": mine}
    else:
        entry = {"request": {"method": "PUT", "url": f"Patient/{mine}"}, "resource": foreign}
        request |= {"operation": {"id": "Transaction"}, "uri": "/", "params": {}}
        request["resource"] = transaction(entry)
    assert not await _policy_allows(global_root, request), shape
    # the url's own type, or none, still passes
    if shape == "transaction entry":
        request["resource"]["entry"][0]["resource"] = body("Patient", mine)
    else:
        request["resource"] = {"id": mine} if shape == "update" else body("Patient", mine)
    assert await _policy_allows(global_root, request), shape


async def test_a_bundle_is_judged_by_its_entries_even_if_entries_were_not_checked_apart(
    headquarters: Headquarters, global_root: AidboxClient, b_patient: str
) -> None:
    # accesspolicy-examples.md #18 says entries are checked one by one, not what an entry's
    # request object holds: if Aidbox showed entries only the bundle's, the policy must still
    # refuse a bundle with one forbidden entry, from the bundle's body alone.

    async def allows(bundle: dict[str, Any]) -> bool:
        request = {
            "client": {"id": CLINIC},
            "operation": {"id": "Transaction"},
            "uri": "/",
            "request-method": "post",
            "resource": bundle,
            "params": {},
        }
        return await _policy_allows(global_root, request)

    mine = body("Patient", own("Patient", "p5"))
    assert await allows(transaction(put(mine)))
    create = {"request": {"method": "POST", "url": f"Patient?_id={mine['id']}"}, "resource": mine}
    assert await allows(transaction(create))
    for bad in (
        put(body("Patient", b_patient)),
        {"request": {"method": "DELETE", "url": f"Patient/{b_patient}"}},
        {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}},
        {"request": {"method": "PUT", "url": "Patient?identifier=x"}, "resource": mine},
        {"request": {"method": "GET", "url": "Patient"}},
        {"request": {"method": "PUT", "url": f"//Patient/{mine['id']}"}, "resource": mine},
        {"request": {"method": "PUT", "url": f"///Patient/{mine['id']}"}, "resource": mine},
        {"request": {"method": "PUT", "url": f"Client/{CLINIC}"}, "resource": {"secret": "x"}},
        put(
            body(
                "Patient",
                own("Patient", "p6"),
                link=[{"other": {"resourceType": "Patient", "id": b_patient}}],
            )
        ),
        put(body("Patient", own("Patient", "p6"), link=[{"other": {"reference": "Patient/x"}}])),
        put(
            body("Patient", own("Patient", "p6"), link=[{"other": {"uri": f"Patient/{b_patient}"}}])
        ),
        # a path judged by its first segments, with more after an empty one: with dot
        # segments removed (RFC 3986 5.2.4) it is another resource, another type
        {
            "request": {"method": "PUT", "url": f"Patient/{mine['id']}//../../{b_patient}"},
            "resource": mine,
        },
        {"request": {"method": "DELETE", "url": f"Patient/{mine['id']}//../../{b_patient}"}},
        {
            "request": {"method": "POST", "url": "SyncFence///../../../AccessPolicy"},
            "resource": {"resourceType": "AccessPolicy", "id": own("SyncFence", "f")},
        },
        {"request": {"method": "GET", "url": f"Patient/{mine['id']}//_history"}},
        {"request": {"method": "GET", "url": f"Patient/{mine['id']}/"}},
    ):
        assert not await allows(transaction(put(mine), bad)), bad
    # A bundle whose entries cannot be read from its body would read as empty: refused, as
    # are an empty bundle and one longer than the App's largest batch with its fence entries.
    bundle = transaction(put(body("Patient", b_patient)))
    as_text = json.dumps(json.dumps(bundle))  # a jsonb string, not the object
    for unreadable in (None, as_text, [bundle], {"resourceType": "Bundle"}):
        assert not await allows(unreadable), unreadable  # type: ignore[arg-type]
    assert not await allows(transaction())
    many = [put(body("Patient", own("Patient", f"n{n}"))) for n in range(1017)]
    assert await allows(transaction(*many[:1016]))
    assert not await allows(transaction(*many))


async def test_a_clinic_may_not_hold_a_transaction_open_at_headquarters_with_a_huge_bundle(
    as_a: AidboxClient,
) -> None:
    # Every clinic's pull waits for the transactions open at headquarters (docs/pull.md): a
    # bundle of more entries than the App ever sends is refused before it runs.
    many = [put(body("Patient", own("Patient", f"n{n}"))) for n in range(1017)]
    refused = await as_a.request("POST", "/", json=transaction(*many))
    assert refused.status == 403, refused.body
    allowed = await as_a.request("POST", "/", json=transaction(*many[:1016]))
    assert allowed.status == 200, allowed.body


def _linked(pid: str, links: int) -> dict[str, Any]:
    """Clinic A's Patient with `links` references to another of its own: what the policy's
    walks of a body cost most on (docs/access-control.md, "Size limits and cost")."""
    other = {"resourceType": "Patient", "id": own("Patient", "p1")}
    return body("Patient", pid, link=[{"type": "seealso", "other": other}] * links)


def _bytes(value: Any) -> int:
    return len(orjson.dumps(value))


async def test_the_policy_takes_the_apps_largest_bodies_and_refuses_larger_ones_unwalked(
    headquarters: Headquarters, global_root: AidboxClient
) -> None:
    pid = own("Patient", "p2")
    update = {
        "client": {"id": CLINIC},
        "operation": {"id": "Update"},
        "uri": f"/Patient/{pid}",
        "params": {"resource/type": "Patient", "resource/id": pid},
    }
    per_link = _bytes(_linked(pid, 2)) - _bytes(_linked(pid, 1))
    largest = _linked(pid, (MAX_ENTRY_BYTES - 200) // per_link)  # the App's largest entry
    assert MAX_ENTRY_BYTES - 2 * per_link < _bytes(largest) + 100 <= MAX_ENTRY_BYTES
    assert await _policy_allows(global_root, {**update, "resource": largest})
    twice = {**largest, "link": largest["link"] * 2}  # over the limit of one body
    assert not await _policy_allows(global_root, {**update, "resource": twice})
    # Refused before any walk of it: judged, this body took 12-21 s (the ACL review).
    huge = _linked(pid, 60_000)
    started = time.monotonic()
    assert not await _policy_allows(global_root, {**update, "resource": huge})
    assert time.monotonic() - started < 5

    # A transaction as large as the App's largest (SYNC_BATCH_MAX_BYTES <= 1,000,000, with its
    # fence entries), made of entries that pass one by one; larger, refused.
    fences = [
        {
            "request": {"method": "POST", "url": "/SyncFence"},
            "resource": _fence(own("SyncFence", f"t{n}")),
        }
        for n in range(8)
    ]
    entries = [put(_linked(own("Patient", f"n{n}"), 150)) for n in range(67)]
    assert 900_000 < _bytes(transaction(*entries)) <= 1_000_000
    bundle = {
        "client": {"id": CLINIC},
        "operation": {"id": "Transaction"},
        "uri": "/",
        "params": {},
        "resource": transaction(*fences, *entries),
    }
    assert await _policy_allows(global_root, bundle)
    bundle["resource"] = transaction(*fences, *entries, *entries)
    assert not await _policy_allows(global_root, bundle)


async def test_a_clinic_may_not_hold_a_transaction_open_at_headquarters_with_a_heavy_bundle(
    as_a: AidboxClient, global_root: AidboxClient
) -> None:
    # Every clinic's pull waits for the transactions open at headquarters (docs/pull.md):
    # entries that pass one by one, more bytes of them than the App ever sends in one.
    target = own("Patient", "p1")
    assert (await as_a.request("PUT", f"/Patient/{target}", json=body("Patient", target))).ok
    entries = [put(_linked(own("Patient", f"n{n}"), 150)) for n in range(150)]
    refused_now = await as_a.request("POST", "/", json=transaction(*entries))
    assert refused(refused_now), refused_now.status
    assert own("Patient", "n0") not in await resources(global_root, "Patient")
