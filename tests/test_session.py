"""The turn loop with the queue-driven fake backend: truncation, repetition, role breaks,
endings, the wrap-up note and the summary, as the session record shows them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from simulator.config import DEFAULT_ROLE_NUDGE, GuardSettings, RunConfig
from simulator.errors import BackendError, ContextOverflow, TemplateRejected
from simulator.personas import Patient, Therapist, load_persona
from simulator.protocol import ChatMessage, ChatReply, ChatRequest, Usage
from simulator.records import SessionRecord
from simulator.session import (
    Scene,
    SessionPrompts,
    extend_reply,
    run_layouts,
    run_session,
    snippet,
)
from simulator.summary import SUMMARY_SECTIONS
from simulator.transcript import transcript_text
from tests.conftest import FIVE_SECTIONS, MARCUS, PERSONAS, FakeBackend

_patient, _therapist = load_persona(MARCUS).persona, load_persona(PERSONAS / "nova.yaml").persona
assert isinstance(_patient, Patient) and isinstance(_therapist, Therapist)
PATIENT: Patient = _patient
THERAPIST: Therapist = _therapist

PROMPTS = SessionPrompts(
    therapist="THERAPIST SYSTEM PROMPT",
    patient="PATIENT SYSTEM PROMPT",
    opening="Hi, I'm Marcus Thompson. This is my 1st CBT session.",
    summarizer="SUMMARIZER PROMPT",
)

THERAPIST_LINES = [
    "Welcome, Marcus. What would you like to focus on today?",
    "That sounds exhausting. When did you last notice the pressure building at school?",
    "So the thought was that one slip means you have failed your students. How strongly do you believe it?",
    "Let's look at the evidence for and against that idea, starting with last Tuesday.",
    "What would you say to a colleague who left one essay unmarked over the weekend?",
    "You sound kinder there. Could we try writing that down as a balanced thought?",
    "How would it feel to leave school at five on two days this week, as an experiment?",
    "Your mother came up twice today; tell me how her fall has changed your evenings.",
    "It makes sense that guilt shows up when caring and teaching both ask so much of you.",
    "Before we plan homework, what has felt most useful so far in our conversation?",
    "Let's pick one small step for the week that you could realistically manage.",
    "I notice you apologised just now. What went on inside as you said that?",
]
PATIENT_LINES = [
    "Mostly the marking. I stay late every night and still feel behind.",
    "On Sunday evening, actually. I sat with a pile of essays and felt sick.",
    "About ninety percent, if I'm honest. It feels like a fact, not a thought.",
    "Well, nobody complained, and the head of year thanked me for the trip.",
    "I'd tell her it's fine and that she's allowed a weekend. Funny, that.",
    "Okay. Something like: one late essay doesn't undo a year of good teaching.",
    "Terrifying, honestly, but I could try Tuesday and Thursday, I suppose.",
    "I drive over after school now, so marking gets pushed to midnight.",
    "Yeah. I never really thought about it as too much, just as what I owe people.",
    "Probably the friend question. It caught me off guard in a good way.",
    "Leaving at five on Tuesday is about as much as I can promise.",
    "Sorry, I mean, I just felt silly for making a fuss about it.",
]
CLOSING = "Good work today, Marcus. See you next week, and don't hesitate to reach out."
GOODBYE = "Thanks, Nova. See you next week."


def distinct_reply(request: ChatRequest) -> str:
    """In-role, complete and mutually distinct messages, so no guard fires by accident."""
    turn = sum(1 for m in request.messages if m.role == "assistant")
    if request.role == "summarizer":
        return FIVE_SECTIONS
    if request.role == "therapist":
        return THERAPIST_LINES[turn % len(THERAPIST_LINES)]
    return PATIENT_LINES[(turn - 1) % len(PATIENT_LINES)]  # the opening is the patient's first


def cut(content: str, finish_reason: str = "length") -> ChatReply:
    return ChatReply(content=content, model="fake-cut", finish_reason=finish_reason, usage=Usage(50, 10, 0))


def config(**overrides: Any) -> RunConfig:
    settings: dict[str, Any] = {"min_turns": 2, "max_turns": 12, "wrap_up_turns": 0}
    settings.update(overrides)
    return RunConfig.model_validate(settings)


def scene(cfg: RunConfig) -> Scene:
    return Scene(
        patient=PATIENT,
        therapist=THERAPIST,
        session_number=1,
        previous_summary=None,
    )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(default=distinct_reply)


async def run(backend: FakeBackend, **overrides: Any) -> SessionRecord:
    cfg = config(**overrides)
    return await run_session(scene(cfg), PROMPTS, cfg, backend)


def requests(backend: FakeBackend, role: str, purpose: str | None = None) -> list[ChatRequest]:
    return [r for r in backend.requests if r.role == role and (purpose is None or r.purpose == purpose)]


def contents(record: SessionRecord) -> list[str]:
    return [m.content for m in record.messages]


# ---- a clean session -----------------------------------------------------------------------------


async def test_clean_session_ends_on_the_therapist_phrase_with_a_patient_goodbye(
    backend: FakeBackend,
) -> None:
    backend.enqueue("therapist", *THERAPIST_LINES[:3], CLOSING)
    backend.enqueue("patient", *PATIENT_LINES[:3], GOODBYE)
    record = await run(backend, min_turns=4)
    assert contents(record) == [
        PROMPTS.opening,
        THERAPIST_LINES[0],
        PATIENT_LINES[0],
        THERAPIST_LINES[1],
        PATIENT_LINES[1],
        THERAPIST_LINES[2],
        PATIENT_LINES[2],
        CLOSING,
        GOODBYE,
    ]
    assert record.status == "complete"
    assert record.termination is not None
    assert record.termination.model_dump() == {
        "reason": "Natural Session End",
        "details": "Detected end phrase: '\\bdon't hesitate to reach out\\b'",
        "message_index": 7,
    }
    assert [m.flags for m in record.messages] == [["template"]] + [[]] * 8
    assert record.summary == FIVE_SECTIONS and record.summary_flags == []
    assert [m.index for m in record.messages] == list(range(9))
    assert record.usage["therapist"].requests == 4 and record.usage["patient"].requests == 4
    # Every agent sees the conversation from its side: its own turns as assistant.
    # Each history starts with a user message: the patient's with the templated start.
    last_patient = requests(backend, "patient")[-1]
    assert [m.role for m in last_patient.messages] == ["system"] + ["user", "assistant"] * 4 + ["user"]
    assert [m.content for m in last_patient.messages[:3]] == [
        PROMPTS.patient,
        PROMPTS.patient_start,
        PROMPTS.opening,
    ]
    first_therapist = requests(backend, "therapist")[0]
    assert [(m.role, m.content) for m in first_therapist.messages] == [
        ("system", PROMPTS.therapist),
        ("user", PROMPTS.opening),
    ]


# ---- 1. truncation --------------------------------------------------------------------------------


async def test_cut_reply_is_continued_with_a_bounded_follow_up(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist", cut("That sounds hard. When did you last feel that way at"), "school, Marcus?"
    )
    record = await run(backend, max_turns=3)
    message = record.messages[1]
    assert message.content == "That sounds hard. When did you last feel that way at school, Marcus?"
    assert message.flags == ["truncated_continued"]
    assert message.usage.requests == 2
    follow = requests(backend, "therapist", "continuation")
    assert len(follow) == 1
    # The follow-up: the same conversation, then the cut reply as the assistant's, then the note.
    first = requests(backend, "therapist")[0]
    assert follow[0].messages[: len(first.messages)] == first.messages
    assert [(m.role, m.content) for m in follow[0].messages[len(first.messages) :]] == [
        ("assistant", "That sounds hard. When did you last feel that way at"),
        ("user", f"[{GuardSettings().continue_note}]"),
    ]


async def test_reply_still_cut_after_continuing_is_trimmed_to_its_last_sentence(backend: FakeBackend) -> None:
    backend.enqueue(
        "patient",
        cut("I tried the meditation twice. It was hard to"),
        cut("stay with it. Some nights I just lay there thinking about the"),
    )
    record = await run(backend, max_turns=3)
    message = record.messages[2]
    assert message.content == "I tried the meditation twice. It was hard to stay with it."
    assert message.flags == ["truncated_continued", "truncated_trimmed"]
    assert message.finish_reason == "length"


async def test_without_continuations_a_cut_reply_is_trimmed(backend: FakeBackend) -> None:
    backend.enqueue("patient", cut("It went okay. I did it on Monday and"))
    record = await run(backend, max_turns=3, guards={"max_continuations": 0})
    assert record.messages[2].content == "It went okay."
    assert record.messages[2].flags == ["truncated_trimmed"]
    assert requests(backend, "patient", "continuation") == []


async def test_continuation_that_restarts_the_reply_replaces_it(backend: FakeBackend) -> None:
    restart = "It went okay this week, mostly. I did the breathing on Monday and Wednesday."
    backend.enqueue("patient", cut("It went okay this week, mostly. I did the breathing on"), restart)
    record = await run(backend, max_turns=3)
    assert record.messages[2].content == restart


async def test_cut_reply_with_no_complete_sentence_is_regenerated(backend: FakeBackend) -> None:
    backend.enqueue("patient", cut("Well, I guess the thing"), cut("about it is"))
    record = await run(backend, max_turns=3)
    assert record.messages[2].content == PATIENT_LINES[0]
    assert record.messages[2].flags == ["regenerated_empty"]


async def test_token_limit_before_any_text_fails_with_the_fix(backend: FakeBackend) -> None:
    backend.enqueue("therapist", cut(""), cut(""), cut(""))
    record = await run(backend, max_turns=3)
    assert record.status == "failed"
    assert record.termination is not None and record.termination.reason == "Error"
    assert record.error == (
        "therapist replies were cut at max_tokens=512 on every attempt; raise roles.therapist.max_tokens "
        "(nothing was written before the limit: a reasoning model can spend it all on thinking)"
    )
    assert contents(record) == [PROMPTS.opening]  # the partial transcript is kept
    assert [(a.purpose, a.finish_reason, a.text) for a in record.attempts] == [
        ("turn", "length", ""),
        ("regeneration", "length", ""),
        ("regeneration", "length", ""),
    ]


async def test_a_tiny_max_tokens_fails_naming_the_limit_and_keeps_what_each_attempt_said(
    backend: FakeBackend,
) -> None:
    """Every attempt is cut mid-sentence, its continuation too, and trims to nothing."""
    for words in ("Well, I", "guess the", "So what", "I mean", "It is", "kind of"):
        backend.enqueue("therapist", cut(words))
    record = await run(backend, max_turns=3, roles={"therapist": {"max_tokens": 8}})
    assert record.status == "failed"
    assert record.error == (
        "therapist replies were cut at max_tokens=8 on every attempt; raise roles.therapist.max_tokens"
    )
    assert [a.text for a in record.attempts] == ["Well, I guess the", "So what I mean", "It is kind of"]
    assert [r.settings.max_tokens for r in backend.requests] == [8] * 6


async def test_empty_or_out_of_role_attempts_keep_the_generic_reason(backend: FakeBackend) -> None:
    backend.enqueue("therapist", "", "As an AI language model, I can't.", "")
    record = await run(backend, max_turns=3)
    assert record.error == "therapist: no usable message after 3 attempts (empty or out of role)"
    assert [a.finish_reason for a in record.attempts] == ["stop"] * 3


async def test_without_a_token_limit_a_cut_reply_is_not_continued(backend: FakeBackend) -> None:
    """With ``max_tokens: null`` a cut means the context is full: resending the reply in a
    continuation cannot fit, so it is trimmed instead."""
    backend.enqueue("therapist", cut("That sounds hard. When did you last feel that way at"))
    record = await run(backend, max_turns=3, roles={"therapist": {"max_tokens": None}})
    assert record.messages[1].content == "That sounds hard."
    assert record.messages[1].flags == ["truncated_trimmed"]
    assert requests(backend, "therapist", "continuation") == []
    assert backend.requests[0].settings.max_tokens is None


async def test_a_continuation_that_overflows_the_context_keeps_the_cut_reply(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist",
        cut("That sounds hard. When did you last feel that way at"),
        ContextOverflow("therapist: the request does not fit the context of 4096 tokens", status=400),
    )
    record = await run(backend, max_turns=3)
    assert record.status == "complete"
    assert record.messages[1].content == "That sounds hard."
    assert record.messages[1].flags == ["truncated_trimmed"]


def test_extend_reply_joins_or_replaces() -> None:
    assert extend_reply("I was not meeting my", "own standards.") == "I was not meeting my own standards."
    assert (
        extend_reply("I was not meeting my", "meeting my own standards.")
        == "I was not meeting my own standards."
    )
    restart = "Compassionate self-inquiry sounds like a good idea to me."
    assert extend_reply("Compassionate self-inquiry sounds like a good", restart) == restart


# ---- 2. repetition --------------------------------------------------------------------------------


async def test_repeated_message_is_regenerated_with_a_nudge(backend: FakeBackend) -> None:
    first = "It sounds like we've made real progress today, Marcus. What will you take away from it?"
    again = "It sounds like we've made real progress today, Marcus! What will you take away from it?"
    backend.enqueue("therapist", first, again, THERAPIST_LINES[5])
    record = await run(backend, max_turns=4)
    assert contents(record)[1:4:2] == [first, THERAPIST_LINES[5]]
    assert record.messages[3].flags == ["regenerated_repetition"]
    assert record.messages[3].usage.requests == 2
    regeneration = requests(backend, "therapist", "regeneration")[0]
    # The nudge rides on the patient's last message, in this request only.
    nudge = regeneration.messages[-1]
    assert nudge.role == "user"
    assert nudge.content.startswith(record.messages[2].content + "\n\n[" + GuardSettings().repetition_nudge)
    assert snippet(first) in nudge.content
    assert all(GuardSettings().repetition_nudge not in m.content for m in record.messages)


async def test_repetition_that_persists_ends_the_session_naming_both_messages(backend: FakeBackend) -> None:
    first = "It sounds like we've had a very productive session, Marcus, and I'm impressed by your work."
    backend.enqueue("therapist", first, first, first, first)
    record = await run(backend, max_turns=8)
    assert contents(record) == [PROMPTS.opening, first, PATIENT_LINES[0]]  # the repeat is not kept
    assert record.termination is not None
    assert record.termination.reason == "Repetition Loop"
    assert record.termination.message_index == 1
    assert record.termination.details == (
        "Therapist message 3 repeated Therapist message 1 (similarity 1.00) after 2 regenerations, "
        "so it was not kept: \"It sounds like we've had a very productive session, Marcus, and I'm…\""
    )
    assert record.status == "complete" and record.summary == FIVE_SECTIONS
    assert len(requests(backend, "therapist", "regeneration")) == 2


async def test_short_replies_are_never_repeats_of_each_other(backend: FakeBackend) -> None:
    backend.enqueue("patient", "Yeah.", "Mm-hmm.", "Yeah.", "Okay.", "Yeah.", "I don't know.", "Yeah.")
    record = await run(backend, max_turns=16)
    patient = [m for m in record.messages[1:] if m.speaker == "Patient"]
    assert [m.content for m in patient] == [
        "Yeah.",
        "Mm-hmm.",
        "Yeah.",
        "Okay.",
        "Yeah.",
        "I don't know.",
        "Yeah.",
    ]
    assert all(m.flags == [] for m in record.messages[1:])


async def test_the_same_short_reply_five_turns_running_is_a_loop(backend: FakeBackend) -> None:
    stuck = "I can't explain it."
    backend.enqueue("patient", stuck, stuck, stuck, stuck, stuck, PATIENT_LINES[1])
    record = await run(backend, max_turns=12)
    patient = [m for m in record.messages[1:] if m.speaker == "Patient"]
    assert [m.content for m in patient] == [stuck] * 4 + [PATIENT_LINES[1]]
    assert [m.flags for m in patient] == [[]] * 4 + [["regenerated_repetition"]]


async def test_backchannels_running_on_are_listening_not_a_loop(backend: FakeBackend) -> None:
    backend.enqueue("patient", *["Mm-hmm."] * 6)
    record = await run(backend, max_turns=14)
    assert [m.content for m in record.messages if m.speaker == "Patient"][1:7] == ["Mm-hmm."] * 6
    assert all(m.flags == [] for m in record.messages[1:])


async def test_a_short_thanks_after_the_wrap_up_ends_the_session_naming_both(backend: FakeBackend) -> None:
    wrap_up = "For homework, could you write the letter before next time? Let's stop here for today."
    backend.enqueue("therapist", THERAPIST_LINES[0], wrap_up)
    backend.enqueue("patient", PATIENT_LINES[0], "Okay. Thank you, Nova.")
    record = await run(backend, min_turns=4)
    assert contents(record)[3:] == [wrap_up, "Okay. Thank you, Nova."]
    assert record.termination is not None
    assert record.termination.reason == "Natural Session End"
    assert record.termination.message_index == 4
    assert record.termination.details == (
        "Detected closing: Therapist message 3 wrapped up ('For homework') and Patient message 4 "
        'closed it: "Okay. Thank you, Nova."'
    )


async def test_a_thanks_after_the_wrap_up_note_ends_the_session(backend: FakeBackend) -> None:
    backend.enqueue("patient", PATIENT_LINES[0], PATIENT_LINES[1], "Thank you, that was helpful.")
    record = await run(backend, min_turns=4, max_turns=12, wrap_up_turns=8)
    assert record.termination is not None and record.termination.message_index == 6
    assert "Therapist message 5 wrapped up ('the wrap-up note')" in record.termination.details


async def test_max_regenerations_bounds_the_attempts(backend: FakeBackend) -> None:
    first = "It sounds like we've had a very productive session, Marcus, and I'm impressed by your work."
    backend.enqueue("therapist", first, first)
    record = await run(backend, max_turns=8, guards={"max_regenerations": 0})
    assert record.termination is not None and record.termination.reason == "Repetition Loop"
    assert "after 0 regenerations" in record.termination.details
    assert requests(backend, "therapist", "regeneration") == []


async def test_a_long_stock_question_around_new_content_is_not_a_repeat(backend: FakeBackend) -> None:
    """What a therapist does with a brief-answer client (Priya, Walter): a new reflection, then
    the same eleven-word question as last time. One stock sentence is not a repeat."""
    question = "Can you tell me a little more about what went through your mind?"
    backend.enqueue(
        "therapist",
        f"That sounds like it was really uncomfortable, Priya. {question}",
        f"Not knowing anyone in the group makes sense as a worry. {question}",
        f"It's okay not to know, take your time. {question}",
    )
    record = await run(backend, max_turns=6)
    therapist = [m for m in record.messages if m.speaker == "Therapist"]
    assert [m.content.endswith(question) for m in therapist] == [True] * 3
    assert all(m.flags == [] for m in record.messages[1:])


async def test_a_reused_stock_question_is_not_a_repeat(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist",
        "Your students clearly matter to you. Tuesday's lesson went badly, you said. How did that feel?",
        "Your mother's fall has added a lot to your evenings, and you have barely slept. How did that feel?",
    )
    record = await run(backend, max_turns=4)
    assert [m.flags for m in record.messages[1:]] == [[], [], []]


async def test_the_other_speakers_words_are_not_a_repeat(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist", "Mostly the marking. I stay late every night and still feel behind, you say?"
    )
    record = await run(backend, max_turns=3)
    assert record.messages[1].flags == []


async def test_patient_repeating_the_opening_is_regenerated(backend: FakeBackend) -> None:
    backend.enqueue("patient", PROMPTS.opening)
    record = await run(backend, max_turns=3)
    assert record.messages[2].content == PATIENT_LINES[0]
    assert record.messages[2].flags == ["regenerated_repetition"]


async def test_repetition_threshold_is_configurable(backend: FakeBackend) -> None:
    first = "Tell me about the marking this week, Marcus. What went through your mind on Sunday night?"
    second = (
        "Tell me about the marking this week, Marcus, and about your mother. "
        "What went through your mind on Sunday night?"
    )  # the whole first message again, around three new words: similarity 0.77
    backend.enqueue("therapist", first, second)
    assert (await run(backend, max_turns=4)).messages[3].flags == ["regenerated_repetition"]
    lenient = FakeBackend(default=distinct_reply).enqueue("therapist", first, second)
    record = await run(lenient, max_turns=4, guards={"repetition_threshold": 0.9})
    assert record.messages[3].content == second and record.messages[3].flags == []


# ---- 3. role breaks -------------------------------------------------------------------------------


async def test_other_speakers_lines_are_cut(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist",
        "That sounds heavy. What happened next?\n\nPatient: Well, I stayed late again.\n\nTherapist: I see.",
    )
    record = await run(backend, max_turns=3)
    assert record.messages[1].content == "That sounds heavy. What happened next?"
    assert record.messages[1].flags == ["other_speaker_cut"]


async def test_own_label_is_stripped(backend: FakeBackend) -> None:
    backend.enqueue("patient", "Marcus: It was a long week, honestly.")
    record = await run(backend, max_turns=3)
    assert record.messages[2].content == "It was a long week, honestly."
    assert record.messages[2].flags == ["role_label_stripped"]


async def test_cut_that_leaves_half_a_sentence_is_trimmed(backend: FakeBackend) -> None:
    backend.enqueue("therapist", "That sounds heavy. I wonder whether\nMarcus: yes, I think so.")
    record = await run(backend, max_turns=3)
    assert record.messages[1].content == "That sounds heavy."
    assert record.messages[1].flags == ["other_speaker_cut", "truncated_trimmed"]


async def test_reply_that_is_all_meta_commentary_is_regenerated_with_a_role_nudge(
    backend: FakeBackend,
) -> None:
    backend.enqueue("therapist", "As an AI language model, I can't provide therapy.")
    record = await run(backend, max_turns=3)
    assert record.messages[1].content == THERAPIST_LINES[0]
    assert record.messages[1].flags == ["regenerated_empty"]
    regeneration = requests(backend, "therapist", "regeneration")[0]
    assert regeneration.messages[-1].content == f"{PROMPTS.opening}\n\n[{DEFAULT_ROLE_NUDGE}]"


async def test_empty_reply_is_regenerated(backend: FakeBackend) -> None:
    backend.enqueue("patient", "", "   ")
    record = await run(backend, max_turns=3)
    assert record.messages[2].content == PATIENT_LINES[0]
    assert record.messages[2].flags == ["regenerated_empty", "regenerated_empty"]


async def test_no_usable_reply_fails_the_session_and_keeps_the_partial_transcript(
    backend: FakeBackend,
) -> None:
    backend.enqueue("patient", "", "", "")
    record = await run(backend, max_turns=6)
    assert record.status == "failed"
    assert contents(record) == [PROMPTS.opening, THERAPIST_LINES[0]]
    assert record.termination is not None
    assert record.termination.model_dump() == {
        "reason": "Error",
        "details": "patient: no usable message after 3 attempts (empty or out of role)",
        "message_index": 1,
    }


# ---- 5. endings -----------------------------------------------------------------------------------


async def test_end_phrase_before_min_turns_does_not_end(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist", "Welcome. Take care of yourself as we go; tell me about your week, and take care."
    )
    record = await run(backend, min_turns=6, max_turns=6)
    assert record.termination is not None and record.termination.reason == "Max Turns Reached"
    early = await run(FakeBackend(default=distinct_reply).enqueue("therapist", CLOSING), min_turns=2)
    assert early.termination is not None and early.termination.reason == "Natural Session End"
    assert early.termination.message_index == 1


async def test_min_turns_counts_the_closing_message(backend: FakeBackend) -> None:
    backend.enqueue("therapist", THERAPIST_LINES[0], CLOSING)
    record = await run(backend, min_turns=4)
    assert record.termination is not None and record.termination.message_index == 3
    assert len(record.messages) == 5  # the closing is message 4 of 4 needed, then the goodbye


async def test_patient_goodbye_is_optional(backend: FakeBackend) -> None:
    backend.enqueue("therapist", CLOSING)
    record = await run(backend, patient_goodbye=False)
    assert contents(record)[-1] == CLOSING and len(record.messages) == 2
    assert requests(backend, "patient") == []


async def test_no_goodbye_past_max_turns(backend: FakeBackend) -> None:
    backend.enqueue("therapist", THERAPIST_LINES[0], CLOSING)
    record = await run(backend, max_turns=4)
    assert contents(record)[-1] == CLOSING
    assert record.termination is not None and record.termination.reason == "Natural Session End"


async def test_goodbye_may_echo_earlier_words_and_is_skipped_when_unusable(backend: FakeBackend) -> None:
    backend.enqueue("patient", GOODBYE)
    backend.enqueue("therapist", THERAPIST_LINES[0], CLOSING)
    backend.enqueue("patient", GOODBYE)  # same as before: still kept, it is a goodbye
    record = await run(backend, min_turns=4)
    assert contents(record)[-1] == GOODBYE and record.messages[-1].flags == []
    skipped = FakeBackend(default=distinct_reply).enqueue("therapist", CLOSING).enqueue("patient", "", "", "")
    record = await run(skipped)
    assert record.status == "complete" and contents(record)[-1] == CLOSING


async def test_patient_end_phrases_are_the_patients_own(backend: FakeBackend) -> None:
    phrases = {"therapist": [r"\bfarewell\b"], "patient": [r"\bciao\b"]}
    backend.enqueue("therapist", "Farewell is a word you used. Ciao?", "Thanks. Farewell, Marcus.")
    backend.enqueue("patient", "Well. Farewell to that idea.", "Okay. Ciao.")
    record = await run(backend, end_phrases=phrases)
    assert record.termination is not None
    assert record.termination.details == "Detected end phrase: '\\bfarewell\\b'"
    assert record.termination.message_index == 3
    patient_ends = FakeBackend(default=distinct_reply).enqueue("patient", "Right. Ciao, then.")
    record = await run(patient_ends, end_phrases=phrases)
    assert record.termination is not None
    assert (record.termination.details, record.termination.message_index) == (
        "Detected end phrase: '\\bciao\\b'",
        2,
    )


@pytest.mark.parametrize(
    "text",
    [
        "Thanks again for listening, that helps. Anyway, the week was rough.",
        "Thank you again, that's helpful. I'll try the thought record.",
        "I need to take care of my mom this weekend, so it's hard to plan.",
    ],
)
async def test_patient_thanks_mid_session_do_not_end_it(backend: FakeBackend, text: str) -> None:
    backend.enqueue("patient", PATIENT_LINES[0], text)
    record = await run(backend, max_turns=6)
    assert record.messages[4].content == text
    assert record.termination is not None and record.termination.reason == "Max Turns Reached"


async def test_end_phrase_is_found_in_the_cleaned_message(backend: FakeBackend) -> None:
    backend.enqueue(
        "therapist",
        "Keep it up, Marcus, and don't hesitate to reach out.\n\n"
        "This conversation has been a CBT session between a therapist (me) and a patient (Marcus).",
    )
    record = await run(backend)
    assert record.messages[1].content == "Keep it up, Marcus, and don't hesitate to reach out."
    assert record.messages[1].flags == ["meta_commentary_removed"]
    assert record.termination is not None and record.termination.reason == "Natural Session End"


async def test_wrap_up_note_reaches_only_the_therapist_near_max_turns(backend: FakeBackend) -> None:
    record = await run(backend, max_turns=10, wrap_up_turns=4)
    assert record.termination is not None and record.termination.model_dump() == {
        "reason": "Max Turns Reached",
        "details": "Reached 10 messages",
        "message_index": 9,
    }
    note = RunConfig().wrap_up_note
    seen = [
        (sum(m.role != "system" for m in r.messages), r.messages[-1].content.endswith(f"\n\n[{note}]"))
        for r in requests(backend, "therapist")
    ]
    # Messages so far (system prompt aside) -> whether the note rode on the last one.
    assert seen == [(1, False), (3, False), (5, False), (7, True), (9, True)]
    assert all(note not in m.content for r in requests(backend, "patient") for m in r.messages)
    assert all(note not in m.content for m in record.messages)


async def test_wrap_up_note_off_when_zero(backend: FakeBackend) -> None:
    await run(backend, max_turns=6, wrap_up_turns=0)
    assert all(m.role != "system" for r in backend.requests if r.role == "therapist" for m in r.messages[1:])


# ---- 4. summary -----------------------------------------------------------------------------------


async def test_summary_preamble_and_doubled_heading_are_removed_and_flagged(backend: FakeBackend) -> None:
    backend.enqueue("therapist", CLOSING)
    backend.enqueue(
        "summarizer",
        "Session Summary:\n\nHere's a concise summary of Session 1:\n\n"
        + FIVE_SECTIONS
        + "\n\nOverall, a productive session.",
    )
    record = await run(backend)
    assert record.summary == FIVE_SECTIONS
    assert record.summary_flags == [
        "summary_heading_deduplicated",
        "summary_preamble_removed",
        "summary_trailing_text_removed",
    ]
    summary_request = requests(backend, "summarizer")[0]
    assert [m.role for m in summary_request.messages] == ["system", "user"]
    assert summary_request.messages[1].content == transcript_text(record.messages)


async def test_summary_missing_sections_is_asked_for_once_more(backend: FakeBackend) -> None:
    partial = "Main topics discussed:\n- Perfectionism\n\nHomework assigned:\n- Thought record"
    backend.enqueue("therapist", CLOSING).enqueue("summarizer", partial, FIVE_SECTIONS)
    record = await run(backend)
    assert record.summary == FIVE_SECTIONS
    assert record.summary_flags == ["summary_regenerated"]
    again = requests(backend, "summarizer")[1]
    assert [m.role for m in again.messages] == ["system", "user", "assistant", "user"]
    assert again.messages[2].content == partial
    assert (
        "Missing or out of order: Techniques/exercises introduced, Things that appeared helpful, "
        "Insights/realizations." in again.messages[3].content
    )


async def test_summary_still_incomplete_keeps_the_better_answer(backend: FakeBackend) -> None:
    better = "Main topics discussed:\n- Perfectionism\n\nHomework assigned:\n- Thought record"
    backend.enqueue("therapist", CLOSING).enqueue("summarizer", better, "I can't summarise this.")
    record = await run(backend)
    assert record.summary == "Main topics discussed:\n- Perfectionism\n\nHomework assigned:\n- Thought record"
    assert record.summary_flags == ["summary_regenerated", "summary_incomplete"]
    assert len(requests(backend, "summarizer")) == 2  # once more, not again and again


async def test_summary_out_of_order_is_reordered_without_asking_again(backend: FakeBackend) -> None:
    blocks = FIVE_SECTIONS.split("\n\n")
    backend.enqueue("therapist", CLOSING).enqueue("summarizer", "\n\n".join(reversed(blocks)))
    record = await run(backend)
    assert record.summary == FIVE_SECTIONS
    assert record.summary_flags == ["summary_sections_reordered"]
    assert [line for line in (record.summary or "").splitlines() if line.endswith(":")] == [
        f"{s}:" for s in SUMMARY_SECTIONS
    ]


async def test_cut_summary_is_continued(backend: FakeBackend) -> None:
    head, tail = FIVE_SECTIONS[:-30], FIVE_SECTIONS[-30:]
    backend.enqueue("therapist", CLOSING).enqueue("summarizer", cut(head), tail)
    record = await run(backend)
    assert record.summary == FIVE_SECTIONS
    assert record.summary_flags == ["summary_truncated_continued"]


async def test_summary_cut_twice_loses_only_its_unfinished_line(backend: FakeBackend) -> None:
    backend.enqueue("therapist", CLOSING).enqueue(
        "summarizer", cut(FIVE_SECTIONS + "\n- Marcus noticed that he"), cut(" rarely")
    )
    record = await run(backend)
    assert record.summary == FIVE_SECTIONS
    assert record.summary_flags == ["summary_truncated_continued", "summary_truncated_trimmed"]


async def test_summary_still_cut_after_retries_ends_at_its_last_complete_bullet(backend: FakeBackend) -> None:
    """A tiny max_tokens: every summary attempt and its continuation are cut."""
    backend.enqueue("therapist", CLOSING).enqueue(
        "summarizer",
        cut("Main topics discussed:\n- Perfectionism at work\n- Avoiding the big "),
        cut("report\n\nTechniques/exercises introduced:\n- Thought rec"),
        cut("Main topics discussed:\n- Perfec"),
        cut("tionism"),
    )
    record = await run(backend, roles={"summarizer": {"max_tokens": 16}})
    assert record.status == "complete"
    assert record.summary == "Main topics discussed:\n- Perfectionism at work\n- Avoiding the big report"
    assert record.summary_flags == [
        "summary_regenerated",
        "summary_truncated_continued",
        "summary_truncated_trimmed",
        "summary_incomplete",
    ]


@pytest.mark.parametrize(
    ("replies", "summary"),
    [
        # One cut line with a heading: nothing complete is left.
        ((cut("Main topics discussed: Perfectionism at wo"), cut("rk and")), None),
        # Prose without sections keeps its whole sentences only.
        (("Marcus spoke about his week. He agreed to try a thought rec",), "Marcus spoke about his week."),
    ],
)
async def test_an_incomplete_summary_is_never_carried_forward_mid_word(
    backend: FakeBackend, replies: tuple[str | ChatReply, ...], summary: str | None
) -> None:
    backend.enqueue("therapist", CLOSING).enqueue("summarizer", *replies, *replies)
    record = await run(backend, guards={"summary_retries": 1, "max_continuations": 1})
    assert record.summary == summary
    assert "summary_incomplete" in record.summary_flags


# ---- errors ---------------------------------------------------------------------------------------


async def test_backend_failure_ends_the_session_with_error(backend: FakeBackend) -> None:
    backend.enqueue("patient", PATIENT_LINES[0], BackendError("patient: server error 500 after 6 attempts"))
    record = await run(backend)
    assert record.status == "failed"
    assert record.error == "patient: server error 500 after 6 attempts"
    assert record.termination is not None
    assert record.termination.model_dump() == {
        "reason": "Error",
        "details": "patient: server error 500 after 6 attempts",
        "message_index": 3,
    }
    assert len(record.messages) == 4 and record.summary is None and record.ended_at is not None


async def test_summarizer_failure_keeps_the_whole_conversation(backend: FakeBackend) -> None:
    backend.enqueue("therapist", CLOSING).enqueue("summarizer", BackendError("summarizer: boom"))
    record = await run(backend)
    assert record.status == "failed" and contents(record)[-2:] == [CLOSING, PATIENT_LINES[0]]
    assert record.termination is not None and record.termination.reason == "Error"


async def test_system_notes_layout_keeps_notes_as_separate_messages(backend: FakeBackend) -> None:
    """The layout of earlier versions: a note is its own ``notes_role`` message, and the
    patient's history starts with its own opening."""
    await run(backend, max_turns=10, wrap_up_turns=4, message_layout="system_notes", notes_role="user")
    note = RunConfig().wrap_up_note
    late = requests(backend, "therapist")[3].messages
    assert late[-1] == ChatMessage("user", note)
    assert requests(backend, "patient")[0].messages[1] == ChatMessage("assistant", PROMPTS.opening)


