"""Guards against the defects of the reference session, and their false positives."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from simulator import guards
from simulator import text as text_module
from simulator.guards import (
    DEFAULT_REPETITION_THRESHOLD,
    check_role,
    find_repeat,
    find_short_loop,
    join_continuation,
    similarity,
)
from simulator.summary import SUMMARY_SECTIONS, clean_summary
from simulator.text import ends_mid_sentence, normalize, split_sentences, trim_to_last_sentence

REFERENCE = (Path(__file__).parent / "data" / "reference_session_08.txt").read_text(encoding="utf-8")
THERAPIST_NAMES = ("Nova", "Marcus Thompson")
PATIENT_NAMES = ("Marcus Thompson", "Nova")


def reference_messages() -> list[tuple[str, str]]:
    """(speaker, text) for every message of the reference session, in order."""
    body = REFERENCE.split("\n\n\nTermination Details:")[0]
    parts = re.split(r"\n\n(Patient|Therapist): ", body)
    return list(zip(parts[1::2], parts[2::2], strict=True))


MESSAGES = reference_messages()
THERAPIST = [text for speaker, text in MESSAGES if speaker == "Therapist"]
PATIENT = [text for speaker, text in MESSAGES if speaker == "Patient"]
TRUNCATED = next(text for text in PATIENT if text.endswith("even when I'm not meeting my"))
REPEATED = THERAPIST[-1]  # the second "It sounds like we've had a very productive session"
META_START = "This conversation has been a CBT session between a therapist (me)"


def test_reference_is_sliced_as_expected() -> None:
    assert len(MESSAGES) == 14
    assert [s for s, _ in MESSAGES] == ["Patient", "Therapist"] * 7
    assert REPEATED.startswith("It sounds like we've had a very productive session, Marcus.")
    assert THERAPIST[-2].startswith("It sounds like we've had a very productive session, Marcus.")


# ---- defect 1: a message cut mid-sentence -------------------------------------------------------


def test_reference_truncated_patient_message_is_detected_and_trimmed() -> None:
    assert ends_mid_sentence(TRUNCATED)
    trimmed = trim_to_last_sentence(TRUNCATED)
    assert trimmed is not None
    assert trimmed.endswith("Compassionate self-inquiry sounds like a good idea. I'm willing to try it.")
    assert TRUNCATED.startswith(trimmed)
    assert not ends_mid_sentence(trimmed)


def test_no_other_reference_message_ends_mid_sentence() -> None:
    complete = [text for text in THERAPIST + PATIENT if text is not TRUNCATED]
    assert len(complete) == 13
    assert not [text[-40:] for text in complete if ends_mid_sentence(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I think being gentle with myself, even when I'm not meeting my", True),
        ("That helps.", False),
        ("Really?", False),
        ("Wow!", False),
        ("I'm not sure…", False),
        ("I'm not sure...", False),
        ('She said, "You did enough."', False),
        ("(That was the hard part.)", False),
        ("That helps. 😊", False),
        ("Thanks! 👍🏽  \n", False),
        ("I made an appointment with Dr.", True),
        ("Here is what I'd suggest:", True),
        ("It was hard—", True),
        ("", False),
        ("   ", False),
    ],
)
def test_ends_mid_sentence(text: str, expected: bool) -> None:
    assert ends_mid_sentence(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I saw Dr. Patel on Monday. She suggested e.g. journaling and", "I saw Dr. Patel on Monday."),
        ("Mr. Lee said it took 2.5 hours. Then we", "Mr. Lee said it took 2.5 hours."),
        ("No. I didn't. Well, maybe", "No. I didn't."),
        ('He asked, "Why?" she said. I', 'He asked, "Why?" she said.'),
        ("We met at 3 p.m. Then the kids came home and", "We met at 3 p.m."),
        (
            "Homework:\n\n1. Write the letter.\n2. Practise daily.\n3. Carry the",
            "Homework:\n\n1. Write the letter.\n2. Practise daily.",
        ),
        ("First paragraph ends here.\n\nSecond one is cut in the mid", "First paragraph ends here."),
        ("Already complete.  ", "Already complete."),
        ("Nothing complete here", None),
        ("I called Dr.", None),
        ("", None),
    ],
)
def test_trim_to_last_sentence(text: str, expected: str | None) -> None:
    assert trim_to_last_sentence(text) == expected


def test_split_sentences_keeps_abbreviations_and_decimals() -> None:
    assert split_sentences(
        "I met Dr. Smith at 3 p.m. Then I left... and came back. It cost 2.50 dollars!"
    ) == [
        "I met Dr. Smith at 3 p.m.",
        "Then I left... and came back.",
        "It cost 2.50 dollars!",
    ]


@pytest.mark.parametrize(
    ("text", "continuation", "expected"),
    [
        (
            "even when I'm not meeting my",
            "own high standards.",
            "even when I'm not meeting my own high standards.",
        ),
        (
            "even when I'm not meeting my",
            " own high standards.",
            "even when I'm not meeting my own high standards.",
        ),
        # the continuation restates the tail
        (
            "being gentle, even when I'm not meeting my",
            "even when I'm not meeting my own standards.",
            "being gentle, even when I'm not meeting my own standards.",
        ),
        (
            "being gentle, even when I'm not meeting my",
            "Meeting my own standards.",
            "being gentle, even when I'm not Meeting my own standards.",
        ),
        # a word cut in half, restated whole or continued as a fragment
        ("to meet my own stan", "my own standards.", "to meet my own standards."),
        ("high standards, my own stan", "dards too.", "high standards, my own standards too."),
        ("I felt", ", honestly, tired.", "I felt, honestly, tired."),
        ("I felt", "\n\nThen I slept.", "I felt\n\nThen I slept."),
        ("We talked.", "Then we left.", "We talked. Then we left."),
        ("I had", "had enough.", "I had had enough."),
        ("It was the end of the", "the week.", "It was the end of the week."),
        ("Unchanged.", "   ", "Unchanged."),
    ],
)
def test_join_continuation(text: str, continuation: str, expected: str) -> None:
    assert join_continuation(text, continuation) == expected


# ---- defect 2: a speaker repeating its own earlier message ---------------------------------------


def test_reference_repeated_therapist_message_is_found() -> None:
    earlier = THERAPIST[:-1]
    assert find_repeat(REPEATED, earlier) == len(earlier) - 1
    cleaned = check_role(REPEATED, "Therapist", THERAPIST_NAMES).text
    assert find_repeat(cleaned, earlier) == len(earlier) - 1
    assert similarity(cleaned, earlier[-1]) >= DEFAULT_REPETITION_THRESHOLD


def test_reference_distinct_turns_are_not_repeats() -> None:
    for speaker_turns in (THERAPIST[:-1], PATIENT):
        for index, text in enumerate(speaker_turns):
            assert find_repeat(text, speaker_turns[:index]) is None, text[:60]
            for other in speaker_turns[:index]:
                assert similarity(text, other) < DEFAULT_REPETITION_THRESHOLD / 1.5


def test_repeat_scores_margin_against_the_threshold() -> None:
    cleaned = check_role(REPEATED, "Therapist", THERAPIST_NAMES).text
    repeat = similarity(cleaned, THERAPIST[-2])
    others = max(similarity(a, b) for i, a in enumerate(THERAPIST[:-1]) for b in THERAPIST[:i])
    assert repeat > DEFAULT_REPETITION_THRESHOLD + 0.1
    assert others < DEFAULT_REPETITION_THRESHOLD - 0.1


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ("Hello, Marcus!", "hello marcus", 1.0, 1.0),
        ("It’s   OK.", "it's ok", 1.0, 1.0),
        ("Thanks.", "I disagree entirely with that.", 0.0, 0.3),
        ("", "", 1.0, 1.0),
        ("", "Something", 0.0, 0.0),
    ],
)
def test_similarity_bounds(a: str, b: str, low: float, high: float) -> None:
    assert low <= similarity(a, b) <= high
    assert similarity(a, b) == similarity(b, a)


def test_stock_sentence_in_a_short_reply_is_not_a_repeat() -> None:
    long_turn = THERAPIST[-2]
    short = "Is there anything else you'd like to discuss or explore before we wrap up today's session?"
    assert short in long_turn
    assert find_repeat(short, [long_turn]) is None


def test_find_repeat_picks_the_most_similar_and_checks_threshold() -> None:
    text = THERAPIST[2]
    reworded = re.sub(r"\byou\b", "one", text)
    assert DEFAULT_REPETITION_THRESHOLD < similarity(text, reworded) < 1.0
    earlier = [THERAPIST[0], reworded, THERAPIST[1], text, text + " Thanks."]
    assert find_repeat(text, earlier) == 3  # the best score, and the first of equals
    assert find_repeat(text, earlier[:3]) == 1
    assert find_repeat(text, []) is None
    with pytest.raises(ValueError):
        find_repeat(text, earlier, 0.0)


def test_normalize() -> None:
    assert normalize("  It’s  GREAT, isn't it?\n") == "its great isnt it"


def test_repetition_check_normalizes_each_message_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard compares every new message with all earlier ones, every turn: each distinct
    text must be normalized once, not once per comparison (what keeps long sessions fast)."""
    turns = THERAPIST + PATIENT
    guards._tokens.cache_clear()
    guards._shingles.cache_clear()
    calls: list[str] = []
    real = text_module.normalize

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(guards, "normalize", counting)
    for _ in range(20):
        for text in turns:
            find_repeat(text + " x", turns)
    assert len(calls) == len(set(turns) | {text + " x" for text in turns})


