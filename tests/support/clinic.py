"""Clinic data for push tests (Aidbox format) and the expected view from the global."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from aidbox_python_sdk.db import parse_psql_response

from app.aidbox.client import AidboxClient
from app.anonymize import Plan, PseudonymKey, anonymize, compile_profile, load_profile
from tests.support.apps import PSEUDONYM_KEY

CLINIC = "clinic-a"
KEY = PseudonymKey(secret=PSEUDONYM_KEY.encode(), namespace=CLINIC)  # clinic-a's


def safe_harbor() -> Plan:
    """The plan of the default profile."""
    return compile_profile(load_profile("safe-harbor"))


def patient(pid: str, family: str = "Smith", **extra: Any) -> dict[str, Any]:
    """A Patient full of PHI."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": ["Alice"]}],
        "telecom": [{"system": "phone", "value": "+1-555-0100"}],
        "birthDate": "1980-04-12",
        "gender": "female",
        "address": [{"line": ["12 Elm Street"], "city": "Springfield", "postalCode": "02139"}],
        **extra,
    }


def encounter(eid: str, pid: str) -> dict[str, Any]:
    """An Encounter of a patient."""
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": "AMB", "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode"},
        "subject": {"resourceType": "Patient", "id": pid},
        "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-01T10:30:00Z"},
    }


def observation(oid: str, pid: str, value: float = 72.0) -> dict[str, Any]:
    """A heart-rate Observation of a patient."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"resourceType": "Patient", "id": pid, "display": "Alice Smith"},
        "effective": {"dateTime": "2024-03-01T10:05:00Z"},
        "value": {"Quantity": {"value": value, "unit": "/min"}},
    }


def questionnaire_response(qid: str, pid: str) -> dict[str, Any]:
    """A QuestionnaireResponse with the clinic's custom PHI attributes and PHI answers."""
    return {
        "resourceType": "QuestionnaireResponse",
        "id": qid,
        "status": "completed",
        "subject": {"resourceType": "Patient", "id": pid},
        "patientFirstName": "Alice",
        "patientLastName": "Smith",
        "item": [
            {
                "linkId": "email",
                "text": "Personal Email",
                "answer": [{"value": {"string": "alice@example.org"}}],
            },
            {
                "linkId": "smoker",
                "text": "Do you smoke?",
                "answer": [{"value": {"boolean": False}}],
            },
        ],
    }


