"""The offline backend: deterministic, persona-driven replies without a language model.

It is a peer of the OpenAI backend behind :class:`simulator.protocol.ChatBackend`. It is
built with the run's personas and seed; from a request's :class:`~simulator.protocol.Context`
(persona, session number, last summary, turn limits) and the conversation so far it writes
what a therapist of the persona's modality (CBT, MI, person-centred) and this patient would
plausibly say at this point of a session. Same seed, same text; another seed, other text. It closes a session by its own script with fixed closing
lines; whether a line ends the session is the termination detector's call, not this one's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Sequence

from simulator.backends.offline.patient import PatientScript
from simulator.backends.offline.script import Scene, words
from simulator.backends.offline.summary import summarize
from simulator.backends.offline.therapist import TherapistScript
from simulator.errors import BackendError
from simulator.personas import Patient, Therapist
from simulator.protocol import ChatMessage, ChatReply, ChatRequest, Context, Usage

__all__ = ["OFFLINE_MODEL", "OfflineBackend"]

OFFLINE_MODEL = "offline"


def _tokens(messages: Sequence[ChatMessage], reply: str) -> Usage:
    prompt = sum(words(m.content) for m in messages)
    return Usage(
        prompt_tokens=int(prompt * 1.3) + 4 * len(messages), completion_tokens=int(words(reply) * 1.3) + 1
    )


class OfflineBackend:
    """Chat backend that needs no network, no key and no model weights."""

    name = "offline"

    def __init__(self, patients: Iterable[Patient], therapist: Therapist, seed: int | None = None) -> None:
        self.patients = {p.key: p for p in patients}
        self.therapist = therapist
        self.seed = 0 if seed is None else seed

    def _scene(self, request: ChatRequest) -> Scene:
        context: Context | None = request.context
        if context is None:
            raise BackendError(f"{request.role}: the offline backend needs the request's context")
        patient = self.patients.get(context.persona_id)
        if patient is None:
            raise BackendError(
                f"{request.role}: the offline backend was not given persona {context.persona_id!r}"
            )
        return Scene(
            patient=patient,
            therapist=self.therapist,
            session_number=context.session_number,
            previous_summary=context.previous_summary,
            session_notes=patient.notes_for(context.session_number),
            seed=self.seed,
            min_turns=context.min_turns,
            max_turns=context.max_turns,
        )

    async def complete(self, request: ChatRequest) -> ChatReply:
        await asyncio.sleep(0)  # yield, so --concurrency interleaves personas as a real backend does
        scene = self._scene(request)
        rng = random.Random(
            f"{self.seed}:{scene.patient.key}:{scene.session_number}:{request.role}:"
            f"{request.purpose}:{len(request.messages)}:{request.messages[-1].content[-80:]}"
        )
        if request.role == "summarizer":
            text = summarize(request.messages, scene)
        elif request.purpose == "continuation":
            text = "and that's where I'd like to leave it for now."
        elif request.role == "therapist":
            text = TherapistScript(scene, request.messages, rng, request.purpose == "regeneration").reply()
        else:
            text = PatientScript(scene, request.messages, rng, request.purpose == "regeneration").reply()
        return ChatReply(
            content=text,
            model=OFFLINE_MODEL,
            finish_reason="stop",
            usage=_tokens(request.messages, text),
            latency_s=0.0,
            request_id=None,
        )

    async def aclose(self) -> None:
        return None