# ---- defect 3: stepping out of the role ----------------------------------------------------------


def test_reference_meta_paragraph_is_removed_and_the_rest_kept() -> None:
    assert META_START in REPEATED
    result = check_role(REPEATED, "Therapist", THERAPIST_NAMES)
    assert result.flags == ("meta_commentary_removed",)
    assert not result.needs_regeneration
    assert "This conversation has been" not in result.text
    assert "The therapist has also given the patient" not in result.text
    assert "1. Kindness meditation" not in result.text
    assert result.text == REPEATED.split("\n\n" + META_START)[0].strip()
    assert result.text.endswith(
        "don't hesitate to reach out if you need any support or guidance along the way."
    )


def test_reference_in_role_messages_are_untouched() -> None:
    for speaker, text in MESSAGES[1:-1]:
        names = THERAPIST_NAMES if speaker == "Therapist" else PATIENT_NAMES
        result = check_role(text, speaker, names)  # type: ignore[arg-type]
        assert result.flags == (), text[:60]
        assert result.text == text.strip()


@pytest.mark.parametrize(
    ("text", "text_after", "flags"),
    [
        ("Therapist: Hello Marcus. How are you?", "Hello Marcus. How are you?", ("role_label_stripped",)),
        ("Nova: Hello Marcus.", "Hello Marcus.", ("role_label_stripped",)),
        ("**Therapist:** Hello.", "Hello.", ("role_label_stripped",)),
        (
            "How was your week?\n\nPatient: It was fine.\n\nTherapist: Good.",
            "How was your week?",
            ("other_speaker_cut",),
        ),
        ("How was your week?\nMarcus: It was fine.", "How was your week?", ("other_speaker_cut",)),
        ("How was your week? Patient: Fine.", "How was your week?", ("other_speaker_cut",)),
        (
            "As an AI language model, I can't feel emotions.\n\nLet's look at your week.",
            "Let's look at your week.",
            ("meta_commentary_removed",),
        ),
        (
            "In this simulated session, I will play the therapist.\n\nHi Marcus.",
            "Hi Marcus.",
            ("meta_commentary_removed",),
        ),
        ("Good work today.\n\n[Session ends]", "Good work today.", ("meta_commentary_removed",)),
        ("Good work today.\n\n(end of session)", "Good work today.", ("meta_commentary_removed",)),
        ("Take care.\n\n*End of session*\n\nNotes: ...", "Take care.", ("meta_commentary_removed",)),
        ("*smiles warmly* Welcome back, Marcus.", "Welcome back, Marcus.", ("stage_direction_removed",)),
        ("Welcome back. [pauses] How was it?", "Welcome back. How was it?", ("stage_direction_removed",)),
        (
            "That's great. (nods) Let's continue.",
            "That's great. Let's continue.",
            ("stage_direction_removed",),
        ),
        ("I *really* appreciate your effort.", "I *really* appreciate your effort.", ()),
        ("**Homework:** write the letter.", "**Homework:** write the letter.", ()),
        ("Remember this, Marcus: you are enough.", "Remember this, Marcus: you are enough.", ()),
    ],
)
def test_check_role_therapist(text: str, text_after: str, flags: tuple[str, ...]) -> None:
    result = check_role(text, "Therapist", THERAPIST_NAMES)
    assert (result.text, result.flags, result.needs_regeneration) == (text_after, flags, False)


