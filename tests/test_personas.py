"""Persona loading: the shipped files load, and every kind of bad file is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.personas import Patient, Therapist, load_persona
from tests.conftest import MARCUS, PERSONAS


def test_shipped_personas_load() -> None:
    loaded = [load_persona(p) for p in sorted(PERSONAS.glob("*.yaml"))]
    patients = [p.persona for p in loaded if isinstance(p.persona, Patient)]
    therapists = [p.persona for p in loaded if isinstance(p.persona, Therapist)]
    assert len(patients) >= 3 and [t.name for t in therapists] == ["Nova"]
    assert all(p.sessions for p in patients), "every shipped patient has scripted session notes"
    marcus = load_persona(MARCUS).persona
    assert marcus.name == "Marcus Thompson" and marcus.key == "marcus_thompson"
    assert isinstance(marcus, Patient) and marcus.modality == "CBT"


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BAD = [
    ("role: patient\nname: [unclosed\n", "invalid YAML: line 3"),
    ("role: patient\nname: !!python/object/apply:os.system ['echo hi']\n", "unsupported YAML tag"),
    ("role: patient\nname: A\nbackgroud: typo\n", "unknown key 'backgroud'"),
    ("role: patient\nname: A\nage: old\n", "key 'age'"),
    ("role: patient\nage: 40\n", "missing required key 'name'"),
    ("role: patient\nname: A\nid: ../escape\n", "invalid id '../escape'"),
    ("role: patient\nname: A\nid: a/b\n", "invalid id 'a/b'"),
    ("", "empty persona file"),
    ("- role: patient\n- name: A\n", "found a list"),
    ("role: doctor\nname: A\n", "key 'role' must be 'patient' or 'therapist'"),
    ("role: patient\nname: A\nsessions: {three: x}\n", "key 'sessions.three'"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[b[1] for b in BAD])
def test_bad_persona_names_file_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_persona(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message


def test_id_defaults_to_stem_and_stem_is_validated(tmp_path: Path) -> None:
    good = _write(tmp_path, "role: patient\nname: Ann Lee\n", "ann_lee.yaml")
    assert load_persona(good).persona.key == "ann_lee"
    bad = _write(tmp_path, "role: patient\nname: Ann Lee\n", "Ann Lee.yaml")
    with pytest.raises(InputError, match="invalid id 'Ann Lee'"):
        load_persona(bad)


def test_beliefs_accept_text_or_list(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "role: patient\nname: A\ncore_beliefs: I am unlovable.\ncoping_strategies: [walks]\n"
    )
    persona = load_persona(path).persona
    assert isinstance(persona, Patient)
    assert persona.core_beliefs == "I am unlovable." and persona.coping_strategies == ["walks"]
