"""Synthetic clinic data with planted PHI, in Aidbox format, deterministic for a seed.

Every resource comes with the list of PHI tokens planted in it (``Planted``: the value, the
Safe Harbor kind and the place). PHI is planted in every place the default profile must handle:
names, geography, dates, phone, fax, email, SSN, MRN, health-plan, account and licence numbers,
vehicle and device identifiers, URLs, IPs, biometrics, photos, narrative ``text``, reference
``display``, notes and free-text values, unknown extensions, contained resources,
``Attachment.data``/``url``, QuestionnaireResponse custom attributes and answers (nested
included), and the local ids themselves.

Patients older than 89 carry their age in ``age_over_89`` (birth date, an age observation, an
age answer): those values are years and small numbers, which a text scan cannot tell apart from
legitimate output, so tests check them structurally.

Usage::

    corpus = generate_corpus()            # 100 patients, 1,010 resources
    for entry in corpus.entries: entry.resource, entry.planted
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faker import Faker

from tests.phi.feed import FeedKinds
from tests.phi.model import (
    BIRTHSEX_URL,
    KINDS,
    LOINC,
    MRN_SYSTEM,
    QUESTIONNAIRE,
    RACE_URL,
    SNOMED,
    SSN_SYSTEM,
    UCUM,
    Builder,
    Corpus,
    CorpusEntry,
    Person,
    Planted,
)

__all__ = ["KINDS", "SEED", "Corpus", "CorpusEntry", "Planted", "generate_corpus"]

SEED = 20240601


class _Generator(FeedKinds):
    def __init__(self, seed: int) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)

    # -- small values ---------------------------------------------------------------------
    def uid(self, prefix: str) -> str:
        return f"{prefix}-{self.fake.uuid4()}"

    def phone(self) -> str:
        return self.fake.numerify("(###) ###-####")

    def moment(self) -> datetime:
        start = datetime(2021, 1, 1, tzinfo=UTC)
        return start + timedelta(seconds=self.rng.randrange(4 * 365 * 86400))

    def person(self, prefix: str) -> Person:
        return Person(
            self.uid(prefix),
            self.fake.first_name(),
            self.fake.first_name(),
            self.fake.last_name(),
        )

    def name(self, b: Builder, person: Person, where: str) -> dict[str, Any]:
        return {
            "use": "official",
            "family": b.plant(person.family, "name", f"{where}.family"),
            "given": [
                b.plant(person.given, "name", f"{where}.given"),
                b.plant(person.middle, "name", f"{where}.given"),
            ],
            "text": person.full,
        }

    def ref(self, b: Builder, resource_type: str, person: Person, where: str) -> dict:
        b.plant(person.id, "other-id", f"{where}.id")
        return {
            "resourceType": resource_type,
            "id": person.id,
            "display": b.plant(person.full, "name", f"{where}.display"),
        }

    def narrative(self, b: Builder, where: str, *parts: str) -> dict[str, str]:
        secret = b.plant(f"NARRATIVE-{self.fake.bothify('??##??##').upper()}", "free-text", where)
        return {"status": "generated", "div": f"<div>{' '.join(parts)} {secret}</div>"}

    def free_text(self, b: Builder, where: str, person: Person) -> str:
        note = b.plant(f"NOTE-{self.fake.bothify('####-????').upper()}", "free-text", where)
        return f"{person.given} {person.family} called about {note}"

    def plant_date(self, b: Builder, value: str, where: str) -> str:
        """Plant a date at month precision ("1961-04"): any leak finer than the year (the date,
        a dateTime, the month) contains it, delimited by '-' or a quote; the year alone does
        not."""
        b.plant(value[:7], "date", where)
        return value

    def period(self, b: Builder, where: str) -> dict[str, str]:
        start = self.moment()
        end = start + timedelta(hours=self.rng.randrange(1, 72))
        return {
            "start": self.plant_date(b, start.isoformat(), f"{where}.start"),
            "end": self.plant_date(b, end.isoformat(), f"{where}.end"),
        }

    def date_time(self, b: Builder, where: str) -> str:
        return self.plant_date(b, self.moment().isoformat(), where)

    # -- resources ------------------------------------------------------------------------
    def practitioner(self, person: Person) -> CorpusEntry:
        b = Builder()
        b.plant(person.id, "other-id", "Practitioner.id")
        resource = {
            "resourceType": "Practitioner",
            "id": person.id,
            "active": True,
            "name": [self.name(b, person, "Practitioner.name")],
            "identifier": [
                {
                    "system": "http://hl7.org/fhir/sid/us-npi",
                    "value": b.plant(
                        self.fake.numerify("##########"), "licence", "Practitioner.identifier"
                    ),
                }
            ],
            "telecom": [
                {
                    "system": "phone",
                    "value": b.plant(self.phone(), "phone", "Practitioner.telecom"),
                },
                {
                    "system": "email",
                    "value": b.plant(self.fake.email(), "email", "Practitioner.telecom"),
                },
            ],
            "address": [
                {
                    "line": [
                        b.plant(self.fake.street_address(), "geo", "Practitioner.address.line")
                    ],
                    "city": b.plant(self.fake.city(), "geo", "Practitioner.address.city"),
                    "postalCode": b.plant(
                        self.fake.zipcode(), "geo", "Practitioner.address.postalCode"
                    ),
                    "state": self.fake.state_abbr(),
                }
            ],
            "birthDate": self.plant_date(
                b,
                self.fake.date_of_birth(minimum_age=30, maximum_age=70).isoformat(),
                "Practitioner.birthDate",
            ),
            "gender": self.rng.choice(["male", "female"]),
            "qualification": [
                {
                    "identifier": [
                        {
                            "value": b.plant(
                                f"LIC-{self.fake.bothify('??#####').upper()}",
                                "licence",
                                "Practitioner.qualification.identifier",
                            )
                        }
                    ],
                    "code": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0360",
                                "code": "MD",
                            }
                        ]
                    },
                }
            ],
            "text": self.narrative(b, "Practitioner.text.div", person.full),
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def patient(self, person: Person, doctor: Person, old: bool) -> CorpusEntry:
        b = Builder()
        b.plant(person.id, "other-id", "Patient.id")
        born = (
            self.fake.date_of_birth(minimum_age=91, maximum_age=104)
            if old
            # at least 6: a birth month never equals the month of an event (2021 on)
            else (self.fake.date_of_birth(minimum_age=6, maximum_age=85))
        )
        zipcode = self.fake.zipcode()
        contact = self.person("rp")
        photo = base64.b64encode(self.rng.randbytes(24)).decode()
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": person.id,
            "meta": {
                "lastUpdated": self.moment().isoformat(),
                "tag": [
                    {
                        "code": b.plant(
                            f"TAG-{self.fake.bothify('####')}", "other-id", "Patient.meta.tag"
                        )
                    }
                ],
            },
            "text": self.narrative(b, "Patient.text.div", person.full, zipcode),
            "active": True,
            "identifier": [
                {
                    "system": MRN_SYSTEM,
                    "value": b.plant(
                        f"MRN{self.fake.numerify('########')}", "mrn", "Patient.identifier(mrn)"
                    ),
                },
                {
                    "system": SSN_SYSTEM,
                    "value": b.plant(self.fake.ssn(), "ssn", "Patient.identifier(ssn)"),
                },
                {
                    "system": "http://payer.example/member",
                    "value": b.plant(
                        f"HP-{self.fake.bothify('??######').upper()}",
                        "health-plan",
                        "Patient.identifier(member)",
                    ),
                },
                {
                    "system": "urn:oid:2.16.840.1.113883.4.3.25",
                    "value": b.plant(
                        f"S{self.fake.numerify('########')}",
                        "licence",
                        "Patient.identifier(driver)",
                    ),
                },
            ],
            "name": [self.name(b, person, "Patient.name")],
            "telecom": [
                {
                    "system": "phone",
                    "value": b.plant(self.phone(), "phone", "Patient.telecom(phone)"),
                },
                {"system": "fax", "value": b.plant(self.phone(), "fax", "Patient.telecom(fax)")},
                {
                    "system": "email",
                    "value": b.plant(self.fake.email(), "email", "Patient.telecom(email)"),
                },
                {"system": "url", "value": b.plant(self.fake.url(), "url", "Patient.telecom(url)")},
            ],
            "gender": self.rng.choice(["male", "female", "other"]),
            "birthDate": self.plant_date(b, born.isoformat(), "Patient.birthDate"),
            "address": [
                {
                    "use": "home",
                    "line": [b.plant(self.fake.street_address(), "geo", "Patient.address.line")],
                    "city": b.plant(self.fake.city(), "geo", "Patient.address.city"),
                    "district": b.plant(
                        f"{self.fake.last_name()} County", "geo", "Patient.address.district"
                    ),
                    "state": self.fake.state_abbr(),
                    "postalCode": b.plant(zipcode, "geo", "Patient.address.postalCode"),
                    "country": "US",
                }
            ],
            "photo": [
                {
                    "contentType": "image/jpeg",
                    "data": b.plant(photo, "photo", "Patient.photo.data"),
                    "url": b.plant(
                        f"https://photos.clinic.example/{self.fake.uuid4()}.jpg",
                        "photo",
                        "Patient.photo.url",
                    ),
                }
            ],
            "contact": [
                {
                    "relationship": [{"coding": [{"code": "N"}]}],
                    "name": self.name(b, contact, "Patient.contact.name"),
                    "telecom": [
                        {
                            "system": "phone",
                            "value": b.plant(self.phone(), "phone", "Patient.contact.telecom"),
                        }
                    ],
                }
            ],
            "extension": [
                {"url": BIRTHSEX_URL, "value": {"code": "F"}},
                {
                    "url": RACE_URL,
                    "extension": [
                        {
                            "url": "ombCategory",
                            "value": {
                                "Coding": {
                                    "system": "urn:oid:2.16.840.1.113883.6.238",
                                    "code": "2106-3",
                                }
                            },
                        },
                        {
                            "url": "text",
                            "value": {
                                "string": self.free_text(b, "Patient.extension(race).text", person)
                            },
                        },
                    ],
                },
                {
                    "url": "http://clinic.example/fhir/fingerprint",
                    "value": {
                        "string": b.plant(
                            f"FPT-{self.rng.randbytes(12).hex()}",
                            "biometric",
                            "Patient.extension(fingerprint)",
                        )
                    },
                },
                {
                    "url": "http://clinic.example/fhir/portal-ip",
                    "value": {
                        "string": b.plant(self.fake.ipv4(), "ip", "Patient.extension(portal-ip)")
                    },
                },
            ],
            "generalPractitioner": [
                self.ref(b, "Practitioner", doctor, "Patient.generalPractitioner")
            ],
            "managingOrganization": {"resourceType": "Organization", "id": "clinic-org"},
            "communication": [
                {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}}
            ],
        }
        if self.rng.random() < 0.2:
            resource["deceased"] = {"dateTime": self.date_time(b, "Patient.deceased.dateTime")}
        self.patient_feed(b, resource, person)
        return CorpusEntry(resource, tuple(b.tokens))

    def encounter(self, patient: Person, doctor: Person) -> CorpusEntry:
        b = Builder()
        local_id = b.plant(self.uid("enc"), "other-id", "Encounter.id")
        escort = self.person("escort")
        resource = {
            "resourceType": "Encounter",
            "id": local_id,
            "text": self.narrative(b, "Encounter.text.div", patient.full),
            "identifier": [
                {
                    "system": "http://clinic.example/visit",
                    "value": b.plant(
                        f"V{self.fake.numerify('#########')}", "account", "Encounter.identifier"
                    ),
                }
            ],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [
                {
                    "coding": [{"system": SNOMED, "code": "185349003"}],
                    "text": self.free_text(b, "Encounter.type.text", patient),
                }
            ],
            "subject": self.ref(b, "Patient", patient, "Encounter.subject"),
            "participant": [
                {
                    "individual": self.ref(
                        b, "Practitioner", doctor, "Encounter.participant.individual"
                    ),
                    "period": self.period(b, "Encounter.participant.period"),
                },
                {"individual": {"localRef": "escort"}},
            ],
            "period": self.period(b, "Encounter.period"),
            "reasonCode": [
                {
                    "coding": [{"system": SNOMED, "code": "38341003"}],
                    "text": self.free_text(b, "Encounter.reasonCode.text", patient),
                }
            ],
            "hospitalization": {
                "preAdmissionIdentifier": {
                    "value": b.plant(
                        f"PRE-{self.fake.numerify('######')}",
                        "account",
                        "Encounter.hospitalization.preAdmissionIdentifier",
                    )
                }
            },
            "contained": [
                {
                    "resourceType": "RelatedPerson",
                    "id": "escort",
                    "patient": {"resourceType": "Patient", "id": patient.id},
                    "name": [self.name(b, escort, "Encounter.contained.RelatedPerson.name")],
                    "telecom": [
                        {
                            "system": "phone",
                            "value": b.plant(
                                self.phone(), "phone", "Encounter.contained.RelatedPerson.telecom"
                            ),
                        }
                    ],
                }
            ],
            "extension": [
                {
                    "url": "http://clinic.example/fhir/arrival-vehicle",
                    "value": {
                        "string": b.plant(
                            f"{self.fake.license_plate()} / {self.fake.vin()}",
                            "vehicle",
                            "Encounter.extension(vehicle)",
                        )
                    },
                }
            ],
            "serviceProvider": {
                "resourceType": "Organization",
                "id": "clinic-org",
                "display": "Clinic",
            },
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def appointment(self, patient: Person, doctor: Person) -> CorpusEntry:
        b = Builder()
        local_id = b.plant(self.uid("apt"), "other-id", "Appointment.id")
        start = self.moment()
        resource = {
            "resourceType": "Appointment",
            "id": local_id,
            "status": "booked",
            "identifier": [
                {
                    "value": b.plant(
                        f"APT-{self.fake.numerify('#######')}", "account", "Appointment.identifier"
                    )
                }
            ],
            "serviceType": [{"coding": [{"system": SNOMED, "code": "394814009"}]}],
            "description": self.free_text(b, "Appointment.description", patient),
            "comment": self.free_text(b, "Appointment.comment", patient),
            "patientInstruction": self.free_text(b, "Appointment.patientInstruction", patient),
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "created": self.date_time(b, "Appointment.created"),
            "minutesDuration": 30,
            "participant": [
                {
                    "actor": self.ref(b, "Patient", patient, "Appointment.participant.actor"),
                    "status": "accepted",
                },
                {
                    "actor": self.ref(b, "Practitioner", doctor, "Appointment.participant.actor"),
                    "status": "accepted",
                },
            ],
            "requestedPeriod": [self.period(b, "Appointment.requestedPeriod")],
        }
        self.plant_date(b, start.isoformat(), "Appointment.start")
        return CorpusEntry(resource, tuple(b.tokens))

    def observation(self, patient: Person, encounter_id: str, kind: int, age: int) -> CorpusEntry:
        b = Builder()
        local_id = b.plant(self.uid("obs"), "other-id", "Observation.id")
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": local_id,
            "status": "final",
            "subject": self.ref(b, "Patient", patient, "Observation.subject"),
            "encounter": {"resourceType": "Encounter", "id": encounter_id},
            "effective": {"dateTime": self.date_time(b, "Observation.effective.dateTime")},
            "issued": self.date_time(b, "Observation.issued"),
            "note": [
                {
                    "text": self.free_text(b, "Observation.note", patient),
                    "author": {"string": patient.full},
                }
            ],
        }
        if kind == 0:  # a vital sign, measured by a contained device
            serial = b.plant(
                f"SN-{self.fake.bothify('??####??').upper()}",
                "device",
                "Observation.contained.Device.serialNumber",
            )
            udi = b.plant(
                f"(01){self.fake.numerify('##############')}",
                "device",
                "Observation.contained.Device.udiCarrier",
            )
            resource["code"] = {
                "coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}],
                "text": self.free_text(b, "Observation.code.text", patient),
            }
            resource["value"] = {
                "Quantity": {
                    "value": self.rng.randrange(50, 120),
                    "unit": "/min",
                    "system": UCUM,
                    "code": "/min",
                }
            }
            resource["device"] = {"localRef": "dev", "display": serial}
            resource["contained"] = [
                {
                    "resourceType": "Device",
                    "id": "dev",
                    "status": "active",
                    "serialNumber": serial,
                    "udiCarrier": [{"deviceIdentifier": udi, "carrierHRF": udi}],
                    "url": b.plant(
                        f"https://devices.clinic.example/{self.fake.uuid4()}",
                        "url",
                        "Observation.contained.Device.url",
                    ),
                }
            ]
        elif kind == 1:  # a free-text result and a voice sample
            resource["code"] = {"coding": [{"system": LOINC, "code": "72166-2"}]}
            resource["value"] = {"string": self.free_text(b, "Observation.value.string", patient)}
            resource["component"] = [
                {
                    "code": {"coding": [{"system": LOINC, "code": "voice"}]},
                    "value": {
                        "SampledData": {
                            "origin": {"value": 0},
                            "period": 1,
                            "dimensions": 1,
                            "data": b.plant(
                                f"VOICE-{self.rng.randbytes(10).hex()}",
                                "biometric",
                                "Observation.component.value.SampledData.data",
                            ),
                        }
                    },
                }
            ]
        else:  # the patient's age
            resource["code"] = {"coding": [{"system": LOINC, "code": "30525-0"}]}
            resource["value"] = {
                "Quantity": {"value": age, "unit": "years", "system": UCUM, "code": "a"}
            }
        return CorpusEntry(resource, tuple(b.tokens))

    def condition(self, patient: Person, encounter_id: str, doctor: Person) -> CorpusEntry:
        b = Builder()
        local_id = b.plant(self.uid("cond"), "other-id", "Condition.id")
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
                "coding": [{"system": SNOMED, "code": "44054006"}],
                "text": self.free_text(b, "Condition.code.text", patient),
            },
            "subject": self.ref(b, "Patient", patient, "Condition.subject"),
            "encounter": {"resourceType": "Encounter", "id": encounter_id},
            "onset": {"dateTime": self.date_time(b, "Condition.onset.dateTime")},
            "abatement": {"string": self.free_text(b, "Condition.abatement.string", patient)},
            "recordedDate": self.date_time(b, "Condition.recordedDate"),
            "asserter": self.ref(b, "Practitioner", doctor, "Condition.asserter"),
            "note": [{"text": self.free_text(b, "Condition.note", patient)}],
            "evidence": [
                {
                    "detail": [
                        {"uri": b.plant(self.fake.url(), "url", "Condition.evidence.detail.uri")}
                    ]
                }
            ],
        }
        return CorpusEntry(resource, tuple(b.tokens))

    def answer_item(self, link_id: str, text: str, value: dict[str, Any], **extra: Any) -> dict:
        answer: dict[str, Any] = {"value": value}
        answer.update(extra)
        return {"linkId": link_id, "text": text, "answer": [answer]}

    def questionnaire_response(
        self, patient: Person, doctor: Person, encounter_id: str, age: int
    ) -> CorpusEntry:
        b = Builder()
        local_id = b.plant(self.uid("qr"), "other-id", "QuestionnaireResponse.id")
        where = "QuestionnaireResponse.item"
        email = b.plant(self.fake.email(), "email", f"{where}(Personal Email)")
        city = b.plant(self.fake.city(), "geo", f"{where}(Address).answer.item(City)")
        dob = self.fake.date_of_birth(minimum_age=6, maximum_age=85).isoformat()
        items = [
            # the user's baseline questions, one of them in another case
            self.answer_item("email", "PERSONAL EMAIL:", {"string": email}),
            self.answer_item(
                "name", "Name", {"string": b.plant(patient.full, "name", f"{where}(Name)")}
            ),
            self.answer_item(
                "phone", "Phone", {"string": b.plant(self.phone(), "phone", f"{where}(Phone)")}
            ),
            self.answer_item(
                "dob", "Date of Birth", {"date": self.plant_date(b, dob, f"{where}(Date of Birth)")}
            ),
            self.answer_item(
                "address",
                "Address",
                {"string": b.plant(self.fake.street_address(), "geo", f"{where}(Address)")},
                item=[self.answer_item("city", "City", {"string": city})],
            ),
            # nested two levels down, under a group, phrased as a sentence
            {
                "linkId": "contact",
                "text": "Contact details",
                "item": [
                    self.answer_item(
                        "ec-phone",
                        "What is your emergency contact's phone number?",
                        {
                            "string": b.plant(
                                self.phone(), "phone", f"{where}.item(emergency phone)"
                            )
                        },
                    ),
                    self.answer_item(
                        "insurance",
                        "Insurance member ID",
                        {
                            "string": b.plant(
                                f"HP-{self.fake.bothify('??######').upper()}",
                                "health-plan",
                                f"{where}.item(insurance)",
                            )
                        },
                    ),
                ],
            },
            self.answer_item(
                "plate",
                "Vehicle license plate",
                {
                    "string": b.plant(
                        self.fake.license_plate(), "vehicle", f"{where}(license plate)"
                    )
                },
            ),
            self.answer_item(
                "site", "Website", {"uri": b.plant(self.fake.url(), "url", f"{where}(Website)")}
            ),
            self.answer_item(
                "ip",
                "IP Address",
                {"string": b.plant(self.fake.ipv4(), "ip", f"{where}(IP Address)")},
            ),
            self.answer_item(
                "feeling",
                "How are you feeling today",
                {"string": self.free_text(b, f"{where}(free text)", patient)},
            ),
            self.answer_item(
                "selfie",
                "Upload a selfie",
                {
                    "Attachment": {
                        "contentType": "image/png",
                        "data": b.plant(
                            base64.b64encode(self.rng.randbytes(18)).decode(),
                            "photo",
                            f"{where}(selfie).data",
                        ),
                    }
                },
            ),
            self.answer_item(
                "gp",
                "Your doctor",
                {
                    "Reference": self.ref(
                        b, "Practitioner", doctor, f"{where}(doctor).value.Reference"
                    )
                },
            ),
            self.answer_item("smoker", "Do you smoke?", {"boolean": self.rng.random() < 0.3}),
            self.answer_item("pain", "Pain score", {"integer": self.rng.randrange(0, 11)}),
            self.answer_item("age", "Age", {"integer": age}),
            self.answer_item(
                "lang",
                "Preferred language",
                {"Coding": {"system": "urn:ietf:bcp:47", "code": "en"}},
            ),
        ]
        resource = {
            "resourceType": "QuestionnaireResponse",
            "id": local_id,
            "questionnaire": QUESTIONNAIRE,
            "status": "completed",
            "subject": self.ref(b, "Patient", patient, "QuestionnaireResponse.subject"),
            "encounter": {"resourceType": "Encounter", "id": encounter_id},
            "author": self.ref(b, "Practitioner", doctor, "QuestionnaireResponse.author"),
            "authored": self.date_time(b, "QuestionnaireResponse.authored"),
            "patientFirstName": b.plant(
                patient.given, "name", "QuestionnaireResponse.patientFirstName"
            ),
            "patientMiddleName": b.plant(
                patient.middle, "name", "QuestionnaireResponse.patientMiddleName"
            ),
            "patientLastName": b.plant(
                patient.family, "name", "QuestionnaireResponse.patientLastName"
            ),
            "item": items,
        }
        return CorpusEntry(resource, tuple(b.tokens))


def generate_corpus(seed: int = SEED, patients: int = 100, practitioners: int = 10) -> Corpus:
    """Deterministic synthetic clinic data: ``practitioners`` + 17 resources per patient (the
    ten of every clinic, and the seven of the EHR-feed kinds in ``feed.py``).

    Every tenth patient is older than 89. Resources come in dependency order, so pushing them
    in order never references a resource the target lacks.
    """
    gen = _Generator(seed)
    doctors = [gen.person("pr") for _ in range(practitioners)]
    entries = [gen.practitioner(doctor) for doctor in doctors]
    old_ids: set[str] = set()
    for index in range(patients):
        person = gen.person("pt")
        doctor = doctors[index % len(doctors)]
        old = index % 10 == 0
        age = gen.rng.randrange(91, 104) if old else gen.rng.randrange(1, 85)
        if old:
            old_ids.add(person.id)
        entries.append(gen.patient(person, doctor, old))
        born = date.fromisoformat(entries[-1].resource["birthDate"])
        encounters = [gen.encounter(person, doctor) for _ in range(2)]
        entries.extend(encounters)
        first_encounter = encounters[0].resource["id"]
        entries.extend(gen.appointment(person, doctor) for _ in range(2))
        entries.extend(gen.observation(person, first_encounter, kind, age) for kind in range(3))
        entries.append(gen.condition(person, first_encounter, doctor))
        entries.append(gen.questionnaire_response(person, doctor, first_encounter, age))
        entries.extend(gen.feed_entries(person, doctor, first_encounter, born, age))
    return Corpus(tuple(entries), frozenset(old_ids))
