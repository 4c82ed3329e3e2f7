"""What an endpoint's error response means, in the dialects real servers speak.

Pure functions over the status and the parsed body, so any transport can use them:

- context overflow: llama.cpp's ``exceed_context_size_error`` (with ``n_ctx``), vLLM's "maximum
  context length is N tokens", OpenAI's ``context_length_exceeded``, and any 4xx whose message
  speaks of the context or of tokens with a number;
- a chat template refusing the messages' roles (see :func:`simulator.message_layout.rejects_layout`);
- no quota or credits left;

and :func:`quote`, which keeps the part of a long server message that holds the cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from simulator.message_layout import rejects_layout

QUOTE_LIMIT = 600
"""Characters of the server's own message quoted in ours."""

_CONTEXT_DIALECT = re.compile(
    r"context[_ ]length|maximum context|context (?:size|window)|prompt is too long|"
    r"exceeds? the (?:available )?context",
    re.IGNORECASE,
)
_CONTEXT_OR_TOKENS = re.compile(r"\bcontext\b|tokens?\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
_CONTEXT_SIZE = re.compile(
    r"(?:maximum context length is|context size \(?|context length of|context window of)\s*\(?(\d+)",
    re.IGNORECASE,
)
_QUOTA = re.compile(r"\bquota\b|\bcredits?\b|\bbilling\b", re.IGNORECASE)
_CAUSE = re.compile(
    r"context|tokens?|roles? |alternate|system role|quota|credits?|not found|does not exist|"
    r"unsupported|not supported|invalid|exceed",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


@dataclass(frozen=True)
class ServerError:
    """An error response, read the same way whatever shape the server gave it."""

    status: int
    text: str
    """The server's message, whitespace collapsed ('' when it gave none)."""
    code: str | None = None
    type: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    """The error object as sent (llama.cpp adds ``n_ctx`` and ``n_prompt_tokens``)."""


def read_error(status: int, body: object) -> ServerError:
    """``body`` is the parsed JSON: the whole response or its ``error`` object (the OpenAI SDK
    hands over the latter), or a bare string."""
    data: object = body
    if isinstance(data, dict) and isinstance(data.get("error"), dict | str):
        data = data["error"]
    if isinstance(data, str):
        return ServerError(status, _collapse(data))
    if not isinstance(data, dict):
        return ServerError(status, "")
    message = data.get("message")
    code, type_ = data.get("code"), data.get("type")
    return ServerError(
        status,
        _collapse(message) if isinstance(message, str) else "",
        str(code) if code is not None else None,
        str(type_) if type_ is not None else None,
        dict(data),
    )


def is_context_overflow(error: ServerError, *, named_param: bool = False) -> bool:
    """The request does not fit the model's context. ``named_param``: the error also reads as
    a rejected parameter, which wins over the loose "tokens and a number" rule."""
    if not 400 <= error.status < 500:
        return False
    if error.type == "exceed_context_size_error" or error.code == "context_length_exceeded":
        return True
    if _CONTEXT_DIALECT.search(error.text):
        return True
    return (
        not named_param
        and error.status in (400, 413, 422)
        and bool(_CONTEXT_OR_TOKENS.search(error.text))
        and bool(_NUMBER.search(error.text))
    )


def context_size(error: ServerError) -> int | None:
    """The model's context in tokens, when the error says it."""
    n_ctx = error.fields.get("n_ctx")
    if isinstance(n_ctx, int) and not isinstance(n_ctx, bool):
        return n_ctx
    match = _CONTEXT_SIZE.search(error.text)
    return int(match[1]) if match else None


def is_template_rejection(error: ServerError) -> bool:
    """The chat template refused the roles (vLLM and llama.cpp answer 400; some builds 500)."""
    return error.status in (400, 422, 500) and rejects_layout(error.text)


def is_quota(error: ServerError) -> bool:
    """No money or credits left (never worth retrying)."""
    if "insufficient_quota" in (error.code, error.type) or error.status == 402:
        return True
    return error.status in (403, 429) and bool(_QUOTA.search(error.text)) and "rate" not in error.text.lower()


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` whole when short; else the stretch of at most ``limit`` characters around the
    first sentence that names a cause (context, tokens, roles, quota...), marked with "…"."""
    text = _collapse(text)
    if len(text) <= limit:
        return text
    sentences = _SENTENCE_END.split(text)
    key = next((i for i, s in enumerate(sentences) if _CAUSE.search(s)), 0)
    if len(sentences[key]) >= limit - 2:
        return sentences[key][: limit - 1] + "…"
    start, end = key, key + 1
    size = len(sentences[key])
    while True:
        grown = False
        if end < len(sentences) and size + 1 + len(sentences[end]) <= limit - 2:
            size += 1 + len(sentences[end])
            end += 1
            grown = True
        if start > 0 and size + 1 + len(sentences[start - 1]) <= limit - 2:
            start -= 1
            size += 1 + len(sentences[start])
            grown = True
        if not grown:
            break
    body = " ".join(sentences[start:end])
    return ("…" if start > 0 else "") + body + ("…" if end < len(sentences) else "")


def _collapse(text: str) -> str:
    return " ".join(text.split())
