"""Where things live in a run folder, and what a run id may be: the one place that spells
out the folder layout (the store writes there, the reader and commands read there)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from simulator.errors import InputError

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
PARTIAL = ".partial"
INPUTS = "inputs"
"""The run folder's snapshot of what it was built from (personas, therapist, templates)."""
EVAL_DIR = "eval"
"""Evaluations of the run, one folder each (``eval/EVAL_ID/``)."""
EVAL_FILE = "eval.json"
"""An evaluation's report, in its folder."""
RESERVED_NAMES = frozenset({INPUTS, EVAL_DIR, "report.html", RUN_FILE})
"""Names a run folder uses for itself: a persona folder must never collide with them."""
RUN_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def run_id_problem(run_id: str) -> str | None:
    """What is wrong with ``run_id`` as a folder name (``None`` when nothing is)."""
    if (
        run_id
        and not run_id.startswith(".")
        and len(run_id) <= 128
        and all(c in RUN_ID_CHARS for c in run_id)
    ):
        return None
    return f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', not starting with '.'"


def validate_run_id(run_id: str) -> str:
    """A run id becomes a folder name: nothing that could escape ``--out`` or hide."""
    problem = run_id_problem(run_id)
    if problem is not None:
        raise InputError("--run-id", problem)
    return run_id


def session_stem(number: int) -> str:
    """``session_08``, ``session_12``, ``session_123``."""
    return f"session_{number:02d}"


def persona_file(run_dir: Path, persona_id: str) -> Path:
    """The snapshot of a patient persona the run was started with."""
    return run_dir / INPUTS / "personas" / f"{persona_id}.yaml"


def therapist_file(run_dir: Path) -> Path:
    return run_dir / INPUTS / "therapist.yaml"


def prompts_dir(run_dir: Path) -> Path:
    return run_dir / INPUTS / "prompts"


def summary_file(run_dir: Path) -> Path:
    """The summary that opened the run's first session, when one was given."""
    return run_dir / INPUTS / "previous_summary.txt"
