"""Runs the real aidbox-sync App in-process on a loopback port, registered with an Aidbox."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from app.aidbox.keys import sync_service_key
from app.main import build_app
from app.settings import load_settings
from app.sync.runner import SyncService

APP_SECRET = "app-secret-for-tests"
PSEUDONYM_KEY = "test-pseudonym-key-0123456789abcdef"


@dataclass
class RunningApp:
    """A started App and where to reach it."""

    url: str
    app: web.Application
    settings_env: dict[str, str]

    @property
    def service(self) -> SyncService:
        """The sync service (local role)."""
        return self.app[sync_service_key]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def free_port() -> int:
    """A loopback port that was free a moment ago, for a process that binds it next."""
    with _free_socket() as sock:
        return sock.getsockname()[1]


def sdk_env(aidbox_url: str, port: int, app_secret: str = APP_SECRET) -> dict[str, str]:
    """aidbox-python-sdk's variables: register with `aidbox_url` as root, serve on `port`."""
    return {
        "APP_INIT_URL": aidbox_url,
        "APP_INIT_CLIENT_ID": "root",
        "APP_INIT_CLIENT_SECRET": "secret",
        "APP_ID": "aidbox-sync",
        "APP_URL": f"http://127.0.0.1:{port}",
        "APP_PORT": str(port),
        "APP_SECRET": app_secret,
        "AIO_HOST": "127.0.0.1",
        "AIO_PORT": str(port),
    }


def app_env(
    aidbox_url: str,
    port: int,
    *,
    role: str = "local",
    global_url: str | None = None,
    instance_id: str = "clinic-a",
    **extra: Any,
) -> dict[str, str]:
    """Environment of an App process registered with `aidbox_url` as root."""
    env = {
        **sdk_env(aidbox_url, port),
        "SYNC_ROLE": role,
        # The suite starts many Apps in one process: none may freeze the suite's objects.
        "SYNC_GC_FREEZE": "false",
    }
    if role == "local":
        env.update(
            SYNC_INSTANCE_ID=instance_id,
            SYNC_GLOBAL_URL=global_url or "",
            SYNC_GLOBAL_CLIENT_ID=instance_id,
            SYNC_GLOBAL_CLIENT_SECRET=f"{instance_id}-secret",
            SYNC_PSEUDONYM_KEY=PSEUDONYM_KEY,
            SYNC_RETRY_BASE_DELAY="0.01",
            SYNC_RETRY_MAX_DELAY="0.05",
            SYNC_RETRY_ATTEMPTS="8",
            SYNC_SETTLE_TIMEOUT="0.3",
            # Small batches, so every test crosses transaction boundaries.
            SYNC_BATCH_MAX_ENTRIES="5",
        )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@asynccontextmanager
async def running_app(aidbox_url: str, **kwargs: Any) -> AsyncIterator[RunningApp]:
    """Start the App (registration included) and stop it afterwards."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    env = app_env(aidbox_url, port, **kwargs)
    app = build_app(load_settings(**env))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield RunningApp(f"http://127.0.0.1:{port}", app, env)
    finally:
        await runner.cleanup()
