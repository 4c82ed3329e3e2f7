"""Reading error bodies in the shapes real servers send them (simulator.backends.server_errors)."""

from __future__ import annotations

import pytest

from simulator.backends import server_errors
from tests.loopback import (
    context_length_exceeded,
    insufficient_quota,
    llama_cpp_context_exceeded,
    llama_cpp_not_found,
    rate_limited,
    vllm_error,
)


def test_the_three_body_shapes_read_the_same() -> None:
    nested = server_errors.read_error(400, llama_cpp_context_exceeded(4476, 4096).body)
    top_level = server_errors.read_error(
        400, vllm_error("This model's maximum context length is 2048 tokens.").body
    )
    bare = server_errors.read_error(500, {"error": "Internal  server\n error"})
    assert (nested.type, nested.fields["n_ctx"], server_errors.context_size(nested)) == (
        "exceed_context_size_error",
        4096,
        4096,
    )
    assert (top_level.text, top_level.code, server_errors.context_size(top_level)) == (
        "This model's maximum context length is 2048 tokens.",
        "400",
        2048,
    )
    assert bare.text == "Internal server error" and bare.code is None
    assert server_errors.read_error(502, None).text == ""


def test_what_counts_as_a_context_overflow() -> None:
    assert server_errors.is_context_overflow(server_errors.read_error(400, context_length_exceeded().body))
    assert server_errors.is_context_overflow(server_errors.read_error(400, llama_cpp_context_exceeded().body))
    assert server_errors.is_context_overflow(
        server_errors.read_error(400, {"message": "prompt has 9000 tokens, limit 8192"})
    )
    # A parameter the server names as rejected is not an overflow, nor is a 404 or a 500.
    unsupported = server_errors.read_error(
        400, {"message": "max_tokens: 4096 tokens is not supported with this model"}
    )
    assert not server_errors.is_context_overflow(unsupported, named_param=True)
    assert not server_errors.is_context_overflow(server_errors.read_error(404, llama_cpp_not_found().body))
    assert not server_errors.is_context_overflow(
        server_errors.read_error(500, {"message": "context 4096 tokens: CUDA out of memory"})
    )
    assert not server_errors.is_context_overflow(
        server_errors.read_error(400, {"message": "temperature must be between 0 and 2"})
    )


def test_template_refusals_and_quota() -> None:
    assert server_errors.is_template_rejection(
        server_errors.read_error(400, vllm_error("System role not supported").body)
    )
    assert not server_errors.is_template_rejection(
        server_errors.read_error(404, vllm_error("System role not supported").body)
    )
    assert server_errors.is_quota(server_errors.read_error(429, insufficient_quota().body))
    assert server_errors.is_quota(server_errors.read_error(402, {"message": "Insufficient credits"}))
    assert not server_errors.is_quota(server_errors.read_error(429, rate_limited().body))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_long_message_is_quoted_around_its_cause(where: str) -> None:
    filler = [f"Gateway note {n} about routing and retries in this deployment." for n in range(30)]
    cause = "Your request needs 9001 tokens but this model's context is 8192 tokens."
    at = {"first": 0, "middle": 15, "last": 30}[where]
    text = " ".join([*filler[:at], cause, *filler[at:]])
    quoted = server_errors.quote(text)
    assert cause in quoted and len(quoted) <= server_errors.QUOTE_LIMIT
    assert quoted.startswith("…") == (where != "first")
    assert quoted.endswith("…") == (where != "last")
    assert server_errors.quote("Short and clear.") == "Short and clear."
