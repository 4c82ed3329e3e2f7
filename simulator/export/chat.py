"""A session as a training example: the conversation from one side, and the rules it must obey.

``--as therapist`` makes the therapist the assistant; ``--as patient`` makes the patient the
assistant, with the scripted opening folded into the first user turn as context (it came from
a template, so it is never a training target). Every example starts with a user turn (after an
optional system prompt), alternates, and ends on an assistant turn: trailing turns of the other
side are dropped.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from simulator.export.options import Perspective
from simulator.records import Message

ChatRole = Literal["system", "user", "assistant"]

OPENING_LABEL = "[You opened the session with]"
REPLY_LABEL = "[The therapist replied]"
"""How the patient's scripted opening is folded into the first user turn of ``--as patient``."""
TRANSCRIPT_HEADINGS = re.compile(r"^(?:Termination Details|Session Summary|Session Number):", re.MULTILINE)
MIN_LEAK_CHARS = 12
"""Shorter texts (a one-word summary, say) would match by chance, not by leaking."""


@dataclass(frozen=True)
class Turn:
    role: ChatRole
    content: str


def conversation(
    messages: Sequence[Message], opening: str, perspective: Perspective, system: str | None
) -> list[Turn]:
    """The session as chat turns from ``perspective``'s side; ``opening`` replaces the text of
    the first message (the scripted opening, rendered as the export asks)."""
    mine = "Therapist" if perspective == "therapist" else "Patient"
    texts = [(m.speaker, m.content.strip()) for m in messages]
    if texts:
        texts[0] = (texts[0][0], opening.strip())
    if perspective == "patient" and len(texts) >= 2 and texts[0][0] == "Patient":
        folded = f"{OPENING_LABEL}\n{texts[0][1]}\n\n{REPLY_LABEL}\n{texts[1][1]}"
        texts = [(texts[1][0], folded), *texts[2:]]
    turns = [Turn("assistant" if speaker == mine else "user", text) for speaker, text in texts]
    while turns and turns[-1].role != "assistant":
        turns.pop()
    return ([Turn("system", system)] if system is not None else []) + turns


@dataclass(frozen=True)
class Leak:
    """Text that must never appear in an example (the session's summary, its termination
    details, the engine's notes), with what it is, for the exclusion reason."""

    what: str
    text: str


def problem(turns: Sequence[Turn], leaks: Sequence[Leak]) -> str | None:
    """Why ``turns`` is not a valid example, or None: the rules every supported trainer needs."""
    body = list(turns[1:] if turns and turns[0].role == "system" else turns)
    if not body or not any(t.role == "assistant" for t in body):
        return "no assistant turn"
    if any(t.role == "system" for t in body):
        return "a system message after the first"
    if body[0].role != "user":
        return "does not start with a user turn"
    if any(a.role == b.role for a, b in itertools.pairwise(body)):
        return "roles do not alternate"
    if body[-1].role != "assistant":
        return "does not end on an assistant turn"
    if any(not t.content.strip() for t in turns):
        return "empty message"
    text = "\n\n".join(t.content for t in turns)
    if TRANSCRIPT_HEADINGS.search(text):
        return "transcript heading in a message"
    for leak in leaks:
        if len(leak.text) >= MIN_LEAK_CHARS and leak.text in text:
            return f"{leak.what} in a message"
    return None
