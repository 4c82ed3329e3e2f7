"""One exported session: its chat turns (for the chat formats) and the metadata every format
and the card draw on. Only this is held in memory, not the session records."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.export.chat import Turn


@dataclass(frozen=True)
class Example:
    run_id: str
    persona_id: str
    therapist_id: str
    session_number: int
    turns: list[Turn]
    previous_summary: str | None
    summary: str | None
    termination_reason: str | None
    termination_details: str | None
    flags: list[str]
    models: dict[str, str | None]
    seed: int | None
    backend: str
    record_json: str | None = None
    """The session record as the engine wrote it (``--format records`` only)."""
    chars: int = 0

    @property
    def key(self) -> str:
        return f"{self.run_id}/{self.persona_id}/{self.session_number}"
