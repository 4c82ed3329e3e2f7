"""Rate limits shared by every Ray worker of a run: one actor holds the requests- and
tokens-per-minute budgets, and each worker draws on them in blocks.

A worker asks the actor for a block (a second's worth of the budget, or what one request
needs if that is more) only when its own share runs out, so most requests cost no round trip.
The actor hands out nothing it does not have, so however many workers draw on it, what they
spend together stays within the limits; a worker's unspent share is all that is ever idle.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from simulator.backends.ratelimit import TokenBucket

Kind = Literal["requests", "tokens"]
BLOCK_S = 1.0
"""A block is this many seconds' worth of a budget (at least one unit)."""


class Budget:
    """The run's budgets (a Ray actor, see :func:`start_budget`): a :class:`TokenBucket` each."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        self.buckets: dict[Kind, TokenBucket] = {}
        if requests_per_minute:
            self.buckets["requests"] = TokenBucket(requests_per_minute)
        if tokens_per_minute:
            self.buckets["tokens"] = TokenBucket(tokens_per_minute)
        self.grants = 0

    async def grant(self, kind: Kind, amount: float) -> float:
        """Wait until ``amount`` (at most a minute's worth) is there, take it, return it."""
        bucket = self.buckets[kind]
        amount = min(amount, bucket.capacity)
        await bucket.take(amount)
        self.grants += 1
        return amount

    async def granted(self) -> int:
        """How many blocks were handed out (round trips the workers made)."""
        return self.grants


def start_budget(requests_per_minute: float | None, tokens_per_minute: float | None) -> tuple[Any, str]:
    """The budget actor of a run (no CPU reserved: it only waits) and the name workers find it
    by (:func:`find_budget`). A name, not the handle, goes to the workers: Ray cannot promise
    to restart an actor whose arguments hold a handle (ray-project/ray#53727) and logs an
    error line saying so on every run."""
    import ray

    name = f"simulator-budget-{uuid.uuid4().hex}"
    actor = ray.remote(Budget).options(name=name, num_cpus=0, max_concurrency=1000, max_restarts=-1)
    return actor.remote(requests_per_minute, tokens_per_minute), name


def find_budget(name: str) -> Any:
    """The run's budget actor, from a worker."""
    import ray

    return ray.get_actor(name)


class SharedBucket:
    """A worker's share of one budget of the :class:`Budget` actor; a
    :class:`simulator.backends.ratelimit.Bucket` for the rate limiter."""

    def __init__(self, budget: Any, kind: Kind, per_minute: float, *, block_s: float = BLOCK_S) -> None:
        self.budget = budget
        self.kind = kind
        self.capacity = per_minute
        self.block = max(1.0, per_minute * block_s / 60.0)
        self.level = 0.0
        self._lock = asyncio.Lock()

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        async with self._lock:
            while self.level < amount:
                want = max(self.block, amount - self.level)
                self.level += await self.budget.grant.remote(self.kind, want)
            self.level -= amount

    def give_back(self, amount: float) -> None:
        """Units taken for a request that failed stay in this worker's share, for the next one."""
        self.level += amount

    def charge(self, amount: float) -> None:
        """Settle an estimate: more spent than taken makes the share negative, so the next
        ``take`` draws the difference from the budget too."""
        self.level -= amount
