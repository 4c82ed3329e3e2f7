"""The OpenAI-compatible backend end to end: the real CLI against a loopback server, with
one model per role, injected 429s and 500s, and every way an endpoint fails for good."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from simulator.records import SessionRecord
from tests.conftest import MARCUS, PERSONAS, invoke
from tests.loopback import (
    RecordedRequest,
    Reply,
    bad_request,
    completion,
    context_length_exceeded,
    no_choices,
    not_found,
    rate_limited,
    serve,
    server_error,
    unauthorized,
)

KEY = "sk-e2e-7f3a9c1d5e0b2468ace13579"
PRIYA = PERSONAS / "priya_shah.yaml"
MODELS = {"therapist": "therapist-llm", "patient": "patient-llm", "summarizer": "summarizer-llm"}
MODEL_FLAGS = [f"--{role}-model={model}" for role, model in MODELS.items()]

THERAPIST_LINES = [
    "Good to see you. How has the week been, on a scale from 0 to 10?",
    "What went through your mind when that happened?",
    "How strongly did you believe that thought, from 0 to 100?",
    "What would you say to a friend who thought the same about themselves?",
]
CLOSING = "Good work today. See you next week, and don't hesitate to reach out before then."
PATIENT_LINES = [
    "About a four. Work has been a lot and I've slept badly.",
    "That I'd messed everything up and people would notice.",
    "Pretty strongly at the time, maybe ninety.",
    "I'd tell them to go easier on themselves, I suppose.",
]


def role_of(request: RecordedRequest) -> str:
    """Which agent sent the request, by the model the CLI chose for each role."""
    model = request.json.get("model")
    return next(role for role, name in MODELS.items() if name == model)


def summary_for(request: RecordedRequest) -> str:
    number = re.search(r"CBT session (\d+)", request.json["messages"][0]["content"])
    return (
        f"Main topics discussed:\n- Session {number[1] if number else '?'}: a hard week at work\n\n"
        "Techniques/exercises introduced:\n- Rating belief in a thought\n\n"
        "Things that appeared helpful:\n- Taking a friend's perspective\n\n"
        "Homework assigned:\n- One thought record a day\n\n"
        "Insights/realizations:\n- The critical voice is harsher than the facts"
    )


def model_reply(request: RecordedRequest) -> Reply:
    """A well-behaved model per role: the therapist closes on its fifth message."""
    role = role_of(request)
    messages = request.json["messages"]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if role == "summarizer":
        text = summary_for(request)
    elif role == "therapist":
        text = THERAPIST_LINES[turn] if turn < len(THERAPIST_LINES) else CLOSING
    else:
        text = (
            "Thanks, see you next week."
            if "reach out" in messages[-1]["content"]
            else PATIENT_LINES[turn - 1]
        )
    return completion(
        text,
        model=str(request.json["model"]),
        completion_id=f"chatcmpl-{request.index}",
        headers={"x-request-id": f"req-{request.index}"},
    )


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "run.yaml"
    config.write_text("min_turns: 4\nretry: {attempts: 4, initial_wait_s: 0, max_wait_s: 0}\n" + extra)
    return config


def run_cli(
    tmp_path: Path, *args: str | Path, env: dict[str, str] | None = None, config: Path | None = None
) -> Result:
    return invoke(
        "run", *args, "--config", config or write_config(tmp_path), "--out", tmp_path, "--run-id", "r",
        env=env,
    )  # fmt: skip


def records(run_dir: Path, persona: str) -> list[SessionRecord]:
    return [
        SessionRecord.model_validate_json(path.read_text())
        for path in sorted((run_dir / persona).glob("session_*.json"))
    ]


# ---- a series through faults ------------------------------------------------------------------


def test_two_session_series_one_model_per_role_through_429s_and_500s(tmp_path: Path) -> None:
    faults = {0: rate_limited(retry_after=1), 1: server_error(500), 6: server_error(503), 13: rate_limited()}
    faults |= {14: server_error(502), 15: rate_limited(retry_after_ms=10)}  # three in a row, then fine

    def handler(request: RecordedRequest) -> Reply:
        return faults.get(request.index) or model_reply(request)

    with serve(handler) as server:
        result = run_cli(
            tmp_path, MARCUS, "--sessions", "2", *MODEL_FLAGS,
            env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
        sent = server.requests
    assert result.exit_code == 0, result.stderr
    run_dir = tmp_path / "r"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["backend"] == "openai" and run["status"] == "complete"
    assert {n: s["status"] for n, s in run["sessions"]["marcus_thompson"].items()} == {
        "1": "complete",
        "2": "complete",
    }
    # Every fault was answered by retrying the same request.
    answered = sum(c.requests for rec in records(run_dir, "marcus_thompson") for c in rec.usage.values())
    assert len(sent) == len(faults) + answered
    for index in faults:
        assert sent[index + 1].json == sent[index].json
    # The key went out in the Authorization header, and each role used its own model.
    assert {r.headers["authorization"] for r in sent} == {f"Bearer {KEY}"}
    assert {r.json["model"] for r in sent} == set(MODELS.values())
    first, second = records(run_dir, "marcus_thompson")
    for record in (first, second):
        assert record.backend == "openai" and record.status == "complete"
        assert record.models == MODELS
        assert record.termination is not None
        assert record.termination.details == "Detected end phrase: '\\bdon't hesitate to reach out\\b'"
        assert {m.model for m in record.messages if m.speaker == "Therapist"} == {"therapist-llm"}
        assert {m.model for m in record.messages[1:] if m.speaker == "Patient"} == {"patient-llm"}
        assert all(m.request_id and m.request_id.startswith("req-") for m in record.messages[1:])
        assert record.usage["summarizer"].requests == 1
        assert record.usage["therapist"].cached_tokens > 0
    # The summary chain: session 2 opens with session 1's summary.
    assert first.summary is not None and first.summary.startswith("Main topics discussed:\n- Session 1:")
    opening = second.messages[0].content
    assert opening.startswith(
        "Hi, I'm Marcus Thompson. This is my 2nd CBT session. Last time we talked about:"
    )
    assert first.summary in opening
    assert second.previous_summary == first.summary
    assert first.summary in next(
        r.json["messages"][0]["content"] for r in sent if role_of(r) == "therapist" and "2nd" in str(r.json)
    )
    # The key is in no file of the run folder, whatever the file.
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 8
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
        assert KEY[:12].encode() not in path.read_bytes(), path
    assert run["settings"]["api_key_env"] == "OPENAI_API_KEY"
    assert KEY not in result.output


@pytest.mark.parametrize("how", ["environment", "flag"])
def test_a_base_url_alone_selects_the_openai_backend(tmp_path: Path, how: str) -> None:
    with serve(model_reply) as server:
        if how == "flag":
            result = run_cli(tmp_path, MARCUS, *MODEL_FLAGS, "--base-url", server.base_url)
        else:
            result = run_cli(tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": server.base_url})
        sent = server.requests
    assert result.exit_code == 0, result.stderr
    assert "offline" not in result.stderr
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["backend"] == "openai" and run["offline"] is False
    assert records(tmp_path / "r", "marcus_thompson")[0].backend == "openai"
    assert sent and {r.headers["authorization"] for r in sent} == {"Bearer not-needed"}  # a local server


# ---- endpoints that fail for good ---------------------------------------------------------------


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """An address nobody answers: the port is bound (so nothing else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


REJECTED = bad_request(
    "Unsupported parameter: 'temperature' is not supported with this model.",
    param="temperature",
    code="unsupported_parameter",
)

FailureCase = tuple[Callable[[], Reply], str, str]
CASES: dict[str, FailureCase] = {
    # name: (the failing reply, extra config, the error the user must be told)
    "401": (
        unauthorized,
        "",
        r"therapist: the endpoint http://127\.0\.0\.1:\d+/v1 refused the API key \(401\); check \$OPENAI_API_KEY",
    ),
    "404": (
        lambda: not_found("therapist-llm"),
        "",
        r"therapist: model 'therapist-llm' not found at http://127\.0\.0\.1:\d+/v1 \(404\)",
    ),
    "context too long": (
        context_length_exceeded,
        "",
        r"therapist: the request does not fit the context of 8192 tokens of model 'therapist-llm' "
        r"\(6 messages, max_tokens=512\): lower --max-turns or `roles.therapist.max_tokens`, or use a "
        r"model \(or server setting: llama.cpp -c, vLLM --max-model-len\) with a larger context",
    ),
    "no choices": (
        no_choices,
        "",
        r"therapist: http://127\.0\.0\.1:\d+/v1 answered without choices after 4 attempts: "
        r'"Upstream provider returned an error"',
    ),
    "rejected parameter": (
        lambda: REJECTED,
        "roles: {therapist: {temperature: 0.7}}\n",
        r"therapist: the server at http://127\.0\.0\.1:\d+/v1 rejected parameter 'temperature': "
        r"set `roles\.therapist\.omit_params: \[temperature\]` in the config",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_failing_endpoint_fails_that_session_and_the_others_carry_on(tmp_path: Path, case: str) -> None:
    """Marcus's third therapist request fails for good; Priya's session is unaffected."""
    failure, extra, expected = CASES[case]

    def handler(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        is_marcus = "Marcus Thompson" in messages[0]["content"]
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if is_marcus and role_of(request) == "therapist" and turn == 2:
            return failure()
        return model_reply(request)

    with serve(handler) as server:
        result = run_cli(
            tmp_path, MARCUS, PRIYA, *MODEL_FLAGS, config=write_config(tmp_path, extra),
            env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.output
    run_dir = tmp_path / "r"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed"
    failed = run["sessions"]["marcus_thompson"]["1"]
    assert failed["status"] == "failed" and failed["termination"] == "Error"
    assert failed["file"] == "marcus_thompson/session_01.partial.txt"
    assert re.fullmatch(expected + ".*", failed["error"]), failed["error"]
    # The partial transcript is kept, under .partial names, ending in the Error termination.
    assert not (run_dir / "marcus_thompson" / "session_01.json").exists()
    partial = SessionRecord.model_validate_json(
        (run_dir / "marcus_thompson" / "session_01.partial.json").read_text()
    )
    assert partial.status == "failed" and len(partial.messages) == 5
    assert partial.termination is not None and partial.termination.reason == "Error"
    assert partial.termination.details == failed["error"] == partial.error
    text = (run_dir / "marcus_thompson" / "session_01.partial.txt").read_text()
    assert text.startswith("Session Number: 1\n\nPatient: Hi, I'm Marcus Thompson.")
    assert f"Termination Details:\nReason: Error\nDetails: {partial.error}\n" in text
    # Priya's session completed.
    assert run["sessions"]["priya_shah"]["1"]["status"] == "complete"
    assert records(run_dir, "priya_shah")[0].status == "complete"
    # What the user sees: the failed session on stderr, and the key nowhere.
    assert f"marcus_thompson session 1: failed (Error): {failed['error']}; " in result.stderr
    assert KEY not in result.output
    for path in run_dir.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes()


def test_connection_refused_fails_every_session_with_the_address(tmp_path: Path, refusing_url: str) -> None:
    url = refusing_url
    result = run_cli(tmp_path, MARCUS, PRIYA, *MODEL_FLAGS, "--base-url", url, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 1, result.stderr
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    expected = (
        f"therapist: cannot connect to {url}: connection refused after 4 attempts (is the server running?)"
    )
    for persona in ("marcus_thompson", "priya_shah"):
        entry = run["sessions"][persona]["1"]
        assert (entry["status"], entry["termination"], entry["error"]) == ("failed", "Error", expected)
        partial = tmp_path / "r" / persona / "session_01.partial.json"
        record = SessionRecord.model_validate_json(partial.read_text())
        assert len(record.messages) == 1 and record.messages[0].flags == ["template"]
        assert f"{persona} session 1: failed (Error): {expected}; " in result.stderr
    assert "Traceback" not in result.output


def test_the_reason_a_session_failed_reaches_stderr(tmp_path: Path) -> None:
    with serve(lambda request: unauthorized()) as server:
        result = run_cli(tmp_path, MARCUS, *MODEL_FLAGS, env={"OPENAI_BASE_URL": server.base_url})
    assert result.exit_code == 1
    assert (
        f"marcus_thompson session 1: failed (Error): therapist: the endpoint {server.base_url} "
        "refused the API key (401); check $OPENAI_API_KEY (it is not set); "
    ) in result.stderr
