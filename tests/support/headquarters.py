"""Headquarters in tests: the global Aidbox with the App in global role, registering clinics
through the product's own operation and handing their secrets to their Apps."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from app.aidbox.client import AidboxClient
from tests.support.apps import RunningApp, running_app

CLINIC = "clinic-a"


@dataclass
class Headquarters:
    """The global Aidbox with the App in global role, and the secrets of registered clinics."""

    app: RunningApp
    root: AidboxClient
    secrets: dict[str, str]

    async def register(self, instance_id: str, **fields: object) -> dict:
        """Register (or update) a clinic through `$register-instance`; keep a new secret."""
        resp = await self.root.call(
            "POST", "/$register-instance", json={"id": instance_id, **fields}
        )
        secret = resp.body["client"].get("secret")
        if secret is not None:
            self.secrets[instance_id] = secret
        return resp.body

    def clinic_app(
        self, local_url: str, instance_id: str = CLINIC, **env: str
    ) -> AbstractAsyncContextManager[RunningApp]:
        """A clinic's App in local role with the credentials registration gave it."""
        return running_app(
            local_url,
            global_url=self.app.settings_env["APP_INIT_URL"],
            instance_id=instance_id,
            **{"SYNC_GLOBAL_CLIENT_SECRET": self.secrets[instance_id], **env},
        )


def organization(oid: str, country: str | None, name: str = "Org") -> dict[str, Any]:
    """An Organization of headquarters, in a country (address.country) or of every clinic."""
    body: dict[str, Any] = {"resourceType": "Organization", "id": oid, "name": name}
    if country:
        body["address"] = [{"city": "Capital", "country": country}]
    return body


def location(lid: str, org: str, country: str | None, name: str | None = None) -> dict[str, Any]:
    """A Location of headquarters run by Organization `org`, in a country or of every clinic."""
    body: dict[str, Any] = {
        "resourceType": "Location",
        "id": lid,
        "name": name or f"Site of {org}",
        "managingOrganization": {"resourceType": "Organization", "id": org},
    }
    if country:
        body["address"] = {"country": country}
    return body


def area(code: str, name: str, country: str | None = None) -> dict[str, Any]:
    """A country, or a subdivision of `country`, of headquarters' lists (AdministrativeArea)."""
    body: dict[str, Any] = {
        "resourceType": "AdministrativeArea",
        "id": code,
        "code": code,
        "name": name,
        "kind": "subdivision" if country else "country",
        "status": "active",
    }
    if country:
        body["country"] = country
    return body
