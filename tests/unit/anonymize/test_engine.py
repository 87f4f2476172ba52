"""The walker: rule order, arrays, filters, references, contained resources, purity."""

from __future__ import annotations

import collections
import copy
from typing import Any

import pytest

from app.anonymize import Change, PseudonymKey, anonymize, anonymize_with_targets, explain
from tests.unit.anonymize.conftest import plan_of


def rules(resource_type: str, *pairs: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"type": resource_type, "rules": [{"path": p, "method": m} for p, m in pairs], **extra}


def test_default_deny_keeps_only_selected_elements(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("gender", "keep"))])
    out = anonymize(
        {"resourceType": "Patient", "id": "p1", "gender": "female", "name": [{"family": "Doe"}]},
        plan,
        key,
    )
    assert out == {
        "resourceType": "Patient",
        "id": key.resource_id("Patient", "p1"),
        "gender": "female",
    }


def test_default_keep_keeps_unselected_elements(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("name", "redact"))], default="keep")
    out = anonymize(
        {"resourceType": "Patient", "name": [{"family": "Doe"}], "gender": "female"}, plan, key
    )
    assert out == {"resourceType": "Patient", "gender": "female"}


def test_a_path_steps_through_arrays(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("name.given", "keep"))])
    resource = {
        "resourceType": "Patient",
        "name": [{"given": ["A", "B"], "family": "X"}, {"given": ["C"], "text": "C X"}],
    }
    assert anonymize(resource, plan, key)["name"] == [{"given": ["A", "B"]}, {"given": ["C"]}]


def test_nested_paths(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("contact.name.family", "pseudonymize"))])
    resource = {"resourceType": "Patient", "contact": [{"name": {"family": "Roe", "given": ["R"]}}]}
    assert anonymize(resource, plan, key)["contact"] == [{"name": {"family": key.pseudonym("Roe")}}]


def test_keep_is_refined_by_the_rules_inside_it_in_any_order(key: PseudonymKey) -> None:
    resource = {"resourceType": "Patient", "address": [{"postalCode": "02139", "city": "Boston"}]}
    for order in (
        [("address.postalCode", "zip3"), ("address", "keep")],
        [("address", "keep"), ("address.postalCode", "zip3")],
    ):
        plan = plan_of([rules("Patient", *order)])
        assert anonymize(resource, plan, key)["address"] == [
            {"postalCode": "021", "city": "Boston"}
        ]


def test_any_other_rule_takes_its_element_whole_unless_an_earlier_one_names_inside(
    key: PseudonymKey,
) -> None:
    resource = {"resourceType": "Patient", "address": [{"postalCode": "02139", "city": "Boston"}]}
    ancestor_first = plan_of(
        [rules("Patient", ("address", "pseudonymize"), ("address.postalCode", "zip3"))]
    )
    assert anonymize(resource, ancestor_first, key)["address"] == [
        {"postalCode": key.pseudonym("02139"), "city": key.pseudonym("Boston")}
    ]
    specific_first = plan_of(
        [rules("Patient", ("address.postalCode", "zip3"), ("address", "pseudonymize"))]
    )
    assert anonymize(resource, specific_first, key)["address"] == [
        {"postalCode": "021", "city": key.pseudonym("Boston")}
    ]


def test_a_method_on_a_composite_applies_to_its_primitives(key: PseudonymKey) -> None:
    plan = plan_of([rules("Encounter", ("period", "generalize-date"))])
    resource = {
        "resourceType": "Encounter",
        "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-02"},
    }
    assert anonymize(resource, plan, key)["period"] == {"start": "2024", "end": "2024"}


def test_replace_puts_a_constant(key: PseudonymKey) -> None:
    plan = plan_of(
        [{"type": "Patient", "rules": [{"path": "name.text", "method": "replace", "value": "***"}]}]
    )
    out = anonymize({"resourceType": "Patient", "name": [{"text": "Jane Doe"}]}, plan, key)
    assert out["name"] == [{"text": "***"}]


def test_extensions_are_selected_by_url_and_keep_their_url(key: PseudonymKey) -> None:
    race = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
    plan = plan_of(
        [
            rules(
                "Patient",
                (f"extension(url={race}).extension(url=ombCategory).value.Coding", "keep"),
            )
        ]
    )
    coding = {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}
    resource = {
        "resourceType": "Patient",
        "extension": [
            {
                "url": race,
                "extension": [
                    {"url": "ombCategory", "value": {"Coding": coding}},
                    {"url": "text", "value": {"string": "White, lives at 1 Main St"}},
                ],
            },
            {"url": "http://clinic.example/favourite-colour", "value": {"string": "Jane's"}},
        ],
    }
    assert anonymize(resource, plan, key)["extension"] == [
        {"url": race, "extension": [{"url": "ombCategory", "value": {"Coding": coding}}]}
    ]


