"""Find planted PHI tokens in anything: a resource, a list of them, a log, a response body.

A token is found when it occurs case-insensitively with no letter or digit right before or
after it. The boundary matters: pseudonyms are base32/hex strings, in which a short token
("Lee", "02139") would otherwise turn up by chance, while a real leak ("Lee, Ann", "zip 02139")
is always delimited. Matching is fast for many tokens: a token can only occur if each of its
alphanumeric runs is a whole run of the text, so only those candidates are searched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import orjson

from tests.phi.model import Planted

_RUN = re.compile(r"[^\W_]+")
T = TypeVar("T", Planted, str)


def as_text(obj_or_text: Any) -> str:
    """Text to scan: strings as they are, bytes decoded, anything else as JSON."""
    if isinstance(obj_or_text, str):
        return obj_or_text
    if isinstance(obj_or_text, bytes | bytearray):
        return obj_or_text.decode("utf-8", errors="replace")
    return orjson.dumps(obj_or_text, default=str).decode("utf-8")


def _occurs(needle: str, haystack: str) -> bool:
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = haystack.find(needle, start + 1)
    return False


def find_planted(tokens: Iterable[T], obj_or_text: Any) -> list[T]:
    """The tokens (``Planted`` or plain strings) that occur in ``obj_or_text``; [] when clean."""
    haystack = as_text(obj_or_text).casefold()
    runs = set(_RUN.findall(haystack))
    found: list[T] = []
    for token in tokens:
        needle = (token.value if isinstance(token, Planted) else token).casefold()
        if not needle.strip():
            continue
        if all(run in runs for run in _RUN.findall(needle)) and _occurs(needle, haystack):
            found.append(token)
    return found
