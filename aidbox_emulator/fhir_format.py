"""Aidbox format ⇄ FHIR format (api/rest-api/other/aidbox-and-fhir-formats.md).

Two isomorphic transformations, applied recursively to every nested element:
- references: `{"reference": "Patient/p1"}` ⇄ `{"resourceType": "Patient", "id": "p1"}`;
  absolute `{"reference": "http://x/Patient/1"}` ⇄ `{"uri": ...}`;
  local `"#pt"` ⇄ `{"localRef": "pt"}`;
- choice types: `valueString: x` ⇄ `value: {string: x}` for the element names in CHOICE_ELEMENTS.
First-class extensions (Attribute / FHIRSchema extension slices) are not converted.
"""

from __future__ import annotations

import re
from typing import Any

PRIMITIVE_TYPES = frozenset(
    """
        base64Binary boolean canonical code date dateTime decimal id instant integer
        integer64 markdown oid positiveInt string time unsignedInt uri url uuid
        """.split()  # noqa: SIM905
)
COMPLEX_TYPES = frozenset(
    """
        Address Age Annotation Attachment CodeableConcept CodeableReference Coding
        ContactDetail ContactPoint Contributor Count DataRequirement Distance Dosage
        Duration Expression HumanName Identifier Meta Money ParameterDefinition Period
        Quantity Range Ratio RatioRange Reference RelatedArtifact SampledData Signature
        Timing TriggerDefinition UsageContext
        """.split()  # noqa: SIM905
)
# Choice ([x]) element names of FHIR R4 that the emulator converts. Element names such as
# `timing` or `item`, which are also ordinary elements elsewhere, are left out on purpose.
CHOICE_ELEMENTS = frozenset(
    """
        value deceased multipleBirth effective onset abatement occurrence performed born age
        asNeeded medication reported serviced answer content defaultValue fixed pattern
        minValue maxValue product subject scheduled collected allowed used diagnosis
        procedure detail rate dose probability
        """.split()  # noqa: SIM905
)
_REF_EXTRA_KEYS = frozenset({"display", "type", "identifier", "extension", "_id", "id"})
_RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z0-9]+)/([^/]+)(?:/_history/[^/]+)?$")


def is_aidbox_reference(value: Any) -> bool:
    """A nested `{resourceType, id, display?...}` map: Aidbox's parsed relative reference."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("resourceType"), str)
        and isinstance(value.get("id"), str)
        and set(value) <= _REF_EXTRA_KEYS | {"resourceType"}
    )


def _choice_type(value: Any) -> str | None:
    """The type key of an Aidbox choice value `{<type>: v}`, or None if `value` isn't one."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((typ, inner),) = value.items()
    if typ in PRIMITIVE_TYPES and not isinstance(inner, dict | list):
        return typ
    if typ in COMPLEX_TYPES and isinstance(inner, dict):
        return typ
    return None


def to_fhir(resource: dict[str, Any]) -> dict[str, Any]:
    """Convert an Aidbox-format resource to FHIR format."""
    return {
        k: (v if k in ("resourceType", "id", "meta") else _to_fhir_key(k, v))
        for k, v in _expand_choices_to_fhir(resource).items()
    }


def _expand_choices_to_fhir(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        typ = _choice_type(value) if key in CHOICE_ELEMENTS else None
        if typ is not None:
            out[key + typ[0].upper() + typ[1:]] = value[typ]
        else:
            out[key] = value
    return out


def _to_fhir_key(key: str, value: Any) -> Any:
    if key == "contained" and isinstance(value, list):
        return [to_fhir(r) if isinstance(r, dict) else r for r in value]
    return _to_fhir_value(value)


def _to_fhir_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_fhir_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    if is_aidbox_reference(value):
        rest = {k: _to_fhir_value(v) for k, v in value.items() if k not in ("resourceType", "id")}
        return {"reference": f"{value['resourceType']}/{value['id']}", **rest}
    if "uri" in value and set(value) <= _REF_EXTRA_KEYS | {"uri"} and "id" not in value:
        rest = {k: _to_fhir_value(v) for k, v in value.items() if k != "uri"}
        return {"reference": value["uri"], **rest}
    if "localRef" in value and set(value) <= _REF_EXTRA_KEYS | {"localRef"}:
        rest = {k: _to_fhir_value(v) for k, v in value.items() if k != "localRef"}
        return {"reference": "#" + str(value["localRef"]), **rest}
    return {k: _to_fhir_key(k, v) for k, v in _expand_choices_to_fhir(value).items()}


def from_fhir(resource: dict[str, Any]) -> dict[str, Any]:
    """Convert a FHIR-format resource to Aidbox format."""
    return {
        k: (v if k in ("resourceType", "id", "meta") else _from_fhir_key(k, v))
        for k, v in _collapse_choices(resource).items()
    }


def _collapse_choices(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        split = _split_choice_key(key)
        if split is None:
            out[key] = value
        else:
            base, typ = split
            out[base] = {typ: value}
    return out


def _split_choice_key(key: str) -> tuple[str, str] | None:
    """`multipleBirthBoolean` → ("multipleBirth", "boolean"); None for an ordinary key."""
    for i in range(1, len(key)):
        if not key[i].isupper() or key[:i] not in CHOICE_ELEMENTS:
            continue
        suffix = key[i:]
        typ = suffix if suffix in COMPLEX_TYPES else suffix[0].lower() + suffix[1:]
        if typ in PRIMITIVE_TYPES or typ in COMPLEX_TYPES:
            return key[:i], typ
    return None


def _from_fhir_key(key: str, value: Any) -> Any:
    if key == "contained" and isinstance(value, list):
        return [from_fhir(r) if isinstance(r, dict) else r for r in value]
    return _from_fhir_value(value)


def _from_fhir_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_fhir_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    ref = value.get("reference")
    if isinstance(ref, str):
        rest = {k: _from_fhir_value(v) for k, v in value.items() if k != "reference"}
        m = _RELATIVE_REF.match(ref)
        if m:
            return {"resourceType": m.group(1), "id": m.group(2), **rest}
        if ref.startswith("#"):
            return {"localRef": ref[1:], **rest}
        return {"uri": ref, **rest}
    return {k: _from_fhir_key(k, v) for k, v in _collapse_choices(value).items()}


def body_to_fhir(body: Any) -> Any:
    """Convert an answer body for `/fhir`: resources and the resources inside Bundles."""
    if not isinstance(body, dict) or body.get("resourceType") == "OperationOutcome":
        return body
    if body.get("resourceType") == "Bundle" and isinstance(body.get("entry"), list):
        return {
            **body,
            "entry": [
                {**e, "resource": body_to_fhir(e["resource"])}
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                else e
                for e in body["entry"]
            ],
        }
    return to_fhir(body) if "resourceType" in body else body
