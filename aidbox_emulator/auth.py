"""Authentication (HTTP Basic with Client resources) and AccessPolicy authorization.

access-control/authentication/basic-http-authentication.md: `Authorization: Basic
base64(Client.id:Client.secret)`, and the Client needs `basic` in `grant_types`;
core-module-resources.md §Client: a Client with `active: false` cannot authenticate.
access-control/authorization/access-policies.md: policies linked to the request's Client or
Operation, and global ones (no links), are evaluated in turn; the first that allows wins; none
→ 403, or 401 for a request without credentials (anonymous requests are evaluated too: an
`allow` policy linked to an Operation makes it public). The root client
(BOX_ROOT_CLIENT_ID/SECRET) bypasses policies. Engines: policy_engines.py.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from .credentials import VerifiedCredentials
from .model import Req
from .outcome import AidboxError
from .policy_engines import Evaluation, PolicyTimeout, UnknownEngine, evaluate

log = logging.getLogger("aidbox_emulator")

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the root client, a Client, or nobody (anonymous)."""

    client: dict[str, Any] | None  # the Client resource, without its secret
    root: bool = False

    @property
    def anonymous(self) -> bool:
        """No credentials were sent."""
        return self.client is None and not self.root


ANONYMOUS = Caller(None)


def unauthorized() -> AidboxError:
    """401 OperationOutcome for missing or wrong credentials."""
    return AidboxError.of(401, "login", "Authentication required", outcome_id="unauthorized")


def forbidden() -> AidboxError:
    """403 OperationOutcome (smart-scopes-for-limiting-access.md shows id/code `forbidden`)."""
    return AidboxError.of(403, "forbidden", "Forbidden", outcome_id="forbidden")


def refused(caller: Caller) -> AidboxError:
    """What a request no policy allows gets: 401 without credentials, 403 with them."""
    return unauthorized() if caller.anonymous else forbidden()


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def public_client(client_id: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The Client resource as policies and Apps see it: never its secret."""
    body = {k: v for k, v in resource.items() if k != "secret"}
    return {"resourceType": "Client", "id": client_id, **body}


async def authenticate(
    conn: asyncpg.Connection,
    headers: Mapping[str, str],
    root_id: str,
    root_secret: str,
    verified: VerifiedCredentials,
) -> Caller:
    """The caller; no `Authorization` header → anonymous; any credentials that fail → 401.

    Wrong credentials never fall back to anonymous. The Client row is read on every request,
    so a deactivated Client or a rotated secret takes effect on the next one.
    """
    header = headers.get("authorization")
    if header is None:
        return ANONYMOUS
    creds = _basic_credentials(header)
    if creds is None:
        raise unauthorized()
    client_id, secret = creds
    if client_id == root_id and hmac.compare_digest(secret.encode(), root_secret.encode()):
        return Caller(root_client(root_id), root=True)
    row = await conn.fetchrow("SELECT id, resource FROM client WHERE id = $1", client_id)
    if row is None:
        raise unauthorized()
    resource = row["resource"]
    grant_types = resource.get("grant_types")
    if (
        resource.get("active") is False
        or not isinstance(grant_types, list)
        or "basic" not in grant_types
        or not await verified.verify(resource.get("secret"), secret)
    ):
        raise unauthorized()
    return Caller(public_client(row["id"], resource))


def root_client(root_id: str) -> dict[str, Any]:
    """The Client resource shown to Apps for calls made by the root client."""
    return {"resourceType": "Client", "id": root_id}


def _link_target(link: Any) -> tuple[Any, Any] | None:
    """(resourceType, id) of a link: `{resourceType, id}` or `{reference: "Type/id"}`.

    access-policies.md shows the first form, accesspolicy-examples.md the second.
    """
    if not isinstance(link, dict):
        return None
    if "reference" in link and isinstance(link["reference"], str):
        rtype, sep, rid = link["reference"].partition("/")
        return (rtype, rid) if sep else None
    return (link.get("resourceType"), link.get("id"))


def _applies(policy: dict[str, Any], caller: Caller, operation_id: str) -> bool:
    """Global (no links), or linked to the caller's Client or to the Operation (links OR-ed)."""
    links = policy.get("link") or []
    if not links:
        return True
    mine = {("Operation", operation_id)}
    if caller.client is not None:
        mine.add(("Client", caller.client["id"]))
    return any(_link_target(link) in mine for link in links)


def _query_params(req: Req) -> dict[str, Any]:
    """Query parameters: a value, or the list of values of a repeated parameter."""
    params: dict[str, Any] = {}
    for key in req.query:
        values = req.query.getall(key)
        params[key] = values[0] if len(values) == 1 else list(values)
    return params


def uri_of(req: Req) -> str:
    """The request path as sent, `/fhir` prefix included, without the query string.

    Not normalised: `//Patient` stays `//Patient` (a bundle entry's relative url `Patient/x`
    gets its leading `/`), so a policy sees what was sent, not what the router made of it.
    """
    path = req.path if req.path.startswith("/") else "/" + req.path
    if not req.fhir:
        return path
    return "/fhir" if path == "/" else "/fhir" + path


def request_object(
    req: Req, caller: Caller, operation_id: str, route_params: Mapping[str, str]
) -> dict[str, Any]:
    """The request as policies see it (access-policies.md, "Request object structure").

    `params` is the query merged with the router's params (`resource/type`, `resource/id`, or
    an App operation's path params), the router's winning; there is no `route-params`.
    """
    body = req.wire_body if req.method in _WITH_BODY else None
    return {
        "request-method": req.method.lower(),
        "scheme": req.scheme,
        "uri": uri_of(req),
        "query-string": req.query_string,
        "params": {**_query_params(req), **route_params},
        "resource": body,
        "body": body,
        "jwt": None,
        "user": None,
        "session": None,
        "client": caller.client,
        "remote-addr": req.remote_addr,
        "headers": dict(req.headers),
        "operation": {"id": operation_id},
    }


async def authorize(
    conn: asyncpg.Connection,
    caller: Caller,
    operation_id: str,
    req: Req,
    route_params: Mapping[str, str],
) -> None:
    """Pass for root; otherwise 401/403 unless an applicable AccessPolicy allows the request.

    `conn` may be inside the bundle's write transaction: sql policies then run in a savepoint.
    """
    if caller.root:
        return
    request = request_object(req, caller, operation_id, route_params)
    for row in await conn.fetch("SELECT id, resource FROM accesspolicy ORDER BY id"):
        policy = {"id": row["id"], **row["resource"]}
        if not _applies(policy, caller, operation_id):
            continue
        try:
            if await evaluate(Evaluation(conn, request, row["id"]), policy):
                return
        except UnknownEngine as exc:
            log.warning("AccessPolicy %s: engine %r not emulated; it denies", row["id"], str(exc))
        except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
            # Inside a SERIALIZABLE bundle the whole transaction is doomed: it answers the
            # conflict (412), which its caller may retry, not a denial.
            raise
        except PolicyTimeout:
            log.error("AccessPolicy %s ran past the emulator's time limit", row["id"])
            raise AidboxError.of(
                500, "exception", f"AccessPolicy {row['id']} ran past the emulator's time limit"
            ) from None
        except Exception as exc:
            # The policy id only: messages may quote request values.
            log.warning("AccessPolicy %s failed (%s); it denies", row["id"], type(exc).__name__)
    raise refused(caller)
