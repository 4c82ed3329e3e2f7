"""The HTTP transport under the OpenAI client: aiohttp, its pool sized to the run's
concurrency, and each request's timing taken from aiohttp's trace hooks.

Why aiohttp rather than the SDK's default httpx2: httpcore2's pool scans every connection
on each request, which at 600 concurrent requests was 44% of the client's CPU. The SDK ships
an aiohttp transport for exactly this (``openai[aiohttp]``, ``DefaultAioHttpClient``); we use
that class, only building its ``ClientSession`` ourselves to size the pool to ``--concurrency``
(so no request waits for a connection unnoticed) and to attach a ``TraceConfig``.

Why trace hooks: a timestamp taken around ``await client.post(...)`` counts the wait for a
connection and for the event loop as server latency. The hooks mark when the request was
written to the connection, so :class:`RequestTiming` splits an attempt into ``queued_s``
(before the request went out) and ``latency_s`` (from then to the response read).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import openai

# The transport class behind ``openai.DefaultAioHttpClient``; the SDK's major is pinned.
from openai._vendor.httpx_aiohttp import AiohttpTransport

__all__ = ["RequestTiming", "http_client", "timed"]

KEEPALIVE_S = 30.0
"""An idle pooled connection is closed after this long (servers drop theirs around 60 s)."""


@dataclass
class RequestTiming:
    """Clock readings (``time.perf_counter``) for one HTTP attempt."""

    started: float
    """When the attempt asked for a connection."""
    sent: float | None = None
    """When the request's last bytes were handed to the connection (from the trace hooks)."""
    done: float | None = None
    """When the whole response body had been read."""

    @property
    def queued_s(self) -> float:
        """Waiting before the request went out: the connection pool and the event loop."""
        return max((self.sent or self.started) - self.started, 0.0)

    @property
    def latency_s(self) -> float:
        """The server's share: from the request written to the response read."""
        end = self.done if self.done is not None else time.perf_counter()
        return max(end - (self.sent or self.started), 0.0)


_CURRENT: ContextVar[RequestTiming | None] = ContextVar("simulator_request_timing", default=None)
"""The attempt running in this task; aiohttp runs the trace hooks in the requesting task
(or in a task it starts from it, which inherits the context)."""


@contextmanager
def timed() -> Iterator[RequestTiming]:
    """Time the HTTP request made inside the block; ``done`` is set when the block ends
    without an error."""
    timing = RequestTiming(time.perf_counter())
    token = _CURRENT.set(timing)
    try:
        yield timing
        timing.done = time.perf_counter()
    finally:
        _CURRENT.reset(token)


async def _on_sent(_session: aiohttp.ClientSession, _context: Any, _params: Any) -> None:
    timing = _CURRENT.get()
    if timing is not None:
        timing.sent = time.perf_counter()


class _TracedTransport(AiohttpTransport):
    """The SDK's aiohttp transport with a pool of ``pool_size`` connections and trace hooks."""

    def __init__(self, pool_size: int) -> None:
        limits = httpx2.Limits(
            max_connections=pool_size, max_keepalive_connections=pool_size, keepalive_expiry=KEEPALIVE_S
        )
        super().__init__(limits=limits)
        self.pool_size = pool_size

    def get_client(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_sent)
        trace.on_request_chunk_sent.append(_on_sent)
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, keepalive_timeout=KEEPALIVE_S, ssl=self.ssl_context
        )
        return aiohttp.ClientSession(connector=connector, trace_configs=[trace])

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await super().handle_async_request(request)
        except httpx2.ConnectTimeout as exc:
            # The SDK's exception map turns every aiohttp connection error (refused, reset,
            # unknown host) into a timeout; only a real timeout stays one.
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
                raise httpx2.ConnectError(str(exc), request=request) from cause
            raise


def http_client(pool_size: int, timeout_s: float) -> httpx2.AsyncClient:
    """The ``http_client`` for ``openai.AsyncOpenAI``: aiohttp underneath, ``pool_size``
    connections at most, per-read timeouts of ``timeout_s`` (the wall-clock deadline of a
    whole attempt is the backend's)."""
    client: httpx2.AsyncClient = openai.DefaultAioHttpClient(
        transport=_TracedTransport(max(pool_size, 1)), timeout=timeout_s
    )
    return client
