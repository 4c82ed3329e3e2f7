"""Importers: third-party persona data to patient-persona dicts and YAML files.

One converter per source format turns one record into a dict that validates as
:class:`simulator.personas.Patient`. Fields with a home in our schema go there; everything
else stays under ``extra`` (snake_case keys named after the source fields), with
``extra.source`` naming the dataset, the file and the record, so that nothing is lost.

Formats (see ``FORMATS``):

- ``patient-psi``: Patient-Ψ cognitive conceptualisation diagrams (``patient-psi/profiles.json``,
  ``patienthub/patientPsi.json``).
- ``talkdep``: TalkDep depression profiles (``patienthub/talkDep.json``).
- ``consistent-mi``: ConsistentMI motivational-interviewing clients (``patienthub/consistentMI.json``);
  written in the second person ("You smoke weed..."), turned into the first person here.
- ``eeyore``: Eeyore depression profiles (``patienthub/eeyore.json``); the structured ``profile``
  is used, and when a record has none its profile lines are parsed out of the system prompt.

Sources without names (ConsistentMI, Eeyore) get a gender-neutral first name, picked
deterministically from the record id, because transcripts open with "Hi, I'm NAME".
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.errors import InputError
from simulator.personas import ID_PATTERN, Patient
from simulator.store import atomic_write
from simulator.yamlfile import validation_errors

ID_MAX = 64

_NAMES = (
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Casey",
    "Riley",
    "Morgan",
    "Jamie",
    "Avery",
    "Quinn",
    "Robin",
    "Drew",
    "Charlie",
    "Jesse",
    "Kai",
    "Reese",
    "Rowan",
    "Sage",
    "Emerson",
    "Frankie",
)

_PERSONA_KEYS = (
    "role",
    "id",
    "name",
    "modality",
    "age",
    "pronouns",
    "occupation",
    "presenting_problems",
    "background",
    "personality",
    "speech_style",
    "goals",
    "core_beliefs",
    "intermediate_beliefs",
    "coping_strategies",
    "extra",
)


class RecordError(ValueError):
    """One record does not have the shape its format needs (message without the file)."""


# ---------------------------------------------------------------------------------------------
# small helpers


_TRANSLIT = str.maketrans({"æ": "ae", "ø": "o", "đ": "d", "ł": "l", "œ": "oe", "þ": "th", "ð": "d"})


def slug(text: str) -> str:
    """``"José O'Brien"`` -> ``jose_obrien``: ASCII letters and digits joined by ``_``."""
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_TRANSLIT)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"['’‘`´ʼ]", "", text)
    text = re.sub(r"[^a-z0-9]+", "_", text)
    return text.strip("_")


def make_id(prefix: str, *parts: str) -> str:
    """A persona id ``prefix_part_part`` that matches ``ID_PATTERN``; parts with no ASCII
    letters or digits at all (a name in another script) become a short hash."""
    pieces = [slug(prefix)]
    for part in parts:
        piece = slug(part)
        if not piece and part.strip():
            piece = "u" + hashlib.sha256(part.strip().encode()).hexdigest()[:8]
        if piece:
            pieces.append(piece)
    ident = "_".join(p for p in pieces if p)[:ID_MAX].rstrip("_-") or "persona"
    assert ID_PATTERN.fullmatch(ident), ident
    return ident


def unique_id(ident: str, used: set[str]) -> str:
    """``ident``, or ``ident_2``, ``ident_3``, ... (kept within 64 characters)."""
    candidate, n = ident, 1
    while candidate in used:
        n += 1
        suffix = f"_{n}"
        candidate = ident[: ID_MAX - len(suffix)].rstrip("_-") + suffix
    used.add(candidate)
    return candidate


def _invented_name(key: str) -> str:
    return _NAMES[hashlib.sha256(key.encode()).digest()[0] % len(_NAMES)]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
_NUMBERED = re.compile(r"\(\d+\)\s*")


def _items(text: str | None) -> list[str]:
    """Prose to a list of items: one per line, numbered ``(1) ... (2) ...`` parts kept whole,
    other lines split into sentences."""
    items: list[str] = []
    for line in (text or "").splitlines():
        if _NUMBERED.search(line):
            items += [p.strip() for p in _NUMBERED.split(line) if p.strip()]
        else:
            items += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return items


def _join(parts: Iterable[str | None]) -> str | None:
    """Sentences to one paragraph; a part without final punctuation gets a full stop."""
    sentences = [p.strip() for p in parts if p and p.strip()]
    text = " ".join(s if s[-1] in ".!?\"'”’)" else s + "." for s in sentences)
    return text or None


def _pronouns(gender: str | None) -> str | None:
    key = (gender or "").strip().lower()
    if key in ("male", "man", "m", "boy"):
        return "he/him"
    if key in ("female", "woman", "f", "girl"):
        return "she/her"
    if key in ("non-binary", "nonbinary", "nb"):
        return "they/them"
    return None


def _age(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value < 130:
        return value
    if isinstance(value, str) and value.strip().isdigit() and 0 < int(value) < 130:
        return int(value)
    return None


def _key(name: str) -> str:
    """Source field name to an ``extra`` key: ``"Acceptable Plans"`` -> ``acceptable_plans``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _lower_title(text: str) -> str:
    """``"Sleep Disturbances"`` -> ``"sleep disturbances"``; acronyms stay as they are."""
    return " ".join(w.lower() if w[1:] == w[1:].lower() else w for w in text.split())


