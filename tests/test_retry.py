"""The retry policy on its own: delays, Retry-After, what is retried, and the final error."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx2
import openai
import pytest

from simulator.backends.retry import (
    TransientReply,
    backoff_delay,
    call_with_retries,
    is_retryable,
    retry_after_seconds,
    status_of,
)
from simulator.config import RetrySettings
from simulator.errors import BackendError

URL = "http://127.0.0.1:9/v1/chat/completions"


def status_error(
    status: int, body: Any = None, headers: Mapping[str, str] | None = None
) -> openai.APIStatusError:
    request = httpx2.Request("POST", URL)
    response = httpx2.Response(status, request=request, headers=headers or {}, json=body or {})
    classes: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    cls = classes.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    return cls(f"Error code: {status}", response=response, body=body)


class Sleeps:
    """An injectable sleep that records what it was asked for and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.mark.parametrize(
    ("attempt", "initial", "cap", "jitter", "retry_after", "expected"),
    [
        (1, 1.0, 60.0, 0.0, None, 0.5),  # equal jitter: half fixed ...
        (1, 1.0, 60.0, 1.0, None, 1.0),  # ... half random
        (2, 1.0, 60.0, 0.0, None, 1.0),  # doubling
        (3, 1.0, 60.0, 1.0, None, 4.0),
        (4, 0.5, 60.0, 0.5, None, 3.0),  # base 4: 2 + 2 * 0.5
        (10, 1.0, 60.0, 1.0, None, 60.0),  # capped
        (10, 1.0, 60.0, 0.0, None, 30.0),
        (10_000, 1.0, 5.0, 1.0, None, 5.0),  # no overflow however many attempts
        (1, 0.0, 60.0, 1.0, None, 0.0),  # initial 0: no waiting at all
        (1, 1.0, 60.0, 0.3, 2.0, 2.0),  # Retry-After wins, without jitter
        (5, 1.0, 60.0, 0.3, 0.0, 0.0),
        (1, 1.0, 10.0, 0.3, 120.0, 10.0),  # ... up to the cap
        (1, 1.0, 10.0, 0.3, -3.0, 0.0),
        (1, 1.0, 60.0, 7.0, None, 1.0),  # jitter outside [0, 1] is clamped
    ],
)
def test_backoff_delay(
    attempt: int, initial: float, cap: float, jitter: float, retry_after: float | None, expected: float
) -> None:
    delay = backoff_delay(attempt, initial_s=initial, max_s=cap, jitter=jitter, retry_after_s=retry_after)
    assert delay == pytest.approx(expected)


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"RETRY-AFTER": " 7 "}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),  # the precise one wins
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "Wed, 01 Jan 2025 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Wed, 01 Jan 2025 11:59:00 GMT"}, 0.0),  # already past
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "inf"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == (None if expected is None else pytest.approx(expected))


def test_retry_after_reads_httpx_headers() -> None:
    assert retry_after_seconds(httpx2.Headers({"Retry-After": "3"})) == 3.0


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (status_error(408), True),
        (status_error(409), True),
        (status_error(429, {"code": "rate_limit_exceeded"}), True),
        (status_error(429, {"code": "insufficient_quota", "type": "insufficient_quota"}), False),
        (status_error(429, {"type": "insufficient_quota"}), False),
        (status_error(500), True),
        (status_error(502), True),
        (status_error(503), True),
        (status_error(529), True),
        (status_error(400), False),
        (status_error(401), False),
        (status_error(402), False),
        (status_error(403), False),
        (status_error(404), False),
        (status_error(422), False),
        (status_error(418), False),
        (openai.APIConnectionError(request=httpx2.Request("POST", URL)), True),
        (openai.APITimeoutError(request=httpx2.Request("POST", URL)), True),
        (TransientReply("no choices"), True),
        (ValueError("a bug"), False),
    ],
)
def test_is_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_status_of() -> None:
    assert status_of(status_error(503)) == 503
    assert status_of(TransientReply("x")) == 200
    assert status_of(openai.APITimeoutError(request=httpx2.Request("POST", URL))) is None


