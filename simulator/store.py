"""The one writer: run folders, session files and run.json, every file written atomically.

A file under a final name is always whole: it is written to a temporary file in the same
folder, flushed to disk, then renamed over the final name. Completed sessions are never
rewritten; sessions that did not complete are kept under ``.partial`` names. The session's
``.json`` is written last, so its presence under the final name is what marks completion: a
process killed at any instant leaves a folder that ``resume`` can read.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.errors import InputError, RunStateError, StorageError
from simulator.layout import LOCK_FILE, PARTIAL, RUN_FILE, session_stem
from simulator.personas import id_problem
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
DIR_MODE = 0o777 & ~_UMASK
"""What ``mkdir()`` would have made; ``mkdtemp`` makes 0700."""

TMP_SUFFIX = ".tmp"
REDACTED = "[REDACTED]"
MIN_SECRET = 8
"""Shorter "secrets" (placeholders like ``EMPTY``) are not redacted: they would mangle text."""


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


@contextmanager
def on_disk(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` on the run folder (disk full, read-only, a file where a folder
    should be, ...) into a :class:`StorageError` naming the path."""
    try:
        yield
    except OSError as exc:
        raise StorageError(Path(exc.filename) if exc.filename else path, _reason(exc)) from None


def _reason(exc: OSError) -> str:
    hints = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.ENOTDIR: "a path component is a file, not a folder",
        errno.EEXIST: "already exists",
    }
    return hints.get(exc.errno or 0) or exc.strerror or str(exc)


