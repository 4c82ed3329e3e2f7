"""ConsistentMI motivational-interviewing clients (``patienthub/consistentMI.json``) to MI
patient personas; their second-person descriptions ("You smoke weed...") turned into the first
person."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.importers.common import (
    _invented_name,
    _join,
    _persona,
    _require,
    _text,
    _texts,
    _unmapped,
    make_id,
)

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
