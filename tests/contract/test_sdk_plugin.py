"""The SDK's own pytest plugin fixtures (`aidbox_client`, `safe_db`, `sdk`) work against the box.

The plugin starts the App on 0.0.0.0:8081 for a whole session, so it runs in a subprocess
pytest over `sdk_plugin_project/`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).parent / "sdk_plugin_project"
APP_PORT = 8081


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_sdk_pytest_plugin_fixtures_work(box):
    if not _port_free(APP_PORT):
        pytest.skip(f"port {APP_PORT} (fixed by the SDK plugin) is busy")
    env = {
        **os.environ,
        "APP_INIT_URL": box.url,
        "APP_INIT_CLIENT_ID": box.client_id,
        "APP_INIT_CLIENT_SECRET": box.client_secret,
        "APP_ID": "sdk-plugin-test",
        "APP_SECRET": "sdk-plugin-secret",
        "APP_URL": f"http://127.0.0.1:{APP_PORT}",
        "APP_PORT": str(APP_PORT),
        "AIO_HOST": "127.0.0.1",
        "AIO_PORT": str(APP_PORT),
        "PYTHONPATH": str(PROJECT),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "aidbox_python_sdk.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-c",
        str(PROJECT / "pytest.ini"),
        "--rootdir",
        str(PROJECT),
        str(PROJECT),
        cwd=PROJECT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=100)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "3 passed" in text, text
