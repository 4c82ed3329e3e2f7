"""Runs series: personas concurrently, each persona's sessions in order, one writer.

Concurrency only: the run folder and its index are :mod:`simulator.state`'s, the files
:mod:`simulator.store`'s, one session's turns :mod:`simulator.session`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from simulator.config import RunConfig
from simulator.errors import SimulatorError, StorageError
from simulator.gcpolicy import run_collector
from simulator.index import RunStatus
from simulator.message_layout import Layouts
from simulator.personas import Patient
from simulator.plan import RunPlan
from simulator.protocol import ChatBackend
from simulator.records import ERROR, INTERRUPTED, SessionRecord
from simulator.session import (
    Scene,
    SessionPrompts,
    new_record,
    run_layouts,
    run_session,
    stop_record,
)
from simulator.state import RunState


class Runner:
    """Executes the sessions of a run folder that are not complete yet.

    Up to ``concurrency`` personas at once, each persona's sessions in order (a session opens
    with the summary the one before it left). Nothing per session is kept once it is written:
    memory stays flat however many sessions a run has finished.
    """

    def __init__(self, plan: RunPlan, backend: ChatBackend, state: RunState) -> None:
        self.plan = plan
        self.backend = backend
        self.state = state
        self.store = state.store
        self.layouts = run_layouts(plan.config)
        self.layouts.listeners.append(state.layout_changed)

    async def run(self) -> int:
        """0 when every session completed, 1 when one failed. Cancelled (Ctrl-C): in-flight
        sessions are written as interrupted and the cancellation goes on up."""
        semaphore = asyncio.Semaphore(self.plan.config.concurrency)

        async def guarded(patient: Patient) -> bool:
            async with semaphore:
                return await self.series(patient)

        patients = [p.persona for p in self.plan.patients if isinstance(p.persona, Patient)]
        tasks = [asyncio.create_task(guarded(p), name=f"series:{p.key}") for p in patients]
        if not tasks:
            self.finish("complete")
            return 0
        try:
            with run_collector():
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            await self._stop(tasks)
            self._finish_after_failure("interrupted")
            raise
        failure = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
        if failure is not None:
            await self._stop(list(pending))
            self._finish_after_failure("failed")
            raise failure
        ok = all(t.result() for t in tasks)
        self.finish("complete" if ok else "failed")
        return 0 if ok else 1

    @staticmethod
    async def _stop(tasks: list[asyncio.Task[bool]]) -> None:
        """Cancel the series still going and wait until each has written its session."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def finish(self, status: RunStatus) -> None:
        self.state.finish(status, self.plan.config)

    def _finish_after_failure(self, status: RunStatus) -> None:
        """Record how the run ended, unless the disk refuses that too (full, read-only): then
        the error that stopped the run is the one to report, and resume rebuilds run.json."""
        try:
            self.finish(status)
        except StorageError:
            return

    def _opening_summary(self, persona_id: str, number: int) -> str | None:
        if number == self.plan.config.start:
            return self.plan.first_summary
        return self.store.read_session(persona_id, number - 1).summary

    async def series(self, patient: Patient) -> bool:
        """One persona's sessions, in order; a failed session stops the series."""
        config = self.plan.config
        for number in range(config.start, config.start + config.sessions):
            if self.store.is_complete(patient.key, number):
                continue
            if not await self.session(patient, number):
                return False
        return True

    async def session(self, patient: Patient, number: int) -> bool:
        """Run, write and index one session; True when it completed."""
        previous = self._opening_summary(patient.key, number)
        staged = stage_session(self.plan, self.backend, patient, number, previous)
        self.state.start(patient.key, number)
        record = await play_session(staged, self.plan.config, self.backend, self._keep, self.layouts)
        # Written in a thread: its fsync would otherwise stall every request in flight. If the
        # run is stopped meanwhile, the thread still finishes the file and resume indexes it.
        await asyncio.to_thread(self.store.write_session, record)
        self.state.record(record)
        return record.status == "complete"

    def _keep(self, record: SessionRecord) -> None:
        self.store.write_session(record)
        self.state.record(record)


def interrupted(record: SessionRecord) -> SessionRecord:
    """A session ended by a stopped run (Ctrl-C, SIGTERM): resume runs it again."""
    return stop_record(record, "interrupted", INTERRUPTED, "The run was stopped")


@dataclass(frozen=True)
class StagedSession:
    """One session ready to run: who meets, the rendered prompts, the record it fills in."""

    scene: Scene
    prompts: SessionPrompts
    record: SessionRecord


def stage_session(
    plan: RunPlan, backend: ChatBackend, patient: Patient, number: int, previous: str | None
) -> StagedSession:
    """Render the prompts and open the record (a template error raises here, before a start)."""
    scene = plan.scene(patient, number, previous)
    prompts = plan.prompts(patient, number, previous)
    return StagedSession(scene, prompts, new_record(scene, plan.config, backend))


async def play_session(
    staged: StagedSession,
    config: RunConfig,
    backend: ChatBackend,
    keep: Callable[[SessionRecord], None],
    layouts: Layouts,
) -> SessionRecord:
    """Run a staged session and return its record. A session that is stopped or fails goes
    to ``keep`` before the cancellation or error goes on up; a finished one is the caller's to
    keep (the local executor writes it in a thread, a Ray worker sends it). Every executor
    runs sessions through here.
    ``layouts`` are the message layouts shared by the executor's sessions (a layout a server
    refused stays refused for the rest of them)."""
    record = staged.record
    try:
        await run_session(staged.scene, staged.prompts, config, backend, record, layouts)
    except asyncio.CancelledError:
        keep(interrupted(record))
        raise
    except Exception as exc:
        error = str(exc) if isinstance(exc, SimulatorError) else f"{type(exc).__name__}: {exc}"
        keep(stop_record(record, "failed", ERROR, error))
        raise
    return record
