"""Model-free metrics of a session: computed from the record alone, for every session, with or
without a judge."""

from __future__ import annotations

import re
from typing import Any

from simulator.records import NATURAL_END, SessionRecord

_WORD = re.compile(r"[\w']+")
SESSION_METRICS = (
    "messages",
    "therapist_question_share",
    "therapist_words_per_turn",
    "patient_words_per_turn",
    "talk_ratio",
    "distinct_1",
    "distinct_2",
    "guard_flags",
)
"""The numeric per-session metrics that get a mean and an interval over the run."""
METRIC_NAMES = {
    "natural_end_share": "sessions ended naturally",
    "messages": "messages per session",
    "therapist_question_share": "therapist messages with a question",
    "therapist_words_per_turn": "therapist words per turn",
    "patient_words_per_turn": "patient words per turn",
    "talk_ratio": "therapist/patient words",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "guard_flags": "guard repairs per session",
}
"""How the terminal table and the run page name each metric of ``summary.metrics``."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct(tokens: list[list[str]], n: int) -> float | None:
    """Distinct-n: unique n-grams over all n-grams, n-grams taken within each message."""
    grams = [tuple(message[i : i + n]) for message in tokens for i in range(len(message) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def _per_turn(counts: list[int]) -> float | None:
    return sum(counts) / len(counts) if counts else None


def session_metrics(record: SessionRecord) -> dict[str, Any]:
    """One session's numbers; a share or ratio with nothing to divide by is None."""
    tokens = [words(m.content) for m in record.messages]
    by_speaker: dict[str, list[int]] = {"Therapist": [], "Patient": []}
    for message, toks in zip(record.messages, tokens, strict=True):
        by_speaker[message.speaker].append(len(toks))
    therapist = [m for m in record.messages if m.speaker == "Therapist"]
    questions = sum(1 for m in therapist if "?" in m.content)
    patient_words = sum(by_speaker["Patient"])
    flags = record.flag_counts()
    reason = record.termination.reason if record.termination is not None else None
    return {
        "persona_id": record.persona_id,
        "session_number": record.session_number,
        "messages": len(record.messages),
        "natural_end": reason == NATURAL_END,
        "end_reason": reason,
        "therapist_question_share": questions / len(therapist) if therapist else None,
        "therapist_words_per_turn": _per_turn(by_speaker["Therapist"]),
        "patient_words_per_turn": _per_turn(by_speaker["Patient"]),
        "talk_ratio": sum(by_speaker["Therapist"]) / patient_words if patient_words else None,
        "distinct_1": distinct(tokens, 1),
        "distinct_2": distinct(tokens, 2),
        "guard_flags": sum(flags.values()),
        "guard_flag_counts": flags,
    }
