"""Templates: sandboxed, strict, overridable, with persona text kept as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.config import RunConfig
from simulator.errors import InputError
from simulator.personas import load_persona
from simulator.plan import RunPlan, default_therapist_path
from simulator.templates import Templates, ordinal
from tests.conftest import MARCUS


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (8, "8th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (23, "23rd"),
        (101, "101st"),
        (111, "111th"),
        (112, "112th"),
    ],
)
def test_ordinal(number: int, text: str) -> None:
    assert ordinal(number) == text


def _plan(prompts: Path | None = None, persona: Path = MARCUS) -> RunPlan:
    return RunPlan(
        RunConfig(), [load_persona(persona)], load_persona(default_therapist_path()), Templates(prompts), None
    )


def test_opening_uses_ordinal_and_previous_summary() -> None:
    plan = _plan()
    patient = plan.patients[0].persona
    first = plan.prompts(patient, 1, None).opening  # type: ignore[arg-type]
    assert first.startswith("Hi, I'm Marcus Thompson. This is my 1st CBT session.")
    assert "Last time" not in first
    eighth = plan.prompts(patient, 8, "Main topics discussed:\n- guilt").opening  # type: ignore[arg-type]
    assert eighth.startswith(
        "Hi, I'm Marcus Thompson. This is my 8th CBT session. Last time we talked about:"
    )
    assert eighth.endswith("Main topics discussed:\n- guilt")


def test_persona_text_is_data_not_template_code(tmp_path: Path) -> None:
    persona = tmp_path / "tricky.yaml"
    persona.write_text(
        'role: patient\nname: "{{ 7*7 }} Smith"\nbackground: "Says {{ 7*7 }} and {% raw %}."\n'
        'presenting_problems: ["{{ cycler.__init__.__globals__ }}"]\n',
        encoding="utf-8",
    )
    plan = _plan(persona=persona)
    prompts = plan.prompts(plan.patients[0].persona, 1, None)  # type: ignore[arg-type]
    assert "{{ 7*7 }} Smith" in prompts.opening
    assert "Says {{ 7*7 }} and {% raw %}." in prompts.patient
    assert "49" not in prompts.patient


def test_override_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "opening.j2").write_text(
        "Hello from {{ patient.name }}, session {{ session_number|ordinal }}."
    )
    plan = _plan(tmp_path)
    prompts = plan.prompts(plan.patients[0].persona, 3, None)  # type: ignore[arg-type]
    assert prompts.opening == "Hello from Marcus Thompson, session 3rd."
    assert "Marcus" in prompts.patient  # the others still come from the defaults


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ patient.__class__.__mro__ }}", "blocked by the template sandbox"),
        ("{{ patient.name.__class__ }}", "blocked by the template sandbox"),
        ("{{ no_such_variable }}", "undefined template variable: 'no_such_variable' is undefined"),
        ("line one\n{{ patient.nickname }}", "opening.j2:2: undefined template variable"),
        ("{% if %}", "opening.j2:1: template syntax error"),
    ],
)
def test_bad_template_is_one_clear_error(tmp_path: Path, source: str, expected: str) -> None:
    (tmp_path / "opening.j2").write_text(source)
    plan = _plan(tmp_path)
    with pytest.raises(InputError) as info:
        plan.templates.load()
        plan.prompts(plan.patients[0].persona, 1, None)  # type: ignore[arg-type]
    assert str(tmp_path / "opening.j2") in str(info.value)
    assert expected in str(info.value)
