"""Keyed pseudonyms: HMAC-SHA256 with the clinic's secret, never stored in Aidbox."""

from __future__ import annotations

import hashlib
import re

from app.model import INSTANCE_ID_PATTERN

# A FHIR id is [A-Za-z0-9\-\.]{1,64} (FHIR R4 datatypes, "id"). A resource id is
# "<namespace>-<digest>"; the digest is the first 104 bits of the HMAC in hex (26 characters),
# which leaves 37 characters for the namespace; the namespace is an instance id, at most 24
# (app/model.py). 104 bits keep the chance of any collision among a billion ids below 1e-13.
_DIGEST_BYTES = 13
_DIGEST_CHARS = 2 * _DIGEST_BYTES
_SHA256_BLOCK = 64
# A short secret makes a keyed hash of a low-entropy value (a 9-digit SSN, a date) guessable by
# brute force; NIST SP 800-107 asks an HMAC key to carry at least the security strength wanted,
# and 32 bytes match SHA-256's (SYNC_PSEUDONYM_KEY is checked against this, app/settings.py).
MIN_SECRET_BYTES = 32
# Bounded memo of resource ids: the same patient is referenced by most resources of a page,
# so a few pages' worth is enough; more only holds memory through a backfill (bench/ceiling.py).
_CACHE_LIMIT = 8_192

# Domain separation, so that a value's pseudonym never equals a resource id's digest.
_VALUE_DOMAIN = b"value\x00"
_RESOURCE_DOMAIN = b"resource\x00"


class _HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the keyed inner and outer states computed once.

    Same output as ``hmac.digest(secret, message, "sha256")`` (tested), in a third of the time:
    every resource id and reference goes through it.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        block = (hashlib.sha256(secret).digest() if len(secret) > _SHA256_BLOCK else secret).ljust(
            _SHA256_BLOCK, b"\0"
        )
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class PseudonymKey:
    """The clinic's pseudonymization key: a secret (from the environment) and a namespace.

    The namespace is this clinic's instance id; it prefixes every resource id the clinic sends so
    that two clinics can never write the same id at the global. Pseudonyms are deterministic:
    the same key gives the same output across runs, processes and resource types.
    """

    __slots__ = ("_hmac", "_ids", "namespace", "secret")

    def __init__(self, secret: bytes, namespace: str) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"pseudonym secret must be at least {MIN_SECRET_BYTES} bytes")
        if not re.fullmatch(INSTANCE_ID_PATTERN, namespace):
            raise ValueError(f"namespace must be an instance id ({INSTANCE_ID_PATTERN})")
        self.secret = secret
        self.namespace = namespace
        self._hmac = _HmacSha256(secret)
        self._ids: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        # Never print the secret: keys end up in logs through reprs of the objects holding them.
        return f"PseudonymKey(namespace={self.namespace!r}, secret=<{len(self.secret)} bytes>)"

    def pseudonym(self, value: str) -> str:
        """Keyed pseudonym of a string value: 26 lowercase hex characters."""
        return self._hmac.digest(_VALUE_DOMAIN + value.encode("utf-8"))[:_DIGEST_BYTES].hex()

    def resource_id(self, resource_type: str, local_id: str) -> str:
        """Global id of a local resource: ``"<namespace>-<digest of type/id>"``, a valid FHIR id."""
        cache_key = (resource_type, local_id)
        found = self._ids.get(cache_key)
        if found is None:
            message = _RESOURCE_DOMAIN + f"{resource_type}/{local_id}".encode()
            found = f"{self.namespace}-{self._hmac.digest(message)[:_DIGEST_BYTES].hex()}"
            if len(self._ids) >= _CACHE_LIMIT:
                self._ids.clear()
            self._ids[cache_key] = found
        return found
