"""How one agent's side of the conversation becomes the message list a request sends.

Strict chat templates (Mistral, Gemma) raise unless the messages after the system prompt
alternate user/assistant, starting with user; Gemma 2 refuses any system message. The
session loop describes what an agent sees as a :class:`Prompt` (system prompt, turns and
notes); :func:`render` lays it out for one of three layouts:

``alternating`` (default)   system prompt, then strict user/assistant alternation starting with
                            user; notes are merged into the adjacent user message
``alternating_no_system``   the same, with the system prompt folded into the first user message
``system_notes``            the layout of earlier versions: notes as separate ``notes_role``
                            messages, histories may start with the agent's own turn

Notes never reach transcripts or records: they exist only in the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from simulator.protocol import ChatMessage, Role

Layout = Literal["alternating", "alternating_no_system", "system_notes"]
STRICTNESS: tuple[Layout, ...] = ("system_notes", "alternating", "alternating_no_system")
"""Each layout is accepted by every template the one before it is (and more)."""
DEFAULT_START = "(The conversation begins.)"
"""Opens a history that starts with the agent's own turn when the caller gave no start text."""

PartKind = Literal["user", "assistant", "note"]

_REJECTED = re.compile(
    r"roles must alternate|system role (?:is )?not supported|"
    r"only user and assistant roles are supported|conversation must start with a user message",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Prompt:
    """What one agent sees, before any layout: its system prompt, the conversation from its
    side (its own messages as ``assistant``), and notes (instructions that are not speech)."""

    system: str
    parts: tuple[tuple[PartKind, str], ...] = ()
    start: str | None = None
    """The user message that opens a history beginning with the agent's own turn."""

    def plus(self, *parts: tuple[PartKind, str]) -> Prompt:
        return Prompt(self.system, (*self.parts, *parts), self.start)


def stricter(layout: Layout) -> Layout | None:
    """The next layout in :data:`STRICTNESS`, or None when ``layout`` is the strictest."""
    index = STRICTNESS.index(layout)
    return STRICTNESS[index + 1] if index + 1 < len(STRICTNESS) else None


def rejects_layout(server_text: str) -> bool:
    """Whether a server's error says the chat template refused the roles of the messages."""
    return bool(_REJECTED.search(server_text))


def merge_note(text: str, note: str) -> str:
    """A user message with a note appended, set apart so it does not read as speech."""
    return f"{text}\n\n[{note}]" if text else f"[{note}]"


def spoken(text: str) -> str:
    """A user message without the notes :func:`merge_note` appended to it."""
    while text.endswith("]") and "\n\n[" in text:
        text = text.rsplit("\n\n[", 1)[0]
    if text.startswith("[") and text.endswith("]"):
        return ""
    return text


def render(
    prompt: Prompt, layout: Layout, notes_role: Literal["system", "user"] = "system"
) -> list[ChatMessage]:
    """The messages to send for ``prompt`` in ``layout``."""
    if layout == "system_notes":
        return [
            ChatMessage("system", prompt.system),
            *(ChatMessage(notes_role if kind == "note" else kind, text) for kind, text in prompt.parts),
        ]
    turns = _alternate(prompt.parts, prompt.start or DEFAULT_START)
    if layout == "alternating_no_system":
        first = turns[0]
        return [ChatMessage("user", f"{prompt.system}\n\n{first.content}"), *turns[1:]]
    return [ChatMessage("system", prompt.system), *turns]


def _alternate(parts: Iterable[tuple[PartKind, str]], start: str) -> list[ChatMessage]:
    """User/assistant turns starting with user, notes merged into the adjacent user message,
    no two messages in a row with the same role."""
    turns: list[ChatMessage] = []
    for kind, text in parts:
        last = turns[-1] if turns else None
        if kind == "note":
            if last is not None and last.role == "user":
                turns[-1] = ChatMessage("user", merge_note(last.content, text))
            else:
                turns.append(ChatMessage("user", merge_note("", text)))
        elif last is not None and last.role == kind:
            turns[-1] = ChatMessage(kind, f"{last.content}\n\n{text}")
        else:
            turns.append(ChatMessage(kind, text))
    if not turns or turns[0].role != "user":
        turns.insert(0, ChatMessage("user", start))
    return turns


LayoutListener = Callable[[Role, Layout, Layout, str], None]
"""Told ``(role, old, new, server_text)`` when a role's layout is tightened."""


class Layouts:
    """The layout each role uses in a run. Shared by every session of the run, so a refusal
    tightens the layout once for all of them; listeners record the change (run.json, stderr)."""

    def __init__(self, initial: Mapping[Role, Layout], listeners: Iterable[LayoutListener] = ()) -> None:
        self.current: dict[Role, Layout] = dict(initial)
        self.listeners = list(listeners)

    def get(self, role: Role) -> Layout:
        return self.current[role]

    def tighten(self, role: Role, refused: Layout, server_text: str) -> bool:
        """After the server refused ``refused`` for ``role``: move one step stricter. False when
        nothing stricter is left. Another session may have tightened it meanwhile: then the
        current layout is simply tried."""
        if self.current[role] != refused:
            return True
        new = stricter(refused)
        if new is None:
            return False
        self.current[role] = new
        for listener in self.listeners:
            listener(role, refused, new, server_text)
        return True
