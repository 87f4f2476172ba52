"""Contract tests: HTTP only, against the emulator or a real Aidbox.

Set AIDBOX_URL, AIDBOX_CLIENT_ID, AIDBOX_CLIENT_SECRET to run them against a real Aidbox;
tests marked `emulator_only` (fault injection) are then skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

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

    async def client_with_policies(
        self,
        client_id: str,
        *policies: dict[str, Any],
        secret: str = "s3cret",
        check: bool = True,
    ) -> tuple[str, str]:
        """A Basic-auth Client and AccessPolicies linked to it; returns its credentials.

        Policy `i` gets id `<client_id>-p<i>`. Links are added here, so tests never create a
        global policy on a shared Aidbox. `check=False` for policies Aidbox may refuse to store.
        """
        answer = await self.put(
            f"/Client/{client_id}", {"secret": secret, "grant_types": ["basic"]}
        )
        assert answer.status in (200, 201), answer.body
        for i, policy in enumerate(policies):
            linked = {**policy, "link": [{"resourceType": "Client", "id": client_id}]}
            stored = await self.put(f"/AccessPolicy/{client_id}-p{i}", linked)
            assert stored.status in (200, 201) or not check, stored.body
        return (client_id, secret)

    async def version(self, resource_type: str) -> int:
        """The current `$changes` version of a type."""
        answer = await self.get(f"/{resource_type}/$changes")
        assert answer.status == 200, answer.body
        return int(answer.body["version"])


@asynccontextmanager
async def _open_box(pg_server_dsn: str, emulator_template_db: str) -> AsyncIterator[Box]:
    async with aiohttp.ClientSession() as http:
        if REAL_AIDBOX:
            yield Box(
                REAL_AIDBOX.rstrip("/"),
                os.environ["AIDBOX_CLIENT_ID"],
                os.environ["AIDBOX_CLIENT_SECRET"],
                http,
            )
            return
        async with fresh_emulator(pg_server_dsn, emulator_template_db) as emu:
            yield Box(emu.url, emu.root_client_id, emu.root_client_secret, http, emu)


def _skip_on_real_aidbox(request: pytest.FixtureRequest) -> None:
    if REAL_AIDBOX and request.node.get_closest_marker("emulator_only"):
        pytest.skip("needs the emulator's internals")


@pytest.fixture
async def box(
    request: pytest.FixtureRequest, pg_server_dsn: str, emulator_template_db: str
) -> AsyncIterator[Box]:
    """A real Aidbox (AIDBOX_URL set) or a fresh emulator, with an HTTP session."""
    _skip_on_real_aidbox(request)
    async with _open_box(pg_server_dsn, emulator_template_db) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_box(pg_server_dsn: str, emulator_template_db: str) -> AsyncIterator[Box]:
    """One Aidbox (or emulator) for a whole module, as a real shared Aidbox would be.

    For modules whose tests run in the module's event loop
    (`pytestmark = pytest.mark.asyncio(loop_scope="module")`) and touch only what their `uid`
    names; such a module defines `box` as `shared_box` below.
    """
    async with _open_box(pg_server_dsn, emulator_template_db) as opened:
        yield opened


@pytest.fixture
def shared_box(request: pytest.FixtureRequest, module_box: Box) -> Box:
    """`module_box`, skipping `emulator_only` tests against a real Aidbox."""
    _skip_on_real_aidbox(request)
    return module_box


@pytest.fixture
def uid() -> str:
    """A unique suffix, so tests never collide on a shared real Aidbox."""
    return uuid.uuid4().hex[:10]
