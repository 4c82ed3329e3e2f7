"""Where a session ends naturally: end phrases, and the two-message rule.

A session ends when a speaker closes it ("see you next week", "Bye-bye.", "same time next
week?"). Those words also occur mid-session ("take care of that report", "bye-bye to the old
habit"), so a phrase only counts in the closing part of a message, outside quotation marks, and
not when the message then hands the floor back with a question (a short question that itself
closes, "See you Thursday?", still counts). Run it on text the role guard has already cleaned:
meta commentary after a goodbye would otherwise hide the goodbye.

The most common real ending has no end phrase in it: the therapist wraps up (agrees homework,
says time is up, sums up, or got the engine's wrap-up note) and the patient answers with a short
thanks or goodbye. :func:`detect_end` ends the session there too, naming both messages.

Measured with ``benchmarks/real_dialogue.py`` on human dialogue: 8 of 10 clear closings found
(80%; 4 of 5 in transcribed motivational interviewing, AnnoMI, and 4 of 5 in peer-support
chats), none before a conversation's last 4 messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simulator import saferegex
from simulator.text import split_sentences

__all__ = [
    "DEFAULT_PATIENT_END_PHRASES",
    "DEFAULT_THERAPIST_END_PHRASES",
    "SHORT_REPLY_WORDS",
    "WRAP_UP_CUES",
    "Ending",
    "closing_part",
    "compile_phrases",
    "detect_end",
    "find_end_phrase",
    "is_short_farewell",
    "wrap_up_cue",
]

_DAYS = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_WHEN = (
    rf"(?:next (?:week|time|session|month|appointment)|(?:on |this )?{_DAYS}|tomorrow"
    r"|in (?:a|one|two|three|four|a couple of|a few) (?:weeks?|days?|months?)"
    r"|(?:at|in) (?:our|the) next (?:session|appointment|meeting|visit))"
)

DEFAULT_THERAPIST_END_PHRASES: tuple[str, ...] = (
    r"\bdon't hesitate to reach out\b",
    rf"\bsee you (?:again )?{_WHEN}\b",
    r"\buntil next (?:week|time|session)\b",
    r"\btake care\b(?! of\b)",
    r"\bhave a (?:good|great|lovely|nice|wonderful) (?:week|weekend|evening|day|rest of your (?:day|week))\b"
    r"(?!\s+(?:at|in|on|with|for|because|but|if|when|so)\b)",
    r"\b(?:our time is up|that's all the time we have|we're (?:out of|nearly out of) time)\b",
    r"\blooking forward to (?:seeing you|our next session|next week)\b",
    r"(?<![-\w])(?:good)?bye(?:[- ]bye)?(?![-\w])(?!\s+(?:to|from)\b)(?: for now)?",
    r"\bthanks? (?:you )?(?:so much |very much )?for (?:coming in|coming|being here|your time|today)"
    r"(?: today| this (?:morning|afternoon|evening))?(?:,? \w+)?\W*$",
    r"\b(?:same time|same day|the same time) next (?:week|month)\b",
    r"\b(?:I )?wish you (?:all )?the (?:very )?best\b|\b(?:best of|good) luck\b(?! with\b)",
)
"""Closings therapists really use; the first is the one the reference transcript records.
Thanks count as the message's last words only ("Thanks for coming in today."): as an opening
line they are followed by the session."""

DEFAULT_PATIENT_END_PHRASES: tuple[str, ...] = (
    rf"\bsee you (?:{_WHEN}|then|soon|later)\b",
    r"(?<![-\w])(?:good)?bye(?:[- ]bye)?(?![-\w])(?!\s+(?:to|from)\b)(?: for now)?",
    r"\bthanks? (?:you )?again(?: for (?:today|everything|this|the session|your (?:help|time)))?(?:,? \w+)?\W*$",
    r"\btalk to you (?:next (?:week|time|session)|soon|then)\b",
    r"\buntil next (?:week|time|session)\b",
    r"\bhave a (?:good|great|lovely|nice|wonderful) (?:week|weekend|evening|day)\b"
    r"(?!\s+(?:at|in|on|with|for|because|but|if|when|so)\b)",
    r"\btake care\b(?! of\b)",
)
"""Patient goodbyes. Thanks are not one by themselves ("Thanks again, that helps. It was a hard
week."): "thanks again" counts only as the message's last words ("..., Nova.", "... for today.");
a short thanks right after the therapist's wrap-up is the two-message rule's."""

WRAP_UP_CUES: tuple[str, ...] = (
    # homework agreed
    r"\b(?:for|your) homework\b",
    r"\bhomework (?:for|this|between)\b",
    r"\b(?:between now and|before) (?:our |the )?next (?:session|time|week|appointment)\b",
    r"\b(?:this|over the next) week,? (?:I'd like you to|try|could you|would you|see if)\b",
    # time is up
    r"\b(?:our time is (?:up|nearly up|almost up)|that's (?:all )?(?:the )?time we have|we're "
    r"(?:out of|almost out of|nearly out of|running out of|at) time|we have to (?:stop|end|finish))\b",
    # stopping here
    r"\blet's (?:stop|end|leave it|pause|finish|wrap up|close)(?: (?:here|there|it there))?\b",
    r"\b(?:we'll|we will|we can|we should) (?:stop|end|leave it|wrap up|finish) (?:here|there|for today)\b",
    r"\b(?:before we|as we|time to) (?:wrap up|finish|close|end)\b",
    r"\bwrap(?:ping)? (?:things )?up\b",
    # summing up
    r"\b(?:to sum up|to summari[sz]e|in summary|let me summari[sz]e|summing up|to recap|let's recap)\b",
    r"\b(?:we|you) (?:covered|talked about|discussed|did) (?:a lot|so much|some good work)\b",
    r"\btoday we (?:talked|discussed|covered|worked|looked)\b",
    # the next appointment
    r"\b(?:same time next|next (?:session|appointment|visit|week)|see you (?:next|then|on|in))\b",
)
"""A therapist message with one of these has started the close: a short thanks or goodbye from
the patient after it ends the session (:func:`detect_end`)."""

SHORT_REPLY_WORDS = 6
"""A patient reply this short that thanks or says goodbye closes a wrapped-up session."""

_FAREWELL = re.compile(
    r"\b(?:thanks?|thank you|thankyou|cheers|appreciate (?:it|that|you)|(?:good)?bye(?:[- ]bye)?"
    r"|see you|see ya|take care|you too|same to you|have a good (?:one|week|day|weekend))\b",
    re.IGNORECASE,
)
_NOT_FAREWELL = re.compile(r"\b(?:but|no thanks|thanks to|thank you for (?:sharing|asking|listening to))\b")
_WRAP_UP_RES = [re.compile(p, re.IGNORECASE) for p in WRAP_UP_CUES]
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "`": "'", "´": "'"})
_QUOTED = [
    re.compile(r"\"[^\"\n]*\""),
    re.compile(r"“[^“”\n]*”"),
    re.compile(r"‘[^‘\n]*?’(?!\w)"),
]
# 'Single quotes' open after a non-word and close before one; the apostrophe in "don't" does not.
_SINGLE_QUOTED = re.compile(r"(?<![\w'])'(?=\w)[^\n]*?(?<=[\w.!?,])'(?!\w)")
_CLOSING_SENTENCES = 3
_CLOSING_QUESTION_WORDS = 8


@dataclass(frozen=True)
class Ending:
    """Where and why a session ended naturally."""

    index: int
    """The message that closed the session."""
    details: str
    phrase: str | None = None
    """The end phrase (regex) that matched, or None for the two-message rule."""
    cue_index: int | None = None
    """For the two-message rule: the therapist's wrap-up message."""


END_PHRASE_DETAILS = "Detected end phrase: '{}'"
"""Termination details of a session an end phrase ended; :func:`end_phrase_span` reads them back."""
_END_PHRASE_DETAILS = re.compile(r"^Detected end phrase: '(.*)'$", re.DOTALL)


def end_phrase_span(details: str, text: str) -> tuple[int, int] | None:
    """Where in ``text`` (the message that ended a session) the end phrase named by its
    termination ``details`` matched: the last match, under the same checks and time limit as
    the detector. None for other details (the two-message rule), or a pattern a damaged record
    carries that does not pass the checks."""
    found = _END_PHRASE_DETAILS.match(details)
    if found is None:
        return None
    try:
        pattern = saferegex.compile_safe(found[1])
        # curly apostrophes made straight, as the detector reads them (one character for one)
        matches = list(pattern.finditer(text.translate(_APOSTROPHES), timeout=saferegex.MATCH_TIMEOUT_S))
    except (saferegex.UnsafePattern, TimeoutError):
        return None
    return (matches[-1].start(), matches[-1].end()) if matches else None


def compile_phrases(patterns: Sequence[str]) -> list[saferegex.Pattern]:
    """End-phrase regexes compiled case-insensitively for :func:`find_end_phrase`. The one place
    they are checked: config validation calls it too. A pattern that does not compile, matches
    the empty string, or can backtrack catastrophically is a ValueError naming it."""
    return [saferegex.compile_safe(p) for p in patterns]


def _unquote(text: str) -> str:
    """Blank out quoted speech (a patient quoting the therapist's goodbye is not a goodbye), and
    make curly apostrophes straight so patterns need only spell "don't" one way."""
    for quoted in _QUOTED:
        text = quoted.sub('""', text)
    return _SINGLE_QUOTED.sub('""', text.translate(_APOSTROPHES))


def _is_question(sentence: str) -> bool:
    return sentence.rstrip("\"')”’ ").endswith("?")


def closing_part(text: str) -> str:
    """The part of a message that closes it: the last paragraph, at most its last 3 sentences,
    cut after its last question (a message that ends by asking something is not a goodbye,
    unless that question is short: "Same time next week?")."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text.strip()) if p.strip()]
    if not paragraphs:
        return ""
    sentences = split_sentences(paragraphs[-1])[-_CLOSING_SENTENCES:]
    for index in range(len(sentences) - 1, -1, -1):
        if _is_question(sentences[index]):
            last = index == len(sentences) - 1
            short = len(sentences[index].split()) <= _CLOSING_QUESTION_WORDS
            sentences = sentences[index:] if last and short else sentences[index + 1 :]
            break
    return " ".join(sentences)


def find_end_phrase(text: str, patterns: Sequence[saferegex.Pattern]) -> str | None:
    """The ``.pattern`` of the first end phrase found in the closing part of ``text``, if any.
    Each match runs under a time limit (:func:`simulator.saferegex.search`)."""
    closing = closing_part(_unquote(text))
    if not closing:
        return None
    for pattern in patterns:
        if saferegex.search(pattern, closing) is not None:
            return str(pattern.pattern)
    return None


def wrap_up_cue(text: str) -> str | None:
    """The words of ``text`` that start the close of a session (homework, time, summary), if any."""
    plain = _unquote(text)
    for cue in _WRAP_UP_RES:
        if match := cue.search(plain):
            return match.group(0)
    return None


def is_short_farewell(text: str) -> bool:
    """A reply of at most :data:`SHORT_REPLY_WORDS` words that thanks or says goodbye, and does
    not ask or object ("Thank you.", "Okay, bye!", "Thanks, see you then.")."""
    plain = _unquote(text).strip()
    if not plain or len(plain.split()) > SHORT_REPLY_WORDS or _is_question(plain):
        return False
    return _FAREWELL.search(plain) is not None and _NOT_FAREWELL.search(plain.lower()) is None


def _quote(text: str, words: int = 12) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def detect_end(
    messages: Sequence[tuple[str, str]],
    phrases: Mapping[str, Sequence[saferegex.Pattern]],
    *,
    min_turns: int,
    wrap_up_from: int | None = None,
    after_wrap_up: bool = True,
) -> Ending | None:
    """Whether the last of ``messages`` ((speaker, text) pairs, the opening included) ends the
    session: an end phrase of its speaker, or a short patient thanks or goodbye right after a
    therapist message with a wrap-up cue (or sent at index ``wrap_up_from`` or later, when the
    engine's wrap-up note went with it; ``after_wrap_up`` false turns this rule off). Nothing
    ends before ``min_turns`` messages."""
    if len(messages) < min_turns or not messages:
        return None
    index = len(messages) - 1
    speaker, text = messages[index]
    matched = find_end_phrase(text, phrases.get(speaker, ()))
    if matched is not None:
        return Ending(index, END_PHRASE_DETAILS.format(matched), phrase=matched)
    if not after_wrap_up or speaker != "Patient" or index == 0 or messages[index - 1][0] != "Therapist":
        return None
    if not is_short_farewell(text):
        return None
    before = messages[index - 1][1]
    cue = wrap_up_cue(before)
    if cue is None and wrap_up_from is not None and index - 1 >= wrap_up_from:
        cue = "the wrap-up note"
    if cue is None:
        return None
    details = (
        f"Detected closing: Therapist message {index - 1} wrapped up ('{cue}') and Patient message "
        f'{index} closed it: "{_quote(text)}"'
    )
    return Ending(index, details, cue_index=index - 1)