@pytest.mark.parametrize(
    "text",
    [
        "I had a conversation with my mum about it.",
        "The session last week helped a lot.",
        "This session has been really helpful for me.",
        "Our conversation was a turning point, honestly.",
        "The therapist I had before said the patient always knows best.",
        "I'm not a real teacher some days, or that's how it feels.",
        "I tried the role-play exercise with my sister.",
        "My therapist: she was the first one I told.",
        "My mom said, (and I quote) you're doing enough.",
        "I wrote it down [in my journal] like you said.",
    ],
)
def test_check_role_patient_false_positives(text: str) -> None:
    result = check_role(text, "Patient", PATIENT_NAMES)
    if "[" in text:  # square brackets are always treated as stage directions
        assert result.flags == ("stage_direction_removed",)
        return
    assert result == type(result)(text, (), False)


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("", ("empty",)),
        ("   \n ", ("empty",)),
        ("Patient: I feel bad.", ("other_speaker_cut", "empty")),
        ("Therapist:", ("role_label_stripped", "empty")),
        ("[Session ends]", ("meta_commentary_removed", "empty")),
    ],
)
def test_check_role_empty_needs_regeneration(text: str, flags: tuple[str, ...]) -> None:
    result = check_role(text, "Therapist", THERAPIST_NAMES)
    assert result.needs_regeneration
    assert result.text == ""
    assert result.flags == flags


