"""Helpers for the export tests: an offline run made once per test session (three personas,
three sessions each, one of them ending in a Repetition Loop), private copies of it to edit,
and readers for what export writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.conftest import PERSONAS, invoke

PATIENTS = ("marcus_thompson", "priya_shah", "walter_kowalski")


def make_run(
    root: Path, run_id: str = "demo", personas: tuple[Path, ...] | None = None, sessions: int = 3
) -> Path:
    paths = personas or tuple(PERSONAS / f"{p}.yaml" for p in PATIENTS)
    result = invoke(
        "run", *paths, "--sessions", str(sessions), "--backend", "offline", "--seed", "1",
        "--out", root, "--run-id", run_id, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = root / run_id
    if (run_dir / "marcus_thompson" / "session_02.json").is_file():
        make_repetition_loop(run_dir, "marcus_thompson", 2)
    return run_dir


REPEATED = "Therapist message 9 repeated Therapist message 3 (similarity 0.93) after 2 regenerations"


def make_repetition_loop(run_dir: Path, persona: str, number: int) -> None:
    """Give one session the ending and the flag a repetition loop leaves, so the filters have a
    session that did not end naturally whatever the offline backend's replies are."""
    data = session_json(run_dir, persona, number)
    data["messages"][-1]["flags"].append("regenerated_repetition")
    data["termination"] = {"reason": "Repetition Loop", "details": REPEATED, "message_index": 3}
    edit_session(run_dir, persona, number, messages=data["messages"], termination=data["termination"])
    index = json.loads((run_dir / "run.json").read_text())
    index["sessions"][persona][str(number)].update(termination="Repetition Loop", details=REPEATED)
    (run_dir / "run.json").write_text(json.dumps(index))


def copy_run(run_dir: Path, target: Path, run_id: str | None = None) -> Path:
    """A private copy (optionally under another run id) that a test may edit."""
    shutil.copytree(run_dir, target)
    if run_id is not None:
        data = json.loads((target / "run.json").read_text())
        data["run_id"] = run_id
        (target / "run.json").write_text(json.dumps(data))
    return target


def export(*args: str | Path) -> Result:
    return invoke("export", *args)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def session_json(run_dir: Path, persona: str, number: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / persona / f"session_{number:02d}.json").read_text())
    return data


def edit_session(run_dir: Path, persona: str, number: int, **changes: Any) -> None:
    path = run_dir / persona / f"session_{number:02d}.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
