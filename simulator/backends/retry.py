"""When to try a chat request again, and how long to wait first.

This is the only retry layer: the OpenAI client is built with ``max_retries=0`` so attempts
do not multiply. Transient failures (408, 409, 429, 5xx, connection errors, timeouts, a 200
without choices) are retried with jittered exponential backoff, honouring ``Retry-After``;
everything else fails at once. When the attempts run out, the last failure becomes one
:class:`~simulator.errors.BackendError` with the attempt count.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import openai
import tenacity
from tenacity import AsyncRetrying, RetryCallState

from simulator.backends.server_errors import is_quota, is_template_rejection, read_error
from simulator.config import RetrySettings
from simulator.errors import BackendError

__all__ = [
    "BACKOFF_MULTIPLIER",
    "NEVER_RETRY_STATUSES",
    "RETRY_STATUSES",
    "Sleep",
    "TransientReply",
    "backoff_delay",
    "call_with_retries",
    "is_retryable",
    "retry_after_seconds",
    "status_of",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

BACKOFF_MULTIPLIER = 2.0
"""Each backoff is this many times the one before (before jitter and the cap)."""
MAX_BACKOFF_EXPONENT = 60
"""Keeps ``BACKOFF_MULTIPLIER ** n`` finite however many attempts are configured."""
RETRY_STATUSES = frozenset({408, 409, 429})
"""Retried besides every 5xx: timeout, conflict, rate limit."""
NEVER_RETRY_STATUSES = frozenset({400, 401, 402, 403, 404, 422})
"""The request itself is wrong; sending it again cannot help."""
QUOTA_CODES = frozenset({"insufficient_quota"})
"""A 429 with this error code means no money left, not "slow down": never retried."""


class TransientReply(Exception):
    """A 200 the caller could not use but that may work next time (no ``choices``)."""

    def __init__(self, message: str, *, status: int | None = 200) -> None:
        self.status = status
        super().__init__(message)


def backoff_delay(
    attempt: int,
    *,
    initial_s: float,
    max_s: float,
    jitter: float,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    The server's ``Retry-After`` wins when given; otherwise ``initial_s`` doubles each attempt
    with equal jitter (half fixed, half ``jitter`` in [0, 1]). Both are capped at ``max_s``.
    """
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), max_s)
    exponent = min(max(attempt - 1, 0), MAX_BACKOFF_EXPONENT)
    base = min(initial_s * BACKOFF_MULTIPLIER**exponent, max_s)
    return base / 2 + base / 2 * min(max(jitter, 0.0), 1.0)


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as
    an HTTP date. ``None`` when absent or unreadable."""
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a failure, when there was a response."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    if isinstance(exc, TransientReply):
        return exc.status
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether sending the same request again may succeed."""
    if isinstance(exc, TransientReply | openai.APIConnectionError):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in NEVER_RETRY_STATUSES:
            return False
        if status == 429 and (exc.code in QUOTA_CODES or exc.type in QUOTA_CODES):
            return False
        error = read_error(status, exc.body)
        if is_quota(error) or is_template_rejection(error):
            return False  # no money left, or a chat template that refuses these roles every time
        return status in RETRY_STATUSES or status >= 500
    return False


def _reason(exc: BaseException | None) -> str:
    """A few words for the retry log line (never the server's text, which may echo secrets)."""
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "connection error"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, TransientReply):
        return "unusable reply"
    return type(exc).__name__


def _is_backend_failure(exc: BaseException) -> bool:
    """Failures that become a BackendError; anything else is a bug and keeps its traceback."""
    return isinstance(exc, TransientReply | openai.OpenAIError)


async def call_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    *,
    settings: RetrySettings,
    describe: Callable[[BaseException, int], str],
    sleep: Sleep | None = None,
    jitter: Callable[[], float] = random.random,
    label: str = "request",
) -> T:
    """Run ``attempt(n)`` for n = 1, 2, ... until it succeeds or may not be retried.

    ``describe(last_error, attempts)`` writes the BackendError message when it fails for good;
    ``sleep`` is injectable so tests never wait; ``label`` prefixes the retry log lines.
    """

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = None
        if isinstance(exc, openai.APIStatusError):
            retry_after = retry_after_seconds(exc.response.headers)
        return backoff_delay(
            state.attempt_number,
            initial_s=settings.initial_wait_s,
            max_s=settings.max_wait_s,
            jitter=jitter(),
            retry_after_s=retry_after,
        )

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.info(
            "%s: attempt %d of %d failed (%s); retrying in %.2fs",
            label,
            state.attempt_number,
            settings.attempts,
            _reason(exc),
            state.upcoming_sleep,
        )

    retrying = AsyncRetrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep or asyncio.sleep,
    )
    attempts = 0
    try:
        async for try_ in retrying:
            with try_:
                attempts = try_.retry_state.attempt_number
                return await attempt(attempts)
    except Exception as exc:
        if not _is_backend_failure(exc):
            raise
        raise BackendError(describe(exc, attempts), attempts=attempts, status=status_of(exc)) from exc
    raise AssertionError("tenacity stopped without a result or an error")  # pragma: no cover
