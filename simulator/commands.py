"""The commands as library calls: ``run``, ``resume``, ``replay``, ``merge``, ``validate``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from simulator.backends import announce, choose_backend, kind, make_backend
from simulator.config import ROLES, RunConfig, env_base_url, load_config, no_model_message
from simulator.errors import InputError, InputErrors, RunStateError
from simulator.executors import make_runner, prepare_executor
from simulator.layout import new_run_id, persona_file, summary_file
from simulator.personas import LoadedPersona, Patient, Therapist, load_persona
from simulator.plan import RunPlan, check_templates, default_therapist_path, load_plan
from simulator.progress import attach_progress
from simulator.protocol import ChatBackend
from simulator.reader import Run, read_run
from simulator.session import now
from simulator.shards import merge_runs, select_shard, shard_record
from simulator.state import Listener, RunState, create_run, load_state, snapshot_settings
from simulator.store import RunStore
from simulator.templates import TEMPLATE_NAMES, Templates
from simulator.yamlfile import load_mapping

REPLAY_NOT_INHERITED = (
    "run_id",
    "previous_summary",
    "shard",
    "cache",
    "start",
    "sessions",
    "executor",
    "workers",
    "ray_address",
)
"""Source-run settings a replay does not take over: it is a new run of other sessions (run
locally unless its own flags say otherwise)."""


log = logging.getLogger(__name__)


def _say(line: str) -> None:
    log.warning(line)


async def _execute(
    plan: RunPlan,
    state: RunState,
    backend: ChatBackend,
    *,
    progress: bool | None,
    listeners: Iterable[Listener],
    owned: bool,
    quiet: bool = False,
) -> int:
    """Run the plan's pending sessions into ``state``'s folder; close the backend if we made it.
    The progress display (live or log lines on stderr) is the commands'; ``quiet`` runs
    without one (the library API, which never prints).

    Cancelled (the CLI cancels on Ctrl-C), the sessions in flight are written as interrupted
    and the cancellation goes on up.
    """
    runner = make_runner(plan, backend, state, owned=owned)
    state.listeners.extend(listeners)
    display = nullcontext() if quiet else attach_progress(state, plan.config, enabled=progress)
    try:
        with display:
            return await runner.run()
    finally:
        if owned:
            await backend.aclose()


@contextmanager
def _locked(state: RunState) -> Iterator[None]:
    """Hold the run folder's lock, saying so when it takes over one a killed process left."""
    with state.store.lock() as stale:
        if stale is not None:
            _say(f"{state.store.run_dir}: taking over a stale lock ({stale} no longer holds it)")
        yield


def _check_models(config: RunConfig, backend_name: str) -> None:
    """An endpoint needs a model name for every role: say so before a run folder exists."""
    if not kind(backend_name).needs_models:
        return
    missing = [role for role in ROLES if not config.role(role).model]
    if missing:
        raise InputError("--model", no_model_message(missing))


def _pin_endpoint(config: RunConfig, backend_name: str) -> RunConfig:
    """Save the endpoint that $OPENAI_BASE_URL chose in the settings, so resume reaches the
    same server whatever the environment says then (never a URL with credentials in it)."""
    env_url = env_base_url()
    if backend_name != "openai" or config.base_url is not None or env_url is None:
        return config
    return config.model_copy(update={"base_url": env_url})


async def _start(
    plan: RunPlan,
    backend_name: str,
    backend: ChatBackend | None,
    progress: bool | None,
    listeners: Iterable[Listener],
    quiet: bool = False,
    **create: Any,
) -> int:
    """Build the backend first (so a bad setting leaves no folder), then create and run."""
    driver = prepare_executor(plan.config)
    owned = backend is None
    chat = backend if backend is not None else make_backend(driver, backend_name, plan.cast())
    try:
        state = create_run(plan, backend_name, **create)
    except BaseException:
        if owned:
            await chat.aclose()
        raise
    with _locked(state):
        return await _execute(
            plan, state, chat, progress=progress, listeners=listeners, owned=owned, quiet=quiet
        )


