"""`POST /$psql` in the 2604+ shape the SDK parses (aidbox_python_sdk.db.parse_psql_response)."""

from __future__ import annotations

import pytest
from aidbox_python_sdk.db import parse_psql_response
from aidbox_python_sdk.db_migrations import sdk_migrations

# One emulator for the module, as a shared real Aidbox would be: every test touches only what
# its `uid` names (tests/contract/conftest.py `shared_box`).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


async def test_psql_rows_and_execute(box, uid):
    await box.put(f"/Patient/q-{uid}", {"gender": "male"})
    rows = await box.post(
        "/$psql",
        {"query": f"SELECT id, resource->>'gender' AS g FROM patient WHERE id = 'q-{uid}'"},
    )
    assert rows.status == 200
    assert parse_psql_response(rows.body) == [[{"id": f"q-{uid}", "g": "male"}]]
    txid = await box.post("/$psql", {"query": "SELECT last_value FROM transaction_id_seq;"})
    assert parse_psql_response(txid.body)[0][0]["last_value"] >= 1
    executed = await box.post(
        "/$psql", {"query": f"CREATE TABLE t_{uid} (x int)"}, params={"execute": "true"}
    )
    assert executed.status == 200 and executed.body["status"] == "success"


async def test_psql_error_is_reported(box):
    answer = await box.post("/$psql", {"query": "SELECT * FROM no_such_table"})
    body = answer.body[0] if isinstance(answer.body, list) else answer.body
    assert answer.status >= 400 or body["status"] == "error"


async def test_psql_is_root_only(box, uid):
    await box.put(f"/Client/c-{uid}", {"secret": "pw", "grant_types": ["basic"]})
    await box.put(
        f"/AccessPolicy/ap-{uid}",
        {"engine": "allow", "link": [{"resourceType": "Client", "id": f"c-{uid}"}]},
    )
    answer = await box.post("/$psql", {"query": "SELECT 1"}, auth=(f"c-{uid}", "pw"))
    assert answer.status == 403


async def test_sdk_drop_before_all_runs_on_the_schema(box, uid):
    # The SDK installs it through /db/migrations and its safe_db fixture calls it via $psql.
    await box.post("/db/migrations", sdk_migrations)
    before = parse_psql_response(
        (await box.post("/$psql", {"query": "SELECT last_value FROM transaction_id_seq"})).body
    )[0][0]
    await box.put(f"/Patient/keep-{uid}", {})
    await box.put(f"/Patient/keep-{uid}", {"active": True})
    dropped = await box.post(
        "/$psql",
        {"query": f"SELECT drop_before_all({before['last_value']});"},
        params={"execute": "true"},
    )
    assert dropped.body["status"] == "success", dropped.body
    assert (await box.get(f"/Patient/keep-{uid}")).status in (404, 410)


async def test_psql_reads_the_table_of_a_type_nothing_touched_yet(box):
    # Aidbox keeps a table and a history table for every type (database/database-schema.md):
    # raw SQL over a type no request has used reads them, empty, rather than failing.
    answer = await box.post(
        "/$psql",
        {
            "query": "SELECT (SELECT count(*) FROM researchdefinition) AS live, "
            "(SELECT count(*) FROM ResearchDefinition_history) AS history"
        },
    )
    assert answer.body["status"] == "success", answer.body
    assert parse_psql_response(answer.body) == [[{"live": 0, "history": 0}]]


async def test_psql_sees_every_types_table_in_the_catalog(box):
    # database/database-schema.md: one table per resource type, in the public schema.
    answer = await box.post(
        "/$psql",
        {
            "query": "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_name IN "
            "('medicinalproductpackaged', 'medicinalproductpackaged_history') "
            "ORDER BY table_name"
        },
    )
    assert parse_psql_response(answer.body) == [
        [
            {"table_name": "medicinalproductpackaged"},
            {"table_name": "medicinalproductpackaged_history"},
        ]
    ]
