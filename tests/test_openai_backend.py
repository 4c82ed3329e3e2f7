"""The OpenAI backend against a real HTTP server on 127.0.0.1, faults included.

Sleeps between retries go through the injectable ``sleep``, so nothing here waits for a
backoff; only the timeout tests spend real time (0.2 s a try).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.backends.openai import OpenAIBackend
from simulator.config import RetrySettings, RoleSettings
from simulator.errors import BackendError, ContextOverflow, InputError, TemplateRejected
from simulator.protocol import ChatMessage, ChatRequest, Role, Usage
from tests.loopback import (
    LoopbackServer,
    RecordedRequest,
    Reply,
    bad_request,
    completion,
    context_length_exceeded,
    error_reply,
    hang,
    insufficient_quota,
    llama_cpp_context_exceeded,
    llama_cpp_not_found,
    no_choices,
    not_found,
    rate_limited,
    serve,
    server_error,
    unauthorized,
    vllm_error,
)

KEY = "sk-test-abcdef0123456789"
MESSAGES = (
    ChatMessage("system", "You are Nova, a CBT therapist."),
    ChatMessage("user", "Hi, I'm Marcus Thompson."),
    ChatMessage("assistant", "Welcome back, Marcus."),
    ChatMessage("user", "This week was hard."),
)


class Sleeps:
    """Stands in for asyncio.sleep: records the delay asked for, returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serve() as running:
        yield running


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def backend(
    base_url: str | None,
    sleeps: Sleeps | None = None,
    *,
    api_key: str | None = KEY,
    api_key_env: str = "OPENAI_API_KEY",
    **retry: Any,
) -> OpenAIBackend:
    settings = RetrySettings(**{"attempts": 3, "initial_wait_s": 1.0, "max_wait_s": 30.0, **retry})
    return OpenAIBackend(
        base_url=base_url, api_key=api_key, api_key_env=api_key_env, retry=settings, sleep=sleeps or Sleeps()
    )


def chat(role: Role = "therapist", **settings: Any) -> ChatRequest:
    return ChatRequest(role=role, messages=MESSAGES, settings=RoleSettings(**{"model": "m-1", **settings}))


async def fails(backend: OpenAIBackend, request: ChatRequest) -> BackendError:
    with pytest.raises(BackendError) as caught:
        await backend.complete(request)
    return caught.value


# ------------------------------------------------------------------ success path


async def test_success_sends_key_model_params_and_reads_the_reply(server: LoopbackServer) -> None:
    request = chat(
        temperature=0.7,
        top_p=0.9,
        seed=42,
        stop=["\nPatient:"],
        max_tokens=300,
        extra_body={"top_k": 40, "repetition_penalty": 1.1},
    )
    server.enqueue(
        completion(
            "What made it hard?",
            model="m-1",
            usage={
                "prompt_tokens": 120,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 96},
            },
            headers={"x-request-id": "req-123"},
        )
    )
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(request)

    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "m-1",
        "messages": [m.as_dict() for m in MESSAGES],
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["\nPatient:"],
        "max_tokens": 300,
        "top_k": 40,
        "repetition_penalty": 1.1,
    }
    assert reply.content == "What made it hard?"
    assert reply.model == "m-1"
    assert reply.finish_reason == "stop"
    assert reply.usage == Usage(prompt_tokens=120, completion_tokens=5, cached_tokens=96)
    assert reply.request_id == "req-123"
    assert reply.extra == {"attempts": 1}
    assert 0 < reply.latency_s < 5


async def test_default_loopback_reply_is_plausible(server: LoopbackServer) -> None:
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.content == 'I hear you saying "This week was hard.". Could you tell me more about that?'
    assert reply.request_id == "req-loopback-0"
    assert 0 < reply.usage.cached_tokens < reply.usage.prompt_tokens
    assert reply.usage.completion_tokens > 0


async def test_unset_settings_are_not_sent(server: LoopbackServer) -> None:
    async with backend(server.base_url) as chat_backend:
        await chat_backend.complete(chat())
    assert set(server.requests[0].json) == {"model", "messages"}


async def test_max_tokens_param_renames_the_limit(server: LoopbackServer) -> None:
    async with backend(server.base_url) as chat_backend:
        await chat_backend.complete(chat(max_tokens=300, max_tokens_param="max_completion_tokens"))
    body = server.requests[0].json
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body


