"""PHI in the places real EHR feeds put it and a path-only profile does not look.

Every kind found leaking in issue 13 is planted here, in valid FHIR R4 (Aidbox format), by the
same generator as the rest of the corpus (``corpus.py``, whose ``_Generator`` mixes this in):

- references without a target: display only ("Daughter: Jane Q…", "BP monitor SN …"),
  identifier only, an element id with an identifier;
- free text inside kept datatypes: ``Coding.display``, ``CodeableConcept.text``, an extension
  on a kept Quantity or Coding;
- QuestionnaireResponse answers to identifying questions phrased as clinics phrase them
  ("Cell #", "SS#", "Chart #", "Member #", "Home ZIP", "Town", "Guardian name", "Employer"),
  an item with no text, typed answers (integer, decimal, Coding, Reference), the children of a
  matching group;
- ages over 89 in months, in "years" without a UCUM code, as a plain integer, and birth dates
  more than 89 years ago (a birth-date Observation, a "Born on" answer);
- a type with no entry of its own (Coverage: group and member numbers, the employer);
- dirty data in kept elements (a ZIP code in ``state``, a city in ``country``).

Ages and old years are numbers a text scan cannot tell from legitimate output: tests check
them structurally (``test_phi_corpus.py``).
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from faker import Faker

from tests.phi.model import LOINC, SNOMED, UCUM, Builder, CorpusEntry, Person

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
PHQ_ANSWERS = "http://loinc.org"


class FeedKinds:
    """The feed's leak kinds; mixed into the corpus generator, whose helpers it uses."""

    fake: Faker
    rng: random.Random

    # helpers of the generator (corpus.py)
    def uid(self, prefix: str) -> str:
        raise NotImplementedError

    def phone(self) -> str:
        raise NotImplementedError

    def person(self, prefix: str) -> Person:
        raise NotImplementedError

    def ref(self, b: Builder, resource_type: str, person: Person, where: str) -> dict:
        raise NotImplementedError

    def plant_date(self, b: Builder, value: str, where: str) -> str:
        raise NotImplementedError

    def date_time(self, b: Builder, where: str) -> str:
        raise NotImplementedError

    def free_text(self, b: Builder, where: str, person: Person) -> str:
        raise NotImplementedError

    def answer_item(self, link_id: str, text: str, value: dict[str, Any], **extra: Any) -> dict:
        raise NotImplementedError

    # -- small values ---------------------------------------------------------------------
    def digits(self, count: int) -> str:
        """A number of ``count`` digits, never starting with 0 (it is also sent as a number)."""
        return str(self.rng.randrange(10 ** (count - 1), 10**count))

    def display_only(self, b: Builder, text: str, kind: str, where: str) -> dict[str, str]:
        return {"display": b.plant(text, kind, f"{where}.display")}

    # -- Patient additions ----------------------------------------------------------------
    def patient_feed(self, b: Builder, resource: dict[str, Any], person: Person) -> None:
        """Add to a Patient: a display-only link, dirty address parts, a marital status that
        names the spouse."""
        twin = self.person("twin")
        spouse = self.person("sp")
        resource["link"] = [
            {
                "other": self.display_only(b, f"Twin: {twin.full}", "name", "Patient.link.other"),
                "type": "seealso",
            }
        ]
        resource["address"].append(
            {
                "use": "old",
                "state": b.plant(self.fake.zipcode(), "geo", "Patient.address.state(dirty)"),
                "country": b.plant(self.fake.city(), "geo", "Patient.address.country(dirty)"),
            }
        )
        resource["maritalStatus"] = {
            "coding": [
                {
                    "system": MARITAL,
                    "code": "M",
                    "display": b.plant(
                        f"Married to {spouse.full}", "name", "Patient.maritalStatus.display"
                    ),
                }
            ],
            "text": self.free_text(b, "Patient.maritalStatus.text", person),
        }

    # -- resources ------------------------------------------------------------------------
    def monitor_observation(
        self, patient: Person, doctor: Person, encounter_id: str
    ) -> CorpusEntry:
        """A home blood pressure reading as a device gateway writes it."""
        b = Builder()
        local_id = b.plant(self.uid("bp"), "other-id", "Observation(bp).id")
        relative = self.person("rel")
        street = self.fake.street_address()
        seen = self.fake.date_between(date(2021, 1, 1), date(2024, 12, 31)).isoformat()
        self.plant_date(b, seen, "Observation(bp).interpretation.display")
        resource = {
            "resourceType": "Observation",
            "id": local_id,
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": CATEGORY,
                            "code": "vital-signs",
                            "display": b.plant(
                                f"Vitals taken at {street}", "geo", "Observation(bp).category"
                            ),
                        }
                    ],
                    "text": b.plant(relative.full, "name", "Observation(bp).category.text"),
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": "85354-9",
                        "display": b.plant(
                            f"BP of {patient.full}", "name", "Observation(bp).code.display"
                        ),
                    }
                ],
                "text": self.free_text(b, "Observation(bp).code.text", patient),
            },
            "subject": self.ref(b, "Patient", patient, "Observation(bp).subject"),
            "encounter": {"resourceType": "Encounter", "id": encounter_id},
            "effective": {"dateTime": self.date_time(b, "Observation(bp).effective")},
            "performer": [
                self.display_only(
                    b, f"Daughter: {relative.full}", "name", "Observation(bp).performer"
                ),
                {
                    "identifier": {
                        "system": "http://hl7.org/fhir/sid/us-npi",
                        "value": b.plant(
                            self.digits(10), "licence", "Observation(bp).performer.identifier"
                        ),
                    },
                    "display": b.plant(doctor.full, "name", "Observation(bp).performer.display"),
                },
                {
                    "id": "perf-1",
                    "identifier": {
                        "value": b.plant(
                            f"EMP-{self.digits(7)}", "other-id", "Observation(bp).performer.id"
                        )
                    },
                },
            ],
            "device": self.display_only(
                b,
                f"BP monitor SN {self.fake.bothify('??-####-####').upper()}",
                "device",
                "Observation(bp).device",
            ),
            "specimen": {
                "identifier": {
                    "value": b.plant(f"ACC{self.digits(9)}", "other-id", "Observation(bp).specimen")
                }
            },
            "value": {
                "Quantity": {
                    "value": self.rng.randrange(100, 180),
                    "unit": "mmHg",
                    "system": UCUM,
                    "code": "mm[Hg]",
                    "extension": [
                        {
                            "url": "http://clinic.example/fhir/taken-by",
                            "value": {
                                "string": b.plant(
                                    self.phone(), "phone", "Observation(bp).value.extension"
                                )
                            },
                        }
                    ],
                }
            },
            "interpretation": [
                {"coding": [{"system": INTERPRETATION, "code": "H", "display": f"High on {seen}"}]}
            ],
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def home_visit_encounter(self, patient: Person) -> CorpusEntry:
        """An interpreted home visit: participants and places known by name only."""
        b = Builder()
        local_id = b.plant(self.uid("visit"), "other-id", "Encounter(visit).id")
        interpreter = self.person("int")
        resource = {
            "resourceType": "Encounter",
            "id": local_id,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
            "subject": self.ref(b, "Patient", patient, "Encounter(visit).subject"),
            "participant": [
                {
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": PARTICIPATION,
                                    "code": "TRANS",
                                    "display": b.plant(
                                        f"Interpreter {interpreter.full}",
                                        "name",
                                        "Encounter(visit).participant.type.display",
                                    ),
                                }
                            ]
                        }
                    ],
                    "individual": self.display_only(
                        b,
                        f"{interpreter.full}, {self.phone()}",
                        "phone",
                        "Encounter(visit).participant.individual",
                    ),
                }
            ],
            "reasonCode": [
                {
                    "coding": [
                        {
                            "system": SNOMED,
                            "code": "38341003",
                            "extension": [
                                {
                                    "url": "http://clinic.example/fhir/reported-by",
                                    "value": {
                                        "string": b.plant(
                                            self.fake.email(),
                                            "email",
                                            "Encounter(visit).reasonCode.coding.extension",
                                        )
                                    },
                                }
                            ],
                        }
                    ]
                }
            ],
            "location": [
                {
                    "location": self.display_only(
                        b,
                        f"Home visit at {self.fake.street_address()}",
                        "geo",
                        "Encounter(visit).location.location",
                    ),
                    "status": "completed",
                }
            ],
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def reported_condition(self, patient: Person, encounter_id: str, age: int) -> CorpusEntry:
        """A condition reported by a relative, its onset as an age in months."""
        b = Builder()
        local_id = b.plant(self.uid("rc"), "other-id", "Condition(reported).id")
        relative = self.person("rel")
        resource = {
            "resourceType": "Condition",
            "id": local_id,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "49436004",
                        "display": b.plant(
                            f"AF, pacemaker SN {self.fake.bothify('PM#######')}",
                            "device",
                            "Condition(reported).code.display",
                        ),
                    }
                ],
                "extension": [
                    {
                        "url": "http://clinic.example/fhir/coded-by",
                        "value": {
                            "string": b.plant(
                                relative.full, "name", "Condition(reported).code.extension"
                            )
                        },
                    }
                ],
            },
            "subject": self.ref(b, "Patient", patient, "Condition(reported).subject"),
            "encounter": {"resourceType": "Encounter", "id": encounter_id},
            "onset": {"Age": {"value": age * 12 + self.rng.randrange(12), "unit": "months"}},
            "asserter": self.display_only(
                b, f"{relative.full} (daughter)", "name", "Condition(reported).asserter"
            ),
            "evidence": [
                {
                    "detail": [
                        {
                            "identifier": {
                                "value": b.plant(
                                    f"LAB-{self.digits(8)}",
                                    "other-id",
                                    "Condition(reported).evidence.detail",
                                )
                            }
                        }
                    ]
                }
            ],
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def age_observations(self, patient: Person, born: date, age: int) -> list[CorpusEntry]:
        """The age three ways (months without UCUM, "years" without a code, a plain integer)
        and the birth date as an Observation."""
        b = Builder()
        panel = {
            "resourceType": "Observation",
            "id": b.plant(self.uid("age"), "other-id", "Observation(age).id"),
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "30525-0"}]},
            "subject": {"resourceType": "Patient", "id": patient.id},
            "component": [
                {
                    "code": {"coding": [{"system": LOINC, "code": "30525-0"}]},
                    "value": {"Quantity": {"value": age * 12 + 5, "unit": "months"}},
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "21612-7"}]},
                    "value": {"Quantity": {"value": age, "unit": "years"}},
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "29553-5"}]},
                    "value": {"integer": age},
                },
            ],
        }
        first = CorpusEntry(panel, tuple(b.tokens))
        b = Builder()
        birth = {
            "resourceType": "Observation",
            "id": b.plant(self.uid("dob"), "other-id", "Observation(birth date).id"),
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "21112-8"}]},
            "subject": {"resourceType": "Patient", "id": patient.id},
            "value": {
                "dateTime": self.plant_date(
                    b, born.isoformat(), "Observation(birth date).value.dateTime"
                )
            },
        }
        return [first, CorpusEntry(birth, tuple(b.tokens))]

    def intake_response(self, patient: Person, born: date, age: int) -> CorpusEntry:
        """A second intake form, phrased the way clinics phrase their questions."""
        b = Builder()
        local_id = b.plant(self.uid("intake"), "other-id", "QuestionnaireResponse(intake).id")
        where = "QuestionnaireResponse(intake).item"
        guardian = self.person("gd")
        employer = self.fake.company()

        def answer(link_id: str, text: str | None, value: dict[str, Any], **extra: Any) -> dict:
            item = self.answer_item(link_id, text or "", value, **extra)
            if text is None:
                del item["text"]
            return item

        items = [
            answer(
                "cell", "Cell #", {"string": b.plant(self.phone(), "phone", f"{where}(Cell #)")}
            ),
            answer("ss", "SS#", {"string": b.plant(self.fake.ssn(), "ssn", f"{where}(SS#)")}),
            answer(
                "chart",
                "Chart #",
                {"integer": int(b.plant(self.digits(8), "mrn", f"{where}(Chart #)"))},
            ),
            answer(
                "member",
                "Member #",
                {"decimal": float(b.plant(self.digits(9), "health-plan", f"{where}(Member #)"))},
            ),
            answer(
                "zip",
                "Home ZIP",
                {"string": b.plant(self.fake.zipcode(), "geo", f"{where}(Home ZIP)")},
            ),
            answer("town", "Town", {"string": b.plant(self.fake.city(), "geo", f"{where}(Town)")}),
            answer(
                "guardian",
                "Guardian name",
                {"string": b.plant(guardian.full, "name", f"{where}(Guardian name)")},
            ),
            answer(
                "employer",
                "Employer",
                {
                    "Coding": {
                        "system": "http://clinic.example/employers",
                        "code": b.plant(
                            f"EMP{self.digits(6)}", "other-id", f"{where}(Employer).code"
                        ),
                        "display": b.plant(employer, "free-text", f"{where}(Employer).display"),
                    }
                },
            ),
            answer(
                "x17",
                None,
                {"integer": int(b.plant(self.digits(9), "account", f"{where}(no text)"))},
            ),
            answer(
                "born",
                "Born on",
                {"date": self.plant_date(b, born.isoformat(), f"{where}(Born on)")},
            ),
            {
                "linkId": "ec",
                "text": "Emergency contact",
                "item": [
                    answer(
                        "ec-rel",
                        "Relationship",
                        {
                            "Coding": {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                "code": "DAU",
                            }
                        },
                    ),
                    answer(
                        "ec-number",
                        "Number",
                        {
                            "string": b.plant(
                                self.phone(), "phone", f"{where}(Emergency contact).item"
                            )
                        },
                    ),
                ],
            },
            answer(
                "referrer",
                "Referred by",
                {
                    "Reference": self.display_only(
                        b, f"Dr {self.fake.name()}", "name", f"{where}(Referred by)"
                    )
                },
            ),
            # allowed questions: their answers must arrive, without the PHI planted inside
            answer("smoke", "Do you smoke?", {"boolean": self.rng.random() < 0.3}),
            answer("pain", "Pain score", {"integer": self.rng.randrange(0, 11)}),
            answer(
                "phq-1",
                "1. Little interest or pleasure in doing things?",
                {
                    "Coding": {
                        "system": PHQ_ANSWERS,
                        "code": "LA6569-3",
                        "display": b.plant(
                            f"Several days ({guardian.full} answered)",
                            "name",
                            f"{where}(PHQ-1).display",
                        ),
                    }
                },
            ),
            answer(
                "weight",
                "Weight",
                {
                    "Quantity": {
                        "value": round(self.rng.uniform(40, 120), 1),
                        "unit": "kg",
                        "system": UCUM,
                        "code": "kg",
                        "extension": [
                            {
                                "url": "http://clinic.example/fhir/scale-ip",
                                "value": {
                                    "string": b.plant(
                                        self.fake.ipv4(), "ip", f"{where}(Weight).extension"
                                    )
                                },
                            }
                        ],
                    }
                },
            ),
            answer("age", "Age", {"integer": age}),
        ]
        resource = {
            "resourceType": "QuestionnaireResponse",
            "id": local_id,
            "status": "completed",
            "subject": self.ref(b, "Patient", patient, "QuestionnaireResponse(intake).subject"),
            "authored": self.date_time(b, "QuestionnaireResponse(intake).authored"),
            "item": items,
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def coverage(self, patient: Person) -> CorpusEntry:
        """Insurance: a type the default profile has no entry for."""
        b = Builder()
        local_id = b.plant(self.uid("cov"), "other-id", "Coverage.id")
        employer = self.fake.company()
        resource = {
            "resourceType": "Coverage",
            "id": local_id,
            "status": "active",
            "identifier": [
                {"value": b.plant(f"POL-{self.digits(9)}", "health-plan", "Coverage.identifier")}
            ],
            "subscriberId": b.plant(f"SUB{self.digits(8)}", "health-plan", "Coverage.subscriberId"),
            "beneficiary": self.ref(b, "Patient", patient, "Coverage.beneficiary"),
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                        "code": "self",
                    }
                ]
            },
            "payor": [self.display_only(b, employer, "free-text", "Coverage.payor")],
            "class": [
                {
                    "type": {"coding": [{"system": COVERAGE_CLASS, "code": "group"}]},
                    "value": b.plant(
                        f"GRP-{self.digits(7)}", "health-plan", "Coverage.class.value"
                    ),
                    "name": b.plant(f"{employer} staff plan", "free-text", "Coverage.class.name"),
                }
            ],
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def feed_entries(
        self,
        patient: Person,
        doctor: Person,
        encounter_id: str,
        born: date,
        age: int,
    ) -> list[CorpusEntry]:
        """Every feed kind for one patient, referenced resources first."""
        return [
            self.coverage(patient),
            self.home_visit_encounter(patient),
            self.monitor_observation(patient, doctor, encounter_id),
            self.reported_condition(patient, encounter_id, age),
            *self.age_observations(patient, born, age),
            self.intake_response(patient, born, age),
        ]
