"""Keyed pseudonyms: HMAC-SHA256 with the clinic's secret, never stored in Aidbox."""

from __future__ import annotations

import base64
import hmac

# A FHIR id is [A-Za-z0-9\-\.]{1,64} (FHIR R4 datatypes, "id"). A resource id is
# "<namespace>-<digest>"; the digest is 128 bits in lowercase base32 (26 characters, all valid id
# characters), which leaves 37 characters for the namespace: enough for a UUID instance id.
_DIGEST_BYTES = 16
_DIGEST_CHARS = 26
_MAX_NAMESPACE = 64 - 1 - _DIGEST_CHARS
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")
# A short secret makes a keyed hash of a low-entropy value (a 9-digit SSN, a date) guessable by
# brute force; NIST SP 800-107 asks an HMAC key to carry at least the security strength wanted.
MIN_SECRET_BYTES = 16
# Bounded memo of resource ids: the same patient is referenced by most resources of a page.
_CACHE_LIMIT = 65_536

# Domain separation, so that a value's pseudonym never equals a resource id's digest.
_VALUE_DOMAIN = b"value\x00"
_RESOURCE_DOMAIN = b"resource\x00"


def _digest(secret: bytes, message: bytes) -> str:
    raw = hmac.digest(secret, message, "sha256")[:_DIGEST_BYTES]
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


class PseudonymKey:
    """The clinic's pseudonymization key: a secret (from the environment) and a namespace.

    The namespace is this clinic's instance id; it prefixes every resource id the clinic sends so
    that two clinics can never write the same id at the global. Pseudonyms are deterministic:
    the same key gives the same output across runs, processes and resource types.
    """

    __slots__ = ("_ids", "namespace", "secret")

    def __init__(self, secret: bytes, namespace: str) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"pseudonym secret must be at least {MIN_SECRET_BYTES} bytes")
        if not namespace or len(namespace) > _MAX_NAMESPACE or not set(namespace) <= _ID_CHARS:
            raise ValueError(
                f"namespace must be 1-{_MAX_NAMESPACE} characters of [A-Za-z0-9-.], "
                f"got {namespace!r}"
            )
        self.secret = secret
        self.namespace = namespace
        self._ids: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        # Never print the secret: keys end up in logs through reprs of the objects holding them.
        return f"PseudonymKey(namespace={self.namespace!r}, secret=<{len(self.secret)} bytes>)"

    def pseudonym(self, value: str) -> str:
        """Keyed pseudonym of a string value: 26 lowercase base32 characters."""
        return _digest(self.secret, _VALUE_DOMAIN + value.encode("utf-8"))

    def resource_id(self, resource_type: str, local_id: str) -> str:
        """Global id of a local resource: ``"<namespace>-<digest of type/id>"``, a valid FHIR id."""
        cache_key = (resource_type, local_id)
        found = self._ids.get(cache_key)
        if found is None:
            message = _RESOURCE_DOMAIN + f"{resource_type}/{local_id}".encode()
            found = f"{self.namespace}-{_digest(self.secret, message)}"
            if len(self._ids) >= _CACHE_LIMIT:
                self._ids.clear()
            self._ids[cache_key] = found
        return found
