"""AccessPolicy engines `matcho`, `sql`, `complex` and the request object they see
(access-control/authorization/access-policies.md, reference/matcho-dsl-reference.md,
tutorials/security-access-control-tutorials/accesspolicy-examples.md and
accesspolicy-best-practices.md).

A request a policy allows answers its usual status (200, 201, 404 for a missing id); one no
policy allows answers 403. Every policy is linked to the test's own Client.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

# One emulator for the module (tests touch only their own uid's Client, policies, resources).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


def matcho(pattern: dict) -> dict:
    """A matcho AccessPolicy body (the pattern is under `matcho`, access-policies.md)."""
    return {"engine": "matcho", "matcho": pattern}


def sql(query: str) -> dict:
    """An sql AccessPolicy body (`sql: {query}`, access-policies.md)."""
    return {"engine": "sql", "sql": {"query": query}}


# --- matcho -------------------------------------------------------------------------------


async def test_matcho_map_pattern_matches_by_containment(box, uid):
    # matcho-dsl-reference.md: a map pattern searches for its inclusion, nested.
    client = await box.client_with_policies(
        f"c-{uid}", matcho({"request-method": "get", "params": {"resource/type": "Patient"}})
    )
    assert (await box.get("/Patient", auth=client)).status == 200
    assert (await box.get("/Patient", params={"gender": "male"}, auth=client)).status == 200
    assert (await box.get("/Observation", auth=client)).status == 403
    assert (await box.put(f"/Patient/p-{uid}", {}, auth=client)).status == 403


async def test_matcho_regex_is_searched_not_anchored(box, uid):
    # matcho-dsl-reference.md, "Regular expressions": `#...` strings. `#clinic-a` is found
    # anywhere in the value, so it lets `xclinic-a-1` through: anchor with ^...$.
    loose = await box.client_with_policies(
        f"loose-{uid}", matcho({"params": {"resource/type": "Patient", "resource/id": "#clinic-a"}})
    )
    strict = await box.client_with_policies(
        f"strict-{uid}",
        matcho({"params": {"resource/type": "Patient", "resource/id": "#^clinic-a-[0-9a-f]+$"}}),
    )
    # Allowed reads of missing ids answer 404; refused ones 403.
    assert (await box.get("/Patient/clinic-a-1f", auth=loose)).status == 404
    assert (await box.get("/Patient/xclinic-a-1", auth=loose)).status == 404
    assert (await box.get("/Patient/clinic-b-1", auth=loose)).status == 403
    assert (await box.get("/Patient/clinic-a-1f", auth=strict)).status == 404
    assert (await box.get("/Patient/xclinic-a-1", auth=strict)).status == 403
    assert (await box.get("/Patient/clinic-a-1f-x", auth=strict)).status == 403


async def test_matcho_present_nil_and_not_blank(box, uid):
    # matcho-dsl-reference.md, "Special string literals".
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho(
            {
                "request-method": "put",
                "resource": {"gender": "not-blank?", "birthDate": "present?", "deceased": "nil?"},
            }
        ),
    )
    ok = {"gender": "female", "birthDate": "2000-01-01"}
    assert (await box.put(f"/Patient/a-{uid}", ok, auth=client)).status == 201
    blank = {"gender": "", "birthDate": "2000-01-01"}
    assert (await box.put(f"/Patient/b-{uid}", blank, auth=client)).status == 403
    missing = {"gender": "female"}
    assert (await box.put(f"/Patient/c-{uid}", missing, auth=client)).status == 403
    dead = {**ok, "deceased": {"boolean": True}}
    assert (await box.put(f"/Patient/d-{uid}", dead, auth=client)).status == 403


async def test_matcho_array_pattern_matches_a_prefix_in_order(box, uid):
    # matcho-dsl-reference.md: `[1, 2]` matches `[1, 2, 3]`, not `[2, 1]`.
    client = await box.client_with_policies(
        f"c-{uid}", matcho({"resource": {"address": [{"line": ["a", "b"]}]}})
    )
    assert (
        await box.put(f"/Patient/a-{uid}", {"address": [{"line": ["a", "b", "c"]}]}, auth=client)
    ).status == 201
    assert (
        await box.put(f"/Patient/b-{uid}", {"address": [{"line": ["b", "a"]}]}, auth=client)
    ).status == 403
    assert (
        await box.put(f"/Patient/c-{uid}", {"address": [{"line": ["a"]}]}, auth=client)
    ).status == 403


async def test_matcho_enum_and_one_of(box, uid):
    # matcho-dsl-reference.md, "$enum" (values) and "$one-of" (patterns).
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho(
            {"request-method": {"$enum": ["get", "put"]}, "params": {"resource/type": "Patient"}}
        ),
        matcho(
            {
                "request-method": "post",
                "resource": {"$one-of": [{"gender": "female"}, {"birthDate": "#^19"}]},
            }
        ),
    )
    assert (await box.get("/Patient", auth=client)).status == 200
    assert (await box.put(f"/Patient/a-{uid}", {}, auth=client)).status == 201
    assert (await box.delete(f"/Patient/a-{uid}", auth=client)).status == 403
    assert (await box.post("/Patient", {"gender": "female"}, auth=client)).status == 201
    assert (await box.post("/Patient", {"birthDate": "1990-01-01"}, auth=client)).status == 201
    assert (await box.post("/Patient", {"gender": "male"}, auth=client)).status == 403


async def test_matcho_one_of_beside_other_keys_allows_nothing(box, uid):
    # matcho-dsl-reference.md: "$one-of key cannot be utilized concurrently with other keys"
    # (its "Incorrect usage example"). Whether Aidbox refuses the policy or never matches it,
    # the request is refused.
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho({"params": {"resource/type": "Patient", "$one-of": [{"_id": "present?"}, {}]}}),
        check=False,
    )
    assert (await box.get("/Patient", params={"_id": "x"}, auth=client)).status == 403


async def test_matcho_contains_and_every(box, uid):
    # matcho-dsl-reference.md, "$contains" (at least one item) and "$every" (each item).
    clinic = {"system": "urn:clinic", "value": "a"}
    other = {"system": "urn:other", "value": "b"}
    contains = await box.client_with_policies(
        f"some-{uid}", matcho({"resource": {"identifier": {"$contains": {"system": "urn:clinic"}}}})
    )
    every = await box.client_with_policies(
        f"all-{uid}", matcho({"resource": {"identifier": {"$every": {"system": "urn:clinic"}}}})
    )
    mixed = {"identifier": [other, clinic]}
    only_clinic = {"identifier": [clinic, {**clinic, "value": "c"}]}
    assert (await box.put(f"/Patient/a-{uid}", mixed, auth=contains)).status == 201
    assert (
        await box.put(f"/Patient/b-{uid}", {"identifier": [other]}, auth=contains)
    ).status == 403
    assert (await box.put(f"/Patient/c-{uid}", only_clinic, auth=every)).status == 201
    assert (await box.put(f"/Patient/d-{uid}", mixed, auth=every)).status == 403


async def test_matcho_not_negates_and_lets_missing_values_through(box, uid):
    # matcho-dsl-reference.md, "$not", and its warning: the negation also passes when the
    # value is absent.
    client = await box.client_with_policies(
        f"c-{uid}", matcho({"request-method": "put", "resource": {"$not": {"gender": "male"}}})
    )
    assert (await box.put(f"/Patient/a-{uid}", {"gender": "female"}, auth=client)).status == 201
    assert (await box.put(f"/Patient/b-{uid}", {"gender": "male"}, auth=client)).status == 403
    assert (await box.put(f"/Patient/c-{uid}", {}, auth=client)).status == 201


async def test_matcho_present_all_and_length(box, uid):
    # matcho-dsl-reference.md: "$present-all" (every listed element present, any order),
    # combinable with "$length".
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho({"resource": {"address": [{"line": {"$present-all": ["b", "a"], "$length": 2}}]}}),
    )

    def lines(*items: str) -> dict:
        return {"address": [{"line": list(items)}]}

    assert (await box.put(f"/Patient/a-{uid}", lines("a", "b"), auth=client)).status == 201
    assert (await box.put(f"/Patient/b-{uid}", lines("a"), auth=client)).status == 403
    assert (await box.put(f"/Patient/c-{uid}", lines("a", "b", "c"), auth=client)).status == 403
    assert (await box.put(f"/Patient/d-{uid}", lines("a", "c"), auth=client)).status == 403


async def test_matcho_reference_parses_fhir_and_aidbox_references(box, uid):
    # matcho-dsl-reference.md, "$reference": `{reference: "Patient/pid"}` =>
    # `{id: "pid", resourceType: "Patient"}`.
    mine, theirs = f"mine-{uid}", f"theirs-{uid}"
    for pid in (mine, theirs):
        assert (await box.put(f"/Patient/{pid}", {})).status == 201
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho(
            {
                "request-method": "post",
                "resource": {"subject": {"$reference": {"resourceType": "Patient", "id": mine}}},
            }
        ),
    )

    def fhir_obs(pid: str) -> dict:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{pid}"},
        }

    def aidbox_obs(pid: str) -> dict:
        return {
            "status": "final",
            "code": {"text": "x"},
            "subject": {"resourceType": "Patient", "id": pid},
        }

    assert (await box.post("/fhir/Observation", fhir_obs(mine), auth=client)).status == 201
    assert (await box.post("/fhir/Observation", fhir_obs(theirs), auth=client)).status == 403
    assert (await box.post("/Observation", aidbox_obs(mine), auth=client)).status == 201
    assert (await box.post("/Observation", aidbox_obs(theirs), auth=client)).status == 403


async def test_matcho_back_reference_compares_with_the_request(box, uid):
    # matcho-dsl-reference.md, "Matching values from the request context": `.client.id`.
    # A Client may read its own Client resource, no other.
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho(
            {
                "operation": {"id": "Read"},
                "params": {"resource/type": "Client", "resource/id": ".client.id"},
            }
        ),
    )
    await box.put(f"/Client/other-{uid}", {"secret": "x", "grant_types": ["basic"]})
    own = await box.get(f"/Client/c-{uid}", auth=client)
    assert own.status == 200
    assert own.body["id"] == f"c-{uid}"
    assert (await box.get(f"/Client/other-{uid}", auth=client)).status == 403


async def test_matcho_back_reference_passes_when_both_sides_are_missing(box, uid):
    # accesspolicy-best-practices.md, "`.` path should be tested for `present?`": the check
    # passes when both values are missing; adding `present?` closes the hole.
    naive = await box.client_with_policies(
        f"naive-{uid}",
        matcho({"request-method": "put", "resource": {"gender": ".headers.x-gender"}}),
    )
    careful = await box.client_with_policies(
        f"careful-{uid}",
        matcho(
            {
                "request-method": "put",
                "resource": {"gender": ".headers.x-gender"},
                "headers": {"x-gender": "present?"},
            }
        ),
    )
    female = {"x-gender": "female"}
    for who, client in (("n", naive), ("c", careful)):
        body = {"gender": "female"}
        ok = await box.put(f"/Patient/{who}1-{uid}", body, headers=female, auth=client)
        assert ok.status == 201
        wrong = await box.put(
            f"/Patient/{who}2-{uid}", body, headers={"x-gender": "male"}, auth=client
        )
        assert wrong.status == 403
    assert (await box.put(f"/Patient/n3-{uid}", {}, auth=naive)).status == 201
    assert (await box.put(f"/Patient/c3-{uid}", {}, auth=careful)).status == 403


# --- the request object -------------------------------------------------------------------


async def test_request_object_fields(box, uid):
    # access-policies.md, "Request object structure": request-method (lower case), scheme,
    # uri without the query, query-string, params (query merged with resource/type), client.
    client = await box.client_with_policies(
        f"c-{uid}",
        matcho(
            {
                "request-method": "get",
                "scheme": "#^https?$",
                "uri": "/Patient",
                "query-string": "gender=female",
                "params": {"gender": "female", "resource/type": "Patient"},
                "client": {"id": f"c-{uid}", "resourceType": "Client"},
                "operation": {"id": "Search"},
                "headers": {"x-probe": "yes"},
                "remote-addr": "present?",
                "route-params": "nil?",
            }
        ),
    )
    probe = {"x-probe": "yes"}
    ok = await box.get("/Patient", params={"gender": "female"}, headers=probe, auth=client)
    assert ok.status == 200
    for path, params, headers in (
        ("/fhir/Patient", {"gender": "female"}, probe),  # uri /fhir/Patient, FhirSearch
        ("/Patient", {"gender": "male"}, probe),
        ("/Patient", {"gender": "female"}, {}),
    ):
        answer = await box.get(path, params=params, headers=headers, auth=client)
        assert answer.status == 403, (path, params, headers)


async def test_request_object_uri_is_the_path_as_sent(box, uid):
    # access-policies.md, "Request object structure": `uri` is the request's path. A doubled
    # leading slash is kept, not normalised away, so a policy can refuse paths that could
    # parse as a network-path reference (RFC 3986 §4.2: `//host/path`); the router still
    # routes `//Patient/<id>` as a read of Patient/<id>.
    client = await box.client_with_policies(
        f"c-{uid}", matcho({"uri": f"//Patient/p-{uid}", "operation": {"id": "Read"}})
    )
    assert (await box.put(f"/Patient/p-{uid}", {"gender": "female"})).status == 201
    doubled = await box.get(f"//Patient/p-{uid}", auth=client)
    assert doubled.status == 200, doubled.body
    assert doubled.body["gender"] == "female"
    assert (await box.get(f"/Patient/p-{uid}", auth=client)).status == 403


async def test_router_params_win_over_query_params(box, uid):
    # params = query merged with the router's `resource/id`; a query parameter of that name
    # must not stand in for the id being read.
    client = await box.client_with_policies(
        f"c-{uid}", matcho({"params": {"resource/type": "Patient", "resource/id": "#^mine-"}})
    )
    assert (await box.get(f"/Patient/mine-{uid}", auth=client)).status == 404
    spoof = await box.get(f"/Patient/other-{uid}", params={"resource/id": "mine-1"}, auth=client)
    assert spoof.status == 403


# --- sql ----------------------------------------------------------------------------------

# A Patient is readable by the Client named in its managing Organization's identifier:
# `{{client.id}}` and `{{params.resource/id}}` bound, joined over two tables
# (access-policies.md "SQL engine"; accesspolicy-examples.md #14, #15).
OWNED_PATIENT = """
SELECT EXISTS (
  SELECT 1 FROM patient p
  JOIN organization o ON o.id = p.resource #>> '{managingOrganization,id}'
  WHERE p.id = {{params.resource/id}}
    AND o.resource->'identifier' @> jsonb_build_array(
          jsonb_build_object('system', 'urn:client', 'value', {{client.id}}))
) AND {{operation.id}} = 'Read'
"""


async def _two_owned_patients(box, uid: str) -> tuple[str, str]:
    for owner in ("a", "b"):
        org = {"identifier": [{"system": "urn:client", "value": f"{owner}-{uid}"}]}
        assert (await box.put(f"/Organization/o{owner}-{uid}", org)).status == 201
        patient = {
            "managingOrganization": {"resourceType": "Organization", "id": f"o{owner}-{uid}"}
        }
        assert (await box.put(f"/Patient/p{owner}-{uid}", patient)).status == 201
    return f"pa-{uid}", f"pb-{uid}"


async def test_sql_policy_binds_client_id_and_resource_id_in_a_join(box, uid):
    mine, theirs = await _two_owned_patients(box, uid)
    client = await box.client_with_policies(f"a-{uid}", sql(OWNED_PATIENT))
    assert (await box.get(f"/Patient/{mine}", auth=client)).status == 200
    assert (await box.get(f"/Patient/{theirs}", auth=client)).status == 403
    assert (await box.get(f"/Patient/missing-{uid}", auth=client)).status == 403
    assert (await box.get("/Patient", auth=client)).status == 403  # Search has no resource/id


async def test_sql_injection_through_a_bound_parameter_does_nothing(box, uid):
    # access-policies.md: "Parameter expressions are escaped by default to protect from SQL
    # injection".
    mine, _ = await _two_owned_patients(box, uid)
    client = await box.client_with_policies(f"a-{uid}", sql(OWNED_PATIENT))
    for evil in (
        "x' OR 'a'='a",
        f"{mine}' OR 'a'='a",
        f"x'; DELETE FROM patient WHERE id = '{mine}'; --",
    ):
        answer = await box.get(f"/Patient/{quote(evil, safe='')}", auth=client)
        assert answer.status == 403, evil
    assert (await box.get(f"/Patient/{mine}")).status == 200


async def test_sql_identifier_interpolation_is_quoted_and_lower_cased(box, uid):
    # access-policies.md: `{{!params.resource/type}}` with Patient becomes "patient".
    assert (await box.put(f"/Patient/p-{uid}", {})).status == 201
    client = await box.client_with_policies(
        f"c-{uid}",
        sql("SELECT count(*) = 1 FROM {{!params.resource/type}} WHERE id = {{params.resource/id}}"),
    )
    assert (await box.get(f"/Patient/p-{uid}", auth=client)).status == 200
    assert (await box.get(f"/Patient/q-{uid}", auth=client)).status == 403


async def test_sql_answer_is_the_single_value(box, uid):
    # access-policies.md: "the statement should return a single row with just one column";
    # the examples answer `true`, a boolean expression, or `SELECT 1`.
    for name, query, status in (
        ("true", "SELECT true", 200),
        ("one", "SELECT 1", 200),
        ("false", "SELECT false", 403),
        ("null", "SELECT NULL::boolean", 403),
        ("norow", "SELECT true WHERE false", 403),
    ):
        client = await box.client_with_policies(f"{name}-{uid}", sql(query))
        assert (await box.get("/Patient", auth=client)).status == status, query


async def test_sql_reads_the_whole_resource_as_jsonb(box, uid):
    # access-policies.md, "SQL engine": `{{resource}}` is the incoming resource, bound as any
    # other value; the App's clinics policy reads it cast to jsonb (manifest/policies/). A
    # server that bound it as NULL would make such a policy judge an empty body.
    client = await box.client_with_policies(
        f"c-{uid}",
        sql(
            "SELECT ({{resource}})::jsonb ->> 'gender' = 'female'"
            " AND ({{resource}})::jsonb -> 'address' -> 0 ->> 'city' = 'Boston'"
        ),
    )
    female = {"gender": "female", "address": [{"city": "Boston"}]}
    assert (await box.put(f"/Patient/f-{uid}", female, auth=client)).status == 201
    male = {"gender": "male", "address": [{"city": "Boston"}]}
    assert (await box.put(f"/Patient/m-{uid}", male, auth=client)).status == 403


async def test_sql_reads_headers_by_lower_case_name_and_the_raw_query_string(box, uid):
    # access-policies.md, "Request object structure": `headers` (the example's names are
    # lower case, as HTTP's are case-insensitive) and `query-string`; the App's clinics policy
    # refuses a request with `If-None-Exist`, however the client spelled it.
    client = await box.client_with_policies(
        f"c-{uid}",
        sql(
            "SELECT {{headers.x-probe-header}}::text = 'yes'"
            " AND {{query-string}}::text = 'gender=female'"
        ),
    )
    for spelled in ("X-Probe-Header", "x-probe-header", "X-PROBE-HEADER"):
        answer = await box.get(
            "/Patient", params={"gender": "female"}, headers={spelled: "yes"}, auth=client
        )
        assert answer.status == 200, spelled
    answer = await box.get(
        "/Patient", params={"gender": "male"}, headers={"X-Probe-Header": "yes"}, auth=client
    )
    assert answer.status == 403


async def test_sql_that_errors_denies(box, uid):
    for name, query in (
        ("div", "SELECT 1 / 0 = 1"),
        ("cast", "SELECT {{params.resource/type}}::int = 1"),
        ("table", "SELECT true FROM no_such_table_here"),
    ):
        client = await box.client_with_policies(f"{name}-{uid}", sql(query))
        assert (await box.get("/Patient", auth=client)).status == 403, query


@pytest.mark.emulator_only
async def test_sql_policy_runs_read_only(box, uid):
    # Not documented for Aidbox: the emulator runs policy SQL in a read-only transaction that
    # is rolled back (docs/aidbox-contract-notes.md), so a policy cannot write.
    assert (await box.put(f"/Patient/keep-{uid}", {})).status == 201
    client = await box.client_with_policies(
        f"c-{uid}",
        sql(f"WITH d AS (DELETE FROM patient WHERE id = 'keep-{uid}' RETURNING 1) SELECT true"),
    )
    assert (await box.get("/Patient", auth=client)).status == 403
    assert (await box.get(f"/Patient/keep-{uid}")).status == 200


@pytest.mark.emulator_only
async def test_a_policy_past_the_emulators_time_limit_fails_the_request_instead_of_denying(
    box, uid, monkeypatch
):
    # Aidbox documents no time limit for a policy (access-policies.md, "SQL engine"): the
    # emulator's is a guard against a runaway query (docs/emulator.md), and it answers 500,
    # never a denial a test could pass by.
    from aidbox_emulator import policy_engines

    monkeypatch.setattr(policy_engines, "SQL_TIMEOUT_MS", 50)
    client = await box.client_with_policies(
        f"c-{uid}", sql("SELECT count(*) = 1 FROM (SELECT pg_sleep(1)) AS slow")
    )
    answer = await box.get("/Patient", auth=client)
    assert answer.status == 500 and answer.body["resourceType"] == "OperationOutcome"


# --- complex ------------------------------------------------------------------------------


async def test_complex_and_needs_every_rule(box, uid):
    # access-policies.md "Complex", AND rule; accesspolicy-examples.md #14, #15.
    client = await box.client_with_policies(
        f"c-{uid}",
        {
            "engine": "complex",
            "and": [
                matcho({"params": {"resource/type": "Patient"}}),
                sql(f"SELECT {{{{client.id}}}} = 'c-{uid}'"),
            ],
        },
    )
    assert (await box.get("/Patient", auth=client)).status == 200
    assert (await box.get("/Observation", auth=client)).status == 403


async def test_complex_or_needs_one_rule_and_nests(box, uid):
    # access-policies.md "Complex", Example 1: check-1 AND (check-2 OR check-3).
    def nested(check_3: str) -> dict:
        return {
            "engine": "complex",
            "and": [
                sql("select true"),
                {"engine": "complex", "or": [sql("select false"), sql(check_3)]},
            ],
        }

    yes = await box.client_with_policies(f"yes-{uid}", nested("select true"))
    no = await box.client_with_policies(f"no-{uid}", nested("select false"))
    assert (await box.get("/Patient", auth=yes)).status == 200
    assert (await box.get("/Patient", auth=no)).status == 403
    read_only = await box.client_with_policies(
        f"ro-{uid}",
        {"engine": "complex", "or": [sql("select false"), matcho({"operation": {"id": "Read"}})]},
    )
    assert (await box.get(f"/Patient/x-{uid}", auth=read_only)).status == 404
    assert (await box.get("/Patient", auth=read_only)).status == 403


async def test_complex_with_both_and_and_or_allows_nothing(box, uid):
    # access-policies.md: "it is forbidden to have both `and` and `or` keys on the same level".
    client = await box.client_with_policies(
        f"c-{uid}",
        {"engine": "complex", "and": [{"engine": "allow"}], "or": [{"engine": "allow"}]},
        check=False,
    )
    assert (await box.get("/Patient", auth=client)).status == 403


# --- anonymous ----------------------------------------------------------------------------


async def test_anonymous_request_evaluated_by_operation_linked_policy(box, uid):
    # tutorials/security-access-control-tutorials/overview.md ("What is a public route?",
    # "If there is no policy allowing the request ... 401"): anonymous requests are evaluated.
    # Linked to the built-in Read operation, restricted to one id so nothing else opens.
    public = f"pub-{uid}"
    assert (await box.put(f"/Patient/{public}", {"gender": "female"})).status == 201
    assert (await box.put(f"/Patient/priv-{uid}", {})).status == 201
    policy = {
        **matcho({"params": {"resource/type": "Patient", "resource/id": public}, "client": "nil?"}),
        "link": [{"resourceType": "Operation", "id": "Read"}],
    }
    assert (await box.put(f"/AccessPolicy/anon-{uid}", policy)).status in (200, 201)
    try:
        read = await box.get(f"/Patient/{public}", auth=None)
        assert read.status == 200
        assert read.body["gender"] == "female"
        refused = await box.get(f"/Patient/priv-{uid}", auth=None)
        assert refused.status == 401
        assert refused.body["resourceType"] == "OperationOutcome"
        # Wrong credentials never fall back to anonymous.
        wrong = await box.get(f"/Patient/{public}", auth=(f"nobody-{uid}", "x"))
        assert wrong.status == 401
    finally:
        await box.delete(f"/AccessPolicy/anon-{uid}")
