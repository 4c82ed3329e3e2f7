"""End-phrase detection: the closings it must see, and the look-alikes it must not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator import saferegex
from simulator.backends.offline.therapist import CLOSINGS
from simulator.endings import (
    DEFAULT_PATIENT_END_PHRASES,
    DEFAULT_THERAPIST_END_PHRASES,
    Ending,
    closing_part,
    compile_phrases,
    detect_end,
    end_phrase_span,
    find_end_phrase,
    is_short_farewell,
    wrap_up_cue,
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
        (r"(unclosed", "invalid end phrase '(unclosed': missing ) at position 9"),
        (r"[a-", "invalid end phrase '[a-': unterminated character set at position 3"),
        ("", "invalid end phrase '': it matches the empty string, so every message would end the session"),
        (
            r"(?:bye)?",
            "invalid end phrase '(?:bye)?': it matches the empty string, so every message would end the session",
        ),
        (
            r"(bye)?",
            "invalid end phrase '(bye)?': it matches the empty string, so every message would end the session",
        ),
        (
            r"(.|\w)+#",
            "unsafe end phrase '(.|\\w)+#': a repetition over alternatives that can start with the same "
            "character can backtrack catastrophically; make the alternatives distinct",
        ),
        (
            r"(\w+\s?)+$",
            "unsafe end phrase '(\\w+\\s?)+$': a repetition inside a repetition can backtrack "
            "catastrophically; make the inner one bounded",
        ),
        (
            r"(a|a)+b",
            "unsafe end phrase '(a|a)+b': a test match on a 501-character string did not finish in 0.2 s",
        ),
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


# ---- closings people actually use (issue 9) ------------------------------------------------------

MIDDLE: list[tuple[str, str]] = [
    ("Patient", "Hi, I'm Marcus Thompson. This is my 3rd CBT session."),
    ("Therapist", "Welcome back, Marcus. What would you like to focus on today?"),
    ("Patient", "Mostly the marking. I stay late every night and still feel behind."),
    ("Therapist", "That sounds exhausting. When did you last notice the pressure building?"),
    ("Patient", "On Sunday evening, actually. I sat with a pile of essays and felt sick."),
    ("Therapist", "What went through your mind as you sat there with the pile?"),
    ("Patient", "That I'm failing them. That a good teacher would be done by now."),
    ("Therapist", "How strongly do you believe that right now, from 0 to 100?"),
    ("Patient", "About ninety, if I'm honest. It feels like a fact."),
]
"""Nine messages of an ordinary session: past min_turns, nowhere near max_turns."""
DEFAULTS = {"Therapist": THERAPIST, "Patient": PATIENT}


def ends(*messages: tuple[str, str], wrap_up_from: int | None = None) -> Ending | None:
    return detect_end([*MIDDLE, *messages], DEFAULTS, min_turns=8, wrap_up_from=wrap_up_from)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for coming in today.",
        "Thank you so much for coming in today, Marcus.",
        "Okay. Bye.",
        "Bye-bye.",
        "Great work. I'll see you in two weeks.",
        "Excellent. See you on Thursday.",
        "Okay, great. See you next time.",
        "Same time next week?",
        "So, same time next week then.",
        "Good luck, and I wish you the very best.",
    ],
)
def test_therapist_closings_people_use(text: str) -> None:
    ending = ends(("Therapist", text))
    assert ending is not None and ending.index == len(MIDDLE) and ending.phrase is not None, text


def test_a_bare_thanks_from_the_therapist_is_not_a_closing() -> None:
    # It is one as the patient's answer to a wrap-up (the two-message rule); from the therapist
    # mid-session it acknowledges what was said.
    assert ends(("Therapist", "Thank you.")) is None


LOOK_ALIKES: list[tuple[str, str]] = [
    # thanks and appreciation for something said
    ("Therapist", "Thank you for sharing that."),
    ("Therapist", "I appreciate you telling me. That can't have been easy to say."),
    ("Therapist", "Thank you for being so honest with me about the drinking."),
    ("Therapist", "Thanks for trusting me with that. Let's stay with it for a moment."),
    ("Patient", "Thanks. What should I do if it happens again?"),
    ("Patient", "Thank you, that actually helps me see it differently."),
    ("Patient", "Thanks, but I'm not sure I believe it yet."),
    # openings and the word 'see'
    (
        "Therapist",
        "Thanks for coming in today. I know it wasn't easy to make the call. Where shall we start?",
    ),
    ("Therapist", "See, you're already doing it. You caught the thought before it ran away with you."),
    ("Therapist", "You'll see, you're more capable than that voice tells you."),
    ("Patient", "I'll see you-know-who at the parents' evening on Thursday, which I'm dreading."),
    ("Patient", "When I see your face I remember what we said last week."),
    # goodbyes to something else
    ("Patient", "It's like saying bye-bye to the old habit, and I'm not ready."),
    ("Patient", "I said goodbye to my old habits, honestly."),
    ("Therapist", "What would it mean to say goodbye to that rule?"),
    ("Patient", "My mum waved bye from the window and I felt guilty all the way to school."),
    # homework, plans and the future mid-session
    ("Therapist", "Before you go home tonight, try writing down one thing you did well."),
    ("Therapist", "Next week at school, when the pile builds up, what could you tell yourself?"),
    ("Therapist", "When I see you next week, I'd like to hear how the letter went. What will you write?"),
    ("Therapist", "Let's plan how you'll take care of that report. What's the first step?"),
    ("Patient", "I need to take care of my mom this weekend."),
    ("Therapist", "Take care of yourself this week."),
    # time and ending as topics
    ("Patient", "Time is up for me every night by ten, there's just no more of me left."),
    ("Therapist", "Our time together is for you. What feels most important to bring today?"),
    ("Patient", "I wish I could just stop here and never think about the marking again."),
    ("Therapist", "It sounds like you wish the day would end before the guilt starts."),
    ("Patient", "My only goal is to have a good week at work for once."),
    ("Patient", "Good luck with that, my sister says, every time I mention boundaries."),
]
"""Mid-session messages that look like closings and must not end a session (at least 25)."""


@pytest.mark.parametrize(("speaker", "text"), LOOK_ALIKES)
def test_mid_session_look_alikes_do_not_end_the_session(speaker: str, text: str) -> None:
    assert ends((speaker, text)) is None, text


def test_look_alike_table_is_large_enough() -> None:
    assert len(LOOK_ALIKES) >= 25


@pytest.mark.parametrize(
    ("cue", "reply"),
    [
        ("For homework, could you write the letter before our next session?", "Yes. Thank you."),
        ("We're almost out of time, so let's stop here for today.", "Okay, thanks Nova."),
        ("To sum up, we looked at the evidence and wrote a balanced thought.", "Thank you so much."),
        ("Let's leave it there for today. You did good work.", "Thanks. See you."),
        ("So, same time next week, and keep the note with you.", "Sounds good, thank you."),
    ],
)
def test_two_message_rule_short_thanks_after_a_wrap_up(cue: str, reply: str) -> None:
    ending = ends(("Therapist", cue), ("Patient", reply))
    assert ending is not None
    assert ending.index == len(MIDDLE) + 1 and ending.cue_index == len(MIDDLE)
    assert ending.details.startswith(f"Detected closing: Therapist message {len(MIDDLE)} wrapped up ('")
    assert f'Patient message {len(MIDDLE) + 1} closed it: "{reply}"' in ending.details


@pytest.mark.parametrize(
    ("cue", "reply"),
    [
        # no wrap-up cue: a thanks for a compliment
        ("You've done a lot of hard work on this, Marcus.", "Thank you."),
        ("That was a brave thing to notice.", "Thanks."),
        # a cue, but the reply is not a short farewell
        ("For homework, could you write the letter?", "Thanks, but I don't think I can write it yet."),
        (
            "For homework, could you write the letter?",
            "Thank you. Can I ask something about the letter first?",
        ),
        ("Let's stop here for today.", "Okay. Actually, there's something I haven't told you about my mum."),
        (
            "To sum up, we covered a lot today.",
            "Thank you for listening to all that, it's been a heavy week for me.",
        ),
    ],
)
def test_two_message_rule_needs_both_halves(cue: str, reply: str) -> None:
    assert ends(("Therapist", cue), ("Patient", reply)) is None


def test_the_wrap_up_note_counts_as_a_cue() -> None:
    plain = ("Therapist", "You noticed the thought and answered it. That matters.")
    assert ends(plain, ("Patient", "Thank you.")) is None
    ending = ends(plain, ("Patient", "Thank you."), wrap_up_from=len(MIDDLE))
    assert ending is not None and "('the wrap-up note')" in ending.details


def test_nothing_ends_before_min_turns() -> None:
    opening = [("Patient", "Hi, I'm Marcus."), ("Therapist", "Thanks for coming in today.")]
    assert detect_end(opening, DEFAULTS, min_turns=8) is None
    assert detect_end(opening, DEFAULTS, min_turns=2) is not None


@pytest.mark.parametrize("text", ["Thank you.", "Okay, bye!", "Thanks, see you then.", "You too. Take care."])
def test_short_farewells(text: str) -> None:
    assert is_short_farewell(text)


@pytest.mark.parametrize(
    "text",
    ["Thank you?", "Thanks, but no.", "Thanks to you I slept.", "Okay.", "Thank you for asking, really."],
)
def test_not_short_farewells(text: str) -> None:
    assert not is_short_farewell(text)


@pytest.mark.parametrize(
    "text",
    [
        "Okay, for homework I'd like you to keep the thought record.",
        "We're running out of time.",
        "Let's stop here.",
        "To summarise, you named the rule and tested it.",
        "We covered a lot today.",
        "Same time next week?",
    ],
)
def test_wrap_up_cues(text: str) -> None:
    assert wrap_up_cue(text) is not None


@pytest.mark.parametrize(
    "text",
    ["How was your week?", "What did you notice about the homework last time?", "Tell me about Sunday."],
)
def test_not_wrap_up_cues(text: str) -> None:
    assert wrap_up_cue(text) is None


def test_an_end_phrase_that_runs_out_of_time_is_no_match(monkeypatch: pytest.MonkeyPatch) -> None:
    (slow,) = compile_phrases([r"\bbye\b"])
    monkeypatch.setattr(saferegex, "MATCH_TIMEOUT_S", 0.0)
    assert find_end_phrase("Okay. Bye.", [slow]) is None
    monkeypatch.undo()
    assert find_end_phrase("Okay. Bye.", [slow]) == r"\bbye\b"


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


def test_the_two_message_rule_can_be_turned_off() -> None:
    cue, reply = ("Therapist", "For homework, could you write the letter?"), ("Patient", "Thank you.")
    assert ends(cue, reply) is not None
    assert detect_end([*MIDDLE, cue, reply], DEFAULTS, min_turns=8, after_wrap_up=False) is None


def test_end_phrase_span_reads_back_what_the_detector_wrote() -> None:
    """The details the detector writes name the phrase; the span points at it in the message,
    curly apostrophes read as the detector reads them."""
    text = "Good work today, Marcus. Don’t hesitate to reach out if you need anything."
    phrases = {"Therapist": compile_phrases(DEFAULT_THERAPIST_END_PHRASES)}
    ending = detect_end([("Patient", "Hi."), ("Therapist", text)], phrases, min_turns=1)
    assert ending is not None
    span = end_phrase_span(ending.details, text)
    assert span is not None and text[span[0] : span[1]] == "Don’t hesitate to reach out"


def test_end_phrase_span_refuses_what_the_detector_would_refuse() -> None:
    """Details from a damaged or hand-edited record never run an unsafe pattern on the text,
    and details of the two-message rule name no phrase."""
    assert end_phrase_span("Detected end phrase: '(.|\\w)+#'", "x" * 5000) is None
    assert end_phrase_span("Detected closing: Therapist message 3 wrapped up ('homework')", "Thanks.") is None
