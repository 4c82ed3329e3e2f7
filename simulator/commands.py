"""The commands as library calls: ``run``, ``resume``, ``replay``, ``validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.backends import choose_backend, make_backend
from simulator.config import RunConfig, load_config
from simulator.errors import InputError, InputErrors, RunStateError
from simulator.personas import LoadedPersona, load_persona
from simulator.plan import RunPlan, check_templates, default_therapist_path, load_plan
from simulator.progress import attach_progress
from simulator.runner import INPUTS, Runner, RunState, create_run, load_state
from simulator.session import now
from simulator.store import RunStore
from simulator.templates import TEMPLATE_NAMES, Templates
from simulator.yamlfile import load_mapping


def _shard(paths: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    if shard is None:
        return paths
    index, total = shard
    return [p for i, p in enumerate(sorted(paths, key=lambda p: p.stem)) if i % total == index - 1]


async def _execute(plan: RunPlan, state: RunState, backend_name: str, progress: bool | None) -> int:
    backend = make_backend(plan.config, backend_name)
    runner = Runner(plan, backend, state)
    try:
        with attach_progress(state, plan, enabled=progress):
            return await runner.run()
    finally:
        await backend.aclose()


async def run(
    personas: list[Path], config_file: Path | None, flags: dict[str, Any], *, progress: bool | None
) -> int:
    config = load_config(config_file, flags)
    if config.start > 1 and config.previous_summary is None:
        raise InputError(
            "--start", f"--start {config.start} needs --previous-summary FILE (the summary that opens it)"
        )
    plan = load_plan(config, _shard(personas, config.shard_parts()))
    if not plan.patients:
        raise InputError("--shard", f"shard {config.shard} of {len(personas)} personas is empty")
    backend_name = choose_backend(config)
    state = create_run(plan, backend_name, command="run")
    return await _execute(plan, state, backend_name, progress)


def _plan_from_run(state: RunState, updates: dict[str, Any] | None = None) -> tuple[RunPlan, str]:
    """The plan a run folder was started with, from its snapshot of inputs and settings."""
    run_dir = state.store.run_dir
    settings = dict(state.data["settings"])
    settings.update(updates or {})
    try:
        config = RunConfig.model_validate(settings)
    except ValueError as exc:
        raise RunStateError(state.store.run_file, f"damaged settings: {exc}") from None
    personas = [run_dir / INPUTS / "personas" / f"{pid}.yaml" for pid in state.data["inputs"]["personas"]]
    return load_plan(config, personas), str(state.data["backend"])


async def resume(run_dir: Path, *, concurrency: int | None, progress: bool | None) -> int:
    state = load_state(run_dir)
    if state.data.get("status") == "complete":
        raise RunStateError(run_dir, "run is already complete; nothing to resume")
    plan, backend_name = _plan_from_run(state, {"concurrency": concurrency} if concurrency else None)
    for sessions in state.data["sessions"].values():
        for entry in sessions.values():
            if entry.get("status") == "running":
                entry["status"] = "interrupted"
    state.data["status"] = "running"
    state.data["resumes"].append(now())
    state.save()
    return await _execute(plan, state, backend_name, progress)


async def replay(
    run_dir: Path,
    persona_id: str,
    session_number: int,
    config_file: Path | None,
    flags: dict[str, Any],
    *,
    progress: bool | None,
) -> int:
    source = load_state(run_dir)
    if persona_id not in source.data["inputs"]["personas"]:
        known = ", ".join(sorted(source.data["inputs"]["personas"]))
        raise InputError("--persona", f"no persona {persona_id!r} in {run_dir} (it has: {known})")
    settings = dict(source.data["settings"])
    previous, origin = _summary_before(source, persona_id, session_number)
    for key in ("run_id", "previous_summary", "shard", "cache"):
        settings.pop(key, None)
    file_settings = load_mapping(config_file, "config file") if config_file is not None else {}
    given = {k: v for k, v in flags.items() if v is not None}
    merged = {
        **settings,
        **file_settings,
        **given,
        "start": session_number,
        "sessions": given.get("sessions", 1),
    }
    config = load_config(None, merged)
    plan = load_plan(config, [run_dir / INPUTS / "personas" / f"{persona_id}.yaml"])
    plan.first_summary = previous
    backend_name = choose_backend(config) if "backend" in given else str(source.data["backend"])
    branched = {
        "run_dir": str(run_dir),
        "run_id": source.data["run_id"],
        "persona": persona_id,
        "session": session_number,
        "previous_summary_from": origin,
    }
    state = create_run(plan, backend_name, command="replay", branched_from=branched)
    return await _execute(plan, state, backend_name, progress)


def _summary_before(source: RunState, persona_id: str, number: int) -> tuple[str | None, str | None]:
    """The summary that opened (or would open) session ``number`` in the source run."""
    start = int(source.data["settings"].get("start", 1))
    if number < start:
        raise InputError(
            "--session", f"the source run starts at session {start}; cannot replay session {number}"
        )
    if number == start:
        path = source.store.run_dir / INPUTS / "previous_summary.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8").strip(), str(path.relative_to(source.store.run_dir))
        return None, None
    store: RunStore = source.store
    if not store.is_complete(persona_id, number - 1):
        raise InputError(
            "--session", f"session {number - 1} of {persona_id} is not complete in {source.store.run_dir}"
        )
    record = store.read_session(persona_id, number - 1)
    path = store.session_path(persona_id, number - 1, ".json")
    return record.summary, str(path.relative_to(store.run_dir))


def validate(paths: list[Path]) -> str:
    """Check every persona, config and template under ``paths``; report all problems at once."""
    problems: list[InputError] = []
    personas: list[LoadedPersona] = []
    template_dirs: list[Path] = []
    count = {"personas": 0, "configs": 0, "templates": 0}
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            if any(path.glob("*.j2")):
                template_dirs.append(path)
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.suffix == ".j2":
            template_dirs.append(path.parent)
        elif path.exists():
            files.append(path)
        else:
            problems.append(InputError(path, "no such file or directory"))
    for file in files:
        try:
            data = load_mapping(file, "file")
            if "role" in data:
                personas.append(load_persona(file))
                count["personas"] += 1
            else:
                load_config(file, {})
                count["configs"] += 1
        except InputError as exc:
            problems.extend(exc.errors if isinstance(exc, InputErrors) else [exc])
    patients = [p for p in personas if p.persona.__class__.__name__ == "Patient"]
    therapists = [p for p in personas if p.persona.__class__.__name__ == "Therapist"]
    try:
        therapist = therapists[0] if therapists else load_persona(default_therapist_path())
    except InputError as exc:
        problems.append(exc)
        therapist = None
    for directory in dict.fromkeys(template_dirs):
        templates = Templates(directory)
        count["templates"] += sum(1 for name in TEMPLATE_NAMES if (directory / name).is_file())
        if therapist is None:
            continue
        try:
            check_templates(
                templates,
                patients
                or [load_persona(Path(str(default_therapist_path().parent / "marcus_thompson.yaml")))],
                therapist,
            )
        except InputError as exc:
            problems.extend(exc.errors if isinstance(exc, InputErrors) else [exc])
    if problems:
        raise InputErrors(problems) if len(problems) > 1 else problems[0]
    return f"ok: {count['personas']} personas, {count['configs']} configs, {count['templates']} templates checked"
