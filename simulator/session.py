"""The turn loop: patient opens, therapist and patient alternate, guards check every
message, the termination detector decides when it ends, the summarizer closes it.

Knows nothing about files or HTTP: it talks to one :class:`ChatBackend` and fills in a
:class:`SessionRecord` as it goes, so a caller that cancels it still holds the partial session.

Every repair a guard makes is a short flag on the message (or in ``summary_flags``):

=========================  =====================================================================
``truncated_continued``    cut at the token limit, then finished by a continuation request
``truncated_trimmed``      still cut after continuing (or cut by the role guard): trimmed back to
                           its last complete sentence
``regenerated_repetition`` an attempt nearly repeated the speaker's earlier message; asked again
``regenerated_empty``      an attempt was empty, or nothing was left once out-of-role text was cut
``role_label_stripped``, ``other_speaker_cut``, ``meta_commentary_removed``,
``stage_direction_removed``  role repairs (see :func:`simulator.guards.check_role`)
``summary_*``              summary repairs (see :func:`simulator.summary.clean_summary`), plus
                           ``summary_regenerated`` and ``summary_incomplete``
=========================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from simulator import guards
from simulator.config import RunConfig
from simulator.endings import compile_phrases, find_end_phrase
from simulator.errors import BackendError
from simulator.personas import Patient, Therapist
from simulator.protocol import ChatBackend, ChatMessage, ChatReply, ChatRequest, Context, Role
from simulator.records import (
    ERROR,
    MAX_TURNS,
    NATURAL_END,
    REPETITION,
    Message,
    SessionRecord,
    Speaker,
    Status,
    Termination,
    TokenCounts,
)
from simulator.summary import SummaryCheck, clean_summary
from simulator.text import ends_mid_sentence, normalize, trim_to_last_sentence
from simulator.transcript import transcript_text

ROLE_OF: dict[Speaker, Role] = {"Patient": "patient", "Therapist": "therapist"}
OTHER: dict[Speaker, Speaker] = {"Patient": "Therapist", "Therapist": "Patient"}

SNIPPET_WORDS = 12
"""Words of a repeated message quoted in the nudge and the termination details."""
RESTART_WORDS = 6
"""A continuation opening with the cut reply's first this-many words restarted it."""
CUT_BY_ROLE_GUARD = frozenset({"other_speaker_cut", "meta_commentary_removed"})


@dataclass(frozen=True)
class Scene:
    """Who meets in a session and what opened it (the loop reads names and ids from it)."""

    patient: Patient
    therapist: Therapist
    session_number: int
    previous_summary: str | None


@dataclass(frozen=True)
class SessionPrompts:
    """The rendered templates for one session."""

    therapist: str
    patient: str
    opening: str
    summarizer: str


@dataclass
class _Candidate:
    """One attempt at a message, after the truncation and role guards."""

    text: str
    reply: ChatReply
    flags: list[str] = field(default_factory=list)
    usage: TokenCounts = field(default_factory=TokenCounts)
    cut_empty: bool = False
    """Nothing was written before the token limit (a reasoning model can spend it all)."""


class RepetitionLoop(Exception):
    """A speaker kept repeating its earlier message after every regeneration."""

    def __init__(self, speaker: Speaker, index: int, earlier: int, score: float, text: str) -> None:
        self.speaker = speaker
        self.index = index
        self.earlier = earlier
        self.score = score
        self.text = text
        super().__init__(f"{speaker} message {index} repeated message {earlier}")


class NoUsableReply(BackendError):
    """Every attempt at a message was empty or out of role."""


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


def stop_record(record: SessionRecord, status: Status, reason: str, details: str) -> SessionRecord:
    """End a session that did not finish by itself (a backend error, a stopped run): status,
    termination at its last message, end time. Failed sessions keep the error too."""
    record.status = status
    if status == "failed":
        record.error = details
    record.termination = Termination(
        reason=reason, details=details, message_index=len(record.messages) - 1 if record.messages else None
    )
    record.ended_at = now()
    return record


def snippet(text: str, words: int = SNIPPET_WORDS) -> str:
    """The first few words of a message, on one line, for details and nudges."""
    parts = text.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def extend_reply(text: str, continuation: str) -> str:
    """A cut reply plus the model's continuation of it. A model asked to continue sometimes
    starts the whole reply again instead: then the continuation replaces the cut reply."""
    head = normalize(continuation).split()[:RESTART_WORDS]
    if len(head) == RESTART_WORDS and normalize(text).split()[:RESTART_WORDS] == head:
        return continuation.strip()
    return guards.join_continuation(text, continuation)


def _trimmed(text: str, flags: list[str]) -> str:
    """``text`` cut back to its last complete sentence ("" when none is), flagged if it changed."""
    trimmed = trim_to_last_sentence(text) or ""
    if trimmed != text:
        flags.append("truncated_trimmed")
    return trimmed


