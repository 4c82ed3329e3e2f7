"""What a session produces, as data: messages, termination, summary, usage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from simulator.protocol import Usage

Speaker = Literal["Patient", "Therapist"]
Status = Literal["complete", "failed", "interrupted"]

NATURAL_END = "Natural Session End"
MAX_TURNS = "Max Turns Reached"
REPETITION = "Repetition Loop"
ERROR = "Error"
INTERRUPTED = "Interrupted"

NOT_REPAIRS = frozenset({"template"})
"""Message flags that say where a message came from, not what was repaired: not counted."""


class TokenCounts(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0
    cache_hits: int = 0

    def add(self, usage: Usage, *, cache_hit: bool = False) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_tokens += usage.cached_tokens
        self.requests += 1
        self.cache_hits += int(cache_hit)

    def cached_share(self) -> float:
        """Share of prompt tokens the provider served from its prompt cache."""
        return round(self.cached_tokens / self.prompt_tokens, 4) if self.prompt_tokens else 0.0

    def merge(self, other: TokenCounts) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Message(BaseModel):
    speaker: Speaker
    content: str
    index: int
    model: str | None = None
    finish_reason: str | None = None
    usage: TokenCounts = Field(default_factory=TokenCounts)
    latency_s: float = 0.0
    request_id: str | None = None
    flags: list[str] = Field(default_factory=list)


class FailedAttempt(BaseModel):
    """One attempt at a message that gave nothing usable, kept in a failed session's record
    (``attempts`` in its ``.partial.json``) to show why it failed."""

    speaker: Speaker
    purpose: str
    finish_reason: str | None
    text: str
    cut_empty: bool = False


class Termination(BaseModel):
    reason: str
    details: str
    message_index: int | None = None


class SessionRecord(BaseModel):
    """One session, as written to ``session_NN.json``. Mutated by the loop as it goes, so
    an interrupted session still has everything said so far."""

    session_number: int
    persona_id: str
    therapist_id: str
    previous_summary: str | None
    messages: list[Message] = Field(default_factory=list)
    termination: Termination | None = None
    summary: str | None = None
    summary_flags: list[str] = Field(default_factory=list)
    usage: dict[str, TokenCounts] = Field(default_factory=dict)
    backend: str
    models: dict[str, str | None] = Field(default_factory=dict)
    seed: int | None = None
    started_at: str
    ended_at: str | None = None
    status: Status = "interrupted"
    error: str | None = None
    attempts: list[FailedAttempt] = Field(default_factory=list)
    """The attempts behind a "no usable message" failure; left out of the file when empty."""

    def role_usage(self, role: str) -> TokenCounts:
        return self.usage.setdefault(role, TokenCounts())

    def flag_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for flag in [f for m in self.messages for f in m.flags] + self.summary_flags:
            if flag in NOT_REPAIRS:
                continue
            counts[flag] = counts.get(flag, 0) + 1
        return counts
