"""Runs series: personas concurrently, each persona's sessions in order, one writer.

A run folder holds a snapshot of its inputs (personas, therapist, templates, the opening
summary) so that ``resume`` and ``replay`` use exactly what the run started with.
"""

from __future__ import annotations

import asyncio
import platform
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.backend import ChatBackend
from simulator.config import RunConfig
from simulator.errors import InputError, RunStateError
from simulator.personas import Patient
from simulator.plan import RunPlan
from simulator.records import INTERRUPTED, SessionRecord, Termination, TokenCounts
from simulator.session import new_record, now, run_session
from simulator.store import RunStore
from simulator.templates import TEMPLATE_NAMES

RUN_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
INPUTS = "inputs"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def validate_run_id(run_id: str) -> str:
    if (
        not run_id
        or run_id.startswith(".")
        or len(run_id) > 128
        or any(c not in RUN_ID_CHARS for c in run_id)
    ):
        raise InputError(
            "--run-id",
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' or '-', not starting with '.'",
        )
    return run_id


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


@dataclass
class RunState:
    """The in-memory run.json; the runner updates it and the store writes it."""

    data: dict[str, Any]
    store: RunStore
    listeners: list[Listener] = field(default_factory=list)

    def save(self) -> None:
        self.store.write_run(self.data)

    def session(self, persona_id: str, number: int) -> dict[str, Any]:
        sessions: dict[str, Any] = self.data["sessions"].setdefault(persona_id, {})
        entry: dict[str, Any] = sessions.setdefault(str(number), {"status": "pending"})
        return entry

    def record(self, record: SessionRecord) -> None:
        entry = self.session(record.persona_id, record.session_number)
        entry.clear()
        stem = self.store.session_path(
            record.persona_id, record.session_number, ".txt", partial=record.status != "complete"
        )
        entry.update(
            status=record.status,
            file=str(stem.relative_to(self.store.run_dir)),
            termination=record.termination.reason if record.termination else None,
            details=record.termination.details if record.termination else None,
            messages=len(record.messages),
            flags=sum(record.flag_counts().values()),
        )
        if record.error:
            entry["error"] = record.error
        self.save()
        self.emit(SessionEvent(record.persona_id, record.session_number, record.status, record))

    def emit(self, event: SessionEvent) -> None:
        for listener in self.listeners:
            listener(event)


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


def create_run(
    plan: RunPlan, backend_name: str, *, command: str, branched_from: dict[str, Any] | None = None
) -> RunState:
    config = plan.config
    run_id = validate_run_id(config.run_id or new_run_id())
    run_dir = config.out / run_id
    if run_dir.exists():
        raise InputError(
            run_dir, "run folder already exists: choose another --run-id, or `simulator resume` it"
        )
    tmp_dir = config.out / f".{run_id}.creating"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    snapshot_inputs(plan, tmp_dir)
    settings = snapshot_config(plan, run_dir).model_copy(update={"run_id": run_id})
    data: dict[str, Any] = {
        "format": 1,
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
        "sessions": {},
        "usage": {},
        "resumes": [],
    }
    store = RunStore(tmp_dir)
    state = RunState(data, store)
    for loaded in plan.patients:
        for number in range(config.start, config.start + config.sessions):
            state.session(loaded.persona.key, number)
    state.save()
    tmp_dir.rename(run_dir)
    state.store = RunStore(run_dir)
    return state


def _usage_totals(store: RunStore, state: RunState, config: RunConfig) -> None:
    totals: dict[str, TokenCounts] = {}
    flags: dict[str, int] = {}
    for persona_id, sessions in state.data["sessions"].items():
        for number, entry in sessions.items():
            if entry.get("status") not in ("complete", "failed", "interrupted"):
                continue
            path = store.run_dir / entry["file"]
            path = path.with_suffix(".json")
            try:
                record = SessionRecord.model_validate_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for role, counts in record.usage.items():
                totals.setdefault(role, TokenCounts()).merge(counts)
            for flag, count in record.flag_counts().items():
                flags[flag] = flags.get(flag, 0) + count
    state.data["usage"] = {role: c.model_dump() for role, c in totals.items()}
    state.data["flags"] = flags
    cost = estimate_cost(totals, config)
    if cost is not None:
        state.data["cost_usd"] = round(cost, 6)


def estimate_cost(totals: dict[str, TokenCounts], config: RunConfig) -> float | None:
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


class Runner:
    """Executes the pending sessions of a run folder."""

    def __init__(self, plan: RunPlan, backend: ChatBackend, state: RunState) -> None:
        self.plan = plan
        self.backend = backend
        self.state = state
        self.store = state.store

    async def run(self) -> int:
        config = self.plan.config
        semaphore = asyncio.Semaphore(config.concurrency)

        async def guarded(patient: Patient) -> bool:
            async with semaphore:
                return await self.series(patient)

        try:
            results = await asyncio.gather(
                *(guarded(p.persona) for p in self.plan.patients if isinstance(p.persona, Patient))
            )
        except asyncio.CancelledError:
            self.finish("interrupted")
            raise
        ok = all(results)
        self.finish("complete" if ok else "failed")
        return 0 if ok else 1

    def finish(self, status: str) -> None:
        self.state.data["status"] = status
        self.state.data["ended_at"] = now()
        _usage_totals(self.store, self.state, self.plan.config)
        self.state.save()

    def _opening_summary(self, persona_id: str, number: int) -> str | None:
        config = self.plan.config
        if number == config.start:
            return self.plan.first_summary
        return self.store.read_session(persona_id, number - 1).summary

    async def series(self, patient: Patient) -> bool:
        """One persona's sessions, in order; a failed session stops the series."""
        config = self.plan.config
        for number in range(config.start, config.start + config.sessions):
            if self.store.is_complete(patient.key, number):
                continue
            previous = self._opening_summary(patient.key, number)
            scene = self.plan.scene(patient, number, previous)
            prompts = self.plan.prompts(patient, number, previous)
            record = new_record(scene, config, self.backend)
            self.state.session(patient.key, number)["status"] = "running"
            self.state.emit(SessionEvent(patient.key, number, "running"))
            try:
                await run_session(scene, prompts, config, self.backend, record)
            except asyncio.CancelledError:
                record.status = "interrupted"
                record.termination = Termination(
                    reason=INTERRUPTED, details="The run was stopped", message_index=len(record.messages) - 1
                )
                record.ended_at = now()
                self.store.write_session(record)
                self.state.record(record)
                raise
            self.store.write_session(record)
            self.state.record(record)
            if record.status != "complete":
                return False
        return True


def load_state(run_dir: Path) -> RunState:
    store = RunStore(run_dir)
    data = store.read_run()
    for key in ("settings", "sessions", "inputs"):
        if key not in data:
            raise RunStateError(store.run_file, f"damaged run.json: no {key!r}")
    return RunState(data, store)
