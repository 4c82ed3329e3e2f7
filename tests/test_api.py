"""The public API as the README shows it: a notebook drives a run without the CLI."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

import simulator
from simulator.backends.offline import OfflineBackend
from tests.conftest import MARCUS, PERSONAS, REPO


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README has a Python snippet under 'From Python'"
    return match.group(1)


def test_readme_snippet_runs_a_series_and_reads_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(PERSONAS, tmp_path / "personas")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_snippet(), "README.md", "exec"), {})
    assert out.getvalue().splitlines() == ["marcus_thompson 1 complete", "marcus_thompson 2 complete"]
    run = simulator.read_run(tmp_path / "runs" / "from-python")
    first, second = (run.session("marcus_thompson", n).record for n in (1, 2))
    assert first is not None and second is not None and second.previous_summary == first.summary
    assert run.index.backend == "offline" and run.index.status == "complete"


def test_public_api_is_small_and_importable() -> None:
    assert set(simulator.__all__) >= {"load_persona", "load_plan", "run_series", "read_run", "RunConfig"}
    for name in simulator.__all__:
        assert getattr(simulator, name) is not None


async def test_a_hand_built_offline_backend_takes_its_seed_alone(tmp_path: Path) -> None:
    """The seed enters the offline backend once: built by hand with seed 7 it writes what
    ``--seed 7`` writes, whatever seed the run's config holds."""
    by_flag = simulator.load_plan(
        simulator.RunConfig(out=tmp_path, run_id="flag", seed=7, backend="offline"), [MARCUS]
    )
    await simulator.run_series(by_flag)
    by_hand = simulator.load_plan(simulator.RunConfig(out=tmp_path, run_id="hand"), [MARCUS])
    cast = by_hand.cast()
    await simulator.run_series(by_hand, backend=OfflineBackend(cast.patients, cast.therapist, seed=7))
    texts = [
        (tmp_path / run_id / "marcus_thompson" / "session_01.txt").read_text() for run_id in ("flag", "hand")
    ]
    assert texts[0] == texts[1]


async def test_the_library_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No progress lines, no notices on the terminal: a notebook's output is its own. (The
    offline notice goes to the ``simulator`` logger, which the CLI prints.)"""
    plan = simulator.load_plan(simulator.RunConfig(out=tmp_path, run_id="quiet", backend="offline"), [MARCUS])
    run = await simulator.run_series(plan)
    assert run.index.status == "complete"
    assert capsys.readouterr() == ("", "")