def test_filters_select_some_items_of_an_array(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("telecom(system=email)", "redact"))], default="keep")
    resource = {
        "resourceType": "Patient",
        "telecom": [{"system": "email", "value": "a@b.org"}, {"system": "phone", "value": "555"}],
    }
    assert anonymize(resource, plan, key)["telecom"] == [{"system": "phone", "value": "555"}]


def test_every_reference_is_rewritten_and_loses_its_display(key: PseudonymKey) -> None:
    plan = plan_of([], default="keep")
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"resourceType": "Patient", "id": "p1", "display": "Jane Doe"},
        "performer": [{"resourceType": "Practitioner", "id": "pr1", "identifier": {"value": "N1"}}],
        "extension": [
            {"url": "x", "value": {"Reference": {"resourceType": "Patient", "id": "p1"}}}
        ],
    }
    out = anonymize(resource, plan, key)
    patient = {"resourceType": "Patient", "id": key.resource_id("Patient", "p1")}
    assert out["subject"] == patient
    assert out["performer"] == [
        {"resourceType": "Practitioner", "id": key.resource_id("Practitioner", "pr1")}
    ]
    assert out["extension"][0]["value"]["Reference"] == patient


def test_references_under_other_methods_are_removed(key: PseudonymKey) -> None:
    plan = plan_of(
        [rules("Observation", ("subject", "generalize-date"), ("focus", "pseudonymize"))]
    )
    resource = {
        "resourceType": "Observation",
        "subject": {"resourceType": "Patient", "id": "p1"},
        "focus": [{"resourceType": "Patient", "id": "p1"}],
    }
    out = anonymize(resource, plan, key)
    assert "subject" not in out
    assert out["focus"] == [{"resourceType": "Patient", "id": key.resource_id("Patient", "p1")}]


def test_absolute_references_need_a_keep_rule_naming_their_uri(key: PseudonymKey) -> None:
    resource = {
        "resourceType": "Observation",
        "subject": {"uri": "http://other.example/Patient/1", "display": "Jane"},
        "focus": [{"uri": "http://other.example/Patient/2"}],
    }
    by_default = anonymize(resource, plan_of([], default="keep"), key)
    assert "subject" not in by_default
    assert "focus" not in by_default
    keep_reference = plan_of([rules("Observation", ("subject", "keep"))])
    assert "subject" not in anonymize(resource, keep_reference, key)
    keep_uri = plan_of([rules("Observation", ("subject.uri", "keep"), ("focus", "keep"))])
    kept = anonymize(resource, keep_uri, key)
    assert kept["subject"] == {"uri": "http://other.example/Patient/1"}
    assert "focus" not in kept
    inside_a_kept_one = plan_of(
        [rules("Observation", ("subject", "keep"), ("subject.uri", "keep"))]
    )
    assert anonymize(resource, inside_a_kept_one, key)["subject"] == {
        "uri": "http://other.example/Patient/1"
    }


def test_logical_references_are_removed_even_when_kept(key: PseudonymKey) -> None:
    plan = plan_of([rules("Observation", ("subject", "keep"), ("subject.uri", "keep"))])
    resource = {
        "resourceType": "Observation",
        "subject": {"identifier": {"system": "urn:mrn", "value": "MRN-1"}, "display": "Jane"},
    }
    assert "subject" not in anonymize(resource, plan, key)


def test_contained_resources_follow_their_own_type_and_local_refs_follow_them(
    key: PseudonymKey,
) -> None:
    plan = plan_of(
        [
            rules("Observation", ("subject", "keep"), ("code", "keep")),
            rules("Patient", ("gender", "keep")),
        ]
    )
    resource = {
        "resourceType": "Observation",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pt-jane-doe",
                "name": [{"family": "Doe"}],
                "gender": "female",
            }
        ],
        "subject": {"localRef": "pt-jane-doe", "display": "Jane"},
        "code": {
            "coding": [{"code": "x"}],
            "extension": [{"value": {"Reference": {"localRef": "nope"}}}],
        },
    }
    out = anonymize(resource, plan, key)
    assert out["contained"] == [{"resourceType": "Patient", "id": "c0", "gender": "female"}]
    assert out["subject"] == {"localRef": "c0"}
    assert out["code"] == {"coding": [{"code": "x"}]}  # a dangling local reference goes


