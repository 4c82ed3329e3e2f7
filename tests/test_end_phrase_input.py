"""End phrases are checked once, where the config enters: `validate` and `run` refuse the same
patterns with the same one line, and a catastrophic pattern can never hang a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MARCUS, REPO, invoke

BAD = [
    (
        "(bye)?",
        "invalid end phrase '(bye)?': it matches the empty string, so every message would end the session",
    ),
    ("(unclosed", "invalid end phrase '(unclosed': missing ) at position 9"),
    (
        r"(.|\w)+#",
        "unsafe end phrase '(.|\\w)+#': a repetition over alternatives that can start with the "
        "same character can backtrack catastrophically; make the alternatives distinct",
    ),
    (
        r"(a+)+b",
        "unsafe end phrase '(a+)+b': a repetition inside a repetition can backtrack "
        "catastrophically; make the inner one bounded",
    ),
]


def _config(tmp_path: Path, pattern: str, role: str = "therapist") -> Path:
    config = tmp_path / "run.yaml"
    escaped = pattern.replace("'", "''")
    config.write_text(f"end_phrases:\n  {role}: ['\\bbye\\b', '{escaped}']\n", encoding="utf-8")
    return config


@pytest.mark.parametrize(("pattern", "message"), BAD)
def test_validate_refuses_the_pattern_in_one_line(tmp_path: Path, pattern: str, message: str) -> None:
    config = _config(tmp_path, pattern)
    result = invoke("validate", config)
    assert result.exit_code == 2
    assert result.stderr == f"simulator: error: {config}: key 'end_phrases.therapist': {message}\n"


@pytest.mark.parametrize(("pattern", "message"), BAD)
def test_run_refuses_it_the_same_way_and_writes_nothing(tmp_path: Path, pattern: str, message: str) -> None:
    config = _config(tmp_path, pattern, role="patient")
    out = tmp_path / "out"
    result = invoke("run", MARCUS, "--config", config, "--backend", "offline", "--out", out)
    assert result.exit_code == 2
    assert result.stderr == f"simulator: error: {config}: key 'end_phrases.patient': {message}\n"
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_a_catastrophic_pattern_cannot_hang_run(tmp_path: Path) -> None:
    config = _config(tmp_path, r"(.|\w)+#")
    env = {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    command = [sys.executable, "-m", "simulator", "run", str(MARCUS), "--config", str(config)]
    command += ["--backend", "offline", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"simulator: error: {config}: key 'end_phrases.therapist': unsafe end phrase")
    assert "Traceback" not in done.stderr
