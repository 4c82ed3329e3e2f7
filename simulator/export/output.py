"""Atomic output: everything is written under a temporary name beside ``--out``, synced, and
only then moved into place, so an interrupted export leaves the old output or none, never half.

An existing ``--out`` is refused without ``--force``; with it, only a file, or a folder that
holds nothing but what an export writes, is replaced (never a run folder or a tree).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from simulator.errors import InputError
from simulator.store import FILE_MODE

EXPORT_SUFFIXES = (".jsonl", ".parquet", ".md")
DIR_MODE = FILE_MODE | ((FILE_MODE & 0o444) >> 2)
"""Directories get search permission wherever files get read permission."""


def check_out(out: Path, *, force: bool, run_dirs: Sequence[Path]) -> None:
    """Refuse an ``--out`` that exists (without ``--force``) or that export must not replace."""
    resolved = out.resolve()
    for run_dir in run_dirs:
        run = run_dir.resolve()
        if resolved == run or run in resolved.parents or resolved in run.parents:
            raise InputError(out, f"--out overlaps the run folder {run_dir}")
    if not out.exists() and not out.is_symlink():
        if out.parent.exists() and not out.parent.is_dir():
            raise InputError(out, f"--out: {out.parent} is not a folder")
        return
    if not force:
        raise InputError(out, "already exists; pass --force to replace it")
    if out.is_dir() and not out.is_symlink():
        strays = [p.name for p in out.iterdir() if p.is_dir() or p.suffix not in EXPORT_SUFFIXES]
        if strays:
            raise InputError(out, f"not an export folder (it holds {strays[0]!r}); refusing to replace it")


@contextmanager
def staged(out: Path, *, folder: bool) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; on success its content (the folder,
    or its single file) replaces ``out``; on failure it is removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(stage, DIR_MODE)
        yield stage
        for path in stage.iterdir():
            os.chmod(path, FILE_MODE)
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if folder:
            _replace(stage, out)
        else:
            (single,) = stage.iterdir()
            _replace(single, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _replace(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an old folder is moved aside first and removed after."""
    if out.is_dir() and not out.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, aside / out.name)
        os.replace(new, out)
        shutil.rmtree(aside, ignore_errors=True)
        return
    if new.is_dir() and (out.exists() or out.is_symlink()):
        out.unlink()
    os.replace(new, out)