async def run(
    personas: list[Path],
    config_file: Path | None,
    flags: dict[str, Any],
    *,
    progress: bool | None,
    backend: ChatBackend | None = None,
    listeners: Iterable[Listener] = (),
) -> int:
    """``simulator run``. ``backend`` replaces the configured one (tests, embedding);
    ``listeners`` hear every session start and end."""
    config = load_config(config_file, flags)
    if config.start > 1 and config.previous_summary is None:
        raise InputError(
            "--start", f"--start {config.start} needs --previous-summary FILE (the summary that opens it)"
        )
    plan = load_plan(config, personas)
    shard = config.shard_parts()
    everyone = [p.persona.key for p in plan.patients]
    plan.patients = select_shard(plan.patients, shard)
    if not plan.patients:
        raise InputError("--shard", f"shard {config.shard} of {len(everyone)} personas is empty")
    extra = {"shard": shard_record(shard, everyone)} if shard is not None else None
    code, _ = await _run_plan(plan, backend, progress, listeners, extra)
    return code


async def _run_plan(
    plan: RunPlan,
    backend: ChatBackend | None,
    progress: bool | None,
    listeners: Iterable[Listener],
    extra: dict[str, Any] | None = None,
    *,
    quiet: bool = False,
) -> tuple[int, Path]:
    """Choose and check the backend, then create and run the plan's run folder."""
    config = plan.config
    if config.run_id is None:
        config = config.model_copy(update={"run_id": new_run_id()})
    backend_name = backend.name if backend is not None else choose_backend(config)
    _check_models(config, backend_name)
    plan.config = _pin_endpoint(config, backend_name)
    code = await _start(
        plan, backend_name, backend, progress, listeners, quiet=quiet, command="run", extra=extra
    )
    return code, config.out / str(config.run_id)


async def run_series(
    plan: RunPlan, *, backend: ChatBackend | None = None, listeners: Iterable[Listener] = ()
) -> Run:
    """Run every session of ``plan`` into a new run folder and read it back: the library's
    ``simulator run`` for notebooks. It prints nothing (notices go to the ``simulator`` logger)
    and a failed session is in the result, not an exception."""
    _, run_dir = await _run_plan(plan, backend, False, listeners, quiet=True)
    return read_run(run_dir)


def _plan_from_run(state: RunState, updates: dict[str, Any] | None = None) -> tuple[RunPlan, str]:
    """The plan a run folder was started with, from its snapshot of inputs and settings."""
    run_dir = state.store.run_dir
    settings = snapshot_settings(run_dir, state.index.settings)
    settings.update(updates or {})
    try:
        config = RunConfig.model_validate(settings)
    except ValueError as exc:
        raise RunStateError(state.store.run_file, f"damaged settings: {exc}") from None
    personas = [persona_file(run_dir, pid) for pid in state.index.inputs.personas]
    return load_plan(config, personas), state.index.backend


async def resume(
    run_dir: Path,
    *,
    concurrency: int | None,
    progress: bool | None,
    backend: ChatBackend | None = None,
    listeners: Iterable[Listener] = (),
    executor: dict[str, Any] | None = None,
) -> int:
    """``simulator resume``: run every session that is not complete, with the run's own
    settings and inputs, after a Ctrl-C, a failure or a SIGKILL alike. ``executor``: the
    ``executor`` / ``workers`` / ``ray_address`` flags given (else the run's own)."""
    state = load_state(run_dir)
    if state.settled():
        _say(f"{run_dir}: every session is complete; nothing to resume")
        return 0
    with _locked(state):
        updates = {k: v for k, v in {"concurrency": concurrency, **(executor or {})}.items() if v is not None}
        plan, backend_name = _plan_from_run(state, updates)
        state.store = RunStore(run_dir, plan.config.secrets())
        for change in state.reconcile():
            _say(change)
        if all(entry.status == "complete" for _, _, entry in state.entries()):
            if state.index.status != "complete":
                state.finish("complete", plan.config)
            _say(f"{run_dir}: every session is complete; nothing to resume")
            return 0
        driver = prepare_executor(plan.config)
        if backend is None:
            announce(backend_name)
        owned = backend is None
        chat = backend if backend is not None else make_backend(driver, backend_name, plan.cast())
        state.index.status = "running"
        state.index.ended_at = None
        state.index.resumes = [*state.index.resumes, now()]
        state.save(force=True)
        return await _execute(plan, state, chat, progress=progress, listeners=listeners, owned=owned)


