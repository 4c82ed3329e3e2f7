"""Eeyore depression profiles (``patienthub/eeyore.json``); the structured ``profile`` is used,
and when a record has none its profile lines are parsed out of the system prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.importers.common import (
    RecordError,
    _age,
    _invented_name,
    _items,
    _join,
    _key,
    _mapping,
    _persona,
    _pronouns,
    _records,
    _require,
    _text,
    _unmapped,
    make_id,
)

_UNKNOWN = frozenset({"cannot be identified", "n/a", "unknown", "none", ""})
_SEVERITY = {"not exhibited": 0, "mild": 1, "moderate": 2, "severe": 3}
_EEYORE_SYMPTOMS = {
    "feelings of sadness, tearfulness, emptiness, or hopelessness": "feeling sad, empty or hopeless",
    "angry outbursts, irritability, or frustration, even over small matters": "irritability and angry outbursts",
    "loss of interest or pleasure in most or all normal activities, such as sex, hobbies, or sports": (
        "losing interest in things I used to enjoy"
    ),
    "sleep disturbances, including insomnia or sleeping too much": "sleeping badly",
    "tiredness and lack of energy, so even small tasks take extra effort": "having no energy, even for small things",
    "changes in appetite and weight (reduced appetite and weight loss or increased cravings for food and weight gain)": (
        "changes in my appetite and weight"
    ),
    "anxiety, agitation, or restlessness": "anxiety and restlessness",
    "slowed thinking, speaking, or body movements": "feeling slowed down",
    "feelings of worthlessness or guilt, fixating on past failures or self-blame": "guilt and feeling worthless",
    "trouble thinking, concentrating, making decisions, and remembering things": (
        "trouble concentrating and making decisions"
    ),
    "frequent or recurrent thoughts of death, suicidal thoughts, suicide attempts, or suicide": (
        "thoughts of death and suicide"
    ),
    "unexplained physical problems, such as back pain or headaches": "aches and pains with no clear cause",
    "becoming withdrawn, negative, or detached": "withdrawing and feeling detached",
    "increased engagement in high-risk activities": "taking more risks",
    "greater impulsivity": "acting on impulse",
    "increased use of alcohol or drugs": "drinking or using drugs more",
    "isolating from family and friends": "isolating myself from family and friends",
    "inability to meet the responsibilities of work and family or ignoring other important roles": (
        "not keeping up with my responsibilities at work and at home"
    ),
}
_PROBLEMS_MAX = 5
_PROFILE_LINE = re.compile(r"^(?P<indent>\s*)- (?P<key>[^:]+?)\s*(?::\s*(?P<value>.*))?$")


def _known(value: Any) -> bool:
    return not (isinstance(value, str) and re.sub(r"^\d+-", "", value.strip()).lower() in _UNKNOWN)


def _severity(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    return _SEVERITY.get(re.sub(r"^\d+\s*-\s*", "", value.strip()).lower())


def parse_profile_prompt(text: str) -> dict[str, Any]:
    """The ``- key: value`` lines of an Eeyore system prompt (``YOUR PROFILE:`` up to
    ``YOUR TASK:``) as a dict; ``- key`` lines without a value open a nested dict."""
    profile: dict[str, Any] = {}
    section = text.split("YOUR PROFILE:", 1)[1] if "YOUR PROFILE:" in text else text
    section = section.split("YOUR TASK:", 1)[0]
    group: dict[str, Any] | None = None
    for line in section.splitlines():
        match = _PROFILE_LINE.match(line)
        if not match:
            continue
        key, value = match.group("key").strip(), match.group("value")
        if match.group("indent") and group is not None:
            group[key] = (value or "").strip()
        elif value is None or not value.strip():
            group = profile.setdefault(key, {})
        else:
            profile[key] = value.strip()
            group = None
    return profile


def _eeyore_profile(record: Mapping[str, Any]) -> dict[str, Any]:
    profile = _mapping(record, "profile")
    if profile:
        return profile
    system = next(
        (m.get("content") for m in _records(record, "conversation") if m.get("role") == "system"), None
    )
    parsed = parse_profile_prompt(system) if isinstance(system, str) else {}
    if not parsed:
        raise RecordError("not an eeyore record: no 'profile' and no profile lines in a system prompt")
    return parsed


_CLIENT = re.compile(r"\b[Tt]he (?:client|patient)('s)?\b")
_MODEL_KEYS = ("situation", "automatic_thoughts", "emotion", "behavior")
_COGNITIVE_MAPPED = frozenset(
    [
        "life_history",
        "core_beliefs",
        "core_belief_description",
        "intermediate_beliefs",
        "intermediate_beliefs_during_depression",
        "coping_strategies",
        "cognitive_models",
    ]
)
_PROFILE_MAPPED = frozenset(
    ["name", "age", "gender", "occupation", "situation_of_the_client", "symptom_severity"]
)


def from_eeyore(record: Mapping[str, Any], *, file: str = "eeyore.json", index: int = 0) -> dict[str, Any]:
    """One Eeyore profile (and its cognitive profile, when present) to a CBT patient persona."""
    if "profile" not in record and "conversation" not in record:
        _require(record, ["profile"], "eeyore")
    profile = _eeyore_profile(record)
    cognitive = _mapping(record, "cognitive profile")
    ref = " ".join(p for p in (_text(record, "source"), _text(record, "id_source")) if p) or str(index)
    given = _text(profile, "name")
    named = bool(given) and _known(given)
    name = " ".join(given.split()) if given and named else _invented_name(f"eeyore:{ref}")
    known = {_key(k): v for k, v in profile.items() if _known(v)}
    age = _age(known.get("age"))
    symptoms = _mapping(profile, "symptom severity")
    ranked = sorted(((k, s) for k, v in symptoms.items() if (s := _severity(v))), key=lambda ks: -ks[1])
    models = _records(cognitive, "cognitive_models")
    conversation = [m for m in _records(record, "conversation") if m.get("role") in ("user", "assistant")]
    client_turns = [str(m.get("content", "")).strip() for m in conversation if m.get("role") == "assistant"]

    def prose(mapping: Mapping[str, Any], key: str) -> str | None:
        """Eeyore prose says "the client"; the persona says the name."""
        text = _text(mapping, key)
        return _CLIENT.sub(lambda m: name + (m.group(1) or ""), text) if text else None

    during = _items(prose(cognitive, "intermediate_beliefs_during_depression"))
    odd_models = any(set(m) - set(_MODEL_KEYS) for m in models)
    return _persona(
        role="patient",
        id=make_id("eeyore", ref),
        name=name,
        modality="CBT",
        age=age,
        pronouns=_pronouns(_text(profile, "gender")),
        occupation=known.get("occupation"),
        presenting_problems=[_EEYORE_SYMPTOMS.get(k, k) for k, _ in ranked[:_PROBLEMS_MAX]],
        background=_join([prose(profile, "situation of the client"), prose(cognitive, "life_history")]),
        core_beliefs=_items(prose(cognitive, "core_belief_description")),
        intermediate_beliefs=_items(prose(cognitive, "intermediate_beliefs")) + during,
        coping_strategies=_items(prose(cognitive, "coping_strategies")),
        extra={
            "gender": known.get("gender"),
            "age_range": known.get("age") if age is None else None,
            "symptom_severity": symptoms,
            "core_belief_types": _text(cognitive, "core_beliefs"),
            "intermediate_beliefs_during_depression": during,
            "triggers": [t for m in models if (t := prose(m, "situation"))],
            "automatic_thoughts": [t for m in models if (t := prose(m, "automatic_thoughts"))],
            "emotions": [t for m in models if (t := _text(m, "emotion"))],
            "behaviors": [t for m in models if (t := prose(m, "behavior"))],
            "cognitive_models": models if odd_models else None,
            "voice_samples": [t for t in client_turns if 4 <= len(t.split()) <= 80][:6],
            "source_conversation": [
                f"{'Client' if m.get('role') == 'assistant' else 'Supporter'}: {str(m.get('content', '')).strip()}"
                for m in conversation
            ],
        },
        unmapped={
            **{k: v for k, v in known.items() if k not in _PROFILE_MAPPED},
            **{_key(k): v for k, v in cognitive.items() if k not in _COGNITIVE_MAPPED},
            **_unmapped(record, {"conversation", "profile", "cognitive profile", "source", "id_source"}),
        },
        source=f"Eeyore {file} record {index} ({ref})" + ("" if named else "; the name is invented"),
    )
