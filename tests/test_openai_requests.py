"""The OpenAI backend's request path over real HTTP: the bodies it sends are byte for byte
what the SDK's ``chat.completions.create`` sends, each attempt has a wall-clock deadline,
cut-off JSON is retried, and every reply says how long the server took (``latency_s``) apart
from how long the request waited to go out (``queued_s``)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from simulator.backends.openai import OpenAIBackend
from simulator.backends.ratelimit import RateLimitedBackend
from simulator.config import RetrySettings, RoleSettings
from simulator.errors import BackendError
from simulator.protocol import ChatMessage, ChatReply, ChatRequest, Usage
from simulator.records import SessionRecord
from tests.conftest import MARCUS, invoke
from tests.loopback import LoopbackServer, Reply, completion, cut_off, drip, serve

KEY = "sk-test-requests-0123456789"
SLACK_S = 0.05
"""Between our write to the socket and the clock reading after it, the server may already have read."""
MESSAGES = (
    ChatMessage("system", "You are Nova, a CBT therapist. Be warm — and brief."),
    ChatMessage("user", 'Hi, I\'m Zoë. "Work" has been… a lot 😅\nReally.'),
    ChatMessage("assistant", "Welcome back, Zoë."),
    ChatMessage("user", "This week was hard."),
)


async def no_wait(_seconds: float) -> None:
    return None


def backend(url: str, *, pool_size: int = 100, **retry: Any) -> OpenAIBackend:
    settings = RetrySettings(**{"attempts": 3, "initial_wait_s": 0.0, "max_wait_s": 0.0, **retry})
    return OpenAIBackend(base_url=url, api_key=KEY, retry=settings, sleep=no_wait, pool_size=pool_size)


def chat(**settings: Any) -> ChatRequest:
    return ChatRequest(
        role="therapist", messages=MESSAGES, settings=RoleSettings(**{"model": "m-1", **settings})
    )


@pytest.fixture
def server() -> Any:
    with serve() as running:
        yield running


# ---- the bodies are the SDK's, byte for byte -------------------------------------------------


async def sdk_bytes(kwargs: dict[str, Any], extra_body: dict[str, Any] | None = None) -> bytes:
    """What ``client.chat.completions.create`` (the SDK's own request path, which this
    backend used before) sends for these arguments."""
    with serve() as other:
        async with openai.AsyncOpenAI(api_key=KEY, base_url=other.base_url) as client:
            await client.chat.completions.create(**kwargs, extra_body=extra_body)
        [sent] = other.requests
    return sent.raw


AS_DICTS = [m.as_dict() for m in MESSAGES]


@pytest.mark.parametrize(
    ("settings", "sdk_kwargs", "sdk_extra"),
    [
        ({}, {}, None),
        (
            {"temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\nPatient:"], "max_tokens": 300},
            {"temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\nPatient:"], "max_tokens": 300},
            None,
        ),
        (
            {"max_tokens": 50, "max_tokens_param": "max_completion_tokens", "extra_body": {"top_k": 40}},
            {"max_completion_tokens": 50},
            {"top_k": 40},
        ),
        (
            {"temperature": 0.2, "omit_params": ["temperature"], "extra_body": {"min_p": 0.1, "seed": 9}},
            {},
            {"min_p": 0.1, "seed": 9},
        ),
    ],
)
async def test_request_bodies_are_the_sdks_byte_for_byte(
    server: LoopbackServer, settings: dict[str, Any], sdk_kwargs: dict[str, Any], sdk_extra: Any
) -> None:
    async with backend(server.base_url) as chat_backend:
        await chat_backend.complete(chat(**settings))
    [sent] = server.requests
    assert sent.raw == await sdk_bytes({"model": "m-1", "messages": AS_DICTS, **sdk_kwargs}, sdk_extra)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"


def test_a_whole_run_sends_what_the_sdk_would_and_writes_the_same_transcripts(tmp_path: Path) -> None:
    """Every request of a real two-session run, replayed through the SDK's create, is the
    same bytes; and the same run again writes byte-identical transcripts."""
    env = {"OPENAI_API_KEY": KEY}
    transcripts = []
    for attempt in ("a", "b"):
        with serve() as model:
            result = invoke(
                "run", MARCUS, "--sessions", "2", "--max-turns", "8", "--model", "m-1", "--seed", "3",
                "--base-url", model.base_url, "--out", tmp_path, "--run-id", attempt, env=env,
            )  # fmt: skip
            assert result.exit_code == 0, result.stderr
            sent = model.requests
        transcripts.append([p.read_bytes() for p in sorted((tmp_path / attempt).glob("*/session_*.txt"))])
    assert len(sent) > 10
    for request in sent:
        assert request.raw == asyncio.run(sdk_bytes(request.json))  # model, messages, seed only
    assert transcripts[0] == transcripts[1] and len(transcripts[0]) == 2


# ---- a deadline on the whole attempt ------------------------------------------------------------


async def test_a_dripping_body_ends_at_the_deadline_not_at_the_last_byte(server: LoopbackServer) -> None:
    """One byte every 50 ms keeps every read inside a 0.5 s read timeout; the whole reply
    would take over 10 s. The wall-clock deadline ends each attempt instead."""
    server.enqueue(drip(), drip())
    async with backend(server.base_url, attempts=2, timeout_s=0.5) as chat_backend:
        with pytest.raises(BackendError) as caught:
            await chat_backend.complete(chat())
    assert str(caught.value) == f"therapist: no reply from {server.base_url} within 0.5s (2 attempts)"
    assert (caught.value.attempts, caught.value.status) == (2, None)
    assert len(server.requests) == 2


async def test_after_a_dripping_attempt_the_next_one_succeeds(server: LoopbackServer) -> None:
    server.enqueue(drip())
    async with backend(server.base_url, timeout_s=0.5) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.extra == {"attempts": 2}
    assert reply.content.startswith("I hear you saying")


# ---- a 200 whose JSON is cut off ----------------------------------------------------------------


async def test_cut_off_json_is_retried_like_a_502(server: LoopbackServer) -> None:
    server.enqueue(cut_off(), cut_off(keep=0.9))
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.extra == {"attempts": 3}
    assert len(server.requests) == 3


async def test_cut_off_json_until_attempts_run_out_says_so_without_blaming_the_url(
    server: LoopbackServer,
) -> None:
    whole = completion("Cut short.")
    size = len(json.dumps(whole.body).encode()) // 2
    server.enqueue(*[cut_off(whole)] * 3)
    async with backend(server.base_url) as chat_backend:
        with pytest.raises(BackendError) as caught:
            await chat_backend.complete(chat())
    assert str(caught.value) == (
        f"therapist: {server.base_url} sent an incomplete reply after 3 attempts: "
        f"its JSON body is cut off ({size} bytes received)"
    )
    assert "base URL" not in str(caught.value)
    assert (caught.value.attempts, caught.value.status) == (3, 200)


async def test_a_page_that_is_not_json_still_points_at_the_base_url(server: LoopbackServer) -> None:
    server.enqueue(Reply(200, {"Content-Type": "text/html"}, "<html>welcome</html>"))
    async with backend(server.base_url) as chat_backend:
        with pytest.raises(BackendError) as caught:
            await chat_backend.complete(chat())
    assert "is the base URL right?" in str(caught.value)
    assert len(server.requests) == 1


# ---- latency_s and queued_s -------------------------------------------------------------------


async def test_latency_is_the_servers_and_the_pool_wait_is_queued() -> None:
    """Four requests, two connections, 0.3 s a reply: two wait for a connection, and that wait
    shows in queued_s; latency_s never covers time before the request reached the server."""
    with serve(latency_s=0.3) as slow:
        async with backend(slow.base_url, pool_size=2) as chat_backend:
            started = time.perf_counter()
            replies = await asyncio.gather(*(chat_backend.complete(chat()) for _ in range(4)))
            ended = time.perf_counter()
        arrived = {f"req-loopback-{r.index}": r.received_s - started for r in slow.requests}
    assert sorted(arrived.values())[2] >= 0.3  # the pool really held two back
    waited = sorted(reply.queued_s for reply in replies)
    assert waited[2] >= 0.25 and waited[3] >= 0.25
    for reply in replies:
        assert reply.latency_s >= 0.3
        assert reply.latency_s <= ended - started - arrived[str(reply.request_id)] + SLACK_S


async def test_the_rate_limiters_wait_is_queued_time() -> None:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    class Instant:
        name = "instant"

        async def complete(self, request: ChatRequest) -> ChatReply:
            return ChatReply("ok", "m-1", usage=Usage(1, 1), latency_s=0.25, queued_s=0.01)

        async def aclose(self) -> None:
            return None

    limited = RateLimitedBackend(Instant(), 60, None, clock=lambda: clock[0], sleep=sleep)
    first = await limited.complete(chat())
    for _ in range(59):
        await limited.complete(chat())
    last = await limited.complete(chat())  # the 61st in a minute waits a second for its slot
    assert first.queued_s == pytest.approx(0.01)
    assert last.queued_s == pytest.approx(1.01)
    assert last.latency_s == 0.25


def test_session_records_carry_latency_and_queued_time(tmp_path: Path) -> None:
    with serve(latency_s=0.05) as model:
        result = invoke(
            "run", MARCUS, "--max-turns", "6", "--model", "m-1", "--base-url", model.base_url,
            "--out", tmp_path, "--run-id", "r", env={"OPENAI_API_KEY": KEY},
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [path] = (tmp_path / "r").glob("*/session_01.json")
    record = SessionRecord.model_validate_json(path.read_text())
    answered = [m for m in record.messages if m.model is not None]
    assert len(answered) >= 2
    for message in answered:
        assert 0.05 <= message.latency_s < 60  # at least the server's delay; a duration, not a clock
        assert 0 <= message.queued_s < 60
    raw = json.loads(path.read_text())["messages"][1]
    assert {"latency_s", "queued_s"} <= set(raw)
