"""The demo's data: headquarters' administrative lists, and each clinic's patients.

The clinics' data is the synthetic corpus the PHI tests use (tests/phi/corpus.py): patients,
encounters, appointments, observations, conditions, coverages and questionnaire responses, with
PHI planted in every Safe Harbor category, including QuestionnaireResponse answers and the
`patientFirstName` / `patientLastName` attributes. Its encounters and patients point at the
clinic's Organization; here that is the one headquarters gives the clinic, pulled before the
clinical data is written (Aidbox checks that a reference's target exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.phi.corpus import Planted, generate_corpus
from tests.support.headquarters import area, location, organization

# Clinics, their country and the Organization headquarters keeps for each.
CLINICS = {
    "clinic-us": {"name": "Boston Clinic", "country": "US", "region": "americas"},
    "clinic-de": {"name": "Berlin Clinic", "country": "DE", "region": "europe"},
}
ORGANIZATION_OF = {"clinic-us": "org-us-boston", "clinic-de": "org-de-berlin"}
PATIENTS = 20  # per clinic: 20 give 350 resources, two of them patients over 89


def headquarters_data() -> list[dict[str, Any]]:
    """Headquarters' administrative resources, referenced ones first. Countries and what
    names no country belong to every clinic; the rest to their country's clinics only
    (manifest/global.yaml's SyncScope seeds)."""
    return [
        area("US", "United States"),
        area("DE", "Germany"),
        area("US-MA", "Massachusetts", "US"),
        area("US-NY", "New York", "US"),
        area("DE-BE", "Berlin", "DE"),
        area("DE-BY", "Bavaria", "DE"),
        organization("org-hq", None, "Group Headquarters"),
        organization("org-us-boston", "US", "Boston Clinic"),
        organization("org-de-berlin", "DE", "Berlin Clinic"),
        location("loc-telehealth", "org-hq", None, "Telehealth"),
        location("loc-us-boston-main", "org-us-boston", "US", "Boston, main building"),
        location("loc-us-boston-annex", "org-us-boston", "US", "Boston, annex (closing)"),
        location("loc-de-berlin-mitte", "org-de-berlin", "DE", "Berlin Mitte"),
    ]


# What headquarters changes once the clinics have their lists: the annex closes (a delete
# travels down) and Bavaria gets its official name (an update).
RETIRED_LOCATION = "loc-us-boston-annex"
RENAMED_AREA = ("DE-BY", "Freistaat Bayern")


def expected_pulled(clinic: str) -> dict[str, set[str]]:
    """The ids each pulled type must hold in `clinic` once headquarters' changes arrived."""
    country = CLINICS[clinic]["country"]
    out: dict[str, set[str]] = {}
    for resource in headquarters_data():
        if resource["id"] == RETIRED_LOCATION:
            continue
        named = resource.get("country") or _address_country(resource)
        if named in (None, country):
            out.setdefault(resource["resourceType"], set()).add(resource["id"])
    return out


def _address_country(resource: dict[str, Any]) -> str | None:
    address = resource.get("address")
    if isinstance(address, list):
        address = address[0] if address else None
    return (address or {}).get("country")


@dataclass(frozen=True)
class ClinicData:
    """One clinic's resources, in dependency order, and the PHI planted in them."""

    resources: list[dict[str, Any]]
    planted: list[Planted]

    def plant(self, value: str, kind: str, where: str) -> str:
        """Record PHI written later (an update), so that the scan looks for it too."""
        self.planted.append(Planted(value, kind, where))
        return value


def _rewire(node: Any, old: str, new: str) -> Any:
    """`node` with every reference to Organization `old` pointing at `new` instead."""
    if isinstance(node, list):
        return [_rewire(item, old, new) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("resourceType") == "Organization" and node.get("id") == old:
        return {**node, "id": new}
    return {key: _rewire(value, old, new) for key, value in node.items()}


def clinic_data(clinic: str, seed: int) -> ClinicData:
    """The clinic's synthetic patients, pointing at headquarters' Organization of the clinic."""
    corpus = generate_corpus(seed=seed, patients=PATIENTS)
    own = ORGANIZATION_OF[clinic]
    resources = [_rewire(r, "clinic-org", own) for r in corpus.resources]
    return ClinicData(resources, list(corpus.planted))
