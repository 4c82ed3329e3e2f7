"""Killing a real run partway, with SIGKILL or Ctrl-C, then finishing it with ``resume``.

The run is the real CLI in a subprocess, against a scripted loopback model with some latency
so there is time to stop it in the middle; ``resume`` runs in this process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.loopback import LoopbackServer, serve
from tests.serieskit import (
    CONFIG,
    ROLE_MODELS,
    assert_series_chained,
    cli_command,
    cli_env,
    complete_files,
    complete_sessions,
    leftovers,
    run_json,
    scripted,
    statuses,
    write_personas,
)

PERSONAS = 4
SESSIONS = 4
LATENCY_S = 0.025
DEADLINE_S = 30.0


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serve(scripted, latency_s=LATENCY_S) as server:
        yield server


def _start(tmp_path: Path, server: LoopbackServer) -> tuple[subprocess.Popen[str], Path, list[str]]:
    personas = write_personas(tmp_path / "personas", PERSONAS)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    command = cli_command(
        "run",
        *personas,
        "--sessions",
        str(SESSIONS),
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        *ROLE_MODELS,
        "--concurrency",
        "2",
        "--config",
        config,
        "--out",
        tmp_path / "out",
        "--run-id",
        "r",
        "--no-progress",
    )
    proc = subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, tmp_path / "out" / "r", [p.stem for p in personas]


def _wait_for_complete(proc: subprocess.Popen[str], run_dir: Path, count: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while len(complete_sessions(run_dir)) < count:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be stopped: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run made no progress")
        time.sleep(0.01)


def _resume(run_dir: Path, *flags: str) -> None:
    result = invoke("resume", run_dir, "--no-progress", *flags)
    assert result.exit_code == 0, result.output
    assert_series_chained(run_dir, list(run_json(run_dir)["sessions"]), SESSIONS)
    assert leftovers(run_dir) == []
    data = run_json(run_dir)
    assert data["status"] == "complete" and len(data["resumes"]) == 1
    assert set(statuses(run_dir).values()) == {"complete"}
    assert data["totals"]["complete"] == PERSONAS * SESSIONS


def test_sigkill_partway_then_resume_finishes_every_session(tmp_path: Path, server: LoopbackServer) -> None:
    proc, run_dir, personas = _start(tmp_path, server)
    _wait_for_complete(proc, run_dir, 3)
    proc.kill()
    proc.communicate(timeout=DEADLINE_S)
    before = complete_files(run_dir)
    assert 0 < len(before) // 2 < PERSONAS * SESSIONS, "killed partway"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    _resume(run_dir)

    after = complete_files(run_dir)
    assert len(after) == 2 * PERSONAS * SESSIONS
    assert {name: after[name] for name in before} == before, "sessions complete before the kill are untouched"
    assert sorted(run_json(run_dir)["sessions"]) == sorted(personas)


def test_ctrl_c_records_interrupted_sessions_exits_130_and_resumes(
    tmp_path: Path, server: LoopbackServer
) -> None:
    proc, run_dir, _ = _start(tmp_path, server)
    _wait_for_complete(proc, run_dir, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, err
    assert "stopping: writing the sessions in flight as interrupted" in err
    assert err.rstrip().endswith("simulator: interrupted; `simulator resume RUN_DIR` finishes the run")
    assert "Traceback" not in err

    data = run_json(run_dir)
    assert data["status"] == "interrupted" and data["ended_at"]
    interrupted = [
        (pid, int(n), entry)
        for pid, sessions in data["sessions"].items()
        for n, entry in sessions.items()
        if entry["status"] == "interrupted"
    ]
    assert interrupted, "the sessions in flight are recorded as interrupted"
    for pid, number, entry in interrupted:
        assert entry["file"] == f"{pid}/session_{number:02d}.partial.txt"
        assert entry["termination"] == "Interrupted"
        assert not (run_dir / pid / f"session_{number:02d}.json").exists()
        assert not (run_dir / pid / f"session_{number:02d}.txt").exists()
        partial = json.loads((run_dir / pid / f"session_{number:02d}.partial.json").read_text())
        assert partial["status"] == "interrupted" and partial["messages"]
        assert partial["termination"]["reason"] == "Interrupted"
        text = (run_dir / entry["file"]).read_text()
        assert text.startswith(f"Session Number: {number}\n\nPatient: Hi, I'm ")
        assert "Reason: Interrupted" in text
    assert set(statuses(run_dir).values()) <= {"complete", "interrupted", "pending"}
    before = complete_files(run_dir)

    _resume(run_dir, "--concurrency", "4")

    after = complete_files(run_dir)
    assert {name: after[name] for name in before} == before


def test_second_ctrl_c_exits_at_once_and_the_run_still_resumes(
    tmp_path: Path, server: LoopbackServer
) -> None:
    proc, run_dir, _ = _start(tmp_path, server)
    _wait_for_complete(proc, run_dir, 1)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5
    assert "Traceback" not in err and "Warning" not in err
    assert "`simulator resume RUN_DIR` finishes the run" in err
    _resume(run_dir, "--concurrency", "4")
