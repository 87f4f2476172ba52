"""A small typed HTTP client for Aidbox's REST API (Aidbox format at `/`).

It moves bytes, classifies failures, and retries the transient ones under the RetryPolicy it
was given. Errors carry the OperationOutcome's diagnostics, never a request body (which may
hold PHI).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from app.errors import SyncError

JSON = dict[str, Any]
log = logging.getLogger("aidbox_sync.http")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (spreads retrying clinics)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Response:
    """Status and parsed JSON body (None when empty or not JSON)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        """2xx, or 304 (not modified)."""
        return 200 <= self.status < 300 or self.status == 304


# The App's own resource types: their ids name streams and records, never a patient.
# The App's own resources whose ids say nothing of a patient (a SyncQuarantine id is a hash of
# a local id: not among them, app/sync/quarantine.py).
_OWN_TYPES = frozenset({"ChangesInfo", "SyncConfig", "AnonymizationProfile"})


def hide_ids(path: str) -> str:
    """A path as it may be logged where local ids may not (logs leave the clinic; a local id
    may be an MRN): `/Patient/mrn-1/_history/2` -> `/Patient/…/_history/2`. A query string
    (`?_id=mrn-1`) is hidden whole, and the FHIR API's `/fhir` prefix is read past
    (api/rest-api/other/aidbox-and-fhir-formats.md)."""
    path, query, _ = path.partition("?")
    parts = path.split("/")
    at = 2 if len(parts) > 1 and parts[1] == "fhir" else 1
    named = parts[at + 1] if len(parts) > at + 1 else ""
    if named and not named.startswith("$") and parts[at] not in _OWN_TYPES:
        parts[at + 1] = "…"
    return "/".join(parts) + ("?…" if query else "")


class AidboxError(SyncError):
    """Aidbox answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Any, *, shown: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        super().__init__(f"{method} {shown or path} -> {status}: {outcome_summary(body)}")
        self._logged = f"{method} {shown or path} -> {status}: {outcome_codes(body)}"

    @property
    def logged(self) -> str:
        """The error with the OperationOutcome's codes and paths, not its diagnostics."""
        return self._logged

    @property
    def transient(self) -> bool:
        """Worth retrying: server errors, and conflicts of concurrent (SERIALIZABLE) writes.

        Aidbox runs writes at SERIALIZABLE isolation and answers conflicts it cannot serialise
        with an error the client must retry (api/batch-transaction.md, crud/update.md).
        """
        return self.status >= 500 or self.status == 429 or is_serialization_conflict(self.body)


def is_transient(exc: BaseException) -> bool:
    """Connection problems, timeouts, 5xx and serialization conflicts."""
    return isinstance(exc, AidboxUnavailable) or (isinstance(exc, AidboxError) and exc.transient)


class AidboxUnavailable(SyncError):
    """No answer: connection refused or dropped, or a timeout. Always transient."""


def outcome_summary(body: Any, limit: int = 300) -> str:
    """One line from an OperationOutcome (diagnostics and expressions), safe to log."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in body.get("issue") or []:
            text = issue.get("diagnostics") or issue.get("code") or "error"
            where = ",".join(issue.get("expression") or [])
            parts.append(f"{text} ({where})" if where else text)
        summary = "; ".join(parts) or "OperationOutcome without issues"
    else:
        summary = "non-OperationOutcome error body"
    return summary[:limit]


def outcome_codes(body: Any) -> str:
    """An OperationOutcome's issue codes and the paths they name, without its diagnostics,
    which may quote the values refused: what of a refusal a log line may carry."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in body.get("issue") or []:
            code = issue.get("code") if isinstance(issue.get("code"), str) else "error"
            where = ",".join(e for e in issue.get("expression") or [] if isinstance(e, str))
            parts.append(f"{code} ({where})" if where else code)
        return ("; ".join(parts) or "OperationOutcome without issues")[:300]
    return "non-OperationOutcome error body"


# PostgreSQL's messages for SQLSTATE 40001 / 40P01, which Aidbox passes on in the
# OperationOutcome's diagnostics (emulator choice documented in docs/aidbox-contract-notes.md).
_CONFLICT_MESSAGES = ("could not serialize access", "deadlock detected")


def is_serialization_conflict(body: Any) -> bool:
    """True for the OperationOutcome of a serialization failure or a deadlock.

    Only issue diagnostics are looked at, for PostgreSQL's message: ids and values elsewhere in
    a body (a pseudonym may contain "40001") must not make a refusal look transient.
    """
    if not isinstance(body, dict):
        return False
    return any(
        message in str(issue.get("diagnostics") or "")
        for issue in body.get("issue") or []
        if isinstance(issue, dict)
        for message in _CONFLICT_MESSAGES
    )


class AidboxClient:
    """Basic-auth client for one Aidbox base URL."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy = NO_RETRY,
        log_ids: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        # False for a clinic's own Aidbox: its paths carry local ids, kept out of messages.
        self._shown = (lambda path: path) if log_ids else hide_ids
        token = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._authorization = f"Basic {token}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AidboxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._authorization},
                timeout=self._timeout,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def close(self) -> None:
        """Release the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send one request; returns any HTTP answer, raises AidboxUnavailable on no answer."""
        url = self.base_url + path
        data = orjson.dumps(json) if json is not None else None
        hdrs = {"content-type": "application/json", "accept": "application/json"}
        hdrs.update(headers or {})
        try:
            async with self._ensure_session().request(
                method, url, data=data, params=params, headers=hdrs
            ) as resp:
                raw = await resp.read()
                return Response(resp.status, _parse(raw))
        except (aiohttp.ClientError, TimeoutError) as exc:
            shown = self._shown(path)
            raise AidboxUnavailable(f"{method} {shown}: {type(exc).__name__}") from None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Response:
        """Like `request`, but raises AidboxError unless 2xx/304 or a status in `accept`;
        transient failures are retried under the client's policy (the last one propagates)."""
        for attempt in range(self.retry.attempts):
            try:
                resp = await self.request(method, path, json=json, params=params, headers=headers)
                if not resp.ok and resp.status not in accept:
                    shown = self._shown(path)
                    raise AidboxError(method, path, resp.status, resp.body, shown=shown)
                return resp
            except (AidboxError, AidboxUnavailable) as exc:
                if not is_transient(exc) or attempt == self.retry.attempts - 1:
                    raise
                delay = self.retry.delay(attempt)
                log.warning("%s; retry %d in %.2fs", exc.logged, attempt + 1, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
