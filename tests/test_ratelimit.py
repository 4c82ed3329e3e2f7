"""Requests- and tokens-per-minute limits, on a fake clock: no test sleeps for real."""

from __future__ import annotations

import asyncio

import pytest

from simulator.backends.ratelimit import RateLimitedBackend, TokenBucket, estimate_tokens
from simulator.config import RoleSettings, RunConfig
from simulator.errors import BackendError
from simulator.personas import Therapist, load_persona
from simulator.protocol import ChatMessage, ChatReply, ChatRequest, Usage
from tests.conftest import PERSONAS, FakeBackend


class FakeTime:
    """A clock that moves only when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def _request(chars: int = 400, max_tokens: int | None = 100) -> ChatRequest:
    return ChatRequest(
        role="patient",
        messages=(ChatMessage("user", "x" * chars),),
        settings=RoleSettings(model="m", max_tokens=max_tokens),
    )


async def test_bucket_lets_a_minutes_worth_through_then_paces() -> None:
    time = FakeTime()
    bucket = TokenBucket(60, time.clock, time.sleep)  # one a second
    for _ in range(60):
        await bucket.take(1)
    assert time.sleeps == []
    await bucket.take(1)
    await bucket.take(1)
    assert time.sleeps == pytest.approx([1.0, 1.0])
    assert time.now == pytest.approx(1002.0)


async def test_bucket_refills_with_time_and_caps_at_capacity() -> None:
    time = FakeTime()
    bucket = TokenBucket(120, time.clock, time.sleep)  # two a second
    await bucket.take(120)
    time.now += 10  # 20 back
    await bucket.take(20)
    assert time.sleeps == []
    time.now += 3600  # an idle hour refills to capacity, not beyond
    await bucket.take(120)
    assert time.sleeps == []
    await bucket.take(500)  # more than capacity: waits for a full bucket, not forever
    assert time.sleeps == pytest.approx([60.0])


async def test_waiters_are_served_in_order() -> None:
    time = FakeTime()
    bucket = TokenBucket(60, time.clock, time.sleep)
    await bucket.take(60)
    order: list[int] = []

    async def taker(i: int) -> None:
        await bucket.take(1)
        order.append(i)

    await asyncio.gather(*(taker(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert time.now == pytest.approx(1005.0)


@pytest.mark.parametrize(
    ("chars", "max_tokens", "expected"),
    [(400, 100, 100 + 100), (400, None, 100 + 512), (0, 7, 7)],
)
def test_token_estimate(chars: int, max_tokens: int | None, expected: int) -> None:
    assert estimate_tokens(_request(chars, max_tokens)) == expected


async def test_requests_per_minute_paces_the_backend() -> None:
    time = FakeTime()
    inner = FakeBackend()
    backend = RateLimitedBackend(inner, 30, None, clock=time.clock, sleep=time.sleep)  # one per 2 s
    for _ in range(33):
        await backend.complete(_request())
    assert len(inner.requests) == 33
    assert time.sleeps == pytest.approx([2.0, 2.0, 2.0])


async def test_tokens_are_settled_against_reported_usage() -> None:
    time = FakeTime()
    inner = FakeBackend().enqueue(
        "patient",
        ChatReply("a", "m", usage=Usage(prompt_tokens=900, completion_tokens=100)),
        ChatReply("b", "m", usage=Usage(prompt_tokens=10, completion_tokens=10)),
    )
    backend = RateLimitedBackend(inner, None, 1200, clock=time.clock, sleep=time.sleep)  # 20 a second
    assert backend.tokens is not None
    await backend.complete(_request())  # estimate 200, used 1000: 800 more are owed
    assert backend.tokens.level == pytest.approx(200)
    await backend.complete(_request())  # estimate 200 fits; used 20 gives 180 back
    assert backend.tokens.level == pytest.approx(180)
    assert time.sleeps == []
    await backend.complete(_request())  # needs 200, has 180: waits one second for 20 more
    assert time.sleeps == pytest.approx([1.0])


async def test_a_failed_request_gives_its_tokens_back() -> None:
    time = FakeTime()
    inner = FakeBackend().enqueue("patient", BackendError("patient: server error 500"))
    backend = RateLimitedBackend(inner, 10, 1000, clock=time.clock, sleep=time.sleep)
    with pytest.raises(BackendError):
        await backend.complete(_request())
    assert backend.tokens is not None and backend.tokens.level == pytest.approx(1000)
    assert backend.requests is not None and backend.requests.level == pytest.approx(9), "the request counts"


async def test_a_request_over_a_minutes_budget_is_charged_all_it_used() -> None:
    """The bucket takes at most its capacity up front (else the request would wait forever);
    settling must charge what was used against what was taken, not against the estimate, or
    every such request leaves the budget full and the run sends twice the limit."""
    time = FakeTime()
    big = ChatReply("a", "m", usage=Usage(prompt_tokens=1900, completion_tokens=100))
    inner = FakeBackend().enqueue("patient", big, big)
    backend = RateLimitedBackend(inner, None, 1000, clock=time.clock, sleep=time.sleep)  # 1000 a minute
    assert backend.tokens is not None
    await backend.complete(_request(chars=0, max_tokens=2000))  # estimate 2000, takes the 1000 there are
    assert backend.tokens.level == pytest.approx(-1000)  # used 2000: 1000 more are owed
    await backend.complete(_request(chars=0, max_tokens=2000))
    assert time.sleeps == pytest.approx([120.0])  # 2000 tokens a request at 1000 a minute


def test_limits_come_from_the_config() -> None:
    from simulator.backends import Cast, make_backend

    therapist = load_persona(PERSONAS / "nova.yaml").persona
    assert isinstance(therapist, Therapist)
    cast = Cast((), therapist)
    config = RunConfig.model_validate(
        {"rate_limits": {"requests_per_minute": 100, "tokens_per_minute": 5000}}
    )
    backend = make_backend(config, "offline", cast)
    assert isinstance(backend, RateLimitedBackend)
    assert backend.requests is not None and backend.requests.capacity == 100
    assert backend.tokens is not None and backend.tokens.capacity == 5000
    assert not isinstance(make_backend(RunConfig(), "offline", cast), RateLimitedBackend)
