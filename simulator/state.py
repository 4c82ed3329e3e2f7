"""A run folder's state: creating it (input snapshot, run.json), loading it, and the
in-memory index the runner updates as sessions start and end.

The session files are the truth; run.json is the index kept beside them, rebuilt from them by
:meth:`RunState.reconcile` when a process died before it could say what it had finished.
"""

from __future__ import annotations

import asyncio
import logging
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.backends import kind
from simulator.config import RunConfig
from simulator.cost import estimate_cost
from simulator.errors import RunStateError
from simulator.index import FORMAT, SESSION_STATUSES, RunIndex, RunStatus, SessionEntry
from simulator.layout import (
    new_run_id,
    persona_file,
    prompts_dir,
    summary_file,
    therapist_file,
    validate_run_id,
)
from simulator.message_layout import Layout
from simulator.plan import RunPlan
from simulator.records import SessionRecord, TokenCounts
from simulator.session import now
from simulator.store import RunStore, new_folder, on_disk
from simulator.templates import TEMPLATE_NAMES

SAVE_INTERVAL_S = 0.5
"""Least time between two writes of run.json while a run goes (see :class:`RunState`)."""


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


log = logging.getLogger(__name__)

Listener = Callable[[SessionEvent], None]


@dataclass
class RunState:
    """The in-memory run.json (a :class:`RunIndex`); the runner updates it, the store writes it.

    ``usage`` in run.json counts every attempt that reached a record (an interrupted attempt
    that resume later redid included), by role, cache hits among them: what the run cost.

    Writes are spaced at least ``save_interval_s`` apart (the last change is always written,
    at the latest that long after it): rewriting the whole index after every event would make
    a run of many thousands of sessions quadratic. A process killed in between leaves run.json
    slightly behind the session files, which :meth:`reconcile` catches up on.
    """

    index: RunIndex
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
        self.index.totals = self._totals()
        self.store.write_run(self.index.dump())
        self._last_save = time.monotonic()

    def session(self, persona_id: str, number: int) -> SessionEntry:
        return self.index.entry(persona_id, number)

    def entries(self) -> list[tuple[str, int, SessionEntry]]:
        return self.index.entries()

    def start(self, persona_id: str, number: int) -> None:
        entry = self.session(persona_id, number)
        entry.status = "running"
        entry.started_at = now()
        self.save()
        self.emit(SessionEvent(persona_id, number, "running"))

    def record(self, record: SessionRecord) -> None:
        """Index a session just written by the store, add its usage, save, tell listeners."""
        self._index(record)
        self._add_usage(record)
        self.save()
        self.emit(SessionEvent(record.persona_id, record.session_number, record.status, record))

    def _index(self, record: SessionRecord) -> None:
        attempts = self.session(record.persona_id, record.session_number).attempts + 1
        path = self.store.session_path(
            record.persona_id, record.session_number, ".txt", partial=record.status != "complete"
        )
        entry = SessionEntry(
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
            entry.error = record.error
        self.index.sessions.setdefault(record.persona_id, {})[record.session_number] = entry

    def _add_usage(self, record: SessionRecord) -> None:
        usage = self.index.usage
        for role, counts in record.usage.items():
            usage.setdefault(role, TokenCounts()).merge(counts)
        self.index.usage = usage
        if record.status == "complete":
            flags = self.index.flags
            for flag, count in record.flag_counts().items():
                flags[flag] = flags.get(flag, 0) + count
            self.index.flags = flags

    def usage(self) -> dict[str, TokenCounts]:
        return {role: counts.model_copy() for role, counts in self.index.usage.items()}

    def _totals(self) -> dict[str, Any]:
        total = TokenCounts()
        for counts in self.index.usage.values():
            total.merge(counts)
        statuses = [entry.status for _, _, entry in self.entries()]
        return {
            "sessions": len(statuses),
            **{status: statuses.count(status) for status in SESSION_STATUSES if status in statuses},
            **total.model_dump(),
            "cached_share": total.cached_share(),
        }

    def finish(self, status: RunStatus, config: RunConfig) -> None:
        self.index.status = status
        self.index.ended_at = now()
        cost = estimate_cost(self.usage(), config)
        if cost is not None:
            self.index.cost_usd = round(cost, 6)
        self.save(force=True)

    def emit(self, event: SessionEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def settled(self) -> bool:
        """Complete on disk and in run.json, with nothing left to tidy: resume has nothing to
        do and need not write anything (the folder may be on read-only media)."""
        return (
            self.index.status == "complete"
            and all(
                entry.status == "complete" and self.store.is_complete(pid, number)
                for pid, number, entry in self.entries()
            )
            and not self.store.temporaries()
        )

    def layout_changed(self, role: str, old: Layout, new: Layout, server_said: str) -> None:
        """A server refused ``old`` for ``role``: save ``new`` in the settings, so resume starts
        with it, log the change in ``layout_changes``, and tell the user (the CLI prints it)."""
        roles: dict[str, Any] = self.index.settings.setdefault("roles", {})
        roles.setdefault(role, {})["message_layout"] = new
        change = {"role": role, "from": old, "to": new, "server_said": server_said, "at": now()}
        self.index.layout_changes = [*self.index.layout_changes, change]
        self.save(force=True)
        log.warning(
            "%s: the server's chat template refused the '%s' message layout; "
            "using '%s' for the rest of the run (saved in run.json)",
            role,
            old,
            new,
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
                if entry.status != "complete":
                    record = self.store.read_session(pid, number)
                    self._index(record)
                    self._add_usage(record)
                    changes.append(f"{pid} session {number}: complete on disk")
            elif entry.status in ("running", "complete"):
                fields = entry.model_dump(exclude_unset=True, exclude={"file"})
                kept = SessionEntry.model_validate({**fields, "status": "interrupted"})
                if self.store.has_partial(pid, number):
                    partial = self.store.session_path(pid, number, ".txt", partial=True)
                    kept.file = partial.relative_to(self.store.run_dir).as_posix()
                self.index.sessions[pid][number] = kept
                changes.append(f"{pid} session {number}: interrupted")
        return changes


def snapshot_inputs(plan: RunPlan, store: RunStore) -> None:
    """Copy what the run is built from into the run folder (for resume, replay and audit)."""
    run_dir = store.run_dir
    (prompts_dir(run_dir)).mkdir(parents=True, exist_ok=True)
    for loaded in plan.patients:
        store.write_input(persona_file(run_dir, loaded.persona.key), loaded.text)
    store.write_input(therapist_file(run_dir), plan.therapist.text)
    plan.templates.load()
    for name in TEMPLATE_NAMES:
        store.write_input(prompts_dir(run_dir) / name, plan.templates.sources[name])
    if plan.first_summary is not None:
        store.write_input(summary_file(run_dir), plan.first_summary + "\n")


def snapshot_config(plan: RunPlan, run_dir: Path) -> RunConfig:
    """The config as the snapshot sees it: every input path points inside the run folder."""
    return plan.config.model_copy(
        update={
            "therapist": therapist_file(run_dir),
            "prompts": prompts_dir(run_dir),
            "previous_summary": summary_file(run_dir) if plan.first_summary is not None else None,
        }
    )


def snapshot_settings(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """A run's saved settings with every input path (and the output place) pointing at
    ``run_dir`` as it is now, so a run folder that was moved or copied still resumes."""
    summary = summary_file(run_dir)
    return {
        **settings,
        "therapist": str(therapist_file(run_dir)),
        "prompts": str(prompts_dir(run_dir)),
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
        "offline": kind(backend_name).offline,
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
        store = RunStore(tmp_dir, secrets)
        snapshot_inputs(plan, store)
        state = RunState(RunIndex.parse(data), store)
        for loaded in plan.patients:
            for number in range(config.start, config.start + config.sessions):
                state.session(loaded.persona.key, number)
        state.save(force=True)
    state.store = RunStore(run_dir, secrets)
    return state


def load_state(run_dir: Path) -> RunState:
    """A run folder's state, checked before anything is written or locked: run.json must have
    the shape of :class:`simulator.index.RunIndex` with valid persona ids, and no symbolic
    link may sit inside."""
    store = RunStore(run_dir)
    try:
        index = RunIndex.parse(store.read_run())
    except ValueError as exc:
        raise RunStateError(store.run_file, f"damaged run.json: {exc}") from None
    problem = index.id_problem()
    if problem is not None:
        raise RunStateError(store.run_file, f"damaged run.json: {problem}")
    with on_disk(run_dir):
        store.check_no_links()
    index.usage = index.usage  # written from now on even when the file had none
    index.resumes = index.resumes
    return RunState(index, store)
