"""The turn loop: patient opens, therapist and patient alternate, guards check every
message, the termination detector decides when it ends, the summarizer closes it.

Knows nothing about files or HTTP: it talks to one :class:`ChatBackend` and fills in a
:class:`SessionRecord` as it goes, so a caller that cancels it still holds the partial session.
Each agent's side of the conversation is a :class:`~simulator.message_layout.Prompt`, laid out
per request in the role's current message layout (tightened when a server's chat template
refuses it): notes and nudges exist only in requests, never in the record.

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
from simulator.config import ROLES, RunConfig
from simulator.endings import Ending, compile_phrases, detect_end
from simulator.errors import BackendError, ContextOverflow, TemplateRejected
from simulator.message_layout import Layouts, Prompt, render
from simulator.personas import Patient, Therapist
from simulator.protocol import ChatBackend, ChatReply, ChatRequest, Context, Role
from simulator.records import (
    ERROR,
    MAX_TURNS,
    NATURAL_END,
    REPETITION,
    FailedAttempt,
    Message,
    SessionRecord,
    Speaker,
    Status,
    Termination,
    TokenCounts,
)
from simulator.summarize import write_summary
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
    patient_start: str = "(The therapist greets you.)"
    """The user message before the patient's opening in its own history (alternating layouts)."""


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
    """Every attempt at a message was empty or out of role; ``tried`` keeps what each said."""

    def __init__(self, message: str, tried: list[FailedAttempt]) -> None:
        self.tried = tried
        super().__init__(message, attempts=len(tried))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_layouts(config: RunConfig) -> Layouts:
    """Each role's starting message layout, from the config."""
    return Layouts({role: config.layout(role) for role in ROLES})


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
        layouts: Layouts,
    ) -> None:
        self.layouts = layouts
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
            if isinstance(exc, NoUsableReply):
                record.attempts = exc.tried
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
            ending = self._ending()
            if ending is not None:
                record.termination = Termination(
                    reason=NATURAL_END, details=ending.details, message_index=ending.index
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

    def _ending(self) -> Ending | None:
        """Whether the message just appended closes the session (see :func:`detect_end`).
        Runs on the cleaned text, so meta commentary after a goodbye cannot hide it."""
        return detect_end(
            [(m.speaker, m.content) for m in self.record.messages],
            self.phrases,
            min_turns=self.config.min_turns,
            wrap_up_from=self.config.max_turns - self.config.wrap_up_turns,
            after_wrap_up=self.config.end_phrases.after_wrap_up,
        )

    def _view(self, speaker: Speaker) -> Prompt:
        """The conversation from one agent's side: its system prompt, its turns as assistant,
        and for the therapist near ``max_turns`` a trailing wrap-up note."""
        patient = speaker == "Patient"
        prompt = Prompt(
            self.prompts.patient if patient else self.prompts.therapist,
            tuple(("assistant" if m.speaker == speaker else "user", m.content) for m in self.record.messages),
            start=self.prompts.patient_start if patient else None,
        )
        remaining = self.config.max_turns - len(self.record.messages)
        if speaker == "Therapist" and remaining <= self.config.wrap_up_turns:
            prompt = prompt.plus(("note", self.config.wrap_up_note))
        return prompt

    async def _call(self, role: Role, prompt: Prompt, purpose: str) -> ChatReply:
        """One request in the role's current layout; a layout the server's chat template
        refuses is tightened (for the whole run) and the request sent again."""
        context = Context(
            persona_id=self.scene.patient.key,
            session_number=self.scene.session_number,
            turn=len(self.record.messages),
            min_turns=self.config.min_turns,
            max_turns=self.config.max_turns,
            previous_summary=self.scene.previous_summary,
        )
        while True:
            layout = self.layouts.get(role)
            request = ChatRequest(
                role=role,
                messages=tuple(render(prompt, layout, self.config.notes_role)),
                settings=self.config.role(role),
                context=context,
                purpose=purpose,
            )
            try:
                reply = await self.backend.complete(request)
            except TemplateRejected as exc:
                if not self.layouts.tighten(role, layout, str(exc)):
                    raise
                continue
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
        tried: list[FailedAttempt] = []
        for attempt in range(attempts):
            prompt = view.plus(("note", nudge)) if nudge else view
            purpose = "turn" if attempt == 0 else "regeneration"
            candidate = await self._candidate(speaker, prompt, purpose)
            usage.merge(candidate.usage)
            repeat = None
            if not candidate.text:
                regenerations.append("regenerated_empty")
                reply = candidate.reply
                tried.append(
                    FailedAttempt(
                        speaker=speaker,
                        purpose=purpose,
                        finish_reason=reply.finish_reason,
                        text=reply.content,
                        cut_empty=candidate.cut_empty,
                    )
                )
                nudge = self.role_nudge
                continue
            hit = None if goodbye else self._repeat_of(candidate.text, earlier)
            if hit is not None:
                repeated, score = hit
                repeat = RepetitionLoop(
                    speaker, len(self.record.messages), repeated.index, score, candidate.text
                )
                regenerations.append("regenerated_repetition")
                nudge = f'{self.guards.repetition_nudge} (You already said: "{snippet(repeated.content)}")'
                continue
            return self._message(speaker, candidate, usage, [*regenerations, *candidate.flags])
        if repeat is not None:
            raise repeat
        raise NoUsableReply(self._no_usable_reason(ROLE_OF[speaker], tried), tried)

    def _no_usable_reason(self, role: Role, tried: list[FailedAttempt]) -> str:
        """Why no attempt gave a message: the token limit when every attempt hit it."""
        if not all(t.finish_reason == "length" for t in tried):
            return f"{role}: no usable message after {len(tried)} attempts (empty or out of role)"
        limit = self.config.role(role).max_tokens
        if limit is None:
            return (
                f"{role} replies were cut at the server's limit on every attempt (max_tokens is null); "
                f"set roles.{role}.max_tokens or give the server a larger context"
            )
        thinking = (
            " (nothing was written before the limit: a reasoning model can spend it all on thinking)"
            if all(t.cut_empty for t in tried)
            else ""
        )
        return (
            f"{role} replies were cut at max_tokens={limit} on every attempt; "
            f"raise roles.{role}.max_tokens{thinking}"
        )

    def _repeat_of(self, text: str, earlier: list[Message]) -> tuple[Message, float] | None:
        """The speaker's earlier message ``text`` repeats, with the score: a repeat of substance,
        or the end of a run of the same short message (:func:`guards.find_short_loop`)."""
        texts = [m.content for m in earlier]
        hit = guards.find_repeat(text, texts, self.guards.repetition_threshold)
        if hit is not None:
            return earlier[hit], guards.similarity(text, texts[hit])
        start = guards.find_short_loop(text, texts)
        return (earlier[start], 1.0) if start is not None else None

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
            queued_s=round(reply.queued_s, 4),
            request_id=reply.request_id,
            flags=flags,
        )

    async def _complete_reply(
        self, role: Role, prompt: Prompt, purpose: str, usage: TokenCounts
    ) -> tuple[ChatReply, int]:
        """A reply, continued (at most ``max_continuations`` times) while cut at the token limit.

        The continuation request is the same conversation plus the cut reply as the assistant's
        turn and a note asking to go on from where it stopped. Returns the joined reply (its
        ``finish_reason`` is the last request's) and how many continuations it took.

        A continuation resends the cut reply, so it is only asked for when the role's own
        ``max_tokens`` cut it (with no limit, the context itself is full) and never after the
        server said a continuation no longer fits: then the reply is left as cut.
        """
        reply = await self._call(role, prompt, purpose)
        usage.add(reply.usage, cache_hit=reply.cache_hit)
        text = reply.content.lstrip()
        continuations = 0
        limit = self.config.role(role).max_tokens
        while (
            reply.finish_reason == "length"
            and limit is not None
            and text.strip()
            and continuations < self.guards.max_continuations
        ):
            follow = prompt.plus(("assistant", text.rstrip()), ("note", self.guards.continue_note))
            try:
                more = await self._call(role, follow, "continuation")
            except ContextOverflow:
                break
            continuations += 1
            usage.add(more.usage, cache_hit=more.cache_hit)
            text = extend_reply(text, more.content)
            reply = replace(
                more,
                usage=reply.usage + more.usage,
                latency_s=reply.latency_s + more.latency_s,
                queued_s=reply.queued_s + more.queued_s,
                cache_hit=reply.cache_hit and more.cache_hit,
            )
        return replace(reply, content=text), continuations

    async def _candidate(self, speaker: Speaker, prompt: Prompt, purpose: str) -> _Candidate:
        """A reply made whole (continued or trimmed) and kept in role; text may come back empty."""
        usage = TokenCounts()
        reply, continuations = await self._complete_reply(ROLE_OF[speaker], prompt, purpose, usage)
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
        """The summary that opens the next session (see :mod:`simulator.summarize`)."""
        record = self.record
        base = Prompt(self.prompts.summarizer, (("user", transcript_text(record.messages)),))
        record.summary, record.summary_flags = await write_summary(
            self._complete_reply, base, self.guards.summary_retries, self.summary_retry_note
        )


async def run_session(
    scene: Scene,
    prompts: SessionPrompts,
    config: RunConfig,
    backend: ChatBackend,
    record: SessionRecord | None = None,
    layouts: Layouts | None = None,
) -> SessionRecord:
    """Run one session. Pass ``record`` to keep hold of the partial session if cancelled, and
    ``layouts`` to share the message layouts (and their tightening) across a run's sessions."""
    record = record if record is not None else new_record(scene, config, backend)
    layouts = layouts if layouts is not None else run_layouts(config)
    return await SessionRunner(scene, prompts, config, backend, record, layouts).run()