def test_a_rule_can_remove_contained_resources(key: PseudonymKey) -> None:
    plan = plan_of([rules("Observation", ("contained", "redact"))], default="keep")
    resource = {
        "resourceType": "Observation",
        "contained": [{"resourceType": "Patient", "id": "x"}],
    }
    assert "contained" not in anonymize(resource, plan, key)


def test_meta_keeps_what_rules_keep_and_gets_the_security_label(key: PseudonymKey) -> None:
    label = {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "PSEUDED",
    }
    plan = plan_of([rules("Patient", ("meta.profile", "keep"))], securityLabel=label)
    resource = {
        "resourceType": "Patient",
        "meta": {
            "profile": ["http://p"],
            "lastUpdated": "2024-01-01T00:00:00Z",
            "tag": [{"code": "vip"}],
        },
    }
    assert anonymize(resource, plan, key)["meta"] == {"profile": ["http://p"], "security": [label]}
    assert anonymize({"resourceType": "Patient"}, plan, key)["meta"] == {"security": [label]}
    # the dry run says the clinic's own labels were replaced, and only when there were some
    labelled = {**resource, "meta": {**resource["meta"], "security": [{"code": "R"}]}}
    replaced = ("Patient.meta.security", "replaced", "engine: the security label")
    assert replaced in [(c.path, c.action, c.rule) for c in explain(labelled, plan, key).changes]
    assert all(c.path != replaced[0] for c in explain(resource, plan, key).changes)
    junk = explain({"resourceType": "Patient", "meta": "junk"}, plan, key)  # no Meta: whole
    assert ("Patient.meta", "replaced") in [(c.path, c.action) for c in junk.changes]


def test_types_without_rules_use_the_wildcard_entry(key: PseudonymKey) -> None:
    plan = plan_of([rules("*", ("status", "keep"))])
    out = anonymize(
        {"resourceType": "Device", "status": "active", "serialNumber": "SN-1"}, plan, key
    )
    assert out == {"resourceType": "Device", "status": "active"}


def test_input_is_never_mutated_nor_shared(key: PseudonymKey) -> None:
    plan = plan_of(
        [rules("Patient", ("name", "keep"), ("address.postalCode", "zip3"))], default="keep"
    )
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"given": ["A"]}],
        "address": [{"postalCode": "02139"}],
        "contained": [{"resourceType": "Patient", "id": "c", "name": [{"given": ["B"]}]}],
        "meta": {"tag": [{"code": "t"}]},
    }
    before = copy.deepcopy(resource)
    out = anonymize(resource, plan, key)
    assert resource == before
    out["name"][0]["given"].append("changed")
    out["contained"][0]["name"][0]["given"].append("changed")
    assert resource == before


def test_explain_names_the_rule_behind_each_change_without_values(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("gender", "keep"), ("address.postalCode", "zip3"))])
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "gender": "female",
        "name": [{"family": "Doe"}],
        "address": [{"postalCode": "02139", "city": "Boston"}],
    }
    explanation = explain(resource, plan, key)
    assert explanation.resource == anonymize(resource, plan, key)
    changes = {(c.path, c.action, c.rule) for c in explanation.changes}
    assert ("Patient.name", "removed", "Patient.default") in changes
    assert ("Patient.address[0].postalCode", "zip3", "Patient.rules[1]") in changes
    assert ("Patient.address[0].city", "removed", "Patient.default") in changes
    assert ("Patient.id", "pseudonymized", "engine: resource id") in changes
    assert not any(c.path.startswith("Patient.gender") for c in explanation.changes)
    text = str(explanation.to_dict()["changes"])
    assert "Doe" not in text
    assert "Boston" not in text


STRICT_TEXT = [{"type": "string", "method": "redact"}]


def questionnaire_plan(questions: list[dict[str, Any]], **profile: Any) -> Any:
    return plan_of(
        [rules("QuestionnaireResponse", ("item.linkId", "keep"))],
        questionnaire={"questions": questions},
        **profile,
    )


def answered(link_id: str, text: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"linkId": link_id, "text": text, "answer": [{"value": value, **extra}]}


