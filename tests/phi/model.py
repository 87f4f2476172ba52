"""The planted-PHI corpus's vocabulary: the token kinds, a planted token, a resource with its
tokens, and the builder that records what a generator plants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The Safe Harbor identifier kinds, §164.514(b)(2)(i)(A)-(R), plus the places that are not an
# identifier kind by themselves but carry them (narrative, free text, local ids).
KINDS = {
    "name": "(A) names",
    "geo": "(B) geographic subdivisions smaller than a state",
    "date": "(C) dates other than year",
    "phone": "(D) telephone numbers",
    "fax": "(E) fax numbers",
    "email": "(F) email addresses",
    "ssn": "(G) social security numbers",
    "mrn": "(H) medical record numbers",
    "health-plan": "(I) health plan beneficiary numbers",
    "account": "(J) account numbers",
    "licence": "(K) certificate/license numbers",
    "vehicle": "(L) vehicle identifiers and serial numbers, license plates",
    "device": "(M) device identifiers and serial numbers",
    "url": "(N) web URLs",
    "ip": "(O) IP addresses",
    "biometric": "(P) biometric identifiers",
    "photo": "(Q) full-face photographs and comparable images",
    "other-id": "(R) any other unique identifying number, characteristic or code",
    "free-text": "free text that may carry any of the above",
}

SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
MRN_SYSTEM = "http://clinic.example/fhir/sid/mrn"
RACE_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
BIRTHSEX_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
QUESTIONNAIRE = "http://clinic.example/fhir/Questionnaire/intake"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


@dataclass(frozen=True, slots=True)
class Planted:
    """One PHI token planted in a resource: the value, its kind (see KINDS) and its place."""

    value: str
    kind: str
    where: str


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    """A resource and the PHI planted in it."""

    resource: dict[str, Any]
    planted: tuple[Planted, ...]


@dataclass(frozen=True, slots=True)
class Corpus:
    """The generated resources, in dependency order (referenced resources first)."""

    entries: tuple[CorpusEntry, ...]
    age_over_89: frozenset[str] = field(default_factory=frozenset)  # local Patient ids

    @property
    def resources(self) -> list[dict[str, Any]]:
        """The resources alone."""
        return [entry.resource for entry in self.entries]

    @property
    def planted(self) -> list[Planted]:
        """Every planted token of every resource."""
        return [token for entry in self.entries for token in entry.planted]


class Builder:
    """Collects the tokens planted while one resource is built."""

    def __init__(self) -> None:
        self.tokens: list[Planted] = []

    def plant(self, value: str, kind: str, where: str) -> str:
        self.tokens.append(Planted(value, kind, where))
        return value


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    given: str
    middle: str
    family: str

    @property
    def full(self) -> str:
        return f"{self.given} {self.middle} {self.family}"
