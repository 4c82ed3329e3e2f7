"""What the offline therapist, patient and summarizer share: the session they speak in and
small text helpers for building sentences from persona fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from simulator.message_layout import spoken
from simulator.personas import Patient, Therapist
from simulator.protocol import ChatMessage

SENTENCE = re.compile(r"(?<=[.!?])\s+")
TECHNIQUES = (
    ("thought record", "a thought record"),
    ("evidence", "examining the evidence for and against a thought"),
    ("balanced thought", "building a balanced alternative thought"),
    ("behavioural experiment", "a behavioural experiment"),
    ("behavioral experiment", "a behavioural experiment"),
    ("good friend", "the double-standard technique (what would you tell a friend?)"),
    ("activity schedul", "activity scheduling"),
    ("breathing", "paced breathing"),
    ("self-compassion", "self-compassion practice"),
    ("downward arrow", "the downward arrow"),
    ("good things about", "exploring both sides of a change"),
    ("do you like about", "exploring both sides of a change"),
    ("matters most", "exploring values"),
    ("how important", "the importance ruler"),
    ("how confident", "the confidence ruler"),
    ("what does that mean", "reflecting feeling and meaning"),
    ("what is that like", "reflecting feeling and meaning"),
)


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]


def lower_first(text: str, names: frozenset[str] = frozenset()) -> str:
    """``text`` to go mid-sentence: its first letter in lower case, unless the first word is
    "I", an acronym or one of ``names``."""
    first = re.match(r"[\w']+", text)
    word = first.group() if first else ""
    if word in names or word == "I" or word.startswith("I'") or (len(word) > 1 and word.isupper()):
        return text
    return text[:1].lower() + text[1:]


def strip_end(text: str) -> str:
    return text.strip().rstrip(".!?;:,")


def as_list(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [s for s in sentences(value) if s]
    return list(value)


def own_turns(messages: Sequence[ChatMessage]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


def last_user(messages: Sequence[ChatMessage]) -> str:
    """What the other speaker last said, without the notes a layout merged into it."""
    return next((spoken(m.content) for m in reversed(messages) if m.role == "user"), "")


@dataclass(frozen=True)
class Scene:
    """What the offline script needs of a session: built from the request's context and the
    personas the backend was given."""

    patient: Patient
    therapist: Therapist
    session_number: int
    previous_summary: str | None
    session_notes: str | None
    seed: int
    min_turns: int
    max_turns: int