def test_answers_are_selected_by_question_text_in_any_case_at_any_depth(
    key: PseudonymKey,
) -> None:
    plan = questionnaire_plan([{"text": ["Personal Email"], "method": "redact"}], default="keep")
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            answered("e1", "personal EMAIL:", {"string": "a@b.org"}),
            {"linkId": "g", "item": [answered("e2", "Personal  Email", {"string": "c@d.org"})]},
            answered(
                "q",
                "Anything else?",
                {"string": "no"},
                item=[answered("e3", "Personal Email?", {"string": "e@f.org"})],
            ),
        ],
    }
    out = anonymize(resource, plan, key)
    assert out["item"] == [
        {"linkId": "g"},
        {"linkId": "q", "text": "Anything else?", "answer": [{"value": {"string": "no"}}]},
    ]


def test_answers_are_default_deny_and_leave_only_for_allowed_questions(key: PseudonymKey) -> None:
    plan = questionnaire_plan([{"linkId": ["pain"], "method": "keep"}], datatypes=STRICT_TEXT)
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            answered("pain", "Pain score", {"integer": 4}),
            answered("member", "Member #", {"integer": 5550123}),
            answered("cell", "Cell #", {"decimal": 5550124.0}),
            answered("coded", "Chart", {"Coding": {"system": "urn:x", "code": "C-778"}}),
            {"linkId": "untitled", "answer": [{"value": {"integer": 42}}]},
        ],
    }
    out = anonymize(resource, plan, key)
    assert out["item"] == [
        {"linkId": "pain", "answer": [{"value": {"integer": 4}}]},
        {"linkId": "member"},
        {"linkId": "cell"},
        {"linkId": "coded"},
        {"linkId": "untitled"},
    ]


def test_an_allowed_question_sends_its_nested_items_only_where_a_rule_names_them(
    key: PseudonymKey,
) -> None:
    # A nested question no rule names may ask anything, in any language ("Ville", a city):
    # it is judged like a top-level item (default-deny), not covered by the keep around it.
    plan = questionnaire_plan(
        [{"text": ["Vitals"], "method": "keep"}, {"text": ["Heart rate"], "method": "keep"}],
        datatypes=STRICT_TEXT,
    )
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": "v",
                "text": "Vitals",
                "item": [
                    answered("hr", "Heart rate", {"integer": 70}),
                    answered("who", "Taken by", {"string": "Nurse Jane Roe"}),
                    answered("city", "Ville", {"integer": 75011}),
                ],
            }
        ],
    }
    assert anonymize(resource, plan, key)["item"] == [
        {
            "linkId": "v",
            "item": [
                {"linkId": "hr", "answer": [{"value": {"integer": 70}}]},
                {"linkId": "who"},
                {"linkId": "city"},
            ],
        }
    ]


def test_answers_are_selected_by_link_id(key: PseudonymKey) -> None:
    plan = questionnaire_plan(
        [{"linkId": ["dob"], "method": "generalize-date"}, {"linkId": ["visit"], "method": "keep"}]
    )
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            answered("dob", "When were you born", {"date": "1980-02-03"}),
            answered("visit", "Visit date", {"date": "2024-02-03"}),
        ],
    }
    assert [i.get("answer") for i in anonymize(resource, plan, key)["item"]] == [
        [{"value": {"date": "1980"}}],
        [{"value": {"date": "2024-02-03"}}],
    ]


def test_a_redacted_question_takes_its_whole_item_with_nested_answers(key: PseudonymKey) -> None:
    plan = plan_of(
        [rules("QuestionnaireResponse", ("item.linkId", "keep"))],
        default="keep",
        questionnaire={"questions": [{"text": ["phone"], "match": "contains", "method": "redact"}]},
    )
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            answered(
                "p",
                "What is your mobile PHONE number?",
                {"string": "555"},
                item=[answered("p2", "Extension", {"string": "12"})],
            ),
            answered("n", "Nickname", {"string": "JD"}),
        ],
    }
    out = anonymize(resource, plan, key)
    assert out["item"] == [answered("n", "Nickname", {"string": "JD"})]


def test_custom_attributes_are_plain_paths(key: PseudonymKey) -> None:
    plan = plan_of([rules("QuestionnaireResponse", ("patientFirstName", "redact"))], default="keep")
    resource = {
        "resourceType": "QuestionnaireResponse",
        "patientFirstName": "Jane",
        "status": "completed",
    }
    assert anonymize(resource, plan, key) == {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
    }


