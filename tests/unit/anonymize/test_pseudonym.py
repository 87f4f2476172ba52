"""Pseudonym keys: deterministic, keyed, namespaced, valid FHIR ids, secret never printed."""

from __future__ import annotations

import re

import pytest

from app.anonymize import PseudonymKey

FHIR_ID = re.compile(r"[A-Za-z0-9\-\.]{1,64}\Z")


def test_resource_id_is_a_namespaced_fhir_id() -> None:
    key = PseudonymKey(secret=b"s" * 32, namespace="clinic-a")
    global_id = key.resource_id("Patient", "pt-1")
    assert global_id.startswith("clinic-a-")
    assert FHIR_ID.match(global_id)
    assert "pt-1" not in global_id


def test_resource_ids_are_deterministic_and_depend_on_type_id_and_key() -> None:
    key = PseudonymKey(secret=b"s" * 32, namespace="clinic-a")
    same = PseudonymKey(secret=b"s" * 32, namespace="clinic-a")
    assert key.resource_id("Patient", "1") == same.resource_id("Patient", "1")
    assert key.resource_id("Patient", "1") != key.resource_id("Encounter", "1")
    assert key.resource_id("Patient", "1") != key.resource_id("Patient", "2")
    other = PseudonymKey(secret=b"t" * 32, namespace="clinic-a")
    assert key.resource_id("Patient", "1") != other.resource_id("Patient", "1")


def test_the_longest_instance_id_fits_in_a_fhir_id() -> None:
    namespace = "c" + "-" * 23  # INSTANCE_ID_PATTERN's longest (app/model.py)
    key = PseudonymKey(secret=b"s" * 32, namespace=namespace)
    assert FHIR_ID.match(key.resource_id("Observation", "x" * 200))


def test_pseudonym_is_stable_and_not_the_resource_digest() -> None:
    key = PseudonymKey(secret=b"s" * 32, namespace="clinic-a")
    assert key.pseudonym("a@b.org") == key.pseudonym("a@b.org")
    assert key.pseudonym("Patient/1") not in key.resource_id("Patient", "1")


@pytest.mark.parametrize("namespace", ["", "clinic a", "clinic/a", "clinic.a", "-a", "x" * 25])
def test_bad_namespaces_are_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        PseudonymKey(secret=b"s" * 32, namespace=namespace)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        PseudonymKey(secret=b"short", namespace="clinic-a")


def test_repr_hides_the_secret() -> None:
    secret = b"do-not-print-me-0123456789abcdefghij"
    assert secret.decode() not in repr(PseudonymKey(secret=secret, namespace="clinic-a"))


def test_the_digest_is_standard_hmac_sha256() -> None:
    import hmac

    for secret in (b"s" * 32, b"a-much-longer-secret-than-one-sha256-block-of-64-bytes-" * 2):
        key = PseudonymKey(secret=secret, namespace="n")
        expected = hmac.digest(secret, b"value\x00a@b.org", "sha256")[:13].hex()
        assert key.pseudonym("a@b.org") == expected
