"""How a question's text reads, as the question rules compare it: normalized (what shows
nothing taken out, case and compatibility forms folded), as words, and as a reader sees it
where bidirectional controls reorder it. Pure functions on strings, no profile in sight."""

from __future__ import annotations

import functools
import re
import unicodedata

# Code points that show nothing yet are no format character (category Cf) either: Unicode's
# Default_Ignorable_Code_Point (DerivedCoreProperties.txt) beyond Cf: the combining grapheme
# joiner, Hangul fillers, Khmer inherent vowels, Mongolian and other variation selectors, and
# the reserved ranges of that property. A Braille blank (U+2800) reads as a space.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2065\u3164\ufe00-\ufe0f\uffa0"
    "\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
# A word is a run of letters (with their marks) or a run of digits: "patient_age" and "Age1"
# hold the word "age" as a reader sees it.
_WORD = re.compile(r"[^\W\d_]+|\d+")

# The explicit directional controls (Unicode Standard Annex #9, "Explicit Directional
# Embeddings, Overrides and Isolates"): the ones that open a level, with the direction an
# override forces on what follows (None: an embedding or isolate, no forced direction) and
# whether the level is odd (right-to-left); and the ones that close a level.
_OPENS = {
    "\u202a": (None, False, False),  # LRE
    "\u202b": (None, True, False),  # RLE
    "\u202d": ("L", False, False),  # LRO
    "\u202e": ("R", True, False),  # RLO
    "\u2066": (None, False, True),  # LRI
    "\u2067": (None, True, True),  # RLI
    "\u2068": (None, False, True),  # FSI: left-to-right for a question's (Latin) letters
}
_PDF, _PDI = "\u202c", "\u2069"
_MAX_DEPTH = 125  # UAX #9 BD2: deeper levels are ignored
# Every question rule reads an item's text (and its linkId) again, and a questionnaire's
# texts repeat in each of its responses: each distinct text is read once, while it is used.
_READ_TEXTS = 8192


def normalize_question(text: str) -> str:
    """Question text as compared: without what shows nothing (format characters such as
    zero-width spaces and soft hyphens, category Cf; other default-ignorable code points),
    in Unicode compatibility form (fullwidth letters are letters, NFKC; composed again once
    what showed nothing no longer stands between a letter and its accent), case-folded,
    single-spaced, without trailing ``: ? *``."""
    folded = _IGNORABLE.sub("", unicodedata.normalize("NFKC", text)).replace("\u2800", " ")
    visible = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    composed = unicodedata.normalize("NFKC", visible.casefold())
    return " ".join(composed.split()).rstrip(":?* ")


@functools.lru_cache(maxsize=_READ_TEXTS)
def question_words(text: str) -> str:
    """A text as its words, each between spaces (" patient s age "): what ``match: words``
    compares, a phrase's words within a question's."""
    return f" {' '.join(_WORD.findall(text))} "


@functools.lru_cache(maxsize=_READ_TEXTS)
def question_readings(text: str) -> tuple[str, ...]:
    """The ways a question text reads, normalized: as stored, and as shown where explicit
    directional controls reorder it (``\u202eeman`` shows "name")."""
    stored = normalize_question(text)
    if not any(control in text for control in _OPENS):
        return (stored,)
    return stored, normalize_question(displayed(text))


def displayed(text: str) -> str:
    """``text`` in the order a reader sees it, for left-to-right letters reordered by
    explicit overrides, embeddings and isolates, nested to any depth (UAX #9: the levels of
    rules X1-X8, the raised level of rule I2, the reversals of rule L2). Every character is
    taken as left-to-right where no override says otherwise (a question rule names words
    of left-to-right scripts; spaces and digits among them read with them)."""
    stack: list[tuple[int, str | None, bool]] = [(0, None, False)]
    shown: list[str] = []
    levels: list[int] = []
    for char in text:
        opened = _OPENS.get(char)
        if opened is not None:
            forced, odd, isolate = opened
            level = stack[-1][0] + 1
            level += (level % 2 == 1) != odd
            if level > _MAX_DEPTH:  # changes nothing, and so does the control closing it
                level, forced = stack[-1][:2]
            stack.append((level, forced, isolate))
        elif char == _PDF:
            if len(stack) > 1 and not stack[-1][2]:
                stack.pop()
        elif char == _PDI:
            while len(stack) > 1 and not stack.pop()[2]:
                pass
        else:
            level, forced, _ = stack[-1]
            if forced is None and level % 2:
                level += 1  # I2: a left-to-right character at an odd level is raised
            shown.append(char)
            levels.append(level)
    odd_levels = [level for level in levels if level % 2]
    if not odd_levels:
        return "".join(shown)
    for level in range(max(levels), min(odd_levels) - 1, -1):
        start = 0
        while start < len(shown):
            if levels[start] < level:
                start += 1
                continue
            end = start
            while end < len(shown) and levels[end] >= level:
                end += 1
            shown[start:end] = shown[start:end][::-1]
            levels[start:end] = levels[start:end][::-1]
            start = end
    return "".join(shown)
