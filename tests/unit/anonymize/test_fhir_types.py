"""The FHIR R4 type table as the walker reads it: Aidbox-format choices, bindings, primitives,
inheritance, what is required (facts of the R4 StructureDefinitions, hl7.org/fhir/R4)."""

from __future__ import annotations

import pytest

from app.anonymize.fhir_types import datatype_names, fhir_type, is_resource_type


def test_a_choice_element_is_one_object_keyed_by_type_as_in_aidbox_format() -> None:
    observation = fhir_type("Observation")
    assert observation is not None
    value = observation.elements["value"].type
    assert value.kind == "choice"
    assert {"Quantity", "CodeableConcept", "string", "boolean", "SampledData"} <= set(
        value.elements
    )
    assert value.elements["Quantity"].type.name == "Quantity"
    assert "valueQuantity" not in observation.elements


def test_backbone_elements_and_content_references_are_types_of_their_own() -> None:
    item = fhir_type("QuestionnaireResponse.item")
    assert item is not None and item.kind == "backbone"
    answer = item.elements["answer"].type
    assert answer.name == "QuestionnaireResponse.item.answer"
    assert answer.elements["item"].type is item  # contentReference #QuestionnaireResponse.item
    assert item.elements["item"].type is item


def test_required_bindings_of_codes_are_enumerated() -> None:
    patient = fhir_type("Patient")
    assert patient is not None
    gender = patient.elements["gender"]
    assert gender.codes == {"male", "female", "other", "unknown"}
    assert gender.accepts("female")
    assert not gender.accepts("Jane Doe")
    assert fhir_type("Coding").elements["code"].codes is None  # a code of any code system


@pytest.mark.parametrize(
    ("datatype", "good", "bad"),
    [
        ("date", ["2024", "2024-02", "2024-02-29"], ["24-02-29", "2024-13", "Feb 2024", 2024]),
        ("dateTime", ["2024", "2024-02-29T10:00:00Z"], ["2024-02-29T10:00", "yesterday"]),
        ("instant", ["2024-02-29T10:00:00.123+01:00"], ["2024", "2024-02-29"]),
        ("boolean", [True, False], ["true", 1]),
        ("positiveInt", [1, 90], [0, -1, 1.5, True, "3"]),
        ("unsignedInt", [0, 7], [-1]),
        ("decimal", [1, 1.5], ["1.5", False]),
        ("id", ["a-1.B"], ["a b", "x" * 65]),
        ("code", ["in-progress", "a b"], [" a", "a  b", ""]),
    ],
)
def test_primitives_accept_only_values_of_their_type(datatype: str, good: list, bad: list) -> None:
    kind = fhir_type(datatype)
    assert kind is not None and kind.is_primitive
    assert all(kind.accepts(value) for value in good)
    assert not any(kind.accepts(value) for value in bad)


def test_inheritance_lineage_and_reach() -> None:
    age = fhir_type("Age")
    assert age is not None
    assert [t.name for t in age.lineage] == ["Age", "Quantity", "Element"]
    assert age.is_a("Quantity") and not age.is_a("Coding")
    markdown = fhir_type("markdown")
    assert markdown is not None and markdown.is_a("string")
    coding = fhir_type("Coding")
    assert coding is not None
    # a Coding can hold a Reference (in an extension), a string cannot hold anything
    assert coding.reaches(frozenset({"Reference"}))
    assert not fhir_type("string").reaches(frozenset({"Reference"}))  # type: ignore[union-attr]


def test_required_elements_follow_minimum_cardinality() -> None:
    assert fhir_type("Extension").required == {"url"}  # type: ignore[union-attr]
    assert fhir_type("QuestionnaireResponse.item").required == {"linkId"}  # type: ignore[union-attr]
    assert fhir_type("Patient.link").required == {"other", "type"}  # type: ignore[union-attr]
    assert fhir_type("Coding").required == frozenset()  # type: ignore[union-attr]


def test_medplum_additions_are_not_r4() -> None:
    meta = fhir_type("Meta")
    assert meta is not None
    assert set(meta.elements) == {
        "id",
        "extension",
        "versionId",
        "lastUpdated",
        "source",
        "profile",
        "security",
        "tag",
    }


def test_names_of_resources_and_datatypes() -> None:
    assert is_resource_type("Patient") and is_resource_type("Coverage")
    assert not is_resource_type("Coding") and not is_resource_type("SyncConfig")
    # the abstract bases are not the type of any resource, and a non-string is no type name
    assert not is_resource_type("Resource") and not is_resource_type("DomainResource")
    assert not any(map(is_resource_type, (None, 7, {"text": "Alice"}, ["Patient"])))
    names = datatype_names()
    assert {"string", "Coding", "Quantity", "Age", "Reference", "Extension"} <= names
    assert "Patient" not in names and "Observation.component" not in names