def repetition_details(loop: RepetitionLoop, regenerations: int) -> str:
    """The ``Repetition Loop`` termination details: which message repeated which."""
    tries = f"{regenerations} regeneration{'s' if regenerations != 1 else ''}"
    return (
        f"{loop.speaker} message {loop.index} repeated {loop.speaker} message {loop.earlier} "
        f'(similarity {loop.score:.2f}) after {tries}, so it was not kept: "{snippet(loop.text)}"'
    )


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
        self.role_nudge = self.guards.role_nudge
        self.summary_retry_note = self.guards.summary_retry_note

    async def run(self) -> SessionRecord:
        record = self.record
        try:
            await self._conversation()
            await self._summarize()
            record.status = "complete"
        except BackendError as exc:
            return stop_record(record, "failed", ERROR, str(exc))
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
                    details=repetition_details(loop, self.guards.max_regenerations),
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
                    await self._goodbye()
                return
            speaker = OTHER[speaker]
        record.termination = Termination(
            reason=MAX_TURNS, details=f"Reached {max_turns} messages", message_index=max_turns - 1
        )

    async def _goodbye(self) -> None:
        """The patient's last word after the therapist closes; skipped when none is usable."""
        try:
            goodbye = await self._turn("Patient", goodbye=True)
        except NoUsableReply:
            return
        self.record.messages.append(goodbye)

    def _end_phrase(self, message: Message) -> str | None:
        """The end phrase that closes the session at ``message`` (already appended), if any.
        Runs on the cleaned text, so meta commentary after a goodbye cannot hide it."""
        if len(self.record.messages) < self.config.min_turns:
            return None
        return find_end_phrase(message.content, self.phrases[message.speaker])

    def _note(self, text: str) -> ChatMessage:
        """An instruction added after the conversation (wrap-up, nudge, continue): a system
        message, or a user one for chat templates that allow system only first."""
        return ChatMessage(self.config.notes_role, text)

    def _view(self, speaker: Speaker) -> list[ChatMessage]:
        """The conversation from one agent's side: its system prompt, its turns as assistant,
        and for the therapist near ``max_turns`` a trailing wrap-up note."""
        system = self.prompts.therapist if speaker == "Therapist" else self.prompts.patient
        view = [ChatMessage("system", system)]
        for m in self.record.messages:
            view.append(ChatMessage("assistant" if m.speaker == speaker else "user", m.content))
        remaining = self.config.max_turns - len(self.record.messages)
        if speaker == "Therapist" and remaining <= self.config.wrap_up_turns:
            view.append(self._note(self.config.wrap_up_note))
        return view

    async def _call(self, role: Role, messages: list[ChatMessage], purpose: str) -> ChatReply:
        request = ChatRequest(
            role=role,
            messages=tuple(messages),
            settings=self.config.role(role),
            context=Context(
                persona_id=self.scene.patient.key,
                session_number=self.scene.session_number,
                turn=len(self.record.messages),
                min_turns=self.config.min_turns,
                max_turns=self.config.max_turns,
                previous_summary=self.scene.previous_summary,
            ),
            purpose=purpose,
        )
        reply = await self.backend.complete(request)
        self.record.role_usage(role).add(reply.usage, cache_hit=reply.cache_hit)
        return reply

    async def _turn(self, speaker: Speaker, *, goodbye: bool = False) -> Message:
        """One message, through every guard; regenerated (with a nudge) when a guard says so.

        Raises :class:`RepetitionLoop` when the last attempt still repeats an earlier message,
        and :class:`NoUsableReply` when no attempt left anything in role.
        """
        view = self._view(speaker)
        earlier = [m for m in self.record.messages if m.speaker == speaker]
        usage = TokenCounts()
        regenerations: list[str] = []
        nudge: str | None = None
        attempts = self.guards.max_regenerations + 1
        repeat: RepetitionLoop | None = None
        cut_empty = 0
        for attempt in range(attempts):
            messages = [*view, self._note(nudge)] if nudge else view
            purpose = "turn" if attempt == 0 else "regeneration"
            candidate = await self._candidate(speaker, messages, purpose)
            usage.merge(candidate.usage)
            repeat = None
            if not candidate.text:
                regenerations.append("regenerated_empty")
                cut_empty += int(candidate.cut_empty)
                nudge = self.role_nudge
                continue
            hit = (
                None
                if goodbye
                else guards.find_repeat(
                    candidate.text, [m.content for m in earlier], self.guards.repetition_threshold
                )
            )
            if hit is not None:
                repeated = earlier[hit]
                score = guards.similarity(candidate.text, repeated.content)
                repeat = RepetitionLoop(
                    speaker, len(self.record.messages), repeated.index, score, candidate.text
                )
                regenerations.append("regenerated_repetition")
                nudge = f'{self.guards.repetition_nudge} (You already said: "{snippet(repeated.content)}")'
                continue
            return self._message(speaker, candidate, usage, [*regenerations, *candidate.flags])
        if repeat is not None:
            raise repeat
        role = ROLE_OF[speaker]
        reason = "empty or out of role"
        if cut_empty == attempts:
            reason = (
                f"the token limit was reached before any text: raise `roles.{role}.max_tokens` in the config"
            )
        raise NoUsableReply(f"{role}: no usable message after {attempts} attempts ({reason})")

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
            flags=flags,
        )

    async def _complete_reply(
        self, role: Role, messages: list[ChatMessage], purpose: str, usage: TokenCounts
    ) -> tuple[ChatReply, int]:
        """A reply, continued (at most ``max_continuations`` times) while cut at the token limit.

        The continuation request is the same conversation plus the cut reply as the assistant's
        turn and a system note asking to go on from where it stopped. Returns the joined reply
        (its ``finish_reason`` is the last request's) and how many continuations it took.
        """
        reply = await self._call(role, messages, purpose)
        usage.add(reply.usage, cache_hit=reply.cache_hit)
        text = reply.content.lstrip()
        continuations = 0
        while (
            reply.finish_reason == "length" and text.strip() and continuations < self.guards.max_continuations
        ):
            continuations += 1
            follow = [
                *messages,
                ChatMessage("assistant", text.rstrip()),
                self._note(self.guards.continue_note),
            ]
            more = await self._call(role, follow, "continuation")
            usage.add(more.usage, cache_hit=more.cache_hit)
            text = extend_reply(text, more.content)
            reply = replace(
                more,
                usage=reply.usage + more.usage,
                latency_s=reply.latency_s + more.latency_s,
                cache_hit=reply.cache_hit and more.cache_hit,
            )
        return replace(reply, content=text), continuations

    async def _candidate(self, speaker: Speaker, messages: list[ChatMessage], purpose: str) -> _Candidate:
        """A reply made whole (continued or trimmed) and kept in role; text may come back empty."""
        usage = TokenCounts()
        reply, continuations = await self._complete_reply(ROLE_OF[speaker], messages, purpose, usage)
        text = reply.content.strip()
        flags = ["truncated_continued"] if continuations else []
        cut = reply.finish_reason in ("length", "content_filter")
        cut_empty = reply.finish_reason == "length" and not text
        if text and (cut or (continuations and ends_mid_sentence(text))):
            text = _trimmed(text, flags)
        checked = guards.check_role(text, speaker, self._names(speaker))
        flags.extend(f for f in checked.flags if f != "empty")
        text = "" if checked.needs_regeneration else checked.text.strip()
        if text and CUT_BY_ROLE_GUARD & set(checked.flags) and ends_mid_sentence(text):
            text = _trimmed(text, flags)
        return _Candidate(
            text=text, reply=reply, flags=list(dict.fromkeys(flags)), usage=usage, cut_empty=cut_empty
        )

    def _names(self, speaker: Speaker) -> tuple[str, ...]:
        patient, therapist = self.scene.patient.name, self.scene.therapist.name
        return (
            (therapist, patient, patient.split()[0])
            if speaker == "Therapist"
            else (patient, patient.split()[0], therapist)
        )

    async def _summarize(self) -> None:
        """Ask for the five-section summary, clean it, ask once more (``summary_retries``)
        when sections are missing, and keep the most complete answer."""
        record = self.record
        base = [
            ChatMessage("system", self.prompts.summarizer),
            ChatMessage("user", transcript_text(record.messages)),
        ]
        messages = base
        best: tuple[SummaryCheck, list[str]] | None = None
        regenerations: list[str] = []
        for attempt in range(self.guards.summary_retries + 1):
            if attempt:
                regenerations.append("summary_regenerated")
            usage = TokenCounts()
            purpose = "summary" if attempt == 0 else "regeneration"
            reply, continuations = await self._complete_reply("summarizer", messages, purpose, usage)
            text = reply.content
            flags = ["summary_truncated_continued"] if continuations else []
            if reply.finish_reason == "length" and "\n" in text.strip():
                text = text.strip().rsplit("\n", 1)[0]  # drop the line being written when cut
                flags.append("summary_truncated_trimmed")
            checked = clean_summary(text)
            flags.extend(checked.flags)
            if best is None or len(checked.missing) < len(best[0].missing):
                best = (checked, flags)
            if checked.ok:
                break
            missing = ", ".join(checked.missing)
            messages = [
                *base,
                ChatMessage("assistant", reply.content.strip() or "(no summary)"),
                ChatMessage("user", self.summary_retry_note.replace("{missing}", missing)),
            ]
        assert best is not None
        checked, flags = best
        record.summary = checked.text
        record.summary_flags = [*regenerations, *dict.fromkeys(flags)]
        if not checked.ok:
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
