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

Role = Literal["therapist", "patient", "summarizer", "judge"]
"""Which agent a request is for (``judge``: ``simulator evaluate``'s rubric judge)."""


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Context:
    """Where in a run a request comes from: for caches, logs and the offline backend's script.

    Nothing here says which phrases end a session: the termination detector decides that, and
    a backend never needs to know how.
    """

    persona_id: str
    session_number: int
    turn: int
    """Index the message being written will have (0 is the patient's opening)."""
    min_turns: int = 1
    max_turns: int = 40
    previous_summary: str | None = None
    """The summary that opened this session (the rendered prompts carry it too)."""


@dataclass(frozen=True)
class ChatRequest:
    role: Role
    messages: tuple[ChatMessage, ...]
    settings: RoleSettings
    context: Context | None = None
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