# typed access to one record; every problem is a RecordError naming the key


def _require(record: Mapping[str, Any], keys: Sequence[str], fmt: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        found = ", ".join(repr(k) for k in list(record)[:6]) or "none"
        raise RecordError(f"not a {fmt} record: missing key {missing[0]!r} (keys found: {found})")


def _text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f"key {key!r} must be text, found {_kind(value)}")
    return str(value).strip() or None


def _texts(record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise RecordError(f"key {key!r} must be a list of text, found {_kind(value)}")
    return [str(v).strip() for v in value if str(v).strip()]


def _mapping(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"key {key!r} must be an object, found {_kind(value)}")
    return value


def _records(record: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RecordError(f"key {key!r} must be a list of objects, found {_kind(value)}")
    return value


def _name(record: Mapping[str, Any], key: str = "name") -> str:
    name = _text(record, key)
    if not name:
        raise RecordError(f"key {key!r} is missing or empty")
    return " ".join(name.split())


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "null" if value is None else type(value).__name__


def _persona(
    *, extra: dict[str, Any], unmapped: Mapping[str, Any], source: str, **fields: Any
) -> dict[str, Any]:
    """Keys in the order of a hand-written persona, empty values left out. ``unmapped`` source
    fields join ``extra`` (prefixed ``original_`` if a key is taken); ``extra.source`` comes last."""
    merged = {k: v for k, v in extra.items() if not _empty(v)}
    for key, value in unmapped.items():
        if not _empty(value):
            taken = key in merged or key == "source"
            merged[_free(f"original_{key}" if taken else key, merged)] = value
    merged["source"] = source
    fields["extra"] = merged
    return {k: fields[k] for k in _PERSONA_KEYS if not _empty(fields.get(k))}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


# ---------------------------------------------------------------------------------------------
# Patient-Ψ

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


def _unmapped(record: Mapping[str, Any], mapped: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key not in mapped:
            out[_free(_key(key) or "field", out)] = value
    return out


def _free(key: str, taken: Mapping[str, Any]) -> str:
    """``key``, or ``key_2``, ``key_3``, ... whichever is not in ``taken``."""
    candidate, n = key, 1
    while candidate in taken:
        n += 1
        candidate = f"{key}_{n}"
    return candidate


# ---------------------------------------------------------------------------------------------
# TalkDep


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


# ---------------------------------------------------------------------------------------------
# ConsistentMI

# After these words "you" starts a clause ("because you are", "knew you had"): "I", not "me".
_SUBJECT_AFTER = frozenset(
    """because that if when whenever and but so as since until while where whether or than though
    although unless once what how why think thinks thought know knows knew believe believes believed
    feel feels felt notice notices noticed realize realizes realized realise realises realised say
    says said hope hopes wish wishes guess assume assumes doubt doubts worry worries mean means""".split()  # noqa: SIM905
)
_YOU = re.compile(r"\b(you're|you've|you'll|you'd|yourselves|yourself|yours|your|you)\b", re.IGNORECASE)
_YOU_FORMS = {
    "you're": "I'm",
    "you've": "I've",
    "you'll": "I'll",
    "you'd": "I'd",
    "yourselves": "ourselves",
    "yourself": "myself",
    "yours": "mine",
    "your": "my",
}
_AFTER_I = {"are": "am", "were": "was", "aren't": "am not", "weren't": "wasn't"}


def you_to_i(text: str) -> str:
    """Second person to first: ``"Your boss may fire you because you are late"`` ->
    ``"My boss may fire me because I am late"``. Rule-based: "you" is "I" at the start of
    a clause (after punctuation, a conjunction or a verb like "think") and "me" elsewhere."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(1)
        low = word.lower()
        if low != "you":
            new = _YOU_FORMS[low]
            return new[:1].upper() + new[1:] if word[:1].isupper() else new
        before = re.findall(r"[\w']+|[.!?;:,\"“(]", text[: match.start()])
        after = re.match(r"\s+(not\s+)?to\b", text[match.end() :])
        subject = not before or before[-1] in '.!?;:,"“(' or before[-1].lower() in _SUBJECT_AFTER
        return "I" if subject and not after else "me"

    swapped = _YOU.sub(swap, text)
    return re.sub(r"\bI (are|were|aren't|weren't)\b", lambda m: "I " + _AFTER_I[m.group(1)], swapped)


_MI_NAME = re.compile(r"^(?:You are|Your name is) ([A-Z][a-z]+(?: [A-Z][a-z]+)?)\.?$")


def from_consistent_mi(
    record: Mapping[str, Any], *, file: str = "consistentMI.json", index: int = 0
) -> dict[str, Any]:
    """One ConsistentMI client to a motivational-interviewing (``modality: MI``) patient persona."""
    _require(record, ["topic", "Personas"], "consistent-mi")
    idx = _text(record, "idx") or str(index)
    motivation = _texts(record, "Motivation")
    reasons = [m for m in motivation if " " in m and m.endswith((".", "!"))]
    labels = [m for m in motivation if m not in reasons]
    behavior = _text(record, "Behavior")
    topic = _text(record, "topic")
    facts = _texts(record, "Personas")
    named = next((m.group(1) for f in facts if (m := _MI_NAME.match(f))), None)
    mapped = {
        "Personas",
        "Beliefs",
        "Behavior",
        "Motivation",
        "Acceptable Plans",
        "initial_stage",
        "topic",
        "idx",
    }
    return _persona(
        role="patient",
        id=make_id("mi", idx, labels[0] if labels else topic or ""),
        name=named or _invented_name(f"consistent-mi:{idx}:{facts[0] if facts else ''}"),
        modality="MI",
        presenting_problems=[you_to_i(behavior or topic or "")],
        background=_join(you_to_i(s) for s in facts),
        intermediate_beliefs=[you_to_i(b) for b in _texts(record, "Beliefs")],
        extra={
            "topic": topic,
            "stage_of_change": _text(record, "initial_stage"),
            "motivation": _join(you_to_i(m) for m in reasons),
            "motivation_topics": labels,
            "acceptable_plans": [you_to_i(p) for p in _texts(record, "Acceptable Plans")],
        },
        unmapped=_unmapped(record, mapped),
        source=f"ConsistentMI {file} record {index} (idx {idx})"
        + ("" if named else "; the name is invented"),
    )


# ---------------------------------------------------------------------------------------------
# Eeyore

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


# ---------------------------------------------------------------------------------------------
# files

Converter = Callable[..., dict[str, Any]]

FORMATS: dict[str, Converter] = {
    "patient-psi": from_patient_psi,
    "talkdep": from_talkdep,
    "consistent-mi": from_consistent_mi,
    "eeyore": from_eeyore,
}


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "expected a JSON file, found a directory") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def import_file(fmt: str, path: Path) -> list[dict[str, Any]]:
    """Every record of ``path`` (a JSON list in format ``fmt``) as a patient-persona dict;
    ids are unique within the file. Problems raise :class:`InputError` naming the file."""
    converter = FORMATS.get(fmt)
    if converter is None:
        raise InputError(path, f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    data = _read_json(path)
    if not isinstance(data, list):
        raise InputError(path, f"expected a JSON list of {fmt} records, found {_kind(data)}")
    if not data:
        raise InputError(path, "no records: the JSON list is empty")
    personas: list[dict[str, Any]] = []
    used: set[str] = set()
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise InputError(path, f"record {index}: expected a JSON object, found {_kind(record)}")
        try:
            persona = converter(record, file=path.name, index=index)
        except RecordError as exc:
            raise InputError(path, f"record {index}: {exc}") from None
        persona["id"] = unique_id(persona["id"], used)
        _check(persona, f"{path} (record {index})")
        personas.append(persona)
    return personas


def _check(persona: Mapping[str, Any], source: str) -> Patient:
    try:
        return Patient.model_validate(persona)
    except ValidationError as exc:
        raise validation_errors(source, exc) from None


def dump_persona(persona: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(persona), sort_keys=False, allow_unicode=True)


def write_personas(
    personas: Sequence[Mapping[str, Any]], out_dir: Path, *, force: bool = False
) -> list[Path]:
    """One ``ID.yaml`` per persona in ``out_dir``, each written atomically. Nothing is written
    if any file exists already (unless ``force``) or two personas share an id."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a directory")
    targets: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for number, persona in enumerate(personas):
        ident = persona.get("id")
        if not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident):
            raise InputError(out_dir, f"persona {number}: invalid or missing id {ident!r}")
        if ident in seen:
            raise InputError(out_dir, f"two personas have the id {ident!r}")
        seen.add(ident)
        path = out_dir / f"{ident}.yaml"
        _check(persona, str(path))
        if path.is_dir():
            raise InputError(path, "exists and is a directory")
        if path.exists() and not force:
            raise InputError(path, "already exists; pass --force to overwrite")
        targets.append((path, dump_persona(persona)))
    written: list[Path] = []
    for path, text in targets:
        try:
            atomic_write(path, text)
        except OSError as exc:
            raise InputError(path, f"cannot write: {exc.strerror or exc}") from None
        written.append(path)
    return written
