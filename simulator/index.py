"""run.json as a typed model: the index of a run folder, read and written only through it.

The session files are the truth; run.json is the index kept beside them (which sessions a run
has, their status, usage and settings). Every module that needs a run's state reads it through
:class:`RunIndex`, so a run.json of the wrong shape is one clear error, not a KeyError deep in
a command.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.limits import MAX_SESSION
from simulator.personas import id_problem
from simulator.records import TokenCounts

FORMAT = 1
SessionStatus = Literal["pending", "running", "complete", "failed", "interrupted"]
SESSION_STATUSES: tuple[SessionStatus, ...] = ("pending", "running", "complete", "failed", "interrupted")
"""Every session in run.json has one; pending, failed and interrupted ones are what resume runs."""
RunStatus = Literal["running", "complete", "failed", "interrupted"]


class _Index(BaseModel):
    """Known fields typed; fields a later version adds are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class SessionEntry(_Index):
    """One session's line in the index."""

    status: SessionStatus = "pending"
    file: str | None = None
    termination: str | None = None
    details: str | None = None
    messages: int | None = None
    flags: int | None = None
    attempts: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None


class InputFile(_Index):
    source: str
    digest: str


class TherapistInput(InputFile):
    id: str


class Inputs(_Index):
    therapist: TherapistInput
    personas: dict[str, InputFile]
    templates: dict[str, str] = Field(default_factory=dict)
    template_sources: dict[str, str] = Field(default_factory=dict)


class RunIndex(_Index):
    """The content of ``run.json``."""

    format: int = FORMAT
    run_id: str
    command: str = "run"
    status: RunStatus = "running"
    backend: str
    offline: bool = False
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    settings: dict[str, Any]
    versions: dict[str, str] = Field(default_factory=dict)
    inputs: Inputs
    branched_from: dict[str, Any] | None = None
    sessions: dict[str, dict[int, SessionEntry]] = Field(default_factory=dict)
    usage: dict[str, TokenCounts] = Field(default_factory=dict)
    totals: dict[str, Any] = Field(default_factory=dict)
    resumes: list[str] = Field(default_factory=list)
    flags: dict[str, int] = Field(default_factory=dict)
    cost_usd: float | None = None
    layout_changes: list[dict[str, str]] = Field(default_factory=list)
    """Message layouts a server's chat template refused, and what each role moved to."""

    @field_validator("sessions")
    @classmethod
    def _positive_numbers(
        cls, sessions: dict[str, dict[int, SessionEntry]]
    ) -> dict[str, dict[int, SessionEntry]]:
        for persona_id, entries in sessions.items():
            for number in entries:
                if not 1 <= number <= MAX_SESSION:
                    raise ValueError(
                        f"{persona_id}: session number {number} is out of range 1..{MAX_SESSION}"
                    )
        return sessions

    def id_problem(self) -> str | None:
        """The first persona id in the index that is not a valid id (a tampered ``../../x``
        must never become a path): commands that write refuse the run, readers mark it."""
        for where, ids in (("sessions", self.sessions), ("inputs.personas", self.inputs.personas)):
            for persona_id in ids:
                problem = id_problem(persona_id)
                if problem is not None:
                    return f"{where}: {problem}"
        return None

    def entries(self) -> list[tuple[str, int, SessionEntry]]:
        """Every session of the run: persona id, number, entry; personas in run order."""
        return [
            (persona_id, number, entry)
            for persona_id, sessions in self.sessions.items()
            for number, entry in sorted(sessions.items())
        ]

    def entry(self, persona_id: str, number: int) -> SessionEntry:
        """The index line of a session, added as pending when the run did not have it yet."""
        return self.sessions.setdefault(persona_id, {}).setdefault(number, SessionEntry(status="pending"))

    def dump(self) -> dict[str, Any]:
        """JSON-ready, session numbers as strings (JSON keys): what run.json holds. Only the
        keys that were read or set are written (a pending session is ``{"status": "pending"}``,
        no ``cost_usd`` without prices), so the file keeps the shape it always had."""
        full = self.model_dump(mode="json")
        kept = self.model_fields_set | set(self.model_extra or {})
        data = {key: value for key, value in full.items() if key in kept}
        if "sessions" in data:
            data["sessions"] = {
                persona_id: {
                    str(number): entry.model_dump(mode="json", exclude_unset=True)
                    for number, entry in entries.items()
                }
                for persona_id, entries in self.sessions.items()
            }
        return data

    @classmethod
    def parse(cls, data: Any) -> RunIndex:
        """Raise ``ValueError`` naming the first wrong field when ``data`` is not a run index."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "run.json"
            raise ValueError(f"{where}: {first['msg']}") from None
