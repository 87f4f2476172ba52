"""References where FHIR gives no datatype (first-class attributes, and anything inside them)
are known by their shape (docs/anonymization.md, "What no profile changes"): whatever rules a
custom profile sets on and inside such an attribute, a reference-shaped value leaves only as
its pseudonymous target, never with its display, identifier or local id.

Random trees of unknown elements holding references at any depth, under random rules at random
paths below the attribute, searched the way an attacker would write a profile.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.anonymize import PseudonymKey, anonymize, anonymize_with_targets, compile_profile, explain
from app.anonymize.profile import Profile
from tests.phi.scanner import find_planted
from tests.phi.structure import references

KEY = PseudonymKey(secret=b"shape-test-secret-0123456789abcd", namespace="clinic-a")
TOKEN = "Alice Smith 555-12-3456"
LOCAL = "local-id-"  # every local id starts so: none may leave
PLANTED = [TOKEN, f"{LOCAL}c", *(f"{LOCAL}{n}" for n in range(10))]
NAMES = ("a", "b", "phone")

_REFERENCES = st.one_of(
    st.builds(
        lambda n: {
            "resourceType": "RelatedPerson",
            "id": f"{LOCAL}{n}",
            "display": TOKEN,
            "identifier": {"value": TOKEN},
        },
        st.integers(0, 9),
    ),
    st.just({"identifier": {"system": "urn:x", "value": TOKEN}, "display": TOKEN}),
    st.just({"resourceType": "RelatedPerson", "identifier": {"value": TOKEN}, "display": TOKEN}),
    st.just({"resourceType": "RelatedPerson", "display": TOKEN, "relationship": "x"}),
    # FHIR-format literals, as Aidbox keeps them in an untyped attribute written through /fhir
    st.builds(
        lambda n: {"reference": f"RelatedPerson/{LOCAL}{n}/_history/2", "display": TOKEN},
        st.integers(0, 9),
    ),
    st.just({"reference": f"#{LOCAL}c", "display": TOKEN}),
    st.just({"reference": f"https://clinic.example/Patient/{LOCAL}1", "display": TOKEN}),
    st.just({"localRef": f"{LOCAL}c", "display": TOKEN}),
    st.just({"uri": "https://clinic.example/p/1", "display": TOKEN}),
)


class _Dict(dict):
    """A mapping that is not a plain dict (what a caller other than orjson may hand over)."""


class _List(list):
    """A sequence that is not a plain list."""


def _either(plain: st.SearchStrategy[Any], subclass: type) -> st.SearchStrategy[Any]:
    return st.one_of(plain, plain.map(subclass))


# Everything else in the tree is no PHI: kept elements may carry it out as they are.
_VALUES = st.recursive(
    st.one_of(_either(_REFERENCES, _Dict), st.just("v"), st.integers(0, 3)),
    lambda inner: st.one_of(
        _either(st.dictionaries(st.sampled_from(NAMES), inner, min_size=1, max_size=3), _Dict),
        _either(st.lists(inner, min_size=1, max_size=3), _List),
    ),
    max_leaves=8,
)
_PATHS = st.lists(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(
        lambda names: ".".join(["emergencyContact", *names])
    ),
    max_size=3,
)
_METHODS = st.sampled_from(
    [{"method": "keep"}, {"method": "redact"}, {"method": "pseudonymize"},
     {"method": "replace", "value": "R"}]
)  # fmt: skip


@st.composite
def _profiles(draw: st.DrawFn) -> Profile:
    paths = ["emergencyContact", *draw(_PATHS)]
    rules = []
    for path in draw(st.permutations(list(dict.fromkeys(paths)))):
        rules.append({"path": path, **draw(_METHODS)})
    default = draw(st.sampled_from(["keep", "redact"]))
    body = {"id": "p", "name": "p", "default": default,
            "resources": [{"type": "Patient", "rules": rules}]}  # fmt: skip
    return Profile.model_validate(body)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(_profiles(), _VALUES)
def test_no_reference_of_unknown_datatype_leaves_with_more_than_its_target(
    profile: Profile, value: Any
) -> None:
    plan = compile_profile(profile, today=date(2025, 6, 1))
    resource = {"resourceType": "Patient", "id": "p1", "emergencyContact": value}
    sent, targets = anonymize_with_targets(resource, plan, KEY)
    assert find_planted(PLANTED, sent) == [], sent
    assert explain(resource, plan, KEY).resource == sent
    assert set(targets) == references(sent.get("emergencyContact"))
    assert anonymize(resource, plan, KEY) == sent
