"""Runs series: personas concurrently, each persona's sessions in order, one writer.

A run folder holds a snapshot of its inputs (personas, therapist, templates, the opening
summary) so that ``resume`` and ``replay`` use exactly what the run started with. The session
files are the truth; run.json is the index kept beside them, rebuilt from them by
:meth:`RunState.reconcile` when a process died before it could say what it had finished.
"""

from __future__ import annotations

import asyncio
import math
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.backend import ChatBackend
from simulator.config import RunConfig, validate_run_id
from simulator.errors import SimulatorError, StorageError
from simulator.personas import Patient
from simulator.plan import RunPlan
from simulator.reader import read_run
from simulator.records import ERROR, INTERRUPTED, SessionRecord, Termination, TokenCounts
from simulator.session import new_record, now, run_session
from simulator.store import RunStore, new_folder, on_disk
from simulator.templates import TEMPLATE_NAMES

INPUTS = "inputs"
FORMAT = 1
SESSION_STATUSES = ("pending", "running", "complete", "failed", "interrupted")
"""Every session in run.json has one; pending, failed and interrupted ones are what resume runs."""
SAVE_INTERVAL_S = 0.5
"""Least time between two writes of run.json while a run goes (see :class:`RunState`)."""


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _versions() -> dict[str, str]:
    versions = {"simulator": __version__, "python": platform.python_version()}
    for package in ("openai", "jinja2", "pydantic", "tenacity", "pyyaml"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class SessionEvent:
    persona_id: str
    session_number: int
    status: str
    record: SessionRecord | None = None


Listener = Callable[[SessionEvent], None]


def estimate_cost(totals: dict[str, TokenCounts], config: RunConfig) -> float | None:
    """US dollars for the tokens by role, from ``prices`` in the config (None without prices)."""
    if not config.prices:
        return None
    cost = 0.0
    for role, counts in totals.items():
        price = config.prices.get(config.role(role).model or "")
        if price is None:
            continue
        cached_price = price.cached if price.cached is not None else price.prompt
        uncached = counts.prompt_tokens - counts.cached_tokens
        cost += (
            uncached * price.prompt
            + counts.cached_tokens * cached_price
            + counts.completion_tokens * price.completion
        ) / 1e6
    return cost


@dataclass
class RunState:
    """The in-memory run.json; the runner updates it and the store writes it.

    ``usage`` in run.json counts every attempt that reached a record (an interrupted attempt
    that resume later redid included), by role, cache hits among them: what the run cost.

    Writes are spaced at least ``save_interval_s`` apart (the last change is always written,
    at the latest that long after it): rewriting the whole index after every event would make
    a run of many thousands of sessions quadratic. A process killed in between leaves run.json
    slightly behind the session files, which :meth:`reconcile` catches up on.
    """

    data: dict[str, Any]
    store: RunStore
    listeners: list[Listener] = field(default_factory=list)
    save_interval_s: float = SAVE_INTERVAL_S
    _last_save: float = field(default=-math.inf, repr=False)
    _flush: asyncio.TimerHandle | None = field(default=None, repr=False)

    def save(self, *, force: bool = False) -> None:
        wait = self._last_save + self.save_interval_s - time.monotonic()
        if force or wait <= 0:
            self._write()
            return
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._write()
                return
            self._flush = loop.call_later(wait, self._write)

    def _write(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.data["totals"] = self._totals()
        self.store.write_run(self.data)
        self._last_save = time.monotonic()

    def session(self, persona_id: str, number: int) -> dict[str, Any]:
        sessions: dict[str, Any] = self.data["sessions"].setdefault(persona_id, {})
        entry: dict[str, Any] = sessions.setdefault(str(number), {"status": "pending"})
        return entry

    def entries(self) -> list[tuple[str, int, dict[str, Any]]]:
        return [
            (pid, int(number), entry)
            for pid, sessions in self.data["sessions"].items()
            for number, entry in sessions.items()
        ]

    def start(self, persona_id: str, number: int) -> None:
        entry = self.session(persona_id, number)
        entry["status"] = "running"
        entry["started_at"] = now()
        self.save()
        self.emit(SessionEvent(persona_id, number, "running"))

    def record(self, record: SessionRecord) -> None:
        """Index a session just written by the store, add its usage, save, tell listeners."""
        self._index(record)
        self._add_usage(record)
        self.save()
        self.emit(SessionEvent(record.persona_id, record.session_number, record.status, record))

    def _index(self, record: SessionRecord) -> None:
        entry = self.session(record.persona_id, record.session_number)
        attempts = int(entry.get("attempts", 0)) + 1
        entry.clear()
        path = self.store.session_path(
            record.persona_id, record.session_number, ".txt", partial=record.status != "complete"
        )
        entry.update(
            status=record.status,
            file=path.relative_to(self.store.run_dir).as_posix(),
            termination=record.termination.reason if record.termination else None,
            details=record.termination.details if record.termination else None,
            messages=len(record.messages),
            flags=sum(record.flag_counts().values()),
            attempts=attempts,
            started_at=record.started_at,
            ended_at=record.ended_at,
        )
        if record.error:
            entry["error"] = record.error

    def _add_usage(self, record: SessionRecord) -> None:
        usage: dict[str, Any] = self.data.setdefault("usage", {})
        for role, counts in record.usage.items():
            total = TokenCounts.model_validate(usage.get(role, {}))
            total.merge(counts)
            usage[role] = total.model_dump()
        if record.status == "complete":
            flags: dict[str, int] = self.data.setdefault("flags", {})
            for flag, count in record.flag_counts().items():
                flags[flag] = flags.get(flag, 0) + count

    def usage(self) -> dict[str, TokenCounts]:
        return {role: TokenCounts.model_validate(c) for role, c in self.data.get("usage", {}).items()}

    def _totals(self) -> dict[str, Any]:
        total = TokenCounts()
        for counts in self.usage().values():
            total.merge(counts)
        statuses = [entry["status"] for _, _, entry in self.entries()]
        return {
            "sessions": len(statuses),
            **{status: statuses.count(status) for status in SESSION_STATUSES if status in statuses},
            **total.model_dump(),
            "cached_share": total.cached_share(),
        }

    def finish(self, status: str, config: RunConfig) -> None:
        self.data["status"] = status
        self.data["ended_at"] = now()
        cost = estimate_cost(self.usage(), config)
        if cost is not None:
            self.data["cost_usd"] = round(cost, 6)
        self.save(force=True)

    def emit(self, event: SessionEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def settled(self) -> bool:
        """Complete on disk and in run.json, with nothing left to tidy: resume has nothing to
        do and need not write anything (the folder may be on read-only media)."""
        return (
            self.data.get("status") == "complete"
            and all(
                entry.get("status") == "complete" and self.store.is_complete(pid, number)
                for pid, number, entry in self.entries()
            )
            and not self.store.temporaries()
        )

    def reconcile(self) -> list[str]:
        """Make run.json agree with the session files after a process died mid-run.

        A session whose final json exists is complete (its record is indexed, and its usage
        counted, if run.json had not heard of it); a session left ``running`` is interrupted.
        Leftover partial and temporary files beside a complete session are removed.
        Returns one line per change, for the log.
        """
        changes: list[str] = []
        removed = self.store.remove_temporaries()
        if removed:
            changes.append(f"removed {removed} temporary file(s) left by a killed process")
        for pid, number, entry in self.entries():
            if self.store.is_complete(pid, number):
                self.store.drop_partial(pid, number)
                if entry.get("status") != "complete":
                    record = self.store.read_session(pid, number)
                    self._index(record)
                    self._add_usage(record)
                    changes.append(f"{pid} session {number}: complete on disk")
            elif entry.get("status") in ("running", "complete"):
                entry["status"] = "interrupted"
                if self.store.has_partial(pid, number):
                    partial = self.store.session_path(pid, number, ".txt", partial=True)
                    entry["file"] = partial.relative_to(self.store.run_dir).as_posix()
                else:
                    entry.pop("file", None)
                changes.append(f"{pid} session {number}: interrupted")
        return changes


def snapshot_inputs(plan: RunPlan, run_dir: Path) -> None:
    """Copy what the run is built from into the run folder (for resume, replay and audit)."""
    inputs = run_dir / INPUTS
    (inputs / "personas").mkdir(parents=True, exist_ok=True)
    (inputs / "prompts").mkdir(parents=True, exist_ok=True)
    for loaded in plan.patients:
        (inputs / "personas" / f"{loaded.persona.key}.yaml").write_text(loaded.text, encoding="utf-8")
    (inputs / "therapist.yaml").write_text(plan.therapist.text, encoding="utf-8")
    plan.templates.load()
    for name in TEMPLATE_NAMES:
        (inputs / "prompts" / name).write_text(plan.templates.sources[name], encoding="utf-8")
    if plan.first_summary is not None:
        (inputs / "previous_summary.txt").write_text(plan.first_summary + "\n", encoding="utf-8")


def snapshot_config(plan: RunPlan, run_dir: Path) -> RunConfig:
    """The config as the snapshot sees it: every input path points inside the run folder."""
    inputs = run_dir / INPUTS
    return plan.config.model_copy(
        update={
            "therapist": inputs / "therapist.yaml",
            "prompts": inputs / "prompts",
            "previous_summary": inputs / "previous_summary.txt" if plan.first_summary is not None else None,
        }
    )


def snapshot_settings(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """A run's saved settings with every input path (and the output place) pointing at
    ``run_dir`` as it is now, so a run folder that was moved or copied still resumes."""
    inputs = run_dir / INPUTS
    summary = inputs / "previous_summary.txt"
    return {
        **settings,
        "therapist": str(inputs / "therapist.yaml"),
        "prompts": str(inputs / "prompts"),
        "previous_summary": str(summary) if summary.is_file() else None,
        "out": str(run_dir.parent),
        "run_id": run_dir.name,
    }


def create_run(
    plan: RunPlan,
    backend_name: str,
    *,
    command: str,
    branched_from: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> RunState:
    """Make the run folder: snapshot and run.json are written in a hidden folder that is
    renamed into place, so a run folder either exists whole or not at all (see
    :func:`simulator.store.new_folder`)."""
    config = plan.config
    run_id = validate_run_id(config.run_id if config.run_id is not None else new_run_id())
    run_dir = config.out / run_id
    settings = snapshot_config(plan, run_dir).model_copy(update={"run_id": run_id})
    data: dict[str, Any] = {
        "format": FORMAT,
        "run_id": run_id,
        "command": command,
        "status": "running",
        "backend": backend_name,
        "offline": backend_name == "offline",
        "created_at": now(),
        "started_at": now(),
        "ended_at": None,
        "settings": settings.model_dump(mode="json"),
        "versions": _versions(),
        "inputs": {
            "therapist": {
                "id": plan.therapist.persona.key,
                "source": str(plan.therapist.path),
                "digest": plan.therapist.digest,
            },
            "personas": {p.persona.key: {"source": str(p.path), "digest": p.digest} for p in plan.patients},
            "templates": plan.templates.digests(),
            "template_sources": {name: str(path) for name, path in plan.templates.paths.items()},
        },
        "branched_from": branched_from,
        **(extra or {}),
        "sessions": {},
        "usage": {},
        "totals": {},
        "resumes": [],
    }
    secrets = config.secrets()
    with new_folder(run_dir) as tmp_dir:
        snapshot_inputs(plan, tmp_dir)
        state = RunState(data, RunStore(tmp_dir, secrets))
        for loaded in plan.patients:
            for number in range(config.start, config.start + config.sessions):
                state.session(loaded.persona.key, number)
        state.save(force=True)
    state.store = RunStore(run_dir, secrets)
    return state


def _closed(record: SessionRecord, reason: str, details: str) -> SessionRecord:
    record.termination = Termination(
        reason=reason, details=details, message_index=len(record.messages) - 1 if record.messages else None
    )
    record.ended_at = now()
    return record


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

    def finish(self, status: str) -> None:
        self.state.finish(status, self.plan.config)

    def _finish_after_failure(self, status: str) -> None:
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
        config = self.plan.config
        previous = self._opening_summary(patient.key, number)
        scene = self.plan.scene(patient, number, previous)
        prompts = self.plan.prompts(patient, number, previous)
        record = new_record(scene, config, self.backend)
        self.state.start(patient.key, number)
        try:
            await run_session(scene, prompts, config, self.backend, record)
        except asyncio.CancelledError:
            record.status = "interrupted"
            self._keep(_closed(record, INTERRUPTED, "The run was stopped"))
            raise
        except Exception as exc:
            record.status = "failed"
            record.error = str(exc) if isinstance(exc, SimulatorError) else f"{type(exc).__name__}: {exc}"
            self._keep(_closed(record, ERROR, record.error))
            raise
        self._keep(record)
        return record.status == "complete"

    def _keep(self, record: SessionRecord) -> None:
        self.store.write_session(record)
        self.state.record(record)


def load_state(run_dir: Path) -> RunState:
    """A run folder's state, checked before anything is written or locked: run.json must have
    the shape of :class:`simulator.index.RunIndex`, and no symbolic link may sit inside."""
    run = read_run(run_dir)
    with on_disk(run_dir):
        run.store.check_no_links()
    return RunState(run.index.dump(), run.store)
