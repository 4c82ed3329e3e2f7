"""The offline backend's transcripts read like sessions (issue 17): no patient stock lines shared
between personas, no filler echoes or voice slips in the therapist's reflections, each session
its own situation and feelings, a script per modality, and every stored message passing the
engine's own guards. Runs go through the real CLI; imported personas come from the real
third-party files in ../shared/realdata."""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from simulator.backends.offline.modalities import modality_of
from simulator.guards import check_role, find_repeat
from simulator.personas import Patient, Therapist, load_persona
from simulator.summary import clean_summary, parse_sections
from simulator.text import ends_mid_sentence, normalize, split_sentences
from tests.conftest import PERSONAS, invoke

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "patienthub"
BUNDLED = [PERSONAS / f"{name}.yaml" for name in ("marcus_thompson", "priya_shah", "walter_kowalski")]
IMPORTED = [  # two personas of each importer, from the real files
    ("patient-psi", "patientPsi.json", ("psi_abe_1_1", "psi_abe_1_3")),
    ("talkdep", "talkDep.json", ("talkdep_noah", "talkdep_marco")),
    ("consistent-mi", "consistentMI.json", ("mi_0_depression", "mi_25_divorce")),
    ("eeyore", "eeyore.json", ("eeyore_esc_1121", "eeyore_red_depression_206374")),
]
FILLER_ECHO = re.compile(
    r"(?i)\b(?:like|that|so|is that|hearing is that|saying)\s+(?:yeah|well|um|uh|so|i mean|honestly|like|okay)\b[,.]?\s"
)
AGREEMENT_SLIP = re.compile(
    r"\b(?:I|you|You) (?:is|isn't|has|hasn't|does|doesn't|was not)\b|\b(?:he|she|He|She) (?:are|have|don't|were)\b"
    r"|\b(?:I|you) \w+ly (?:feels|thinks|needs|mentions|brushes)\b|\bforgots\b"
)
CBT_AGENDA = re.compile(r"(?i)\bagenda\b|thought record|\bhomework\b|examine the evidence|balanced thought")


