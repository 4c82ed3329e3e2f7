"""The one writer: run folders, session files and run.json, every file written atomically.

A file under a final name is always whole: it is written to a temporary file in the same
folder, flushed to disk, then renamed over the final name. Completed sessions are never
rewritten; sessions that did not complete are kept under ``.partial`` names. The session's
``.json`` is written last, so its presence under the final name is what marks completion: a
process killed at any instant leaves a folder that ``resume`` can read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simulator.errors import RunStateError
from simulator.layout import LOCK_FILE, PARTIAL, RUN_FILE, session_stem
from simulator.records import SessionRecord
from simulator.transcript import format_transcript

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
"""What ``open()`` would have made; ``mkstemp`` makes 0600, too tight for shared datasets."""

TMP_SUFFIX = ".tmp"


def atomic_write(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one.

    ``sync=False`` skips the fsync: still atomic against a killed process, only a power cut
    can lose the newest version (used for run.json, which ``resume`` rebuilds from the files).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(text)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


class RunStore:
    """Files of one run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    @property
    def run_file(self) -> Path:
        return self.run_dir / RUN_FILE

    def session_path(self, persona_id: str, number: int, suffix: str, *, partial: bool = False) -> Path:
        stem = session_stem(number) + (PARTIAL if partial else "")
        return self.run_dir / persona_id / f"{stem}{suffix}"

    def is_complete(self, persona_id: str, number: int) -> bool:
        return self.session_path(persona_id, number, ".json").is_file()

    def has_partial(self, persona_id: str, number: int) -> bool:
        return self.session_path(persona_id, number, ".json", partial=True).is_file()

    def write_session(self, record: SessionRecord) -> Path:
        """Complete sessions go under final names (json last, so it marks completion);
        anything else under ``.partial`` names that a later resume replaces."""
        complete = record.status == "complete"
        if complete and self.is_complete(record.persona_id, record.session_number):
            raise RunStateError(
                self.session_path(record.persona_id, record.session_number, ".json"),
                "refusing to overwrite a completed session",
            )
        txt = self.session_path(record.persona_id, record.session_number, ".txt", partial=not complete)
        data = self.session_path(record.persona_id, record.session_number, ".json", partial=not complete)
        atomic_write(txt, format_transcript(record))
        atomic_write(
            data, to_json(record.model_dump(mode="json", exclude=None if record.attempts else {"attempts"}))
        )
        if complete:
            self.drop_partial(record.persona_id, record.session_number)
        return data

    def drop_partial(self, persona_id: str, number: int) -> None:
        for suffix in (".txt", ".json"):
            self.session_path(persona_id, number, suffix, partial=True).unlink(missing_ok=True)

    def read_session(self, persona_id: str, number: int, *, partial: bool = False) -> SessionRecord:
        path = self.session_path(persona_id, number, ".json", partial=partial)
        try:
            return SessionRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunStateError(path, "session not found (not completed in this run)") from None
        except ValueError as exc:
            raise RunStateError(path, f"damaged session record: {exc}") from None

    def write_input(self, path: Path, text: str) -> None:
        """One file of the run's input snapshot (see :mod:`simulator.layout` for where)."""
        atomic_write(path, text, sync=False)

    def write_run(self, data: dict[str, Any]) -> None:
        atomic_write(self.run_file, to_json(data), sync=False)

    def read_run(self) -> dict[str, Any]:
        try:
            data = json.loads(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunStateError(self.run_dir, "not a run folder (no run.json)") from None
        except ValueError as exc:
            raise RunStateError(self.run_file, f"damaged run.json: {exc}") from None
        if not isinstance(data, dict):
            raise RunStateError(self.run_file, "damaged run.json: not an object")
        return data

    def remove_temporaries(self) -> int:
        """Delete the temporary files a killed process left behind; returns how many."""
        removed = 0
        for folder in (self.run_dir, *(p for p in self.run_dir.iterdir() if p.is_dir())):
            for path in folder.glob(f".*{TMP_SUFFIX}"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for this process, so two processes never write the same run.

        An advisory ``flock`` on ``.lock``: the kernel drops it when the holder dies, so a
        ``resume`` after SIGKILL is never refused by a stale lock.
        """
        if fcntl is None:  # pragma: no cover
            yield
            return
        path = self.run_dir / LOCK_FILE
        with open(path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RunStateError(
                    self.run_dir, f"run folder is in use by {holder}; wait for it to end"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