async def test_a_role_can_have_its_own_layout(backend: FakeBackend) -> None:
    await run(backend, max_turns=4, roles={"patient": {"message_layout": "alternating_no_system"}})
    first = {r.role: r.messages[0].role for r in backend.requests}
    assert first == {"therapist": "system", "patient": "user", "summarizer": "system"}


async def test_a_refused_layout_is_tightened_for_that_role_only(backend: FakeBackend) -> None:
    """The layouts are shared by the run's sessions: a refusal tightens them once, for all."""
    refusal = TemplateRejected("patient: the chat template ... refused the messages' roles (400)", status=400)
    backend.enqueue("patient", refusal)
    changes: list[tuple[str, str, str]] = []
    layouts = run_layouts(config())
    layouts.listeners.append(lambda role, old, new, said: changes.append((role, old, new)))
    cfg = config(max_turns=4)
    await run_session(scene(cfg), PROMPTS, cfg, backend, layouts=layouts)
    assert changes == [("patient", "alternating", "alternating_no_system")]
    assert layouts.current == {
        "therapist": "alternating",
        "patient": "alternating_no_system",
        "summarizer": "alternating",
    }
    patient = requests(backend, "patient")
    assert [r.messages[0].role for r in patient] == ["system", "user"]  # refused, then accepted
    # Nothing is stricter than alternating_no_system: a further refusal fails the session.
    backend.enqueue("patient", refusal)
    record = await run_session(scene(cfg), PROMPTS, cfg, backend, layouts=layouts)
    assert record.status == "failed" and record.error == str(refusal)