async def test_omitted_params_are_never_sent(server: LoopbackServer) -> None:
    request = chat(
        temperature=0.7,
        seed=3,
        max_tokens=50,
        top_p=0.5,
        omit_params=["temperature", "seed", "max_tokens"],
        extra_body={"seed": 9, "max_completion_tokens": 5, "min_p": 0.1},
    )
    async with backend(server.base_url) as chat_backend:
        await chat_backend.complete(request)
    body = server.requests[0].json
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {"top_p": 0.5, "min_p": 0.1}


async def test_model_and_request_id_come_from_the_server_when_given(server: LoopbackServer) -> None:
    server.enqueue(completion("Hello.", model="served-model-2025", completion_id="chatcmpl-xyz"))
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert (reply.model, reply.request_id) == ("served-model-2025", "chatcmpl-xyz")


async def test_finish_reason_length_is_passed_through(server: LoopbackServer) -> None:
    server.enqueue(completion("even when I'm not meeting my", finish_reason="length"))
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert (reply.content, reply.finish_reason) == ("even when I'm not meeting my", "length")


async def test_missing_usage_counts_zero(server: LoopbackServer) -> None:
    server.enqueue(completion("Fine.", with_usage=False))
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.usage == Usage()


async def test_usage_without_cache_details_counts_zero_cached(server: LoopbackServer) -> None:
    server.enqueue(
        completion(
            "Fine.", usage={"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": None}
        )
    )
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.usage == Usage(10, 2, 0)


async def test_null_content_becomes_empty_text(server: LoopbackServer) -> None:
    server.enqueue(completion(None))
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.content == ""


# ------------------------------------------------------------------ retried failures


