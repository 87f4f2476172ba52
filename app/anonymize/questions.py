"""QuestionnaireResponse items picked by question (profile ``questionnaire.questions``): the
matchers of each question rule, and their place in the rule tree."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from app.anonymize.paths import Segment
from app.anonymize.profile import QuestionRule
from app.anonymize.question_text import normalize_question, question_reading, question_words
from app.anonymize.rules import compile_rule
from app.anonymize.tree import Edge, Matcher, Node, attach, descend


def _question_matchers(question: QuestionRule) -> Iterator[Matcher]:
    if question.link_id:
        ids = frozenset(question.link_id)
        # a linkId that is not a string (an array, an object) matches nothing, and must not
        # raise: it is no valid linkId, and the item goes with it (linkId is required)
        yield Matcher(
            "linkId",
            lambda value: type(value) is str and value in ids,
            ("linkId", *sorted(ids)),
            False,
        )
    if question.text:
        texts = tuple(sorted({normalize_question(text) for text in question.text}))
        reads_as = _reading_test(question.match, texts)

        def test(value: Any) -> bool:
            return isinstance(value, str) and reads_as(question_reading(value))

        yield Matcher("text", test, ("text", question.match, *texts), False)
        # A linkId is a question's name too ("patient-phone", "Pain score"), and the only
        # one of an item without text: the lists apply to it as they do to the text.
        yield Matcher("linkId", test, ("linkId as text", question.match, *texts), False)


def _reading_test(match: str, texts: tuple[str, ...]) -> Callable[[str], bool]:
    """Does one normalized reading of a question match ``texts``: as a whole (exact), as a
    part of it (contains), or as whole words of it (words: "age" in "Current age", not in
    "Dosage" or "Page 2")."""
    if match == "exact":
        return lambda asked: asked in texts
    if match == "contains":
        return lambda asked: any(text in asked for text in texts)
    phrases = tuple(question_words(text) for text in texts)

    def in_words(asked: str) -> bool:
        words = question_words(asked)
        return any(phrase in words for phrase in phrases)

    return in_words


def _untitled(value: Any) -> bool:
    return not isinstance(value, str) or not question_reading(value)


def add_questions(root: Node, questions: list[QuestionRule]) -> None:
    """Question rules act on the matching items: keep and redact take the whole item (its
    answers, and its nested items but those judged on their own); other methods transform
    its answer values.

    A nested item is no part of an allowed question around it unless a rule names it too:
    one without text asks nobody knows what (a member number, an account), and one whose
    question no rule names may ask anything ("Ville", "Rufnummer": the redact lists name
    identifying questions in a few languages, never all). Either is judged like a top-level
    item, by the rules matching its linkId or text, else the type's default (answers are
    default-deny); a redact around it still takes it."""
    edge = root.children.setdefault("item", Edge())
    edge.filtered.append((Matcher("text", _untitled, ("text", "none"), False), Node(detached=True)))
    edge.otherwise = Node(detached=True)
    for index, question in enumerate(questions):
        rule = compile_rule(question, index, f"questionnaire.questions[{index}]")
        for matcher in _question_matchers(question):
            item = Node()
            edge.filtered.append((matcher, item))
            target = item
            if not (rule.is_keep or rule.removes):
                target = descend(descend(item, Segment("answer")), Segment("value"))
            attach(target, rule)


def shadowed_questions(questions: list[QuestionRule]) -> list[str]:
    """The texts and linkIds of question rules that an earlier rule with another method
    matches too: for those questions the earlier rule decides (profile order), so what the
    later one says of them never applies (an allowed question whose text holds a word of the
    redact lists, such as "Contact lenses"). One line each, naming both rules; empty for a
    profile without such overlaps."""
    found: list[str] = []
    earlier: list[tuple[int, QuestionRule, list[Matcher]]] = []
    for index, question in enumerate(questions):
        probes = [("text", t) for t in question.text] + [("linkId", i) for i in question.link_id]
        for key, value in probes:
            for before, rule, matchers in earlier:
                if rule.method != question.method and any(
                    m.key == key and m.test(value) for m in matchers
                ):
                    found.append(
                        f"questionnaire.questions[{index}] {key} {value!r} is matched first by "
                        f"questionnaire.questions[{before}] ({rule.method})"
                    )
                    break
        earlier.append((index, question, list(_question_matchers(question))))
    return found
