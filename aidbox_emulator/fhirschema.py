"""Custom resource types defined with FHIRSchema, and validation of their instances.

tutorials/artifact-registry-tutorials/custom-resources/custom-resources-using-fhir-schema.md:
a FHIRSchema with `kind: resource`, `derivation: specialization` defines a new type (tables and
all); `name`, `type` and `id` must be equal; `required`, `elements` (nested for backbone
elements), `type`, `scalar`/`array`, `refers`, `constraints` (FHIRPath), `binding`.
…/migrate-to-fhirschema/migrate-custom-resources-defined-with-entity-and-attributes-to-fhir-schema.md:
`array: true`, `additionalProperties: {any: true}`, enums as constraints
`%context.subsetOf('a' | 'b')` or `%context='a' or %context='b'`.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from .outcome import AidboxError, operation_outcome
from .resource_types import BUILTIN_TYPES
from .schema import ensure_type_tables

# Elements every DomainResource has (FHIR R4), allowed at the top of custom resources.
_DOMAIN_RESOURCE = frozenset(
    """
        resourceType id meta implicitRules language text contained extension
        modifierExtension
        """.split()  # noqa: SIM905
)
_STRINGS = frozenset(
    """
        string code id markdown uri url canonical oid uuid base64Binary xhtml integer64
        """.split()  # noqa: SIM905
)
_PATTERNS = {
    "date": r"\d{4}(-\d{2}(-\d{2})?)?",
    "dateTime": r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?",
    "instant": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
    "time": r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?",
}
_ENUM_OR = re.compile(r"^\s*%context\s*=\s*'[^']*'(\s+or\s+%context\s*=\s*'[^']*')*\s*$")
_ENUM_SUBSET = re.compile(r"^\s*%context\.subsetOf\(\s*('[^']*'(\s*\|\s*'[^']*')*)\s*\)\s*$")


def defines_type(schema: dict[str, Any]) -> bool:
    """True if a FHIRSchema defines a new resource type (not a profile)."""
    return schema.get("kind") == "resource" and schema.get("derivation") == "specialization"


async def custom_schemas(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Resource types defined by live FHIRSchema resources, by type name."""
    rows = await conn.fetch("SELECT id, resource FROM fhirschema")
    return {
        row["resource"].get("type", row["id"]): row["resource"]
        for row in rows
        if defines_type(row["resource"])
    }


async def known_types(conn: asyncpg.Connection) -> frozenset[str]:
    """All types served now: built-in plus custom."""
    return BUILTIN_TYPES | frozenset(await custom_schemas(conn))


async def is_known_type(conn: asyncpg.Connection, resource_type: str) -> bool:
    """True if the type is built in or defined by a live FHIRSchema."""
    if resource_type in BUILTIN_TYPES:
        return True
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM fhirschema WHERE COALESCE(resource->>'type', id) = $1"
        " AND resource->>'kind' = 'resource' AND resource->>'derivation' = 'specialization')",
        resource_type,
    )


async def schema_for(conn: asyncpg.Connection, resource_type: str) -> dict[str, Any] | None:
    """The FHIRSchema that defines `resource_type`, or None for built-in types."""
    if resource_type in BUILTIN_TYPES:
        return None
    return (await custom_schemas(conn)).get(resource_type)


async def install_definition(conn: asyncpg.Connection, schema: dict[str, Any]) -> None:
    """Check a FHIRSchema being written and create its type's tables (same transaction)."""
    if not defines_type(schema):
        return
    name, typ, sid = schema.get("name"), schema.get("type"), schema.get("id")
    if not (name == typ == sid) or not isinstance(typ, str):
        raise AidboxError.of(
            422,
            "invalid",
            "FHIRSchema defining a resource needs name = type = id",
            outcome_id="invalid",
            expression=["FHIRSchema.name"],
        )
    if typ in BUILTIN_TYPES:
        raise AidboxError.of(422, "invalid", f"{typ} is a built-in type", outcome_id="invalid")
    await ensure_type_tables(conn, [typ])


