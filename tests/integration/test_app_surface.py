"""The App's Aidbox surface over real HTTP both ways: registration, custom resources,
operations routed through Aidbox, subscriptions, and their refusals."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any

import aiohttp
import pytest
from aidbox_python_sdk import app_keys as sdk_keys

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from app.aidbox.keys import sync_service_key
from tests.support.apps import RunningApp, running_app


def _is_outcome(body: object) -> bool:
    return isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"


async def test_registers_the_app_and_defines_custom_resources(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    app = await local_root.call("GET", "/App/aidbox-sync")
    assert app.body["endpoint"]["url"] == f"{sync_app.url}/aidbox"
    for rtype in ("ChangesInfo", "SyncConfig", "SyncQuarantine", "AnonymizationProfile"):
        assert (await local_root.call("GET", f"/FHIRSchema/{rtype}")).status == 200


async def test_seeds_the_default_configuration_and_profiles(
    local_root: AidboxClient, sync_app: RunningApp
) -> None:
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    assert config["profile"] == "safe-harbor"
    assert {"type": "Patient", "direction": "push", "order": 10} in config["streams"]
    for profile in ("safe-harbor", "minimal"):
        assert (await local_root.call("GET", f"/AnonymizationProfile/{profile}")).status == 200


async def test_a_shipped_profile_is_brought_back_to_this_release_and_a_copy_is_left_alone(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def start() -> Any:
        return running_app(
            local_aidbox.url, global_url=global_aidbox.url, SYNC_RUNNER_ENABLED="false"
        )

    async with start():
        pass
    shipped = (await local_root.call("GET", "/AnonymizationProfile/safe-harbor")).body
    # an older release's profile, or an edit in the console that lets names out
    weakened = {**shipped, "default": "keep", "datatypes": []}
    await local_root.call("PUT", "/AnonymizationProfile/safe-harbor", json=weakened)
    own = {**weakened, "id": "my-profile", "name": "my own"}
    await local_root.call("PUT", "/AnonymizationProfile/my-profile", json=own)
    version = (await local_root.call("GET", "/AnonymizationProfile/minimal")).body["meta"]

    caplog.set_level(logging.WARNING, logger="aidbox_sync")
    async with start():
        pass
    restored = (await local_root.call("GET", "/AnonymizationProfile/safe-harbor")).body
    assert restored["default"] == "redact"
    assert restored["datatypes"] == shipped["datatypes"]
    assert (await local_root.call("GET", "/AnonymizationProfile/my-profile")).body["default"] == (
        "keep"
    )
    # an unchanged shipped profile is not written again
    assert (await local_root.call("GET", "/AnonymizationProfile/minimal")).body["meta"] == version
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("AnonymizationProfile/safe-harbor differed" in w for w in warnings)
    assert not any("minimal" in w or "my-profile" in w for w in warnings)


async def test_custom_resource_create_read_and_validation_error(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    body = {"direction": "push", "type": "Encounter", "version": 0}
    created = await local_root.call("PUT", "/ChangesInfo/push-Encounter", json=body)
    assert created.status == 201
    read = await local_root.call("GET", "/ChangesInfo/push-Encounter")
    assert read.body["type"] == "Encounter"

    invalid = await local_root.request(
        "PUT", "/ChangesInfo/bad", json={"direction": "push", "version": "not-a-number"}
    )
    assert invalid.status == 422
    assert _is_outcome(invalid.body)

    bad_config = await local_root.request("PUT", "/SyncConfig/other", json={"profile": "x"})
    assert bad_config.status == 422  # `streams` is required
    assert _is_outcome(bad_config.body)


async def test_a_profile_that_keeps_what_no_rule_names_is_warned_of_once(
    sync_app: RunningApp, local_root: AidboxClient, caplog: pytest.LogCaptureFixture
) -> None:
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    await local_root.call("PUT", "/SyncConfig/default", json={**config, "profile": "minimal"})
    caplog.set_level(logging.WARNING, logger="aidbox_sync.config")
    for _ in range(2):  # the configuration is read again; the profile did not change
        status = await local_root.call("GET", "/$sync-status")
        assert status.body["configuration"] == {"profile": "minimal", "error": None}
        await sync_app.service.sync(["Patient"])
    warned = [
        r.getMessage() for r in caplog.records if "AnonymizationProfile/minimal" in r.getMessage()
    ]
    assert len(warned) == 1 and "no Safe Harbor profile" in warned[0]


async def test_a_profile_allowing_a_question_its_redact_lists_take_is_warned_of(
    sync_app: RunningApp, local_root: AidboxClient, caplog: pytest.LogCaptureFixture
) -> None:
    shipped = (await local_root.call("GET", "/AnonymizationProfile/safe-harbor")).body
    questions = shipped["questionnaire"]["questions"]
    lenses = {"method": "keep", "text": ["Contact lenses"]}
    own = {**shipped, "id": "eye-clinic", "questionnaire": {"questions": [*questions, lenses]}}
    own.pop("meta", None)
    await local_root.call("PUT", "/AnonymizationProfile/eye-clinic", json=own)
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    await local_root.call("PUT", "/SyncConfig/default", json={**config, "profile": "eye-clinic"})
    caplog.set_level(logging.WARNING, logger="aidbox_sync.config")
    status = await local_root.call("GET", "/$sync-status")
    assert status.body["configuration"] == {"profile": "eye-clinic", "error": None}
    warned = [r.getMessage() for r in caplog.records if "eye-clinic" in r.getMessage()]
    assert warned == [
        f"AnonymizationProfile/eye-clinic: questionnaire.questions[{len(questions)}] text "
        "'Contact lenses' is matched first by questionnaire.questions[1] (redact)"
    ]


async def test_operations_are_routed_through_aidbox_to_the_app(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    status = await local_root.call("GET", "/$sync-status")
    streams = {s["stream"]: s for s in status.body["streams"]}
    assert streams["push-Patient"]["checkpoint"] == 0
    assert status.body["configuration"] == {"profile": "safe-harbor", "error": None}
    assert status.body["watermark"]["waiting"] is False

    synced = await local_root.call("POST", "/ChangesInfo/push-Patient/$sync")
    assert [s["stream"] for s in synced.body["streams"]] == ["push-Patient"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/$sync", {"resourceType": "patient"}, 400),  # not a resource type name
        ("POST", "/$sync", {"colour": "blue"}, 400),  # unknown parameter
        ("POST", "/$sync", {"resourceType": "Device"}, 404),  # no such stream configured
        ("POST", "/$sync", {"direction": "sideways"}, 400),
        ("POST", "/ChangesInfo/nonsense/$sync", None, 404),
        # a body naming another stream than the route's is a mistake, not a Patient sync
        ("POST", "/ChangesInfo/push-Patient/$sync", {"resourceType": "Observation"}, 422),
        ("POST", "/$requeue", {"stream": "Observation"}, 400),  # not a stream id
        ("POST", "/$requeue", {"colour": "blue"}, 400),
        ("POST", "/ChangesInfo/push-Patient/$requeue", {"stream": "push-Patient"}, 400),
        ("POST", "/SyncQuarantine/q-none/$requeue", None, 404),
        ("POST", "/ChangesInfo/push-Patient/$reset", {"version": -1}, 400),
        ("POST", "/ChangesInfo/push-patient/$reset", None, 404),  # not a type name
        ("POST", "/ChangesInfo/push-Device/$reset", None, 404),  # no such stream configured
        ("POST", "/ChangesInfo/push-Patient/$reset", {"version": 10**9}, 422),  # would skip
        ("POST", "/$anonymize", {"resourceType": "Patient"}, 400),  # a resource without id
        ("POST", "/$anonymize", None, 400),  # neither a body nor a type and id
        ("POST", "/$anonymize?resourceType=Patient&id=missing", None, 404),
        ("POST", "/$anonymize?resourceType=Patient&id=p&x=1", None, 400),  # unknown parameter
    ],
)
async def test_bad_operation_input_gets_an_operation_outcome(
    sync_app: RunningApp,
    local_root: AidboxClient,
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    resp = await local_root.request(method, path, json=body)
    assert resp.status == status
    assert _is_outcome(resp.body)


async def test_an_unreadable_quarantine_record_is_named_and_its_fields_stay_out_of_the_log(
    sync_app: RunningApp, local_root: AidboxClient, caplog: pytest.LogCaptureFixture
) -> None:
    # "2024-06" is a FHIR dateTime (the schema takes it) but no instant of a quarantine record,
    # as an edit in the console may leave it; its reason quotes headquarters' diagnostics
    broken = {
        "stream": "push-Patient",
        "resourceId": "Patient/local-secret-id",
        "version": 7,
        "reason": "422 invalid: family name Smith-Jones refused",
        "at": "2024-06",
    }
    assert (await local_root.call("PUT", "/SyncQuarantine/q-broken", json=broken)).status == 201
    caplog.set_level(logging.DEBUG)
    for path in ("/$sync-status", "/SyncQuarantine/q-broken/$requeue"):
        method = "GET" if path == "/$sync-status" else "POST"
        resp = await local_root.request(method, path)
        assert resp.status == 502 and _is_outcome(resp.body)
        diagnostics = resp.body["issue"][0]["diagnostics"]
        assert "SyncQuarantine/q-broken" in diagnostics and "at:" in diagnostics
        assert "Smith" not in diagnostics and "local-secret-id" not in diagnostics
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for secret in ("Smith", "local-secret-id", "q-broken"):
        assert secret not in logged


async def test_app_endpoint_refuses_a_wrong_app_secret(sync_app: RunningApp) -> None:
    call = {"type": "operation", "operation": {"id": "x"}, "request": {}}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{sync_app.url}/aidbox", json=call, auth=aiohttp.BasicAuth("aidbox-sync", "wrong")
        )
        assert resp.status == 401


async def test_operation_called_by_a_client_without_policy_is_forbidden(
    sync_app: RunningApp, local_root: AidboxClient, local_aidbox: Emulator
) -> None:
    await local_root.call("PUT", "/Client/viewer", json={"secret": "pw", "grant_types": ["basic"]})
    async with AidboxClient(local_aidbox.url, "viewer", "pw") as viewer:
        resp = await viewer.request("GET", "/$sync-status")
    assert resp.status == 403
    assert _is_outcome(resp.body)


async def test_subscription_event_reaches_the_app(
    sync_app: RunningApp, local_root: AidboxClient, local_aidbox: Emulator
) -> None:
    await local_root.call("PUT", "/Patient/p1", json={"gender": "female"})
    await local_aidbox.deliveries_idle()
    assert sync_app.service.wakeups.get("Patient") == 1
    status = await local_root.call("GET", "/$sync-status")
    patient = next(s for s in status.body["streams"] if s["type"] == "Patient")
    assert patient["wakeups"] == 1


async def test_anonymize_preview_shows_what_would_leave_and_why(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    body = {
        "resourceType": "Patient",
        "id": "pt-1",
        "name": [{"family": "Smith"}],
        "birthDate": "1970-02-03",
        "gender": "female",
    }
    inline = await local_root.call("POST", "/$anonymize", json=body)
    await local_root.call("PUT", "/Patient/pt-1", json=body)
    stored = await local_root.call(
        "POST", "/$anonymize", params={"resourceType": "Patient", "id": "pt-1"}
    )
    for preview in (inline.body, stored.body):
        assert preview["resource"]["gender"] == "female"
        assert preview["resource"]["birthDate"] == "1970"
        assert "name" not in preview["resource"]
        assert "Smith" not in str(preview)
        changed = {c["path"] for c in preview["changes"]}
        assert {"Patient.name", "Patient.birthDate", "Patient.id"} <= changed


async def test_a_stream_of_an_unknown_type_does_not_hide_the_others(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    config["streams"].append({"type": "NoSuchType", "direction": "push", "order": 99})
    await local_root.call("PUT", "/SyncConfig/default", json=config)
    status = (await local_root.call("GET", "/$sync-status")).body
    streams = {s["stream"]: s for s in status["streams"]}
    assert "head unknown: 404" in streams["push-NoSuchType"]["error"]
    assert streams["push-Patient"]["lag"]["versions"] == 0

    synced = await local_root.call("POST", "/$sync")
    assert synced.status == 207  # the unknown type fails, the others run
    results = {s["stream"]: s for s in synced.body["streams"]}
    assert "unknown resource type" in results["push-NoSuchType"]["error"]
    assert "error" not in results["push-Patient"]


class _Node:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


async def test_objects_alive_after_start_up_are_left_out_of_garbage_collection(
    local_aidbox: Emulator, global_aidbox: Emulator
) -> None:
    # Full collections walk every tracked object; start-up's are frozen so that the walk
    # does not pause a push for tens of milliseconds (bench/push.py).
    gc.disable()  # no automatic collection: only the App's own may free the cycle below
    try:
        garbage = weakref.ref(_Node())
        assert garbage() is not None
        async with running_app(
            local_aidbox.url,
            global_url=global_aidbox.url,
            SYNC_RUNNER_ENABLED="false",
            SYNC_GC_FREEZE="true",
        ) as running:
            scanned = {id(o) for o in gc.get_objects()}  # generations 0-2, not the frozen
            # Frozen last: what start-up built is not scanned, the push service (built with
            # the app) and the SDK's database proxy (built by its start-up) included...
            assert id(running.app[sync_service_key]) not in scanned
            assert id(running.app[sdk_keys.db]) not in scanned
            # ...and garbage of the moment was collected first, not frozen with it.
            assert garbage() is None
    finally:
        gc.enable()
