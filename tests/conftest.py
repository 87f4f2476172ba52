"""Session-wide fixtures: one PostgreSQL cluster per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import postgres_server


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of the session's PostgreSQL server (embedded unless AIDBOX_SYNC_TEST_PG_DSN is set)."""
    with postgres_server() as dsn:
        yield dsn
