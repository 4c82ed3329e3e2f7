"""Run folders for the `simulator view` tests, made by the real engine: the offline backend, or
the OpenAI backend against a loopback model with the reference session's habits (it truncates,
repeats itself and narrates), so real guards leave real repairs of several kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.reader import read_run
from tests.conftest import PERSONAS, invoke
from tests.loopback import RecordedRequest, Reply, completion, serve
from tests.test_quality_e2e import (
    ALTERNATIVES,
    CLOSE_AT,
    CLOSING,
    GOODBYE,
    PATIENT_LINES,
    REPEATS,
    THERAPIST_LINES,
    ReferenceHabits,
    _role_of,
)

MARCUS_PRIYA = [PERSONAS / "marcus_thompson.yaml", PERSONAS / "priya_shah.yaml"]


def offline_run(out: Path, personas: list[Path], sessions: int = 2, run_id: str = "r") -> Path:
    result = invoke(
        "run", *personas, "--sessions", str(sessions), "--backend", "offline",
        "--out", out, "--run-id", run_id, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out / run_id


class MixedHabits:
    """The reference habits for every persona but Priya, whose model behaves: it says each line
    whole and once and closes cleanly, so only her summaries need repairs."""

    def __init__(self) -> None:
        self.habits = ReferenceHabits()

    def __call__(self, request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        role = _role_of(messages)
        if role == "summarizer" or "Priya" not in str(messages[0]["content"]):
            return self.habits(request)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if role == "patient":
            last = str(messages[-1]["content"])
            line = GOODBYE if "reach out" in last else PATIENT_LINES[(turn - 1) % len(PATIENT_LINES)]
        elif turn >= CLOSE_AT:
            line = CLOSING
        else:
            line = ALTERNATIVES[turn % len(ALTERNATIVES)] if turn in REPEATS else THERAPIST_LINES[turn]
        return completion(line, model=str(request.json.get("model")))


def habits_run(out: Path, personas: list[Path], sessions: int = 2, run_id: str = "h") -> Path:
    """A complete run whose sessions carry truncation, repetition, narration and summary repairs."""
    config = out / f"{run_id}.yaml"
    config.write_text("retry: {initial_wait_s: 0, max_wait_s: 0}\nconcurrency: 1\n")
    with serve(MixedHabits()) as server:
        result = invoke(
            "run", *personas, "--sessions", str(sessions), "--model", "loopback-llm", "--config", config,
            "--out", out, "--run-id", run_id, "--no-progress", env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out / run_id


def expected_sessions(run_dir: Path) -> dict[str, dict[str, Any]]:
    """What the page must show per session, read through the run reader: repaired messages with
    their repair flags, messages with origin flags, the message that ended it."""
    found: dict[str, dict[str, Any]] = {}
    for session in read_run(run_dir).sessions():
        record = session.record
        assert record is not None
        found[f"{session.persona_id}/{session.number}"] = {
            "repaired": {m.index: [f for f in m.flags if f != "template"] for m in record.messages
                         if any(f != "template" for f in m.flags)},
            "origin": [m.index for m in record.messages if "template" in m.flags],
            "repairs": set(record.flag_counts()),
            "ended_by": record.termination.message_index if record.termination else None,
            "reason": record.termination.reason if record.termination else None,
        }  # fmt: skip
    return found


def mark_unfinished(run_dir: Path, persona_id: str, number: int, status: str = "interrupted") -> None:
    """Make a finished session look like one a kill (or a failure) left behind: a partial record,
    run.json saying so."""
    final = run_dir / persona_id / f"session_{number:02d}.json"
    data = json.loads(final.read_text())
    data["status"] = status
    if status == "failed":
        data["error"] = "server error 500 after 6 attempts"
    (final.with_name(f"session_{number:02d}.partial.json")).write_text(json.dumps(data))
    final.unlink()
    (final.with_suffix(".txt")).unlink()
    run = json.loads((run_dir / "run.json").read_text())
    run["sessions"][persona_id][str(number)]["status"] = status
    run["status"] = status
    (run_dir / "run.json").write_text(json.dumps(run))
