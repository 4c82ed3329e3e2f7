"""Requests-per-minute and tokens-per-minute limits, so a run stays under a provider's
limits instead of living on 429s. A wrapper backend like the cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from simulator.protocol import ChatBackend, ChatReply, ChatRequest

CHARS_PER_TOKEN = 4
DEFAULT_REPLY_TOKENS = 512


class Bucket(Protocol):
    """A budget the limiter draws on: :class:`TokenBucket` here, a share of a cluster-wide
    budget on a Ray worker (:mod:`simulator.raybudget`)."""

    level: float
    capacity: float

    async def take(self, amount: float) -> None: ...

    def give_back(self, amount: float) -> None: ...

    def charge(self, amount: float) -> None: ...


class TokenBucket:
    """Refills ``per_minute`` units a minute, holding at most a minute's worth."""

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.level = per_minute
        self.clock = clock
        self.sleep = sleep
        self.stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        async with self._lock:
            self._refill()
            while self.level < amount:
                await self.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def give_back(self, amount: float) -> None:
        """Return units taken for something that did not happen."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)

    def charge(self, amount: float) -> None:
        """Settle an estimate: positive takes more (the level may go below zero, and the next
        ``take`` waits it out), negative returns the excess."""
        self._refill()
        self.level = min(self.capacity, self.level - amount)


def estimate_tokens(request: ChatRequest) -> int:
    prompt = sum(len(m.content) for m in request.messages) // CHARS_PER_TOKEN
    return prompt + (request.settings.max_tokens or DEFAULT_REPLY_TOKENS)


class RateLimitedBackend:
    """Waits for the request and token budgets before each request reaches ``inner``.

    Tokens are taken by estimate before the request (prompt characters / 4 plus the reply
    limit) and settled against the usage the reply reports; a request that fails gives its
    token estimate back (a request still counts against the request budget). Placed under the
    cache, so cache hits spend neither budget.
    """

    def __init__(
        self,
        inner: ChatBackend,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.requests: Bucket | None = (
            TokenBucket(requests_per_minute, clock, sleep) if requests_per_minute else None
        )
        self.tokens: Bucket | None = (
            TokenBucket(tokens_per_minute, clock, sleep) if tokens_per_minute else None
        )

    @classmethod
    def drawing_on(
        cls, inner: ChatBackend, requests: Bucket | None, tokens: Bucket | None
    ) -> RateLimitedBackend:
        """The same limiter over budgets kept elsewhere (shared by several processes)."""
        limited = cls(inner, None, None)
        limited.requests = requests
        limited.tokens = tokens
        return limited

    async def complete(self, request: ChatRequest) -> ChatReply:
        estimate = estimate_tokens(request)
        waiting_since = self.clock()
        if self.requests is not None:
            await self.requests.take(1)
        # A bucket takes at most its capacity (more would wait forever): settle against that.
        taken = min(estimate, self.tokens.capacity) if self.tokens is not None else 0
        if self.tokens is not None:
            await self.tokens.take(estimate)
        waited = self.clock() - waiting_since
        try:
            reply = await self.inner.complete(request)
        except BaseException:
            if self.tokens is not None:
                self.tokens.give_back(taken)
            raise
        if self.tokens is not None:
            used = reply.usage.prompt_tokens + reply.usage.completion_tokens
            if used:
                self.tokens.charge(used - taken)
        return replace(reply, queued_s=reply.queued_s + waited)

    async def aclose(self) -> None:
        await self.inner.aclose()