def run(tmp_path: Path, personas: list[Path], sessions: int, run_id: str, *extra: str) -> Path:
    result = invoke(
        "run", *personas, "--backend", "offline", "--sessions", str(sessions), "--out", tmp_path,
        "--run-id", run_id, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / run_id


def records(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name != "inputs"):
        found[folder.name] = [json.loads(f.read_text()) for f in sorted(folder.glob("session_*.json"))]
    return found


def said(record: dict[str, Any], speaker: str) -> list[str]:
    """What a speaker said in a session; the patient's template opening is not the backend's."""
    return [m["content"] for m in record["messages"][1:] if m["speaker"] == speaker]


def outside_quotes(text: str) -> str:
    return re.sub(r"\"[^\"]*\"|“[^”]*”", "", text)


def guard_defects(record: dict[str, Any]) -> list[str]:
    """What the engine's own checks find in a stored session: cut, repeated, out-of-role
    messages, repairs the loop had to make, an unnatural end, a summary needing repair."""
    defects = []
    earlier: dict[str, list[str]] = defaultdict(list)
    for message in record["messages"]:
        text, speaker, index = message["content"], message["speaker"], message["index"]
        if index and ends_mid_sentence(text):  # the opening may end on the summary's last bullet
            defects.append(f"{index}: truncated")
        if check_role(text, speaker, ()).flags:
            defects.append(f"{index}: role {check_role(text, speaker, ()).flags}")
        if index and find_repeat(text, earlier[speaker]) is not None:
            defects.append(f"{index}: repeats an earlier {speaker} message")
        earlier[speaker].append(text)
        repairs = [flag for flag in message.get("flags", []) if flag != "template"]
        if repairs:
            defects.append(f"{index}: repaired {repairs}")
    if record["termination"]["reason"] != "Natural Session End":
        defects.append(f"termination: {record['termination']}")
    checked = clean_summary(record["summary"])
    if checked.missing or set(checked.flags) - {"summary_bullets_normalized"}:
        defects.append(f"summary: {checked.flags} {checked.missing}")
    return [f"{record['persona_id']} session {record['session_number']} message {d}" for d in defects]


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every bundled patient persona, five sessions each."""
    return run(tmp_path_factory.mktemp("bundled"), BUNDLED, 5, "five")


@pytest.fixture(scope="module")
def bundled(bundled_run: Path) -> dict[str, list[dict[str, Any]]]:
    """The newcomer's view: the three bundled personas, three sessions each."""
    return {persona: sessions[:3] for persona, sessions in records(bundled_run).items()}


def audit(run_dir: Path, sessions: int) -> None:
    """``simulator audit`` (the project's own checks) finds no defect in any session."""
    result = invoke("audit", run_dir)
    assert result.exit_code == 0, result.output
    assert result.output.count(", 0 defects") == sessions, result.output


def test_no_patient_stock_line_is_shared_between_personas(bundled: dict[str, list[dict[str, Any]]]) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for persona, sessions in bundled.items():
        for record in sessions:
            for text in said(record, "Patient"):
                for sentence in split_sentences(text):
                    if len(sentence.split()) >= 8:
                        owners[normalize(sentence)].add(persona)
    texts = {p.stem: normalize(p.read_text()) for p in BUNDLED}
    shared = {
        sentence: sorted(personas)
        for sentence, personas in owners.items()
        if len(personas) > 1 and not all(sentence in texts[p] for p in personas)
    }
    assert shared == {}
    assert len(owners) > 40, "the patients say plenty of long sentences, each their own"


def test_reflections_without_fillers_voice_slips_or_agreement_slips(
    bundled: dict[str, list[dict[str, Any]]],
) -> None:
    third = {
        "marcus_thompson": r"\b(?:he|him|his|himself)\b",
        "walter_kowalski": r"\b(?:he|him|his|himself)\b",
    }
    third["priya_shah"] = r"\b(?:she|herself|Priya's)\b"
    reflections = 0
    for persona, sessions in bundled.items():
        for record in sessions:
            for text in said(record, "Therapist"):
                assert not FILLER_ECHO.search(text), text
                assert not re.search(third[persona], outside_quotes(text), re.I), text
                reflections += bool(re.match(r"(?:It sounds like|So|What I'm hearing is that) ", text))
            for text in said(record, "Therapist") + said(record, "Patient"):
                assert not AGREEMENT_SLIP.search(text), text
    assert reflections >= 30, "the therapist reflects in most turns"


def reflections(record: dict[str, Any]) -> list[str]:
    """Therapist messages that open by saying the patient's last words back."""
    messages = record["messages"]
    found = []
    for before, message in itertools.pairwise(messages):
        first = split_sentences(message["content"])[0]
        words = [set(w for w in normalize(t).split() if len(w) >= 4) for t in (before["content"], first)]
        if message["speaker"] == "Therapist" and len(words[0] & words[1]) >= 3:
            found.append(first)
    return found


def test_the_therapist_reflects_the_patients_own_words(bundled: dict[str, list[dict[str, Any]]]) -> None:
    for sessions in bundled.values():
        for record in sessions:
            assert len(reflections(record)) >= 3, record["messages"]


def test_each_session_has_its_own_situation_and_feelings(bundled: dict[str, list[dict[str, Any]]]) -> None:
    for persona, sessions in bundled.items():
        check_ins = [said(record, "Patient")[0] for record in sessions]
        feelings = [re.search(r"I've felt ([\w ]+) and ([\w ]+)\.", c) for c in check_ins]
        assert all(feelings), check_ins
        for before, after, felt_before, felt_after in zip(
            check_ins, check_ins[1:], feelings, feelings[1:], strict=False
        ):
            assert split_sentences(before)[1] != split_sentences(after)[1], persona
            assert felt_before is not None and felt_after is not None
            assert set(felt_before.groups()) != set(felt_after.groups()), persona
    marcus = load_persona(BUNDLED[0]).persona
    assert isinstance(marcus, Patient)
    assert "I stayed until seven twice this week" in said(bundled["marcus_thompson"][1], "Patient")[0]


def test_bundled_sessions_pass_the_engines_checks(bundled_run: Path) -> None:
    sessions = [record for found in records(bundled_run).values() for record in found]
    assert len(sessions) == 15
    defects = [d for record in sessions for d in guard_defects(record)]
    assert defects == []


def real(name: str) -> Path:
    path = REALDATA / name
    if not path.is_file():
        pytest.skip(f"third-party data not present: {path}")
    return path


@pytest.fixture(scope="module")
def imported_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two personas of every importer, imported from the real files, five sessions each."""
    tmp = tmp_path_factory.mktemp("imported")
    chosen: list[Path] = []
    for fmt, name, ids in IMPORTED:
        result = invoke("import", fmt, real(name), "--out", tmp / fmt)
        assert result.exit_code == 0, result.output
        chosen += [tmp / fmt / f"{persona_id}.yaml" for persona_id in ids]
    return run(tmp, chosen, 5, "five")


@pytest.fixture(scope="module")
def imported(imported_run: Path) -> dict[str, list[dict[str, Any]]]:
    return records(imported_run)


def test_simulator_audit_finds_no_defect(bundled_run: Path, imported_run: Path) -> None:
    audit(bundled_run, 3 * 5)
    audit(imported_run, 8 * 5)


def test_imported_sessions_pass_the_engines_checks(imported: dict[str, list[dict[str, Any]]]) -> None:
    assert len(imported) == 8 and all(len(sessions) == 5 for sessions in imported.values())
    defects = [d for sessions in imported.values() for record in sessions for d in guard_defects(record)]
    assert defects == []
    for sessions in imported.values():
        for record in sessions:
            for text in said(record, "Therapist") + said(record, "Patient"):
                assert not FILLER_ECHO.search(text) and not AGREEMENT_SLIP.search(text), text


def test_an_mi_persona_gets_reflections_and_no_cbt_agenda(imported: dict[str, list[dict[str, Any]]]) -> None:
    for record in imported["mi_0_depression"]:
        therapist = said(record, "Therapist")
        assert not [t for t in therapist if CBT_AGENDA.search(t)]
        assert len(reflections(record)) >= 3, therapist
        asked = " ".join(therapist)
        assert "how important is it to you to make a change" in asked  # change talk
        assert "What, if anything, would you like to do" in asked  # the next step is theirs
        homework = parse_sections(record["summary"])["Homework assigned"]
        patient = " ".join(said(record, "Patient"))
        assert homework == ["None this session"] or "I'll" in patient  # only a step they chose


def test_modality_picks_the_script(tmp_path: Path) -> None:
    therapist = load_persona(PERSONAS / "nova.yaml").persona
    assert isinstance(therapist, Therapist)
    source = BUNDLED[0].read_text()
    for modality, expected in (("MI", "mi"), ("Person-centred", "person-centred"), ("ACT", "person-centred")):
        path = tmp_path / f"{expected}.yaml"
        path.write_text(source.replace("modality: CBT", f"modality: {modality}"))
        patient = load_persona(path).persona
        assert isinstance(patient, Patient) and modality_of(patient, therapist) == expected
    unset = tmp_path / "unset.yaml"
    unset.write_text(source.replace("modality: CBT\n", ""))
    patient = load_persona(unset).persona
    assert isinstance(patient, Patient)
    assert modality_of(patient, therapist) == "cbt"  # the therapist's
    assert modality_of(patient, therapist.model_copy(update={"modality": "MI"})) == "mi"


def test_a_person_centred_session_follows_the_patient(tmp_path: Path) -> None:
    persona = tmp_path / "marcus_pc.yaml"
    text = BUNDLED[0].read_text().replace("modality: CBT", "modality: person-centred")
    persona.write_text(text.replace("id: marcus_thompson", "id: marcus_pc"))
    sessions = records(run(tmp_path, [persona], 2, "pc"))["marcus_pc"]
    for record in sessions:
        therapist = " ".join(said(record, "Therapist"))
        assert not CBT_AGENDA.search(therapist), therapist
        assert re.search(
            r"What is that like|How does that feel|What does that mean|What does it say", therapist
        )
        assert guard_defects(record) == []


def test_readme_excerpt_is_the_real_output(tmp_path: Path) -> None:
    """README's first command, and the excerpt of its session 2 it shows, line for line."""
    readme = (PERSONAS.parent / "README.md").read_text(encoding="utf-8")
    assert "simulator run personas/marcus_thompson.yaml --sessions 3 --backend offline" in readme
    excerpt = readme.split("```\nSession Number: 2\n", 1)[1].split("```", 1)[0]
    session = (run(tmp_path, [BUNDLED[0]], 3, "readme") / "marcus_thompson" / "session_02.txt").read_text()
    lines = [line for line in excerpt.splitlines() if line and line != "..."]
    assert len(lines) > 15
    assert [line for line in lines if line not in session.splitlines()] == []
