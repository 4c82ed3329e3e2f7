"""``simulator replay``: a new run that branches from the summary an earlier session left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MARCUS, PERSONAS, invoke
from tests.serieskit import run_json

PERSONA = "marcus_thompson"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    result = invoke(
        "run", MARCUS, PERSONAS / "priya_shah.yaml", "--backend", "offline", "--sessions", "3", "--seed", "1",
        "--out", tmp_path / "runs", "--run-id", "source", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "source"


def _record(run_dir: Path, number: int, persona: str = PERSONA) -> dict[str, object]:
    data: dict[str, object] = json.loads((run_dir / persona / f"session_{number:02d}.json").read_text())
    return data


def test_replay_session_3_with_another_seed(source: Path, tmp_path: Path) -> None:
    result = invoke(
        "replay", source, "--persona", PERSONA, "--session", "3", "--seed", "2", "--run-id", "branch",
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    branch = tmp_path / "runs" / "branch"  # the source run's output root by default
    assert sorted(p.name for p in (branch / PERSONA).iterdir()) == ["session_03.json", "session_03.txt"]
    assert not (branch / "priya_shah").exists()

    summary_2 = _record(source, 2)["summary"]
    replayed = _record(branch, 3)
    assert isinstance(summary_2, str) and replayed["previous_summary"] == summary_2
    opening = replayed["messages"][0]["content"]  # type: ignore[index]
    assert opening.startswith(
        "Hi, I'm Marcus Thompson. This is my 3rd CBT session. Last time we talked about:"
    )
    assert opening.endswith(summary_2)
    assert replayed["seed"] == 2 and replayed["status"] == "complete"
    assert (branch / PERSONA / "session_03.txt").read_text() != (
        source / PERSONA / "session_03.txt"
    ).read_text()

    data = run_json(branch)
    assert data["command"] == "replay" and data["status"] == "complete"
    assert data["branched_from"] == {
        "run_dir": str(source),
        "run_id": "source",
        "persona": PERSONA,
        "session": 3,
        "previous_summary_from": f"{PERSONA}/session_02.json",
        "changed_settings": ["seed"],
        "backend": "offline",
    }
    assert data["settings"]["start"] == 3 and data["settings"]["sessions"] == 1
    assert data["settings"]["seed"] == 2
    assert (branch / "inputs" / "previous_summary.txt").read_text() == f"{summary_2}\n"
    assert list(data["sessions"]) == [PERSONA] and list(data["sessions"][PERSONA]) == ["3"]


def test_replay_onward_with_other_templates_and_turns(source: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "opening.j2").write_text(
        "Hello again, {{ patient.name }} here for session {{ session_number }}. "
        "{% if previous_summary %}Notes: {{ previous_summary }}{% endif %}"
    )
    result = invoke(
        "replay", source, "--persona", PERSONA, "--session", "2", "--sessions", "2", "--prompts", prompts,
        "--max-turns", "10", "--out", tmp_path / "elsewhere", "--run-id", "b", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    branch = tmp_path / "elsewhere" / "b"
    second, third = _record(branch, 2), _record(branch, 3)
    assert second["previous_summary"] == _record(source, 1)["summary"]
    assert third["previous_summary"] == second["summary"], "later sessions chain within the new run"
    assert str(third["messages"][0]["content"]).startswith("Hello again, Marcus Thompson here for session 3.")  # type: ignore[index]
    assert all(len(r["messages"]) <= 10 for r in (second, third))  # type: ignore[arg-type]
    data = run_json(branch)
    assert data["branched_from"]["changed_settings"] == ["max_turns"]
    assert (branch / "inputs" / "prompts" / "opening.j2").read_text().startswith("Hello again")
    assert data["settings"]["seed"] == 1, "settings not changed come from the source run"


def test_replay_of_the_first_session_has_no_summary(source: Path, tmp_path: Path) -> None:
    result = invoke("replay", source, "--persona", "priya_shah", "--session", "1", "--run-id", "first")
    assert result.exit_code == 0, result.output
    record = _record(tmp_path / "runs" / "first", 1, "priya_shah")
    assert record["previous_summary"] is None
    assert run_json(tmp_path / "runs" / "first")["branched_from"]["previous_summary_from"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--persona", "nobody", "--session", "2"), "no persona 'nobody' in"),
        (("--persona", PERSONA, "--session", "5"), "session 4 of marcus_thompson is not complete in"),
    ],
)
def test_replay_bad_input(source: Path, args: tuple[str, ...], message: str) -> None:
    result = invoke("replay", source, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
