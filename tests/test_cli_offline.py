"""The newcomer's path, end to end through the real CLI on the offline backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.personas import Patient, load_persona
from simulator.summary import SUMMARY_SECTIONS
from tests.conftest import MARCUS, PERSONAS, REPO, invoke


def _run(tmp_path: Path, *extra: str | Path, run_id: str = "r1", persona: Path = MARCUS) -> Path:
    result = invoke("run", persona, "--backend", "offline", "--out", tmp_path, "--run-id", run_id, *extra)
    assert result.exit_code == 0, result.output
    return tmp_path / run_id


def test_three_session_series_in_reference_format(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "--sessions", "3")
    folder = run_dir / "marcus_thompson"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"session_0{n}.{ext}" for n in (1, 2, 3) for ext in ("json", "txt")
    ]
    texts = [(folder / f"session_0{n}.txt").read_text() for n in (1, 2, 3)]
    records = [json.loads((folder / f"session_0{n}.json").read_text()) for n in (1, 2, 3)]
    for number, (text, record) in enumerate(zip(texts, records, strict=True), start=1):
        assert text.startswith(f"Session Number: {number}\n\nPatient: Hi, I'm Marcus Thompson. ")
        assert text.count("Session Summary:") == 1
        body, summary = text.split("\n\n\nSession Summary:\n\n")
        assert summary == record["summary"] + "\n"
        assert [line for line in summary.splitlines() if line.endswith(":")] == [
            f"{s}:" for s in SUMMARY_SECTIONS
        ]
        messages = body.split("\n\nTermination Details:\n")[0]
        speakers = re.findall(r"^(Patient|Therapist): ", messages, re.M)
        assert speakers == [m["speaker"] for m in record["messages"]]
        assert speakers[:3] == ["Patient", "Therapist", "Patient"]
        assert (
            f"Reason: {record['termination']['reason']}\nDetails: {record['termination']['details']}\n"
            in text
        )
        assert record["termination"]["reason"] == "Natural Session End"
        assert record["termination"]["details"].startswith("Detected end phrase: '")
        assert record["status"] == "complete" and record["backend"] == "offline"
        assert all(m["model"] == "offline" for m in record["messages"][1:])
    assert "This is my 1st CBT session." in texts[0] and "Last time" not in texts[0].split("\n\n")[1]
    opening_2 = records[1]["messages"][0]["content"]
    assert opening_2.startswith(
        "Hi, I'm Marcus Thompson. This is my 2nd CBT session. Last time we talked about:"
    )
    assert opening_2.endswith(records[0]["summary"])
    assert records[2]["previous_summary"] == records[1]["summary"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["backend"] == "offline" and run["offline"] is True and run["status"] == "complete"
    assert {k: v["status"] for k, v in run["sessions"]["marcus_thompson"].items()} == {
        "1": "complete",
        "2": "complete",
        "3": "complete",
    }
    assert run["inputs"]["personas"]["marcus_thompson"]["digest"].startswith("sha256:")
    assert set(run["inputs"]["templates"]) == {
        "therapist.j2",
        "patient.j2",
        "opening.j2",
        "summarizer.j2",
        "patient_start.j2",
    }


def test_same_seed_same_text_other_seed_other_text(tmp_path: Path) -> None:
    first = _run(tmp_path, "--seed", "7", run_id="a") / "marcus_thompson" / "session_01.txt"
    again = _run(tmp_path, "--seed", "7", run_id="b") / "marcus_thompson" / "session_01.txt"
    other = _run(tmp_path, "--seed", "8", run_id="c") / "marcus_thompson" / "session_01.txt"
    assert first.read_text() == again.read_text()
    assert first.read_text() != other.read_text()


def test_offline_replies_come_from_the_persona(tmp_path: Path) -> None:
    text = (_run(tmp_path, "--sessions", "2") / "marcus_thompson" / "session_02.txt").read_text()
    # Session 2's scripted note and Marcus's own problems and goals surface in what he says.
    assert "I stayed until seven twice this week" in text
    marcus = load_persona(MARCUS).persona
    assert isinstance(marcus, Patient)
    agenda = re.search(r"(?:The main thing|What matters most)\? (.+?)\.", text)
    assert agenda is not None, "the patient sets the agenda"
    assert agenda[1].lower() in [p.lower() for p in marcus.presenting_problems]
    priya = (
        _run(tmp_path, run_id="p", persona=PERSONAS / "priya_shah.yaml") / "priya_shah" / "session_01.txt"
    ).read_text()
    assert "Priya" in priya and "Marcus" not in priya


def test_automatic_backend_choice_says_so(tmp_path: Path) -> None:
    result = invoke("run", MARCUS, "--out", tmp_path, "--run-id", "auto", "--max-turns", "12")
    assert result.exit_code == 0
    assert "using the offline backend" in result.stderr


def test_max_turns_and_start_with_previous_summary(tmp_path: Path) -> None:
    summary = tmp_path / "s7.txt"
    summary.write_text("Main topics discussed:\n- Kindness meditation\n")
    config = tmp_path / "never_ends.yaml"
    config.write_text("end_phrases: {therapist: [], patient: [], after_wrap_up: false}\n")
    run_dir = _run(
        tmp_path, "--start", "8", "--previous-summary", summary, "--max-turns", "6", "--config", config
    )
    record = json.loads((run_dir / "marcus_thompson" / "session_08.json").read_text())
    assert record["messages"][0]["content"].startswith("Hi, I'm Marcus Thompson. This is my 8th CBT session.")
    assert record["messages"][0]["content"].endswith("- Kindness meditation")
    assert record["termination"] == {
        "reason": "Max Turns Reached",
        "details": "Reached 6 messages",
        "message_index": 5,
    }
    assert len(record["messages"]) == 6


def test_custom_end_phrases_the_offline_closings_miss_end_at_max_turns(tmp_path: Path) -> None:
    """The offline therapist does not bend its goodbye to the configured phrases: with phrases
    none of its closing lines match, the detector never fires and the session runs to max_turns."""
    config = tmp_path / "farewell.yaml"
    config.write_text(
        "end_phrases: {therapist: ['\\bfarewell\\b'], patient: ['\\bfarewell\\b'], after_wrap_up: false}\n"
    )
    run_dir = _run(tmp_path, "--max-turns", "12", "--config", config)
    record = json.loads((run_dir / "marcus_thompson" / "session_01.json").read_text())
    assert record["termination"]["reason"] == "Max Turns Reached"
    assert len(record["messages"]) == 12


def test_python_dash_m_from_another_directory(tmp_path: Path) -> None:
    """Default therapist and templates are package data, found without the checkout as cwd."""
    env = {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "run",
            str(MARCUS),
            "--backend",
            "offline",
            "--out",
            "out",
            "--run-id",
            "x",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "x" / "marcus_thompson" / "session_01.txt").is_file()


def _bad_input(tmp_path: Path, *args: str | Path) -> str:
    result = invoke("run", *args, "--backend", "offline", "--out", tmp_path / "out", "--run-id", "bad")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), "bad input leaves nothing behind"
    return result.stderr


def test_bad_persona_exits_2_naming_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("role: patient\nname: A\nbackgroud: x\n")
    err = _bad_input(tmp_path, MARCUS, bad)
    assert err.strip() == f"simulator: error: {bad}: unknown key 'backgroud'"


def test_missing_persona_file(tmp_path: Path) -> None:
    err = _bad_input(tmp_path, tmp_path / "nope.yaml")
    assert "nope.yaml: persona file not found" in err


def test_config_with_invalid_regex(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("end_phrases:\n  therapist: ['(unclosed']\n")
    err = _bad_input(tmp_path, MARCUS, "--config", config)
    assert str(config) in err and "end_phrases.therapist" in err and "(unclosed" in err


def test_config_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("max_turn: 10\n")
    err = _bad_input(tmp_path, MARCUS, "--config", config)
    assert err.strip() == f"simulator: error: {config}: unknown key 'max_turn'"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ patient.__class__.__bases__ }}", "blocked by the template sandbox"),
        ("Hi {{ patient.name }} {{ mood }}", "undefined template variable: 'mood' is undefined"),
    ],
)
def test_bad_template_override(tmp_path: Path, source: str, expected: str) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "opening.j2").write_text(source)
    err = _bad_input(tmp_path, MARCUS, "--prompts", prompts)
    assert f"{prompts / 'opening.j2'}:1: {expected}" in err


def test_start_needs_previous_summary(tmp_path: Path) -> None:
    err = _bad_input(tmp_path, MARCUS, "--start", "3")
    assert "--start 3 needs --previous-summary FILE" in err


def test_validate_defaults_pass_and_reports_every_problem(tmp_path: Path) -> None:
    result = invoke("validate", PERSONAS, REPO / "prompts")
    assert result.exit_code == 0, result.output
    assert "ok: 4 personas" in result.output
    (tmp_path / "a.yaml").write_text("role: patient\nname: A\nagee: 3\n")
    (tmp_path / "b.yaml").write_text("role: patient\nid: ../up\nname: B\n")
    (tmp_path / "c.yaml").write_text("[1, 2]\n")
    (tmp_path / "patient.j2").write_text("{{ patient.name }} {{ undefined_thing }}")
    result = invoke("validate", tmp_path)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert any("a.yaml: unknown key 'agee'" in line for line in lines)
    assert any("b.yaml" in line and "invalid id '../up'" in line for line in lines)
    assert any("c.yaml" in line and "found a list" in line for line in lines)
    assert any("patient.j2:1: undefined template variable: 'undefined_thing'" in line for line in lines)
    assert len(lines) == 4 and "Traceback" not in result.output
