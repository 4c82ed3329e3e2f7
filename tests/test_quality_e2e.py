"""Quality end to end: the reference session's five defects, each from its own text, and a
2-session series through the real CLI against a loopback model that truncates and repeats."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from simulator.config import DEFAULT_CONTINUE_NOTE, DEFAULT_REPETITION_NUDGE, DEFAULT_WRAP_UP_NOTE, RunConfig
from simulator.guards import DEFAULT_REPETITION_THRESHOLD, similarity
from simulator.message_layout import merge_note, spoken
from simulator.personas import Patient
from simulator.plan import load_plan
from simulator.protocol import ChatReply, Usage
from simulator.records import SessionRecord
from simulator.session import Scene, SessionPrompts, run_session
from simulator.summary import SUMMARY_SECTIONS, clean_summary
from simulator.templates import Templates
from simulator.text import ends_mid_sentence
from simulator.transcript import format_transcript
from tests.conftest import MARCUS, REPO, FakeBackend, invoke
from tests.loopback import RecordedRequest, Reply, completion, serve

REFERENCE = (Path(__file__).parent / "data" / "reference_session_08.txt").read_text(encoding="utf-8")
_BODY, _, _SUMMARY_PART = REFERENCE.partition("\n\n\nTermination Details:")
_PARTS = re.split(r"\n\n(Patient|Therapist): ", _BODY)
MESSAGES = list(zip(_PARTS[1::2], _PARTS[2::2], strict=True))
THERAPIST = [text for speaker, text in MESSAGES if speaker == "Therapist"]
PATIENT = [text for speaker, text in MESSAGES if speaker == "Patient"]
OPENING = PATIENT[0]
SESSION_7_SUMMARY = OPENING.split("Last time we talked about: ", 1)[1]
SESSION_8_SUMMARY = _SUMMARY_PART.split("\n\n\nSession Summary:\n\n", 1)[1]
TRUNCATED = PATIENT[4]
FIRST_CLOSING, REPEATED_CLOSING = THERAPIST[5], THERAPIST[6]
META = "This conversation has been a CBT session between a therapist (me) and a patient (Marcus Thompson)."
REACH_OUT = "Detected end phrase: '\\bdon't hesitate to reach out\\b'"


def test_reference_is_sliced_as_expected() -> None:
    assert len(MESSAGES) == 14
    assert TRUNCATED.endswith("even when I'm not meeting my")
    assert FIRST_CLOSING.startswith("It sounds like we've had a very productive session, Marcus.")
    assert REPEATED_CLOSING.startswith("It sounds like we've had a very productive session, Marcus.")
    assert META in REPEATED_CLOSING
    assert SESSION_7_SUMMARY.startswith("Session Summary:\n\nHere's a concise summary of Session 7:")
    assert SESSION_8_SUMMARY.startswith("Session Summary:\n\nMain Topics Discussed:")


# ---- the reference session, replayed through the turn loop ---------------------------------------


def reference_plan() -> tuple[Patient, SessionPrompts, Scene, RunConfig]:
    """Session 8 of Marcus with the shipped templates, opened by session 7's summary as the
    reference's own summarizer wrote it (cleaned, as the engine stores summaries)."""
    config = RunConfig(min_turns=8)
    plan = load_plan(config, [MARCUS])
    patient = plan.patient("marcus_thompson")
    previous = clean_summary(SESSION_7_SUMMARY).text
    return patient, plan.prompts(patient, 8, previous), plan.scene(patient, 8, previous), config


def cut(text: str) -> ChatReply:
    return ChatReply(content=text, model="reference-model", finish_reason="length", usage=Usage(900, 300, 0))


async def replay(backend: FakeBackend, config: RunConfig | None = None) -> SessionRecord:
    _, prompts, scene, default = reference_plan()
    return await run_session(scene, prompts, config or default, backend)


def reference_backend(*, continuation: str | ChatReply, closing: str) -> FakeBackend:
    """Answers with the reference's own messages, in order; the truncated one as the model sent
    it (finish_reason "length"), the repeated closing then ``closing`` when asked again."""
    backend = FakeBackend()
    backend.enqueue("therapist", *THERAPIST, closing)
    backend.enqueue("patient", *PATIENT[1:4], cut(TRUNCATED), continuation, *PATIENT[5:])
    backend.enqueue("patient", "Thank you, Nova. See you next week.")
    backend.enqueue("summarizer", SESSION_8_SUMMARY)
    return backend


NEW_CLOSING = (
    "Thank you for your openness today, Marcus. Carry that card with you, and write the letter when "
    "you have a quiet moment this week. I'll see you at our next session, and don't hesitate to reach "
    "out if you need support before then.\n\n" + REPEATED_CLOSING.split("\n\n", 5)[5]
)


