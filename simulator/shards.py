"""Splitting a persona set across machines (``--shard I/N``) and merging the run folders back.

A shard is chosen by persona id, round-robin over the sorted ids, so every machine given the
same persona files picks the same slice, whatever order or paths the files were given in.
Each shard's run.json names the whole set, so :func:`merge_runs` can check that the shards
are disjoint and cover it before it puts them together into one ordinary run folder, which
``resume`` and ``replay`` treat like any other.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from simulator.errors import InputError, RunStateError
from simulator.index import RunIndex
from simulator.layout import INPUTS, validate_run_id
from simulator.personas import LoadedPersona
from simulator.records import TokenCounts
from simulator.session import now
from simulator.state import RunState, load_state
from simulator.store import RunStore, new_folder

SHARD_FREE_SETTINGS = (
    "run_id",
    "out",
    "shard",
    "therapist",
    "prompts",
    "previous_summary",
    "concurrency",
    "base_url",
    "cache",
)
"""Settings that may differ between shards of one run: where and how fast each ran, not what it made."""


def select_shard(patients: list[LoadedPersona], shard: tuple[int, int] | None) -> list[LoadedPersona]:
    """The ``index``-th of ``total`` round-robin slices of ``patients`` sorted by persona id."""
    if shard is None:
        return patients
    index, total = shard
    ordered = sorted(patients, key=lambda p: p.persona.key)
    return [p for i, p in enumerate(ordered) if i % total == index - 1]


def shard_record(shard: tuple[int, int], everyone: list[str]) -> dict[str, Any]:
    """What run.json says about its shard: which slice, and the whole set it is a slice of."""
    index, total = shard
    return {"index": index, "of": total, "personas": sorted(everyone)}


def _differences(state: RunState, other: RunState) -> list[str]:
    """What would make two run folders not slices of one run: settings (where each ran
    aside), backend, therapist, templates."""
    mine, theirs = state.index.dump(), other.index.dump()
    settings = [
        key
        for key in sorted(mine["settings"].keys() | theirs["settings"].keys())
        if key not in SHARD_FREE_SETTINGS and mine["settings"].get(key) != theirs["settings"].get(key)
    ]
    identity = {
        "backend": (mine["backend"], theirs["backend"]),
        "therapist": (mine["inputs"]["therapist"]["digest"], theirs["inputs"]["therapist"]["digest"]),
        "templates": (mine["inputs"]["templates"], theirs["inputs"]["templates"]),
    }
    return settings + [name for name, (a, b) in identity.items() if a != b]


def _shard(state: RunState) -> dict[str, Any] | None:
    """The ``shard`` record a ``run --shard`` wrote in run.json (None for a whole run)."""
    shard = (state.index.model_extra or {}).get("shard")
    return shard if isinstance(shard, dict) else None


def _check(states: list[RunState]) -> None:
    """Refuse shards that did not come from one run command, overlap, or leave a gap."""
    owner: dict[str, Path] = {}
    for state in states:
        run_dir = state.store.run_dir
        differ = _differences(state, states[0])
        if differ:
            raise InputError(
                run_dir,
                f"not a shard of the same run as {states[0].store.run_dir}: {', '.join(differ)} differ",
            )
        for pid in state.index.sessions:
            if pid in owner:
                raise InputError(run_dir, f"persona {pid!r} is also in {owner[pid]}: shards overlap")
            owner[pid] = run_dir
    shards = [shard for shard in map(_shard, states) if shard]
    if shards and len(shards) == len(states):
        everyone = set(shards[0]["personas"])
        if any(set(s["personas"]) != everyone or s["of"] != shards[0]["of"] for s in shards):
            raise InputError(states[0].store.run_dir, "the shards were cut from different persona sets")
        missing = sorted(everyone - owner.keys())
        if missing:
            given = sorted(s["index"] for s in shards)
            raise InputError(
                "merge",
                f"shards {given} of {shards[0]['of']} leave out {', '.join(missing)}: add the missing shard folders",
            )


def _merged_data(states: list[RunState], run_dir: Path) -> dict[str, Any]:
    dumps = [s.index.dump() for s in states]
    data = {k: v for k, v in dumps[0].items() if k != "shard"}
    data = {
        **data,
        "run_id": run_dir.name,
        "command": "merge",
        "created_at": min(d["created_at"] for d in dumps),
        "started_at": min(d["started_at"] for d in dumps),
        "ended_at": now(),
        "settings": {**data["settings"], "shard": None, "run_id": run_dir.name, "out": str(run_dir.parent)},
        "sessions": {pid: e for d in dumps for pid, e in d["sessions"].items()},
        "merged_from": [
            {"run_id": s.index.run_id, "run_dir": str(s.store.run_dir), "shard": _shard(s)} for s in states
        ],
        "resumes": [],
    }
    inputs = dict(data["inputs"])
    inputs["personas"] = {pid: v for d in dumps for pid, v in d["inputs"]["personas"].items()}
    data["inputs"] = inputs
    usage: dict[str, TokenCounts] = {}
    flags: dict[str, int] = {}
    for state in states:
        for role, counts in state.usage().items():
            usage.setdefault(role, TokenCounts()).merge(counts)
        for flag, count in state.index.flags.items():
            flags[flag] = flags.get(flag, 0) + count
    data["usage"] = {role: c.model_dump() for role, c in usage.items()}
    data["flags"] = flags
    data.pop("cost_usd", None)
    statuses = {e.get("status") for sessions in data["sessions"].values() for e in sessions.values()}
    data["status"] = (
        "complete" if statuses <= {"complete"} else "failed" if "failed" in statuses else "interrupted"
    )
    return data


def merge_runs(run_dirs: list[Path], into: Path) -> RunState:
    """Put shard run folders together into the new run folder ``into``; the shards are left
    as they were. Session files are copied, not rewritten, so they stay byte-identical."""
    if len(run_dirs) < 1:
        raise InputError("merge", "give at least one run folder")
    validate_run_id(into.name)
    if into.exists():
        raise InputError(into, "already exists: choose another folder to merge into")
    states = [load_state(d) for d in run_dirs]
    _check(states)
    with new_folder(into, "merged run folder") as tmp:
        shutil.copytree(
            states[0].store.run_dir / INPUTS, tmp / INPUTS, ignore=shutil.ignore_patterns("personas")
        )
        (tmp / INPUTS / "personas").mkdir()
        for state in states:
            source = state.store.run_dir
            if state.index.status == "running":
                with state.store.lock():  # refuses while its run is still going
                    pass
            for pid in state.index.sessions:
                shutil.copy2(source / INPUTS / "personas" / f"{pid}.yaml", tmp / INPUTS / "personas")
                if (source / pid).is_dir():
                    shutil.copytree(source / pid, tmp / pid, ignore=shutil.ignore_patterns(".*"))
        data = _merged_data(states, into)
        merged = RunState(RunIndex.parse(data), RunStore(tmp))
        merged.save(force=True)
    merged.store = RunStore(into)
    if not merged.store.run_file.is_file():  # pragma: no cover - rename is atomic
        raise RunStateError(into, "merge did not complete")
    return merged