def test_explain_reports_a_removed_item_once(key: PseudonymKey) -> None:
    plan = questionnaire_plan([{"linkId": ["addr"], "method": "redact"}])
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            answered(
                "addr",
                "Address",
                {"string": "1 Main St"},
                item=[answered("c", "City", {"string": "X"})],
            )
        ],
    }
    changes = [c for c in explain(resource, plan, key).changes if ".item" in c.path]
    assert changes == [
        Change("QuestionnaireResponse.item[0]", "removed", "questionnaire.questions[0]")
    ]


# The "*" entry names elements of whichever type it covers; a type that does not define one has
# nothing FHIR-shaped there (safe-harbor.yaml's "*" entry keeps status, intent, active, meta).
WILDCARD = rules("*", ("status", "keep"), ("intent", "keep"), ("active", "keep"), ("meta", "keep"))


def test_an_element_its_type_does_not_define_goes_even_when_the_wildcard_entry_names_it(
    key: PseudonymKey,
) -> None:
    plan = plan_of([WILDCARD])
    device = {
        "resourceType": "Device",
        "id": "d1",
        "status": "active",
        "intent": {"text": "Alice Smith"},  # Device defines neither intent nor active
        "active": {"by": "Carol Jones", "since": ["2024-03-01"]},
    }
    assert anonymize(device, plan, key) == {
        "resourceType": "Device",
        "id": key.resource_id("Device", "d1"),
        "status": "active",
    }
    related = {"resourceType": "RelatedPerson", "active": True, "status": {"text": "Alice Smith"}}
    assert anonymize(related, plan, key) == {"resourceType": "RelatedPerson", "active": True}


def test_inside_a_kept_element_what_its_datatype_does_not_define_goes(key: PseudonymKey) -> None:
    # even where the profile's "*" datatype entry says keep: that entry is for first-class
    # attributes, which Aidbox stores at a resource's root
    plan = plan_of(
        [rules("Observation", ("code", "keep"), ("value", "keep"), ("extension", "keep"))],
        datatypes=[{"type": "*", "method": "keep"}],
    )
    resource = {
        "resourceType": "Observation",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "note": "Alice Smith"}],
            "author": {"name": "Bob Jones"},
        },
        "value": {"integer": 72, "text": "Carol"},
        "extension": [{"url": "http://x.example/e", "value": {"boolean": True}, "by": "Dan"}],
    }
    out = anonymize(resource, plan, key)
    assert out["code"] == {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    assert out["value"] == {"integer": 72}
    assert out["extension"] == [{"url": "http://x.example/e", "value": {"boolean": True}}]


def test_declared_first_class_attributes_follow_their_rules(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("race", "keep"), ("nickname", "pseudonymize"))])
    race = {"category": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}}
    resource = {"resourceType": "Patient", "race": race, "nickname": "Al", "colour": "blue"}
    assert anonymize(resource, plan, key) == {
        "resourceType": "Patient",
        "race": race,
        "nickname": key.pseudonym("Al"),
    }


