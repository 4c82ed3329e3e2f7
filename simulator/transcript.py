"""The session transcript (``session_NN.txt``) in the reference format."""

from __future__ import annotations

from simulator.records import SessionRecord


def format_transcript(record: SessionRecord) -> str:
    parts = [f"Session Number: {record.session_number}\n\n"]
    parts.extend(f"{m.speaker}: {m.content}\n\n" for m in record.messages)
    if record.termination is not None:
        parts.append(
            "Termination Details:\n"
            f"Reason: {record.termination.reason}\n"
            f"Details: {record.termination.details}\n"
        )
    if record.summary is not None:
        parts.append(f"\n\nSession Summary:\n\n{record.summary}\n")
    return "".join(parts)