async def test_429_waits_for_retry_after_then_succeeds(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.enqueue(rate_limited(retry_after=2))
    async with backend(server.base_url, sleeps) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert sleeps.calls == [2.0]
    assert len(server.requests) == 2
    assert reply.extra == {"attempts": 2}


async def test_retry_after_ms_and_the_cap(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.enqueue(rate_limited(retry_after=None, retry_after_ms=1500), rate_limited(retry_after=600))
    async with backend(server.base_url, sleeps, max_wait_s=20.0) as chat_backend:
        await chat_backend.complete(chat())
    assert sleeps.calls == [1.5, 20.0]


async def test_500_twice_then_success(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.enqueue(server_error(), server_error(502))
    async with backend(server.base_url, sleeps) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert len(server.requests) == 3
    assert reply.extra == {"attempts": 3}
    first, second = sleeps.calls
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0  # jittered doubling from initial_wait_s=1


async def test_5xx_until_attempts_run_out(server: LoopbackServer) -> None:
    server.enqueue(*[server_error(503, "overloaded")] * 3)
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat())
    assert str(error) == f"therapist: server error 503 from {server.base_url} after 3 attempts: overloaded"
    assert (error.attempts, error.status) == (3, 503)


async def test_hang_past_the_timeout_then_success(server: LoopbackServer) -> None:
    server.enqueue(hang(2.0))
    async with backend(server.base_url, timeout_s=0.2) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.extra == {"attempts": 2}
    assert reply.content.startswith("I hear you saying")


async def test_hang_until_attempts_run_out(server: LoopbackServer) -> None:
    server.enqueue(hang(2.0), hang(2.0))
    async with backend(server.base_url, attempts=2, timeout_s=0.2) as chat_backend:
        error = await fails(chat_backend, chat(role="patient"))
    assert str(error) == f"patient: no reply from {server.base_url} within 0.2s (2 attempts)"
    assert (error.attempts, error.status) == (2, None)


async def test_200_without_choices_is_retried(server: LoopbackServer) -> None:
    server.enqueue(no_choices())
    async with backend(server.base_url) as chat_backend:
        reply = await chat_backend.complete(chat())
    assert reply.extra == {"attempts": 2}


async def test_200_without_choices_until_attempts_run_out(server: LoopbackServer) -> None:
    server.enqueue(
        no_choices("Provider returned error"), no_choices(None), no_choices("Provider returned error")
    )
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat())
    assert str(error) == (
        f'therapist: {server.base_url} answered without choices after 3 attempts: "Provider returned error"'
    )
    assert (error.attempts, error.status) == (3, 200)
    assert len(server.requests) == 3


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    async with backend(url, attempts=2) as chat_backend:
        error = await fails(chat_backend, chat())
    assert str(error) == (
        f"therapist: cannot connect to {url}: connection refused after 2 attempts (is the server running?)"
    )
    assert (error.attempts, error.status) == (2, None)


# ------------------------------------------------------------------ failures not retried


async def test_401_names_endpoint_and_env_var_never_the_key(server: LoopbackServer) -> None:
    def echo_key(request: RecordedRequest) -> Reply:  # a server that quotes the key it got
        return unauthorized(f"Incorrect API key provided: {request.headers['authorization'][7:]}")

    server.handler = echo_key
    chat_backend = backend(server.base_url, api_key_env="MY_KEY")
    async with chat_backend:
        error = await fails(chat_backend, chat())
    assert str(error) == f"therapist: the endpoint {server.base_url} refused the API key (401); check $MY_KEY"
    assert (error.attempts, error.status) == (1, 401)
    assert len(server.requests) == 1
    for text in (str(error), repr(error), repr(chat_backend)):
        assert KEY not in text and KEY[3:] not in text


async def test_a_missing_model_is_told_from_the_models_the_server_lists(server: LoopbackServer) -> None:
    """vLLM's 404 for a model it does not serve; one ``GET /models`` shows the path is right."""
    server.enqueue(not_found("m-1"), not_found("m-1"))
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat(role="patient"))
        again = await fails(chat_backend, chat(role="patient"))
    assert (
        str(error) == f"patient: model 'm-1' not found at {server.base_url} (404); it serves: loopback-model"
    )
    assert type(error) is BackendError and error.status == 404
    assert "it serves: loopback-model" in str(again)
    sent = [(r.method, r.path) for r in server.requests]
    assert sent == [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions")]


async def test_a_wrong_path_is_not_reported_as_a_missing_model(server: LoopbackServer) -> None:
    """llama-server answers every unknown path with 404 "File Not Found"; ``/api/v1`` is one."""
    server.unknown_route = llama_cpp_not_found()
    wrong = server.base_url.replace("/v1", "/api/v1")
    async with backend(wrong) as chat_backend:
        error = await fails(chat_backend, chat(model="tiny"))
    assert str(error) == (
        f"therapist: nothing answers at {wrong}/chat/completions (404: File Not Found); the base URL "
        "is wrong: it usually ends in /v1, as in http://localhost:8080/v1"
    )
    assert "model 'tiny'" not in str(error)
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/api/v1/chat/completions"),
        ("GET", "/api/v1/models"),
    ]


async def test_unsupported_max_tokens_names_the_config_key(server: LoopbackServer) -> None:
    server.enqueue(
        bad_request(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    )
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat(max_tokens=300))
    message = str(error)
    assert message.startswith(
        f"therapist: the server at {server.base_url} rejected parameter 'max_tokens': "
        "set `roles.therapist.max_tokens_param: max_completion_tokens` in the config"
    )
    assert (error.attempts, error.status, len(server.requests)) == (1, 400, 1)


@pytest.mark.parametrize(
    ("server_says", "param", "fix"),
    [
        (
            "temperature is not supported with this model",
            None,
            "`roles.patient.omit_params: [temperature, top_p]`",
        ),
        (
            "Unsupported value: 'temperature' does not support 0.7 with this model.",
            "temperature",
            "`roles.patient.omit_params: [temperature, top_p]`",
        ),
        ("Unrecognized request argument supplied: seed", None, "`roles.patient.omit_params: [top_p, seed]`"),
    ],
)
async def test_rejected_parameter_names_omit_params(
    server: LoopbackServer, server_says: str, param: str | None, fix: str
) -> None:
    server.enqueue(bad_request(server_says, param=param))
    request = chat(role="patient", temperature=0.7, seed=1, omit_params=["top_p"])
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, request)
    assert f"set {fix} in the config" in str(error)
    assert str(error).startswith("patient: ")


