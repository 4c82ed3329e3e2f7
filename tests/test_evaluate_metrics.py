"""Model-free metrics and the judge-answer checks, on small records worked out by hand."""

from __future__ import annotations

import pytest

from simulator.evaluate.answers import answer_schema, parse_json, problems, read_item
from simulator.evaluate.evidence import Haystack
from simulator.evaluate.metrics import distinct, session_metrics
from simulator.evaluate.rubrics import load_rubrics
from simulator.records import Message, SessionRecord, Termination


def record(*lines: tuple[str, str], reason: str = "Natural Session End") -> SessionRecord:
    messages = [
        Message(speaker=speaker, content=text, index=i, flags=["truncated_continued"] if i == 1 else [])
        for i, (speaker, text) in enumerate(lines)
    ]
    return SessionRecord(
        session_number=2,
        persona_id="p",
        therapist_id="t",
        previous_summary=None,
        messages=messages,
        termination=Termination(reason=reason, details="d"),
        backend="offline",
        started_at="now",
        status="complete",
    )


def test_session_metrics_by_hand() -> None:
    metrics = session_metrics(
        record(
            ("Patient", "I feel bad, really bad."),  # 5 words
            ("Therapist", "What happened? Tell me."),  # 4 words, a question
            ("Patient", "Work."),  # 1 word
            ("Therapist", "I see. That sounds hard."),  # 5 words, no question
        )
    )
    assert metrics["messages"] == 4 and metrics["natural_end"] is True
    assert metrics["therapist_question_share"] == 0.5
    assert metrics["therapist_words_per_turn"] == 4.5 and metrics["patient_words_per_turn"] == 3.0
    assert metrics["talk_ratio"] == 9 / 6
    # 15 words; "bad" and "i" come twice, so 13 distinct
    assert metrics["distinct_1"] == 13 / 15
    # 4 + 3 + 0 + 4 = 11 bigrams within messages, all different
    assert metrics["distinct_2"] == 1.0
    assert distinct([["a", "b", "a", "b"]], 2) == 2 / 3
    assert metrics["guard_flags"] == 1 and metrics["guard_flag_counts"] == {"truncated_continued": 1}


def test_sessions_that_did_not_end_naturally_and_empty_sides() -> None:
    metrics = session_metrics(record(("Patient", "Hello there."), reason="Max Turns Reached"))
    assert metrics["natural_end"] is False and metrics["end_reason"] == "Max Turns Reached"
    assert metrics["therapist_question_share"] is None and metrics["talk_ratio"] == 0.0
    assert metrics["therapist_words_per_turn"] is None


def test_evidence_is_verbatim_up_to_whitespace() -> None:
    hay = Haystack("Patient: I stayed until seven\n\ntwice this week.\n\nTherapist: Okay.")
    assert hay.contains("I stayed until   seven twice")
    assert hay.contains("“stayed until seven”")
    assert not hay.contains("I stayed until eight")
    assert not hay.contains("i stayed until seven")  # verbatim: case matters
    assert not hay.contains('""')


def test_a_quote_too_short_to_point_at_anything_is_not_evidence() -> None:
    """ "I" occurs in nearly every session: a score resting on it is flagged, not supported."""
    hay = Haystack("Patient: I procrastinated again. I did it.\n\nTherapist: Okay. Why?")
    assert not hay.contains("I") and not hay.contains("“I”") and not hay.contains("I did")
    assert not hay.contains("Okay.")  # one word, five characters
    assert hay.contains("I did it.")  # three words
    assert hay.contains("procrastinated")  # one word, but 14 characters
    rating = next(i for r in load_rubrics(["ctrs"]) for i in r.spec.items if i.kind == "rating")
    answer = {"score": 4, "rationale": "r", "evidence": ["I"]}
    result = read_item(rating, answer, 0, hay)
    assert result.evidence_found == [False] and result.flags == ["unsupported_evidence"]
    answer["evidence"] = ["I procrastinated again."]
    assert read_item(rating, answer, 0, hay).flags == []


def test_parse_json_tolerates_fences_and_chatter() -> None:
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json('Here it is: {"a": 1} Hope that helps') == {"a": 1}
    with pytest.raises(ValueError):
        parse_json("Great session overall.")


def test_bullet_verdicts_must_cover_every_bullet_once() -> None:
    rubric = {r.name: r for r in load_rubrics(["summary_faithfulness"])}["summary_faithfulness"]
    item = rubric.spec.items[0]
    schema = answer_schema([item], 3)
    hay = Haystack("Patient: we did a thought record")
    verdict = {"label": "supported", "rationale": "r", "evidence": ["a thought record"]}
    good = {"bullets": [{"bullet": n, **verdict} for n in (1, 2, 3)]}
    assert problems(good, schema["properties"][item.id]) == []
    result = read_item(item, good, 3, hay)
    assert result.score == 1.0 and result.flags == []
    twice = {"bullets": [{"bullet": n, **verdict} for n in (1, 1, 3)]}
    with pytest.raises(ValueError, match="exactly once"):
        read_item(item, twice, 3, hay)
    out_of_range = {"bullets": [{"bullet": 4, **verdict}]}
    assert problems(out_of_range, schema["properties"][item.id])
    unsupported = {
        "bullets": [{"bullet": n, **verdict, "label": "unsupported", "evidence": []} for n in (1, 2, 3)]
    }
    result = read_item(item, unsupported, 3, hay)
    assert result.score == 0.0 and result.flags == []  # nothing to quote for what is not there
