"""End-phrase matching for the termination detector.

A session ends naturally when a speaker closes it ("don't hesitate to reach out", "see you next
week"). Those phrases also occur mid-session ("take care of that report", "reach out to your
sister"), so a phrase only counts in the closing part of a message, outside quotation marks, and
not when the message then hands the floor back with a question. Run it on text the role guard has
already cleaned: meta commentary after a goodbye would otherwise hide the goodbye.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from simulator.text import split_sentences

__all__ = [
    "DEFAULT_PATIENT_END_PHRASES",
    "DEFAULT_THERAPIST_END_PHRASES",
    "closing_part",
    "compile_phrases",
    "find_end_phrase",
]

DEFAULT_THERAPIST_END_PHRASES: tuple[str, ...] = (
    r"\bdon't hesitate to reach out\b",
    r"\bsee you (?:again )?(?:next (?:week|time|session)|(?:at|in) (?:our|the) next "
    r"(?:session|appointment|meeting))\b",
    r"\buntil next (?:week|time|session)\b",
    r"\btake care\b(?! of\b)",
    r"\bhave a (?:good|great|lovely|nice|wonderful) (?:week|weekend|evening|day|rest of your (?:day|week))\b",
    r"\b(?:our time is up|that's all the time we have|we're (?:out of|nearly out of) time)\b",
    r"\blooking forward to (?:seeing you|our next session|next week)\b",
    r"\b(?:goodbye|bye for now)\b",
)
"""Closings therapists really use; the first is the one the reference transcript records."""

DEFAULT_PATIENT_END_PHRASES: tuple[str, ...] = (
    r"\bsee you (?:next (?:week|time|session)|then|soon|at (?:our|the) next session)\b",
    r"\b(?:good)?bye\b(?: for now)?(?!\s+(?:to|from)\b)",
    r"\bthanks? (?:you )?again(?: for (?:today|everything|this|the session|your (?:help|time)))?(?:,? \w+)?\W*$",
    r"\btalk to you (?:next (?:week|time|session)|soon|then)\b",
    r"\buntil next (?:week|time|session)\b",
    r"\bhave a (?:good|great|lovely|nice|wonderful) (?:week|weekend|evening|day)\b",
    r"\btake care\b(?! of\b)",
)
"""Patient goodbyes. Thanks are not one by themselves ("Thanks again, that helps. It was a hard
week."): "thanks again" counts only as the message's last words ("..., Nova.", "... for today.")."""

_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "`": "'", "´": "'"})
_QUOTED = [
    re.compile(r"\"[^\"\n]*\""),
    re.compile(r"“[^“”\n]*”"),
    re.compile(r"‘[^‘\n]*?’(?!\w)"),
]
# 'Single quotes' open after a non-word and close before one; the apostrophe in "don't" does not.
_SINGLE_QUOTED = re.compile(r"(?<![\w'])'(?=\w)[^\n]*?(?<=[\w.!?,])'(?!\w)")
_CLOSING_SENTENCES = 3


def compile_phrases(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """Compile end-phrase regexes case-insensitively; a bad one is a ValueError naming it."""
    compiled: list[re.Pattern[str]] = []
    for p in patterns:
        try:
            pattern = re.compile(p, re.IGNORECASE)
        except (re.error, TypeError) as err:
            raise ValueError(f"invalid end phrase {p!r}: {err}") from None
        if pattern.search("") is not None:
            raise ValueError(f"invalid end phrase {p!r}: matches the empty string, so every message")
        compiled.append(pattern)
    return compiled


def _unquote(text: str) -> str:
    """Blank out quoted speech (a patient quoting the therapist's goodbye is not a goodbye), and
    make curly apostrophes straight so patterns need only spell "don't" one way."""
    for quoted in _QUOTED:
        text = quoted.sub('""', text)
    return _SINGLE_QUOTED.sub('""', text.translate(_APOSTROPHES))


def closing_part(text: str) -> str:
    """The part of a message that closes it: the last paragraph, at most its last 3 sentences,
    cut after its last question (a message that ends by asking something is not a goodbye)."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text.strip()) if p.strip()]
    if not paragraphs:
        return ""
    sentences = split_sentences(paragraphs[-1])[-_CLOSING_SENTENCES:]
    for index in range(len(sentences) - 1, -1, -1):
        if sentences[index].rstrip("\"')”’ ").endswith("?"):
            sentences = sentences[index + 1 :]
            break
    return " ".join(sentences)


def find_end_phrase(text: str, patterns: Sequence[re.Pattern[str]]) -> str | None:
    """The ``.pattern`` of the first end phrase found in the closing part of ``text``, if any."""
    closing = closing_part(_unquote(text))
    if not closing:
        return None
    for pattern in patterns:
        if pattern.search(closing):
            return pattern.pattern
    return None
