"""End-phrase detection: the closings it must see, and the look-alikes it must not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.backends.offline.therapist import CLOSINGS
from simulator.endings import (
    DEFAULT_PATIENT_END_PHRASES,
    DEFAULT_THERAPIST_END_PHRASES,
    closing_part,
    compile_phrases,
    find_end_phrase,
)
from simulator.guards import check_role

REFERENCE = (Path(__file__).parent / "data" / "reference_session_08.txt").read_text(encoding="utf-8")
REACH_OUT = r"\bdon't hesitate to reach out\b"
THERAPIST = compile_phrases(DEFAULT_THERAPIST_END_PHRASES)
PATIENT = compile_phrases(DEFAULT_PATIENT_END_PHRASES)


def reference_messages() -> list[tuple[str, str]]:
    """(speaker, text) for every message of the reference session, in order."""
    body = REFERENCE.split("\n\n\nTermination Details:")[0]
    parts = re.split(r"\n\n(Patient|Therapist): ", body)
    return list(zip(parts[1::2], parts[2::2], strict=True))


MESSAGES = reference_messages()
FINAL = MESSAGES[-1][1]


def test_defaults_include_the_reference_phrase_and_compile() -> None:
    assert REACH_OUT in DEFAULT_THERAPIST_END_PHRASES
    assert len(DEFAULT_THERAPIST_END_PHRASES) >= 5
    assert len(THERAPIST) == len(DEFAULT_THERAPIST_END_PHRASES)
    assert len(PATIENT) == len(DEFAULT_PATIENT_END_PHRASES)


def test_reference_final_message_ends_the_session_once_role_cleaned() -> None:
    cleaned = check_role(FINAL, "Therapist", ("Nova", "Marcus Thompson")).text
    assert find_end_phrase(cleaned, THERAPIST) == REACH_OUT
    assert find_end_phrase(cleaned, compile_phrases([REACH_OUT])) == REACH_OUT


def test_reference_final_message_raw_hides_its_goodbye_behind_the_meta_paragraph() -> None:
    # The detector runs after the role guard: on the raw text the closing part is the meta
    # narration, so nothing is found there.
    assert find_end_phrase(FINAL, THERAPIST) is None


def test_reference_earlier_messages_do_not_end_the_session() -> None:
    for speaker, text in MESSAGES[:-1]:
        patterns = THERAPIST if speaker == "Therapist" else PATIENT
        assert find_end_phrase(text, patterns) is None, text[-80:]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Great work today. Take care, Marcus. See you next week.", DEFAULT_THERAPIST_END_PHRASES[1]),
        ("Great work today. Take care, Marcus.", r"\btake care\b(?! of\b)"),
        ("Good work.\n\nI'll see you at our next session, Marcus.", DEFAULT_THERAPIST_END_PHRASES[1]),
        ("Good work. Until next time, be kind to yourself.", r"\buntil next (?:week|time|session)\b"),
        ("Keep practising, and don’t hesitate to reach out if you need me.", REACH_OUT),
        ("DON'T HESITATE TO REACH OUT.", REACH_OUT),
        ("That's all the time we have for today. Well done.", DEFAULT_THERAPIST_END_PHRASES[5]),
        ("Have a lovely weekend, Marcus.", DEFAULT_THERAPIST_END_PHRASES[4]),
        ("Does that sound okay? Great. See you next week!", DEFAULT_THERAPIST_END_PHRASES[1]),
        ("Thank you. I'm looking forward to our next session.", DEFAULT_THERAPIST_END_PHRASES[6]),
    ],
)
def test_therapist_closings(text: str, expected: str) -> None:
    assert find_end_phrase(text, THERAPIST) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Let's plan how you'll take care of that report. What's the first step?",
        "Make sure you take care of that report first.",
        "This week, try to reach out to your sister.",
        "Don't hesitate to reach out to your sister about this. How does that feel to you?",
        "Please don't hesitate to reach out to your sister.\n\nNow, tell me more about Tuesday. "
        "What happened first? And how did you respond?",
        "See you next week? Actually, before that, what would you like to focus on?",
        "Take care of yourself this week.",
        "Is there anything else you'd like to discuss before we wrap up today's session?",
        "Take care, Marcus, and see you next week.\n\nBefore you go, what is one thing you'll try?",
        "",
    ],
)
def test_therapist_false_positives(text: str) -> None:
    assert find_end_phrase(text, THERAPIST) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks again, Nova. See you next week!", DEFAULT_PATIENT_END_PHRASES[0]),
        ("Okay. Bye for now!", DEFAULT_PATIENT_END_PHRASES[1]),
        ("Thank you again for today.", DEFAULT_PATIENT_END_PHRASES[2]),
        ("I will. Talk to you next time.", DEFAULT_PATIENT_END_PHRASES[3]),
        ("You too. Take care!", DEFAULT_PATIENT_END_PHRASES[6]),
    ],
)
def test_patient_goodbyes(text: str, expected: str) -> None:
    assert find_end_phrase(text, PATIENT) == expected


@pytest.mark.parametrize(
    "text",
    [
        'You said "don\'t hesitate to reach out" and I did. It helped.',
        "You said “don’t hesitate to reach out” and I did.",
        "You said ‘don’t hesitate to reach out’ and I did.",
        "You said 'don't hesitate to reach out' and I did.",
        'Mom always says "take care" when I leave.',
    ],
)
def test_quoted_phrases_do_not_count(text: str) -> None:
    assert find_end_phrase(text, THERAPIST) is None
    unquoted = text.replace('"', "").replace("“", "").replace("”", "").replace("‘", "")
    unquoted = re.sub(r"'(?=don)|(?<=out)['’]", "", unquoted)
    assert find_end_phrase(unquoted, THERAPIST) is not None


@pytest.mark.parametrize(
    "text",
    [
        "I said goodbye to my old habits, honestly.",
        "I need to take care of my mom this weekend.",
        "Thanks. What should I do if it happens again?",
    ],
)
def test_patient_false_positives(text: str) -> None:
    assert find_end_phrase(text, PATIENT) is None


def test_only_the_closing_part_counts() -> None:
    early = "Take care, Marcus. See you next week."
    middle = " ".join(f"Sentence number {n} is about the week." for n in range(4))
    assert find_end_phrase(f"{early} {middle}", THERAPIST) is None
    assert find_end_phrase(f"{early}\n\n{middle}", THERAPIST) is None
    assert find_end_phrase(f"{middle}\n\n{early}", THERAPIST) is not None
    assert closing_part("One. Two. Three. Four. Five.") == "Three. Four. Five."
    assert closing_part("Bye now. Any questions? Good. Bye.") == "Good. Bye."


def test_first_matching_pattern_in_list_order_is_returned() -> None:
    patterns = compile_phrases([r"\bsee you\b", r"\btake care\b"])
    assert find_end_phrase("Take care. See you.", patterns) == r"\bsee you\b"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(unclosed", "invalid end phrase '(unclosed': missing ), unterminated subpattern at position 0"),
        (r"[a-", "invalid end phrase '[a-': unterminated character set at position 0"),
        ("", "invalid end phrase '': matches the empty string, so every message"),
        (r"(?:bye)?", "invalid end phrase '(?:bye)?': matches the empty string, so every message"),
    ],
)
def test_compile_phrases_rejects_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_phrases([r"\bbye\b", pattern])
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_compile_phrases_is_case_insensitive() -> None:
    (pattern,) = compile_phrases([r"\bsee you next week\b"])
    assert pattern.search("SEE YOU NEXT WEEK")


@pytest.mark.parametrize("closing", CLOSINGS)
def test_default_phrases_end_every_offline_closing(closing: str) -> None:
    """The offline therapist closes with its own fixed lines; the detector, with the default
    phrases, must hear each of them as a goodbye, alone and at the end of its closing message."""
    line = closing.format(name="Marcus")
    message = (
        "So it's been a hard week. You worked hard today, Marcus. To sum up: we looked at one of "
        f"those moments closely, found a more balanced way to see it, and you have a plan for the week. {line}"
    )
    assert find_end_phrase(line, THERAPIST) is not None
    assert find_end_phrase(message, THERAPIST) is not None