def test_check_role_patient_labels() -> None:
    assert check_role("Marcus: Hi Nova.", "Patient", PATIENT_NAMES).text == "Hi Nova."
    cut = check_role("Hi.\nNova: Great! How are you?", "Patient", PATIENT_NAMES)
    assert (cut.text, cut.flags) == ("Hi.", ("other_speaker_cut",))
    cut = check_role("Hi.\n\nTherapist (Nova): Great!", "Patient", PATIENT_NAMES)
    assert (cut.text, cut.flags) == ("Hi.", ("other_speaker_cut",))


# ---- defect 4: summary preamble and doubled heading ----------------------------------------------


def canonical(text: str) -> bool:
    """Exactly the five sections, in order, as 'Heading:' lines with '- ' bullets."""
    blocks = text.split("\n\n")
    if [b.split("\n")[0] for b in blocks] != [f"{s}:" for s in SUMMARY_SECTIONS]:
        return False
    return all(line.startswith("- ") and len(line) > 2 for b in blocks for line in b.split("\n")[1:])


def test_reference_opening_summary_is_cleaned() -> None:
    raw = MESSAGES[0][1].split("Last time we talked about: ", 1)[1]
    assert raw.startswith("Session Summary:\n\nHere's a concise summary of Session 7:")
    result = clean_summary(raw)
    assert result.ok and result.missing == () and not result.out_of_order
    assert set(result.flags) == {
        "summary_heading_deduplicated",
        "summary_preamble_removed",
        "summary_trailing_text_removed",
    }
    assert canonical(result.text)
    assert "Session Summary" not in result.text
    assert "concise summary" not in result.text
    assert "The session showed good progress" not in result.text
    assert result.text.endswith("- Awareness of how critical self-talk impacts mental well-being")
    assert "- Kindness meditation exercise\n- Self-compassion practice" in result.text


