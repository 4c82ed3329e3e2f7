"""A Ray worker: an async actor that runs many persona series at once, with the same session
code as a local run (:func:`simulator.runner.play_session`), and sends each session back to
the driver as it ends. It never touches the run folder: the driver is its only writer.

Its backend is built here, in the worker process, from the run's settings, so an API key
comes from the worker's own environment (exported before ``ray start``), never through Ray.
"""

from __future__ import annotations

import asyncio
import os
import socket
import traceback
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from simulator.backends import Cast, make_backend
from simulator.backends.ratelimit import RateLimitedBackend
from simulator.config import RateLimits, RunConfig
from simulator.errors import InputError, SimulatorError
from simulator.message_layout import STRICTNESS, Layout
from simulator.plan import RunPlan
from simulator.protocol import ChatBackend, Role
from simulator.raybudget import SharedBucket, find_budget
from simulator.records import SessionRecord
from simulator.runner import interrupted, play_session, stage_session
from simulator.session import run_layouts


@dataclass(frozen=True)
class Started:
    """The worker began session ``number`` (the driver marks it running)."""

    number: int


@dataclass(frozen=True)
class Failure:
    """An error that ended the series (after its failed record, if there was one)."""

    kind: Literal["input", "simulator", "unexpected"]
    message: str
    remote_traceback: str


@dataclass(frozen=True)
class LayoutChange:
    """A server refused ``old`` for ``role`` on this worker, which now sends ``new``: the
    driver records it for the run (run.json, the CLI's line), as a local run does."""

    role: Role
    old: Layout
    new: Layout
    server_said: str


Item = Started | LayoutChange | SessionRecord | Failure


def worker_backend(config: RunConfig, name: str, cast: Cast, budget: Any) -> ChatBackend:
    """The run's backend as a worker uses it: no response cache (the cache file is on the
    driver's disk), and the rate limits drawn from the run's shared budget actor."""
    local = config.model_copy(update={"cache": None, "rate_limits": RateLimits()})
    backend = make_backend(local, name, cast)
    limits = config.rate_limits
    if budget is None or not (limits.requests_per_minute or limits.tokens_per_minute):
        return backend
    rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
    return RateLimitedBackend.drawing_on(
        backend,
        SharedBucket(budget, "requests", rpm) if rpm else None,
        SharedBucket(budget, "tokens", tpm) if tpm else None,
    )


def _failure(exc: Exception) -> Failure:
    kind: Literal["input", "simulator", "unexpected"] = (
        "input"
        if isinstance(exc, InputError)
        else "simulator"
        if isinstance(exc, SimulatorError)
        else "unexpected"
    )
    message = str(exc) if kind != "unexpected" else f"{type(exc).__name__}: {exc}"
    return Failure(kind, message, "".join(traceback.format_exception(exc)))


class SeriesWorker:
    """Made a Ray actor by the driver (:mod:`simulator.raydriver`). ``given`` is a backend a
    library caller handed in (each worker gets its own copy); else the worker builds the
    registry backend ``backend_name``, drawing on the run's rate-limit budget actor named
    ``budget`` (None: no limits)."""

    def __init__(
        self, plan: RunPlan, backend_name: str, given: ChatBackend | None, budget: str | None
    ) -> None:
        self.plan = plan
        if given is not None:
            self.backend = given
        else:
            shared = find_budget(budget) if budget is not None else None
            self.backend = worker_backend(plan.config, backend_name, plan.cast(), shared)
        self.layouts = run_layouts(plan.config)
        """This worker's message layouts: a fallback a server forces here holds for the worker's
        later sessions and goes to the driver (:class:`LayoutChange`), which records it."""
        self.layouts.listeners.append(self._layout_changed)
        self.changes: list[LayoutChange] = []
        self.running: set[asyncio.Task[SessionRecord]] = set()
        self.stopping = False

    async def info(self) -> dict[str, Any]:
        """Where this worker runs, for the driver's log line."""
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _layout_changed(self, role: Role, old: Layout, new: Layout, server_said: str) -> None:
        self.changes.append(LayoutChange(role, old, new, server_said))

    async def series(
        self, persona_id: str, first: int, previous: str | None, layouts: Mapping[Role, Layout]
    ) -> AsyncIterator[Item]:
        """Sessions ``first`` .. the run's last for one persona, in order, each opened by the
        summary of the one before. Yields each start and each finished record (after any layout
        change made on this worker since the last item); stops after a session that did not
        complete. ``layouts``: the run's as the driver knows them (a stricter one is taken up)."""
        for role, layout in layouts.items():
            if STRICTNESS.index(layout) > STRICTNESS.index(self.layouts.get(role)):
                self.layouts.current[role] = layout
        async for item in self._series(persona_id, first, previous):
            changes, self.changes = self.changes, []
            for change in changes:
                yield change
            yield item

    async def _series(self, persona_id: str, first: int, previous: str | None) -> AsyncIterator[Item]:
        config = self.plan.config
        patient = self.plan.patient(persona_id)
        for number in range(first, config.start + config.sessions):
            if self.stopping:
                return
            kept: list[SessionRecord] = []
            try:
                staged = stage_session(self.plan, self.backend, patient, number, previous)
            except Exception as exc:
                yield _failure(exc)
                return
            yield Started(number)
            if self.stopping:  # stopped while the start was on its way to the driver
                yield interrupted(staged.record)
                return
            task = asyncio.create_task(play_session(staged, config, self.backend, kept.append, self.layouts))
            self.running.add(task)
            try:
                record = await task
            except asyncio.CancelledError:  # a task cancelled before its first step keeps nothing
                yield kept[0] if kept else interrupted(staged.record)
                return
            except Exception as exc:
                if kept:
                    yield kept[0]
                yield _failure(exc)
                return
            finally:
                self.running.discard(task)
            yield record
            if record.status != "complete":
                return
            previous = record.summary

    async def stop(self) -> None:
        """Stop every session in flight here (each series sends its record as interrupted)
        and start no other: the run is ending."""
        self.stopping = True
        for task in list(self.running):
            task.cancel()

    async def close(self) -> None:
        await self.backend.aclose()
