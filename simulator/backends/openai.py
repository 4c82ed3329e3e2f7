"""The chat backend for any OpenAI-compatible endpoint: OpenAI, OpenRouter, vLLM, Ollama,
llama.cpp, ...

One ``openai.AsyncOpenAI`` client per base URL, built with ``max_retries=0``: retries are
:mod:`simulator.backends.retry`'s alone. Failures become one :class:`~simulator.errors.BackendError`
whose message starts with the role and says what to change; the API key never appears in
messages, reprs or logs.

The request path goes under the SDK's ``chat.completions.create``. That method runs the SDK's
request transform, which walks every message of the history once for each member of the
message-type union (about 2 ms plus 0.25 ms per message, so O(n) per call and O(n^2) per
session: 60% of the client's CPU), then validates the reply into pydantic models we never use.
Instead the chat-completions body is built once per request as a plain JSON-ready dict and
sent with the client's lower-level ``post`` (``cast_to=httpx2.Response``: the raw response,
body read), and the reply is parsed here. The SDK still does what it is good at: configuration,
auth headers, the base URL, the error types (``APIStatusError`` with code and param,
``APITimeoutError``, ``APIConnectionError``) and the request id. The body and the reply are
:mod:`simulator.backends.wire`'s; the HTTP transport and the timing of each request are
:mod:`simulator.backends.transport`'s.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai

from simulator.backends.retry import TransientReply, call_with_retries
from simulator.backends.server_errors import (
    ServerError,
    context_size,
    is_context_overflow,
    is_quota,
    is_template_rejection,
    quote,
    read_error,
)
from simulator.backends.transport import http_client, timed
from simulator.backends.wire import (
    TOKEN_PARAMS,
    CutOffReply,
    read_reply,
    request_body,
    sampling_params,
)
from simulator.config import RetrySettings, RoleSettings, no_model_message, strip_credentials
from simulator.errors import BackendError, ContextOverflow, InputError, TemplateRejected
from simulator.protocol import ChatReply, ChatRequest

__all__ = ["NO_KEY_PLACEHOLDER", "OPENAI_BASE_URL", "OpenAIBackend"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""The SDK's default endpoint, used when neither ``base_url`` nor $OPENAI_BASE_URL is set."""
NO_KEY_PLACEHOLDER = "not-needed"
"""Sent to local servers (vLLM, Ollama, llama.cpp) that need no key; the SDK refuses none."""
CHAT_PATH = "/chat/completions"
POOL_SIZE = 100
"""Connections per base URL when no concurrency is given (the CLI passes ``--concurrency``)."""
MODELS_SHOWN = 10
"""Models named when a 404 turns out to be a model the server does not serve."""

_PARAM_ORDER = ("temperature", "top_p", "seed", "stop", "max_tokens")
_PARAM_REJECTED = re.compile(
    r"unsupported|not supported|does not support|unrecognized|unknown|not allowed|"
    r"not permitted|extra (?:fields|inputs)|invalid",
    re.IGNORECASE,
)
_SECRET = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}")


