"""`simulator export` formats, checked the way their consumers check them.

- OpenAI chat fine-tuning JSONL: the format of the fine-tuning guide
  (https://platform.openai.com/docs/guides/supervised-fine-tuning, "Preparing your dataset":
  one JSON object a line with a ``messages`` list in the Chat Completions format) and the format
  checks of OpenAI's cookbook notebook "Data preparation and analysis for chat model fine-tuning"
  (https://github.com/openai/openai-cookbook/blob/main/examples/Chat_finetuning_data_prep.ipynb):
  a ``messages`` list; each message with ``role`` and ``content``, no keys but role, content,
  name, function_call and weight; roles among system, user, assistant, function; string content;
  at least one assistant message.
- ShareGPT as LLaMA-Factory reads it (https://github.com/hiyouga/LLaMA-Factory/blob/main/data/README.md,
  "Sharegpt Format": ``conversations`` of ``{"from", "value"}``; "human and observation should
  appear in odd positions, while gpt and function should appear in even positions"; ``system``
  as its own column) and its ``SharegptDatasetConverter``
  (src/llamafactory/data/converter.py), which also skips a conversation with an odd number of
  turns ("Invalid message count").
- Real chat templates (tests/data/chat-templates, llama.cpp's copies of the models' own templates)
  rendered as servers do (tests/chat_templates.py): Mistral and Gemma raise when roles do not
  alternate.
- Parquet loaded by the real ``datasets`` library and by pyarrow.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.config import RunConfig
from simulator.export.chat import OPENING_LABEL
from simulator.export.options import Split
from simulator.export.splits import assign
from simulator.personas import load_persona, load_therapist
from simulator.plan import RunPlan
from simulator.reader import read_run
from simulator.records import SessionRecord
from simulator.templates import Templates
from tests import chat_templates
from tests.conftest import PERSONAS, invoke
from tests.exportkit import PATIENTS, export, make_run, read_jsonl, session_json

OPENAI_ROLES = {"system", "user", "assistant", "function"}
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight"}
SHAREGPT_ODD = {"human", "observation"}
SHAREGPT_EVEN = {"gpt", "function_call"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


def openai_format_errors(line: dict[str, Any]) -> list[str]:
    """The cookbook's format checks, plus the alternation every chat template expects."""
    errors: list[str] = []
    messages = line.get("messages")
    if set(line) != {"messages"} or not isinstance(messages, list) or not messages:
        return ["missing_messages_list"]
    for m in messages:
        if "role" not in m or "content" not in m:
            errors.append("message_missing_key")
        if set(m) - OPENAI_MESSAGE_KEYS:
            errors.append("message_unrecognized_key")
        if m.get("role") not in OPENAI_ROLES:
            errors.append("unrecognized_role")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            errors.append("missing_content")
    if not any(m.get("role") == "assistant" for m in messages):
        errors.append("example_missing_assistant_message")
    body = messages[1:] if messages[0]["role"] == "system" else messages
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(body))]
    if [m["role"] for m in body] != expected or len(body) % 2:
        errors.append("roles_do_not_alternate_or_end_on_assistant")
    return errors


