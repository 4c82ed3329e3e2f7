"""Patient-Ψ cognitive conceptualisation diagrams (``patient-psi/profiles.json``,
``patienthub/patientPsi.json``) to CBT patient personas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.importers.common import _items, _name, _persona, _require, _text, _texts, _unmapped, make_id

_PSI_STYLES = {
    "plain": "Answers plainly and directly, without any particular conversational quirk.",
    "upset": (
        "Can get upset: pushes back on the therapist or on therapy itself, brushes off suggestions, "
        "finds trust hard and lets frustration show."
    ),
    "verbose": (
        "Talks a lot: gives long, detailed answers, elaborates on experiences and feelings, "
        "and is hard for the therapist to steer."
    ),
    "reserved": (
        "Guarded: gives short, vague or evasive answers, is reluctant to share feelings, "
        "needs encouragement to open up and can be sceptical of the therapist."
    ),
    "tangent": (
        "Goes off on tangents: starts to answer, then drifts into stories beside the point "
        "and needs to be brought back."
    ),
    "pleasing": (
        "Eager to please: plays down problems to look fine, agrees readily even when unsure, "
        "avoids disagreeing and looks for the therapist's approval."
    ),
}
_PSI_ALIASES = {"go off on tangents": "tangent", "tangents": "tangent", "tangential": "tangent"}
_DURING_DEPRESSION = re.compile(r"^\s*\[?\s*during depression\s*\]?\s*:?\s*$", re.IGNORECASE)


def _psi_speech_style(styles: list[str]) -> str | None:
    if not styles:
        return None
    known = [_PSI_ALIASES.get(s.lower(), s.lower()) for s in styles]
    if len(set(known)) > 1:
        known = [s for s in known if s != "plain"]  # "plain" means no particular style
    sentences = [_PSI_STYLES[s] for s in dict.fromkeys(known) if s in _PSI_STYLES]
    unknown = [s for s in styles if _PSI_ALIASES.get(s.lower(), s.lower()) not in _PSI_STYLES]
    if unknown:
        sentences.append(f"Also described as: {', '.join(unknown)}.")
    if len(styles) > 1 or styles[0].lower() != "plain":
        sentences.append(
            "Each of these shows in some replies, not all, and eases as trust in the therapist grows."
        )
    return " ".join(sentences)


def _feeling(emotion: str) -> str:
    """A Patient-Ψ emotion category to a presenting problem:
    ``"sad, down, lonely, unhappy"`` -> ``"feeling sad, down, lonely and unhappy"``."""
    words = [w.strip() for w in re.split(r"[,/]", emotion) if w.strip()]
    listed = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else emotion.strip()
    return listed if listed.lower().startswith("feeling") else f"feeling {listed}"


def _split_during_depression(text: str | None) -> tuple[list[str], list[str]]:
    """Patient-Ψ intermediate beliefs: the lines after a ``[during depression]`` marker are the
    beliefs the patient holds while depressed."""
    before: list[str] = []
    during: list[str] | None = None
    for line in (text or "").splitlines():
        if _DURING_DEPRESSION.match(line):
            during = []
        elif during is None:
            before.append(line)
        else:
            during.append(line)
    return _items("\n".join(before)), _items("\n".join(during or []))


def from_patient_psi(
    record: Mapping[str, Any], *, file: str = "profiles.json", index: int = 0
) -> dict[str, Any]:
    """One Patient-Ψ cognitive conceptualisation diagram to a CBT patient persona."""
    _require(record, ["name", "history"], "patient-psi")
    name = _name(record)
    record_id = _text(record, "id") or str(index)
    styles = _texts(record, "type")
    before, during = _split_during_depression(_text(record, "intermediate_belief"))
    beliefs = {kind: _texts(record, f"{kind}_belief") for kind in ("helpless", "unlovable", "worthless")}
    emotions = _texts(record, "emotion")
    mapped = {
        "name",
        "id",
        "type",
        "history",
        "helpless_belief",
        "unlovable_belief",
        "worthless_belief",
        "intermediate_belief",
        "coping_strategies",
        "situation",
        "auto_thought",
        "emotion",
        "behavior",
    }
    return _persona(
        role="patient",
        id=make_id("psi", name, record_id),
        name=name,
        modality="CBT",
        presenting_problems=[_feeling(e) for e in emotions],
        background=_text(record, "history"),
        speech_style=_psi_speech_style(styles),
        core_beliefs=[b for kind in beliefs.values() for b in kind],
        intermediate_beliefs=before + during,
        coping_strategies=_items(_text(record, "coping_strategies")),
        extra={
            "core_belief_types": {kind: items for kind, items in beliefs.items() if items},
            "intermediate_beliefs_during_depression": during,
            "triggers": _texts(record, "situation"),
            "automatic_thoughts": _texts(record, "auto_thought"),
            "emotions": emotions,
            "behaviors": _texts(record, "behavior"),
            "conversational_styles": styles,
        },
        unmapped=_unmapped(record, mapped),
        source=f"Patient-Ψ {file} record {index} (id {record_id})",
    )
