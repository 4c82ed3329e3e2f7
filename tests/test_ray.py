"""``--executor ray`` against a real local Ray instance (2 CPUs, started once for the module)
and the loopback chat server or the offline backend: the same files as a local run, a worker
killed mid-run, rate limits shared by the workers, Ctrl-C then resume.

Skipped only where Ray is not installed and ``CI`` is not set (CI installs it with ``.[dev]``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from simulator import commands
from simulator.raybudget import SharedBucket, start_budget
from simulator.state import SessionEvent
from tests.chat_templates import render
from tests.conftest import MARCUS, PERSONAS, invoke
from tests.loopback import RecordedRequest, Reply, serve, server_error, vllm_error
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

try:
    import ray
except ImportError:  # pragma: no cover - CI installs Ray
    if os.environ.get("CI"):
        raise
    ray = None  # type: ignore[assignment]

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'simulator[ray]')")
DEADLINE_S = 60.0
WORKER_KEY = "sk-from-the-worker-environment"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray instance for the module (start-up takes seconds); yields its address."""
    assert ray is not None
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = WORKER_KEY  # the workers' environment, as `ray start` would give it
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    finally:
        if saved is None:
            del os.environ["OPENAI_API_KEY"]
        else:
            os.environ["OPENAI_API_KEY"] = saved
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def _transcripts(run_dir: Path) -> dict[str, bytes]:
    return {k: v for k, v in complete_files(run_dir).items() if k.endswith(".txt")}


