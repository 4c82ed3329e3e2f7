"""Ctrl-C and SIGTERM for the ``simulator`` process: exit 130 at any moment, never a traceback.

Installed first thing by the entry point (:mod:`simulator.__main__`), before the heavy
imports, so a signal during start-up is handled too. What the first signal does depends on
the phase the process is in:

- start-up and shut-down (nothing of the user's is half-done): say so and exit 130 at once;
- a command at work: raise ``KeyboardInterrupt`` where the code is, so ``finally`` blocks
  tidy up (a half-made run folder is removed) and the CLI exits 130;
- a run going: cancel it, so the sessions in flight are written as interrupted.

A second signal always exits 130 at once. Nothing heavy is imported here.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any

from simulator.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    import asyncio

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SHOW_CURSOR = "\x1b[?25h"
"""Sent before quitting at once from a terminal: the live display hides the cursor."""


class _Phase:
    installed = False
    count = 0
    working = False
    cancel: Callable[[], None] | None = None


def _say(line: str) -> None:
    try:
        if sys.stderr.isatty():
            sys.stderr.write(SHOW_CURSOR)
        sys.stderr.write(f"simulator: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed: the exit code still says it


def _quit(line: str) -> None:
    _say(line)
    os._exit(EXIT_INTERRUPTED)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _Phase.count += 1
    if _Phase.count > 1:
        _quit("stopped at once; `simulator resume RUN_DIR` finishes the run")
    if _Phase.cancel is not None:
        _say("stopping: writing the sessions in flight as interrupted (Ctrl-C again to quit at once)")
        _Phase.cancel()
        return
    if _Phase.working:
        raise KeyboardInterrupt
    _quit("interrupted")


def exit_interrupted() -> None:
    """Exit 130 now, saying so unless the CLI already did (a signal has been counted)."""
    if _Phase.count == 0:
        _say("interrupted")
    with suppress(OSError, ValueError):
        sys.stdout.flush()
    os._exit(EXIT_INTERRUPTED)


def install() -> None:
    """Handle SIGINT and SIGTERM for the rest of the process (main thread only)."""
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    _Phase.installed = True


def stopped() -> bool:
    """True once a signal came (a cancelled run then ends as interrupted, exit 130)."""
    return _Phase.count > 0


@contextmanager
def working() -> Iterator[None]:
    """A command at work: a signal raises ``KeyboardInterrupt`` here instead of exiting."""
    _Phase.working = True
    try:
        yield
    finally:
        _Phase.working = False


@contextmanager
def cancelling(task: asyncio.Task[Any]) -> Iterator[None]:
    """While the block runs, the first signal cancels ``task`` (from the loop, safely). Without
    :func:`install` (the library embedded, tests) asyncio's own Ctrl-C handling applies."""
    if not _Phase.installed:
        yield
        return
    loop = task.get_loop()

    def cancel() -> None:
        loop.call_soon_threadsafe(task.cancel)

    _Phase.cancel = cancel
    try:
        yield
    finally:
        _Phase.cancel = None
