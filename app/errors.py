"""The App's own errors, under one base.

An error of the App's own says what failed in statuses, ids, versions and OperationOutcome
diagnostics, never with a resource's body, so its message may go to logs and `$sync-status`
(`app/sync/stream.py` `failure_reason`). Anything else may quote a resource and is reported by
its type only.
"""

from __future__ import annotations

from pydantic import SecretStr, ValidationError


class SyncError(Exception):
    """Base of every error the App raises on purpose."""

    @property
    def logged(self) -> str:
        """The message as a log line may carry it: the message itself, unless it quotes what
        a server said (a refusal's diagnostics may quote the values refused; logs may leave
        the clinic, `$sync-status` and the clinic's records do not)."""
        return str(self)


def validation_problems(exc: ValidationError, root: str) -> list[tuple[str, str]]:
    """(where, message) for each problem pydantic found: the dotted location (`root` when it
    has none) and pydantic's message, without its "Value error, " prefix. Values are never
    echoed: they may be PHI or secrets."""
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or root
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "too_short" and isinstance(err.get("input"), str | SecretStr):
            # pydantic counts a secret string's length in "items": they are characters
            message = f"should have at least {err['ctx']['min_length']} characters"
        problems.append((where, message))
    return problems
