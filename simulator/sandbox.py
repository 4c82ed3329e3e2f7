"""The Jinja sandbox that prompt templates render in, with resource limits.

Jinja's own sandbox stops templates from reaching Python internals, but not from spending
the machine: ``range(10**9)``, ``'x' * 10**12``, a macro that calls itself, nested loops that
run for hours. :class:`LimitedEnvironment` caps each (see :mod:`simulator.limits`) and
:func:`render` gives a template a wall-clock budget; every breach is a
:class:`TemplateLimitError`, a sandbox error the caller reports as bad input. The
environment is also immutable: a template cannot change the persona data it is shown.
"""

from __future__ import annotations

import contextvars
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from simulator.limits import TEMPLATE_OUTPUT_CHARS, TEMPLATE_RANGE, TEMPLATE_SECONDS

LIPSUM_PARAGRAPHS = 100
"""Most paragraphs ``lipsum()`` may make."""
MAX_EXPONENT = 1000
"""Largest power ``**`` may raise a number to."""

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("template_deadline", default=float("inf"))


class TemplateLimitError(SecurityError):
    """A template went over one of the sandbox's resource limits."""


class TemplateTimeout(TemplateLimitError):
    """The render ran out of time; where the clock ran out says little, so no line is given."""

    def __init__(self) -> None:
        super().__init__(f"rendering took longer than {TEMPLATE_SECONDS:g} s (the limit)")


def _check_time() -> None:
    if time.monotonic() > _deadline.get():
        raise TemplateTimeout


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > TEMPLATE_OUTPUT_CHARS:
        raise TemplateLimitError(
            f"{what} would be {len(value):,} long; the limit is {TEMPLATE_OUTPUT_CHARS:,}"
        )
    return value


def _check_format(text: Any) -> None:
    """A width or precision in a format string beyond the output limit would build a huge
    string before anything could measure it: refuse it up front."""
    if isinstance(text, str):
        for number in re.findall(r"\d{7,}", text):
            if int(number) > TEMPLATE_OUTPUT_CHARS:
                raise TemplateLimitError(
                    f"a format width of {int(number):,} is over the limit of {TEMPLATE_OUTPUT_CHARS:,}"
                )


def _sized_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose numeric arguments (widths) and format string are checked first."""

    def limited(*args: Any, **kwargs: Any) -> Any:
        for arg in (*args[1:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and arg > TEMPLATE_OUTPUT_CHARS:
                raise TemplateLimitError(f"{name}({arg:,}) is over the limit of {TEMPLATE_OUTPUT_CHARS:,}")
        if name == "format" and args:
            _check_format(args[0])
        return _check_size(original(*args, **kwargs), f"the result of |{name}")

    if hasattr(original, "jinja_pass_arg"):  # keep @pass_environment and the like
        limited.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return limited


def _limited_range(*args: int) -> Iterator[int]:
    """``range`` with at most :data:`TEMPLATE_RANGE` items, checking the clock as it goes."""
    numbers = range(*args)
    if len(numbers) > TEMPLATE_RANGE:
        raise TemplateLimitError(f"range() of {len(numbers):,} items is over the limit of {TEMPLATE_RANGE:,}")
    for number in numbers:
        _check_time()
        yield number


def _limited_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n > LIPSUM_PARAGRAPHS or max > 10 * LIPSUM_PARAGRAPHS:
        raise TemplateLimitError(f"lipsum() of {n} paragraphs is over the limit of {LIPSUM_PARAGRAPHS}")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


def _length_of_repeat(left: Any, right: Any) -> int:
    """How long ``left * right`` would be when it repeats a sequence (0 when it does not)."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            return len(seq) * max(times, 0)
    return 0


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Immutable sandbox with caps on ``range``, repetition, powers, output and time."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _limited_range
        self.globals["lipsum"] = _limited_lipsum
        for name in ("center", "indent", "wordwrap", "format", "truncate"):
            self.filters[name] = _sized_filter(name, self.filters[name])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "*":
            length = _length_of_repeat(left, right)
            if length > TEMPLATE_OUTPUT_CHARS:
                raise TemplateLimitError(
                    f"repeating a value {length:,} long is over the limit of {TEMPLATE_OUTPUT_CHARS:,}"
                )
        if operator == "%":
            _check_format(left)
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise TemplateLimitError(f"a power of {right} is over the limit of {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # Jinja's own signature: no keyword argument can clash with these names
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _check_time()
        return _check_size(super().call(__context, __obj, *args, **kwargs), "a value the template built")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format(value.__self__)
        return wrapped


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Interrupt pure-Python loops the checks above never see (``{% for c in text %}``),
    with SIGALRM when rendering on the main thread; elsewhere the checks alone hold."""
    usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not usable:
        yield
        return
    armed = True

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if armed:
            raise TemplateTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render within the budget: at most :data:`TEMPLATE_SECONDS` and
    :data:`TEMPLATE_OUTPUT_CHARS` of text. Raises :class:`TemplateLimitError` (or the
    template's own error); a template that recurses without end raises ``RecursionError``."""
    token = _deadline.set(time.monotonic() + TEMPLATE_SECONDS)
    try:
        with _alarm(TEMPLATE_SECONDS):
            size = 0
            chunks: list[str] = []
            for chunk in template.generate(**context):
                size += len(chunk)
                if size > TEMPLATE_OUTPUT_CHARS:
                    raise TemplateLimitError(
                        f"the rendered text is over the limit of {TEMPLATE_OUTPUT_CHARS:,} characters"
                    )
                _check_time()
                chunks.append(chunk)
            return "".join(chunks)
    finally:
        _deadline.reset(token)
