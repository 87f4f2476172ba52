"""The shipped safe-harbor profile on the places where what it kept was not constrained:
quantities' codes and systems, the birth-sex extension, questionnaire items, age codes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from app.anonymize import (
    PseudonymKey,
    anonymize,
    compile_profile,
    explain,
    load_profile,
    shadowed_questions,
)
from app.anonymize.profile import QuestionnaireRules, QuestionRule, parse_profile
from app.anonymize.shared import Shared
from tests.unit.anonymize.conftest import TODAY

PLAN = compile_profile(load_profile("safe-harbor"), today=TODAY)
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
AGGREGATED = {"value": 90, "comparator": ">=", "unit": "years", "system": UCUM, "code": "a"}


def observation(value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "value": value, **extra}


def test_a_quantity_keeps_its_ucum_system_and_code(key: PseudonymKey) -> None:
    rate = {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"}
    out = anonymize(observation({"Quantity": rate}), PLAN, key)
    assert out["value"] == {"Quantity": rate}


@pytest.mark.parametrize(
    ("quantity", "sent"),
    [
        # Quantity.system and Quantity.code are unconstrained strings in R4
        (
            {"value": 5, "unit": "mg", "system": "http://alice-smith.example", "code": "mg"},
            {"value": 5, "unit": "mg", "code": "mg"},
        ),
        (
            {"value": 5, "unit": "mg", "system": UCUM, "code": "AliceSmith"},
            {"value": 5, "unit": "mg", "system": UCUM},
        ),
        ({"value": 5, "code": "Bob Jones"}, {"value": 5}),
        ({"value": 5, "code": "{Carol Jones}"}, {"value": 5}),  # a UCUM annotation: any text
    ],
)
def test_a_quantity_sends_no_system_but_ucum_and_no_code_but_listed_ones(
    key: PseudonymKey, quantity: dict[str, Any], sent: dict[str, Any]
) -> None:
    out = anonymize(observation({"Quantity": quantity}), PLAN, key)
    assert out["value"] == {"Quantity": sent}


BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


@pytest.mark.parametrize("code", ["M", "F", "UNK", "OTH", "ASKU"])
def test_the_birth_sex_extension_sends_the_codes_of_its_value_set(
    key: PseudonymKey, code: str
) -> None:
    patient = {"resourceType": "Patient", "extension": [{"url": BIRTHSEX, "value": {"code": code}}]}
    assert anonymize(patient, PLAN, key)["extension"] == [
        {"url": BIRTHSEX, "value": {"code": code}}
    ]


@pytest.mark.parametrize("code", ["AliceSmith", "female", "f", "Alice Smith, born 1931"])
def test_the_birth_sex_extension_sends_nothing_else(key: PseudonymKey, code: str) -> None:
    patient = {"resourceType": "Patient", "extension": [{"url": BIRTHSEX, "value": {"code": code}}]}
    assert "extension" not in anonymize(patient, PLAN, key)


def response(*items: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": list(items)}


def answered(link_id: str, text: str | None, value: dict[str, Any]) -> dict[str, Any]:
    item = {"linkId": link_id, "answer": [{"value": value}]}
    return item if text is None else {**item, "text": text}


def test_identifying_link_ids_are_removed_inside_an_allowed_question(key: PseudonymKey) -> None:
    # the texts are allowed questions; the linkIds name identifiers, and the redact lists
    # come first
    pressure = {
        "linkId": "bp",
        "text": "Blood pressure",
        "item": [
            answered("member-id", "Heart rate", {"integer": 5550123}),
            answered("patient-phone", "Pulse", {"decimal": 5550124.0}),
            answered("sys", "Systolic blood pressure", {"integer": 120}),
        ],
    }
    assert anonymize(response(pressure), PLAN, key)["item"] == [
        {"linkId": "bp", "item": [{"linkId": "sys", "answer": [{"value": {"integer": 120}}]}]}
    ]


def test_an_item_without_text_in_an_allowed_question_sends_no_answer(key: PseudonymKey) -> None:
    weight = {
        "linkId": "w",
        "text": "Body weight",
        "answer": [{"value": {"decimal": 72.5}}],
        "item": [
            answered("x17", None, {"integer": 123456789}),
            answered("x18", None, {"Coding": {"system": "http://clinic.example/ids", "code": "7"}}),
        ],
    }
    assert anonymize(response(weight), PLAN, key)["item"] == [
        {
            "linkId": "w",
            "answer": [{"value": {"decimal": 72.5}}],
            "item": [{"linkId": "x17"}, {"linkId": "x18"}],
        }
    ]


@pytest.mark.parametrize(
    ("system", "code"),
    [
        *((LOINC, c) for c in ("30525-0", "21611-9", "21612-7", "29553-5", "30972-4")),
        *((LOINC, c) for c in ("63900-5", "39016-1", "35659-2")),
        *(("http://snomed.info/sct", c) for c in ("445518008", "424144002", "397659008")),
        ("http://snomed.info/sct", "423493009"),
    ],
)
def test_an_age_coded_observation_over_89_is_aggregated(
    key: PseudonymKey, system: str, code: str
) -> None:
    # LOINC 63900-5 "Current age or age at death": an age in years, as the others; 39016-1
    # "Age at death", the Decedent Age of HL7's death reporting IG; 35659-2 "Age at specimen
    # collection", a laboratory report's; SNOMED CT 423493009 "Age at diagnosis"
    coded = {"coding": [{"system": system, "code": code}]}
    for value in (
        {"integer": 95},
        {"Quantity": {"value": 95, "unit": "a"}},
        {"Quantity": {"value": 95}},
    ):
        out = anonymize(observation(value, code=coded), PLAN, key)
        assert out["value"] in ({"integer": 90}, {"Quantity": AGGREGATED}), (code, value)
    young = anonymize(observation({"integer": 45}, code=coded), PLAN, key)
    assert young["value"] == {"integer": 45}


def test_an_age_in_a_malformed_code_is_still_capped(key: PseudonymKey) -> None:
    # code is one CodeableConcept and coding an array of Coding in R4; a clinic's store may hold
    # either shape the other way, and the walker sends what it finds in both: the cap holds.
    age = {"system": LOINC, "code": "30525-0"}
    for code in (
        [{"coding": [age]}],
        {"coding": age},
        [{"coding": age}],
        {"coding": [{"system": LOINC, "code": ["30525-0"]}, age]},
        {"coding": [{"system": [LOINC], "code": "30525-0"}, {"code": {"x": 1}}, age]},
        {"coding": [{"system": LOINC, "code": ["30525-0"]}]},  # sent as it is: it counts
        {"coding": [{"system": [LOINC], "code": "30525-0"}]},
        [{"coding": {"system": [LOINC], "code": ["x", "30525-0"]}}],
    ):
        out = anonymize(observation({"integer": 104}, code=code), PLAN, key)
        assert out.get("value") in (None, {"integer": 90}), code
        assert explain(observation({"integer": 104}, code=code), PLAN, key).resource == out, code


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 95, "system": "http://unitsofmeasure.org/", "code": "a"},  # a misspelt UCUM
        {"value": 1200, "system": "UCUM", "code": "mo"},
        {"value": 5000, "system": "urn:local", "code": "wk"},  # 95.8 years
    ],
)
def test_an_age_in_a_time_code_under_another_system_is_still_aggregated(
    key: PseudonymKey, quantity: dict[str, Any]
) -> None:
    # the profile drops a system it does not know and sends the code: the age must not
    # leave as {value: 95, code: "a"}, which reads 95 years
    coded = {"coding": [{"system": LOINC, "code": "21840-4"}]}  # no age code: any Quantity
    out = anonymize(observation({"Quantity": quantity}, code=coded), PLAN, key)
    assert out["value"] == {"Quantity": AGGREGATED}


@pytest.mark.parametrize(
    "coding",
    [
        {"system": "http://snomed.info/sct", "code": "424144002"},  # current chronological age
        {"system": "http://snomed.info/sct", "code": "397659008"},  # age
        {"system": "urn:oid:2.16.840.1.113883.6.1", "code": "30525-0"},  # LOINC by its OID
        {"system": "urn:oid:2.16.840.1.113883.6.96", "code": "445518008"},  # SNOMED CT by OID
        # the system is free text: none, HL7 v2's name, misspelt, a SNOMED CT edition
        {"code": "30525-0"},
        {"system": "LN", "code": "30525-0"},
        {"system": "http://loinc.org/", "code": "30525-0"},
        {"system": "https://LOINC.org", "code": "30525-0"},
        {"system": "http://snomed.info/sct/731000124108", "code": "397659008"},
        {"system": "http://loinc.org", "code": ["30525-0"]},  # a list where R4 has one code
    ],
)
def test_an_age_under_another_age_code_or_any_system_is_aggregated(
    key: PseudonymKey, coding: dict[str, str]
) -> None:
    component = {"code": {"coding": [coding]}, "value": {"Quantity": {"value": 97, "unit": "yo"}}}
    resource = observation({"integer": 97}, code={"coding": [coding]}, component=[component])
    out = anonymize(resource, PLAN, key)
    assert out["value"] == {"integer": 90}
    assert out["component"][0]["value"] == {"Quantity": AGGREGATED}


def test_a_range_of_ages_is_aggregated_above_89(key: PseudonymKey) -> None:
    # R4 Condition.onset[x] is a dateTime, an Age, a Period, a Range or a string: beside an
    # Age, a Range is a range of ages, in years when it names no unit
    condition = {
        "resourceType": "Condition",
        "subject": {"resourceType": "Patient", "id": "p1"},
        "onset": {"Range": {"low": {"value": 95}, "high": {"value": 97}}},
        "abatement": {"Range": {"low": {"value": 40}, "high": {"value": 96, "unit": "yo"}}},
    }
    out = anonymize(condition, PLAN, key)
    assert out["onset"] == {"Range": {"low": AGGREGATED, "high": AGGREGATED}}
    assert out["abatement"] == {"Range": {"low": {"value": 40}, "high": AGGREGATED}}
    # where no Age is an option, a Range is any range: Observation.value[x]
    weight = {"Range": {"low": {"value": 95}, "high": {"value": 97}}}
    assert anonymize(observation(weight), PLAN, key)["value"] == weight


def test_an_integer_out_of_the_r4_range_is_not_sent(key: PseudonymKey) -> None:
    # R4 integer is 32 bits: a phone number typed as one is no integer
    for number in (5551234567, -(2**31) - 1, 2**31):
        out = anonymize(observation({"integer": number}), PLAN, key)
        assert "value" not in out, number
    edge = anonymize(observation({"integer": 2**31 - 1}), PLAN, key)
    assert edge["value"] == {"integer": 2**31 - 1}


def test_a_reference_to_a_pulled_type_keeps_only_an_id_headquarters_issued(
    key: PseudonymKey,
) -> None:
    # A clinic may hold Locations and Organizations of its own, whose ids are its words (a
    # home visit's place, an employer): only headquarters' own ids leave (app/anonymize/
    # shared.py), whatever their shape; any other reference to the type is removed.
    shared = Shared(frozenset({"Organization", "Location"}), {"Organization": {"org-1"}})
    plan = replace(PLAN, shared=shared)
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "serviceProvider": {"resourceType": "Organization", "id": "org-1"},
    }
    out = anonymize(encounter, plan, key)
    assert out["serviceProvider"] == {"resourceType": "Organization", "id": "org-1"}
    fhir_form = {**encounter, "serviceProvider": {"reference": "Organization/org-1"}}
    assert anonymize(fhir_form, plan, key)["serviceProvider"] == out["serviceProvider"]
    for typed in ("555-12-3456", "MRN-00451234", "Alice Smith, 555-12-3456", 7, "x" * 65):
        sent = {**encounter, "serviceProvider": {"resourceType": "Organization", "id": typed}}
        assert "serviceProvider" not in anonymize(sent, plan, key), typed
    home = {"location": {"resourceType": "Location", "id": "home-Jane-Doe-42-Elm-St-02139"}}
    visit = anonymize({**encounter, "location": [home]}, plan, key)
    assert b"Jane-Doe" not in orjson.dumps(visit)


@pytest.mark.parametrize("value", [[97], [80], [40, 97]])
def test_a_quantity_whose_value_is_an_array_is_removed(key: PseudonymKey, value: list) -> None:
    # R4 Quantity.value is 0..1: an array of them is no value the checks of an age can read
    age = {"value": value, "unit": "years", "system": UCUM, "code": "a"}
    condition = {"resourceType": "Condition", "onset": {"Age": age}}
    assert "onset" not in anonymize(condition, PLAN, key)
    assert "onset" not in anonymize({**condition, "recordedDate": "2014-03-01"}, PLAN, key)
    coded = observation({"Quantity": age}, code=AGE_CODE)
    assert "value" not in anonymize(coded, PLAN, key)
    weight = {"linkId": "w", "text": "Weight", "answer": [{"value": {"Quantity": age}}]}
    assert "answer" not in anonymize(response(weight), PLAN, key)["item"][0]


def patient_at(**address: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "address": [address]}


@pytest.mark.parametrize(
    "address",
    [
        {"postalCode": "75001", "country": "FR", "city": "Paris"},
        {"postalCode": "10115", "country": "Germany"},
        {"postalCode": "00118", "country": "ITA"},
        {"postalCode": "28001", "state": "Madrid"},
        {"postalCode": "06000", "state": "DE-BY"},
        {"postalCode": "80331", "country": ["DE"]},
    ],
)
def test_a_postal_code_of_an_address_outside_the_us_does_not_leave(
    key: PseudonymKey, address: dict[str, Any]
) -> None:
    # the three-digit prefix is a rule for US ZIP codes (§164.514(b)(2)(i)(B)); another
    # country's prefix is a geographic unit smaller than a state ("75" is Paris)
    sent = anonymize(patient_at(**address), PLAN, key)
    assert "postalCode" not in str(sent)


@pytest.mark.parametrize(
    ("address", "zip3"),
    [
        ({"postalCode": "02139", "country": "US"}, "021"),
        ({"postalCode": "02139", "country": " United States of America "}, "021"),
        ({"postalCode": "02139", "state": "MA"}, "021"),
        ({"postalCode": "00901", "country": "PR"}, "009"),
        ({"postalCode": "02139"}, "021"),  # nothing says where: read as a US address
    ],
)
def test_a_us_address_sends_its_zip3(key: PseudonymKey, address: dict[str, Any], zip3: str) -> None:
    assert anonymize(patient_at(**address), PLAN, key)["address"][0]["postalCode"] == zip3


@pytest.mark.parametrize(
    "address",
    [
        {"country": "IT", "city": "Milano", "state": "MI"},  # Milan's province, not Michigan
        {"country": "ES", "state": "MA"},  # Málaga's province
        {"country": "Italia", "state": "CO"},  # Como; a country no list knows is not the US
        {"country": "FR", "state": "Georgia"},
    ],
)
def test_a_us_states_code_in_an_address_outside_the_us_does_not_leave(
    key: PseudonymKey, address: dict[str, Any]
) -> None:
    # abroad, a code that reads as a US state names a province, below a state
    # (§164.514(b)(2)(i)(B)); helper-29's review
    sent = anonymize(patient_at(**address), PLAN, key)
    assert "state" not in str(sent), sent


@pytest.mark.parametrize(
    ("address", "state"),
    [
        ({"country": "US", "state": "MI"}, "MI"),
        ({"state": "CO"}, "CO"),  # nothing says where: read as a US address
        ({"country": "DE", "state": "DE-BY"}, "DE-BY"),
        ({"country": "IT", "state": "IT-25"}, "IT-25"),  # Lombardy, a region: first level
    ],
)
def test_a_state_that_matches_its_address_leaves(
    key: PseudonymKey, address: dict[str, Any], state: str
) -> None:
    assert anonymize(patient_at(**address), PLAN, key)["address"][0]["state"] == state


def test_a_state_the_profile_lists_leaves_from_its_countrys_addresses(key: PseudonymKey) -> None:
    # README, `state`: a clinic outside the US lists its states in `values`; Western
    # Australia's "WA" is also Washington's code, and leaves where the profile lists it
    # (helper-32's review)
    states = ["NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT"]
    body = load_profile("safe-harbor").model_dump(by_alias=True, exclude_none=True)
    [address] = [entry for entry in body["datatypes"] if entry["type"] == "Address"]
    [rule] = [rule for rule in address["rules"] if rule["path"] == "state"]
    rule["values"] = states
    plan = compile_profile(parse_profile(body), today=TODAY)
    for state in states:
        sent = anonymize(patient_at(country="AU", state=state), plan, key)
        assert sent["address"][0].get("state") == state, sent
    assert "state" not in anonymize(patient_at(country="AU", state="MI"), plan, key)["address"][0]


LOCAL_AGE = {"coding": [{"system": "http://clinic.example/flowsheet", "code": "AGE"}]}


@pytest.mark.parametrize(
    "unit",
    [
        *("Jahre", "años", "ans", "anni", "yo", "y/o", "y.o.", "year(s)", "Monate"),
        *("years old", "yrs.", "yr.", "y.o", "yo.", "a.", "Jahren", "Lebensjahre"),
        *("años de edad", "anni compiuti", "year old"),
    ],
)
def test_a_time_in_a_unit_word_of_another_language_is_read_as_one(
    key: PseudonymKey, unit: str
) -> None:
    months = unit == "Monate"
    quantity = {"value": 97 * 12 if months else 97, "unit": unit}
    out = anonymize(observation({"Quantity": quantity}, code=LOCAL_AGE), PLAN, key)
    assert out["value"] == {"Quantity": AGGREGATED}


def test_a_time_under_a_code_no_list_has_is_judged_by_the_dates_beside_it(
    key: PseudonymKey,
) -> None:
    # 82 years in 2014 are 93 today, whatever code says it is an age
    years = {"value": 82, "unit": "years", "system": UCUM, "code": "a"}
    dated = {"effective": {"dateTime": "2014-02-01"}, "code": LOCAL_AGE}
    out = anonymize(observation({"Quantity": years}, **dated), PLAN, key)
    assert "value" not in out and out["effective"] == {"dateTime": "2014"}
    recent = {**dated, "effective": {"dateTime": "2024"}}
    assert (
        anonymize(observation({"Quantity": years}, **recent), PLAN, key)["value"]["Quantity"][
            "value"
        ]
        == 82
    )
    # a Quantity in no time unit is no age: an old weight stays, and so does a power in
    # diopters ("D": one capital letter is a unit of its own, not a day)
    diopters = {"value": 43.5, "unit": "D"}
    near_90 = {**dated, "effective": {"dateTime": "1937"}}
    sent = anonymize(observation({"Quantity": diopters}, **near_90), PLAN, key)
    assert sent["value"]["Quantity"]["value"] == 43.5
    weight = {"value": 80, "unit": "kg", "system": UCUM, "code": "kg"}
    old = {**dated, "effective": {"dateTime": "1950"}}
    assert anonymize(observation({"Quantity": weight}, **old), PLAN, key)["value"] == {
        "Quantity": weight
    }


def test_what_is_no_age_over_89_is_not_taken_for_one(key: PseudonymKey) -> None:
    # the checks above must not aggregate what says no age over 89: a dose range in an
    # extension (Extension.value[x] offers every type, a Range among them, and an Age), a
    # young age whose unit word the profile drops, a current in amperes ("A" is no "a")
    doses = {"Range": {"low": {"value": 100, "unit": "mg"}, "high": {"value": 250, "unit": "mg"}}}
    dosed = observation({"integer": 1}, extension=[{"url": "http://x.example/d", "value": doses}])
    assert anonymize(dosed, compile_profile(load_profile("minimal")), key)["extension"] == [
        {"url": "http://x.example/d", "value": doses}
    ]
    infant = {
        "resourceType": "Condition",
        "subject": {"resourceType": "Patient", "id": "p1"},
        "onset": {"Age": {"value": 120, "unit": "day"}},
    }
    assert anonymize(infant, PLAN, key)["onset"]["Age"]["value"] == 120
    current = {"value": 120, "system": "urn:oid:2.16.840.1.113883.6.8", "code": "A"}
    assert (
        anonymize(observation({"Quantity": current}), PLAN, key)["value"]["Quantity"]["value"]
        == 120
    )


@pytest.mark.parametrize(
    "asked",
    [
        "\uff2d\uff45\uff4d\uff42\uff45\uff52 ID",  # fullwidth letters (NFKC: Member ID)
        "Mem\u200bber ID",  # a zero-width space
        "Mem\u00adber ID",  # a soft hyphen
        "M\ufeffember ID",  # a zero-width no-break space (a byte order mark)
        # default-ignorable, yet no format character (Unicode DerivedCoreProperties.txt)
        "Mem\u034fber ID",  # a combining grapheme joiner
        "Member\ufe0f ID",  # a variation selector
        "Mem\U000e0101ber ID",  # a supplementary variation selector
        "Mem\u3164ber ID",  # a Hangul filler
        "Mem\u17b4ber ID",  # a Khmer inherent vowel
        "Member\u2800ID",  # a Braille blank, shown as a space
    ],
)
def test_an_identifying_question_is_caught_however_its_text_is_encoded(
    key: PseudonymKey, asked: str
) -> None:
    def pressure(text: str) -> dict[str, Any]:
        member = answered("x1", text, {"integer": 5550123})
        items = [member, answered("sys", "Systolic", {"integer": 120})]
        return {"linkId": "bp", "text": "Blood pressure", "item": items}

    sent = anonymize(response(pressure(asked)), PLAN, key)
    assert sent == anonymize(response(pressure("Member ID")), PLAN, key)
    assert "5550123" not in str(sent)


@pytest.mark.parametrize(
    "asked",
    [
        "\u202eDI rebmeM",  # a right-to-left override: shown as "Member ID"
        # nested overrides and isolates, marks, paragraph breaks (UAX #9): shown as
        # "Member ID" or "Year of birth" by a bidi implementation (libfribidi)
        "\u202eDI \u202dber\u202cmeM\u202c",
        "\u2067\u2066birth\u2069 \u2066of\u2069 \u2066Year\u2069\u2069",
        "\u200fbirth \u200fof \u200fYear",
        "\u202eraeY\u2029\u202efo\u2029\u202ehtrib",
        "\u05e9\u05dd",  # Hebrew, "name": a right-to-left script
        "\u0627\u0644\u0627\u0633\u0645 Pain score",  # Arabic, "the name"
    ],
)
def test_a_text_a_screen_may_show_in_another_order_reads_as_no_text(
    key: PseudonymKey, asked: str
) -> None:
    # an order rebuilt here may differ from the one shown: the item is judged by its linkId
    member = answered("x1", asked, {"integer": 5550123})
    items = [member, answered("sys", "Systolic", {"integer": 120})]
    sent = anonymize(response({"linkId": "bp", "text": "Blood pressure", "item": items}), PLAN, key)
    assert "5550123" not in str(sent)
    assert "5550123" not in str(anonymize(response(member), PLAN, key))


@pytest.mark.parametrize("blank", ["\ufeff\u3164", "\u2800", "\u034f\u180e"])
def test_an_item_whose_text_shows_nothing_sends_no_answer_in_an_allowed_question(
    key: PseudonymKey, blank: str
) -> None:
    # judged like an item without text: nobody can read what it asks
    items = [
        answered("x1", blank, {"integer": 5550123}),
        answered("sys", "Systolic", {"integer": 1}),
    ]
    pressure = {"linkId": "bp", "text": "Blood pressure", "item": items}
    assert "5550123" not in str(anonymize(response(pressure), PLAN, key))


@pytest.mark.parametrize(
    "asked",
    [
        *("S.S.N.", "Tel", "Mobile", "Medicare number", "Medicaid ID", "NPI", "Driver's lic. no"),
        *("Beneficiary ID", "Bed number", "Teléfono", "Geburtsdatum", "Nombre", "Vorname"),
        *("Hospital number", "Patient ID", "NHS number", "D.O.B.", "Initials", "Home tel."),
        *("PLZ", "Postleitzahl", "Wohnort", "Straße", "Handynummer", "Versichertennummer"),
        *("Date de naissance", "Nom", "Prénom", "Courriel", "Data di nascita", "Nome"),
        *("Codice fiscale", "Cognome", "Indirizzo", "DNI", "Correo", "Domicilio", "Celular"),
        *("Year of birth", "Time of birth", "Birth year", "Año de nacimiento"),
        # decomposed by a joiner between the letter and its accent: still "Teléfono"
        "Tele\u034f\u0301fono",
    ],
)
def test_identifying_questions_in_abbreviations_and_other_languages_are_removed(
    key: PseudonymKey, asked: str
) -> None:
    items = [
        answered("x1", asked, {"integer": 5550123}),
        answered("sys", "Systolic", {"integer": 120}),
    ]
    pressure = {"linkId": "bp", "text": "Blood pressure", "item": items}
    assert "5550123" not in str(anonymize(response(pressure), PLAN, key))


@pytest.mark.parametrize(
    "asked",
    [
        *("Age at death", "Age at death (years)", "Age at time of death", "Age of death"),
        *("Patient's age at death", "Date of death", "Time of death", "Sterbealter"),
        *("Todesdatum", "Fecha de defunción", "Edad al fallecer", "Date du décès"),
        *("Âge au décès", "Data del decesso"),
    ],
)
def test_a_death_asked_of_in_any_wording_sends_no_answer(key: PseudonymKey, asked: str) -> None:
    # a date of death is a date element (§164.514(b)(2)(i)(C)), and an age at death is one
    # in years: with the year of another date it says the year of death
    items = [answered("d", asked, {"integer": 80}), answered("sys", "Systolic", {"integer": 120})]
    pressure = {"linkId": "bp", "text": "Blood pressure", "item": items}
    sent = anonymize(response(pressure), PLAN, key)
    assert [item["linkId"] for item in sent["item"][0]["item"]] == ["sys"]


ALLOWED = [q for q in load_profile("safe-harbor").questionnaire.questions if q.method != "redact"]


@pytest.mark.parametrize("asked", [text for question in ALLOWED for text in question.text])
def test_every_question_the_profile_allows_sends_its_answer(key: PseudonymKey, asked: str) -> None:
    # no word of the redact lists, which come first, hides a question allowed further down
    sent = anonymize(response(answered("q1", asked, {"integer": 42})), PLAN, key)
    assert sent["item"][0]["answer"] == [{"value": {"integer": 42}}]


def test_the_shipped_profiles_allow_no_question_that_an_earlier_rule_takes() -> None:
    for profile in ("safe-harbor", "minimal"):
        assert shadowed_questions(load_profile(profile).questionnaire.questions) == []


def test_a_question_allowed_after_the_redact_lists_is_named_as_taken_by_them(
    key: PseudonymKey,
) -> None:
    profile = load_profile("safe-harbor")
    added = QuestionRule(method="keep", text=["Contact lenses", "Heart rate"], linkId=["cell-2"])
    questions = [*profile.questionnaire.questions, added]
    found = shadowed_questions(questions)
    last = len(questions) - 1
    assert found == [
        f"questionnaire.questions[{last}] text 'Contact lenses' is matched first by "
        "questionnaire.questions[1] (redact)",
        f"questionnaire.questions[{last}] linkId 'cell-2' is matched first by "
        "questionnaire.questions[1] (redact)",
    ]
    # and so it is: the earlier rule decides
    plan = compile_profile(
        profile.model_copy(update={"questionnaire": QuestionnaireRules(questions=questions)})
    )
    sent = anonymize(response(answered("q1", "Contact lenses", {"boolean": True})), plan, key)
    assert "item" not in sent


def smoking(*nested: dict[str, Any]) -> dict[str, Any]:
    """An allowed question with nested items (each judged by the rules its own text matches:
    those an allowed rule names inherit its keep)."""
    return {"linkId": "smoke", "text": "Smoking status", "item": list(nested)}


@pytest.mark.parametrize(
    "asked",
    [
        *("Current age", "Your age", "Age (in years)", "Patient's age", "Age at onset", "AGE:"),
        *("How old is the patient", "Years old", "Edad", "Alter", "Âge", "Età del paziente"),
        # words joined by underscores or digits are words all the same
        *("patient_age", "Age1", "AGE_AT_VISIT", "2nd age check"),
        *("Patientenalter", "Lebensalter", "Alter in Jahren", "Erkrankungsalter"),
        *("¿Cuántos años tiene?", "Wie alt sind Sie?", "Quanti anni ha?"),
    ],
)
def test_an_age_asked_in_any_wording_is_capped_at_90_nested_too(
    key: PseudonymKey, asked: str
) -> None:
    top = anonymize(response(answered("a", asked, {"integer": 95})), PLAN, key)
    assert top["item"][0]["answer"] == [{"value": {"integer": 90}}]
    nested = anonymize(response(smoking(answered("a", asked, {"integer": 95}))), PLAN, key)
    assert nested["item"][0]["item"][0]["answer"] == [{"value": {"integer": 90}}]
    young = anonymize(response(smoking(answered("a", asked, {"integer": 40}))), PLAN, key)
    assert young["item"][0]["item"][0]["answer"] == [{"value": {"integer": 40}}]


@pytest.mark.parametrize("asked", ["Average cigarettes per day", "Dosage", "Stage", "Page 2"])
def test_a_word_that_only_holds_age_is_no_age_question(key: PseudonymKey, asked: str) -> None:
    # allowed by a rule of the clinic's own, after the shipped ones: its answer is no age
    profile = load_profile("safe-harbor")
    questions = [*profile.questionnaire.questions, QuestionRule(method="keep", text=[asked])]
    plan = compile_profile(
        profile.model_copy(update={"questionnaire": QuestionnaireRules(questions=questions)})
    )
    out = anonymize(response(smoking(answered("n", asked, {"integer": 120}))), plan, key)
    assert out["item"][0]["item"][0]["answer"] == [{"value": {"integer": 120}}]


AGE_CODE = {"coding": [{"system": LOINC, "code": "30525-0"}]}


@pytest.mark.parametrize(
    ("age", "measured", "sent"),
    [
        (40, "1950-03-02", False),  # 40 in 1950: 115 in 2025
        (85, "2019-11-20", False),  # 85 in 2019: 91 now
        (85, "2022", True),  # 85 in 2022: 88 now
        (40, "1930-01-01", True),  # the year is not sent (over 89 years ago): nothing dates it
    ],
)
def test_an_age_leaves_only_when_the_dates_beside_it_keep_it_under_90_today(
    key: PseudonymKey, age: int, measured: str, sent: bool
) -> None:
    years = {"value": age, "unit": "years", "system": UCUM, "code": "a"}
    resource = observation({"Quantity": years}, code=AGE_CODE, effective={"dateTime": measured})
    out = anonymize(resource, PLAN, key)
    assert ("value" in out) is sent
    period = {"Period": {"start": measured}}
    integer = anonymize(observation({"integer": age}, code=AGE_CODE, effective=period), PLAN, key)
    assert ("value" in integer) is sent
    # an instant is not sent (its year is no instant): it dates nothing that leaves
    issued = anonymize(observation({"integer": age}, code=AGE_CODE, issued=measured), PLAN, key)
    assert "value" in issued and "issued" not in issued


def test_an_age_at_onset_is_removed_when_the_recorded_year_puts_it_over_89(
    key: PseudonymKey,
) -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"resourceType": "Patient", "id": "p1"},
        "onset": {"Age": {"value": 60, "unit": "years", "system": UCUM, "code": "a"}},
        "recordedDate": "1975-05-05",
    }
    out = anonymize(condition, PLAN, key)
    assert "onset" not in out and out["recordedDate"] == "1975"
    recent = anonymize({**condition, "recordedDate": "2010"}, PLAN, key)
    assert recent["onset"]["Age"]["value"] == 60
    reasons = {c.rule for c in explain(condition, PLAN, key).changes}
    assert "engine: an age a date of the resource puts over 89 today" in reasons


def test_an_age_answer_is_removed_when_the_response_dates_it_past_89(key: PseudonymKey) -> None:
    answer = answered("a", "Age", {"integer": 80})
    old = anonymize({**response(answer), "authored": "2014-02-02T10:00:00Z"}, PLAN, key)
    assert "answer" not in old["item"][0] and old["authored"] == "2014"
    new = anonymize({**response(answer), "authored": "2024-02-02T10:00:00Z"}, PLAN, key)
    assert new["item"][0]["answer"] == [{"value": {"integer": 80}}]


def test_a_resource_walked_again_for_its_ages_explains_every_change_once(
    key: PseudonymKey,
) -> None:
    labelled = {"security": [{"system": "urn:clinic", "code": "VIP"}]}
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "meta": labelled,
        "subject": {"resourceType": "Patient", "id": "p1"},
        "onset": {"Age": {"value": 60, "unit": "years", "system": UCUM, "code": "a"}},
        "recordedDate": "1975-05-05",
    }
    explained = explain(condition, PLAN, key)
    assert explained.resource == anonymize(condition, PLAN, key)
    paths = [change.path for change in explained.changes]
    assert len(paths) == len(set(paths))
    assert "Condition.meta.security" in paths and "Condition.id" in paths


@pytest.mark.parametrize("text", [".", "—", "_", "()", "·", "1.", " - "])
def test_a_nested_item_whose_text_has_no_letter_sends_no_answer(
    key: PseudonymKey, text: str
) -> None:
    # a text with no letter tells no more than a missing one of what it asks: it does not
    # inherit the keep of its group (helper-29's review)
    group = {
        "linkId": "w",
        "text": "Weight",
        "answer": [{"value": {"integer": 70}}],
        "item": [{"linkId": "w.1", "text": text, "answer": [{"value": {"integer": 123456789}}]}],
    }
    out = anonymize(response(group), PLAN, key)
    assert "123456789" not in str(out), out
    assert out["item"][0]["answer"] == [{"value": {"integer": 70}}]


def test_an_age_answer_below_zero_is_no_age_and_does_not_leave(key: PseudonymKey) -> None:
    # a number typed with a leading "-" into an age field (an SSN, a phone number) is no age
    answers = [
        {"value": {"integer": -123456789}},
        {"value": {"decimal": -6175551234}},
        {"value": {"Quantity": {"value": -123456789, "unit": "a"}}},
        {"value": {"integer": 0}},
        {"value": {"integer": 45}},
    ]
    out = anonymize(response({"linkId": "age", "text": "Age", "answer": answers}), PLAN, key)
    assert out["item"][0]["answer"] == [{"value": {"integer": 0}}, {"value": {"integer": 45}}]


@pytest.mark.parametrize(
    "asked",
    [
        *("Stadt", "Ciudad", "Ville", "Città", "Rufnummer", "Móvil", "Portable"),
        *("Numéro de sécurité sociale", "Número de seguro social", "Tessera sanitaria"),
        # and what no list could name: a nested question is allowed by a rule of its own
        *("Where do you live", "Wo wohnen Sie", "Kennzeichen"),
    ],
)
def test_a_nested_question_no_rule_allows_sends_no_answer_inside_an_allowed_one(
    key: PseudonymKey, asked: str
) -> None:
    # coded and numeric answers leave by their datatypes wherever an item is allowed: a
    # nested item inherits no keep unless a rule names its question (docs/anonymization.md)
    nested = {
        "linkId": "n",
        "text": asked,
        "answer": [
            {"value": {"Coding": {"system": "urn:x", "code": "Springfield"}}},
            {"value": {"decimal": 6175551234}},
        ],
    }
    [smoke] = anonymize(response(smoking(nested)), PLAN, key)["item"]
    # removed whole by the redact lists, or with its linkId only as no rule's question
    assert smoke in ({"linkId": "smoke"}, {"linkId": "smoke", "item": [{"linkId": "n"}]})


@pytest.mark.parametrize(
    "system",
    [
        "urn:oid:2.16.840.1.113883.6.93",
        "http://terminology.hl7.org/CodeSystem/FIPS64",
        # other spellings of the same system: a URN's "urn" and namespace are case-insensitive
        # (RFC 8141), a bare OID, a trailing slash (helper-38's review)
        "URN:OID:2.16.840.1.113883.6.93",
        "2.16.840.1.113883.6.93",
        " http://terminology.hl7.org/CodeSystem/FIPS64/",
    ],
)
def test_a_county_coded_in_fips_6_4_is_removed_wherever_it_is(
    key: PseudonymKey, system: str
) -> None:
    # A county is a subdivision smaller than a state (§164.514(b)(2)(i)(B)); case reports
    # send the county of residence as a coded value (HL7 THO CodeSystem FIPS64)
    county = {"system": system, "code": "48201"}
    coded = {"CodeableConcept": {"coding": [county, {"system": LOINC, "code": "LA1-1"}]}}
    out = anonymize(observation(coded), PLAN, key)
    assert out["value"] == {"CodeableConcept": {"coding": [{"system": LOINC, "code": "LA1-1"}]}}
    answer = {"value": {"Coding": county}}
    smoke = {"linkId": "smoke", "text": "Smoking status", "answer": [answer]}
    assert "48201" not in str(anonymize(response(smoke), PLAN, key))
    explained = explain(observation(coded), PLAN, key)
    assert explained.resource == out
    assert any("code system withheld" in change.rule for change in explained.changes)
