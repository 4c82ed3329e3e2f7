"""The chat-backend protocol: the one door every model call goes through.

The offline backend, the OpenAI-compatible backend, the response cache and the test fakes
are all plain implementations of :class:`ChatBackend`. The session loop only ever sees
:class:`ChatRequest` going in and :class:`ChatReply` coming out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from simulator.config import RoleSettings
    from simulator.personas import Patient, Therapist

Role = Literal["therapist", "patient", "summarizer"]
"""Which agent a request is for."""


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Scene:
    """What the session is about. Real backends ignore it; the offline backend builds
    its replies from it instead of from a language model."""

    patient: Patient
    therapist: Therapist
    session_number: int
    previous_summary: str | None
    session_notes: str | None
    seed: int
    therapist_end_phrases: tuple[str, ...] = ()
    min_turns: int = 1
    max_turns: int = 40


@dataclass(frozen=True)
class ChatRequest:
    role: Role
    messages: tuple[ChatMessage, ...]
    settings: RoleSettings
    scene: Scene | None = None
    purpose: str = "turn"
    """``turn``, ``continuation``, ``regeneration`` or ``summary``: lets fakes and logs tell them apart."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
        }


@dataclass(frozen=True)
class ChatReply:
    content: str
    model: str
    finish_reason: str | None = "stop"
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    """Seconds from the request written to the connection to the response read: the server."""
    queued_s: float = 0.0
    """Seconds the request waited before it went out: rate limits, the connection pool."""
    request_id: str | None = None
    cache_hit: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ChatBackend(Protocol):
    """Anything that turns a chat request into a reply."""

    name: str
    """Recorded in run.json and every session record (``offline``, ``openai``, ...)."""

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Return the model's reply, or raise :class:`simulator.errors.BackendError`."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the run ends."""
        ...
