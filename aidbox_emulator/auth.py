"""Authentication (HTTP Basic with Client resources) and AccessPolicy authorization.

access-control/authorization/access-policies.md: a policy is linked to Client / User /
Operation resources, or to nothing (global); a request is allowed if any applicable policy
allows it, else 403. The root client (BOX_ROOT_CLIENT_ID/SECRET) bypasses policies.
Engines are pluggable (ENGINES); `allow` is implemented, others deny until added.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from .model import Req
from .outcome import AidboxError

log = logging.getLogger("aidbox_emulator")

Engine = Callable[[asyncpg.Connection, dict[str, Any], dict[str, Any]], Awaitable[bool]]


async def _allow(conn: asyncpg.Connection, policy: dict[str, Any], request: dict[str, Any]) -> bool:
    return True


# engine name → evaluator(conn, policy, request object) — add `matcho`, `sql` here.
ENGINES: dict[str, Engine] = {"allow": _allow}


def unauthorized() -> AidboxError:
    """401 OperationOutcome for missing or wrong credentials."""
    return AidboxError.of(401, "login", "Authentication required", outcome_id="unauthorized")


def forbidden() -> AidboxError:
    """403 OperationOutcome (smart-scopes-for-limiting-access.md shows id/code `forbidden`)."""
    return AidboxError.of(403, "forbidden", "Forbidden", outcome_id="forbidden")


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


async def authenticate(
    conn: asyncpg.Connection, headers: Mapping[str, str], root_id: str, root_secret: str
) -> dict[str, Any] | None:
    """The caller's Client resource, None for the root client; 401 otherwise."""
    creds = _basic_credentials(headers.get("authorization"))
    if creds is None:
        raise unauthorized()
    client_id, secret = creds
    if client_id == root_id and hmac.compare_digest(secret, root_secret):
        return None
    row = await conn.fetchrow("SELECT id, resource FROM client WHERE id = $1", client_id)
    stored = row["resource"].get("secret") if row else None
    if not isinstance(stored, str) or not hmac.compare_digest(secret, stored):
        raise unauthorized()
    return {"resourceType": "Client", "id": row["id"], **row["resource"]}


def root_client(root_id: str) -> dict[str, Any]:
    """The Client resource shown to Apps for calls made by the root client."""
    return {"resourceType": "Client", "id": root_id}


def _applies(policy: dict[str, Any], client: dict[str, Any], operation_id: str) -> bool:
    links = policy.get("link") or []
    if not links:
        return True
    return any(
        (link.get("resourceType"), link.get("id"))
        in {("Client", client["id"]), ("Operation", operation_id)}
        for link in links
        if isinstance(link, dict)
    )


def request_object(req: Req, client: dict[str, Any], operation_id: str) -> dict[str, Any]:
    """The request as policies see it (access-policies.md, "Request object")."""
    return {
        "request-method": req.method.lower(),
        "uri": "/" + ("fhir/" if req.fhir else "") + req.path.lstrip("/"),
        "params": dict(req.query),
        "resource": req.body,
        "headers": dict(req.headers),
        "client": client,
        "operation": {"id": operation_id},
    }


async def authorize(
    conn: asyncpg.Connection, client: dict[str, Any] | None, operation_id: str, req: Req
) -> None:
    """Pass for root; otherwise 403 unless an applicable AccessPolicy allows the request."""
    if client is None:
        return
    request = request_object(req, client, operation_id)
    for row in await conn.fetch("SELECT id, resource FROM accesspolicy ORDER BY id"):
        policy = {"id": row["id"], **row["resource"]}
        if not _applies(policy, client, operation_id):
            continue
        engine = ENGINES.get(str(policy.get("engine")))
        if engine is None:
            log.warning(
                "AccessPolicy %s: engine %r not emulated; it denies",
                policy["id"],
                policy.get("engine"),
            )
            continue
        if await engine(conn, policy, request):
            return
    raise forbidden()
