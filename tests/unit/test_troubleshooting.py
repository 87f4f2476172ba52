"""README's Troubleshooting section quotes the product's messages exactly.

The convention, visible in the section itself: the section (from the line `## Troubleshooting`
to the next `## ` heading) holds a table whose **first column lists messages only**. Every
backticked fragment in a row's first cell is a message as the product prints it, `…` standing
for each variable part; the other columns (where it shows, cause, fix) are free text and are
not checked. The header row and the `|---|` row of a table are not rows of messages.

Each message is split at `…` into fixed parts (surrounding spaces stripped). Every fixed part of
8 characters or more must occur literally in a `.py` file of `app/` or `aidbox_emulator/` (the
latter for Aidbox's own messages, which the emulator reproduces): in the file's text, or in one
of its string literals as Python reads them (so an f-string's fixed parts match, and so do
literals continued on the next line by implicit concatenation).

Nothing is skipped silently: no section, a section without a message, or a message without a
fixed part of 8 characters or more fails the test.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HEADING = "## Troubleshooting"
SOURCES = ("app", "aidbox_emulator")
ELLIPSIS = "\u2026"  # …
MIN_FIXED = 8

_SEPARATOR_ROW = re.compile(r"^\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*$")
_CELL_BORDER = re.compile(r"(?<!\\)\|")
_CODE = re.compile(r"`([^`]+)`")


def troubleshooting_section(readme: str) -> str:
    """The text under `## Troubleshooting`, up to the next `## ` heading; fails without one."""
    lines = readme.splitlines()
    starts = [n for n, line in enumerate(lines) if line.rstrip() == HEADING]
    if not starts:
        pytest.fail(
            f"README.md has no '{HEADING}' section: its messages cannot be checked "
            "(paste the section under that heading)"
        )
    body: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        body.append(line)
    return "\n".join(body)


def _cells(row: str) -> list[str]:
    inner = row.strip()
    inner = inner.removeprefix("|")
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return _CELL_BORDER.split(inner)


def messages(markdown: str) -> list[str]:
    """The messages of a section: the backticked fragments of its tables' first column."""
    lines = [line.strip() for line in markdown.splitlines()]
    found: list[str] = []
    for n, line in enumerate(lines):
        if not line.startswith("|") or _SEPARATOR_ROW.match(line):
            continue
        if n + 1 < len(lines) and _SEPARATOR_ROW.match(lines[n + 1]):
            continue  # a table's header row
        first = _cells(line)[0]
        found += [code.replace("\\|", "|") for code in _CODE.findall(first)]
    return found


def fixed_parts(message: str) -> list[str]:
    """The parts of a message between its `…`, stripped; only those long enough to check."""
    parts = (part.strip() for part in message.split(ELLIPSIS))
    return [part for part in parts if len(part) >= MIN_FIXED]


@cache
def _source_texts() -> tuple[str, ...]:
    """Each source file's text, and each of its string literals' (f-string parts included)."""
    texts: list[str] = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            texts.append(text)
            texts += [
                node.value
                for node in ast.walk(ast.parse(text, filename=str(path)))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
            ]
    return tuple(texts)


def in_code(part: str) -> bool:
    """Whether `part` occurs literally in the sources of app/ or aidbox_emulator/."""
    return any(part in text for text in _source_texts())


def problems(markdown: str) -> list[str]:
    """What is wrong with a section's messages (empty when each is found in the code)."""
    found = messages(markdown)
    if not found:
        return [
            "no message found: the first column of the section's table must hold the messages, "
            "each in backticks"
        ]
    wrong: list[str] = []
    for message in found:
        parts = fixed_parts(message)
        if not parts:
            wrong.append(f"`{message}`: no fixed part of {MIN_FIXED} characters or more to check")
        wrong += [
            f"`{message}`: {part!r} is not in the code of {' or '.join(SOURCES)}"
            for part in parts
            if not in_code(part)
        ]
    return wrong


def assert_messages_in_code(markdown: str) -> None:
    """Fail, listing each, if a message of the section is not the product's."""
    wrong = problems(markdown)
    assert not wrong, "Troubleshooting messages not found in the code:\n" + "\n".join(wrong)


def test_every_message_of_the_readme_troubleshooting_section_is_in_the_code() -> None:
    assert_messages_in_code(troubleshooting_section(README.read_text(encoding="utf-8")))


def test_the_check_finds_fixed_parts_and_refuses_what_the_code_does_not_say() -> None:
    section = "\n".join(
        [
            "| message | where |",
            "|---|---|",
            "| `held by runner … until …` | `not a message: free text` |",
            "| `… of the last … entries refused by headquarters (e.g. …); the stream stops "
            "without quarantining them: fix the cause there, then $sync` | |",
            "| `SyncScope/… is invalid: …` and `… is configured to push forever` | |",
            "| `a … b` | |",
        ]
    )
    assert messages(section)[0] == "held by runner … until …"
    assert problems(section) == [
        "`… is configured to push forever`: 'is configured to push forever' is not in the code "
        "of app or aidbox_emulator",
        "`a … b`: no fixed part of 8 characters or more to check",
    ]


def test_a_readme_without_the_section_fails_clearly() -> None:
    with pytest.raises(pytest.fail.Exception, match="no '## Troubleshooting' section"):
        troubleshooting_section("# aidbox-sync\n\n## Operations\n")
    readme = "## Operations\nx\n## Troubleshooting\n| a |\n|---|\n| `b` |\n## Testing\n| `c` |\n"
    assert messages(troubleshooting_section(readme)) == ["b"]
