"""Aidbox-shaped OperationOutcome bodies and the exception that carries them to the HTTP layer."""

from __future__ import annotations

from typing import Any


def operation_outcome(
    code: str,
    diagnostics: str,
    *,
    outcome_id: str | None = None,
    expression: list[str] | None = None,
    severity: str = "fatal",
) -> dict[str, Any]:
    """Build an OperationOutcome with one issue.

    Shape from api/rest-api/crud/update.md ("Version Id mismatch") and
    access-control/authorization/smart-on-fhir/smart-scopes-for-limiting-access.md ("forbidden"):
    `id`, `text.div` = diagnostics, one issue with severity/code/diagnostics.
    """
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    body: dict[str, Any] = {
        "resourceType": "OperationOutcome",
        "text": {"status": "generated", "div": diagnostics},
        "issue": [issue],
    }
    if outcome_id:
        body["id"] = outcome_id
    return body


class AidboxError(Exception):
    """An error answered to the client as `status` + OperationOutcome."""

    def __init__(self, status: int, outcome: dict[str, Any]) -> None:
        super().__init__(f"{status}: {outcome['issue'][0].get('diagnostics')}")
        self.status = status
        self.outcome = outcome

    @classmethod
    def of(
        cls,
        status: int,
        code: str,
        diagnostics: str,
        *,
        outcome_id: str | None = None,
        expression: list[str] | None = None,
    ) -> AidboxError:
        """Shorthand: an error with a one-issue OperationOutcome."""
        return cls(
            status,
            operation_outcome(code, diagnostics, outcome_id=outcome_id, expression=expression),
        )


def not_found(resource_type: str, resource_id: str) -> AidboxError:
    """404 for an unknown id (api/rest-api/crud/read.md)."""
    return AidboxError.of(
        404,
        "not-found",
        f"Resource {resource_type}/{resource_id} not found",
        outcome_id="not-found",
    )


def unknown_type(resource_type: str) -> AidboxError:
    """404 for a resource type the server does not know (api/rest-api/crud/read.md)."""
    return AidboxError.of(
        404, "not-found", f"Unknown resource type {resource_type}", outcome_id="not-found"
    )


def invalid(diagnostics: str, *, status: int = 422, expression: list[str] | None = None):
    """A validation / bad-input error (422 by default, 400 for unparsable input)."""
    return AidboxError.of(
        status, "invalid", diagnostics, outcome_id="invalid", expression=expression
    )


def serialization_conflict(detail: str) -> AidboxError:
    """A SERIALIZABLE conflict (SQLSTATE 40001).

    Status 412 from api/rest-api/crud/update.md, section "Isolation levels"; the body shape is
    not documented (open): a `conflict` OperationOutcome carrying PostgreSQL's message.
    """
    return AidboxError.of(412, "conflict", detail, outcome_id="conflict")