def test_an_age_in_a_first_class_attribute_is_judged_by_the_dates_beside_it(
    key: PseudonymKey,
) -> None:
    # 80 years measured in 2010 are 95 today: the age goes, not the date beside it
    plan = plan_of([rules("Observation", ("ageAtVisit", "age"), ("effective", "generalize-date"))])
    years = {"value": 80, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
    for age in (80, years, [80], {"visit": years}):
        effective = {"dateTime": "2010-01-05"}
        resource = {"resourceType": "Observation", "ageAtVisit": age, "effective": effective}
        assert anonymize(resource, plan, key) == {
            "resourceType": "Observation",
            "effective": {"dateTime": "2010"},
        }, age
        recent = anonymize({**resource, "effective": {"dateTime": "2024"}}, plan, key)
        assert recent["ageAtVisit"] == age


def test_undeclared_first_class_attributes_leave_only_by_the_wildcard_datatype_entry(
    key: PseudonymKey,
) -> None:
    resource = {"resourceType": "Patient", "gender": "female", "colour": {"text": "Alice's"}}
    by_default = anonymize(resource, plan_of([], default="keep"), key)
    assert by_default == {"resourceType": "Patient", "gender": "female"}
    opted_in = plan_of([], default="keep", datatypes=[{"type": "*", "method": "keep"}])
    assert anonymize(resource, opted_in, key)["colour"] == {"text": "Alice's"}


def test_a_contained_resource_of_a_type_r4_does_not_define_goes_whole(key: PseudonymKey) -> None:
    plan = plan_of([WILDCARD, rules("Observation", ("subject", "keep"), ("focus", "keep"))])
    resource = {
        "resourceType": "Observation",
        "contained": [
            {
                "resourceType": "PatientNote",
                "id": "n1",
                "status": "Alice Smith",
                "meta": {"profile": ["http://clinic.example/alice-smith"]},
            },
            {"resourceType": "Device", "id": "d1", "status": "active"},
        ],
        "subject": {"localRef": "n1"},
        "focus": [{"localRef": "d1"}],
    }
    out = anonymize(resource, plan, key)
    assert out["contained"] == [{"resourceType": "Device", "id": "c1", "status": "active"}]
    assert "subject" not in out  # its target did not leave
    assert out["focus"] == [{"localRef": "c1"}]


def test_a_reference_leaves_only_with_an_r4_resource_type(key: PseudonymKey) -> None:
    # requester is no Observation element: a first-class attribute, a reference by its shape
    plan = plan_of(
        [rules("Observation", ("subject", "keep"), ("performer", "keep"), ("requester", "keep"))]
    )
    resource = {
        "resourceType": "Observation",
        "subject": {"resourceType": "AliceSmith", "id": "p1"},
        "performer": [
            {"resourceType": "Practitioner", "id": "pr1"},
            {"resourceType": "Resource", "id": "pr2"},  # abstract: no resource has it
            {"resourceType": {"text": "Bob Jones"}, "id": "pr3"},
        ],
        "requester": {"resourceType": "Carol Jones", "id": "r1"},
    }
    out = anonymize(resource, plan, key)
    assert "subject" not in out
    assert out["performer"] == [
        {"resourceType": "Practitioner", "id": key.resource_id("Practitioner", "pr1")}
    ]
    assert "requester" not in out
    assert "Smith" not in str(explain(resource, plan, key))


def test_an_age_over_89_is_aggregated_whatever_unit_it_lacks(key: PseudonymKey) -> None:
    plan = plan_of(
        [rules("Condition", ("onset", "keep"), ("extension", "keep"))],
        datatypes=[{"type": "Quantity", "default": "keep", "rules": []}],
    )
    aggregated = {
        "value": 90,
        "comparator": ">=",
        "unit": "years",
        "system": "http://unitsofmeasure.org",
        "code": "a",
    }
    for age in ({"value": 95}, {"value": 95, "code": "a"}, {"value": 95, "unit": "ann"}):
        resource = {
            "resourceType": "Condition",
            "onset": {"Age": age},
            "extension": [{"url": "http://x.example/age", "value": {"Age": age}}],
        }
        out = anonymize(resource, plan, key)
        assert out["onset"] == {"Age": aggregated}, age
        assert out["extension"][0]["value"] == {"Age": aggregated}, age
    # a Quantity that is not an Age, without a time unit, is no age: 95 stays 95
    plan = plan_of([rules("Observation", ("value", "keep"))])
    resource = {"resourceType": "Observation", "value": {"Quantity": {"value": 95}}}
    assert anonymize(resource, plan, key)["value"] == {"Quantity": {"value": 95}}


def test_question_texts_are_matched_against_link_ids_too(key: PseudonymKey) -> None:
    plan = questionnaire_plan(
        [
            {"text": ["member", "phone"], "match": "contains", "method": "redact"},
            {"text": ["Vitals", "Pain score", "Heart rate"], "method": "keep"},
        ],
        datatypes=STRICT_TEXT,
    )
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": "v",
                "text": "Vitals",
                "item": [
                    # an allowed question's text, an identifier's linkId
                    answered("member-number", "Heart rate", {"integer": 5550123}),
                    answered("hr", "Heart rate", {"integer": 70}),
                ],
            },
            {"linkId": "Pain score", "answer": [{"value": {"integer": 4}}]},
            answered("home-phone", "Where can we reach you", {"integer": 5550124}),
        ],
    }
    assert anonymize(resource, plan, key)["item"] == [
        {"linkId": "v", "item": [{"linkId": "hr", "answer": [{"value": {"integer": 70}}]}]},
        {"linkId": "Pain score", "answer": [{"value": {"integer": 4}}]},
    ]


