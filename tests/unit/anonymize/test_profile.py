"""Profile validation: bad profiles are refused naming the rule; shipped profiles load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.anonymize import Profile, ProfileError, load_profile, parse_profile, shipped_profiles
from app.anonymize.profile import QuestionRule


def body(rules: list[dict[str, Any]], resource_type: str = "Patient", **extra: Any) -> dict:
    return {"id": "p", "name": "p", "resources": [{"type": resource_type, "rules": rules}], **extra}


def refused(data: dict[str, Any]) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        parse_profile(data)
    return caught.value


def test_a_bad_path_names_type_rule_index_and_path() -> None:
    error = refused(
        body([{"path": "gender", "method": "keep"}, {"path": "name..x", "method": "keep"}])
    )
    assert "Patient rule 1 ('name..x')" in str(error)
    issue = error.to_operation_outcome()["issue"][0]
    assert issue["severity"] == "error"
    assert issue["expression"] == ["resources.0"]
    assert "Patient rule 1" in issue["diagnostics"]


def test_model_validate_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        Profile.model_validate(body([{"path": "name", "method": "scramble"}]))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"path": "name", "method": "scramble"}, "method"),
        ({"path": "name", "method": "replace"}, "'value' is required"),
        ({"path": "name", "method": "keep", "value": "x"}, "'value' is required"),
        ({"path": "name", "method": "keep", "maxAge": 80}, "maxAge"),
        ({"path": "name", "method": "keep", "colour": "red"}, "Extra inputs"),
        ({"path": "id", "method": "keep"}, "set by the engine"),
        ({"path": "resourceType", "method": "redact"}, "set by the engine"),
        ({"path": "contained", "method": "keep"}, "own type's rules"),
        ({"path": "contained.name", "method": "redact"}, "own type's rules"),
        ({"path": "meta.security", "method": "keep"}, "securityLabel"),
    ],
)
def test_invalid_rules_are_refused(rule: dict[str, Any], message: str) -> None:
    error = refused(body([rule]))
    assert message in str(error)
    assert "resources.0" in str(error)


def test_duplicate_paths_are_refused_because_the_second_never_applies() -> None:
    error = refused(
        body([{"path": "name", "method": "keep"}, {"path": "name", "method": "redact"}])
    )
    assert "same selector as rule 0" in str(error)


def test_nested_item_paths_are_refused_in_questionnaire_responses() -> None:
    error = refused(
        body([{"path": "item.answer.item.linkId", "method": "keep"}], "QuestionnaireResponse")
    )
    assert "every depth" in str(error)


def test_question_rules_need_a_selector_and_types_are_unique() -> None:
    assert "linkId" in str(refused(body([], questionnaire={"questions": [{"method": "redact"}]})))
    twice = {"id": "p", "name": "p", "resources": [{"type": "Patient"}, {"type": "Patient"}]}
    assert "two entries" in str(refused(twice))


def test_a_profile_round_trips_through_its_resource_form() -> None:
    profile = load_profile("safe-harbor")
    resource = profile.to_resource()
    assert resource["resourceType"] == "AnonymizationProfile"
    assert resource["securityLabel"]["code"] == "PSEUDED"
    assert "security_label" not in resource
    assert parse_profile(resource) == profile


def test_shipped_profiles_load() -> None:
    assert {"safe-harbor", "minimal"} <= set(shipped_profiles())
    assert load_profile().id == "safe-harbor"
    assert load_profile("minimal").default == "keep"


def test_a_profile_file_that_is_not_a_profile_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ProfileError):
        load_profile(path)
    with pytest.raises(FileNotFoundError):
        load_profile("no-such-profile")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"path": "code.codng", "method": "keep"}, "CodeableConcept has no element 'codng'"),
        ({"path": "value.quantity", "method": "keep"}, "'quantity' is not a type of this choice"),
        ({"path": "status.code", "method": "keep"}, "code has no element 'code'"),
        ({"datatype": "Codng", "method": "keep"}, "not a FHIR R4 datatype"),
        ({"path": "code", "datatype": "Coding", "method": "keep"}, "either 'path' or 'datatype'"),
        ({"path": "code", "method": "redact", "values": ["a"]}, "'values' is allowed only"),
    ],
)
def test_paths_are_checked_against_the_fhir_definitions(rule: dict[str, Any], message: str) -> None:
    assert message in str(refused(body([rule], "Observation")))


def test_first_class_attributes_and_reference_uris_are_accepted() -> None:
    parse_profile(
        body(
            [
                {"path": "patientFirstName", "method": "redact"},
                {"path": "subject.uri", "method": "keep"},
                {"path": "item.answer.value.Coding", "method": "keep"},
            ],
            "QuestionnaireResponse",
        )
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "Codng", "method": "redact"}, "not a FHIR R4 datatype"),
        ({"type": "Reference", "method": "redact"}, "handled by the engine"),
        ({"type": "Coding"}, "give either 'method'"),
        ({"type": "Coding", "method": "redact", "default": "redact"}, "give either 'method'"),
        ({"type": "string", "default": "redact"}, "has no elements"),
        (
            {
                "type": "Coding",
                "default": "redact",
                "rules": [{"path": "code.x", "method": "keep"}],
            },
            "names one of its elements",
        ),
        (
            {"type": "Coding", "default": "redact", "rules": [{"path": "text", "method": "keep"}]},
            "Coding has no element 'text'",
        ),
    ],
)
def test_invalid_datatype_entries_are_refused(entry: dict[str, Any], message: str) -> None:
    error = refused(body([], datatypes=[entry]))
    assert message in str(error)
    assert "datatypes.0" in str(error)


def test_a_datatype_has_one_entry() -> None:
    twice = [{"type": "string", "method": "redact"}, {"type": "string", "method": "keep"}]
    assert "datatype string has two entries" in str(refused(body([], datatypes=twice)))


def test_a_question_matched_by_words_needs_a_word() -> None:
    with pytest.raises(ValueError, match="needs a word"):
        QuestionRule(method="redact", text=["#"], match="words")
    assert QuestionRule(method="age", text=["Age"], match="words").match == "words"
