"""How a question's text reads, as the question rules compare it: normalized (what shows
nothing taken out, case and compatibility forms folded), as words, and not at all where a
screen may show it in another order than it is stored in. Pure functions on strings, no
profile in sight."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

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
_LETTER = re.compile(r"[^\W\d_]")

# What may show a text in another order than it is stored in (Unicode Standard Annex #9): the
# directional marks, embeddings, overrides and isolates, and letters of right-to-left scripts
# (bidirectional classes R and AL), whose neighbours' order then depends on the display.
_DIRECTIONAL = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_RIGHT_TO_LEFT = frozenset({"R", "AL"})
# Every question rule reads an item's text (and its linkId) again, and a questionnaire's
# texts repeat in each of its responses: each distinct text is read once, while it is used;
# an over-long one is read each time, so that no cache holds what a form should not have.
_READ_TEXTS = 8192
_REMEMBERED_LENGTH = 1000


def _remembered(read: Callable[[str], str]) -> Callable[[str], str]:
    cached = functools.lru_cache(maxsize=_READ_TEXTS)(read)

    @functools.wraps(read)
    def reading(text: str) -> str:
        return cached(text) if len(text) <= _REMEMBERED_LENGTH else read(text)

    return reading


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


@_remembered
def question_words(text: str) -> str:
    """A text as its words, each between spaces (" patient s age "): what ``match: words``
    compares, a phrase's words within a question's."""
    return f" {' '.join(_WORD.findall(text))} "


@_remembered
def question_reading(text: str) -> str:
    """A question text as compared (``normalize_question``), or "" when what a reader sees
    may be in another order than what is stored: a text with a directional control, or with
    letters of a right-to-left script. Such a text reads as no text (its answers are judged
    by its linkId alone): "DI rebmeM" after a right-to-left override (U+202E) shows
    "Member ID", and an order rebuilt here could differ from the one a screen shows. So does
    a text without a letter (".", "—", "1."), which tells no more than a missing one of what
    it asks."""
    if not text.isascii() and (
        _DIRECTIONAL.search(text)
        or any(unicodedata.bidirectional(char) in _RIGHT_TO_LEFT for char in text)
    ):
        return ""
    normalized = normalize_question(text)
    return normalized if _LETTER.search(normalized) else ""
