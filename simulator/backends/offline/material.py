"""What a persona gives the offline patient to talk about, in the patient's own voice.

Persona files come from many hands: bundled personas write the background about the patient
("Marcus was raised..."), imported ones mix the first and third person, wrap quotes in
markdown, and keep their richest material in ``extra`` (voice samples, automatic thoughts,
triggers, emotions, MI plans). :func:`material_of` reads all of it once into first-person
sentences and phrases, so every line the patient says is built from its own persona.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from simulator.backends.offline.script import sentences, strip_end
from simulator.backends.offline.voice import Pronouns, is_verb, pronouns_of, third_to_first
from simulator.personas import Patient

FEELINGS = (
    "anxious",
    "tired",
    "guilty",
    "flat",
    "on edge",
    "frustrated",
    "discouraged",
    "overwhelmed",
    "restless",
    "low",
    "ashamed",
    "irritable",
    "numb",
)
"""Feelings for personas that name none of their own (``extra.emotions``)."""

_LEADING_VERB = re.compile(r"^([A-Z][a-z]+s) (?=[a-z])")


@dataclass(frozen=True)
class Material:
    """A persona's fields as the patient says them (first person, no markup)."""

    name: str
    pronouns: Pronouns
    problems: list[str]
    situations: list[str]
    thoughts: list[str]
    beliefs: list[str]
    feelings: list[str]
    goals: list[str]
    coping: list[str]
    voice: list[str]
    tics: list[str]
    about: list[str]
    plans: list[str]
    reasons: list[str]
    sustain: list[str]
    topic: str
    names: frozenset[str]
    """Capitalised words the persona uses mid-sentence (Karen, Dot, Atlanta): kept capitalised."""

    def pick(self, items: list[str], index: int) -> str:
        """The item at ``index``, wrapping; consecutive indexes give different items."""
        return items[index % len(items)] if items else ""


def clean(text: str) -> str:
    """Persona text without markdown emphasis or the quotes wrapped round a whole sentence."""
    text = re.sub(r"\*+", "", str(text)).replace("’", "'").strip()
    text = re.sub(r"^(?:Example Post|Typical Interactions):\s*", "", text)
    if len(text) > 2 and text[0] in '"“' and text[-1] in '"”' and text.count('"') <= 2:
        text = text[1:-1].strip()
    return re.sub(r'^"|"\.?$', "", text).strip()


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [s for s in sentences(clean(value)) if s]
    if isinstance(value, dict):
        return [str(v) for v in value.values() if isinstance(v, str)]
    if isinstance(value, list):
        return [clean(str(v)) for v in value if isinstance(v, str | int | float) and str(v).strip()]
    return []


class _Reader:
    def __init__(self, patient: Patient) -> None:
        prose = " ".join([patient.background or "", patient.personality or ""])
        self.patient = patient
        self.pronouns = pronouns_of(patient.pronouns, prose)

    def first(self, text: str, predicate: bool = False) -> str:
        """One persona sentence or fragment as the patient says it; ``predicate``: the field
        holds phrases without a subject ("Avoids asking for help")."""
        text = clean(text)
        pronouns = self.pronouns if self.pronouns.subject != "they" else pronouns_of(None, text)
        said = third_to_first(text, self.patient.name, pronouns)
        match = _LEADING_VERB.match(said)
        if match and (predicate or is_verb(match.group(1).lower())):  # "Avoids asking for help"
            said = "I " + third_to_first("he " + said[:1].lower() + said[1:], "", pronouns_of("he"))[2:]
        elif predicate and re.match(r"^[A-Z][a-z]+ed\b", said):  # "Shared her concern"
            said = "I " + said[:1].lower() + said[1:]
        if re.match(r"I\b", said):  # "I aim to limit himself": mixed-up source data
            said = re.sub(r"\b(?:himself|herself|themselves)\b", "myself", said)
        return strip_end(said)

    def sentences_of(self, *values: Any, predicate: bool = False) -> list[str]:
        """Each sentence of ``values``, said by the patient; a heading ("Precipitants: ") dropped."""
        return [
            self.first(re.sub(r"^[A-Z][\w ]{2,40}:\s+(?=\w)", "", s), predicate)
            for value in values
            for item in _list(value)
            for s in sentences(item)
        ]


def _names(texts: list[str]) -> frozenset[str]:
    found = {
        word
        for text in texts
        for sentence in sentences(clean(text))
        for word in re.findall(r"[\w']+", sentence)[1:]
        if word[:1].isupper() and word != "I"
    }
    return frozenset(found)


def material_of(patient: Patient) -> Material:
    """Everything the offline patient can say about itself, read from the persona."""
    extra = patient.extra
    read = _Reader(patient)
    emotions = [
        word.strip()
        for item in _list(extra.get("emotions"))
        for word in re.split(r"[,/]", item)
        if 0 < len(word.split()) <= 2
    ]
    style = clean(patient.speech_style or "")
    voice = [clean(v) for v in _list(extra.get("voice_samples")) if "?" not in v[:-1]]
    voice_thoughts = [strip_end(v) for v in voice if v.startswith("I") and len(v.split()) <= 16]
    problems = [strip_end(read.first(p)) for p in patient.presenting_problems]
    situations = read.sentences_of(extra.get("triggers")) + read.sentences_of(
        extra.get("behaviors"), extra.get("past_interactions"), extra.get("typical_topics"), predicate=True
    )
    background = read.sentences_of(patient.background)
    return Material(
        name=patient.name.split()[0],
        pronouns=read.pronouns,
        problems=problems,
        situations=situations if len(situations) >= 4 else situations + background,
        thoughts=read.sentences_of(extra.get("automatic_thoughts")) + voice_thoughts,
        beliefs=read.sentences_of(patient.core_beliefs, patient.intermediate_beliefs),
        feelings=list(dict.fromkeys(emotions)) or list(FEELINGS),
        goals=[strip_end(read.first(g)) for g in patient.goals],
        coping=read.sentences_of(patient.coping_strategies, predicate=True),
        voice=voice,
        tics=[t.strip(" ,") for t in re.findall(r"[\"“]([^\"”]{3,60})[\"”]", style) if len(t.split()) <= 6],
        about=background,
        plans=read.sentences_of(extra.get("acceptable_plans")),
        reasons=read.sentences_of(extra.get("motivation")),
        sustain=read.sentences_of(patient.intermediate_beliefs if patient.modality == "MI" else None),
        topic=clean(str(extra.get("topic") or (problems[0] if problems else "how things have been"))),
        names=_names(
            [patient.name, patient.background or "", patient.personality or "", *patient.sessions.values()]
            + [str(v) for v in _list(extra.get("voice_samples"))]
        ),
    )