def test_an_item_without_text_is_judged_on_its_own_not_by_the_allowed_item_around_it(
    key: PseudonymKey,
) -> None:
    plan = questionnaire_plan(
        [{"text": ["Vitals"], "method": "keep"}, {"linkId": ["hr"], "method": "keep"}],
        datatypes=STRICT_TEXT,
    )
    untitled = {"linkId": "x17", "answer": [{"value": {"integer": 123456789}}]}
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": "v",
                "text": "Vitals",
                "answer": [{"value": {"integer": 1}, "item": [untitled]}],
                "item": [
                    untitled,
                    {"linkId": "blank", "text": " ", "answer": [{"value": {"integer": 7}}]},
                    {"linkId": "hr", "answer": [{"value": {"integer": 70}}]},  # by its linkId
                    # a question no rule names: judged on its own as well
                    answered("rr", "Respiratory rate", {"integer": 16}),
                ],
            }
        ],
    }
    assert anonymize(resource, plan, key)["item"] == [
        {
            "linkId": "v",
            "answer": [{"value": {"integer": 1}, "item": [{"linkId": "x17"}]}],
            "item": [
                {"linkId": "x17"},
                {"linkId": "blank"},
                {"linkId": "hr", "answer": [{"value": {"integer": 70}}]},
                {"linkId": "rr"},
            ],
        }
    ]


def test_an_item_whose_link_id_is_not_a_string_matches_no_question(key: PseudonymKey) -> None:
    plan = questionnaire_plan([{"linkId": ["pain"], "method": "keep"}])
    resource = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {"linkId": ["pain"], "answer": [{"value": {"integer": 4}}]},
            {"linkId": {"text": "Alice Smith"}, "answer": [{"value": {"integer": 5}}]},
            {"linkId": "pain", "answer": [{"value": {"integer": 6}}]},
        ],
    }
    assert anonymize(resource, plan, key)["item"] == [
        {"linkId": ["pain"]},  # an array is walked item by item, as everywhere: no answer
        {"linkId": "pain", "answer": [{"value": {"integer": 6}}]},
    ]  # the object is no string: the item lost its required linkId and went


def test_a_resource_of_no_r4_type_sends_only_what_its_own_entry_names(key: PseudonymKey) -> None:
    note = {
        "resourceType": "PatientNote",
        "id": "n1",
        "status": {"text": "Alice Smith"},
        "meta": {"tag": [{"code": "Alice Smith"}], "profile": ["http://x.example/alice"]},
    }
    # the "*" entry names elements of R4 types: a custom type has none of them
    assert anonymize(note, plan_of([WILDCARD]), key) == {
        "resourceType": "PatientNote",
        "id": key.resource_id("PatientNote", "n1"),
    }
    # an entry of its own is the profile author's description of the type
    own = plan_of([WILDCARD, rules("PatientNote", ("status", "keep"))])
    assert anonymize(note, own, key)["status"] == {"text": "Alice Smith"}


def test_a_first_class_attribute_shaped_like_a_reference_is_one_whatever_names_inside_it(
    key: PseudonymKey,
) -> None:
    # emergencyContact is no Patient element: its datatype is unknown, so its shape decides.
    # A rule naming a child of it (phone) makes the walker go in; a reference-shaped value
    # there is still reduced to its target, its display and identifier never sent.
    referenced = {
        "resourceType": "RelatedPerson",
        "id": "rp1",
        "display": "Alice Smith",
        "identifier": {"value": "555-12-3456"},
        "phone": "555-0100",
    }
    expected = {"resourceType": "RelatedPerson", "id": key.resource_id("RelatedPerson", "rp1")}
    for order in (
        [("emergencyContact", "keep"), ("emergencyContact.phone", "redact")],
        [("emergencyContact.phone", "redact"), ("emergencyContact", "keep")],
        [("emergencyContact.phone", "keep"), ("emergencyContact", "redact")],
    ):
        plan = plan_of([rules("Patient", *order)])
        resource = {"resourceType": "Patient", "emergencyContact": referenced}
        out = anonymize(resource, plan, key)
        assert out.get("emergencyContact") in (expected, None), order
        assert "Smith" not in str(explain(resource, plan, key)), order
        # in an array, each item by its own shape
        resource = {"resourceType": "Patient", "emergencyContact": [referenced, {"phone": "1"}]}
        out = anonymize(resource, plan, key)
        assert "Smith" not in str(out) and "555-12" not in str(out), order
        assert "Smith" not in str(explain(resource, plan, key)), order