async def test_other_400_quotes_the_server(server: LoopbackServer) -> None:
    server.enqueue(bad_request("'messages' must contain the word 'json' in some form"))
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat())
    assert str(error) == (
        f"therapist: {server.base_url} rejected the request for model 'm-1' (400): "
        "'messages' must contain the word 'json' in some form"
    )
    assert type(error) is BackendError


@pytest.mark.parametrize(
    "reply",
    [
        # vLLM renders the model's template; a Jinja raise_exception becomes a 400.
        vllm_error(
            "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."
        ),
        vllm_error("System role not supported"),
        error_reply(
            400,
            "Conversation roles must alternate user/assistant/user/assistant/...",
            type_="invalid_request_error",
            code=400,
        ),
    ],
)
async def test_a_template_refusing_the_roles_is_a_template_rejection(
    server: LoopbackServer, reply: Reply
) -> None:
    server.enqueue(reply)
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat(role="patient"))
    assert isinstance(error, TemplateRejected) and error.status == 400
    assert str(error).startswith(
        f"patient: the chat template of model 'm-1' at {server.base_url} refused the messages' roles (400): "
    )
    assert str(error).endswith("; set `roles.patient.message_layout: alternating_no_system`")
    assert len(server.requests) == 1


async def test_a_template_refusal_answered_as_a_500_is_not_retried(server: LoopbackServer) -> None:
    """A Jinja exception some llama-server builds report as a server error."""
    server.enqueue(
        error_reply(
            500, "Conversation roles must alternate user/assistant/user/assistant/...", type_="server_error"
        )
    )
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat(role="patient"))
    assert isinstance(error, TemplateRejected) and error.status == 500
    assert len(server.requests) == 1


async def test_insufficient_quota_is_not_retried(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.enqueue(insufficient_quota())
    async with backend(server.base_url, sleeps) as chat_backend:
        error = await fails(chat_backend, chat())
    assert len(server.requests) == 1 and sleeps.calls == []
    assert "no quota left" in str(error) and "insufficient_quota" in str(error)
    assert (error.attempts, error.status) == (1, 429)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (error_reply(429, "You exceeded your current quota, please check your plan.", type_="quota"), 429),
        (error_reply(403, "Monthly quota exhausted for this key.", code="quota_exhausted"), 403),
    ],
)
async def test_quota_in_other_dialects_says_so(server: LoopbackServer, reply: Reply, status: int) -> None:
    server.enqueue(reply)
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat())
    assert len(server.requests) == 1  # not retried: waiting does not bring credits back
    assert str(error).startswith(
        f"therapist: the account behind $OPENAI_API_KEY has no quota left at {server.base_url} ({status}"
    )
    assert "check the plan and billing: " in str(error)


@pytest.mark.parametrize(
    ("reply", "size"),
    [
        (context_length_exceeded(limit=8192), 8192),  # OpenAI
        (llama_cpp_context_exceeded(n_prompt_tokens=4476, n_ctx=4096), 4096),
        (
            vllm_error(
                "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens "
                "(1588 in the messages, 512 in the completion). Please reduce the length of the messages "
                "or completion."
            ),
            2048,
        ),
        # Any 400 that speaks of tokens with a number.
        (vllm_error("max_tokens must be at least 1, got -186."), None),
        (bad_request("Input is too long: 9001 tokens requested, the limit is 8192"), None),
    ],
)
async def test_context_overflow_in_every_dialect(
    server: LoopbackServer, reply: Reply, size: int | None
) -> None:
    server.enqueue(reply)
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat(model="small-model", max_tokens=512))
    assert isinstance(error, ContextOverflow) and error.status == 400
    context = f" of {size} tokens" if size else ""
    assert str(error).startswith(
        f"therapist: the request does not fit the context{context} of model 'small-model' "
        "(4 messages, max_tokens=512): lower --max-turns or `roles.therapist.max_tokens`, or use a model "
        "(or server setting: llama.cpp -c, vLLM --max-model-len) with a larger context. Server said: "
    )
    said = reply.body.get("error", reply.body)["message"]
    assert str(error).endswith(said)
    assert len(server.requests) == 1


async def test_a_long_server_message_keeps_the_sentence_with_the_cause(server: LoopbackServer) -> None:
    preamble = "Request rejected by the upstream gateway after validation of the payload. " * 8
    cause = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."
    tail = " Consult the documentation of the gateway for more information about limits." * 8
    server.enqueue(bad_request(preamble + cause + tail))
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat())
    said = str(error).split("Server said: ", 1)[1]
    assert cause in said and len(said) <= 600 and said.startswith("…")