def validate(resource: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise 422 listing every violation of `schema` by an Aidbox-format instance."""
    errors: list[tuple[str, str]] = []
    _check_node(resource, schema, str(resource.get("resourceType")), errors, top=True)
    if errors:
        body = operation_outcome("invalid", "Invalid resource", outcome_id="invalid")
        body["issue"] = [
            {"severity": "fatal", "code": "invalid", "expression": [path], "diagnostics": msg}
            for path, msg in errors
        ]
        raise AidboxError(422, body)


def _check_node(
    node: dict[str, Any], schema: dict[str, Any], path: str, errors: list, *, top: bool = False
) -> None:
    elements: dict[str, Any] = schema.get("elements") or {}
    for key in schema.get("required") or []:
        if node.get(key) in (None, [], {}, ""):
            errors.append((f"{path}.{key}", f"required-key: {key} is required"))
    extra = schema.get("additionalProperties")
    for key, value in node.items():
        if top and key in _DOMAIN_RESOURCE:
            continue
        element = elements.get(key)
        if element is None and isinstance(extra, dict) and not extra.get("any"):
            element = extra
        if element is None:
            if not (isinstance(extra, dict) and extra.get("any")):
                errors.append((f"{path}.{key}", f"unknown-key: {key} is not allowed"))
            continue
        _check_element(value, element, f"{path}.{key}", errors)


def _check_element(value: Any, element: dict[str, Any], path: str, errors: list) -> None:
    if value is None:
        errors.append((path, "null values are not allowed"))
    elif element.get("array"):
        if not isinstance(value, list):
            errors.append((path, "expected an array"))
        else:
            for i, item in enumerate(value):
                _check_value(item, element, f"{path}.{i}", errors)
    elif isinstance(value, list):
        errors.append((path, "expected a single value, got an array"))
    else:
        _check_value(value, element, path, errors)


def _check_value(value: Any, element: dict[str, Any], path: str, errors: list) -> None:
    typ = element.get("type")
    if element.get("additionalProperties", {}).get("any") and not element.get("elements"):
        return
    if element.get("elements") or typ in ("BackboneElement", "Element"):
        if isinstance(value, dict):
            _check_node(value, element, path, errors)
        else:
            errors.append((path, "expected an object"))
        return
    message = _type_error(value, typ)
    if message:
        errors.append((path, message))
        return
    allowed = _enum_values(element)
    if allowed is not None and value not in allowed:
        errors.append((path, f"value {value!r} is not one of {sorted(allowed)}"))


def _type_error(value: Any, typ: str | None) -> str | None:
    """Why `value` is not a `typ`, or None if it is (or the type is not checked)."""
    if typ is None:
        return None
    ok: bool
    if typ in _STRINGS:
        ok = isinstance(value, str)
    elif typ in _PATTERNS:
        ok = isinstance(value, str) and re.fullmatch(_PATTERNS[typ], value) is not None
    elif typ == "boolean":
        ok = isinstance(value, bool)
    elif typ in ("integer", "positiveInt", "unsignedInt"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and value >= {"integer": value, "positiveInt": 1, "unsignedInt": 0}[typ]
    elif typ == "decimal":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:  # complex types and Reference: an object
        ok = isinstance(value, dict)
    return None if ok else f"expected {typ}, got {type(value).__name__} {value!r}"[:200]


def _enum_values(element: dict[str, Any]) -> set[str] | None:
    """Allowed values from `constraints` shaped as an enumeration; other FHIRPath is not run."""
    allowed: set[str] | None = None
    for constraint in (element.get("constraints") or {}).values():
        expr = constraint.get("expression", "")
        if constraint.get("severity", "error") != "error":
            continue
        if _ENUM_OR.match(expr) or _ENUM_SUBSET.match(expr):
            values = set(re.findall(r"'([^']*)'", expr))
            allowed = values if allowed is None else allowed & values
    return allowed
