"""Registering a clinic at headquarters: its AidboxInstance and its Client, in one step.

What a registered clinic may then do is decided by the global Aidbox itself, through the
shipped AccessPolicy ``aidbox-sync-clinics`` (``manifest/policies/``), which joins the caller's
Client with the AidboxInstance of the same id: suspending a clinic is one field change
(``status: suspended``), and deleting its AidboxInstance revokes everything, both on the next
request (docs/access-control.md).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.aidbox.client import AidboxClient
from app.aidbox.manifest import load_manifest
from app.errors import SyncError
from app.model import AidboxInstance, Direction, InstanceId, InstanceStatus, SyncConfig
from app.registry.types import UnregistrableTypes, unregistrable
from app.settings import Role

log = logging.getLogger("aidbox_sync.registry")

# 256 bits from the OS's CSPRNG, URL-safe: goes in a Basic header as is.
_SECRET_BYTES = 32


class RegistrationConflict(SyncError, ValueError):
    """The registration would hand an existing Client, not a clinic's, to a clinic."""


def default_types() -> list[str]:
    """The types a clinic pushes by default: those of the clinic's shipped SyncConfig."""
    seed = load_manifest(Role.LOCAL).seeds["SyncConfig"]["default"]
    return [s.type for s in SyncConfig.model_validate(seed).enabled_streams(Direction.PUSH)]


class Registration(BaseModel):
    """``$register-instance`` input. Fields left out keep their registered value (or the
    default: active, the default push types)."""

    model_config = ConfigDict(extra="forbid")
    id: InstanceId
    name: str | None = Field(None, min_length=1)
    status: InstanceStatus | None = None
    region: str | None = None
    country: str | None = None
    # Only clinical data types (app/registry/types.py); others are refused by `register`.
    types: list[str] | None = Field(None, min_length=1)
    rotateSecret: bool = False


@dataclass(frozen=True)
class Registered:
    """What a registration did; ``secret`` is set only when a secret was generated."""

    instance: AidboxInstance
    created: bool
    secret: str | None

    def as_json(self) -> dict[str, Any]:
        """The operation's answer: the secret is in it once, and stored nowhere in clear."""
        client: dict[str, Any] = {"resourceType": "Client", "id": self.instance.id}
        if self.secret is not None:
            client["secret"] = self.secret
        return {
            "instance": self.instance.model_dump(mode="json", exclude_none=True),
            "created": self.created,
            "client": client,
        }


async def register(client: AidboxClient, registration: Registration) -> Registered:
    """Create or update a clinic's AidboxInstance and Client (idempotent).

    The Client gets a new secret when it is created or ``rotateSecret`` asks for one (the old
    secret then stops working at once); otherwise it is left as it is: a Client read back has
    no usable secret, so it is never read, changed and written again.

    Types that are not clinical data (app/registry/types.py) are refused before anything is
    read or written (``UnregistrableTypes``); such types in an instance registered before the
    rule, or edited by hand, are dropped when ``types`` is left out, so that a suspension
    always goes through (the access policy refuses writes of them in any case).
    """
    instance_id = registration.id
    refused = unregistrable(registration.types or ())
    if refused:
        raise UnregistrableTypes(refused)
    existing = await client.call("GET", f"/AidboxInstance/{instance_id}", accept=(404, 410))
    known_client = await client.call("GET", f"/Client/{instance_id}", accept=(404, 410))
    if known_client.status == 200 and existing.status != 200:
        raise RegistrationConflict(
            f"Client/{instance_id} exists and belongs to no clinic: register under another id"
        )
    current = existing.body if existing.status == 200 else {}
    given = registration.model_dump(exclude_none=True, exclude={"id", "rotateSecret"})
    if not current and "name" not in given:
        raise ValueError("a new clinic needs a name")
    stored_types = current.get("types")
    if "types" not in given and isinstance(stored_types, list):
        stale = unregistrable(stored_types)
        if stale:
            log.warning(
                "clinic %s: %s may not be registered, dropped from its types",
                instance_id,
                ", ".join(stale),
            )
            kept = [t for t in stored_types if not unregistrable([t])]
            current = {**current, "types": kept}
    instance = AidboxInstance.model_validate(
        {
            "status": "active",
            "types": default_types(),
            **{k: v for k, v in current.items() if k not in ("meta", "resourceType")},
            **given,
            "id": instance_id,
            "client": {"resourceType": "Client", "id": instance_id},
        }
    )
    # The Client first: the AidboxInstance references it.
    secret = None
    if known_client.status != 200 or registration.rotateSecret:
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        await client.call(
            "PUT",
            f"/Client/{instance_id}",
            json={"secret": secret, "grant_types": ["basic"], "active": True},
        )
    body = instance.model_dump(mode="json", exclude_none=True)
    try:
        await client.call("PUT", f"/AidboxInstance/{instance_id}", json=body)
    except Exception:
        if known_client.status != 200:  # a Client of no clinic would refuse a new attempt
            await client.request("DELETE", f"/Client/{instance_id}")
        raise
    log.info(
        "clinic %s %s (%s)%s",
        instance_id,
        "registered" if existing.status != 200 else "updated",
        instance.status,
        ", new secret" if secret is not None else "",
    )
    return Registered(instance, existing.status != 200, secret)
