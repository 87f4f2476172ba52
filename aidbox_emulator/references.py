"""References in Aidbox-format resources: referential integrity and bundle-local `urn:uuid`s.

modules/profiling-and-validation/skip-validation-of-references-in-resource-using-request-header.md:
a relative reference to a missing resource → 422 with `expression: ["Observation.subject"]` and
`diagnostics: "Referenced resource Patient/<id> does not exist"`; header
`aidbox-validation-skip: reference` skips the check. Absolute references (`uri`) are not checked
(api/rest-api/other/aidbox-and-fhir-formats.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import asyncpg

from .fhir_format import is_aidbox_reference
from .outcome import AidboxError
from .resource_types import table_name

_SKIP_TOP = frozenset({"resourceType", "id", "meta", "contained"})

# Aidbox has an Operation resource for each built-in operation, and AccessPolicies link them
# (`Operation/FhirRead`, accesspolicy-examples.md); the emulator has no such rows, so links to
# the ids router.py gives its routes count as existing.
_ROUTE_OPERATIONS = (
    "Search",
    "Create",
    "ConditionalUpdate",
    "ConditionalDelete",
    "Read",
    "Update",
    "Delete",
    "History",
    "VRead",
    "Transaction",
)
BUILTIN_OPERATIONS = frozenset(
    _ROUTE_OPERATIONS
    + tuple(f"Fhir{name}" for name in _ROUTE_OPERATIONS)
    + ("Changes", "PSQL", "ResourceTypes", "DbMigrations")
)


def iter_references(resource: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Yield (expression, resourceType, id) for every relative reference in `resource`.

    The expression is the resource type plus the element path, array indexes included as
    numbers (`Observation.performer.0`); contained resources are skipped.
    """
    prefix = str(resource.get("resourceType", ""))
    for key, value in resource.items():
        if key not in _SKIP_TOP:
            yield from _walk(value, f"{prefix}.{key}")


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, str]]:
    if is_aidbox_reference(value):
        yield path, value["resourceType"], value["id"]
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _walk(inner, f"{path}.{i}")


def skips_reference_check(headers: Mapping[str, str]) -> bool:
    """True if the request asked to skip reference validation."""
    raw = headers.get("aidbox-validation-skip", "")
    return "reference" in {part.strip() for part in raw.split(",")}


async def check_references(
    conn: asyncpg.Connection,
    resource: dict[str, Any],
    known_types: frozenset[str] | set[str],
    *,
    exempt: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    """Raise 422 for the first reference whose target does not exist (now, in this transaction).

    `exempt` targets (created by the same transaction bundle) count as existing.
    """
    for expression, rtype, rid in iter_references(resource):
        if (rtype, rid) in exempt or (rtype == "Operation" and rid in BUILTIN_OPERATIONS):
            continue
        exists = rtype in known_types and await conn.fetchval(
            f'SELECT EXISTS (SELECT 1 FROM "{table_name(rtype)}" WHERE id = $1)', rid
        )
        if not exists:
            raise AidboxError.of(
                422,
                "invalid",
                f"Referenced resource {rtype}/{rid} does not exist",
                outcome_id="invalid",
                expression=[expression],
            )


def resolve_urns(value: Any, targets: Mapping[str, tuple[str, str]]) -> Any:
    """Replace `urn:uuid:` references to bundle entries by `{resourceType, id}` references.

    Handles both formats: FHIR `{"reference": "urn:uuid:x"}` and Aidbox `{"uri": "urn:uuid:x"}`
    (api/batch-transaction.md, "Using references"). Run on Aidbox-format resources.
    """
    if isinstance(value, list):
        return [resolve_urns(v, targets) for v in value]
    if not isinstance(value, dict):
        return value
    for key in ("uri", "reference"):
        target = targets.get(value.get(key)) if isinstance(value.get(key), str) else None
        if target is not None:
            rest = {k: v for k, v in value.items() if k != key}
            return {**rest, "resourceType": target[0], "id": target[1]}
    return {k: resolve_urns(v, targets) for k, v in value.items()}
