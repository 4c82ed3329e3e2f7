"""Brief-answer personas (Priya, Walter) through the real CLI against a loopback model that
talks the way real models do with them: short, hesitant answers and runs of "Yeah." from the
patient, a new reflection and the same stock question from the therapist. The guards must not
mistake that for repetition, and the session ends on its own closing, not as a Repetition Loop.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PERSONAS, invoke
from tests.loopback import RecordedRequest, Reply, completion, serve
from tests.test_openai_e2e import MODEL_FLAGS, role_of, summary_for

QUESTIONS = (
    "Can you tell me a little more about what went through your mind?",
    "What do you think that says about how you see yourself?",
)
REFLECTIONS = (
    "That sounds like it was really uncomfortable.",
    "So you stayed quiet, and afterwards you kept going over it.",
    "Not knowing anyone in the group makes sense as a worry.",
    "It's okay not to know, take your time.",
    "You noticed the thought before you walked in, which matters.",
    "Part of you wanted to go, and part of you wanted to stay safe.",
    "It sounds like the evenings are the hardest part of the week.",
    "You've been carrying a lot of this on your own.",
    "That's an honest answer, and a useful one.",
)
WRAP_UP = "For homework this week, could you notice that thought once a day and jot it down?"
BRIEF = {
    "priya_shah": (
        "Um, yeah.",
        "I don't know.",
        "Sorry, I'm not really sure...",
        "Yeah.",
        "Yeah.",
        "I guess I just didn't want to say something wrong.",
        "I don't know.",
        "Maybe? I guess it's not a big deal.",
        "Mm-hmm.",
        "Um... that people would think I'm weird.",
    ),
    "walter_kowalski": (
        "Yeah. Well.",
        "Karen keeps asking me the same thing. Anyway, where was I?",
        "Yeah.",
        "I don't know. You just get on with it.",
        "Yeah. Well.",
        "The plant closed in ninety-two, and that's the way the ball bounces. But that's neither here nor there.",
        "Yeah.",
        "Dot used to say I'd forget my head. Anyway, where was I?",
        "I don't know.",
        "Some nights I sit up with the TV on. But that's neither here nor there.",
    ),
}


def brief_model(request: RecordedRequest) -> Reply:
    role = role_of(request)
    messages = request.json["messages"]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    persona = "priya_shah" if "Priya" in messages[0]["content"] else "walter_kowalski"
    if role == "summarizer":
        text = summary_for(request)
    elif role == "therapist":
        name = "Priya" if persona == "priya_shah" else "Walter"
        closing = turn >= len(REFLECTIONS)
        text = WRAP_UP if closing else f"{REFLECTIONS[turn]} {QUESTIONS[turn % 2]} {name}?"
        text = text.replace(f"? {name}?", f", {name}?")
    else:
        text = "Okay. Thank you." if WRAP_UP in messages[-1]["content"] else BRIEF[persona][turn - 1]
    return completion(text, model=str(request.json["model"]))


def test_brief_answers_and_stock_questions_end_naturally_with_no_repair(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("max_turns: 30\n", encoding="utf-8")
    personas = [PERSONAS / "priya_shah.yaml", PERSONAS / "walter_kowalski.yaml"]
    with serve(brief_model) as server:
        result = invoke(
            "run", *personas, *MODEL_FLAGS, "--config", config, "--out", tmp_path, "--run-id", "r",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    for persona in ("priya_shah", "walter_kowalski"):
        record = json.loads((tmp_path / "r" / persona / "session_01.json").read_text())
        assert record["termination"]["reason"] == "Natural Session End", record["termination"]
        assert record["termination"]["details"].startswith("Detected closing: Therapist message")
        assert len(record["messages"]) == 2 * len(REFLECTIONS) + 3  # every turn kept, to the closing
        assert [m["flags"] for m in record["messages"][1:] if m["flags"]] == []
    audit = invoke("audit", tmp_path / "r")
    assert audit.exit_code == 0, audit.output