async def test_reference_replayed_through_the_loop_comes_out_without_its_defects() -> None:
    backend = reference_backend(
        continuation="own high standards, would take some pressure off.", closing=NEW_CLOSING
    )
    record = await replay(backend)
    text = format_transcript(record)

    # 5. the opening says "8th", and carries session 7's summary without its preamble.
    opening = record.messages[0].content
    assert opening.startswith(
        "Hi, I'm Marcus Thompson. This is my 8th CBT session. Last time we talked about:"
    )
    assert "This is my 8 CBT" not in text and "Here's a concise summary" not in text
    # 1. the truncated message was finished by a continuation.
    patient = [m for m in record.messages if m.speaker == "Patient"]
    assert patient[4].content == TRUNCATED + " own high standards, would take some pressure off."
    assert patient[4].flags == ["truncated_continued"]
    # 2. the repeated closing was not kept; 3. nor the meta paragraph of its replacement.
    therapist = [m for m in record.messages if m.speaker == "Therapist"]
    assert [m.content for m in therapist[:6]] == THERAPIST[:6]
    assert therapist[6].content == NEW_CLOSING.split("\n\n")[0]
    assert therapist[6].flags == ["regenerated_repetition", "meta_commentary_removed"]
    # ... and the session ends as the reference did, with the patient's goodbye after it.
    assert record.termination is not None
    assert (record.termination.reason, record.termination.details) == ("Natural Session End", REACH_OUT)
    assert record.messages[-1].content == "Thank you, Nova. See you next week."
    assert f"Termination Details:\nReason: Natural Session End\nDetails: {REACH_OUT}\n" in text
    # 4. one "Session Summary:" heading, the five canonical sections, no preamble.
    assert text.count("Session Summary:") == 1
    assert record.summary is not None
    assert [line for line in record.summary.splitlines() if line.endswith(":")] == [
        f"{s}:" for s in SUMMARY_SECTIONS
    ]
    assert "summary_heading_deduplicated" in record.summary_flags
    for message in record.messages[1:]:
        assert not ends_mid_sentence(message.content), message.content
    repairs = {flag: n for flag, n in record.flag_counts().items() if flag != "template"}
    assert repairs == {
        "truncated_continued": 1,
        "regenerated_repetition": 1,
        "meta_commentary_removed": 1,
        **dict.fromkeys(record.summary_flags, 1),
    }


async def test_defect_1_truncated_message_is_trimmed_when_the_continuation_is_cut_too() -> None:
    backend = reference_backend(continuation=cut("own high standards, I"), closing=NEW_CLOSING)
    record = await replay(backend)
    message = [m for m in record.messages if m.speaker == "Patient"][4]
    assert message.content.endswith(
        "Compassionate self-inquiry sounds like a good idea. I'm willing to try it."
    )
    assert TRUNCATED.startswith(message.content)
    assert message.flags == ["truncated_continued", "truncated_trimmed"]
    follow = [r for r in backend.requests if r.purpose == "continuation"]
    assert [(m.role, m.content) for m in follow[0].messages[-2:]] == [
        ("assistant", TRUNCATED),
        ("user", merge_note("", DEFAULT_CONTINUE_NOTE)),
    ]


async def test_defect_2_closing_that_keeps_repeating_ends_the_session_as_a_repetition_loop() -> None:
    backend = reference_backend(continuation="own high standards.", closing=REPEATED_CLOSING)
    backend.enqueue("therapist", REPEATED_CLOSING)
    record = await replay(backend)
    assert record.termination is not None
    assert record.termination.reason == "Repetition Loop"
    first_index = next(m.index for m in record.messages if m.content == FIRST_CLOSING)
    assert record.termination.message_index == first_index == 11
    assert record.termination.details.startswith(
        "Therapist message 13 repeated Therapist message 11 (similarity 0."
    )
    assert record.termination.details.endswith(
        "after 2 regenerations, so it was not kept: \"It sounds like we've had a very productive session, "
        "Marcus. I'm impressed…\""
    )
    assert [m.content for m in record.messages].count(FIRST_CLOSING) == 1
    assert len(record.messages) == 13
    nudges = [r.messages[-1].content for r in backend.requests if r.purpose == "regeneration"]
    assert len(nudges) == 2 and all(f"\n\n[{DEFAULT_REPETITION_NUDGE}" in n for n in nudges)


