"""Properties over random resources: nothing the profile does not keep ever leaves; anonymize
is pure and deterministic."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.anonymize import PseudonymKey, anonymize, compile_profile, load_profile
from app.anonymize.paths import parse_path
from app.anonymize.profile import Profile

KEY = PseudonymKey(secret=b"property-test-secret-0123456789", namespace="clinic-a")
PROFILE = load_profile("safe-harbor")
PLAN = compile_profile(PROFILE, today=date(2025, 6, 1))
TYPES = ["Patient", "Encounter", "Observation", "Condition", "QuestionnaireResponse", "Device"]
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
# Element names the shipped profile talks about, plus names it does not: random trees mix them.
NAMES = [
    "name", "family", "text", "div", "address", "postalCode", "city", "state", "line",
    "telecom", "value", "string", "Quantity", "Coding", "code", "coding", "system", "display",
    "subject", "note", "extension", "url", "item", "answer", "linkId", "period", "start",
    "status", "category", "meta", "profile", "tag", "identifier", "contact", "birthDate",
    "gender", "contained", "id", "uri", "Reference", "unit", "comment", "secret",
]  # fmt: skip

_tokens = itertools.count()


def token() -> st.SearchStrategy[str]:
    """Unique leaf strings, so that an output string equal to one has a known origin."""
    return st.builds(lambda: f"tok{next(_tokens)}x")


def leaf() -> st.SearchStrategy[Any]:
    return st.one_of(token(), st.integers(-5, 120), st.booleans(), st.sampled_from([RACE, "a"]))


def tree() -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf(),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(NAMES), children, max_size=5),
        ),
        max_leaves=20,
    )


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(st.dictionaries(st.sampled_from(NAMES), tree(), max_size=8))
    body.pop("id", None)
    body["resourceType"] = draw(st.sampled_from(TYPES))
    body["id"] = draw(token())
    return body


def kept_paths(profile: Profile) -> dict[str, set[tuple[str, ...]]]:
    """Independent oracle: per type, element paths under which the profile sends input
    strings as they are (keep rules; a filter's own key, e.g. extension url)."""
    kept: dict[str, set[tuple[str, ...]]] = {}
    for entry in profile.resources:
        paths = kept.setdefault(entry.type, set())
        for rule in entry.rules:
            if rule.method != "keep":
                continue
            segments = parse_path(rule.path)
            names = tuple(s.name for s in segments)
            paths.add(names)
            for i, segment in enumerate(segments):
                if segment.filter is not None:
                    paths.add((*names[: i + 1], segment.filter.key))
    return kept


KEPT = kept_paths(PROFILE)


def strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for name, value in node.items():
            yield from strings(value, (*path, name))
    elif isinstance(node, list):
        for value in node:
            yield from strings(value, path)


def normalized(resource_type: str, path: tuple[str, ...]) -> tuple[str, ...]:
    """Questionnaire items nest: a path inside the innermost item, as the profile sees it.
    Only paths that start at the response's items are items; an `item` key elsewhere is not."""
    if resource_type == "QuestionnaireResponse" and path[:1] == ("item",):
        last = len(path) - 1 - path[::-1].index("item")
        return path[last:]
    return path


def allowed(resource_type: str, path: tuple[str, ...]) -> bool:
    paths = KEPT.get(resource_type, KEPT["*"])
    path = normalized(resource_type, path)
    return any(path[: len(kept)] == kept for kept in paths)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources())
def test_no_string_leaves_unless_the_profile_keeps_it(resource: dict[str, Any]) -> None:
    origins: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for path, value in strings({k: v for k, v in resource.items() if k != "contained"}):
        origins.setdefault(value, []).append((resource["resourceType"], path))
    contained = resource.get("contained")
    for item in contained if isinstance(contained, list) else []:
        if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
            for path, value in strings(item):
                origins.setdefault(value, []).append((item["resourceType"], path))
    out = anonymize(resource, PLAN, KEY)
    for _, value in strings(out):
        if value in TYPES or value not in origins:
            continue  # a type name, or made by the engine (pseudonym, year, zip3, label)
        assert any(allowed(*origin) for origin in origins[value]), (value, origins[value])


@settings(max_examples=100, deadline=None)
@given(resources())
def test_anonymize_is_pure_and_deterministic(resource: dict[str, Any]) -> None:
    before = copy.deepcopy(resource)
    first = anonymize(resource, PLAN, KEY)
    assert resource == before
    assert anonymize(resource, PLAN, KEY) == first
    assert first["id"] == KEY.resource_id(resource["resourceType"], resource["id"])
