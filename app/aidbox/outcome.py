"""FHIR OperationOutcome answers for the App's operations.

Aidbox passes the App's status and body to the caller as is (developer-experience/apps.md,
"Response"), so every refusal is a proper OperationOutcome with a 4xx status.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from app.errors import SyncError, validation_problems

# The issue code of `$pull-changes` and `$pull-read` refusing a type headquarters does not offer
# the calling clinic (403): FHIR's "not-supported" (R4 valueset-issue-type), so that a clinic
# tells it from any other 403 (a policy, a proxy), app/sync/shared_ids.py.
NOT_OFFERED = "not-supported"


class OperationError(SyncError):
    """Raised by handlers; becomes an OperationOutcome response."""

    def __init__(
        self, status: int, code: str, diagnostics: str, expression: list[str] | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression

    def response(self) -> web.Response:
        """The HTTP answer."""
        return json_response(
            operation_outcome(self.code, self.diagnostics, self.expression), self.status
        )


def operation_outcome(
    code: str, diagnostics: str, expression: list[str] | None = None, severity: str = "error"
) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def invalid_input(exc: ValidationError, where: str) -> OperationError:
    """400 naming each invalid parameter (values are not echoed: they may be PHI)."""
    problems = validation_problems(exc, where)
    text = "; ".join(f"{loc}: {msg}" for loc, msg in problems)
    return OperationError(400, "invalid", text, [loc for loc, _ in problems])


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response serialised with orjson (datetimes as ISO 8601)."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