async def test_defect_3_meta_paragraph_is_cut_and_the_goodbye_before_it_still_ends_the_session() -> None:
    backend = FakeBackend()
    backend.enqueue("therapist", *THERAPIST[:5], REPEATED_CLOSING)  # the first closing never said
    backend.enqueue("patient", *PATIENT[1:4], PATIENT[4] + " own high standards.", PATIENT[5])
    record = await replay(backend)
    closing = record.messages[-2]
    assert closing.content == REPEATED_CLOSING.split("\n\nThis conversation has been")[0]
    assert closing.content.endswith(
        "don't hesitate to reach out if you need any support or guidance along the way."
    )
    assert closing.flags == ["meta_commentary_removed"]
    assert record.termination is not None and record.termination.details == REACH_OUT


async def test_defect_4_summaries_lose_their_preamble_and_doubled_heading() -> None:
    previous = clean_summary(SESSION_7_SUMMARY)
    assert previous.text.startswith("Main topics discussed:\n- Marcus's ongoing struggles")
    assert "Here's a concise summary" not in previous.text and "Session Summary" not in previous.text
    assert "The session showed good progress" not in previous.text
    assert {"summary_heading_deduplicated", "summary_preamble_removed"} <= set(previous.flags)
    backend = FakeBackend().enqueue("therapist", NEW_CLOSING).enqueue("summarizer", SESSION_8_SUMMARY)
    record = await replay(backend, RunConfig(min_turns=2))
    assert record.summary is not None and record.summary.startswith("Main topics discussed:\n- Progress")
    assert "Session Summary" not in record.summary
    assert "- Carry and use the reminder note" in record.summary  # numbered homework became bullets
    assert set(record.summary_flags) >= {"summary_heading_deduplicated", "summary_headings_normalized"}
    assert len([r for r in backend.requests if r.role == "summarizer"]) == 1


@pytest.mark.parametrize("templates", [None, REPO / "prompts"], ids=["package-data", "repository"])
def test_defect_5_shipped_opening_says_8th(templates: Path | None) -> None:
    patient, _, _, _ = reference_plan()
    context = {
        "patient": patient,
        "therapist": None,
        "session_number": 8,
        "previous_summary": clean_summary(SESSION_7_SUMMARY).text,
        "session_notes": None,
        "modality": "CBT",
    }
    opening = Templates(templates).render("opening.j2", context)
    assert opening.startswith(
        "Hi, I'm Marcus Thompson. This is my 8th CBT session. Last time we talked about:"
    )
    assert "8 CBT" not in opening
    for number, expected in [(1, "1st"), (2, "2nd"), (3, "3rd"), (11, "11th"), (12, "12th"), (21, "21st")]:
        text = Templates(templates).render("opening.j2", {**context, "session_number": number})
        assert f"This is my {expected} CBT session." in text


# ---- a loopback model with the reference's habits, through the real CLI --------------------------


THERAPIST_LINES = [
    "Good to see you, Marcus. Before we start, how has this week been for you, on a scale from 0 to 10?",
    "A five, with the marking piling up again. What went through your mind on the evenings you stayed late?",
    "You noticed the thought that leaving early would let your students down. How much did you believe it?",
    "Let's test that idea together, the way we would test any theory: on Tuesday you left at five, and the "
    "next morning your class was just as ready as ever, which suggests the thought was more fear than fact. "
    "What would it mean for you if that pattern held for the rest of the term?",
    "That is a kinder way to see it. What small experiment could you try this week to check it again?",
]
CLOSING = (
    "Good work today, Marcus. Leave at five on Tuesday and Thursday, and note what happens the next day. "
    "I'll see you next week, and don't hesitate to reach out if anything comes up before then."
)
CLOSING_META = (
    "This conversation has been a CBT session between a therapist (me) and a patient (Marcus Thompson). "
    "The session covered homework review and a behavioural experiment."
)
PATIENT_LINES = [
    "Honestly, about a five. The marking is piling up again and Mom had a bad week.",
    "That I'd be letting them down, like one early night means I don't care. Compassionate self-inquiry "
    "sounds like a good idea. I'm willing to try it. I think being gentle with myself, even when I'm not "
    "meeting my own high standards, could take some of the pressure off.",
    "Maybe eighty percent at the time. Less now, saying it out loud.",
    "It would mean I could breathe a bit, I guess. I keep waiting for the moment it all falls apart, and "
    "when it doesn't, I tell myself I just got lucky this time around and that next week will be the one "
    "where everything finally catches up with me.",
    "I could leave at five twice and see whether anything bad actually happens.",
]
GOODBYE = "Thanks, Nova. See you next week."
ALTERNATIVES = [
    "I hear how much is on your plate. Which part of this week weighed on you most?",
    "Let's slow down on that for a moment. What did you tell yourself right after the meeting?",
    "That's an important thing to notice, Marcus. Where do you feel it in your body when it happens?",
]
CUT_AT = {"therapist": {3: 0.55}, "patient": {2: 0.75, 4: 0.6}}
"""Turns (counted as the agent sees them) whose reply is cut at this share of its length."""
CUT_TWICE = {"patient": {4}}
"""Turns whose continuation is cut again (so the engine must trim)."""
REPEATS = {2: 1, 4: 2}
"""Therapist turns that repeat the previous therapist message, and how many nudges it takes."""
CLOSE_AT = 5


