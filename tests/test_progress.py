"""Progress: plain log lines when stderr is not a terminal, a live table when it is."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from simulator.config import RunConfig
from simulator.plan import load_plan
from simulator.progress import Progress, attach_progress
from simulator.records import SessionRecord, Termination, TokenCounts
from simulator.state import RunState, create_run
from tests.conftest import MARCUS, PERSONAS, invoke


@pytest.fixture
def config(tmp_path: Path) -> RunConfig:
    return RunConfig.model_validate(
        {
            "sessions": 2,
            "out": str(tmp_path),
            "run_id": "p",
            "model": "m",
            "prices": {"m": {"prompt": 1.0, "completion": 2.0}},
        }
    )


@pytest.fixture
def state(config: RunConfig) -> RunState:
    return create_run(load_plan(config, [MARCUS, PERSONAS / "priya_shah.yaml"]), "fake", command="run")


def _record(
    persona: str, number: int, status: str, *, hits: int = 0, error: str | None = None
) -> SessionRecord:
    reason = {"complete": "Natural Session End", "failed": "Error", "interrupted": "Interrupted"}[status]
    record = SessionRecord(
        session_number=number,
        persona_id=persona,
        therapist_id="nova",
        previous_summary=None,
        backend="fake",
        started_at="t",
        status=status,
        termination=Termination(reason=reason, details="d"),
        error=error,
    )
    record.usage["therapist"] = TokenCounts(
        prompt_tokens=1000, completion_tokens=500, requests=4 + hits, cache_hits=hits
    )
    return record


def test_plain_lines_one_per_finished_session(state: RunState, config: RunConfig) -> None:
    stream = io.StringIO()
    with attach_progress(state, config, enabled=None, stream=stream):
        state.start("marcus_thompson", 1)
        state.record(_record("marcus_thompson", 1, "complete"))
        state.start("priya_shah", 1)
        state.record(
            _record(
                "priya_shah", 1, "failed", error="therapist: server error 500 from http://x after 6 attempts"
            )
        )
        state.start("marcus_thompson", 2)
        state.record(_record("marcus_thompson", 2, "interrupted", hits=3))
    assert stream.getvalue().splitlines() == [
        "[1/4] marcus_thompson session 1: complete (Natural Session End); this session 1500 tokens, no errors;"
        " run 1500 tokens, ~$0.0020, 0 failed sessions",
        "[1/4] priya_shah session 1: failed (Error): therapist: server error 500 from http://x after 6 attempts;"
        " this session 1500 tokens, 1 error; run 3000 tokens, ~$0.0040, 1 failed session",
        # A session that did not fail says so, whatever failed before it in the run.
        "[1/4] marcus_thompson session 2: interrupted (Interrupted); this session 1500 tokens, no errors;"
        " run 4500 tokens, 3 cache hits, ~$0.0060, 1 failed session",
    ]
    assert state.listeners == [], "the listener is removed when the run ends"


def test_counters_start_from_what_the_run_already_did(state: RunState, config: RunConfig) -> None:
    state.record(_record("marcus_thompson", 1, "complete"))
    progress = Progress(state, config)
    assert progress.status() == "1/4 sessions done, 0 running; 1500 tokens, ~$0.0020, 0 failed sessions"


def test_live_table_shows_each_persona_and_the_totals(state: RunState, config: RunConfig) -> None:
    stream = io.StringIO()
    with attach_progress(state, config, enabled=True, stream=stream) as progress:
        state.start("marcus_thompson", 1)
        state.start("priya_shah", 1)
        state.record(_record("priya_shah", 1, "complete"))
        assert progress.running == {("marcus_thompson", 1)}
    screen = stream.getvalue()
    assert "run p (fake)" in screen
    assert "marcus_thompson" in screen and "session 1" in screen
    assert "priya_shah" in screen and "1/2" in screen
    assert "1/4 sessions done, 1 running; 1500 tokens, ~$0.0020, 0 failed sessions" in screen


def test_cli_log_lines_when_not_a_terminal(tmp_path: Path) -> None:
    result = invoke(
        "run", MARCUS, "--backend", "offline", "--sessions", "2", "--out", tmp_path, "--run-id", "x"
    )
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 2
    assert lines[0].startswith("[1/2] marcus_thompson session 1: complete (Natural Session End); ")
    assert lines[1].startswith("[2/2] marcus_thompson session 2: complete (")
    assert " tokens, no errors; run " in lines[1] and lines[1].endswith(" tokens, 0 failed sessions")