async def test_non_json_200_is_a_clear_error(server: LoopbackServer) -> None:
    server.enqueue(Reply(200, {"Content-Type": "text/html"}, "<html>welcome</html>"))
    async with backend(server.base_url) as chat_backend:
        error = await fails(chat_backend, chat())
    assert "did not answer with a chat completion" in str(error) and "/v1" in str(error)
    assert len(server.requests) == 1


# ------------------------------------------------------------------ endpoints and keys


async def test_base_urls_spread_requests_round_robin(server: LoopbackServer) -> None:
    with serve() as other:
        request = chat(base_urls=[server.base_url, other.base_url + "/"])
        async with backend(None) as chat_backend:
            for _ in range(4):
                await chat_backend.complete(request)
        assert len(server.requests) == 2 and len(other.requests) == 2


async def test_a_retry_moves_on_to_the_next_replica(server: LoopbackServer) -> None:
    server.enqueue(server_error())
    with serve() as other:
        async with backend(None) as chat_backend:
            reply = await chat_backend.complete(chat(base_urls=[server.base_url, other.base_url]))
        assert (len(server.requests), len(other.requests), reply.extra) == (1, 1, {"attempts": 2})


async def test_base_url_falls_back_to_the_environment(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    async with backend(None) as chat_backend:
        await chat_backend.complete(chat())
    assert len(server.requests) == 1


async def test_key_comes_from_api_key_env(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-from-env-123456")
    async with backend(server.base_url, api_key=None, api_key_env="MY_KEY") as chat_backend:
        await chat_backend.complete(chat())
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env-123456"


async def test_local_server_needs_no_key(server: LoopbackServer) -> None:
    async with backend(server.base_url, api_key=None) as chat_backend:
        await chat_backend.complete(chat())
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1", "https://us.api.openai.com/v1/"])
def test_openai_without_a_key_is_bad_input(base_url: str | None) -> None:
    with pytest.raises(InputError) as caught:
        backend(base_url, api_key=None, api_key_env="MY_KEY")
    assert str(caught.value) == "MY_KEY is not set: export it, or use --backend offline"


async def test_missing_model_is_bad_input(server: LoopbackServer) -> None:
    request = ChatRequest(role="summarizer", messages=MESSAGES, settings=RoleSettings())
    async with backend(server.base_url) as chat_backend:
        with pytest.raises(InputError) as caught:
            await chat_backend.complete(request)
    message = str(caught.value)
    assert "--model" in message and "--summarizer-model" in message and "roles.summarizer.model" in message
    assert server.requests == []


async def test_aclose_is_idempotent_and_clients_come_back(server: LoopbackServer) -> None:
    chat_backend = backend(server.base_url)
    await chat_backend.complete(chat())
    await chat_backend.aclose()
    await chat_backend.aclose()
    await chat_backend.complete(chat())  # a fresh client after closing
    await chat_backend.aclose()
    assert len(server.requests) == 2


def test_repr_hides_credentials() -> None:
    chat_backend = backend("http://user:hunter2@127.0.0.1:1/v1")
    assert "hunter2" not in repr(chat_backend) and KEY not in repr(chat_backend)
    assert chat_backend.name == "openai"


async def test_concurrent_requests_are_served_in_parallel() -> None:
    with serve(latency_s=0.2) as slow:
        async with backend(slow.base_url) as chat_backend:
            started = time.monotonic()
            replies = await asyncio.gather(*(chat_backend.complete(chat()) for _ in range(8)))
            elapsed = time.monotonic() - started
    assert len(slow.requests) == 8
    assert all(reply.latency_s >= 0.2 for reply in replies)
    assert elapsed < 1.2  # one after another would take 1.6 s


async def test_cancelling_a_request_does_not_retry_it(server: LoopbackServer) -> None:
    server.enqueue(hang(2.0))
    async with backend(server.base_url, timeout_s=5.0) as chat_backend:
        task = asyncio.create_task(chat_backend.complete(chat()))
        for _ in range(100):
            if server.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(server.requests) == 1