class OpenAIBackend:
    """:class:`~simulator.protocol.ChatBackend` over the OpenAI SDK's chat completions."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        api_key_env: str = "OPENAI_API_KEY",
        retry: RetrySettings,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.base_url = _strip(base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL)
        self.api_key_env = api_key_env
        self.retry = retry
        self._api_key = (api_key if api_key is not None else os.environ.get(api_key_env)) or None
        self._sleep = sleep
        self.pool_size = pool_size
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._next_url: dict[tuple[str, ...], int] = {}
        self._served: dict[str, list[str] | None] = {}
        """Per base URL: the models its ``GET /models`` lists (None: that path answers nothing)."""
        self._key_for(self.base_url)  # no key for OpenAI itself: fail now, not mid-run

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(base_url={strip_credentials(self.base_url)!r}, api_key_env={self.api_key_env!r})"
        )

    async def complete(self, request: ChatRequest) -> ChatReply:
        settings = request.settings
        model = settings.model
        if not model:
            raise InputError(None, no_model_message([request.role]))
        urls = [_strip(url) for url in settings.base_urls] or [self.base_url]
        body = request_body(model, request, settings)
        tried: list[str] = []

        async def attempt(number: int) -> ChatReply:
            url = self._pick(urls)
            tried.append(url)
            client = self._client(url)
            with timed() as timing:
                response = await self._post(client, body)
            return read_reply(response, model, timing, number)

        def describe(exc: BaseException, attempts: int) -> str:
            url = tried[-1] if tried else urls[0]
            return self._redact(f"{request.role}: {self._describe(exc, attempts, request, url)}")

        try:
            return await call_with_retries(
                attempt,
                settings=self.retry,
                describe=describe,
                sleep=self._sleep,
                label=f"{request.role} ({model})",
            )
        except BackendError as exc:
            refined = await self._refine(exc, request, tried[-1] if tried else urls[0])
            if refined is exc:
                raise
            raise refined from exc.__cause__

    async def _refine(self, exc: BackendError, request: ChatRequest, url: str) -> BackendError:
        """The failure as the type the session loop acts on (a refused layout, a context
        overflow); a 404 is told apart as a wrong path or a missing model with one
        ``GET /models``."""
        cause = exc.__cause__
        if not isinstance(cause, openai.APIStatusError):
            return exc
        error = read_error(cause.status_code, cause.body)
        kind: type[BackendError] | None = None
        if cause.status_code == 404:
            served = await self._served_models(url)
            message = _not_found(request.settings.model or "", strip_credentials(url), error, served)
            return BackendError(self._redact(f"{request.role}: {message}"), attempts=exc.attempts, status=404)
        if is_template_rejection(error):
            kind = TemplateRejected
        elif is_context_overflow(
            error, named_param=_rejected_param(cause, error.text, request.settings) is not None
        ):
            kind = ContextOverflow
        if kind is None:
            return exc
        return kind(str(exc), attempts=exc.attempts, status=exc.status)

    async def _served_models(self, url: str) -> list[str] | None:
        """The ids ``GET {url}/models`` lists, asked once per URL; None when nothing answers
        there (a wrong path). An answer that tells nothing (401, 500) counts as unknown: []."""
        if url in self._served:
            return self._served[url]
        served: list[str] | None
        try:
            page = await self._client(url).models.list(timeout=self.retry.timeout_s)
            served = [model.id for model in page.data if isinstance(getattr(model, "id", None), str)]
        except (openai.NotFoundError, openai.APIResponseValidationError):
            served = None
        except openai.OpenAIError:
            served = []
        self._served[url] = served
        return served

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()

    async def __aenter__(self) -> OpenAIBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, client: openai.AsyncOpenAI, body: dict[str, Any]) -> httpx2.Response:
        """One attempt under a wall-clock deadline of ``timeout_s``: the SDK's timeouts are per
        read, so a server dripping its body a byte at a time could hold it for ever."""
        deadline = asyncio.timeout(self.retry.timeout_s)
        try:
            async with deadline:
                return await client.post(CHAT_PATH, cast_to=httpx2.Response, body=body)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            request = httpx2.Request("POST", f"{_strip(str(client.base_url))}{CHAT_PATH}")
            raise openai.APITimeoutError(request=request) from exc

    def _pick(self, urls: list[str]) -> str:
        """Round-robin over a role's replicas; each retry moves on to the next one."""
        key = tuple(urls)
        index = self._next_url.get(key, 0)
        self._next_url[key] = index + 1
        return urls[index % len(urls)]

    def _client(self, url: str) -> openai.AsyncOpenAI:
        client = self._clients.get(url)
        if client is None:
            # The API key is the credential: a user:password in the URL is not sent (the aiohttp
            # transport refuses a URL's credentials beside the Authorization header).
            client = openai.AsyncOpenAI(
                api_key=self._key_for(url),
                base_url=strip_credentials(url),
                max_retries=0,
                timeout=self.retry.timeout_s,
                http_client=http_client(self.pool_size, self.retry.timeout_s),
            )
            self._clients[url] = client
        return client

    def _key_for(self, url: str) -> str:
        if self._api_key:
            return self._api_key
        if _is_openai(url):
            raise InputError(None, f"{self.api_key_env} is not set: export it, or use --backend offline")
        return NO_KEY_PLACEHOLDER

    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return _SECRET.sub("sk-***", text)

    def _describe(self, exc: BaseException, attempts: int, request: ChatRequest, url: str) -> str:
        """One readable sentence for the failure that ended the request (without the role)."""
        shown = strip_credentials(url)
        model = request.settings.model
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, openai.APITimeoutError):
            return f"no reply from {shown} within {self.retry.timeout_s:g}s ({tries})"
        if isinstance(exc, openai.APIConnectionError):
            if _refused(exc):
                return f"cannot connect to {shown}: connection refused after {tries} (is the server running?)"
            return f"cannot connect to {shown}: {_root_cause(exc)} after {tries}"
        if isinstance(exc, CutOffReply):
            return f"{shown} sent an incomplete reply after {tries}: {exc}"
        if isinstance(exc, TransientReply):
            return f"{shown} answered without choices after {tries}: {exc}"
        if isinstance(exc, openai.APIResponseValidationError):
            return (
                f"{shown} did not answer with a chat completion ({exc.message}); "
                "is the base URL right? It usually ends in /v1"
            )
        if not isinstance(exc, openai.APIStatusError):
            return f"request to {shown} failed: {exc}"
        status = exc.status_code
        error = read_error(status, exc.body)
        said = quote(error.text) or exc.response.reason_phrase or "no error message"
        role = request.role
        if status == 401:
            missing = " (it is not set)" if not self._api_key else ""
            return f"the endpoint {shown} refused the API key (401); check ${self.api_key_env}{missing}"
        if status == 404:
            return _not_found(model or "", shown, error, [])
        if is_template_rejection(error):
            return (
                f"the chat template of model '{model}' at {shown} refused the messages' roles "
                f"({status}): {said}; set `roles.{role}.message_layout: alternating_no_system`"
            )
        rejected = _rejected_param(exc, error.text, request.settings) if status in (400, 422) else None
        if is_context_overflow(error, named_param=rejected is not None):
            return _context_overflow(error, request, said)
        if status in (400, 422):
            if rejected is not None:
                return (
                    f"the server at {shown} rejected parameter '{rejected}': "
                    f"{_param_fix(rejected, said, request)} in the config (server said: {said})"
                )
            return f"{shown} rejected the request for model '{model}' ({status}): {said}"
        if status == 402:
            return f"{shown} asks for payment (402); check the account's credits: {said}"
        if is_quota(error):
            code = f" {error.code}" if error.code and not error.code.isdigit() else ""
            return (
                f"the account behind ${self.api_key_env} has no quota left at {shown} "
                f"({status}{code}); check the plan and billing: {said}"
            )
        if status == 429:
            return f"rate limited by {shown} (429) after {tries}: {said}"
        if status == 403:
            return f"{shown} denied access to model '{model}' (403): {said}"
        if status >= 500:
            return f"server error {status} from {shown} after {tries}: {said}"
        return f"{shown} answered {status} after {tries}: {said}"


