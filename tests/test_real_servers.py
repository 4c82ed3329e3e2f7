"""What real servers do to a run, end to end through the CLI against the loopback server, with
the error bodies llama.cpp's ``llama-server`` and vLLM actually send: per-role token limits,
a reasoning model that spends them all, context overflow, a wrong base URL, cut summaries."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import MARCUS
from tests.loopback import (
    RecordedRequest,
    Reply,
    completion,
    llama_cpp_context_exceeded,
    llama_cpp_not_found,
    serve,
)
from tests.test_openai_e2e import MODEL_FLAGS, MODELS, model_reply, role_of, run_cli, write_config

PARTIAL = Path("r") / "marcus_thompson" / "session_01.partial.json"


def test_each_role_sends_its_default_max_tokens_and_null_sends_none(tmp_path: Path) -> None:
    with serve(model_reply) as server:
        result = run_cli(
            tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": server.base_url},
            config=write_config(tmp_path, "roles: {patient: {max_tokens: null}}\n"),
        )  # fmt: skip
        sent = server.requests
    assert result.exit_code == 0, result.stderr
    limits = {role_of(r): r.json.get("max_tokens", "absent") for r in sent}
    assert limits == {"therapist": 512, "patient": "absent", "summarizer": 1024}
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert {role: run["settings"]["roles"][role]["max_tokens"] for role in MODELS} == {
        "therapist": 512,
        "patient": None,
        "summarizer": 1024,
    }


def test_a_reasoning_model_that_spends_the_limit_fails_naming_it_and_keeps_the_attempts(
    tmp_path: Path,
) -> None:
    """gpt-oss / R1-distill style: all of max_tokens goes to thinking, the reply is empty."""

    def handler(request: RecordedRequest) -> Reply:
        if role_of(request) == "therapist":
            return completion("", model="therapist-llm", finish_reason="length")
        return model_reply(request)

    with serve(handler) as server:
        result = run_cli(
            tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": server.base_url},
            config=write_config(tmp_path, "roles: {therapist: {max_tokens: 64}}\n"),
        )  # fmt: skip
    assert result.exit_code == 1
    expected = (
        "therapist replies were cut at max_tokens=64 on every attempt; raise roles.therapist.max_tokens"
    )
    assert expected in result.stderr
    partial = json.loads((tmp_path / PARTIAL).read_text())
    assert partial["error"].startswith(expected)
    assert [(a["speaker"], a["purpose"], a["finish_reason"], a["text"]) for a in partial["attempts"]] == [
        ("Therapist", "turn", "length", ""),
        ("Therapist", "regeneration", "length", ""),
        ("Therapist", "regeneration", "length", ""),
    ]


def test_llama_server_context_overflow_fails_the_session_with_the_advice(tmp_path: Path) -> None:
    def handler(request: RecordedRequest) -> Reply:
        if role_of(request) == "patient" and len(request.json["messages"]) > 4:
            return llama_cpp_context_exceeded(n_prompt_tokens=2100, n_ctx=2048)
        return model_reply(request)

    with serve(handler) as server:
        result = run_cli(tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": server.base_url})
        posts = len(server.requests)
    assert result.exit_code == 1
    line = next(line for line in result.stderr.splitlines() if "session 1: failed" in line)
    assert "patient: the request does not fit the context of 2048 tokens of model 'patient-llm'" in line
    assert "lower --max-turns or `roles.patient.max_tokens`" in line and "llama.cpp -c" in line
    assert "request (2100 tokens) exceeds the available context size (2048 tokens)" in line
    assert posts == 4  # never retried: the same request cannot fit next time either


def test_a_continuation_the_context_cannot_hold_keeps_the_cut_reply(tmp_path: Path) -> None:
    """max_tokens left to the server is asked for explicitly here; a reply cut at our own limit
    is continued, and when llama-server says the continuation no longer fits, the reply is
    trimmed instead of failing the run."""

    def handler(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        if role_of(request) == "therapist" and messages[-1]["content"].startswith("[Continue"):
            return llama_cpp_context_exceeded()
        if role_of(request) == "therapist" and len(messages) == 2:
            return completion(
                "Welcome back. How did the week go? I was wondering whether",
                model="therapist-llm",
                finish_reason="length",
            )
        return model_reply(request)

    with serve(handler) as server:
        result = run_cli(tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": server.base_url})
    assert result.exit_code == 0, result.stderr
    record = json.loads((tmp_path / "r" / "marcus_thompson" / "session_01.json").read_text())
    assert record["messages"][1]["content"] == "Welcome back. How did the week go?"
    assert record["messages"][1]["flags"] == ["truncated_trimmed"]


def test_a_wrong_base_path_on_llama_server_is_not_a_missing_model(tmp_path: Path) -> None:
    with serve(model_reply) as server:
        server.unknown_route = llama_cpp_not_found()
        wrong = server.base_url.replace("/v1", "/api/v1")
        result = run_cli(tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": wrong})
        gets = [r.path for r in server.requests if r.method == "GET"]
    assert result.exit_code == 1
    assert f"therapist: nothing answers at {wrong}/chat/completions (404: File Not Found)" in result.stderr
    assert "not found" not in result.stderr.replace("File Not Found", "")
    assert gets == ["/api/v1/models"]


def test_a_summary_cut_on_every_attempt_opens_the_next_session_clean(tmp_path: Path) -> None:
    cut = (
        "Main topics discussed:\n- A hard week at work\n- Sleeping badly\n\n"
        "Techniques/exercises introduced:\n- Rating belief in a thou"
    )

    def handler(request: RecordedRequest) -> Reply:
        if role_of(request) == "summarizer":
            return completion(
                cut if len(request.json["messages"]) == 2 else "ght",
                model="summarizer-llm",
                finish_reason="length",
            )
        return model_reply(request)

    with serve(handler) as server:
        result = run_cli(
            tmp_path, MARCUS, *MODEL_FLAGS, "--sessions", "2", env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    first, second = (
        json.loads((tmp_path / "r" / "marcus_thompson" / f"session_0{n}.json").read_text()) for n in (1, 2)
    )
    clean = "Main topics discussed:\n- A hard week at work\n- Sleeping badly"
    assert first["summary"] == clean
    assert "summary_incomplete" in first["summary_flags"]
    assert second["previous_summary"] == clean
    assert second["messages"][0]["content"].endswith(clean)
