"""The turn loop: patient opens, therapist and patient alternate, guards check every
message, the termination detector decides when it ends, the summarizer closes it.

Knows nothing about files or HTTP: it talks to one :class:`ChatBackend` and fills in a
:class:`SessionRecord` as it goes, so a caller that cancels it still holds the partial session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from simulator import guards
from simulator.backend import ChatBackend, ChatMessage, ChatReply, ChatRequest, Role, Scene
from simulator.config import RunConfig
from simulator.endings import compile_phrases, find_end_phrase
from simulator.errors import BackendError
from simulator.records import (
    ERROR,
    MAX_TURNS,
    NATURAL_END,
    REPETITION,
    Message,
    SessionRecord,
    Speaker,
    Termination,
    TokenCounts,
)

ROLE_OF: dict[Speaker, Role] = {"Patient": "patient", "Therapist": "therapist"}
OTHER: dict[Speaker, Speaker] = {"Patient": "Therapist", "Therapist": "Patient"}


@dataclass(frozen=True)
class SessionPrompts:
    """The rendered templates for one session."""

    therapist: str
    patient: str
    opening: str
    summarizer: str


@dataclass(frozen=True)
class _Candidate:
    text: str
    reply: ChatReply
    flags: tuple[str, ...]
    usage: TokenCounts


class RepetitionLoop(Exception):
    def __init__(self, index: int, earlier: int) -> None:
        self.index = index
        self.earlier = earlier


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_record(scene: Scene, config: RunConfig, backend: ChatBackend) -> SessionRecord:
    return SessionRecord(
        session_number=scene.session_number,
        persona_id=scene.patient.key,
        therapist_id=scene.therapist.key,
        previous_summary=scene.previous_summary,
        backend=backend.name,
        models={role: config.role(role).model for role in ("therapist", "patient", "summarizer")},
        seed=config.seed,
        started_at=now(),
    )


def transcript_text(messages: list[Message]) -> str:
    """The conversation as the summarizer reads it (the transcript's message lines)."""
    return "\n\n".join(f"{m.speaker}: {m.content}" for m in messages)


class SessionRunner:
    """Runs one session into ``record``; see :func:`run_session`."""

    def __init__(
        self,
        scene: Scene,
        prompts: SessionPrompts,
        config: RunConfig,
        backend: ChatBackend,
        record: SessionRecord,
    ) -> None:
        self.scene = scene
        self.prompts = prompts
        self.config = config
        self.backend = backend
        self.record = record
        self.guards = config.guards
        self.phrases = {
            "Therapist": compile_phrases(config.end_phrases.therapist),
            "Patient": compile_phrases(config.end_phrases.patient),
        }

    async def run(self) -> SessionRecord:
        record = self.record
        try:
            await self._conversation()
            await self._summarize()
            record.status = "complete"
        except BackendError as exc:
            record.status = "failed"
            record.error = str(exc)
            record.termination = Termination(
                reason=ERROR, details=str(exc), message_index=len(record.messages) - 1
            )
        record.ended_at = now()
        return record

    async def _conversation(self) -> None:
        record = self.record
        record.messages.append(
            Message(speaker="Patient", content=self.prompts.opening, index=0, flags=["template"])
        )
        speaker: Speaker = "Therapist"
        max_turns = self.config.max_turns
        while len(record.messages) < max_turns:
            try:
                message = await self._turn(speaker)
            except RepetitionLoop as loop:
                record.termination = Termination(
                    reason=REPETITION,
                    details=(
                        f"{speaker} message {loop.index} repeated message {loop.earlier} "
                        f"after {self.guards.max_regenerations} regenerations"
                    ),
                    message_index=loop.earlier,
                )
                return
            record.messages.append(message)
            matched = self._end_phrase(message)
            if matched is not None:
                record.termination = Termination(
                    reason=NATURAL_END,
                    details=f"Detected end phrase: '{matched}'",
                    message_index=message.index,
                )
                if (
                    speaker == "Therapist"
                    and self.config.patient_goodbye
                    and len(record.messages) < max_turns
                ):
                    try:
                        goodbye = await self._turn("Patient", goodbye=True)
                    except RepetitionLoop:
                        return
                    record.messages.append(goodbye)
                return
            speaker = OTHER[speaker]
        record.termination = Termination(
            reason=MAX_TURNS, details=f"Reached {max_turns} messages", message_index=max_turns - 1
        )

    def _end_phrase(self, message: Message) -> str | None:
        if len(self.record.messages) < self.config.min_turns:
            return None
        return find_end_phrase(message.content, self.phrases[message.speaker])

    def _view(self, speaker: Speaker) -> list[ChatMessage]:
        """The conversation from one agent's side: its system prompt, its turns as assistant."""
        system = self.prompts.therapist if speaker == "Therapist" else self.prompts.patient
        view = [ChatMessage("system", system)]
        for m in self.record.messages:
            view.append(ChatMessage("assistant" if m.speaker == speaker else "user", m.content))
        remaining = self.config.max_turns - len(self.record.messages)
        if speaker == "Therapist" and remaining <= self.config.wrap_up_turns:
            view.append(ChatMessage("system", self.config.wrap_up_note))
        return view

    async def _call(self, speaker: Speaker, messages: list[ChatMessage], purpose: str) -> ChatReply:
        role = ROLE_OF[speaker]
        request = ChatRequest(
            role=role,
            messages=tuple(messages),
            settings=self.config.role(role),
            scene=self.scene,
            purpose=purpose,
        )
        reply = await self.backend.complete(request)
        self.record.role_usage(role).add(reply.usage, cache_hit=reply.cache_hit)
        return reply

    async def _turn(self, speaker: Speaker, *, goodbye: bool = False) -> Message:
        """One message, through every guard; regenerated (with a nudge) when a guard says so."""
        view = self._view(speaker)
        earlier = [m for m in self.record.messages if m.speaker == speaker and "template" not in m.flags]
        usage = TokenCounts()
        flags: list[str] = []
        nudge: str | None = None
        attempts = self.guards.max_regenerations + 1
        repeat_of: int | None = None
        for attempt in range(attempts):
            messages = view + ([ChatMessage("system", nudge)] if nudge else [])
            candidate = await self._candidate(speaker, messages, "turn" if attempt == 0 else "regeneration")
            usage.merge(candidate.usage)
            flags.extend(candidate.flags)
            if candidate.text is None or not candidate.text:
                flags.append("regenerated_empty")
                nudge = None
                continue
            hit = (
                guards.find_repeat(
                    candidate.text, [m.content for m in earlier], self.guards.repetition_threshold
                )
                if not goodbye
                else None
            )
            if hit is not None:
                repeat_of = earlier[hit].index
                flags.append(f"regenerated_repetition_of_{repeat_of}")
                nudge = self.guards.repetition_nudge
                continue
            return self._message(speaker, candidate, usage, flags)
        if repeat_of is not None:
            raise RepetitionLoop(len(self.record.messages), repeat_of)
        raise BackendError(f"{ROLE_OF[speaker]}: no usable message after {attempts} attempts (empty replies)")

    def _message(
        self, speaker: Speaker, candidate: _Candidate, usage: TokenCounts, flags: list[str]
    ) -> Message:
        reply = candidate.reply
        return Message(
            speaker=speaker,
            content=candidate.text,
            index=len(self.record.messages),
            model=reply.model,
            finish_reason=reply.finish_reason,
            usage=usage,
            latency_s=round(reply.latency_s, 4),
            request_id=reply.request_id,
            flags=list(dict.fromkeys(flags)),
        )

    async def _candidate(self, speaker: Speaker, messages: list[ChatMessage], purpose: str) -> _Candidate:
        """A reply made whole (continued or trimmed) and kept in role; text may come back empty."""
        reply = await self._call(speaker, messages, purpose)
        usage = TokenCounts()
        usage.add(reply.usage, cache_hit=reply.cache_hit)
        flags: list[str] = []
        text = reply.content.strip()
        continuations = 0
        while reply.finish_reason == "length" and continuations < self.guards.max_continuations:
            continuations += 1
            follow = messages + [
                ChatMessage("assistant", text),
                ChatMessage("system", self.guards.continue_note),
            ]
            more = await self._call(speaker, follow, "continuation")
            usage.add(more.usage, cache_hit=more.cache_hit)
            text = guards.join_continuation(text, more.content)
            reply = ChatReply(
                content=text,
                model=more.model,
                finish_reason=more.finish_reason,
                usage=reply.usage + more.usage,
                latency_s=reply.latency_s + more.latency_s,
                request_id=more.request_id,
            )
            flags.append("truncated_continued")
        if reply.finish_reason == "length" or (flags and guards.ends_mid_sentence(text)):
            trimmed = guards.trim_to_last_sentence(text)
            flags.append("truncated_trimmed")
            text = trimmed or ""
        checked = guards.check_role(text, speaker, self._names(speaker))
        flags.extend(checked.flags)
        text = "" if checked.needs_regeneration else checked.text.strip()
        return _Candidate(text=text, reply=reply, flags=tuple(flags), usage=usage)

    def _names(self, speaker: Speaker) -> tuple[str, ...]:
        patient, therapist = self.scene.patient.name, self.scene.therapist.name
        return (
            (therapist, patient, patient.split()[0])
            if speaker == "Therapist"
            else (patient, patient.split()[0], therapist)
        )

    async def _summarize(self) -> None:
        record = self.record
        messages = [
            ChatMessage("system", self.prompts.summarizer),
            ChatMessage("user", transcript_text(record.messages)),
        ]
        for attempt in range(self.guards.summary_retries + 1):
            request = ChatRequest(
                role="summarizer",
                messages=tuple(messages),
                settings=self.config.role("summarizer"),
                scene=self.scene,
                purpose="summary",
            )
            reply = await self.backend.complete(request)
            record.role_usage("summarizer").add(reply.usage, cache_hit=reply.cache_hit)
            checked = guards.clean_summary(reply.content)
            record.summary_flags.extend(f for f in checked.flags if f not in record.summary_flags)
            record.summary = checked.text
            if checked.ok:
                return
            missing = ", ".join(checked.missing)
            record.summary_flags.append(f"summary_missing_sections_attempt_{attempt + 1}")
            messages = messages[:2] + [
                ChatMessage("assistant", reply.content),
                ChatMessage(
                    "user",
                    "Rewrite the summary with exactly the five sections, in order, as 'Heading:' "
                    f"lines followed by '- ' bullets. Missing or out of order: {missing or 'order'}.",
                ),
            ]
        record.summary_flags.append("summary_incomplete")


async def run_session(
    scene: Scene,
    prompts: SessionPrompts,
    config: RunConfig,
    backend: ChatBackend,
    record: SessionRecord | None = None,
) -> SessionRecord:
    """Run one session. Pass ``record`` to keep hold of the partial session if cancelled."""
    record = record if record is not None else new_record(scene, config, backend)
    return await SessionRunner(scene, prompts, config, backend, record).run()