async def replay(
    run_dir: Path,
    persona_id: str,
    session_number: int,
    config_file: Path | None,
    flags: dict[str, Any],
    *,
    progress: bool | None,
    backend: ChatBackend | None = None,
    listeners: Iterable[Listener] = (),
) -> int:
    """``simulator replay``: a new run of ``persona_id`` from session ``session_number`` on,
    opened with the summary session K-1 left in ``run_dir``, with any setting changed."""
    source = load_state(run_dir)
    if persona_id not in source.index.inputs.personas:
        known = ", ".join(sorted(source.index.inputs.personas))
        raise InputError("--persona", f"no persona {persona_id!r} in {run_dir} (it has: {known})")
    previous, origin = _summary_before(source, persona_id, session_number)
    inherited = snapshot_settings(run_dir, source.index.settings)
    for key in REPLAY_NOT_INHERITED:
        inherited.pop(key, None)
    from_file = (
        load_config(config_file, {}).model_dump(mode="json", exclude_unset=True)
        if config_file is not None
        else {}
    )
    base = {"sessions": 1, **inherited, **from_file, "start": session_number}
    config = load_config(None, flags, settings=base)
    plan = load_plan(config, [persona_file(run_dir, persona_id)])
    plan.first_summary = previous
    if backend is not None:
        backend_name = backend.name
    elif config.backend is not None:
        backend_name = choose_backend(config)
    else:
        backend_name = source.index.backend
        announce(backend_name)
    _check_models(config, backend_name)
    plan.config = _pin_endpoint(config, backend_name)
    source_settings = source.index.settings
    changed = sorted(
        key
        for key, value in plan.config.model_dump(mode="json").items()
        if key not in (*REPLAY_NOT_INHERITED, "therapist", "prompts", "out")
        and source_settings.get(key) != value
    )
    branched = {
        "run_dir": str(run_dir),
        "run_id": source.index.run_id,
        "persona": persona_id,
        "session": session_number,
        "previous_summary_from": origin,
        "changed_settings": changed,
        "backend": source.index.backend,
    }
    return await _start(
        plan, backend_name, backend, progress, listeners, command="replay", branched_from=branched
    )


def _summary_before(source: RunState, persona_id: str, number: int) -> tuple[str | None, str | None]:
    """The summary that opened (or would open) session ``number`` in the source run."""
    start = int(source.index.settings.get("start", 1))
    if number < start:
        raise InputError(
            "--session", f"the source run starts at session {start}; cannot replay session {number}"
        )
    if number == start:
        path = summary_file(source.store.run_dir)
        if path.is_file():
            return path.read_text(encoding="utf-8").strip(), path.relative_to(source.store.run_dir).as_posix()
        return None, None
    store: RunStore = source.store
    if not store.is_complete(persona_id, number - 1):
        raise InputError(
            "--session", f"session {number - 1} of {persona_id} is not complete in {source.store.run_dir}"
        )
    record = store.read_session(persona_id, number - 1)
    path = store.session_path(persona_id, number - 1, ".json")
    return record.summary, path.relative_to(store.run_dir).as_posix()


def merge(run_dirs: list[Path], into: Path) -> str:
    """``simulator merge``: shard run folders into one run folder; returns the report line."""
    state = merge_runs(run_dirs, into)
    totals = state.index.totals
    return (
        f"merged {len(run_dirs)} run folders into {into}: {len(state.index.sessions)} personas, "
        f"{totals.get('complete', 0)}/{totals['sessions']} sessions complete (status {state.index.status})"
    )


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
            problems.append(exc)
    patients = [p for p in personas if isinstance(p.persona, Patient)]
    therapists = [p for p in personas if isinstance(p.persona, Therapist)]
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
            # Templates alone are rendered for the bundled Marcus, so their branches still run.
            sample = [load_persona(default_therapist_path().with_name("marcus_thompson.yaml"))]
            check_templates(templates, patients or sample, therapist)
        except InputError as exc:
            problems.append(exc)
    InputErrors.raise_if_any(problems)
    return f"ok: {count['personas']} personas, {count['configs']} configs, {count['templates']} templates checked"
