"""The chat-completions wire format, as :mod:`simulator.backends.openai` sends and reads it:
the JSON-ready body built once per request (keys in the order the SDK's ``create`` puts them),
and the reply read defensively, since servers differ in what they leave out.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx2
import openai

from simulator.backends.retry import TransientReply
from simulator.backends.transport import RequestTiming
from simulator.config import RoleSettings
from simulator.limits import MAX_REPLY_TOKENS
from simulator.protocol import ChatReply, ChatRequest, Usage

logger = logging.getLogger(__name__)

TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
SERVER_TEXT_LIMIT = 300
"""Characters of an unusable 200's body quoted in ours."""
_SDK_ORDER = ("max_completion_tokens", "max_tokens", "seed", "stop", "temperature", "top_p")


def sampling_params(settings: RoleSettings) -> dict[str, Any]:
    """The sampling settings that are set and not omitted, under the server's names."""
    values: dict[str, Any] = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.seed,
        "stop": settings.stop or None,
        "max_tokens": settings.max_tokens,
    }
    params: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or name in settings.omit_params:
            continue
        params[settings.max_tokens_param if name == "max_tokens" else name] = value
    return params


def request_body(model: str, request: ChatRequest, settings: RoleSettings) -> dict[str, Any]:
    """The chat-completions body, built once per request: its keys in the order the SDK's
    ``create`` puts them, then ``extra_body``, so the bytes sent are what the SDK sent."""
    sampling = sorted(sampling_params(settings).items(), key=lambda item: _SDK_ORDER.index(item[0]))
    body: dict[str, Any] = {"model": model, "messages": [m.as_dict() for m in request.messages]}
    body.update(sampling)
    body.update(_extra_body(settings))
    return body


def _extra_body(settings: RoleSettings) -> dict[str, Any]:
    """``extra_body`` minus anything ``omit_params`` says the server rejects."""
    omitted: set[str] = set(settings.omit_params)
    if "max_tokens" in omitted:
        omitted.update(TOKEN_PARAMS)
    return {key: value for key, value in settings.extra_body.items() if key not in omitted}


class CutOffReply(TransientReply):
    """A 200 whose JSON body breaks off (a proxy or an overloaded server dropped the rest):
    retried like a 502, since the same request usually comes back whole."""


def _json_object(response: httpx2.Response) -> dict[str, Any]:
    """The parsed body. :class:`CutOffReply` when it is JSON that breaks off; the SDK's
    validation error when it is no JSON object at all (a wrong base URL: an HTML page)."""
    content = response.content
    try:
        data = json.loads(content)
    except ValueError as exc:
        if content.lstrip()[:1] in (b"{", b"["):
            raise CutOffReply(
                f"its JSON body is {_breakage(exc, content)} ({len(content)} bytes received)"
            ) from None
        data = None
    if not isinstance(data, dict):
        raise openai.APIResponseValidationError(
            response, response.text[:SERVER_TEXT_LIMIT], message="the body is not a JSON object"
        )
    return data


def _breakage(exc: ValueError, content: bytes) -> str:
    """``cut off`` when the parser ran out of text (inside a string, or at the very end)."""
    if not isinstance(exc, json.JSONDecodeError):
        return "not valid UTF-8"
    if exc.msg.startswith("Unterminated string") or exc.pos >= len(content.rstrip()):
        return "cut off"
    return f"malformed at byte {exc.pos}"


def read_reply(
    response: httpx2.Response, requested_model: str, timing: RequestTiming, attempts: int
) -> ChatReply:
    """Read the completion defensively: servers differ in what they leave out."""
    data = _json_object(response)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = data.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        raise TransientReply(
            f'"{clip(str(said))}"' if said else "the body has no choices and no error message"
        )
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    finish_reason = choice.get("finish_reason")
    request_id = response.headers.get("x-request-id") or data.get("id")
    model = data.get("model")
    return ChatReply(
        content=content if isinstance(content, str) else "",
        model=model if isinstance(model, str) and model else requested_model,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        usage=_usage(data.get("usage")),
        latency_s=timing.latency_s,
        queued_s=timing.queued_s,
        request_id=str(request_id) if request_id else None,
        extra={"attempts": attempts},
    )


def _usage(raw: object) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = raw.get("prompt_cache_hit_tokens")  # DeepSeek's name for the same thing
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
        cached_tokens=_count(cached),
    )


def _count(value: object) -> int:
    """A token count from the server; one no request could have (1e300, NaN) is not believed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not 0 <= value <= MAX_REPLY_TOKENS:  # False for NaN too
        if value > 0 or value != value:
            logger.warning("the server reported %r tokens for one request; counted as 0", value)
        return 0
    return int(value)


def clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SERVER_TEXT_LIMIT else text[: SERVER_TEXT_LIMIT - 1] + "…"
