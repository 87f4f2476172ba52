"""The profile path language: parsing and what it refuses."""

from __future__ import annotations

import pytest

from app.anonymize.paths import Filter, PathError, Segment, format_path, parse_path


def test_plain_paths() -> None:
    assert parse_path("name") == (Segment("name"),)
    assert parse_path("contact.name.family") == (
        Segment("contact"),
        Segment("name"),
        Segment("family"),
    )
    assert parse_path("value.Quantity") == (Segment("value"), Segment("Quantity"))


def test_filters_keep_dots_and_slashes_in_values() -> None:
    url = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
    segments = parse_path(f"extension(url={url}).extension(url=ombCategory).value.Coding")
    assert segments[0] == Segment("extension", Filter("url", url))
    assert segments[1] == Segment("extension", Filter("url", "ombCategory"))
    assert [s.name for s in segments[2:]] == ["value", "Coding"]


def test_quoted_filter_values() -> None:
    assert parse_path('telecom(system="email")') == (Segment("telecom", Filter("system", "email")),)


def test_format_round_trips() -> None:
    text = "extension(url=http://x.org/a.b).value.string"
    assert format_path(parse_path(text)) == text


@pytest.mark.parametrize(
    "path",
    [
        "",
        " name",
        "name.",
        ".name",
        "name..family",
        "na-me",
        "1name",
        "extension(url=x",
        "extension url=x)",
        "extension(url)",
        "extension(=x)",
        "extension(url=)",
        "extension(url=x)y",
        "a(b=(c))",
    ],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(PathError):
        parse_path(path)