def _role_of(messages: list[dict[str, Any]]) -> str:
    system = str(messages[0].get("content", ""))
    if system.startswith("You write the clinical notes"):
        return "summarizer"
    return "therapist" if system.startswith("You are Nova") else "patient"


def _has_note(message: dict[str, Any], note: str) -> bool:
    """Whether a message is, or carries, a note starting with ``note``: in the alternating
    layouts notes are merged into the user message, elsewhere they are system messages."""
    content = str(message["content"])
    if message["role"] == "system":
        return content.startswith(note)
    return message["role"] == "user" and f"[{note}" in content


def _cut(text: str, share: float) -> str:
    """A prefix ending inside a sentence, at a word boundary, as a token limit leaves it."""
    end = text.rfind(" ", 0, int(len(text) * share))
    return text[:end]


class ReferenceHabits:
    """A loopback handler that behaves like the model behind the reference session: it runs
    out of tokens mid-sentence, repeats the therapist's previous message until nudged (once or
    twice), closes with "don't hesitate to reach out" followed by narration, and wraps its
    summaries in a preamble and a doubled heading. It continues a cut reply when asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tries: Counter[tuple[str, int]] = Counter()
        self.cuts = 0
        self.repeats_sent = 0
        self.continuations = 0

    def __call__(self, request: RecordedRequest) -> Reply:
        body = request.json
        messages: list[dict[str, Any]] = body["messages"]
        role = _role_of(messages)
        model = str(body.get("model"))
        if role == "summarizer":
            number = int(re.search(r"CBT session (\d+)", messages[0]["content"])[1])  # type: ignore[index]
            return completion(self.summary(number), model=model)
        continuing = _has_note(messages[-1], DEFAULT_CONTINUE_NOTE)
        view = messages[:-2] if continuing else messages
        turn = sum(1 for m in view if m["role"] == "assistant")
        nudged = any(_has_note(m, DEFAULT_REPETITION_NUDGE) for m in view[1:])
        intended = self.intended(role, turn, view, nudged)
        share = CUT_AT.get(role, {}).get(turn)
        with self.lock:
            if continuing:
                self.continuations += 1
                partial = messages[-2]["content"]
                rest = intended[len(partial) :]
                if turn in CUT_TWICE.get(role, set()):
                    return completion(_cut(rest, 0.5), model=model, finish_reason="length")
                return completion(rest, model=model)
            if share is not None and not nudged:
                self.cuts += 1
                return completion(_cut(intended, share), model=model, finish_reason="length")
        return completion(intended, model=model)

    def intended(self, role: str, turn: int, view: list[dict[str, Any]], nudged: bool) -> str:
        """What the model means to say at this turn (before any token limit cuts it)."""
        last_user = spoken(str(view[-1]["content"])) if view[-1]["role"] == "user" else ""
        if role == "patient":
            own_turn = turn - 1  # the opening is the patient's first message
            if "reach out" in last_user:
                return GOODBYE
            return PATIENT_LINES[own_turn % len(PATIENT_LINES)]
        wrap_up = any(_has_note(m, DEFAULT_WRAP_UP_NOTE) for m in view)
        if turn >= CLOSE_AT or wrap_up:
            return f"{CLOSING}\n\n{CLOSING_META}"
        if turn in REPEATS:
            key = (str(view[0]["content"]), turn)
            with self.lock:
                self.tries[key] += 1
                tries = self.tries[key]
            if tries <= REPEATS[turn]:
                self.repeats_sent += 1
                return str([m for m in view if m["role"] == "assistant"][-1]["content"])
            return ALTERNATIVES[turn % len(ALTERNATIVES)]
        return THERAPIST_LINES[turn]

    @staticmethod
    def summary(number: int) -> str:
        return (
            f"Session Summary:\n\nHere's a concise summary of Session {number}:\n\nSession Summary:\n\n"
            f"Main Topics Discussed:\n- Session {number}: marking late and guilt about leaving early\n\n"
            "Techniques/Exercises Introduced:\n- Rating belief in a thought\n- Behavioural experiment\n\n"
            "Helpful/Important Elements:\n- Testing the thought against Tuesday's evidence\n\n"
            "Homework Assigned:\n1. Leave at five on Tuesday and Thursday\n2. Note what happens next day\n\n"
            "Insights/Realizations:\n- The thought is more fear than fact\n\n"
            "The session showed good progress in Marcus's willingness to test his thoughts."
        )


def test_two_sessions_against_a_model_that_truncates_and_repeats(tmp_path: Path) -> None:
    habits = ReferenceHabits()
    config = tmp_path / "run.yaml"
    config.write_text("retry: {initial_wait_s: 0, max_wait_s: 0}\n")
    with serve(habits) as server:
        result = invoke(
            "run", MARCUS, "--sessions", "2", "--model", "loopback-llm", "--config", config,
            "--out", tmp_path, "--run-id", "q",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
        sent = server.requests
    assert result.exit_code == 0, result.stderr
    # The model did misbehave, in both sessions.
    assert habits.cuts == 6 and habits.continuations == 6 and habits.repeats_sent == 6

    run_dir = tmp_path / "q"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["backend"] == "openai" and run["status"] == "complete"
    records = [
        SessionRecord.model_validate_json((run_dir / "marcus_thompson" / f"session_0{n}.json").read_text())
        for n in (1, 2)
    ]
    totals: Counter[str] = Counter()
    for record in records:
        text = (run_dir / "marcus_thompson" / f"session_0{record.session_number}.txt").read_text()
        assert record.status == "complete"
        assert record.termination is not None
        assert (record.termination.reason, record.termination.details) == ("Natural Session End", REACH_OUT)
        # No message stops mid-sentence, and no speaker repeats itself.
        for message in record.messages[1:]:
            assert not ends_mid_sentence(message.content), message.content
            assert message.model == "loopback-llm"
        for speaker in ("Therapist", "Patient"):
            said = [m.content for m in record.messages if m.speaker == speaker]
            for i, later in enumerate(said):
                for earlier in said[:i]:
                    assert similarity(later, earlier) < DEFAULT_REPETITION_THRESHOLD, (earlier, later)
        assert "This conversation has been" not in text and "Here's a concise summary" not in text
        # The repairs are on the messages that needed them.
        flags = {m.index: m.flags for m in record.messages if m.flags}
        assert flags == {
            0: ["template"],
            4: ["truncated_continued"],  # patient turn 2
            5: ["regenerated_repetition"],  # therapist turn 2: one nudge
            7: ["truncated_continued"],  # therapist turn 3
            8: ["truncated_continued", "truncated_trimmed"],  # patient turn 4: cut twice
            9: ["regenerated_repetition", "regenerated_repetition"],  # therapist turn 4: two nudges
            11: ["meta_commentary_removed"],  # the closing's narration
        }
        assert record.messages[8].content == "It would mean I could breathe a bit, I guess."
        assert record.messages[11].content == CLOSING
        assert record.messages[12].content == GOODBYE
        # The summary: five canonical sections, no preamble, one heading in the transcript.
        assert record.summary is not None
        assert record.summary.startswith(f"Main topics discussed:\n- Session {record.session_number}: ")
        assert [line for line in record.summary.splitlines() if line.endswith(":")] == [
            f"{s}:" for s in SUMMARY_SECTIONS
        ]
        assert {"summary_preamble_removed", "summary_heading_deduplicated"} <= set(record.summary_flags)
        assert text.count("Session Summary:") == 1
        totals.update(record.flag_counts())
    # The chain: session 2 opens with session 1's (clean) summary.
    assert (
        records[1]
        .messages[0]
        .content.startswith("Hi, I'm Marcus Thompson. This is my 2nd CBT session. Last time we talked about:")
    )
    assert records[1].messages[0].content.endswith(records[0].summary or "<none>")
    assert records[1].previous_summary == records[0].summary
    # Session and run totals.
    assert run["flags"] == dict(totals)
    assert run["flags"]["regenerated_repetition"] == 6 and run["flags"]["truncated_continued"] == 6
    for n, record in enumerate(records, start=1):
        assert run["sessions"]["marcus_thompson"][str(n)]["flags"] == sum(record.flag_counts().values())
    # The continuation requests carried the cut reply and the note; nudges reached the model.
    continue_note = merge_note("", DEFAULT_CONTINUE_NOTE)
    continuations = [r for r in sent if r.json["messages"][-1]["content"] == continue_note]
    assert len(continuations) == 6
    assert all(r.json["messages"][-2]["role"] == "assistant" for r in continuations)
    assert all(r.json["messages"][-1]["role"] == "user" for r in continuations)