def test_reference_final_summary_is_cleaned() -> None:
    raw = REFERENCE.split("\n\nSession Summary:\n\n", 1)[1]
    assert raw.startswith("Session Summary:\n\nMain Topics Discussed:")
    result = clean_summary(raw)
    assert result.ok and not result.out_of_order
    assert set(result.flags) == {
        "summary_heading_deduplicated",
        "summary_headings_normalized",
        "summary_bullets_normalized",
    }
    assert canonical(result.text)
    assert "Helpful/Important Elements" not in result.text
    assert "Homework assigned:\n- Continue modified kindness meditation practice\n" in result.text
    assert "- Carry and use the reminder note\n\nInsights/realizations:" in result.text
    assert result.text.count("\n- ") == 21


def test_clean_summary_is_idempotent_on_reference() -> None:
    cleaned = clean_summary(REFERENCE.split("\n\nSession Summary:\n\n", 1)[1]).text
    again = clean_summary(cleaned)
    assert again.text == cleaned
    assert again.flags == ()


MESSY = """Sure! Here is the summary you asked for.

## Session Summary

**Main Topics Discussed:**
* Work stress
* Sleep

### Key Insights
• He notices the critical voice sooner
- It is not the whole truth

Exercises:
1) Thought record
2) Breathing
   for four counts

**Homework:** Write a self-compassion letter

What appeared helpful:
– Humour

Overall, a productive session. Let me know if you need anything else!"""


def test_clean_summary_handles_markdown_variants_and_order() -> None:
    result = clean_summary(MESSY)
    assert result.out_of_order and result.ok
    assert set(result.flags) == {
        "summary_preamble_removed",
        "summary_heading_deduplicated",
        "summary_headings_normalized",
        "summary_bullets_normalized",
        "summary_sections_reordered",
        "summary_trailing_text_removed",
    }
    assert result.text == (
        "Main topics discussed:\n- Work stress\n- Sleep\n\n"
        "Techniques/exercises introduced:\n- Thought record\n- Breathing for four counts\n\n"
        "Things that appeared helpful:\n- Humour\n\n"
        "Homework assigned:\n- Write a self-compassion letter\n\n"
        "Insights/realizations:\n- He notices the critical voice sooner\n- It is not the whole truth"
    )


@pytest.mark.parametrize(
    ("heading", "name"),
    [
        ("Main Topics Discussed:", "Main topics discussed"),
        ("**Topics covered**", "Main topics discussed"),
        ("Techniques Introduced:", "Techniques/exercises introduced"),
        ("Techniques and exercises:", "Techniques/exercises introduced"),
        ("Helpful/Important Elements:", "Things that appeared helpful"),
        ("What appeared helpful:", "Things that appeared helpful"),
        ("Things that seemed helpful:", "Things that appeared helpful"),
        ("Homework:", "Homework assigned"),
        ("## Homework Assignments", "Homework assigned"),
        ("Insights:", "Insights/realizations"),
        ("Key insights:", "Insights/realizations"),
        ("Insights and Realisations:", "Insights/realizations"),
        ("3. Homework assigned:", "Homework assigned"),
    ],
)
def test_summary_heading_variants(heading: str, name: str) -> None:
    result = clean_summary(f"{heading}\n- item")
    assert result.text == f"{name}:\n- item"
    assert name not in result.missing
    assert "summary_headings_normalized" in result.flags


def test_clean_summary_reports_missing_sections() -> None:
    result = clean_summary(
        "Main topics discussed:\n- Sleep\n\nHomework assigned:\n\nInsights:\n- Rest matters"
    )
    assert not result.ok
    assert result.missing == (
        "Techniques/exercises introduced",
        "Things that appeared helpful",
        "Homework assigned",
    )
    assert result.text == "Main topics discussed:\n- Sleep\n\nInsights/realizations:\n- Rest matters"


def test_clean_summary_without_sections_is_left_alone() -> None:
    result = clean_summary("  The model refused to summarise.  ")
    assert result.text == "The model refused to summarise."
    assert result.missing == SUMMARY_SECTIONS
    assert result.flags == () and not result.ok


def test_clean_summary_inline_and_bulleted_items_stay_in_their_section() -> None:
    text = (
        "Main topics discussed:\n- Homework: he skipped it\n\nTechniques/exercises introduced:\n- None\n\n"
        "Things that appeared helpful:\n- Humour\n\nHomework assigned: Journal daily\n\n"
        "Insights/realizations:\n- Rest matters"
    )
    result = clean_summary(text)
    assert result.ok
    assert "Main topics discussed:\n- Homework: he skipped it\n\n" in result.text
    assert "Homework assigned:\n- Journal daily\n\n" in result.text