def sharegpt_format_errors(line: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if set(line) - {"conversations", "system", "tools"} or not isinstance(line.get("conversations"), list):
        return ["not a sharegpt line"]
    if "system" in line and not isinstance(line["system"], str):
        errors.append("system is not a string")
    turns = line["conversations"]
    for position, turn in enumerate(turns, start=1):
        if set(turn) != {"from", "value"} or not isinstance(turn["value"], str) or not turn["value"].strip():
            errors.append(f"turn {position} malformed")
        allowed = SHAREGPT_ODD if position % 2 else SHAREGPT_EVEN
        if turn.get("from") not in allowed:
            errors.append(f"Invalid role tag at {position}")
    if not turns or len(turns) % 2:
        errors.append("Invalid message count")
    return errors


def record(run_dir: Path, persona: str, number: int) -> SessionRecord:
    return SessionRecord.model_validate(session_json(run_dir, persona, number))


def engine_prompts(run_dir: Path, rec: SessionRecord) -> tuple[str, str, str]:
    """The therapist prompt, patient prompt and opening exactly as the run rendered them."""
    run = read_run(run_dir)
    patient = load_persona(run.persona_file(rec.persona_id))
    plan = RunPlan(
        RunConfig(), [patient], load_therapist(run.therapist_file), Templates(run.prompts_dir), None
    )
    prompts = plan.prompts(plan.patient(rec.persona_id), rec.session_number, rec.previous_summary)
    return prompts.therapist, prompts.patient, prompts.opening


# ---- OpenAI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["therapist", "patient"])
def test_every_openai_line_passes_the_documented_checks(run_dir: Path, tmp_path: Path, side: str) -> None:
    out = tmp_path / "train.jsonl"
    result = export(run_dir, "--format", "openai", "--as", side, "--out", out)
    assert result.exit_code == 0, result.output
    lines = read_jsonl(out)
    assert len(lines) == 9
    assert [openai_format_errors(line) for line in lines] == [[]] * 9


def test_round_trip_as_therapist_with_series_context_is_what_the_therapist_saw(
    run_dir: Path, tmp_path: Path
) -> None:
    """export -> load -> the same messages: system prompt and opening as the run rendered
    them, then every message in order, patient as user, therapist as assistant."""
    out = tmp_path / "t.jsonl"
    assert export(run_dir, "--format", "openai", "--series-context", "--out", out).exit_code == 0
    lines = iter(read_jsonl(out))
    for persona in PATIENTS:
        for number in (1, 2, 3):
            rec = record(run_dir, persona, number)
            therapist_prompt, _, opening = engine_prompts(run_dir, rec)
            assert opening == rec.messages[0].content
            expected = [{"role": "system", "content": therapist_prompt}] + [
                {"role": "assistant" if m.speaker == "Therapist" else "user", "content": m.content}
                for m in rec.messages
            ]
            while expected[-1]["role"] != "assistant":
                expected.pop()
            assert next(lines)["messages"] == expected


def test_without_series_context_no_previous_summary_reaches_the_example(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    assert export(run_dir, "--format", "openai", "--out", out).exit_code == 0
    lines = read_jsonl(out)
    later = [
        (line, record(run_dir, "marcus_thompson", n)) for line, n in zip(lines[1:3], (2, 3), strict=True)
    ]
    for line, rec in later:
        assert rec.previous_summary
        text = "\n".join(m["content"] for m in line["messages"])
        assert rec.previous_summary not in text
        assert "Last time we talked about" not in line["messages"][1]["content"]
        assert line["messages"][1]["content"].startswith("Hi, I'm Marcus Thompson. This is my")
        assert [m["content"] for m in line["messages"][2:]] == [m.content for m in rec.messages[1:]][
            : len(line["messages"]) - 2
        ]


def test_no_summary_termination_details_or_notes_leak(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    assert export(run_dir, "--format", "openai", "--series-context", "--out", out).exit_code == 0
    config = RunConfig()
    notes = [
        config.wrap_up_note,
        config.guards.role_nudge,
        config.guards.repetition_nudge,
        config.guards.continue_note,
    ]
    lines = iter(read_jsonl(out))
    for persona in PATIENTS:
        for number in (1, 2, 3):
            rec = record(run_dir, persona, number)
            text = "\n".join(m["content"] for m in next(lines)["messages"])
            assert rec.summary and rec.summary not in text
            assert rec.termination is not None and rec.termination.details not in text
            assert "Termination Details:" not in text and "Session Summary:" not in text
            assert not [note for note in notes if note in text]


def test_as_patient_folds_the_scripted_opening_into_the_first_user_turn(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.jsonl"
    assert (
        export(run_dir, "--format", "openai", "--as", "patient", "--series-context", "--out", out).exit_code
        == 0
    )
    rec = record(run_dir, "priya_shah", 2)
    _, patient_prompt, _ = engine_prompts(run_dir, rec)
    messages = read_jsonl(out)[4]["messages"]
    assert messages[0] == {"role": "system", "content": patient_prompt}
    first = messages[1]
    assert first["role"] == "user" and first["content"].startswith(OPENING_LABEL)
    assert rec.messages[0].content in first["content"] and rec.messages[1].content in first["content"]
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    assert rec.messages[0].content not in assistant
    assert assistant == [m.content for m in rec.messages[2:] if m.speaker == "Patient"]


@pytest.mark.parametrize(
    "template",
    [
        "mistralai-Mistral-Nemo-Instruct-2407",
        "Mistral-Small-3.2-24B-Instruct-2506",
        "meta-llama-Llama-3.1-8B-Instruct",
        "Qwen-Qwen2.5-7B-Instruct",
    ],
)
@pytest.mark.parametrize("side", ["therapist", "patient"])
def test_real_chat_templates_accept_every_example(
    run_dir: Path, tmp_path: Path, template: str, side: str
) -> None:
    out = tmp_path / "t.jsonl"
    assert export(run_dir, "--format", "openai", "--as", side, "--out", out).exit_code == 0
    for line in read_jsonl(out):
        rendered = chat_templates.render(template, line["messages"])
        assert line["messages"][-1]["content"] in rendered


def test_gemma_which_refuses_system_messages_takes_system_none(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    assert export(run_dir, "--format", "openai", "--system", "none", "--out", out).exit_code == 0
    for line in read_jsonl(out):
        assert line["messages"][0]["role"] == "user"
        chat_templates.render("google-gemma-2-2b-it", line["messages"])


def test_system_file_renders_in_the_sandbox_with_the_run_variables(run_dir: Path, tmp_path: Path) -> None:
    template = tmp_path / "sys.j2"
    template.write_text(
        "You are {{ therapist.name }} with {{ patient.name }}, session {{ session_number|ordinal }} "
        "({{ modality }}){% if previous_summary %}; notes:\n{{ previous_summary }}{% endif %}"
    )
    out = tmp_path / "t.jsonl"
    result = export(run_dir, "--format", "openai", "--system", template, "--series-context", "--out", out)
    assert result.exit_code == 0, result.output
    lines = read_jsonl(out)
    assert lines[0]["messages"][0]["content"] == "You are Nova with Marcus Thompson, session 1st (CBT)"
    second = record(run_dir, "marcus_thompson", 2)
    assert lines[1]["messages"][0]["content"].endswith(f"notes:\n{second.previous_summary}")


def test_a_system_file_with_an_undefined_variable_is_one_line_naming_it(
    run_dir: Path, tmp_path: Path
) -> None:
    template = tmp_path / "sys.j2"
    template.write_text("Hello {{ patient.nickname }}")
    out = tmp_path / "t.jsonl"
    result = export(run_dir, "--format", "openai", "--system", template, "--out", out)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and str(template) in result.output and "nickname" in result.output
    assert not out.exists() and not list(tmp_path.glob(".t.jsonl*"))


# ---- ShareGPT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["therapist", "patient"])
def test_every_sharegpt_line_passes_llama_factorys_rules(run_dir: Path, tmp_path: Path, side: str) -> None:
    out = tmp_path / "s.jsonl"
    assert export(run_dir, "--format", "sharegpt", "--as", side, "--out", out).exit_code == 0
    lines = read_jsonl(out)
    assert len(lines) == 9 and [sharegpt_format_errors(line) for line in lines] == [[]] * 9
    assert all(line["conversations"][0]["from"] == "human" and line["system"] for line in lines)


def test_sharegpt_and_openai_hold_the_same_conversation(run_dir: Path, tmp_path: Path) -> None:
    assert export(run_dir, "--format", "sharegpt", "--out", tmp_path / "s.jsonl").exit_code == 0
    assert export(run_dir, "--format", "openai", "--out", tmp_path / "o.jsonl").exit_code == 0
    roles = {"human": "user", "gpt": "assistant"}
    for s, o in zip(read_jsonl(tmp_path / "s.jsonl"), read_jsonl(tmp_path / "o.jsonl"), strict=True):
        as_openai = [{"role": "system", "content": s["system"]}] + [
            {"role": roles[t["from"]], "content": t["value"]} for t in s["conversations"]
        ]
        assert as_openai == o["messages"]


# ---- records -------------------------------------------------------------------------------------


def test_records_are_the_engines_own_session_json(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert export(run_dir, "--format", "records", "--out", out).exit_code == 0
    lines = read_jsonl(out)
    expected = [session_json(run_dir, p, n) for p in PATIENTS for n in (1, 2, 3)]
    assert lines == expected
    assert all(SessionRecord.model_validate(line) for line in lines)


# ---- Parquet -------------------------------------------------------------------------------------


@pytest.fixture
def load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The real ``datasets.load_dataset``, offline, its caches in the test's folder."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    return functools.partial(datasets.load_dataset, cache_dir=str(tmp_path / "cache"))


def test_parquet_loads_with_datasets_and_pyarrow_and_round_trips(
    run_dir: Path, tmp_path: Path, load_dataset: Callable[..., Any]
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "ds"
    assert export(run_dir, "--format", "parquet", "--series-context", "--out", out).exit_code == 0
    assert (
        export(run_dir, "--format", "openai", "--series-context", "--out", tmp_path / "o.jsonl").exit_code
        == 0
    )
    table = pq.read_table(out / "train.parquet")
    assert table.num_rows == 9
    assert table.column_names == [
        "run_id", "persona_id", "therapist_id", "session_number", "messages", "previous_summary", "summary",
        "termination_reason", "termination_details", "flags", "models", "seed", "backend",
    ]  # fmt: skip
    dataset = load_dataset("parquet", data_files={"train": str(out / "train.parquet")})
    rows = list(dataset["train"])
    assert [r["messages"] for r in rows] == [line["messages"] for line in read_jsonl(tmp_path / "o.jsonl")]
    second = record(run_dir, "marcus_thompson", 2)
    assert rows[1]["persona_id"] == "marcus_thompson" and rows[1]["session_number"] == 2
    assert rows[1]["previous_summary"] == second.previous_summary and rows[1]["summary"] == second.summary
    assert second.termination is not None
    assert rows[1]["termination_reason"] == second.termination.reason == "Repetition Loop"
    flags = sorted(({f for m in second.messages for f in m.flags} | set(second.summary_flags)) - {"template"})
    assert "regenerated_repetition" in flags and rows[1]["flags"] == flags and rows[1]["backend"] == "offline"
    assert rows[1]["models"] == {"therapist": None, "patient": None, "summarizer": None}
    assert rows[1]["seed"] == 1 and rows[1]["run_id"] == "demo"


def test_the_card_configs_are_what_datasets_loads_from_the_folder(
    run_dir: Path, tmp_path: Path, load_dataset: Callable[..., Any]
) -> None:
    """``load_dataset(FOLDER)`` reads the card's YAML configs: the splits it declares load."""
    out = tmp_path / "ds"
    result = export(
        run_dir, "--format", "parquet", "--split", "train=0.67,test=0.33", "--out", out
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert card["configs"][0]["data_files"] == [
        {"split": "train", "path": "train.parquet"},
        {"split": "test", "path": "test.parquet"},
    ]
    dataset = load_dataset(str(out))
    assert set(dataset) == {"train", "test"}
    assert dataset["train"].num_rows + dataset["test"].num_rows == 9
    train, test = ({r["persona_id"] for r in dataset[s]} for s in ("train", "test"))
    assert train and test and not train & test


def test_a_records_folder_loads_with_datasets_when_a_split_has_only_nulls_in_a_field(
    tmp_path: Path, load_dataset: Callable[..., Any]
) -> None:
    """`datasets` types the first split on its own and casts the others to it: a run made
    without --seed (seed null in every session) in the first split, a seeded run in the second,
    failed the whole load ("Couldn't cast array of type int64 to null") until the card
    declared the record's features."""
    result = invoke(
        "run", PERSONAS / "walter_kowalski.yaml", "--sessions", "2", "--backend", "offline",
        "--out", tmp_path, "--run-id", "unseeded", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    seeded = make_run(tmp_path, "seeded", personas=(PERSONAS / "priya_shah.yaml",), sessions=2)
    splits = (Split("first", 0.5), Split("second", 0.5))
    seed = next(s for s in range(50) if assign(["walter_kowalski", "priya_shah"], splits, s, "persona") == {
        "walter_kowalski": "first", "priya_shah": "second"
    })  # fmt: skip
    out = tmp_path / "ds"
    result = export(
        tmp_path / "unseeded", seeded, "--format", "records", "--split", "first=0.5,second=0.5",
        "--split-seed", str(seed), "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "&id" not in (out / "README.md").read_text()  # no YAML anchors: each field written out
    dataset = load_dataset(str(out))
    assert [(r["persona_id"], r["seed"]) for r in dataset["first"]] == [("walter_kowalski", None)] * 2
    assert [(r["persona_id"], r["seed"]) for r in dataset["second"]] == [("priya_shah", 1)] * 2
    records = read_jsonl(out / "second.jsonl")
    assert [r["messages"] for r in dataset["second"]] == [r["messages"] for r in records]


def test_parquet_without_pyarrow_says_how_to_install_it(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = export(run_dir, "--format", "parquet", "--out", tmp_path / "ds")
    assert result.exit_code == 2
    assert (
        result.output
        == "simulator: error: --format parquet: needs pyarrow: pip install 'simulator[export]'\n"
    )
    assert not (tmp_path / "ds").exists()


def test_jsonl_formats_need_no_extra(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pyarrow", "datasketch", "numpy"):
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "o.jsonl"
    assert export(run_dir, "--format", "openai", "--out", out).exit_code == 0
    assert json.loads(out.read_text().splitlines()[0])["messages"]


def test_openings_the_snapshot_did_not_write_are_kept_as_recorded(run_dir: Path, tmp_path: Path) -> None:
    """A run whose snapshot of opening.j2 does not give back its openings (edited by hand, say)
    keeps every opening as recorded rather than rendering one the run never showed."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    data = session_json(run, "marcus_thompson", 2)
    data["messages"][0]["content"] = "Hi, I'm Marcus Thompson. Back again, as we agreed."
    (run / "marcus_thompson" / "session_02.json").write_text(json.dumps(data))
    out = tmp_path / "t.jsonl"
    assert export(run, "--format", "openai", "--out", out).exit_code == 0
    lines = read_jsonl(out)
    assert lines[1]["messages"][1]["content"] == "Hi, I'm Marcus Thompson. Back again, as we agreed."
    assert lines[4]["messages"][1]["content"] == record(run_dir, "priya_shah", 2).messages[0].content
    assert "Last time we talked about" in lines[4]["messages"][1]["content"]
