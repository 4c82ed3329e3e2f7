"""The offline summarizer: five sections pulled from the transcript it is given."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from simulator.backends.offline.material import material_of
from simulator.backends.offline.modalities import asked
from simulator.backends.offline.script import TECHNIQUES, Scene, sentences, strip_end
from simulator.backends.offline.voice import first_to_third, second_to_third, strip_fillers
from simulator.protocol import ChatMessage
from simulator.summary import SUMMARY_SECTIONS, format_sections


def summarize(messages: Sequence[ChatMessage], scene: Scene) -> str:
    """Five sections extracted from the transcript the summarizer was given."""
    transcript = next((m.content for m in reversed(messages) if m.role == "user"), "")
    turns = re.findall(r"^(Patient|Therapist): (.*?)(?=^(?:Patient|Therapist): |\Z)", transcript, re.M | re.S)
    turns = [(speaker, text.strip()) for speaker, text in turns[1:]]  # the opening is a template
    said = [text for speaker, text in turns if speaker == "Patient"][:-1]  # not the goodbye
    patient_sents = [s for text in said for s in sentences(text)]
    therapist_text = " ".join(text for speaker, text in turns if speaker == "Therapist").lower()
    name = scene.patient.name.split()[0]
    pronouns = material_of(scene.patient).pronouns

    def reported(sentence: str) -> str:
        text = first_to_third(strip_end(strip_fillers(sentence)), pronouns)
        if pronouns.subject == "they":  # "Drew believe" would break agreement: keep "they"
            return _capital(text)
        return _capital(re.sub(rf"^{pronouns.subject}\b(?!')", name, text, flags=re.I))

    spoken = " ".join(patient_sents).lower()
    material = material_of(scene.patient)
    topics = [_capital(first_to_third(p, pronouns)) for p in material.problems if p.lower() in spoken]
    first_reply = sentences(turns[1][1]) if len(turns) > 1 and turns[1][0] == "Patient" else []
    problems = {p.lower() for p in material.problems}
    events = [
        s
        for s in first_reply
        if not s.endswith(("?", "...", "…"))
        and len(s.split()) > 3
        and not re.match(r"About a \d|About the same|Not much has changed|I've felt", s)
        and strip_end(s).lower() not in problems
    ]
    topics += [f"What happened: {reported(events[0])}"] if events else []
    techniques = list(dict.fromkeys(label for key, label in TECHNIQUES if key in therapist_text))
    helpful = [reported(s) for s in patient_sents if re.search(r"\bhelp(?:ed|s)\b|feels doable", s)]
    homework = [
        _capital(second_to_third(strip_end(re.sub(r"^.*?\bI'd like you to\s+", "", s)), pronouns))
        for speaker, text in turns
        if speaker == "Therapist"
        for s in sentences(text)
        if re.search(r"\bI'd like you to\b", s)
    ]
    homework += [
        reported(sentences(answer)[0])
        for (speaker, question), (_, answer) in itertools.pairwise(turns)
        if speaker == "Therapist" and asked(question) == "plan" and answer
    ]
    insights = [
        reported(s) for s in patient_sents if re.search(r"\bI realize|\bIf I'm fair\b|\bI noticed\b", s)
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
