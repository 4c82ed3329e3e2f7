"""An evaluation folder, ``RUN_DIR/eval/EVAL_ID/``: its files, written atomically.

::

    settings.json                         the resolved settings (what --resume reuses)
    inputs/rubrics/NAME.yaml, NAME.j2     the rubrics as they were when the evaluation began
    RUBRIC/PERSONA_ID/session_NN.json     one record per rubric, persona and session
    eval.json                             the report: every session, means, intervals, agreement
    .lock                                 held while a process works in the folder

A record is written once its repeats are all judged; a record whose every item was judged is
never rewritten, and ``--resume`` judges the cases that have no such record.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from simulator.errors import RunStateError
from simulator.evaluate.rubrics import Rubric
from simulator.evaluate.settings import EvalSettings
from simulator.layout import EVAL_DIR, EVAL_FILE, session_stem, validate_run_id
from simulator.personas import validate_id
from simulator.store import RunStore, atomic_write, new_folder, on_disk, to_json

SETTINGS_FILE = "settings.json"
INPUTS = "inputs"
RESERVED = frozenset({INPUTS})
"""Names a rubric cannot have: its record folder would clash with the folder's own files."""
JUDGED = "judged"


class EvalFolder:
    """The files of one evaluation."""

    def __init__(self, run_dir: Path, eval_id: str) -> None:
        self.eval_id = validate_run_id(eval_id)
        self.path = run_dir / EVAL_DIR / eval_id

    @property
    def rubrics_dir(self) -> Path:
        return self.path / INPUTS / "rubrics"

    @property
    def eval_file(self) -> Path:
        return self.path / EVAL_FILE

    def record_path(self, rubric: str, persona_id: str, number: int) -> Path:
        validate_id(persona_id, self.path)  # it becomes a folder name
        return self.path / rubric / persona_id / f"{session_stem(number)}.json"

    def create(self, settings: EvalSettings, rubrics: list[Rubric]) -> None:
        """Settings and rubric snapshot go into a hidden folder renamed into place, so an
        evaluation folder exists whole or not at all."""
        with new_folder(self.path, "evaluation folder", "choose another, or --resume it") as tmp:
            (tmp / INPUTS / "rubrics").mkdir(parents=True)
            for rubric in rubrics:
                shutil.copyfile(rubric.path, tmp / INPUTS / "rubrics" / f"{rubric.name}.yaml")
                shutil.copyfile(rubric.prompt_path, tmp / INPUTS / "rubrics" / f"{rubric.name}.j2")
            atomic_write(tmp / SETTINGS_FILE, to_json(settings.model_dump(mode="json")))

    def save_settings(self, settings: EvalSettings) -> None:
        """Replace the saved settings (a judge layout the server refused), so --resume starts
        from what works."""
        atomic_write(self.path / SETTINGS_FILE, to_json(settings.model_dump(mode="json")))

    def settings(self) -> EvalSettings:
        path = self.path / SETTINGS_FILE
        if not path.is_file():
            raise RunStateError(self.path, "not an evaluation folder (no settings.json)")
        try:
            return EvalSettings.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunStateError(path, f"damaged settings: {exc}") from None

    def read_record(self, rubric: str, persona_id: str, number: int) -> dict[str, Any] | None:
        path = self.record_path(rubric, persona_id, number)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise RunStateError(path, f"damaged evaluation record: {exc}") from None
        return data if isinstance(data, dict) else None

    def is_judged(self, rubric: str, persona_id: str, number: int) -> bool:
        record = self.read_record(rubric, persona_id, number)
        return record is not None and record.get("status") == JUDGED

    def write_record(self, record: dict[str, Any]) -> Path:
        path = self.record_path(record["rubric"], record["persona_id"], record["session_number"])
        if self.is_judged(record["rubric"], record["persona_id"], record["session_number"]):
            raise RunStateError(path, "refusing to overwrite a judged record")
        with on_disk(path):
            atomic_write(path, to_json(record))
        return path

    def write_report(self, report: dict[str, Any]) -> None:
        with on_disk(self.eval_file):
            atomic_write(self.eval_file, to_json(report))

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``.lock`` in the evaluation folder (the run folder's kind of lock)."""
        with ExitStack() as stack:
            try:
                stack.enter_context(RunStore(self.path).lock())
            except RunStateError:
                raise RunStateError(
                    self.path, "this evaluation is in use by another process; wait for it to end"
                ) from None
            yield
