"""`simulator audit` over transcripts we did not make (the reference, real peer-support chats)
and over runs the engine made, through the real CLI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from simulator.audit import KINDS, audit_paths
from simulator.config import RunConfig
from tests.conftest import MARCUS, REPO, invoke

REFERENCE = Path(__file__).parent / "data" / "reference_session_08.txt"
EEYORE = REPO.parent / "shared" / "realdata" / "patienthub" / "eeyore.json"


def reference_messages() -> list[tuple[str, str]]:
    """The reference's messages, sliced independently of the audit's own reader."""
    body = REFERENCE.read_text(encoding="utf-8").split("\n\n\nTermination Details:")[0]
    parts = re.split(r"\n\n(Patient|Therapist): ", body)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_reference_session_reports_exactly_its_known_defects() -> None:
    result = invoke("audit", REFERENCE, "--format", "json")
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    report = json.loads(line)
    assert report["file"] == str(REFERENCE) and report["messages"] == 14
    found = {(d["index"], d["speaker"], d["kind"]) for d in report["defects"]}
    assert found == {
        (0, "Patient", "ordinal_missing"),
        (0, "Patient", "summary_preamble"),
        (8, "Patient", "truncated"),
        (13, "Therapist", "repetition"),
        (13, "Therapist", "meta_commentary"),
        (None, "Summary", "summary_heading_duplicated"),
    }
    assert len(report["defects"]) == len(found)
    repeat = next(d for d in report["defects"] if d["kind"] == "repetition")
    assert repeat["earlier"] == 11 and repeat["score"] == 0.42
    assert report["end"] == {
        "index": 13,
        "reason": "Natural Session End",
        "details": "Detected end phrase: '\\bdon't hesitate to reach out\\b'",
    }
    # Each index, checked against the file itself.
    messages = reference_messages()
    assert messages[0][1].startswith("Hi, I'm Marcus Thompson. This is my 8 CBT session. Last time we")
    assert "Here's a concise summary of Session 7:" in messages[0][1]
    assert messages[8][1].endswith("I think being gentle with myself, even when I'm not meeting my")
    assert messages[11][0] == messages[13][0] == "Therapist"
    assert messages[11][1].startswith("It sounds like we've had a very productive session, Marcus.")
    assert messages[13][1].startswith("It sounds like we've had a very productive session, Marcus.")
    assert "This conversation has been a CBT session between a therapist (me)" in messages[13][1]
    summary = REFERENCE.read_text(encoding="utf-8").split("\n\nSession Summary:\n\n", 1)[1]
    assert summary.startswith("Session Summary:\n\nMain Topics Discussed:")


def test_reference_text_output() -> None:
    result = invoke("audit", REFERENCE)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{REFERENCE}: 14 messages, 6 defects",
        '  message 0 (Patient): ordinal_missing: "8 CBT session"',
        "  message 0 (Patient): summary_preamble",
        '  message 8 (Patient): truncated: ends "…with myself, even when I\'m not meeting my"',
        "  message 13 (Therapist): meta_commentary",
        "  message 13 (Therapist): repetition of message 11 (similarity 0.42)",
        "  summary: summary_heading_duplicated",
        "  natural end: message 13 (Natural Session End): Detected end phrase: '\\bdon't hesitate to reach out\\b'",
    ]


def _eeyore_conversations() -> list[list[dict[str, str]]]:
    data = json.loads(EEYORE.read_text(encoding="utf-8"))
    return [[m for m in c["conversation"] if m["role"] != "system"] for c in data]


def test_real_peer_support_chats_have_no_repetition_and_no_premature_end(tmp_path: Path) -> None:
    """Twelve human conversations (ESConv and Reddit, via PatientHub, MIT): no message is a
    repeat, and where a natural end is found it is in the last three messages."""
    files = []
    for number, conversation in enumerate(_eeyore_conversations()):
        path = tmp_path / f"eeyore_{number:02d}.jsonl"
        path.write_text("".join(json.dumps(m) + "\n" for m in conversation), encoding="utf-8")
        files.append(path)
    result = invoke("audit", *files, "--format", "json", "--therapist-is", "user")
    reports = [json.loads(line) for line in result.output.splitlines()]
    assert len(reports) == 12 and sum(r["messages"] for r in reports) == 183
    assert [d for r in reports for d in r["defects"] if d["kind"] == "repetition"] == []
    for report in reports:
        if report["end"] is not None:
            assert report["end"]["index"] >= report["messages"] - 3, report
    ended = {Path(r["file"]).stem for r in reports if r["end"] is not None}
    # Clear closings by reading them: 0 ("I wish you the best of luck"), 1 ("Thank you again!"),
    # 2 ("Have a great day"), 5 ("I hope you have a good evening. Thanks again"), 9 ("My DMs are
    # open for you any time"). Four of five are found.
    assert ended >= {"eeyore_00", "eeyore_01", "eeyore_02", "eeyore_05"}
    assert ended <= {"eeyore_00", "eeyore_01", "eeyore_02", "eeyore_05", "eeyore_07", "eeyore_09"}


def test_a_folder_of_transcripts_is_audited_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(
        '{"speaker": "Patient", "content": "Hi, I was cut off mid"}\n', encoding="utf-8"
    )
    (tmp_path / "a.txt").write_text(REFERENCE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    result = invoke("audit", tmp_path, "--format", "json")
    reports = [json.loads(line) for line in result.output.splitlines()]
    assert [Path(r["file"]).name for r in reports] == ["a.txt", "b.jsonl"]
    assert [d["kind"] for d in reports[1]["defects"]] == ["truncated"]
    assert result.exit_code == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = invoke("audit", empty)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"simulator: error: {empty}: neither a run folder nor a folder of transcripts (.txt, .json, .jsonl, .csv)\n"
    )


def test_jsonl_roles_need_therapist_is(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text('{"role": "user", "content": "Hi."}\n', encoding="utf-8")
    result = invoke("audit", path)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"simulator: error: {path}: line 1: role 'user' needs --therapist-is assistant|user\n"
    )


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        (
            "bad.jsonl",
            '{"speaker": "Patient", "content": "Hi."}\nnot json\n',
            "line 2: invalid JSON: Expecting value",
        ),
        (
            "bad.jsonl",
            '{"speaker": "Nurse", "content": "Hi."}\n',
            "line 1: speaker must be Therapist or Patient, found 'Nurse'",
        ),
        ("bad.jsonl", '{"speaker": "Patient", "content": 3}\n', "line 1: 'content' must be text, found int"),
        ("bad.csv", "who,what\nPatient,Hi\n", "expected 'speaker,content' columns, found who, what"),
        ("bad.csv", "speaker,content\nPatient,Hi\nTherapist\n", "row 3: 1 field, the header has 2"),
        ("bad.csv", 'speaker,content\nPatient,"Hi, I said",again\n', "row 2: 3 fields, the header has 2"),
        (
            "bad.csv",
            "speaker,content\nPatient,Hi\nDoctor,Hello\n",
            "row 3: speaker must be Therapist or Patient, found 'Doctor'",
        ),
        (
            "bad.json",
            "{",
            "invalid JSON: line 1, column 2: Expecting property name enclosed in double quotes",
        ),
        ("bad.json", '{"session_number": 1}', "not a session record: persona_id: Field required"),
        (
            "bad.txt",
            "Just some notes.\n",
            "no 'Patient:' or 'Therapist:' messages found (expected the reference format)",
        ),
        (
            "bad.md",
            "Patient: Hi.\n",
            "unknown transcript format (expected .txt, .json, .jsonl, .csv or a run folder)",
        ),
    ],
)
def test_unreadable_input_is_one_line_and_exit_2(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = invoke("audit", path)
    assert result.exit_code == 2
    assert result.stderr == f"simulator: error: {path}: {problem}\n"
    assert result.output == result.stderr  # nothing on stdout


def test_every_readable_file_is_reported_then_one_line_per_unreadable_one(tmp_path: Path) -> None:
    """A bad file among many does not hide the reports of the files after it, inside a folder
    of transcripts too; the exit code says something could not be read."""
    bad, missing = tmp_path / "bad.txt", tmp_path / "missing.txt"
    bad.write_text("Just some notes.\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.csv").write_text("speaker,content\nPatient,Hi\nTherapist\n", encoding="utf-8")
    (folder / "b.txt").write_text(REFERENCE.read_text(encoding="utf-8"), encoding="utf-8")
    result = invoke("audit", REFERENCE, bad, folder, missing, REFERENCE, "--format", "json")
    assert result.exit_code == 2
    files = [json.loads(line)["file"] for line in result.stdout.splitlines()]
    assert files == [str(REFERENCE), str(folder / "b.txt"), str(REFERENCE)]
    assert result.stderr.splitlines() == [
        f"simulator: error: {bad}: no 'Patient:' or 'Therapist:' messages found (expected the reference format)",
        f"simulator: error: {folder / 'a.csv'}: row 3: 1 field, the header has 2",
        f"simulator: error: {missing}: no such file or directory",
    ]


def test_the_reference_as_csv_and_jsonl_keeps_its_paragraphs_and_its_defects(tmp_path: Path) -> None:
    """Multi-paragraph messages survive both formats (a quoted CSV field spans lines), so each
    finds what the .txt finds in the messages, and the same natural end."""
    messages = reference_messages()
    as_csv, as_jsonl = tmp_path / "ref.csv", tmp_path / "ref.jsonl"
    with as_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["speaker", "content"])
        writer.writerows(messages)
    as_jsonl.write_text("".join(json.dumps({"speaker": s, "content": c}) + "\n" for s, c in messages))
    txt = json.loads(invoke("audit", REFERENCE, "--format", "json").output)
    expected = [d for d in txt["defects"] if d["speaker"] != "Summary"]
    for path in (as_csv, as_jsonl):
        result = invoke("audit", path, "--format", "json")
        assert result.exit_code == 1
        report = json.loads(result.output)
        assert (report["messages"], report["defects"], report["end"]) == (14, expected, txt["end"]), path


def test_csv_and_a_clean_transcript_exit_0(tmp_path: Path) -> None:
    path = tmp_path / "clean.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["speaker", "content"])
        writer.writerow(["Therapist", "Welcome back. How has the week been?"])
        writer.writerow(["Patient", "Busy, but I tried the note, and it helped a little."])
    result = invoke("audit", path)
    assert result.exit_code == 0
    assert result.output.splitlines() == [f"{path}: 2 messages, 0 defects", "  natural end: none"]


def test_a_run_folder_and_its_session_json_with_flags(tmp_path: Path) -> None:
    run = invoke("run", MARCUS, "--backend", "offline", "--out", tmp_path, "--run-id", "r", "--sessions", "2")
    assert run.exit_code == 0, run.output
    run_dir = tmp_path / "r"
    folder = invoke("audit", run_dir, "--format", "json", "--flags")
    reports = [json.loads(line) for line in folder.output.splitlines()]
    assert [Path(r["file"]).name for r in reports] == ["session_01.json", "session_02.json"]
    records = [json.loads((run_dir / "marcus_thompson" / f"session_0{n}.json").read_text()) for n in (1, 2)]
    for report, record in zip(reports, records, strict=True):
        assert report["messages"] == len(record["messages"])
        assert report["flags"]["summary"] == record["summary_flags"]
        repairs = {str(m["index"]): [f for f in m["flags"] if f != "template"] for m in record["messages"]}
        assert report["flags"]["messages"] == {index: found for index, found in repairs.items() if found}
        assert "0" not in report["flags"]["messages"]  # the opening's "template" is no repair
        assert report["defects"] == [], report["defects"]
        termination = record["termination"]
        if termination["reason"] == "Natural Session End":
            assert report["end"]["index"] == termination["message_index"]
    assert folder.exit_code == 0
    # A persona's folder (each session as .txt and .json) is audited once per session.
    persona = invoke("audit", run_dir / "marcus_thompson", "--format", "json")
    assert [Path(json.loads(line)["file"]).name for line in persona.output.splitlines()] == [
        "session_01.json",
        "session_02.json",
    ]
    single = invoke("audit", run_dir / "marcus_thompson" / "session_01.json", "--format", "json")
    assert json.loads(single.output) == {k: v for k, v in reports[0].items() if k != "flags"} | {
        "file": str(run_dir / "marcus_thompson" / "session_01.json")
    }


def test_a_damaged_session_in_a_run_folder_does_not_hide_the_sessions_after_it(tmp_path: Path) -> None:
    run = invoke("run", MARCUS, "--backend", "offline", "--out", tmp_path, "--run-id", "r", "--sessions", "3")
    assert run.exit_code == 0, run.output
    damaged = tmp_path / "r" / "marcus_thompson" / "session_02.json"
    damaged.write_text("{bad", encoding="utf-8")
    result = invoke("audit", tmp_path / "r", "--format", "json")
    assert result.exit_code == 2
    files = [Path(json.loads(line)["file"]).name for line in result.stdout.splitlines()]
    assert files == ["session_01.json", "session_03.json"]
    [line] = result.stderr.splitlines()
    assert line.startswith(f"simulator: error: {damaged}: damaged session record: ")


def test_config_thresholds_apply(tmp_path: Path) -> None:
    config = tmp_path / "audit.yaml"
    config.write_text("min_turns: 20\nguards: {repetition_threshold: 0.9}\n", encoding="utf-8")
    result = invoke("audit", REFERENCE, "--config", config, "--format", "json")
    report = json.loads(result.output)
    assert "repetition" not in {d["kind"] for d in report["defects"]}
    assert report["end"] is None  # 14 messages never reach min_turns 20


def test_every_kind_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"`{kind}`" in readme, kind


def test_defect_kinds_are_the_listed_ones() -> None:
    (report,) = list(audit_paths([REFERENCE], RunConfig()))
    assert {d.kind for d in report.defects} <= set(KINDS)
