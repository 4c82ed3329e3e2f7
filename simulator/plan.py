"""Everything a run needs, loaded and checked before anything is written.

Bad input (personas, therapist, templates, the previous-summary file) is found here, all of
it at once, so that a run with bad input exits 2 without leaving a folder behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.backends import Cast
from simulator.config import RunConfig
from simulator.errors import InputError, InputErrors
from simulator.personas import LoadedPersona, Patient, Therapist, load_persona, load_therapist
from simulator.session import Scene, SessionPrompts
from simulator.templates import Templates

log = logging.getLogger(__name__)

SAMPLE_SUMMARY = "Main topics discussed:\n- a sample topic"


def default_therapist_path() -> Path:
    return Path(str(resources.files("simulator") / "data" / "personas" / "nova.yaml"))


@dataclass
class RunPlan:
    config: RunConfig
    patients: list[LoadedPersona]
    therapist: LoadedPersona
    templates: Templates
    first_summary: str | None

    def patient(self, persona_id: str) -> Patient:
        for loaded in self.patients:
            if loaded.persona.key == persona_id:
                assert isinstance(loaded.persona, Patient)
                return loaded.persona
        raise KeyError(persona_id)

    @property
    def therapist_persona(self) -> Therapist:
        assert isinstance(self.therapist.persona, Therapist)
        return self.therapist.persona

    def context(self, patient: Patient, number: int, previous: str | None) -> dict[str, Any]:
        return {
            "patient": patient,
            "therapist": self.therapist_persona,
            "session_number": number,
            "previous_summary": previous,
            "session_notes": patient.notes_for(number),
            "modality": patient.modality,
        }

    def prompts(self, patient: Patient, number: int, previous: str | None) -> SessionPrompts:
        context = self.context(patient, number, previous)
        render = self.templates.render
        return SessionPrompts(
            therapist=render("therapist.j2", context),
            patient=render("patient.j2", context),
            opening=render("opening.j2", context),
            summarizer=render("summarizer.j2", context),
            patient_start=render("patient_start.j2", context),
        )

    def cast(self) -> Cast:
        patients = tuple(p.persona for p in self.patients if isinstance(p.persona, Patient))
        return Cast(patients, self.therapist_persona)

    def scene(self, patient: Patient, number: int, previous: str | None) -> Scene:
        return Scene(
            patient=patient,
            therapist=self.therapist_persona,
            session_number=number,
            previous_summary=previous,
        )


def check_templates(templates: Templates, patients: list[LoadedPersona], therapist: LoadedPersona) -> None:
    """Render every template for every persona, as a first session and as a later one with
    scripted notes, so an undefined variable in a rarely taken branch fails before the run."""
    templates.load()
    problems: dict[str, InputError] = {}
    for loaded in patients:
        patient = loaded.persona
        assert isinstance(patient, Patient)
        plan = RunPlan(RunConfig(), [loaded], therapist, templates, None)
        noted = min(patient.sessions, default=2)
        for number, previous in ((1, None), (max(noted, 2), SAMPLE_SUMMARY)):
            try:
                plan.prompts(patient, number, previous)
            except InputError as exc:
                problems.setdefault(str(exc), exc)
    InputErrors.raise_if_any(list(problems.values()))


def load_plan(config: RunConfig, persona_paths: list[Path]) -> RunPlan:
    problems: list[InputError] = []
    patients: list[LoadedPersona] = []
    seen: dict[str, Path] = {}
    for path in persona_paths:
        try:
            loaded = load_persona(path)
        except InputError as exc:
            problems.append(exc)
            continue
        if isinstance(loaded.persona, Therapist):
            if len(persona_paths) == 1:
                problems.append(InputError(path, "this is a therapist persona; `run` takes patient personas"))
            else:
                log.warning("skipping %s: a therapist persona (use --therapist)", path)
            continue
        key = loaded.persona.key
        if key in seen:
            problems.append(InputError(path, f"persona id {key!r} is also used by {seen[key]}"))
            continue
        seen[key] = path
        patients.append(loaded)
    therapist: LoadedPersona | None = None
    try:
        therapist = load_therapist(config.therapist or default_therapist_path())
    except InputError as exc:
        problems.append(exc)
    templates: Templates | None = None
    try:
        templates = Templates(config.prompts)
    except InputError as exc:
        problems.append(exc)
    first_summary = None
    if config.previous_summary is not None:
        try:
            first_summary = config.previous_summary.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(InputError(config.previous_summary, f"cannot read the previous summary: {exc}"))
        else:
            if not first_summary:
                problems.append(InputError(config.previous_summary, "the previous summary is empty"))
    InputErrors.raise_if_any(problems)
    assert therapist is not None and templates is not None
    check_templates(templates, patients, therapist)
    return RunPlan(config, patients, therapist, templates, first_summary)
