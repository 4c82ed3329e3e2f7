"""The public API as the README shows it: a notebook drives a run without the CLI."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

import simulator
from tests.conftest import PERSONAS, REPO


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
