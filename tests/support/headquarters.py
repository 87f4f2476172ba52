"""Headquarters in tests: the global Aidbox with the App in global role, registering clinics
through the product's own operation and handing their secrets to their Apps."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

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
