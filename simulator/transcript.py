"""The session transcript (``session_NN.txt``) in the reference format."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.records import Message, SessionRecord


def transcript_text(messages: Sequence[Message]) -> str:
    """The message lines: the body of ``session_NN.txt`` and what the summarizer reads."""
    return "\n\n".join(f"{m.speaker}: {m.content}" for m in messages)


def format_transcript(record: SessionRecord) -> str:
    parts = [f"Session Number: {record.session_number}\n\n"]
    if record.messages:
        parts.append(transcript_text(record.messages) + "\n\n")
    if record.termination is not None:
        parts.append(
            "Termination Details:\n"
            f"Reason: {record.termination.reason}\n"
            f"Details: {record.termination.details}\n"
        )
    if record.summary is not None:
        parts.append(f"\n\nSession Summary:\n\n{record.summary}\n")
    return "".join(parts)
