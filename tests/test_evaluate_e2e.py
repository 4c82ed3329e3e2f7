"""``simulator evaluate`` end to end: the real CLI on an offline run folder, judged through the
real OpenAI-compatible backend against the loopback server's judge (tests/judgekit.py)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import krippendorff
import pytest
from click.testing import Result

from simulator.store import RunStore
from tests.conftest import MARCUS, PERSONAS, invoke, make_offline_run
from tests.judgekit import INVENTED, JudgeModel
from tests.loopback import LoopbackServer, completion, serve, server_error, unauthorized
from tests.serieskit import cli_command, cli_env

CTRS_ITEMS = 11


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    personas = (MARCUS, PERSONAS / "priya_shah.yaml")
    return make_offline_run(tmp_path_factory.mktemp("runs"), *personas, sessions=3, run_id="offline")


@pytest.fixture
def run_dir(offline_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(offline_run, target)
    return target


@pytest.fixture
def judge() -> JudgeModel:
    return JudgeModel()


@pytest.fixture
def server(judge: JudgeModel) -> Iterator[LoopbackServer]:
    with serve(judge) as running:
        yield running


def evaluate(run_dir: Path, server: LoopbackServer | None, *args: str) -> Result:
    endpoint = ["--backend", "openai", "--base-url", server.base_url] if server is not None else []
    return invoke("evaluate", run_dir, *endpoint, *args)


def only_eval(run_dir: Path) -> Path:
    (folder,) = (run_dir / "eval").iterdir()
    return folder


def report(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((only_eval(run_dir) / "eval.json").read_text()))


def test_judged_with_repeats_agreement_intervals_and_records(
    run_dir: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    result = evaluate(
        run_dir, server, "--judge-model", "judge-llm", "--rubric", "ctrs", "--rubric", "summary_faithfulness",
        "--repeats", "3", "--seed", "10",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = report(run_dir)
    assert data["status"] == "complete" and data["judge"]["response_format"] == "json_schema"
    assert data["judge"]["seeds"] == [10, 11, 12]
    # 6 sessions x 2 rubrics x 3 repeats, each answered at the first attempt
    assert len(server.requests) == 36
    assert {r.json["seed"] for r in server.requests} == {10, 11, 12}
    assert all(r.json["response_format"]["type"] == "json_schema" for r in server.requests)
    sessions = data["sessions"]
    assert [(s["persona_id"], s["session_number"]) for s in sessions] == [
        (p, n) for p in ("marcus_thompson", "priya_shah") for n in (1, 2, 3)
    ]
    for session in sessions:
        assert session["natural_end"] is True and session["messages"] > 4
        assert 0 < session["therapist_question_share"] <= 1
        assert set(session["scores"]) == {"ctrs", "summary_faithfulness"}
        assert len(session["scores"]["ctrs"]) == CTRS_ITEMS
    # The agenda's alpha is the one computed from what the judge said, repeats as coders.
    given: dict[int, dict[int, int]] = {}
    for answer in judge.answers:
        if answer["rubric"] == "ctrs":
            given.setdefault(answer["seed"], {})[answer["case"]] = answer["answer"]["agenda"]["score"]
    cases = sorted(given[10])
    expected = krippendorff.alpha(
        reliability_data=[[given[s][c] for c in cases] for s in (10, 11, 12)], level_of_measurement="interval"
    )
    agenda = data["summary"]["items"]["ctrs"]["agenda"]
    assert agenda["agreement"]["krippendorff_alpha_interval"] == pytest.approx(expected)
    assert 0 < expected < 1  # the judge's seed moves its scores: agreement measured, not constant
    assert agenda["n"] == 6 and agenda["judgments"] == 18 and agenda["label"] == "judge rating 0-6"
    low, high = agenda["ci95"]
    per_session = [s["scores"]["ctrs"]["agenda"] for s in sessions]
    assert agenda["mean"] == pytest.approx(sum(per_session) / 6)
    assert min(per_session) <= low <= agenda["mean"] <= high <= max(per_session)
    # one record per rubric, persona and session, holding every repeat with its evidence check
    record = json.loads((only_eval(run_dir) / "ctrs" / "priya_shah" / "session_02.json").read_text())
    assert record["status"] == "judged" and record["model"] == "judge-llm"
    assert [j["seed"] for j in record["judgments"]] == [10, 11, 12]
    first = record["judgments"][0]
    assert first["items"]["agenda"]["evidence_found"] == [True]
    assert first["usage"]["prompt_tokens"] == 900 and first["request_ids"][0].startswith("req-judge-")
    assert data["summary"]["personas"]["priya_shah"]["items"]["ctrs"]["agenda"]["n"] == 3
    bullets = data["summary"]["items"]["summary_faithfulness"]["bullets_supported"]
    assert 0 < bullets["mean"] <= 1 and bullets["unsupported_evidence"] == 0
    # the terminal table (80 columns here, as in a pipe or a log) names every item whole
    assert all(f"  {item} " in result.stdout for item in data["summary"]["items"]["ctrs"])
    assert "summary_faithfulness" in result.stdout and "…" not in result.stdout
    assert "krippendorff_alpha" not in result.output


def test_invalid_replies_become_judge_failed_and_exit_1(
    run_dir: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    judge.invalid = {"summary_faithfulness"}
    judge.invalid_once = {"ctrs"}
    result = evaluate(
        run_dir, server, "--judge-model", "j", "--rubric", "ctrs", "--rubric", "summary_faithfulness"
    )
    assert result.exit_code == 1, result.output
    assert "judge_failed" in result.output and "--resume" in result.output
    data = report(run_dir)
    assert data["status"] == "judge_failed"
    summary = data["summary"]["items"]
    assert summary["summary_faithfulness"]["bullets_supported"]["judge_failed"] == 6
    assert summary["summary_faithfulness"]["bullets_supported"]["mean"] is None
    # ctrs recovered on the second attempt: every item counts
    assert summary["ctrs"]["agenda"]["n"] == 6 and summary["ctrs"]["agenda"]["judge_failed"] == 0
    # 3 attempts per failing case, 2 per recovered one; the retry quotes the bad reply back
    assert len(server.requests) == 6 * 3 + 6 * 2
    retried = [r for r in server.requests if len(r.json["messages"]) > 2]
    assert retried and "could not be used" in retried[0].json["messages"][-1]["content"]
    record = json.loads(
        (only_eval(run_dir) / "summary_faithfulness" / "marcus_thompson" / "session_01.json").read_text()
    )
    assert record["status"] == "judge_failed"
    assert record["judgments"][0]["items"]["bullets_supported"]["status"] == "judge_failed"


def test_evidence_not_in_the_transcript_is_marked_and_counted(
    run_dir: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    judge.no_evidence = {"realism"}
    judge.invented = {"persona_fidelity"}
    result = evaluate(
        run_dir, server, "--judge-model", "j", "--rubric", "realism", "--rubric", "persona_fidelity"
    )
    assert result.exit_code == 0, result.output
    data = report(run_dir)
    items = data["summary"]["items"]
    assert items["realism"]["ambivalence"]["unsupported_evidence"] == 6
    # persona_fidelity's scripted_event is asked only where the persona scripts one (all 3 sessions here)
    assert items["persona_fidelity"]["facts"]["unsupported_evidence"] == 6
    assert items["persona_fidelity"]["facts"]["n"] == 6  # marked and counted, still a score
    record = json.loads(
        (only_eval(run_dir) / "persona_fidelity" / "marcus_thompson" / "session_03.json").read_text()
    )
    facts = record["judgments"][0]["items"]["facts"]
    assert facts["evidence"] == [INVENTED] and facts["evidence_found"] == [False]
    assert facts["flags"] == ["unsupported_evidence"]
    assert data["sessions"][0]["unsupported_evidence"]["realism"]["ambivalence"] == 1
    assert data["summary"]["judge"]["unsupported_evidence"] == 6 * 4 + 6 * 4


def test_a_server_without_response_format_is_asked_by_prompt(
    run_dir: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    judge.refuse_schema = True
    result = evaluate(run_dir, server, "--judge-model", "j", "--rubric", "continuity", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    data = report(run_dir)
    assert data["judge"]["response_format"] == "prompt"
    # continuity needs a session before: sessions 2 and 3 of each persona
    assert data["summary"]["items"]["continuity"]["homework_reviewed"]["n"] == 4
    assert data["not_applicable"] == {"continuity": 2}
    with_schema = [r for r in server.requests if "response_format" in r.json]
    assert len(with_schema) == 1 and len(server.requests) == 5
    assert '"homework_reviewed"' in server.requests[-1].json["messages"][0]["content"]


def test_offline_or_no_judge_model_never_calls_a_model(run_dir: Path, server: LoopbackServer) -> None:
    result = invoke("evaluate", run_dir, "--backend", "offline", "--judge-model", "j")
    assert result.exit_code == 0, result.output
    assert "offline backend" in result.stderr and "no judge scores" in result.stderr
    data = report(run_dir)
    assert data["judge"]["judging"] is False and data["summary"]["items"] == {}
    assert all(s["scores"] == {} for s in data["sessions"])
    assert data["summary"]["natural_end_share"] == 1.0
    shutil.rmtree(run_dir / "eval")
    result = evaluate(run_dir, server)
    assert result.exit_code == 0 and "no --judge-model" in result.stderr
    assert server.requests == []
    assert not any((only_eval(run_dir)).glob("ctrs"))


def test_dry_run_counts_calls_and_writes_nothing(
    run_dir: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(
        "roles:\n  judge: {max_tokens: 300, temperature: 0}\nprices:\n  j: {prompt: 1, completion: 2}\n"
    )
    result = evaluate(
        run_dir,
        server,
        "--judge-model",
        "j",
        "--config",
        str(config),
        "--rubric",
        "ctrs",
        "--repeats",
        "2",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert "12 judge calls (6 cases x 2 repeats)" in result.stdout
    assert "3600 completion tokens" in result.stdout and "~$" in result.stdout
    assert server.requests == [] and not (run_dir / "eval").exists()


def test_resume_after_a_fatal_stop_judges_only_the_rest(
    run_dir: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    answered = 0

    def stop_after_four(request: Any) -> Any:
        nonlocal answered
        answered += 1
        return judge(request) if answered <= 4 else unauthorized()

    server.handler = stop_after_four
    result = evaluate(run_dir, server, "--judge-model", "j", "--rubric", "realism", "--concurrency", "1")
    assert result.exit_code == 1 and "refused the API key" in result.stderr
    folder = only_eval(run_dir)
    assert json.loads((folder / "eval.json").read_text())["status"] == "failed"
    done = sorted(folder.glob("realism/*/*.json"))
    assert len(done) == 4
    before = {p: p.read_bytes() for p in done}
    server.handler = judge
    first_pass = len(server.requests)
    result = invoke("evaluate", run_dir, "--resume", folder.name)
    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in done} == before
    assert len(sorted(folder.glob("realism/*/*.json"))) == 6
    assert report(run_dir)["status"] == "complete" and len(server.requests) == first_pass + 2
    with RunStore(folder).lock():
        busy = invoke("evaluate", run_dir, "--resume", folder.name)
    assert busy.exit_code == 2 and "in use" in busy.stderr


def test_cache_makes_a_second_evaluation_free(run_dir: Path, server: LoopbackServer, tmp_path: Path) -> None:
    cache = tmp_path / "judge.sqlite"
    for _ in range(2):
        result = evaluate(run_dir, server, "--judge-model", "j", "--rubric", "realism", "--cache", str(cache))
        assert result.exit_code == 0, result.output
    assert len(server.requests) == 6
    first, second = (json.loads(p.read_text()) for p in (run_dir / "eval").glob("*/eval.json"))
    assert first["sessions"] == second["sessions"]  # the same judgments, the second time from the cache
    hits = sorted(r["summary"]["judge"]["usage"]["cache_hits"] for r in (first, second))
    assert hits == [0, 6]


def test_mi_counts_come_from_the_judge_and_ratios_from_the_counts(
    tmp_path: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    persona = tmp_path / "mi_client.yaml"
    persona.write_text(MARCUS.read_text().replace("modality: CBT", "modality: MI"))
    made = invoke(
        "run", persona, "--sessions", "2", "--backend", "offline", "--out", tmp_path, "--run-id", "mi"
    )
    assert made.exit_code == 0, made.output
    run_dir = tmp_path / "mi"
    result = evaluate(run_dir, server, "--judge-model", "j", "--rubric", "mi", "--rubric", "ctrs")
    assert result.exit_code == 0, result.output
    data = report(run_dir)
    assert data["not_applicable"] == {"ctrs": 2}  # a CBT instrument on MI sessions
    assert "rubric 'ctrs' (therapist, suits CBT) applies to no session" in result.stderr
    items = data["summary"]["items"]["mi"]
    assert items["questions"]["label"] == "judge-counted"
    assert items["complex_reflection_share"]["label"] == "derived from judge counts"
    for session in data["sessions"]:
        scores = session["scores"]["mi"]
        reflections = scores["simple_reflections"] + scores["complex_reflections"]
        assert scores["complex_reflection_share"] == pytest.approx(
            scores["complex_reflections"] / reflections
        )
        assert scores["reflection_to_question_ratio"] == pytest.approx(reflections / scores["questions"])


def test_a_judge_call_that_fails_after_retries_is_judge_failed(
    run_dir: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text("retry: {attempts: 2, initial_wait_s: 0, max_wait_s: 0}\n")
    server.handler = lambda request: server_error(503)
    result = evaluate(run_dir, server, "--judge-model", "j", "--rubric", "realism", "--config", str(config))
    assert result.exit_code == 1, result.output
    assert len(server.requests) == 6 * 2
    data = report(run_dir)
    assert data["summary"]["judge"]["judge_failed"] == 6 * 4
    record = json.loads((only_eval(run_dir) / "realism" / "priya_shah" / "session_01.json").read_text())
    assert "server error 503" in record["judgments"][0]["error"]
    assert data["sessions"][0]["natural_end"] is True  # model-free metrics are kept


def test_a_reply_cut_at_the_token_limit_is_asked_again_saying_so(
    run_dir: Path, server: LoopbackServer, judge: JudgeModel
) -> None:
    server.enqueue(
        completion('{"sounds_like_a_person": {"score": 4, "rationale": "na', finish_reason="length")
    )
    result = evaluate(run_dir, server, "--judge-model", "j", "--rubric", "realism", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    retried = [r for r in server.requests if len(r.json["messages"]) > 2]
    assert len(retried) == 1 and "cut at the token limit" in retried[0].json["messages"][-1]["content"]
    assert report(run_dir)["summary"]["items"]["realism"]["resistance"]["n"] == 6


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_killed_evaluation_resumes_without_touching_finished_records(
    run_dir: Path, judge: JudgeModel, stop: signal.Signals
) -> None:
    with serve(judge, latency_s=0.15) as server:
        command = cli_command(
            "evaluate", run_dir, "--backend", "openai", "--base-url", server.base_url, "--judge-model", "j",
            "--rubric", "realism", "--rubric", "ctrs", "--concurrency", "1",
        )  # fmt: skip
        process = subprocess.Popen(command, env=cli_env(), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(list(run_dir.glob("eval/*/*/*/session_*.json"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=30)
        folder = only_eval(run_dir)
        if stop == signal.SIGINT:
            assert process.returncode == 130 and f"--resume {folder.name}" in stderr
            assert json.loads((folder / "eval.json").read_text())["status"] == "interrupted"
        else:
            assert process.returncode == -signal.SIGKILL
        done = {p: p.read_bytes() for p in folder.glob("*/*/session_*.json")}
        assert 3 <= len(done) < 12
        server.latency_s = 0.0
        before = len(server.requests)
        result = invoke("evaluate", run_dir, "--resume", folder.name, "--concurrency", "4")
        assert result.exit_code == 0, result.output
        # the settings (endpoint included) are the evaluation's own; only the rest is judged
        assert len(server.requests) - before == 12 - len(done)
    assert {p: p.read_bytes() for p in done} == done
    data = report(run_dir)
    assert data["status"] == "complete" and data["summary"]["items"]["ctrs"]["agenda"]["n"] == 6
    assert not list(folder.glob("**/.*.tmp"))


def test_persona_fidelity_asks_for_the_scripted_event_only_where_the_persona_scripts_one(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Marcus scripts events for sessions 1-3, not 4: the judge sees session 3's note and is
    asked about it; session 4 is judged on the other items alone."""
    made = invoke(
        "run", MARCUS, "--sessions", "4", "--backend", "offline", "--out", tmp_path, "--run-id", "r"
    )
    assert made.exit_code == 0, made.output
    result = evaluate(tmp_path / "r", server, "--judge-model", "j", "--rubric", "persona_fidelity")
    assert result.exit_code == 0, result.output
    folder = only_eval(tmp_path / "r")
    items = {
        n: json.loads((folder / "persona_fidelity" / "marcus_thompson" / f"session_0{n}.json").read_text())[
            "items"
        ]
        for n in (3, 4)
    }
    assert items[3] == ["facts", "speech_style", "presenting_problems", "scripted_event"]
    assert items[4] == ["facts", "speech_style", "presenting_problems"]
    prompts = {
        number: r.json["messages"][1]["content"]
        for r in server.requests
        for number in (3, 4)
        if f"in session {number} (CBT)" in r.json["messages"][1]["content"]
    }
    assert "Scripted event for session 3: His mother had a fall at home this week" in prompts[3]
    assert "No event is scripted for this session." in prompts[4]
    # the persona as the judge reads it: beliefs and coping strategies too
    assert "- coping strategies: going for a run before school;" in prompts[4]
    assert report(tmp_path / "r")["summary"]["items"]["persona_fidelity"]["scripted_event"]["n"] == 3
