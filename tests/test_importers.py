"""Importers for third-party persona data: every real record becomes a persona file that loads,
fields land where they belong, ids are valid and unique, and bad input is one clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.errors import InputError
from simulator.importers import (
    from_patient_psi,
    import_file,
    make_id,
    parse_profile_prompt,
    write_personas,
    you_to_i,
)
from simulator.personas import ID_PATTERN, Patient, load_persona
from tests.conftest import invoke

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

FILES = [
    ("patient-psi", "patient-psi/profiles.json", 3),
    ("patient-psi", "patienthub/patientPsi.json", 3),
    ("talkdep", "patienthub/talkDep.json", 12),
    ("consistent-mi", "patienthub/consistentMI.json", 38),
    ("eeyore", "patienthub/eeyore.json", 12),
]


def real(relative: str) -> Path:
    path = REALDATA / relative
    if not path.is_file():
        pytest.skip(f"third-party data not present: {path}")
    return path


def by_id(personas: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in personas}


def write_json(tmp_path: Path, data: Any, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# --- every record of every real file ---------------------------------------------------------


@pytest.mark.parametrize(("fmt", "relative", "count"), FILES, ids=[f[1] for f in FILES])
def test_every_real_record_round_trips_through_a_yaml_file(
    tmp_path: Path, fmt: str, relative: str, count: int
) -> None:
    personas = import_file(fmt, real(relative))
    ids = [p["id"] for p in personas]
    assert len(personas) == count
    assert len(set(ids)) == len(ids), "ids are unique"
    assert all(ID_PATTERN.fullmatch(i) for i in ids)
    paths = write_personas(personas, tmp_path)
    assert [p.name for p in paths] == [f"{i}.yaml" for i in ids]
    for persona, path in zip(personas, paths, strict=True):
        loaded = load_persona(path).persona
        assert loaded == Patient.model_validate(persona)
        assert loaded.key == path.stem and loaded.role == "patient" and loaded.name
        assert Path(relative).name in loaded.extra["source"]
        assert loaded.extra["license"] == "MIT", "both upstream repositories publish these files as MIT"
        assert "Cannot be identified" not in path.read_text(encoding="utf-8")


def test_patient_psi_conceptualisation_lands_in_cbt_fields() -> None:
    for relative in ("patient-psi/profiles.json", "patienthub/patientPsi.json"):
        personas = by_id(import_file("patient-psi", real(relative)))
        assert list(personas) == ["psi_abe_1_1", "psi_abe_1_2", "psi_abe_1_3"]
        abe = personas["psi_abe_1_1"]
        assert abe["name"] == "Abe" and abe["modality"] == "CBT"
        assert abe["background"].startswith("Father leaves family when Abe is 11 years old.")
        assert abe["core_beliefs"][0] == "I am incompetent."
        assert abe["extra"]["core_belief_types"] == {"helpless": abe["core_beliefs"]}
        during = [
            "If I avoid challenges, I'll be okay, but if I try to do hard things I'll fail.",
            "If I avoid asking for help, my incompetence won't show but if I do ask for help, "
            "people will see how incompetent I am.",
        ]
        assert abe["intermediate_beliefs"] == [
            "It's important to be responsible, competent, reliable and helpful.",
            "It's important to work hard and be productive.",
            *during,
        ]
        assert abe["extra"]["intermediate_beliefs_during_depression"] == during
        assert abe["coping_strategies"] == ["Avoids asking for help and avoids challenges."]
        assert abe["presenting_problems"] == ["feeling anxious, worried, fearful, scared and tense"]
        assert abe["extra"]["triggers"] == ["Thinking about bills."]
        assert abe["extra"]["automatic_thoughts"] == ["What if I run out of money?"]
        assert abe["extra"]["emotions"] == ["anxious, worried, fearful, scared, tense"]
        assert abe["extra"]["behaviors"] == ["Continues to sit on couch; ruminates about his failures."]
        assert abe["extra"]["conversational_styles"][:3] == ["plain", "verbose", "tangent"]
        style = abe["speech_style"]
        assert "Talks a lot" in style and "tangents" in style and "Guarded" in style
        assert "plainly" not in style, "'plain' means no style when other styles are given"
        assert personas["psi_abe_1_2"]["extra"]["automatic_thoughts"] == [
            "I should be able to do this on my own."
        ]


def test_talkdep_profile_lands_in_persona_fields() -> None:
    personas = by_id(import_file("talkdep", real("patienthub/talkDep.json")))
    alex = personas["talkdep_alex"]
    assert (alex["name"], alex["age"], alex["pronouns"]) == ("Alex", 24, "he/him")
    assert personas["talkdep_laura"]["pronouns"] == "she/her"
    # most severe first, as short phrases the opening can use ("struggling with sleep disturbances")
    assert alex["presenting_problems"] == [
        "sleep disturbances",
        "difficulty concentrating",
        "irritability",
        "appetite changes",
    ]
    assert alex["background"].startswith("Alex recently graduated with a degree in Philosophy")
    assert "small group of supportive friends" in alex["background"]
    assert "It’s probably nothing" in alex["speech_style"]
    assert alex["personality"].startswith("Reluctant to openly discuss irritability")
    extra = alex["extra"]
    assert extra["bdi_score"] == 15 and extra["depression_level"] == "Mild Depression"
    assert extra["gender"] == "Male"
    assert extra["symptom_severity"]["Sleep Disturbances"] == 2
    assert "I find it hard to focus on things, even small tasks." in extra["voice_samples"]
    for key in ("past_interactions", "typical_topics", "response_goals", "social_media_activity"):
        assert extra[key], key
    assert "presenting_problems" not in personas["talkdep_maya"], "minimal depression: no symptoms listed"


def test_consistent_mi_client_becomes_a_first_person_mi_persona() -> None:
    personas = by_id(import_file("consistent-mi", real("patienthub/consistentMI.json")))
    assert all(p["modality"] == "MI" for p in personas.values())
    client = personas["mi_25_career_break"]
    assert client["presenting_problems"] == ["drug use"]
    assert client["background"].startswith("I smoke weed to relax after a long day. My wife is concerned")
    assert "My boss may fire me for failing the UA." in client["background"]
    assert client["intermediate_beliefs"][0] == "I believe weed helps me unwind."
    extra = client["extra"]
    assert extra["topic"] == "reducing drug use"
    assert extra["stage_of_change"] == "Precontemplation"
    assert extra["motivation_topics"] == ["Career Break", "Employment", "Economy"]
    assert extra["motivation"].endswith("as I may lose my job.")
    assert extra["suggestibilities"] == [3, 3, 3, 2, 3] and extra["quality"] == "high"
    assert extra["acceptable_plans"][0].startswith("I consider talking to his boss")
    assert "the name is invented" in extra["source"]
    # the same client with another motivation keeps its name; a named client keeps its own
    assert personas["mi_25_divorce"]["name"] == client["name"]
    assert {"mi_15_flu", "mi_15_flu_2"} <= set(personas)
    rick = personas["mi_42_child_custody"]
    assert rick["name"] == "Rick" and "invented" not in rick["extra"]["source"]
    assert personas["mi_23_inflammation"]["presenting_problems"] == [
        "opposing the use of a chronic inhaler for my daughter"
    ]


def test_eeyore_profile_and_cognitive_profile_land_in_persona_fields() -> None:
    personas = by_id(import_file("eeyore", real("patienthub/eeyore.json")))
    client = personas["eeyore_esc_1132"]
    name = client["name"]
    assert client["pronouns"] == "she/her" and "the name is invented" in client["extra"]["source"]
    assert client["presenting_problems"][0] == "feeling sad, empty or hopeless"
    assert "thoughts of death and suicide" not in client["presenting_problems"]
    assert client["background"].startswith(f"{name} is feeling sad and lonely after breaking up")
    assert client["core_beliefs"] == ["I am bound to be rejected, I am bound to be abandoned"]
    assert "If I'm not with the popular guy, then I'm worthless." in client["intermediate_beliefs"]
    extra = client["extra"]
    assert extra["core_belief_types"] == "Unlovable belief"
    assert extra["marital_status"] == "Single"
    assert extra["cognition_distortion_exhibition"]["personalization"] == "Exhibited"
    assert extra["symptom_severity"]["greater impulsivity"] == "Mild"
    assert (
        extra["automatic_thoughts"][2]
        == "Others might get him before I can, I need to hurry and get him back"
    )
    assert len(extra["triggers"]) == len(extra["emotions"]) == len(extra["behaviors"]) == 3
    assert extra["voice_samples"][0].startswith("I am feeling really sad and lonely right now.")
    assert extra["source_conversation"][0] == "Supporter: hello, how are you feeling today?"
    student = personas["eeyore_esc_1242"]
    assert student["occupation"] == "Student" and student["extra"]["age_range"] == "0~24"
    assert "pronouns" not in student and "age" not in student


def _known_only(profile: dict[str, Any]) -> dict[str, Any]:
    def known(value: Any) -> bool:
        text = re.sub(r"^\d+-", "", value) if isinstance(value, str) else ""
        return text not in ("Cannot be identified", "Not exhibited")

    out: dict[str, Any] = {}
    for key, value in profile.items():
        if isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if known(v)}
        elif known(value):
            out[key] = value
    return out


def test_eeyore_system_prompt_lines_parse_back_to_the_profile(tmp_path: Path) -> None:
    records = json.loads(real("patienthub/eeyore.json").read_text(encoding="utf-8"))
    for record in records:
        prompt = record["conversation"][0]["content"]
        assert parse_profile_prompt(prompt) == _known_only(record["profile"])
    # a record with only its conversation: the profile comes from the system prompt
    bare = [{k: v for k, v in r.items() if k not in ("profile", "cognitive profile")} for r in records]
    from_prompt = import_file("eeyore", write_json(tmp_path, bare))
    full = import_file("eeyore", real("patienthub/eeyore.json"))
    for a, b in zip(from_prompt, full, strict=True):
        assert (a["id"], a["name"], a.get("pronouns")) == (b["id"], b["name"], b.get("pronouns"))
        assert a["presenting_problems"] == b["presenting_problems"]
        assert a["extra"].get("voice_samples") == b["extra"].get("voice_samples")


def test_fields_without_a_home_are_kept_under_extra() -> None:
    persona = from_patient_psi(
        {"name": "Ann", "history": "h", "notes": "seen twice", "Source": "a book", "source": "a site"},
        index=4,
    )
    extra = persona["extra"]
    assert extra["notes"] == "seen twice"
    assert extra["original_source"] == "a book" and "a site" in extra.values(), "nothing overwritten"
    assert extra["source"] == "Patient-Ψ profiles.json record 4 (id 4)"
    assert list(extra)[-1] == "source"
    assert "license" not in extra, "the licence is the importer's to write"
    with_licence = from_patient_psi({"name": "Ann", "history": "h", "license": "CC0-1.0"}, index=5)
    assert with_licence["extra"]["original_license"] == "CC0-1.0"


# --- ids ---------------------------------------------------------------------------------------


def test_odd_names_get_valid_unique_ids(tmp_path: Path) -> None:
    names = [
        "José O'Brien",
        "Zoë D’Arcy-Nguyễn",
        "Strauß",
        "李明",
        "王芳",
        "Ab",
        "Ab",
        "!!! ???",
        "  spaced   out  ",
        "Ω" + "x" * 200,
    ]
    records = [{"name": n, "id": "1", "history": "Some history."} for n in names]
    personas = import_file("patient-psi", write_json(tmp_path, records))
    ids = [p["id"] for p in personas]
    assert all(ID_PATTERN.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert ids[:3] == ["psi_jose_obrien_1", "psi_zoe_darcy_nguyen_1", "psi_strauss_1"]
    assert ids[3] != ids[4] and ids[3].startswith("psi_u")
    assert ids[5:7] == ["psi_ab_1", "psi_ab_1_2"]
    assert personas[8]["name"] == "spaced out" and len(ids[9]) <= 64
    paths = write_personas(personas, tmp_path / "out")
    assert "Zoë D’Arcy-Nguyễn" in paths[1].read_text(encoding="utf-8")
    assert [load_persona(p).persona.name for p in paths] == [p["name"] for p in personas]


def test_make_id_and_you_to_i() -> None:
    assert make_id("psi", "Abe", "1-1") == "psi_abe_1_1"
    assert make_id("x", "", "   ") == "x"
    assert (
        you_to_i("Your boss may fire you because you are late.") == "My boss may fire me because I am late."
    )
    assert you_to_i("She knew you had a hangover, so you were grounded.") == (
        "She knew I had a hangover, so I was grounded."
    )
    assert you_to_i("She expected you not to drink.") == "She expected me not to drink."


# --- writing -------------------------------------------------------------------------------------


def test_write_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    persona = from_patient_psi({"name": "Abe", "id": "1-1", "history": "First."})
    (path,) = write_personas([persona], tmp_path)
    before = path.read_text(encoding="utf-8")
    changed = {**persona, "background": "Second."}
    with pytest.raises(InputError, match="already exists; pass --force to overwrite") as info:
        write_personas([changed], tmp_path)
    assert info.value.source == str(path)
    assert path.read_text(encoding="utf-8") == before
    write_personas([changed], tmp_path, force=True)
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["background"] == "Second."
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_write_checks_every_persona_before_writing_any(tmp_path: Path) -> None:
    persona = from_patient_psi({"name": "Abe", "id": "1-1", "history": "First."})
    with pytest.raises(InputError, match="two personas have the id 'psi_abe_1_1'"):
        write_personas([persona, persona], tmp_path / "out")
    with pytest.raises(InputError, match="unknown key 'hobbies'"):
        write_personas([persona, {**persona, "id": "other", "hobbies": "chess"}], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the CLI -------------------------------------------------------------------------------------

END_TO_END = [
    ("patient-psi", "patienthub/patientPsi.json", "psi_abe_1_1"),
    ("talkdep", "patienthub/talkDep.json", "talkdep_laura"),
    ("consistent-mi", "patienthub/consistentMI.json", "mi_25_career_break"),
    ("eeyore", "patienthub/eeyore.json", "eeyore_esc_1132"),
]


@pytest.mark.parametrize(("fmt", "relative", "persona_id"), END_TO_END, ids=[e[0] for e in END_TO_END])
def test_cli_import_then_offline_run(tmp_path: Path, fmt: str, relative: str, persona_id: str) -> None:
    source = real(relative)
    result = invoke("import", fmt, source, "--out", tmp_path / "personas")
    assert result.exit_code == 0, result.output
    written = result.stdout.splitlines()
    assert sorted(written) == sorted(str(p) for p in (tmp_path / "personas").iterdir())
    path = tmp_path / "personas" / f"{persona_id}.yaml"
    assert str(path) in written
    persona = load_persona(path).persona
    assert isinstance(persona, Patient)

    run = invoke(
        "run", path, "--backend", "offline", "--out", tmp_path / "runs", "--run-id", "x", "--max-turns", "12"
    )
    assert run.exit_code == 0, run.output
    transcript = (tmp_path / "runs" / "x" / persona_id / "session_01.txt").read_text(encoding="utf-8")
    opening, rest = transcript.split("\n\nTherapist: ", 1)
    assert f"Hi, I'm {persona.name}. This is my 1st {persona.modality} session." in opening
    assert persona.presenting_problems[0] in opening
    patient_lines = " ".join(re.findall(r"^Patient: (.*)$", rest, re.M))
    spoken = patient_lines.lower()  # a problem may open a sentence, capitalised
    assert any(problem.lower() in spoken for problem in persona.presenting_problems), patient_lines


def test_the_licence_reaches_the_dataset_card_and_license_overrides_it(tmp_path: Path) -> None:
    source = real("patienthub/talkDep.json")
    assert invoke("import", "talkdep", source, "--out", tmp_path / "mit").exit_code == 0
    custom = invoke("import", "talkdep", source, "--out", tmp_path / "cc", "--license", "CC-BY-NC-4.0")
    assert custom.exit_code == 0, custom.output
    assert load_persona(tmp_path / "cc" / "talkdep_laura.yaml").persona.extra["license"] == "CC-BY-NC-4.0"
    for folder, licence in (("mit", "MIT"), ("cc", "CC-BY-NC-4.0")):
        path = tmp_path / folder / "talkdep_laura.yaml"
        args = ("--backend", "offline", "--out", tmp_path / "runs", "--run-id", folder, "--max-turns", "6")
        assert invoke("run", path, *args).exit_code == 0
        out = tmp_path / f"ds_{folder}"
        exported = invoke("export", tmp_path / "runs" / folder, "--format", "parquet", "--out", out)
        assert exported.exit_code == 0, exported.output
        card = (out / "README.md").read_text(encoding="utf-8")
        row = next(line for line in card.splitlines() if line.startswith("| talkdep_laura |"))
        assert row.endswith(f"| {licence} |") and "TalkDep talkDep.json" in row, row


def test_a_bad_license_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    result = invoke(
        "import",
        "talkdep",
        real("patienthub/talkDep.json"),
        "--out",
        tmp_path / "out",
        "--license",
        "MIT licence",
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "simulator: error: --license: bad licence 'MIT licence': expected an SPDX identifier such as MIT or CC-BY-4.0"
    ]
    assert not (tmp_path / "out").exists()


def test_cli_refuses_to_overwrite_then_force_overwrites(tmp_path: Path) -> None:
    source = write_json(tmp_path, [{"name": "Abe", "id": "1-1", "history": "First."}])
    out = tmp_path / "personas"
    assert invoke("import", "patient-psi", source, "--out", out).exit_code == 0
    again = invoke("import", "patient-psi", source, "--out", out)
    assert again.exit_code == 2
    assert again.stderr.splitlines() == [
        f"simulator: error: {out / 'psi_abe_1_1.yaml'}: already exists; pass --force to overwrite"
    ]
    forced = invoke("import", "patient-psi", source, "--out", out, "--force")
    assert forced.exit_code == 0 and forced.stdout == f"{out / 'psi_abe_1_1.yaml'}\n"


BAD = [
    ('{"name": "Abe",', "not valid JSON: line 1, column 16"),
    ('{"name": "Abe"}', "expected a JSON list of patient-psi records, found an object"),
    ("[]", "no records: the JSON list is empty"),
    ('["Abe"]', "record 0: expected a JSON object, found text"),
    ('[{"name": "Abe"}]', "record 0: not a patient-psi record: missing key 'history'"),
    ('[{"name": "", "history": "x"}]', "record 0: key 'name' is missing or empty"),
    ('[{"name": "Abe", "history": "x", "type": {"a": 1}}]', "record 0: key 'type' must be a list of text"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[b[1] for b in BAD])
def test_cli_bad_input_is_one_line_naming_the_file(tmp_path: Path, text: str, expected: str) -> None:
    source = tmp_path / "bad.json"
    source.write_text(text, encoding="utf-8")
    result = invoke("import", "patient-psi", source, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"simulator: error: {source}: {expected}"), line
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_bad_files_and_formats_raise_input_errors(tmp_path: Path) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe[")
    with pytest.raises(InputError, match="not UTF-8"):
        import_file("talkdep", binary)
    with pytest.raises(InputError, match="file not found"):
        import_file("talkdep", tmp_path / "missing.json")
    with pytest.raises(InputError, match="unknown format 'csv'; expected one of: patient-psi, talkdep"):
        import_file("csv", binary)
    result = invoke("import", "csv", binary, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Invalid value for 'FORMAT'" in result.stderr


def test_a_file_in_another_format_is_refused(tmp_path: Path) -> None:
    source = real("patienthub/talkDep.json")
    result = invoke("import", "patient-psi", source, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"simulator: error: {source}: record 0: not a patient-psi record: missing key 'history' "
        "(keys found: 'name', 'age', 'gender', 'bdi_score', 'depression_level', 'key_negative_symptoms')"
    ]
