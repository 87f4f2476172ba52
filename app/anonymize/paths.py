"""The profile path language: Aidbox-format element paths with optional filters.

    path    := segment ("." segment)*
    segment := name | name "(" key "=" value ")"

``name`` is an element key as stored in Aidbox format (``address``, ``value``, ``string``,
``patientFirstName``). A segment steps into arrays transparently: ``name.family`` selects the
family of every name. A filter keeps only the array items (or the single object) whose ``key``
equals ``value`` exactly: ``extension(url=http://x/y)``, ``telecom(system=email)``. The value runs
to the closing parenthesis (dots and slashes included), may be wrapped in double quotes, and
cannot contain ``)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import SyncError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class PathError(SyncError, ValueError):
    """A path that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Select items whose ``key`` equals ``value``."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Segment:
    """One step of a path: an element name and an optional filter on it."""

    name: str
    filter: Filter | None = None

    def __str__(self) -> str:
        if self.filter is None:
            return self.name
        return f"{self.name}({self.filter.key}={self.filter.value})"


def _split(path: str) -> list[str]:
    """Split on dots outside parentheses (filter values hold URLs with dots)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(path):
        if char == "(":
            if depth:
                raise PathError(f"nested '(' at {i}")
            depth = 1
        elif char == ")":
            if not depth:
                raise PathError(f"unbalanced ')' at {i}")
            depth = 0
        elif char == "." and not depth:
            parts.append(path[start:i])
            start = i + 1
    if depth:
        raise PathError("missing ')'")
    parts.append(path[start:])
    return parts


def _segment(text: str) -> Segment:
    if "(" not in text:
        if not _NAME.match(text):
            raise PathError(f"{text!r} is not an element name")
        return Segment(text)
    name, _, rest = text.partition("(")
    if not rest.endswith(")"):
        raise PathError(f"text after ')' in {text!r}")
    key, eq, value = rest[:-1].partition("=")
    key = key.strip()
    value = value.strip()
    if not _NAME.match(name):
        raise PathError(f"{name!r} is not an element name")
    if not eq or not _NAME.match(key):
        raise PathError(f"filter in {text!r} must be (key=value)")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value:
        raise PathError(f"empty filter value in {text!r}")
    return Segment(name, Filter(key, value))


def parse_path(path: str) -> tuple[Segment, ...]:
    """Parse a profile path; raise PathError on anything malformed."""
    if not path or path != path.strip():
        raise PathError("empty path or surrounding spaces")
    return tuple(_segment(part) for part in _split(path))


def format_path(segments: tuple[Segment, ...]) -> str:
    """The canonical text of parsed segments."""
    return ".".join(str(segment) for segment in segments)