def strip_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    """A stored resource without what the server adds (versionId, lastUpdated)."""
    out = dict(resource)
    meta = {
        k: v
        for k, v in (out.pop("meta", None) or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    if meta:
        out["meta"] = meta
    return out


async def resources(client: AidboxClient, resource_type: str) -> dict[str, dict[str, Any]]:
    """Every current resource of a type, by id, without server meta."""
    resp = await client.call("GET", f"/{resource_type}", params={"_count": "1000"})
    return {
        e["resource"]["id"]: strip_server_meta(e["resource"])
        for e in (resp.body or {}).get("entry", [])
    }


def clinic_key(instance_id: str) -> PseudonymKey:
    """The pseudonym key of a clinic's App in the tests (the same secret, its own namespace)."""
    return PseudonymKey(secret=PSEUDONYM_KEY.encode(), namespace=instance_id)


async def expected_global(
    local: AidboxClient,
    resource_types: list[str],
    plan: Plan | None = None,
    key: PseudonymKey = KEY,
) -> dict[str, dict[str, dict[str, Any]]]:
    """What the global must hold of a clinic: its anonymized current state."""
    plan = plan or safe_harbor()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for rtype in resource_types:
        anonymized = [anonymize(r, plan, key) for r in (await resources(local, rtype)).values()]
        out[rtype] = {a["id"]: strip_server_meta(a) for a in anonymized}
    return out


async def global_state(
    global_: AidboxClient, resource_types: list[str], namespace: str | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """What the global holds (of one clinic's namespace, when given)."""
    held = {rtype: await resources(global_, rtype) for rtype in resource_types}
    if namespace is None:
        return held
    return {
        rtype: {i: r for i, r in by_id.items() if i.startswith(f"{namespace}-")}
        for rtype, by_id in held.items()
    }


class Version(NamedTuple):
    """One stored version of a resource: its txid, the resource as it was then (Aidbox
    format, without server meta; for a deletion, the body it deleted), and whether it is a
    deletion."""

    txid: int
    resource: dict[str, Any]
    deleted: bool


async def versions(client: AidboxClient, resource_type: str) -> dict[str, list[Version]]:
    """Every stored version of every resource of a type, by id, oldest first, read from
    Aidbox's storage tables (database/overview.md: the live row and the history rows, a
    deletion being a history row of its own txid that keeps the body it deleted), so the
    versions of deleted resources too."""
    table = resource_type.lower()
    cols = "id, txid, status, resource"
    query = f"SELECT {cols} FROM {table} UNION ALL SELECT {cols} FROM {table}_history"
    resp = await client.call("POST", "/$psql", json={"query": f"{query} ORDER BY txid"})
    out: dict[str, list[Version]] = {}
    for row in parse_psql_response(resp.body)[0]:
        body = row["resource"]
        if isinstance(body, str):
            body = orjson.loads(body)
        resource = {"resourceType": resource_type, "id": row["id"], **body}
        version = Version(int(row["txid"]), resource, row["status"] == "deleted")
        out.setdefault(row["id"], []).append(version)
    return out


async def last_txid(client: AidboxClient) -> int:
    """The last txid handed out (transaction_id_seq moves on every write transaction)."""
    # Until the first nextval, last_value is the value that will be handed out next.
    query = "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS last_value"
    resp = await client.call("POST", "/$psql", json={"query": f"{query} FROM transaction_id_seq"})
    return int(parse_psql_response(resp.body)[0][0]["last_value"])


async def put_all(client: AidboxClient, resources: list[dict[str, Any]], size: int = 100) -> None:
    """PUT the resources in transactions of `size`, in order (Aidbox format,
    api/batch-transaction.md), as an EHR or an import writes them."""
    for start in range(0, len(resources), size):
        entries = [
            {"request": {"method": "PUT", "url": f"/{r['resourceType']}/{r['id']}"}, "resource": r}
            for r in resources[start : start + size]
        ]
        await client.call("POST", "/", json={"type": "transaction", "entry": entries})


# A minimal stored body (Aidbox's `resource` column), and the next txid, for store_rows.
FEMALE = """'{"gender": "female"}'::jsonb"""
NEXT_TXID = "nextval('transaction_id_seq')"


async def store_rows(client: AidboxClient, resource_type: str, rows: str) -> None:
    """Create resources straight in Aidbox's storage table, as an import does
    (database/overview.md): `rows` is a SQL query of (id, txid, resource) columns, the
    resource without id, resourceType and meta."""
    sql = (
        f"INSERT INTO {resource_type.lower()} "
        "(id, txid, ts, cts, resource_type, status, resource) "
        f"SELECT r.id, r.txid, now(), now(), '{resource_type}', 'created', r.resource "
        f"FROM ({rows}) AS r(id, txid, resource)"
    )
    resp = await client.call("POST", "/$psql", params={"execute": "true"}, json={"query": sql})
    assert "error" not in str(resp.body).lower(), resp.body


async def bulk_load(client: AidboxClient, resource_type: str, ids: list[str]) -> None:
    """Write resources in one database transaction, all with one txid, as a bulk load does
    (database/overview.md: a transaction's rows share its txid)."""
    values = ", ".join(f"('{i}')" for i in ids)
    rows = (
        f"SELECT v.id, tx.txid, {FEMALE} "
        f"FROM (SELECT {NEXT_TXID} AS txid) AS tx, (VALUES {values}) AS v(id)"
    )
    await store_rows(client, resource_type, rows)


async def pull(local_root: AidboxClient) -> dict[str, dict[str, Any]]:
    """Run the clinic's pull streams through its operation; fail on any stream error."""
    resp = await local_root.call("POST", "/$sync", json={"direction": "pull"})
    errors = [s for s in resp.body["streams"] if s.get("error")]
    assert not errors, errors
    return {s["stream"]: s for s in resp.body["streams"]}