@pytest.mark.parametrize("layout", ["alternating", "alternating_no_system"])
async def test_alternating_layouts_alternate_from_a_user_message(backend: FakeBackend, layout: str) -> None:
    backend.enqueue("therapist", cut("That sounds hard. When did you last feel"), "that way?")
    await run(backend, max_turns=10, wrap_up_turns=4, message_layout=layout)
    for request in backend.requests:
        roles = [m.role for m in request.messages]
        body = roles[1:] if layout == "alternating" else roles
        assert roles[0] == ("system" if layout == "alternating" else "user")
        assert "system" not in body
        assert body[0] == "user" and body[-1] == "user"
        assert all(a != b for a, b in itertools.pairwise(body))
    if layout == "alternating_no_system":
        first = requests(backend, "patient")[0].messages[0].content
        assert first == f"{PROMPTS.patient}\n\n{PROMPTS.patient_start}"


async def test_the_default_fake_reply_never_trips_the_repetition_guard() -> None:
    """Tests that rely on the conftest fake's defaults must see a plain Max Turns session."""
    record = await run(FakeBackend(), max_turns=20, wrap_up_turns=0)
    assert record.termination is not None and record.termination.reason == "Max Turns Reached"
    assert not [m.flags for m in record.messages if m.flags and m.flags != ["template"]]