@contextmanager
def new_folder(
    final: Path, what: str = "run folder", hint: str = "choose another name, or `simulator resume` it"
) -> Iterator[Path]:
    """Build a folder under a unique hidden name beside ``final`` and rename it into place
    when the block ends, so ``final`` exists whole or not at all. Two processes racing for
    the same name: one wins, the other gets an :class:`InputError` and leaves nothing behind.
    Any ``OSError`` while creating it is an :class:`InputError` naming the path."""
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(parent, f"is a file, not a folder: cannot make the {what} {final.name} in it")
    if final.exists():
        raise InputError(final, f"{what} already exists: {hint}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".creating", dir=parent))
        os.chmod(tmp, DIR_MODE)
    except OSError as exc:
        raise InputError(parent, _reason(exc)) from None
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or final.exists():
                raise InputError(final, f"{what} already exists (another process created it)") from None
            raise InputError(Path(exc.filename) if exc.filename else final, _reason(exc)) from None
        if isinstance(exc, StorageError):
            raise InputError(exc.path, exc.reason) from None
        raise


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


class RunStore:
    """Files of one run folder."""

    def __init__(self, run_dir: Path, secrets: Sequence[str] = ()) -> None:
        self.run_dir = run_dir
        self.secrets = tuple(secrets)

    @property
    def run_file(self) -> Path:
        return self.run_dir / RUN_FILE

    def session_path(self, persona_id: str, number: int, suffix: str, *, partial: bool = False) -> Path:
        """Where a session's file goes; the persona id must be one (so the path stays inside)."""
        problem = id_problem(persona_id)
        if problem is not None:
            raise RunStateError(self.run_dir, f"refusing a path for persona {persona_id!r}: {problem}")
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
        with on_disk(data):
            atomic_write(txt, self.redact(format_transcript(record)))
            dumped = record.model_dump(mode="json", exclude=None if record.attempts else {"attempts"})
            atomic_write(data, self.redact(to_json(dumped)))
        if complete:
            self.drop_partial(record.persona_id, record.session_number)
        return data

    def drop_partial(self, persona_id: str, number: int) -> None:
        for suffix in (".txt", ".json"):
            path = self.session_path(persona_id, number, suffix, partial=True)
            with on_disk(path):
                path.unlink(missing_ok=True)

    def read_session(self, persona_id: str, number: int, *, partial: bool = False) -> SessionRecord:
        path = self.session_path(persona_id, number, ".json", partial=partial)
        try:
            return SessionRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunStateError(path, "session not found (not completed in this run)") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problem = f"{where}: {first['msg']}" if where else first["msg"]
            raise RunStateError(path, f"damaged session record: {problem}") from None
        except ValueError as exc:  # not UTF-8
            raise RunStateError(path, f"damaged session record: {exc}") from None
        except OSError as exc:
            raise RunStateError(path, f"cannot read the session record: {_reason(exc)}") from None

    def write_input(self, path: Path, text: str) -> None:
        """One file of the run's input snapshot (see :mod:`simulator.layout` for where)."""
        with on_disk(path):
            atomic_write(path, text, sync=False)

    def write_run(self, data: dict[str, Any]) -> None:
        with on_disk(self.run_file):
            atomic_write(self.run_file, self.redact(to_json(data)), sync=False)

    def read_run(self) -> dict[str, Any]:
        if not self.run_dir.is_dir():
            raise RunStateError(self.run_dir, "not a run folder (not a directory)")
        try:
            data = json.loads(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunStateError(self.run_dir, "not a run folder (no run.json)") from None
        except ValueError as exc:
            raise RunStateError(self.run_file, f"damaged run.json: {exc}") from None
        except OSError as exc:
            raise RunStateError(self.run_file, f"cannot read run.json: {_reason(exc)}") from None
        if not isinstance(data, dict):
            raise RunStateError(self.run_file, "damaged run.json: not an object")
        return data

    def remove_temporaries(self) -> int:
        """Delete the temporary files a killed process left behind; returns how many."""
        removed = 0
        with on_disk(self.run_dir):
            for folder in (self.run_dir, *(p for p in self.run_dir.iterdir() if p.is_dir())):
                for path in folder.glob(f".*{TMP_SUFFIX}"):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def temporaries(self) -> list[Path]:
        """Temporary files a killed process left behind (what :meth:`remove_temporaries` takes)."""
        folders = (self.run_dir, *(p for p in self.run_dir.iterdir() if p.is_dir()))
        return [path for folder in folders for path in folder.glob(f".*{TMP_SUFFIX}")]

    def check_no_links(self) -> None:
        """Refuse a run folder with a symbolic link inside it: resume writes and deletes files
        there, and must never do so outside the folder. (The folder itself may be a link.)"""
        pending = [self.run_dir]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        raise RunStateError(
                            entry.path, "a symbolic link inside the run folder; refusing to follow it"
                        )
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))

    @contextmanager
    def lock(self) -> Iterator[str | None]:
        """Hold the run folder for this process, so two processes never write the same run.

        An advisory ``flock`` on ``.lock``: the kernel drops it when the holder dies, so a
        ``resume`` after SIGKILL is never refused by a stale lock. Yields what a stale lock
        file said (``pid N`` of a process that was killed) so the caller can note the takeover,
        else ``None``. The file is removed when the block ends.
        """
        if fcntl is None:  # pragma: no cover
            yield None
            return
        path = self.run_dir / LOCK_FILE
        with on_disk(path):
            handle, stale = _acquire(path, self.run_dir)
        try:
            yield stale
        finally:
            try:
                if _same_file(path, handle.fileno()):
                    path.unlink()
            except OSError:
                pass  # read-only by now, or gone: the flock still ends with the process
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced: a reply that echoes the API key must not put it
    in a file. Secrets shorter than :data:`MIN_SECRET` (placeholders) are left alone."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, REDACTED)
    return text


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _acquire(path: Path, run_dir: Path) -> tuple[Any, str | None]:
    """Open and ``flock`` the lock file; retry when another process removed the file in
    between (then the lock we got is on a file nobody else will open)."""
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunStateError(run_dir, f"run folder is in use by {holder}; wait for it to end") from None
        except BaseException:
            handle.close()
            raise
        if not _same_file(path, handle.fileno()):
            handle.close()
            continue
        handle.seek(0)
        stale = handle.read().strip() or None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        return handle, stale