def _not_found(model: str, shown: str, error: ServerError, served: list[str] | None) -> str:
    """A 404: a base URL that leads nowhere (``served`` None: its ``/models`` is missing too),
    or a model the server does not serve (named with what it does serve)."""
    said = quote(error.text) or "no error message"
    if served is None:
        return (
            f"nothing answers at {shown}/chat/completions (404: {said}); the base URL is wrong: "
            "it usually ends in /v1, as in http://localhost:8080/v1"
        )
    if served and model not in served:
        names = ", ".join(served[:MODELS_SHOWN]) + (", …" if len(served) > MODELS_SHOWN else "")
        return f"model '{model}' not found at {shown} (404); it serves: {names}"
    if not served and "model" not in error.text.lower():
        return f"model '{model}' not found at {shown} (404: {said}); check that the base URL is right (it usually ends in /v1)"
    return f"model '{model}' not found at {shown} (404): {said}"


def _context_overflow(error: ServerError, request: ChatRequest, said: str) -> str:
    """A request larger than the model's context, with what to lower."""
    role = request.role
    size = context_size(error)
    context = f" of {size} tokens" if size is not None else ""
    limit = request.settings.max_tokens
    asked = f"max_tokens={limit}" if limit is not None else "no max_tokens"
    return (
        f"the request does not fit the context{context} of model '{request.settings.model}' "
        f"({len(request.messages)} messages, {asked}): lower --max-turns or `roles.{role}.max_tokens`, "
        f"or use a model (or server setting: llama.cpp -c, vLLM --max-model-len) with a larger context. "
        f"Server said: {said}"
    )


def _rejected_param(exc: openai.APIStatusError, said: str, settings: RoleSettings) -> str | None:
    """The parameter we sent that the server objects to, if the error names one."""
    sent = list(sampling_params(settings))
    if exc.param in sent:
        return exc.param
    if not (_PARAM_REJECTED.search(said) or (exc.code or "").startswith("unsupported")):
        return None
    found = [(match.start(), name) for name in sent if (match := re.search(rf"\b{name}\b", said))]
    return min(found)[1] if found else None


def _param_fix(param: str, said: str, request: ChatRequest) -> str:
    role = request.role
    settings = request.settings
    if param in TOKEN_PARAMS:
        other = TOKEN_PARAMS[1] if param == TOKEN_PARAMS[0] else TOKEN_PARAMS[0]
        if re.search(rf"\b{other}\b", said):
            return f"set `roles.{role}.max_tokens_param: {other}`"
        param = "max_tokens"
    omitted: set[str] = {*settings.omit_params, param}
    names = ", ".join(name for name in _PARAM_ORDER if name in omitted)
    return f"set `roles.{role}.omit_params: [{names}]`"


def _refused(exc: BaseException) -> bool:
    return any(
        isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower() for cause in _causes(exc)
    )


def _root_cause(exc: BaseException) -> str:
    causes = _causes(exc)
    return str(causes[-1]) or type(causes[-1]).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_openai(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "api.openai.com" or host.endswith(".api.openai.com")


def _strip(url: str) -> str:
    return url.rstrip("/")
