"""Batch/transaction bundles (api/batch-transaction.md)."""

from __future__ import annotations

import asyncio

import pytest

# One emulator for the module, as a shared real Aidbox would be: every test touches only what
# its `uid` names (tests/contract/conftest.py `shared_box`).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


def entry(method: str, url: str, resource=None, **extra):
    """A bundle entry."""
    e = {"request": {"method": method, "url": url}, **extra}
    if resource is not None:
        e["resource"] = resource
    return e


def observation_of(patient_id: str) -> dict:
    """A minimal Observation whose subject is Patient/<patient_id>."""
    return {
        "status": "final",
        "code": {"text": "x"},
        "subject": {"resourceType": "Patient", "id": patient_id},
    }


def fhir_observation_of(reference: str) -> dict:
    """The same Observation in FHIR format (for `/fhir/`), its subject a reference string."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": reference},
    }


def bundle(kind: str, *entries):
    """A Bundle of `kind` (batch | transaction)."""
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


async def test_entries_run_in_given_order_each_a_version(box, uid):
    # "Multiple resources with the same id": processed in order, history per entry.
    answer = await box.post(
        "/",
        bundle(
            "transaction",
            entry("PUT", f"/Patient/b-{uid}", {"birthDate": "2021-01-01"}),
            entry("PUT", f"/Patient/b-{uid}", {"birthDate": "2021-01-02"}),
            entry("DELETE", f"/Patient/b-{uid}"),
            entry("PUT", f"/Patient/b-{uid}", {"birthDate": "2021-01-03"}),
        ),
    )
    assert answer.status == 200, answer.body
    assert answer.body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer.body["entry"]]
    assert [s[:3] for s in statuses] == ["201", "200", "200", "201"]
    history = await box.get(f"/Patient/b-{uid}/_history")
    dates = [e["resource"].get("birthDate") for e in history.body["entry"]]
    assert dates[0] == "2021-01-03" and "2021-01-02" in dates and "2021-01-01" in dates
    assert (await box.get(f"/Patient/b-{uid}")).body["birthDate"] == "2021-01-03"


async def test_transaction_rolls_back_and_answers_first_error(box, uid):
    answer = await box.post(
        "/",
        bundle(
            "transaction",
            entry("PUT", f"/Patient/ok-{uid}", {"active": True}),
            entry(
                "POST",
                "/Observation",
                observation_of(f"missing-{uid}"),
            ),
        ),
    )
    assert answer.status == 422
    assert answer.body["resourceType"] == "OperationOutcome"
    assert (await box.get(f"/Patient/ok-{uid}")).status == 404


async def test_batch_goes_on_after_a_failing_entry(box, uid):
    answer = await box.post(
        "/",
        bundle(
            "batch",
            entry("PUT", f"/Patient/a-{uid}", {"active": True}),
            entry(
                "PUT",
                f"/Observation/o-{uid}",
                observation_of(f"missing-{uid}"),
            ),
            entry("PUT", f"/Patient/c-{uid}", {"active": True}),
        ),
    )
    assert answer.status == 200
    assert answer.body["type"] == "batch-response"
    statuses = [e["response"]["status"][:3] for e in answer.body["entry"]]
    assert statuses == ["201", "422", "201"]
    assert (await box.get(f"/Patient/c-{uid}")).status == 200


async def test_reference_to_missing_resource_is_422_with_expression(box, uid):
    # modules/profiling-and-validation/
    #   skip-validation-of-references-in-resource-using-request-header.md
    answer = await box.put(f"/fhir/Observation/o-{uid}", fhir_observation_of(f"Patient/nope-{uid}"))
    assert answer.status == 422
    issue = answer.body["issue"][0]
    assert issue["expression"] == ["Observation.subject"]
    assert issue["diagnostics"] == f"Referenced resource Patient/nope-{uid} does not exist"


async def test_reference_check_skipped_by_header_and_for_absolute_urls(box, uid):
    skipped = await box.put(
        f"/Observation/s-{uid}",
        observation_of(f"nope-{uid}"),
        headers={"aidbox-validation-skip": "reference"},
    )
    assert skipped.status == 201
    absolute = await box.put(
        f"/fhir/Observation/a-{uid}",
        fhir_observation_of(f"http://elsewhere.example/fhir/Patient/{uid}"),
    )
    assert absolute.status == 201


async def test_reference_to_earlier_entry_of_same_bundle_is_valid(box, uid):
    answer = await box.post(
        "/",
        bundle(
            "transaction",
            entry("PUT", f"/Patient/p-{uid}", {"active": True}),
            entry(
                "PUT",
                f"/Observation/o-{uid}",
                observation_of(f"p-{uid}"),
            ),
        ),
    )
    assert answer.status == 200, answer.body


async def test_reference_to_later_entry_is_422(box, uid):
    answer = await box.post(
        "/",
        bundle(
            "transaction",
            entry(
                "PUT",
                f"/Observation/o-{uid}",
                observation_of(f"p-{uid}"),
            ),
            entry("PUT", f"/Patient/p-{uid}", {"active": True}),
        ),
    )
    assert answer.status == 422


async def test_urn_uuid_full_urls_resolved_in_fhir_transaction(box, uid):
    # api/batch-transaction.md, "Using references"
    urn = f"urn:uuid:{uid}-0000-4000-8000-000000000000"
    answer = await box.post(
        "/fhir",
        bundle(
            "transaction",
            entry(
                "POST",
                "/Patient",
                {
                    "resourceType": "Patient",
                    "managingOrganization": {"reference": urn},
                },
            ),
            entry(
                "POST", "/Organization", {"resourceType": "Organization", "name": uid}, fullUrl=urn
            ),
        ),
    )
    assert answer.status == 200, answer.body
    patient, org = (e["resource"] for e in answer.body["entry"])
    assert patient["managingOrganization"] == {"reference": f"Organization/{org['id']}"}


async def test_fhir_transaction_converts_entries(box, uid):
    answer = await box.post(
        "/fhir",
        bundle(
            "transaction",
            entry("PUT", f"Patient/p-{uid}", {"resourceType": "Patient", "deceasedBoolean": False}),
        ),
    )
    assert answer.status == 200
    assert answer.body["entry"][0]["resource"]["deceasedBoolean"] is False
    stored = (await box.get(f"/Patient/p-{uid}")).body
    assert stored["deceased"] == {"boolean": False}


async def test_invalid_bundles_are_outcomes(box):
    for body in (
        {"resourceType": "Bundle", "type": "searchset"},
        {"resourceType": "Patient"},
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {}}]},
    ):
        answer = await box.post("/", body)
        assert answer.status in (400, 422), body
        assert answer.body["resourceType"] == "OperationOutcome"


async def test_db_migrations_direct_and_as_bundle_entry(box, uid):
    # api/rest-api/other/sql-endpoints.md; sdk.py apply_migrations posts it in a transaction
    migration = {"id": f"m-{uid}", "sql": f"CREATE TABLE mig_{uid} (x int)"}
    first = await box.post("/db/migrations", [migration])
    assert first.status == 200 and first.body == [migration]
    assert (await box.post("/db/migrations", [migration])).body == []
    second = {"id": f"n-{uid}", "sql": f"INSERT INTO mig_{uid} VALUES (1)"}
    answer = await box.post(
        "/", bundle("transaction", entry("POST", "/db/migrations", [migration, second]))
    )
    assert answer.status == 200, answer.body
    assert answer.body["entry"][0]["resource"] == [second]


async def test_conditional_create_entry_answers_201_then_200_and_keeps_the_first(box, uid):
    # The SDK's seed form (sdk.py create_seed_resources) inside a transaction; the App pushes a
    # referenced resource this way so that it never overwrites a newer state (app/sync/sink.py).
    pid = f"cc-{uid}"
    first = await box.post(
        "/",
        bundle("transaction", entry("POST", f"/Patient?_id={pid}", {"id": pid, "gender": "male"})),
    )
    assert first.body["entry"][0]["response"]["status"].startswith("201")
    second = await box.post(
        "/",
        bundle(
            "transaction", entry("POST", f"/Patient?_id={pid}", {"id": pid, "gender": "female"})
        ),
    )
    assert second.body["entry"][0]["response"]["status"].startswith("200")
    assert (await box.get(f"/Patient/{pid}")).body["gender"] == "male"


async def test_isolation_level_can_be_lowered_per_request(box, uid):
    # api/batch-transaction.md: x-max-isolation-level read-committed | repeatable-read |
    # serializable (default serializable).
    for level in ("read-committed", "repeatable-read", "serializable"):
        answer = await box.put(
            f"/Patient/iso-{level}-{uid}",
            {"active": True},
            headers={"x-max-isolation-level": level},
        )
        assert answer.status == 201, answer.body


# --- access control per entry -------------------------------------------------------------
# accesspolicy-examples.md #18: a policy for the bundle operation "only allows access to the
# `/fhir` endpoint itself"; each entry is checked as its own request
# (smart-scopes-for-limiting-access.md §Bundle shows a 403 on one entry of a batch). What an
# entry's request object holds is a choice (docs/aidbox-contract-notes.md); these tests pin it.

BUNDLE_OP = {"engine": "matcho", "matcho": {"operation": {"id": {"$enum": ["Transaction"]}}}}


def puts_of(prefix: str) -> dict:
    """A policy allowing `PUT /Patient/<prefix>...` (entries or plain requests)."""
    return {
        "engine": "matcho",
        "matcho": {
            "request-method": "put",
            "params": {"resource/type": "Patient", "resource/id": f"#^{prefix}"},
        },
    }


async def test_bundle_request_itself_needs_a_policy(box, uid):
    entries = [entry("PUT", f"/Patient/ok-{uid}", {"active": True})]
    no_bundle = await box.client_with_policies(f"nb-{uid}", puts_of(f"ok-{uid}"))
    assert (await box.put(f"/Patient/ok-{uid}", {}, auth=no_bundle)).status == 201
    denied = await box.post("/", bundle("transaction", *entries), auth=no_bundle)
    assert denied.status == 403
    both = await box.client_with_policies(f"b-{uid}", BUNDLE_OP, puts_of(f"ok-{uid}"))
    assert (await box.post("/", bundle("transaction", *entries), auth=both)).status == 200
    only_bundle = await box.client_with_policies(f"ob-{uid}", BUNDLE_OP)
    entries_denied = await box.post("/", bundle("transaction", *entries), auth=only_bundle)
    assert entries_denied.status == 403


async def test_transaction_with_one_denied_entry_is_403_and_nothing_lands(box, uid):
    client = await box.client_with_policies(f"c-{uid}", BUNDLE_OP, puts_of(f"ok-{uid}"))
    answer = await box.post(
        "/",
        bundle(
            "transaction",
            entry("PUT", f"/Patient/ok-{uid}", {"active": True}),
            entry("PUT", f"/Patient/no-{uid}", {"active": True}),
            entry("PUT", f"/Patient/ok-{uid}-2", {"active": True}),
        ),
        auth=client,
    )
    assert answer.status == 403
    assert answer.body["resourceType"] == "OperationOutcome"
    for pid in (f"ok-{uid}", f"no-{uid}", f"ok-{uid}-2"):
        assert (await box.get(f"/Patient/{pid}")).status == 404, pid


async def test_batch_with_one_denied_entry_answers_403_there_and_runs_the_rest(box, uid):
    client = await box.client_with_policies(f"c-{uid}", BUNDLE_OP, puts_of(f"ok-{uid}"))
    answer = await box.post(
        "/",
        bundle(
            "batch",
            entry("PUT", f"/Patient/ok-{uid}", {"active": True}),
            entry("PUT", f"/Patient/no-{uid}", {"active": True}),
            entry("PUT", f"/Patient/ok-{uid}-2", {"active": True}),
        ),
        auth=client,
    )
    assert answer.status == 200, answer.body
    statuses = [e["response"]["status"][:3] for e in answer.body["entry"]]
    assert statuses == ["201", "403", "201"]
    assert answer.body["entry"][1]["resource"]["resourceType"] == "OperationOutcome"
    assert (await box.get(f"/Patient/ok-{uid}")).status == 200
    assert (await box.get(f"/Patient/no-{uid}")).status == 404
    assert (await box.get(f"/Patient/ok-{uid}-2")).status == 200


async def test_entry_request_object_has_route_params_resource_and_operation_id(box, uid):
    # Three policies, each keyed on one part of the entry's request object.
    by_id = {
        "engine": "matcho",
        "matcho": {"params": {"resource/type": "Patient", "resource/id": f"rid-{uid}"}},
    }
    by_resource = {
        "engine": "matcho",
        "matcho": {"request-method": "post", "resource": {"birthDate": "1999-09-09"}},
    }
    by_operation = {"engine": "matcho", "matcho": {"operation": {"id": "Delete"}}}
    client = await box.client_with_policies(f"c-{uid}", BUNDLE_OP, by_id, by_resource, by_operation)
    answer = await box.post(
        "/",
        bundle(
            "batch",
            entry("PUT", f"/Patient/rid-{uid}", {"active": True}),  # by resource/id
            entry("PUT", f"/Patient/other-{uid}", {"active": True}),
            entry("POST", "/Patient", {"birthDate": "1999-09-09"}),  # by resource
            entry("POST", "/Patient", {"birthDate": "2000-01-01"}),
            entry("DELETE", f"/Patient/gone-{uid}"),  # by operation.id
            entry("GET", f"/Patient/rid-{uid}?_elements=id"),  # Read: by resource/id
            entry("GET", f"/Patient/other-{uid}"),
        ),
        auth=client,
    )
    assert answer.status == 200, answer.body
    statuses = [e["response"]["status"][:3] for e in answer.body["entry"]]
    assert statuses == ["201", "403", "201", "403", "204", "200", "403"]


async def test_fhir_bundle_entries_are_checked_as_fhir_interactions(box, uid):
    client = await box.client_with_policies(
        f"c-{uid}",
        {"engine": "matcho", "matcho": {"operation": {"id": "FhirTransaction"}}},
        {
            "engine": "matcho",
            "matcho": {
                "operation": {"id": "FhirUpdate"},
                "uri": f"/fhir/Patient/f-{uid}",
                "resource": {"resourceType": "Patient", "deceasedBoolean": False},
            },
        },
    )
    body = {"resourceType": "Patient", "deceasedBoolean": False}
    ok = await box.post(
        "/fhir", bundle("transaction", entry("PUT", f"Patient/f-{uid}", body)), auth=client
    )
    assert ok.status == 200, ok.body
    aidbox_format = await box.post(
        "/", bundle("transaction", entry("PUT", f"/Patient/f-{uid}", body)), auth=client
    )
    assert aidbox_format.status == 403


@pytest.mark.emulator_only
async def test_sql_policy_of_an_entry_sees_the_earlier_entries(box, uid):
    # A choice on an open point: entries are checked in order inside the transaction, so an
    # sql policy sees what earlier entries wrote (docs/aidbox-contract-notes.md).
    org_policy = {
        "engine": "matcho",
        "matcho": {"params": {"resource/type": "Organization", "resource/id": f"o-{uid}"}},
    }
    patient_of_existing_org = {
        "engine": "sql",
        "sql": {
            "query": "SELECT EXISTS (SELECT 1 FROM organization"
            " WHERE id = {{resource.managingOrganization.id}})"
        },
    }
    client = await box.client_with_policies(
        f"c-{uid}", BUNDLE_OP, org_policy, patient_of_existing_org
    )
    patient = {"managingOrganization": {"resourceType": "Organization", "id": f"o-{uid}"}}
    alone = await box.post(
        "/", bundle("transaction", entry("PUT", f"/Patient/p-{uid}", patient)), auth=client
    )
    assert alone.status == 403
    together = await box.post(
        "/",
        bundle(
            "transaction",
            entry("PUT", f"/Organization/o-{uid}", {"name": "x"}),
            entry("PUT", f"/Patient/p-{uid}", patient),
        ),
        auth=client,
    )
    assert together.status == 200, together.body


async def test_a_create_of_an_existing_id_fails_the_whole_transaction_409(box, uid):
    # A POST of an existing id is a 409 (api/rest-api/crud/create.md); a repeated POST in a
    # bundle "returns a 409 duplicate key error" (configuration/migrations.md); a transaction
    # rolls back entirely on any error (api/batch-transaction.md). The App's fence relies on
    # the three together (docs/push.md, "Fenced writes").
    first = await box.post(
        "/", bundle("transaction", entry("POST", "/Patient", {"id": f"tok-{uid}"}))
    )
    assert first.status == 200, first.body
    again = await box.post(
        "/",
        bundle(
            "transaction",
            entry("POST", "/Patient", {"id": f"tok-{uid}"}),
            entry("PUT", f"/Patient/content-{uid}", {"gender": "male"}),
        ),
    )
    assert again.status == 409, again.body
    assert again.body["resourceType"] == "OperationOutcome"
    assert (await box.get(f"/Patient/content-{uid}")).status == 404


@pytest.mark.emulator_only
async def test_two_concurrent_creates_of_one_id_at_read_committed_one_commits_one_409(box, uid):
    # Uniqueness of an id holds at any isolation (PostgreSQL: the second insert waits for the
    # first, then fails); the fence relies on it at read-committed (docs/push.md, "Isolation").
    rc = {"x-max-isolation-level": "read-committed"}

    def attempt(n: int) -> dict:
        return bundle(
            "transaction",
            entry("POST", "/Patient", {"id": f"tok-{uid}"}),
            entry("PUT", f"/Patient/write{n}-{uid}", {"gender": "male"}),
        )

    hold = box.emulator.faults.hold_next_write("Patient")
    first = asyncio.create_task(box.post("/", attempt(1), headers=rc))
    await hold.txid_taken()
    second = asyncio.create_task(box.post("/", attempt(2), headers=rc))
    hold.release()
    answers = sorted([(await first).status, (await second).status])
    assert answers == [200, 409]
    written = [(await box.get(f"/Patient/write{n}-{uid}")).status for n in (1, 2)]
    assert sorted(written) == [200, 404]  # the refused attempt wrote nothing


async def test_an_entry_that_is_itself_a_bundle_is_refused_with_an_outcome(box, uid):
    # api/batch-transaction.md describes entries as interactions on resources and says nothing
    # of an entry posted to the bundle endpoint itself (`POST /`, `POST /fhir`). A clear 4xx
    # OperationOutcome, never a 500, and nothing of the inner bundle runs; the emulator
    # answers 422 (docs/aidbox-contract-notes.md).
    for url in ("/", "/fhir"):
        inner = bundle("transaction", entry("PUT", f"/Patient/in-{uid}", {"active": True}))
        tx = await box.post(
            "/",
            bundle(
                "transaction",
                entry("PUT", f"/Patient/out-{uid}", {"active": True}),
                entry("POST", url, inner),
            ),
        )
        assert 400 <= tx.status < 500, (url, tx.status, tx.body)
        assert tx.body["resourceType"] == "OperationOutcome"
        batch = await box.post(
            "/",
            bundle(
                "batch",
                entry("PUT", f"/Patient/b-{uid}", {"active": True}),
                entry("POST", url, inner),
            ),
        )
        assert batch.status == 200, batch.body
        status = int(batch.body["entry"][1]["response"]["status"][:3])
        assert 400 <= status < 500, (url, batch.body)
        assert batch.body["entry"][1]["resource"]["resourceType"] == "OperationOutcome"
        assert (await box.get(f"/Patient/b-{uid}")).status == 200
        for pid in (f"in-{uid}", f"out-{uid}"):
            assert (await box.get(f"/Patient/{pid}")).status == 404, (url, pid)
