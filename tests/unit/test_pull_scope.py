"""The pull scope rule (app/registry/scope.py, docs/pull.md "Pull scope"): which of
headquarters' administrative resources a clinic receives."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.aidbox.manifest import load_manifest
from app.model import AidboxInstance
from app.registry.scope import SyncScope, in_scope, values_at
from app.settings import Role
from tests.support.clinic import clinic_key

ORGANIZATION = SyncScope(type="Organization", country=["address.country"])
AREA = SyncScope(type="AdministrativeArea", country=["country"], region=["region"])


def clinic(country: str | None = "US", region: str | None = None) -> AidboxInstance:
    return AidboxInstance(
        id="clinic-a",
        name="A",
        status="active",
        client={"resourceType": "Client", "id": "clinic-a"},
        country=country,
        region=region,
    )


def organization(*countries: Any, rid: str = "org-1") -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": rid,
        "address": [{"city": "x", "country": c} for c in countries],
    }


def test_a_resource_goes_to_the_clinics_of_the_countries_it_names() -> None:
    assert in_scope(organization("US"), ORGANIZATION, clinic("US"))
    assert not in_scope(organization("DE"), ORGANIZATION, clinic("US"))


def test_any_address_of_the_clinics_country_is_enough() -> None:
    two = organization("DE", "US")
    assert in_scope(two, ORGANIZATION, clinic("US"))
    assert in_scope(two, ORGANIZATION, clinic("DE"))
    assert not in_scope(two, ORGANIZATION, clinic("PT"))


def test_countries_compare_trimmed_and_case_insensitively() -> None:
    assert in_scope(organization(" us "), ORGANIZATION, clinic("US"))
    assert in_scope(organization("US"), ORGANIZATION, clinic(" us"))


@pytest.mark.parametrize(
    "resource",
    [
        organization(),  # no address
        {"resourceType": "Organization", "id": "org-1", "address": [{"city": "x"}]},
        organization("  "),  # a blank value names no country
        organization(1, {"code": "DE"}),  # only string leaves count
    ],
)
def test_a_resource_that_names_no_country_goes_to_every_clinic(resource: dict) -> None:
    assert in_scope(resource, ORGANIZATION, clinic("US"))
    assert in_scope(resource, ORGANIZATION, clinic(None))


def test_a_clinic_without_a_country_gets_only_what_names_none() -> None:
    assert not in_scope(organization("US"), ORGANIZATION, clinic(None))
    assert not in_scope(organization("US"), ORGANIZATION, clinic(""))


def test_a_single_element_is_stepped_into_like_an_array() -> None:
    location = SyncScope(type="Location", country=["address.country"])
    place = {"resourceType": "Location", "id": "l-1", "address": {"country": "DE"}}
    assert in_scope(place, location, clinic("DE"))
    assert not in_scope(place, location, clinic("US"))


def test_values_are_collected_through_arrays_at_every_step() -> None:
    resource = {"a": [{"b": [{"c": "X"}, {"c": ["Y", " z "]}]}, {"b": {"c": "W"}}, "s"]}
    assert values_at(resource, "a.b.c") == {"x", "y", "z", "w"}
    assert values_at(resource, "a.missing") == set()


def test_areas_the_country_list_goes_everywhere_a_state_to_its_country() -> None:
    country = {"resourceType": "AdministrativeArea", "id": "DE", "kind": "country"}
    state = {"resourceType": "AdministrativeArea", "id": "US-CA", "country": "US"}
    assert in_scope(country, AREA, clinic("US")) and in_scope(country, AREA, clinic("DE"))
    assert in_scope(state, AREA, clinic("US"))
    assert not in_scope(state, AREA, clinic("DE"))


def test_a_region_scoped_resource_goes_to_that_regions_clinics_only() -> None:
    eu = {"resourceType": "AdministrativeArea", "id": "EU-X", "region": "EU"}
    assert in_scope(eu, AREA, clinic("DE", region="eu"))
    assert not in_scope(eu, AREA, clinic("DE", region="east"))
    assert not in_scope(eu, AREA, clinic("DE"))
    both = {**eu, "country": "US"}  # both rules hold
    assert not in_scope(both, AREA, clinic("DE", region="EU"))
    assert in_scope(both, AREA, clinic("US", region="EU"))


@pytest.mark.parametrize(
    "rid",
    [
        clinic_key("clinic-b").resource_id("Organization", "o1"),
        clinic_key("clinic-a").resource_id("Organization", "o1"),  # even the caller's own
        f"b-{'0' * 26}",
        f"{'x' * 24}-{'f' * 26}",
    ],
)
def test_a_pushed_id_is_clinic_data_and_never_in_scope(rid: str) -> None:
    assert not in_scope(organization(rid=rid), ORGANIZATION, clinic("US"))


@pytest.mark.parametrize(
    "rid",
    [
        "org-1",
        f"b-{'0' * 25}",  # one hex digit short
        f"b-{'0' * 27}",
        f"b-{'A' * 26}",  # upper case is no pseudonym
        f"{'x' * 25}-{'f' * 26}",  # a namespace longer than an instance id
        f"-{'0' * 26}",
    ],
)
def test_ids_of_another_shape_are_judged_by_their_content(rid: str) -> None:
    assert in_scope(organization(rid=rid), ORGANIZATION, clinic("US"))


def test_a_scope_is_the_row_of_its_type() -> None:
    with pytest.raises(ValidationError):
        SyncScope.model_validate({"id": "Location", "type": "Organization"})
    with pytest.raises(ValidationError):
        SyncScope(type="Organization", country=["address[0].country"])
    assert SyncScope.model_validate({"id": "Location", "type": "Location"}).country == []


def test_the_shipped_scopes_parse() -> None:
    seeds = load_manifest(Role.GLOBAL).seeds["SyncScope"]
    scopes = {rid: SyncScope.model_validate({"id": rid, **body}) for rid, body in seeds.items()}
    assert scopes["AdministrativeArea"] == AREA.model_copy(update={"id": "AdministrativeArea"})
    assert set(scopes) == {"Organization", "Location", "AdministrativeArea"}


@pytest.mark.parametrize("rtype", ["Client", "AccessPolicy", "User", "ValueSet", "AidboxInstance"])
def test_aidboxs_own_and_conformance_types_may_not_be_offered(rtype: str) -> None:
    with pytest.raises(ValidationError, match="may not be offered for pull"):
        SyncScope.model_validate({"id": rtype, "type": rtype})