def _series_flags(tmp_path: Path, personas: int, sessions: int, base_url: str) -> list[str | Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    paths = write_personas(tmp_path / "personas", personas)
    return [
        *paths,
        "--sessions",
        str(sessions),
        "--backend",
        "openai",
        "--base-url",
        base_url,
        *ROLE_MODELS,
        "--config",
        config,
        "--out",
        tmp_path / "out",
        "--no-progress",
    ]


@needs_ray
def test_ray_run_writes_the_same_transcripts_as_a_local_run(cluster: str, tmp_path: Path) -> None:
    personas = [p for p in sorted(PERSONAS.glob("*.yaml")) if p.stem != "nova"]
    common: list[str | Path] = [
        *personas,
        "--sessions",
        "2",
        "--backend",
        "offline",
        "--seed",
        "11",
        "--out",
        tmp_path,
    ]
    local = invoke("run", *common, "--run-id", "local", "--no-progress")
    assert local.exit_code == 0, local.output
    distributed = invoke(
        "run", *common, "--run-id", "ray", "--executor", "ray", "--workers", "2", "--cache", tmp_path / "c.db"
    )
    assert distributed.exit_code == 0, distributed.output
    assert (
        "simulator: --cache is off with --executor ray: the cache file is on the driver's disk"
        in distributed.output
    )
    assert not (tmp_path / "c.db").exists(), "the cache is off: no file is opened or created"
    assert re.search(r"ray: 2 worker\(s\): .+ pid \d+, .+ pid \d+", distributed.output)

    expected = _transcripts(tmp_path / "local")
    assert len(expected) == 2 * len(personas)
    assert _transcripts(tmp_path / "ray") == expected
    data = run_json(tmp_path / "ray")
    assert data["status"] == "complete" and leftovers(tmp_path / "ray") == []
    assert (data["settings"]["executor"], data["settings"]["workers"]) == ("ray", 2)
    assert (
        run_json(tmp_path / "local")["settings"]["executor"],
        run_json(tmp_path / "local")["settings"]["workers"],
    ) == ("local", None)


def _worker_pids(caplog: pytest.LogCaptureFixture) -> list[int]:
    for record in caplog.records:
        if record.getMessage().startswith("ray: ") and " pid " in record.getMessage():
            return [int(pid) for pid in re.findall(r"pid (\d+)", record.getMessage())]
    return []


@needs_ray
def test_a_killed_worker_loses_no_session_and_writes_none_twice(
    cluster: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    events: list[tuple[str, int]] = []
    killed: list[int] = []

    def kill_after_first(event: SessionEvent) -> None:
        if event.status != "complete":
            return
        events.append((event.persona_id, event.session_number))
        if not killed:
            killed.append(_worker_pids(caplog)[0])
            os.kill(killed[0], signal.SIGKILL)

    with serve(scripted, latency_s=0.02) as server:
        flags = _series_flags(tmp_path, 4, 3, server.base_url)
        paths = [Path(p) for p in flags[:4]]
        local = invoke("run", *flags, "--run-id", "local", "--concurrency", "4")
        assert local.exit_code == 0, local.output
        settings: dict[str, Any] = {
            "sessions": 3,
            "backend": "openai",
            "base_url": server.base_url,
            "therapist_model": "therapist",
            "patient_model": "patient",
            "summarizer_model": "summarizer",
            "out": tmp_path / "out",
            "run_id": "ray",
            "concurrency": 4,
            "executor": "ray",
            "workers": 2,
        }
        code = asyncio.run(
            commands.run(paths, tmp_path / "run.yaml", settings, progress=False, listeners=[kill_after_first])
        )
    assert code == 0
    run_dir = tmp_path / "out" / "ray"
    assert killed, "a worker was killed after the first session was written"
    died = [
        r.getMessage() for r in caplog.records if r.name.startswith("simulator") and "died" in r.getMessage()
    ]
    assert died and all("continues from session" in line for line in died)
    assert sorted(events) == sorted(set(events)) and len(events) == 12, "each session written once"
    assert set(statuses(run_dir).values()) == {"complete"} and leftovers(run_dir) == []
    assert_series_chained(run_dir, [p.stem for p in paths], 3)
    assert _transcripts(run_dir) == _transcripts(tmp_path / "out" / "local")


@needs_ray
def test_rate_limits_hold_across_workers_whose_key_comes_from_their_environment(
    cluster: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """66 requests (11 sessions of 6) under 60 a minute: the first 60 go at once, the rest
    one a second. Two workers with a budget each would send all 66 at once. Ray's own log
    (the terminal's stderr) has no error line about the workers' arguments."""
    times: list[float] = []
    lock = threading.Lock()

    def timed(request: RecordedRequest) -> Reply:
        with lock:
            times.append(time.monotonic())
        return scripted(request)

    rpm = 60.0
    with serve(timed) as server:
        flags = _series_flags(tmp_path, 11, 1, server.base_url)
        config = tmp_path / "run.yaml"
        config.write_text(CONFIG + f"rate_limits: {{requests_per_minute: {rpm}}}\n")
        result = invoke(
            "run", *flags, "--run-id", "r", "--executor", "ray", "--workers", "2", "--concurrency", "11"
        )
    assert result.exit_code == 0, result.output
    assert len(times) == 66
    keys = {r.headers.get("authorization") for r in server.requests}
    assert keys == {f"Bearer {WORKER_KEY}"}, (
        "the key came from the workers' environment (the driver's is empty)"
    )
    assert WORKER_KEY not in (tmp_path / "out" / "r" / "run.json").read_text()
    start = times[0]
    for count, moment in enumerate(sorted(times), start=1):
        allowed = rpm + rpm / 60 * (moment - start) + 1
        assert count <= allowed, f"request {count} at {moment - start:.2f}s exceeds the shared limit"
    assert run_json(tmp_path / "out" / "r")["status"] == "complete"
    assert "constructor arguments in the object store" not in capfd.readouterr().err


@needs_ray
def test_workers_draw_the_budget_in_blocks_not_per_request(cluster: str) -> None:
    async def spend() -> int:
        budget, _ = start_budget(6000, None)
        share = SharedBucket(budget, "requests", 6000)  # blocks of 100 (a second's worth)
        for _ in range(250):
            await share.take(1)
        granted: int = await budget.granted.remote()
        ray.kill(budget)
        return granted

    assert asyncio.run(spend()) == 3


@needs_ray
def test_ctrl_c_on_the_driver_exits_130_then_a_local_resume_finishes(cluster: str, tmp_path: Path) -> None:
    with serve(scripted, latency_s=0.025) as server:
        flags = _series_flags(tmp_path, 4, 4, server.base_url)
        command = cli_command(
            "run",
            *flags,
            "--run-id",
            "r",
            "--concurrency",
            "4",
            "--executor",
            "ray",
            "--ray-address",
            cluster,
        )
        proc = subprocess.Popen(
            command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        run_dir = tmp_path / "out" / "r"
        deadline = time.monotonic() + DEADLINE_S
        while not (run_dir.is_dir() and complete_sessions(run_dir)):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the run never wrote a session: {proc.communicate()}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        data = run_json(run_dir)
        assert data["status"] == "interrupted"
        assert "interrupted" in set(statuses(run_dir).values()), "sessions in flight come back as interrupted"
        assert "running" not in set(statuses(run_dir).values())
        before = complete_files(run_dir)
        assert 0 < len(before) // 2 < 16

        result = invoke("resume", run_dir, "--executor", "local", "--no-progress")
    assert result.exit_code == 0, result.output
    after = complete_files(run_dir)
    assert {name: after[name] for name in before} == before, "completed sessions are untouched"
    assert_series_chained(run_dir, list(run_json(run_dir)["sessions"]), 4)
    assert leftovers(run_dir) == []
    assert run_json(run_dir)["settings"]["executor"] == "local"


@needs_ray
def test_a_failed_local_run_resumes_on_ray_with_the_same_transcripts(cluster: str, tmp_path: Path) -> None:
    """Concurrency 1 runs p1's three sessions, then p2's: requests 7 and 8 (p1 session 2's
    first, and its retry) fail, so p1 stops after session 1; resume finishes it on Ray."""

    def failing(request: RecordedRequest) -> Reply:
        return server_error() if request.index in (6, 7) else scripted(request)

    with serve(scripted) as good, serve(failing) as flaky:
        expected = invoke("run", *_series_flags(tmp_path / "a", 2, 3, good.base_url), "--run-id", "r")
        assert expected.exit_code == 0, expected.output
        flags = _series_flags(tmp_path / "b", 2, 3, flaky.base_url)
        failed = invoke("run", *flags, "--run-id", "r", "--concurrency", "1")
        assert failed.exit_code == 1, failed.output
        run_dir = tmp_path / "b" / "out" / "r"
        assert statuses(run_dir)["p1_ada/2"] == "failed" and statuses(run_dir)["p1_ada/3"] == "pending"
        before = complete_files(run_dir)
        resumed = invoke("resume", run_dir, "--executor", "ray", "--workers", "1", "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    after = complete_files(run_dir)
    assert {name: after[name] for name in before} == before
    assert _transcripts(run_dir) == _transcripts(tmp_path / "a" / "out" / "r")
    data = run_json(run_dir)
    assert data["status"] == "complete" and leftovers(run_dir) == []
    assert (data["settings"]["executor"], data["settings"]["workers"]) == ("ray", 1)


@needs_ray
def test_a_layout_a_chat_template_refuses_on_the_workers_is_recorded_once_for_the_run(
    cluster: str, tmp_path: Path
) -> None:
    """Mistral's template refuses the ``system_notes`` layout (notes as late system messages,
    a history opening with the agent's own turn): each worker falls back to ``alternating``,
    and run.json says so once per role, as a local run does, so resume starts with it."""
    refused: list[str] = []

    def mistral(request: RecordedRequest) -> Reply:
        try:
            render("mistralai-Mistral-Nemo-Instruct-2407", request.json["messages"])
        except jinja2.TemplateError as exc:
            refused.append(str(request.json["model"]))
            return vllm_error(str(exc))
        return scripted(request)

    with serve(mistral) as server:
        flags = _series_flags(tmp_path, 4, 2, server.base_url)
        (tmp_path / "run.yaml").write_text(CONFIG + "message_layout: system_notes\n")
        result = invoke(
            "run", *flags, "--run-id", "r", "--executor", "ray", "--workers", "2", "--concurrency", "4"
        )
    assert result.exit_code == 0, result.output
    assert refused, "the template refused the starting layout"
    data = run_json(tmp_path / "out" / "r")
    assert data["status"] == "complete" and set(statuses(tmp_path / "out" / "r").values()) == {"complete"}
    roles = data["settings"]["roles"]
    assert {role: roles[role]["message_layout"] for role in ("therapist", "patient")} == {
        "therapist": "alternating",
        "patient": "alternating",
    }
    changes = [(c["role"], c["from"], c["to"]) for c in data["layout_changes"]]
    assert sorted(changes) == [
        ("patient", "system_notes", "alternating"),
        ("therapist", "system_notes", "alternating"),
    ]
    for role in ("therapist", "patient"):
        said = f"simulator: {role}: the server's chat template refused the 'system_notes' message layout"
        assert result.output.count(said) == 1


def test_without_ray_installed_executor_ray_exits_2_with_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    result = invoke("run", MARCUS, "--backend", "offline", "--executor", "ray", "--out", tmp_path)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert errors == ["simulator: error: --executor ray: Ray is not installed: pip install 'simulator[ray]'"]
    assert list(tmp_path.iterdir()) == []


@needs_ray
def test_an_unreachable_ray_address_exits_2_at_once_and_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = invoke(
        "run",
        MARCUS,
        "--backend",
        "offline",
        "--executor",
        "ray",
        "--ray-address",
        f"127.0.0.1:{port}",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(
        f"simulator: error: --ray-address: cannot reach a Ray cluster at 127.0.0.1:{port}: "
    )
    assert list(tmp_path.iterdir()) == []


@needs_ray
def test_a_ray_address_where_another_service_listens_exits_2_at_once(tmp_path: Path) -> None:
    """The loopback HTTP server stands for the dashboard's port, the usual mix-up: Ray itself
    would retry it for many minutes."""
    with serve() as server:
        command = cli_command(
            "run", MARCUS, "--backend", "offline", "--executor", "ray",
            "--ray-address", f"127.0.0.1:{server.port}", "--out", tmp_path / "out",
        )  # fmt: skip
        done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"simulator: error: --ray-address: 127.0.0.1:{server.port} answers, but not as a Ray cluster: "
        "give the port `ray start --head` printed (6379 by default; the dashboard's, 8265, is for "
        "`ray job submit`)"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("moment", ["before the session task exists", "before the session task ran"])
def test_a_worker_stopped_just_after_a_start_sends_the_session_back_as_interrupted(moment: str) -> None:
    """The driver marks a session running when the worker says it started; a stop arriving
    right then must still bring back its record, or run.json keeps it as running. The worker
    is driven in this process (asyncio runs ready steps in order, so the moments are exact)."""
    from simulator.config import load_config
    from simulator.plan import load_plan
    from simulator.rayworker import SeriesWorker, Started
    from simulator.records import SessionRecord

    plan = load_plan(load_config(None, {"backend": "offline", "sessions": 2}), [MARCUS])
    worker = SeriesWorker(plan, "offline", None, None)

    async def stopped() -> list[Any]:
        items = worker.series("marcus_thompson", 1, plan.first_summary, {})
        assert await anext(items) == Started(1)
        following = asyncio.ensure_future(anext(items))
        if moment == "before the session task ran":
            await asyncio.sleep(0)  # the series makes the session's task, which has not run yet
            assert len(worker.running) == 1
        await worker.stop()
        rest = [await following]
        rest += [item async for item in items]
        await worker.close()
        return rest

    rest = asyncio.run(stopped())
    assert len(rest) == 1 and isinstance(rest[0], SessionRecord)
    assert (rest[0].session_number, rest[0].status) == (1, "interrupted")
    assert rest[0].termination is not None and rest[0].termination.details == "The run was stopped"
