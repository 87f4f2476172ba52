"""Contract tests: HTTP only, against the emulator or a real Aidbox.

Set AIDBOX_URL, AIDBOX_CLIENT_ID, AIDBOX_CLIENT_SECRET to run them against a real Aidbox;
tests marked `emulator_only` (fault injection) are then skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.conftest import fresh_emulator

collect_ignore = ["sdk_plugin_project"]

REAL_AIDBOX = os.environ.get("AIDBOX_URL")


@dataclass
class Answer:
    """A response: status, parsed JSON body (None if empty), headers."""

    status: int
    body: Any
    headers: Any


@dataclass
class Box:
    """The Aidbox under test: its URL, root credentials, and the emulator when it is one."""

    url: str
    client_id: str
    client_secret: str
    http: aiohttp.ClientSession
    emulator: Any = None

    @property
    def auth(self) -> tuple[str, str]:
        """The root client's credentials."""
        return (self.client_id, self.client_secret)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | str | None = "root",
    ) -> Answer:
        """Send one request with Basic `auth` (login, password); root's by default."""
        creds = self.auth if auth == "root" else auth
        all_headers = dict(headers or {})
        if isinstance(creds, tuple):
            all_headers["Authorization"] = aiohttp.encode_basic_auth(*creds)
        async with self.http.request(
            method, self.url + path, json=json, data=data, params=params, headers=all_headers
        ) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw.strip() else None
            return Answer(resp.status, body, resp.headers)

    async def get(self, path: str, **kw: Any) -> Answer:
        """GET shorthand."""
        return await self.request("GET", path, **kw)

    async def put(self, path: str, json: Any, **kw: Any) -> Answer:
        """PUT shorthand."""
        return await self.request("PUT", path, json=json, **kw)

    async def post(self, path: str, json: Any, **kw: Any) -> Answer:
        """POST shorthand."""
        return await self.request("POST", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        """DELETE shorthand."""
        return await self.request("DELETE", path, **kw)

    async def version(self, resource_type: str) -> int:
        """The current `$changes` version of a type."""
        answer = await self.get(f"/{resource_type}/$changes")
        assert answer.status == 200, answer.body
        return int(answer.body["version"])


@pytest.fixture
async def box(
    request: pytest.FixtureRequest, pg_server_dsn: str, emulator_template_db: str
) -> AsyncIterator[Box]:
    """A real Aidbox (AIDBOX_URL set) or a fresh emulator, with an HTTP session."""
    async with aiohttp.ClientSession() as http:
        if REAL_AIDBOX:
            if request.node.get_closest_marker("emulator_only"):
                pytest.skip("needs the emulator's fault injection")
            yield Box(
                REAL_AIDBOX.rstrip("/"),
                os.environ["AIDBOX_CLIENT_ID"],
                os.environ["AIDBOX_CLIENT_SECRET"],
                http,
            )
            return
        async with fresh_emulator(pg_server_dsn, emulator_template_db) as emu:
            yield Box(emu.url, emu.root_client_id, emu.root_client_secret, http, emu)


@pytest.fixture
def uid() -> str:
    """A unique suffix, so tests never collide on a shared real Aidbox."""
    return uuid.uuid4().hex[:10]
