"""The exception tree.

SimulatorError            root of everything this package raises on purpose
├── InputError            bad input: persona, template, config, flag (CLI exit 2)
│   ├── InputErrors       several InputErrors reported together
│   └── RunStateError     a run folder that cannot be resumed or replayed
├── StorageError          a run folder file could not be written or read (disk full, read-only)
└── BackendError          a chat backend failed for good (retries spent, 401, 404, ...)
    ├── TemplateRejected  the server's chat template refused the roles of the messages
    └── ContextOverflow   the request does not fit the model's context
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

EXIT_INTERRUPTED = 130
"""The exit code of a run stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT)."""


class SimulatorError(Exception):
    """Root of the package's deliberate errors."""


class InputError(SimulatorError):
    """Bad user input; the message names the file (and key or line) and what is wrong."""

    def __init__(self, source: str | Path | None, message: str) -> None:
        self.source = str(source) if source is not None else None
        self.message = message
        super().__init__(f"{self.source}: {message}" if self.source else message)

    @property
    def problems(self) -> list[InputError]:
        """Each single problem this error stands for."""
        return [self]


class InputErrors(InputError):
    """Several input problems found in one pass (``validate`` reports them all)."""

    def __init__(self, errors: Sequence[InputError]) -> None:
        self.errors = [single for error in errors for single in error.problems]
        super().__init__(None, "\n".join(str(e) for e in self.errors))

    @property
    def problems(self) -> list[InputError]:
        return self.errors

    @staticmethod
    def raise_if_any(problems: Sequence[InputError]) -> None:
        """Raise nothing, the one problem, or all of them together."""
        flat = [single for problem in problems for single in problem.problems]
        if flat:
            raise flat[0] if len(flat) == 1 else InputErrors(flat)


class BackendError(SimulatorError):
    """A chat request that failed for good; ``attempts`` counts tries made."""

    def __init__(self, message: str, *, attempts: int = 1, status: int | None = None) -> None:
        self.attempts = attempts
        self.status = status
        super().__init__(message)


class TemplateRejected(BackendError):
    """The server's chat template refused the messages' roles ("roles must alternate",
    "System role not supported"): a stricter message layout may be accepted."""


class ContextOverflow(BackendError):
    """The request (prompt plus reply limit) is larger than the model's context."""


class RunStateError(InputError):
    """A run folder that is missing, damaged, or not in a state the command needs."""


class StorageError(SimulatorError):
    """The disk refused a run folder file (CLI exit 1); what was complete stays complete."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
