"""The run reader: what audit, evaluate, export and view see of a run folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import RunStateError
from simulator.reader import read_run
from tests.conftest import MARCUS, invoke


def _offline_run(tmp_path: Path, sessions: int = 2) -> Path:
    result = invoke(
        "run",
        MARCUS,
        "--sessions",
        str(sessions),
        "--backend",
        "offline",
        "--out",
        tmp_path,
        "--run-id",
        "r",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "r"


def test_reads_index_and_every_session_in_order(tmp_path: Path) -> None:
    run = read_run(_offline_run(tmp_path))
    assert run.run_id == "r"
    assert run.index.backend == "offline"
    assert run.persona_ids == ["marcus_thompson"]
    found = [(s.persona_id, s.number, s.complete) for s in run.sessions()]
    assert found == [("marcus_thompson", 1, True), ("marcus_thompson", 2, True)]
    first, second = (run.session("marcus_thompson", n).record for n in (1, 2))
    assert first is not None and second is not None and second.previous_summary == first.summary
    assert run.persona_file("marcus_thompson").is_file()
    assert (run.prompts_dir / "therapist.j2").is_file()


def test_partial_sessions_are_read_and_marked(tmp_path: Path) -> None:
    run_dir = _offline_run(tmp_path)
    final = run_dir / "marcus_thompson" / "session_02.json"
    final.rename(final.with_name("session_02.partial.json"))
    session = read_run(run_dir).session("marcus_thompson", 2)
    assert session.partial and not session.complete and session.record is not None
    assert [s.number for s in read_run(run_dir).sessions(complete_only=True)] == [1]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.update(settings=1), "settings"),
        (lambda d: d["sessions"]["marcus_thompson"].update({"x": {}}), "sessions"),
        (lambda d: d.pop("inputs"), "inputs"),
    ],
)
def test_wrong_shape_is_one_clear_error(
    tmp_path: Path, damage: Callable[[dict[str, Any]], object], message: str
) -> None:
    run_dir = _offline_run(tmp_path, sessions=1)
    data = json.loads((run_dir / "run.json").read_text())
    damage(data)
    (run_dir / "run.json").write_text(json.dumps(data))
    with pytest.raises(RunStateError, match=f"damaged run.json: {message}"):
        read_run(run_dir)


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunStateError, match="not a run folder"):
        read_run(tmp_path)
