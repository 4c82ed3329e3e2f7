"""The one writer: run folders, session files and run.json, every file written atomically.

A file under a final name is always whole: it is written to a temporary file in the same
folder, flushed to disk, then renamed over the final name. Completed sessions are never
rewritten; sessions that did not complete are kept under ``.partial`` names.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from simulator.errors import RunStateError
from simulator.records import SessionRecord
from simulator.transcript import format_transcript, session_stem

RUN_FILE = "run.json"
PARTIAL = ".partial"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
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
        atomic_write(data, to_json(record.model_dump(mode="json")))
        if complete:
            for suffix in (".txt", ".json"):
                self.session_path(record.persona_id, record.session_number, suffix, partial=True).unlink(
                    missing_ok=True
                )
        return data

    def read_session(self, persona_id: str, number: int) -> SessionRecord:
        path = self.session_path(persona_id, number, ".json")
        try:
            return SessionRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunStateError(path, "session not found (not completed in this run)") from None
        except ValueError as exc:
            raise RunStateError(path, f"damaged session record: {exc}") from None

    def write_run(self, data: dict[str, Any]) -> None:
        atomic_write(self.run_file, to_json(data))

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
