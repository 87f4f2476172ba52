"""Client secrets stored hashed, and a cache of verified credentials.

reference/system-resources-reference/core-module-resources.md §Client: `secret` is the "Hashed
client secret"; tutorials/security-access-control-tutorials/overview.md ("How Sensitive Values
are Stored in the Database"): Aidbox hashes `Client.secret` with SHA256 since 2410. The emulator
stores a salted PBKDF2-HMAC-SHA256 hash (`pbkdf2_sha256$<iterations>$<salt>$<hash>`, base64) in
the `secret` element of the `client` table, and never answers `secret` on reads
(storage.row_to_resource; docs/aidbox-contract-notes.md).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections import OrderedDict

_SCHEME = "pbkdf2_sha256"
_ITERATIONS = 100_000  # about 35 ms here: slow enough to matter, fast enough for tests


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_secret(secret: str, *, iterations: int = _ITERATIONS) -> str:
    """A salted hash of `secret`, the form kept in the database."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return f"{_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_secret(stored: object, secret: str) -> bool:
    """True if `secret` hashes to `stored`; anything that is not such a hash never verifies."""
    if not isinstance(stored, str):
        return False
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != _SCHEME or not parts[1].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, int(parts[1]))
    return hmac.compare_digest(digest, expected)


async def hash_secret_async(secret: str) -> str:
    """`hash_secret` off the event loop."""
    return await asyncio.to_thread(hash_secret, secret)


class VerifiedCredentials:
    """Remembers which presented secret matched which stored hash, so the KDF runs once.

    Keyed by the stored hash (its salt makes it unique): a rotated secret has a new hash and
    misses the cache, so the next request pays the KDF against the new value. The cache holds
    an HMAC of the presented secret under a per-process key, never the secret. Whether the
    Client exists and is active is read from the database on every request (auth.py).
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._key = os.urandom(32)
        self._max = max_entries
        self._verified: OrderedDict[str, bytes] = OrderedDict()

    def _tag(self, secret: str) -> bytes:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).digest()

    async def verify(self, stored: object, secret: str) -> bool:
        """True if `secret` matches the `stored` hash."""
        if not isinstance(stored, str):
            return False
        tag = self._tag(secret)
        cached = self._verified.get(stored)
        if cached is not None and hmac.compare_digest(cached, tag):
            self._verified.move_to_end(stored)
            return True
        if not await asyncio.to_thread(verify_secret, stored, secret):
            return False
        self._verified[stored] = tag
        self._verified.move_to_end(stored)
        while len(self._verified) > self._max:
            self._verified.popitem(last=False)
        return True
