"""The offline summarizer: five sections pulled from the transcript it is given."""

from __future__ import annotations

import re
from collections.abc import Sequence

from simulator.backends.offline.script import TECHNIQUES, Scene, sentences, strip_end
from simulator.backends.offline.voice import (
    first_to_third,
    pronouns_of,
    second_to_third,
)
from simulator.protocol import ChatMessage
from simulator.summary import SUMMARY_SECTIONS, format_sections


def summarize(messages: Sequence[ChatMessage], scene: Scene) -> str:
    """Five sections extracted from the transcript the summarizer was given."""
    transcript = next((m.content for m in reversed(messages) if m.role == "user"), "")
    turns = re.findall(r"^(Patient|Therapist): (.*?)(?=^(?:Patient|Therapist): |\Z)", transcript, re.M | re.S)
    turns = turns[1:] if turns and turns[0][0] == "Patient" else turns  # the opening is a template
    patient_sents = [s for speaker, text in turns if speaker == "Patient" for s in sentences(text)]
    therapist_sents = [s for speaker, text in turns if speaker == "Therapist" for s in sentences(text)]
    name = scene.patient.name.split()[0]
    pronouns = pronouns_of(scene.patient.pronouns)

    def reported(sentence: str) -> str:
        text = first_to_third(strip_end(sentence), pronouns)
        return _capital(re.sub(rf"^{pronouns.subject}\b", name, text))

    topics = [
        _capital(first_to_third(strip_end(m), pronouns))
        for s in patient_sents
        for m in re.findall(r"(?:work on|talk about|focus on) (.+)", s)
    ]
    topics += [
        "Brought up: " + first_to_third(strip_end(s.split(": ", 1)[1]), pronouns)
        for s in patient_sents
        if "should mention: " in s
    ]
    therapist_text = " ".join(therapist_sents).lower()
    techniques = list(dict.fromkeys(label for key, label in TECHNIQUES if key in therapist_text))
    helpful = [
        reported(s) for s in patient_sents if re.search(r"\bhelp(ed|s|ful)?\b|less huge|makes sense", s, re.I)
    ]
    homework = [
        _capital(second_to_third(strip_end(re.sub(r"^.*?\bI'd like you to\s+", "", s)), pronouns))
        for s in therapist_sents
        if re.search(r"\bI'd like you to\b|\bfor homework\b", s, re.I)
    ]
    insights = [
        reported(s)
        for s in patient_sents
        if re.search(r"\bI realize|\bif I'm being fair|\bI noticed\b", s, re.I)
    ]
    sections = {
        SUMMARY_SECTIONS[0]: _dedupe(topics)[:4],
        SUMMARY_SECTIONS[1]: [_capital(t) for t in techniques[:4]],
        SUMMARY_SECTIONS[2]: _dedupe(helpful)[:3],
        SUMMARY_SECTIONS[3]: _dedupe(homework)[:3],
        SUMMARY_SECTIONS[4]: _dedupe(insights)[:3],
    }
    return format_sections(sections)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
