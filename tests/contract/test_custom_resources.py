"""Custom resources with FHIRSchema (tutorials/artifact-registry-tutorials/custom-resources/
custom-resources-using-fhir-schema.md and migrate-to-fhirschema/*)."""

from __future__ import annotations

from typing import Any

import pytest

# One emulator for the module, as a shared real Aidbox would be: every test touches only what
# its `uid` names (tests/contract/conftest.py `shared_box`).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


def schema(name: str) -> dict[str, Any]:
    """A FHIRSchema like the App's ChangesInfo: required, primitives, enum, backbone, array."""
    return {
        "resourceType": "FHIRSchema",
        "id": name,
        "name": name,
        "type": name,
        "url": f"http://aidbox-sync.test/{name}",
        "base": "DomainResource",
        "kind": "resource",
        "derivation": "specialization",
        "required": ["resourceType", "direction"],
        "elements": {
            "resourceType": {"type": "string", "scalar": True},
            "direction": {
                "type": "code",
                "scalar": True,
                "constraints": {
                    "dir-enum": {
                        "expression": "%context='push' or %context='pull'",
                        "severity": "error",
                    }
                },
            },
            "version": {"type": "integer", "scalar": True},
            "lastStarted": {"type": "dateTime", "scalar": True},
            "counts": {
                "type": "BackboneElement",
                "scalar": True,
                "required": ["sent"],
                "elements": {
                    "sent": {"type": "integer", "scalar": True},
                    "failed": {"type": "integer", "scalar": True},
                },
            },
            "tags": {"type": "string", "array": True},
            "owner": {"type": "Reference", "scalar": True, "refers": ["Organization"]},
        },
    }


async def _define(box, uid) -> str:
    name = f"Tst{uid}"
    answer = await box.put(f"/fhir/FHIRSchema/{name}", schema(name))
    assert answer.status in (200, 201), answer.body
    return name


async def test_fhirschema_defines_a_served_type(box, uid):
    name = await _define(box, uid)
    assert name in (await box.get("/$resource-types")).body
    good = {
        "resourceType": name,
        "direction": "push",
        "version": 3,
        "lastStarted": "2025-01-02T03:04:05Z",
        "counts": {"sent": 1, "failed": 0},
        "tags": ["a", "b"],
    }
    created = await box.put(f"/{name}/one", good)
    assert created.status == 201, created.body
    assert (await box.get(f"/{name}/one")).body["counts"] == {"sent": 1, "failed": 0}
    assert (await box.get(f"/{name}/$changes")).body["version"] >= int(
        created.body["meta"]["versionId"]
    )
    found = await box.get(f"/{name}", params={"_id": "one"})
    assert found.body["total"] == 1


async def test_instances_are_validated(box, uid):
    name = await _define(box, uid)
    base = {"resourceType": name, "direction": "pull"}
    cases = {
        "missing required": ({"resourceType": name}, f"{name}.direction"),
        "wrong primitive": ({**base, "version": "three"}, f"{name}.version"),
        "bad dateTime": ({**base, "lastStarted": "yesterday"}, f"{name}.lastStarted"),
        "enum": ({**base, "direction": "sideways"}, f"{name}.direction"),
        "nested required": ({**base, "counts": {"failed": 1}}, f"{name}.counts.sent"),
        "nested type": ({**base, "counts": {"sent": True}}, f"{name}.counts.sent"),
        "array expected": ({**base, "tags": "a"}, f"{name}.tags"),
        "scalar expected": ({**base, "version": [1]}, f"{name}.version"),
        "unknown element": ({**base, "surprise": 1}, f"{name}.surprise"),
    }
    for label, (body, expression) in cases.items():
        answer = await box.post(f"/{name}", body)
        assert answer.status == 422, (label, answer.body)
        assert answer.body["resourceType"] == "OperationOutcome"
        expressions = [e for issue in answer.body["issue"] for e in issue.get("expression", [])]
        assert expression in expressions, (label, answer.body)


async def test_references_from_custom_resources_are_checked(box, uid):
    name = await _define(box, uid)
    answer = await box.post(
        f"/{name}",
        {
            "resourceType": name,
            "direction": "push",
            "owner": {"resourceType": "Organization", "id": f"none-{uid}"},
        },
    )
    assert answer.status == 422
    assert answer.body["issue"][0]["expression"] == [f"{name}.owner"]


async def test_schema_with_mismatched_name_is_rejected(box, uid):
    bad = {**schema(f"Tst{uid}"), "name": f"Other{uid}"}
    answer = await box.put(f"/fhir/FHIRSchema/Tst{uid}", bad)
    assert answer.status == 422