def test_the_targets_listed_are_the_references_sent(key: PseudonymKey) -> None:
    # what the push makes sure the global holds first (anonymize_with_targets): a reference
    # inside an element the engine then replaces is not sent, so it is no target
    label = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "X"}
    referring = [
        {
            "url": "http://x.example/by",
            "value": {"Reference": {"resourceType": "Patient", "id": "p2"}},
        }
    ]
    plan = plan_of(
        [rules("Condition", ("onset", "keep"), ("meta", "keep"), ("subject", "keep"))],
        securityLabel=label,
    )
    resource = {
        "resourceType": "Condition",
        "subject": {"resourceType": "Patient", "id": "p1"},
        # an Age over 89 is aggregated whole: its extension is not sent
        "onset": {"Age": {"value": 95, "unit": "a", "extension": referring}},
        # the clinic's security labels are replaced by the profile's
        "meta": {"security": [{"code": "R", "extension": referring}]},
    }
    out, targets = anonymize_with_targets(resource, plan, key)
    assert out["meta"] == {"security": [label]}
    # a meta that is no Meta (an array) is replaced whole
    malformed, malformed_targets = anonymize_with_targets(
        {**resource, "meta": [{"extension": referring}]}, plan, key
    )
    assert malformed["meta"] == {"security": [label]}
    assert malformed_targets == targets
    assert out["onset"]["Age"]["value"] == 90
    assert targets == {("Patient", key.resource_id("Patient", "p1")): "p1"}
    # the same references, kept, are targets
    kept = {**resource, "onset": {"Age": {"value": 45, "unit": "a", "extension": referring}}}
    _, targets = anonymize_with_targets(kept, plan_of([rules("Condition", ("onset", "keep"))]), key)
    assert targets == {("Patient", key.resource_id("Patient", "p2")): "p2"}


def test_a_resource_given_as_a_dict_subclass_is_anonymized_as_a_dict(key: PseudonymKey) -> None:
    plan = plan_of([rules("Patient", ("gender", "keep"))])
    resource = {"resourceType": "Patient", "id": "p1", "gender": "female", "name": [{"text": "A"}]}
    expected = anonymize(resource, plan, key)
    assert expected["gender"] == "female"
    assert anonymize(collections.OrderedDict(resource), plan, key) == expected
    assert explain(collections.OrderedDict(resource), plan, key).resource == expected


class _Dict(dict):
    """A caller's own mapping: no JSON parser gives one."""


class _List(list):
    """A caller's own sequence."""


@pytest.mark.parametrize(
    "value",
    [
        _Dict({"phone": "555-1234", "born": "1990-03-04"}),
        _List([{"phone": "555-1234"}]),
        ({"phone": "555-1234"},),
        b"555-1234",
        collections.UserDict({"phone": "555-1234"}),
        {"who": _Dict({"phone": "555-1234"})},
    ],
    ids=["dict subclass", "list subclass", "tuple", "bytes", "UserDict", "nested"],
)
def test_a_value_of_a_class_no_json_parser_gives_is_removed_whole(
    key: PseudonymKey, value: Any
) -> None:
    # Read as an object, it would take the attribute's keep whole, not the rules inside it.
    plan = plan_of(
        [rules("Patient", ("emergencyContact", "keep"), ("emergencyContact.phone", "redact"))]
    )
    resource = {"resourceType": "Patient", "id": "p1", "emergencyContact": value}
    out = anonymize(resource, plan, key)
    assert "555-1234" not in repr(out)
    assert "emergencyContact" not in out
    assert explain(resource, plan, key).resource == out


def test_a_fhir_format_reference_is_read_as_its_target(key: PseudonymKey) -> None:
    # R4 references.html, "Literal References": what Aidbox keeps where it does not convert
    plan = plan_of([rules("Observation", ("subject", "keep"), ("focus", "keep"))])
    resource = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/p1/_history/3", "display": "Alice Smith"},
        "focus": [{"reference": "https://clinic.example/fhir/Patient/p1"}, {"reference": "x y"}],
    }
    out, targets = anonymize_with_targets(resource, plan, key)
    gid = key.resource_id("Patient", "p1")
    assert out["subject"] == {"resourceType": "Patient", "id": gid}
    assert "focus" not in out  # an absolute URL in this form, or no reference at all
    assert targets == {("Patient", gid): "p1"}
    assert explain(resource, plan, key).resource == out
