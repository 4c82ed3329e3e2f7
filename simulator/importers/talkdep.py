"""TalkDep depression profiles (``patienthub/talkDep.json``) to CBT patient personas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.importers.common import (
    RecordError,
    _age,
    _join,
    _lower_title,
    _name,
    _persona,
    _pronouns,
    _records,
    _require,
    _text,
    _texts,
    _unmapped,
    make_id,
)


def from_talkdep(record: Mapping[str, Any], *, file: str = "talkDep.json", index: int = 0) -> dict[str, Any]:
    """One TalkDep depression profile to a CBT patient persona."""
    _require(record, ["name", "life_history"], "talkdep")
    name = _name(record)
    symptoms = _records(record, "key_negative_symptoms")
    for symptom in symptoms:
        if not _text(symptom, "name"):
            raise RecordError("key 'key_negative_symptoms': every symptom needs a 'name'")
    ranked = sorted(symptoms, key=lambda s: -_severity_number(s.get("severity")))
    age = _age(record.get("age"))
    mapped = {
        "name",
        "key_negative_symptoms",
        "life_history",
        "social_context",
        "linguistic_patterns",
        "emotional_tone",
        "behavioral_constraints",
    } | ({"age"} if age is not None else set())
    return _persona(
        role="patient",
        id=make_id("talkdep", name),
        name=name,
        modality="CBT",
        age=age,
        pronouns=_pronouns(_text(record, "gender")),
        presenting_problems=[_lower_title(str(s["name"]).strip()) for s in ranked],
        background=_join(_texts(record, "life_history") + _texts(record, "social_context")),
        personality=_join(_texts(record, "behavioral_constraints")),
        speech_style=_join(_texts(record, "linguistic_patterns") + _texts(record, "emotional_tone")),
        extra={
            "voice_samples": [d for s in symptoms if (d := _text(s, "description"))],
            "symptom_severity": {str(s["name"]).strip(): s.get("severity") for s in symptoms},
        },
        unmapped=_unmapped(record, mapped),
        source=f"TalkDep {file} record {index} ({name})",
    )


def _severity_number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return 0.0
