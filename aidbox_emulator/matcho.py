"""Matcho patterns, the language of `matcho` AccessPolicies (reference/matcho-dsl-reference.md).

`matches(pattern, subject, context)` is True when `subject` matches `pattern`; `context` is what
`.path` strings look into (for an AccessPolicy: the request object, which is also the subject).

What the reference documents, and how each point is read here:
- strings, numbers and booleans compare by value (a boolean never equals a number);
- a map matches a map that contains its keys, recursively (a missing key is `null`);
- an array matches an array whose first elements match it, in order (`[1, 2]` matches
  `[1, 2, 3]`, not `[2, 1]`);
- `#...` is a regular expression *searched* in a string, not anchored: `#clinic-a` matches
  `xclinic-a-1` (write `#^clinic-a-[0-9a-f]+$` to anchor);
- `present?` (not null), `nil?` (null), `not-blank?` (a string that is not empty);
- `.a.b` compares with the value at that path of the context, so it passes when both are
  missing (tutorials/security-access-control-tutorials/accesspolicy-best-practices.md);
- special keys `$enum`, `$one-of` (alone in its map), `$reference`, `$contains`, `$every`,
  `$not`, `$present-all`, `$length`.
Where the reference is silent the stricter reading is taken (docs/aidbox-contract-notes.md);
a pattern this module cannot read raises `InvalidPattern`, and the policy then denies.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_SPECIAL = frozenset(
    {"$enum", "$one-of", "$reference", "$contains", "$every", "$not", "$present-all", "$length"}
)
# `Type/id` and `Type/id/_history/vid` (api/rest-api/other/aidbox-and-fhir-formats.md).
_RELATIVE_REFERENCE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)/([^/]+)(?:/_history/[^/]+)?$")


class InvalidPattern(ValueError):
    """A pattern the reference gives no meaning to (the policy denies)."""


def matches(pattern: Any, subject: Any, context: Any) -> bool:
    """True when `subject` matches `pattern`; `.path` strings are looked up in `context`."""
    if isinstance(pattern, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in pattern):
            return _special(pattern, subject, context)
        if not isinstance(subject, dict):
            return False
        return all(matches(v, subject.get(k), context) for k, v in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(subject, list) or len(subject) < len(pattern):
            return False
        return all(matches(p, s, context) for p, s in zip(pattern, subject, strict=False))
    if isinstance(pattern, str):
        return _string(pattern, subject, context)
    return same_value(pattern, subject)


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, `1` equals `1.0`, maps and arrays deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def lookup(context: Any, path: str) -> Any:
    """The value at a dotted path (`user.data.id`, `params.resource/id`); None when missing.

    Keys may contain `/` and `-`; a segment of digits indexes an array.
    """
    value = context
    for key in path.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


@lru_cache(maxsize=512)
def _regex(source: str) -> re.Pattern[str]:
    try:
        return re.compile(source)
    except re.error as exc:
        raise InvalidPattern(f"bad regular expression: {exc}") from None


def _string(pattern: str, subject: Any, context: Any) -> bool:
    if pattern == "present?":
        return subject is not None
    if pattern == "nil?":
        return subject is None
    if pattern == "not-blank?":
        return isinstance(subject, str) and subject.strip() != ""
    if pattern.startswith("#"):
        return isinstance(subject, str) and _regex(pattern[1:]).search(subject) is not None
    if pattern.startswith("."):
        return same_value(lookup(context, pattern[1:]), subject)
    return isinstance(subject, str) and subject == pattern


def _special(pattern: dict[str, Any], subject: Any, context: Any) -> bool:
    unknown = [k for k in pattern if k.startswith("$") and k not in _SPECIAL]
    if unknown:
        raise InvalidPattern(f"unknown matcho key {unknown[0]}")
    if "$one-of" in pattern and len(pattern) > 1:
        # matcho-dsl-reference.md: "$one-of key cannot be utilized concurrently with other keys".
        raise InvalidPattern("$one-of cannot be combined with other keys")
    plain = {k: v for k, v in pattern.items() if not k.startswith("$")}
    checks = [(k, v) for k, v in pattern.items() if k.startswith("$")]
    if plain and not matches(plain, subject, context):
        return False
    return all(_operator(k, v, subject, context) for k, v in checks)


def _operator(key: str, arg: Any, subject: Any, context: Any) -> bool:
    if key == "$enum":
        if not isinstance(arg, list):
            raise InvalidPattern("$enum takes an array")
        scalar = isinstance(subject, str | int | float | bool)
        return scalar and any(same_value(item, subject) for item in arg)
    if key == "$one-of":
        if not isinstance(arg, list):
            raise InvalidPattern("$one-of takes an array")
        return any(matches(option, subject, context) for option in arg)
    if key == "$reference":
        return matches(arg, _as_reference(subject), context)
    if key == "$contains":
        return isinstance(subject, list) and any(matches(arg, item, context) for item in subject)
    if key == "$every":
        # An empty or missing collection does not pass (the stricter reading).
        return (
            isinstance(subject, list)
            and bool(subject)
            and all(matches(arg, item, context) for item in subject)
        )
    if key == "$not":
        return not matches(arg, subject, context)
    if key == "$present-all":
        if not isinstance(arg, list):
            raise InvalidPattern("$present-all takes an array")
        return isinstance(subject, list) and all(
            any(same_value(item, element) for element in subject) for item in arg
        )
    # $length
    if isinstance(arg, bool) or not isinstance(arg, int):
        raise InvalidPattern("$length takes an integer")
    return isinstance(subject, list) and len(subject) == arg


def _as_reference(value: Any) -> Any:
    """A FHIR Reference or reference string in Aidbox format: `{resourceType, id}`.

    matcho-dsl-reference.md: `{reference: "Patient/pid"}` => `{id: "pid", resourceType:
    "Patient"}`; an Aidbox-format reference stays as it is; anything else is None.
    """
    text = value.get("reference") if isinstance(value, dict) else value
    if isinstance(value, dict) and text is None:
        return value if "resourceType" in value and "id" in value else None
    if not isinstance(text, str):
        return None
    found = _RELATIVE_REFERENCE.match(text)
    if found is None:
        return None
    return {"resourceType": found.group(1), "id": found.group(2)}
