"""One run folder as the export sees it: its sessions (through :func:`read_run`), and the
prompts rendered with the run's own snapshot of templates and personas.

The system prompt and the opening are rendered by the engine's own code (:class:`RunPlan`,
:class:`Templates`), in the sandbox, with the same variables the run used. Without
``--series-context`` they render with ``previous_summary`` set to None, so an example stands
alone; with it they render as the run did.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from simulator.config import GuardSettings, RunConfig
from simulator.errors import InputError
from simulator.export.chat import Leak
from simulator.export.options import Perspective
from simulator.personas import LoadedPersona, Patient, load_persona, load_therapist
from simulator.plan import RunPlan
from simulator.reader import Run
from simulator.records import SessionRecord
from simulator.templates import Templates

SYSTEM_TEMPLATE = "export_system.j2"
"""The name ``--system FILE`` is known by among the run's templates."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_NOTE_SENTENCE = 24
"""A note leaks when any of its sentences this long shows up, not only the whole note."""
ROLE_TEMPLATE: dict[Perspective, str] = {"therapist": "therapist.j2", "patient": "patient.j2"}


class RunSource:
    """Prompts for the sessions of one run, rendered on demand (personas loaded once each)."""

    def __init__(self, run: Run, system_file: Path | None) -> None:
        self.run = run
        self.templates = Templates(run.prompts_dir).load()
        if system_file is not None:
            if not system_file.is_file():
                raise InputError(system_file, "--system: no such template file")
            self.templates.paths[SYSTEM_TEMPLATE] = system_file
        self.plan = RunPlan(RunConfig(), [], load_therapist(run.therapist_file), self.templates, None)
        self._patients: dict[str, LoadedPersona] = {}
        self._openings_match: bool | None = None
        self._note_leaks = [
            Leak("engine note", sentence)
            for note in engine_notes(run.index.settings)
            for sentence in SENTENCE_END.split(note)
            if len(sentence) >= MIN_NOTE_SENTENCE
        ]

    def persona(self, persona_id: str) -> LoadedPersona:
        if persona_id not in self._patients:
            loaded = load_persona(self.run.persona_file(persona_id))
            if not isinstance(loaded.persona, Patient):
                raise InputError(self.run.persona_file(persona_id), "expected a patient persona")
            self._patients[persona_id] = loaded
        return self._patients[persona_id]

    def _context(self, record: SessionRecord, series_context: bool) -> dict[str, Any]:
        patient = self.persona(record.persona_id).persona
        assert isinstance(patient, Patient)
        previous = record.previous_summary if series_context else None
        return self.plan.context(patient, record.session_number, previous)

    def system(
        self, record: SessionRecord, perspective: Perspective, mode: str, series_context: bool
    ) -> str | None:
        """The example's system prompt: the role's template, the ``--system`` file, or none."""
        if mode == "none":
            return None
        name = ROLE_TEMPLATE[perspective] if mode == "rendered" else SYSTEM_TEMPLATE
        return self.templates.render(name, self._context(record, series_context))

    def opening(self, record: SessionRecord, series_context: bool) -> str:
        """The scripted opening, rendered without the previous summary unless asked for.

        Only a first message the template wrote (flag ``template``) is re-rendered, and only
        when the run's snapshot of ``opening.j2`` gives back the recorded text of the first
        such session (checked once per run); anything else is kept as recorded.
        """
        first = record.messages[0] if record.messages else None
        if first is None or "template" not in first.flags:
            return first.content if first is not None else ""
        if series_context or record.previous_summary is None:
            return first.content
        if self._openings_match is None:
            as_run = self.templates.render("opening.j2", self._context(record, True))
            self._openings_match = as_run.strip() == first.content.strip()
        if not self._openings_match:
            return first.content
        return self.templates.render("opening.j2", self._context(record, False))

    def leaks(self, record: SessionRecord) -> list[Leak]:
        """What must not appear in this session's example."""
        found = list(self._note_leaks)
        summary = (record.summary or "").strip()
        if summary and summary != (record.previous_summary or "").strip():
            found.append(Leak("the session's summary", summary))
        if record.termination is not None:
            found.append(Leak("termination details", record.termination.details.strip()))
        return found


def engine_notes(settings: dict[str, Any]) -> list[str]:
    """The notes the engine adds to a request but never to the conversation: the wrap-up note,
    the nudges and the continue note, as the run configured them (defaults otherwise)."""
    config, guards = RunConfig(), GuardSettings()
    configured = settings.get("guards") if isinstance(settings.get("guards"), dict) else {}
    assert isinstance(configured, dict)
    notes = [str(settings.get("wrap_up_note") or config.wrap_up_note)]
    for key in ("repetition_nudge", "continue_note", "role_nudge", "summary_retry_note"):
        notes.append(str(configured.get(key) or getattr(guards, key)))
    return [note.split("{missing}")[0].strip() for note in notes if note.strip()]
