"""The exception tree.

SimulatorError            root of everything this package raises on purpose
├── InputError            bad input: persona, template, config, flag (CLI exit 2)
│   └── InputErrors       several InputErrors reported together
│   └── RunStateError     a run folder that cannot be resumed or replayed
└── BackendError          a chat backend failed for good (retries spent, 401, 404, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class SimulatorError(Exception):
    """Root of the package's deliberate errors."""


class InputError(SimulatorError):
    """Bad user input; the message names the file (and key or line) and what is wrong."""

    def __init__(self, source: str | Path | None, message: str) -> None:
        self.source = str(source) if source is not None else None
        self.message = message
        super().__init__(f"{self.source}: {message}" if self.source else message)


class InputErrors(InputError):
    """Several input problems found in one pass (``validate`` reports them all)."""

    def __init__(self, errors: Sequence[InputError]) -> None:
        self.errors = list(errors)
        super().__init__(None, "\n".join(str(e) for e in self.errors))


class BackendError(SimulatorError):
    """A chat request that failed for good; ``attempts`` counts tries made."""

    def __init__(self, message: str, *, attempts: int = 1, status: int | None = None) -> None:
        self.attempts = attempts
        self.status = status
        super().__init__(message)


class RunStateError(InputError):
    """A run folder that is missing, damaged, or not in a state the command needs."""