def describe(exc: BaseException, attempts: int) -> str:
    return f"failed with {type(exc).__name__} after {attempts} attempts"


def settings(**overrides: Any) -> RetrySettings:
    values: dict[str, Any] = {"attempts": 4, "initial_wait_s": 1.0, "max_wait_s": 10.0, "timeout_s": 5.0}
    return RetrySettings(**{**values, **overrides})


class Script:
    """An attempt function that raises the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.numbers: list[int] = []

    async def __call__(self, number: int) -> str:
        self.numbers.append(number)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.mark.asyncio
async def test_success_first_time_never_sleeps() -> None:
    sleeps, script = Sleeps(), Script()
    result = await call_with_retries(script, settings=settings(), describe=describe, sleep=sleeps)
    assert (result, script.numbers, sleeps.calls) == ("ok", [1], [])


@pytest.mark.asyncio
async def test_transient_errors_back_off_exponentially() -> None:
    sleeps = Sleeps()
    script = Script(status_error(500), status_error(502), TransientReply("empty"))
    result = await call_with_retries(
        script, settings=settings(), describe=describe, sleep=sleeps, jitter=lambda: 0.0
    )
    assert result == "ok"
    assert script.numbers == [1, 2, 3, 4]
    assert sleeps.calls == [0.5, 1.0, 2.0]


@pytest.mark.asyncio
async def test_retry_after_header_sets_the_wait() -> None:
    sleeps = Sleeps()
    script = Script(
        status_error(429, headers={"Retry-After": "3"}), status_error(429, headers={"Retry-After": "99"})
    )
    await call_with_retries(script, settings=settings(), describe=describe, sleep=sleeps)
    assert sleeps.calls == [3.0, 10.0]  # the second is capped at max_wait_s


@pytest.mark.asyncio
async def test_exhaustion_raises_backend_error_with_attempts_and_status() -> None:
    sleeps = Sleeps()
    script = Script(*[status_error(503)] * 5)
    with pytest.raises(BackendError) as caught:
        await call_with_retries(script, settings=settings(attempts=3), describe=describe, sleep=sleeps)
    assert str(caught.value) == "failed with InternalServerError after 3 attempts"
    assert (caught.value.attempts, caught.value.status) == (3, 503)
    assert script.numbers == [1, 2, 3]
    assert len(sleeps.calls) == 2


@pytest.mark.asyncio
async def test_permanent_error_is_not_retried() -> None:
    sleeps = Sleeps()
    script = Script(status_error(401))
    with pytest.raises(BackendError) as caught:
        await call_with_retries(script, settings=settings(), describe=describe, sleep=sleeps)
    assert (caught.value.attempts, caught.value.status, script.numbers, sleeps.calls) == (1, 401, [1], [])


@pytest.mark.asyncio
async def test_permanent_error_after_transient_counts_every_attempt() -> None:
    script = Script(status_error(500), status_error(404))
    with pytest.raises(BackendError) as caught:
        await call_with_retries(script, settings=settings(), describe=describe, sleep=Sleeps())
    assert (caught.value.attempts, caught.value.status) == (2, 404)


@pytest.mark.asyncio
async def test_bugs_keep_their_traceback_and_are_not_retried() -> None:
    script = Script(KeyError("oops"))
    with pytest.raises(KeyError):
        await call_with_retries(script, settings=settings(), describe=describe, sleep=Sleeps())
    assert script.numbers == [1]


@pytest.mark.asyncio
async def test_single_attempt_setting_means_no_retry() -> None:
    script = Script(status_error(500))
    with pytest.raises(BackendError) as caught:
        await call_with_retries(script, settings=settings(attempts=1), describe=describe, sleep=Sleeps())
    assert caught.value.attempts == 1
