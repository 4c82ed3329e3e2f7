"""``simulator resume``: failed, interrupted and never-started sessions are finished with the
run's own settings and inputs; completed sessions are never rewritten."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.store import RunStore
from tests.conftest import MARCUS, PERSONAS, invoke
from tests.loopback import LoopbackServer, RecordedRequest, Reply, serve, server_error
from tests.serieskit import (
    CONFIG,
    ROLE_MODELS,
    assert_series_chained,
    complete_files,
    leftovers,
    run_json,
    scripted,
    statuses,
    write_personas,
)


class Outage:
    """The scripted model, except that it answers 500 to every request of one session while
    ``down`` (retries included): that session fails, then the server recovers."""

    def __init__(self, opening: str) -> None:
        self.opening = opening
        self.down = True
        self.refused = 0

    def __call__(self, request: RecordedRequest) -> Reply:
        messages = request.json.get("messages", [])
        if self.down and any(self.opening in str(m.get("content", "")) for m in messages):
            self.refused += 1
            return server_error()
        return scripted(request)


@pytest.fixture
def outage() -> Iterator[tuple[LoopbackServer, Outage]]:
    handler = Outage("Hi, I'm Ada Byrne. This is my 2nd CBT session.")
    with serve(handler) as server:
        yield server, handler


def test_failed_session_is_recorded_then_resume_finishes_the_series(
    tmp_path: Path, outage: tuple[LoopbackServer, Outage]
) -> None:
    server, handler = outage
    personas = write_personas(tmp_path / "personas", 2)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "out" / "r"
    result = invoke(
        "run", *personas, "--sessions", "3", "--backend", "openai", "--base-url", server.base_url,
        *ROLE_MODELS, "--config", config, "--out", tmp_path / "out", "--run-id", "r", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert handler.refused == 2, "one request, tried twice (retry.attempts: 2)"
    assert statuses(run_dir) == {
        "p1_ada/1": "complete",
        "p1_ada/2": "failed",
        "p1_ada/3": "pending",
        "p2_ben/1": "complete",
        "p2_ben/2": "complete",
        "p2_ben/3": "complete",
    }
    data = run_json(run_dir)
    assert data["status"] == "failed"
    failed = data["sessions"]["p1_ada"]["2"]
    assert failed["file"] == "p1_ada/session_02.partial.txt" and failed["termination"] == "Error"
    assert "server error 500" in failed["error"] and "after 2 attempts" in failed["error"]
    partial = json.loads((run_dir / "p1_ada" / "session_02.partial.json").read_text())
    assert partial["status"] == "failed" and partial["termination"]["reason"] == "Error"
    assert not (run_dir / "p1_ada" / "session_02.json").exists()
    before = complete_files(run_dir)

    handler.down = False
    result = invoke("resume", run_dir, "--no-progress")

    assert result.exit_code == 0, result.output
    assert set(statuses(run_dir).values()) == {"complete"}
    after = complete_files(run_dir)
    assert {name: after[name] for name in before} == before
    assert_series_chained(run_dir, ["p1_ada", "p2_ben"], 3)
    assert leftovers(run_dir) == []
    data = run_json(run_dir)
    assert data["status"] == "complete" and data["sessions"]["p1_ada"]["2"]["attempts"] == 2
    assert data["totals"]["requests"] == sum(c["requests"] for c in data["usage"].values())


def _offline_run(tmp_path: Path, *extra: str | Path, run_id: str = "r") -> Path:
    result = invoke(
        "run", MARCUS, PERSONAS / "priya_shah.yaml", "--backend", "offline", "--sessions", "3",
        "--out", tmp_path / "out", "--run-id", run_id, "--no-progress", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / "out" / run_id


def _forget(run_dir: Path, persona: str, *numbers: int, status: str = "pending") -> None:
    """Make the folder look as if those sessions never finished."""
    data = run_json(run_dir)
    for number in numbers:
        for suffix in (".txt", ".json"):
            (run_dir / persona / f"session_{number:02d}{suffix}").unlink()
        data["sessions"][persona][str(number)] = {"status": status}
    data["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(data))


def test_resume_uses_the_runs_own_settings_and_inputs(tmp_path: Path) -> None:
    """Same seed, turns and templates as the run had, even when the source files changed:
    the regenerated sessions come out identical (the offline backend is deterministic)."""
    personas = tmp_path / "personas"
    shutil.copytree(PERSONAS, personas)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "opening.j2").write_text("Hello, I am {{ patient.name }}, session {{ session_number }}.")
    result = invoke(
        "run", personas / "marcus_thompson.yaml", "--backend", "offline", "--sessions", "3", "--seed", "11",
        "--max-turns", "12", "--prompts", prompts, "--out", tmp_path / "out", "--run-id", "r", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "out" / "r"
    original = complete_files(run_dir)
    _forget(run_dir, "marcus_thompson", 2, 3)
    (prompts / "opening.j2").write_text("Changed template.")
    (personas / "marcus_thompson.yaml").write_text("role: patient\nname: Someone Else\n")

    moved = tmp_path / "elsewhere" / "r"
    shutil.move(run_dir, moved)  # a run folder resumes wherever it is
    result = invoke("resume", moved, "--no-progress")

    assert result.exit_code == 0, result.output
    regenerated = complete_files(moved)
    assert {k: v for k, v in regenerated.items() if k.endswith(".txt")} == {
        k: v for k, v in original.items() if k.endswith(".txt")
    }
    assert json.loads(regenerated["marcus_thompson/session_03.json"])["seed"] == 11
    assert run_json(moved)["status"] == "complete"


def test_resume_after_a_kill_between_file_and_index(tmp_path: Path) -> None:
    """run.json lags behind the files (a SIGKILL between the two writes, or leftovers of an
    atomic write): resume trusts the files, tidies up, and rewrites nothing complete."""
    run_dir = _offline_run(tmp_path)
    data = run_json(run_dir)
    data["status"] = "running"
    data["sessions"]["marcus_thompson"]["3"] = {"status": "running"}  # complete on disk
    data["sessions"]["priya_shah"]["3"] = {"status": "running"}
    (run_dir / "run.json").write_text(json.dumps(data))
    for suffix in (".txt", ".json"):
        (run_dir / "priya_shah" / f"session_03{suffix}").unlink()
    (run_dir / "marcus_thompson" / ".session_02.json.abc.tmp").write_text("half")
    (run_dir / "marcus_thompson" / "session_03.partial.json").write_text("{}")
    before = complete_files(run_dir)

    result = invoke("resume", run_dir, "--no-progress")

    assert result.exit_code == 0, result.output
    assert "marcus_thompson session 3: complete on disk" in result.stderr
    assert "priya_shah session 3: interrupted" in result.stderr
    assert "removed 1 temporary file(s)" in result.stderr
    after = complete_files(run_dir)
    assert {name: after[name] for name in before} == before
    assert len(after) == 12 and leftovers(run_dir) == []
    entry = run_json(run_dir)["sessions"]["marcus_thompson"]["3"]
    assert entry["status"] == "complete" and entry["file"] == "marcus_thompson/session_03.txt"


def test_resume_of_a_complete_run_changes_nothing(tmp_path: Path) -> None:
    run_dir = _offline_run(tmp_path)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    result = invoke("resume", run_dir)
    assert result.exit_code == 0
    assert "every session is complete; nothing to resume" in result.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_resume_refuses_a_run_in_use_and_what_is_not_a_run(tmp_path: Path) -> None:
    run_dir = _offline_run(tmp_path)
    _forget(run_dir, "priya_shah", 3)
    with RunStore(run_dir).lock():
        result = invoke("resume", run_dir)
    assert result.exit_code == 2
    assert "run folder is in use by pid" in result.stderr
    result = invoke("resume", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"simulator: error: {tmp_path}: not a run folder (no run.json)"
    assert invoke("resume", run_dir).exit_code == 0
