"""What each judgment looks at: one rubric applied to one session of a run, with the material
its template gets and the text its evidence must come from.

Scopes (``applies_to``): ``therapist`` and ``patient`` read the session's transcript;
``summary`` reads the summary's bullets against the transcript; ``series`` reads session k
against the summaries of the sessions before it (so it needs session k-1's summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from simulator.evaluate.evidence import Haystack
from simulator.evaluate.rubrics import Item, Rubric
from simulator.personas import Patient, Therapist
from simulator.records import SessionRecord
from simulator.summary import parse_sections
from simulator.transcript import transcript_text


@dataclass(frozen=True)
class SeriesSession:
    """One complete session of a persona's series, with the personas it was run with."""

    patient: Patient
    therapist: Therapist
    record: SessionRecord
    earlier: tuple[SessionRecord, ...]
    """The persona's complete sessions before this one in the run, in order."""

    @property
    def persona_id(self) -> str:
        return self.record.persona_id

    @cached_property
    def transcript(self) -> str:
        """The messages as ``Speaker: text`` lines, made once and shared by every rubric."""
        return transcript_text(self.record.messages)

    @property
    def number(self) -> int:
        return self.record.session_number


@dataclass(frozen=True)
class Case:
    """One rubric on one session: the work unit of an evaluation (judged ``repeats`` times)."""

    rubric: Rubric
    session: SeriesSession
    items: tuple[Item, ...]
    """The asked items that apply to this session."""
    context: dict[str, Any]
    bullets: int
    haystack_text: str

    @property
    def scored(self) -> tuple[Item, ...]:
        """Every item the case has a number for: the asked ones, then the ratios of counts."""
        return self.items + tuple(item for item in self.rubric.spec.items if not item.asked)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rubric.name, self.session.persona_id, self.session.number)

    def haystack(self) -> Haystack:
        return Haystack(self.haystack_text)


def summary_bullets(summary: str | None) -> list[dict[str, Any]]:
    """The summary's bullets, numbered from 1 across its sections."""
    bullets: list[dict[str, Any]] = []
    for section, texts in parse_sections(summary).items():
        for text in texts:
            bullets.append({"number": len(bullets) + 1, "section": section, "text": text})
    return bullets


def _earlier_summaries(session: SeriesSession) -> list[dict[str, Any]]:
    return [
        {"session_number": r.session_number, "summary": r.summary}
        for r in session.earlier
        if r.summary is not None
    ]


def make_case(rubric: Rubric, session: SeriesSession) -> Case | None:
    """The case, or None when the rubric does not apply to this session (modality, a series
    rubric on a session nothing came before, a summary rubric on a session without bullets)."""
    record = session.record
    if not rubric.suits(session.patient.modality):
        return None
    notes = session.patient.notes_for(record.session_number)
    items = tuple(
        item for item in rubric.asked_items if not (item.requires == "session_notes" and notes is None)
    )
    bullets = summary_bullets(record.summary)
    transcript = session.transcript
    earlier = _earlier_summaries(session)
    scope = rubric.spec.applies_to
    if (
        not items
        or (scope == "summary" and not bullets)
        or (scope == "series" and not record.previous_summary)
    ):
        return None
    haystack = transcript
    if scope == "series":
        haystack = "\n\n".join([record.previous_summary or "", *(e["summary"] for e in earlier), transcript])
    context: dict[str, Any] = {
        "rubric": rubric.spec,
        "items": items,
        "patient": session.patient,
        "therapist": session.therapist,
        "modality": session.patient.modality,
        "session_number": record.session_number,
        "session_notes": notes,
        "transcript": transcript,
        "messages": [{"speaker": m.speaker, "content": m.content} for m in record.messages],
        "summary": record.summary,
        "summary_bullets": bullets,
        "previous_summary": record.previous_summary,
        "earlier_summaries": earlier,
    }
    return Case(rubric, session, items, context, len(bullets), haystack)