# ---- repetition on natural dialogue (issue 9) -----------------------------------------------------

NATURAL_SHORT_REPLIES = [
    "Yeah.", "Mm-hmm.", "Okay.", "Right.", "Sure.", "Yes.", "No.", "Hmm.", "I don't know.",
    "I guess so.", "Maybe.", "Kind of.", "Not really.", "I think so.", "That's true.", "Exactly.",
    "Yeah, I think so.", "Yeah, that's right.", "Okay, that makes sense.", "I'm not sure.",
    "It's hard to say.", "Sometimes.", "A little bit.", "Yeah, definitely.", "Thank you.", "Thanks.",
    "That helps.", "I can try that.", "I'll give it a go.", "Probably.", "Not yet.", "I hope so.",
    "It was okay.", "About the same.", "Better, I think.", "Worse, honestly.", "Yeah. Yeah.",
    "Mm. Yeah.", "Right, right.", "Oh, okay.", "I see.", "Fair enough.", "That's a good point.",
    "I never thought of it that way.", "Yeah, that's the thing.", "I don't know, really.",
    "Uh-huh.", "Mm.", "Yes, sometimes.", "No, not really.",
]  # fmt: skip
"""Short replies people give again and again in a session; none of them is ever a repeat."""

PARAPHRASES = [
    (
        "I keep telling myself I should have marked the essays on Sunday, and then I feel awful.",
        "On Sunday I told myself again that the essays should have been marked, and I felt awful.",
    ),
    (
        "It sounds like the guilt shows up whenever you take even a little time for yourself.",
        "So whenever you take a bit of time for yourself, the guilt seems to show up right away.",
    ),
    (
        "My mum needs me more since the fall, and I drive over every evening after school now.",
        "Since she fell I go to my mum's every evening straight after school, she needs me more.",
    ),
    (
        "What would you say to a friend who left one essay unmarked over the weekend?",
        "If a friend had left an essay unmarked over the weekend, what would you tell them?",
    ),
]
"""The same point said again in other words, as people do: not a repeat."""


def test_natural_short_replies_are_never_repeats_or_loops() -> None:
    rng = random.Random(9)
    said: list[str] = []
    flagged = 0
    for _ in range(2000):
        reply = rng.choice(NATURAL_SHORT_REPLIES)
        flagged += find_repeat(reply, said) is not None
        said.append(reply)
    assert flagged == 0
    for reply in NATURAL_SHORT_REPLIES:
        assert find_repeat(reply, [reply] * 3) is None, reply


@pytest.mark.parametrize(("first", "second"), PARAPHRASES)
def test_paraphrases_are_not_repeats(first: str, second: str) -> None:
    assert find_repeat(second, [first]) is None


def test_a_long_reply_after_a_short_one_shares_nothing() -> None:
    assert (
        find_repeat("Yeah, I think that's right, because I have always felt it since school.", ["Yeah."])
        is None
    )


def test_verbatim_repeats_of_eight_words_and_more_are_caught() -> None:
    text = "I just feel like I am failing my students."
    assert find_repeat(text, ["Hello there.", text]) == 1
    assert find_repeat(text.upper().replace(".", "!"), [text]) == 0


@pytest.mark.parametrize(
    ("history", "reply", "start"),
    [
        (["I can't explain it."] * 4, "I can't explain it.", 0),
        (["Fine, whatever.", *["I can't explain it."] * 5], "I can't explain it.", 1),
        (["I can't explain it."] * 3, "I can't explain it.", None),  # four in a row: not yet
        (["Yeah."] * 10, "Yeah.", None),  # backchannels never
        (["Mm-hmm."] * 10, "Mm-hmm.", None),
        (["I don't know."] * 10, "I don't know.", None),
        (["I can't explain it."] * 4, "I can't explain it, sorry.", None),
    ],
)
def test_short_loop(history: list[str], reply: str, start: int | None) -> None:
    assert find_short_loop(reply, history) == start
