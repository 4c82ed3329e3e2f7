"""Evaluation scores for the export, read from ``RUN_DIR/eval/EVAL_ID/eval.json`` when
``simulator evaluate`` has run; a run without one simply has no scores.

Fields read (the format is ``simulator evaluate``'s, documented in the README; nothing else
is relied on, and a value of another shape is skipped):

- ``sessions[]``: ``persona_id``, ``session_number``, and ``scores``: ``{rubric: {item: S}}``
  where S is a number (or an object with a numeric ``score``), for ``--min-score``;
- ``summary.metrics[NAME]`` and ``summary.items[RUBRIC][ITEM]`` (``mean``, ``ci95``, ``n``,
  ``label``) for the dataset card, through ``simulator.view.evals.summarize_eval``, the reader
  the run page uses.

Without ``--eval EVAL_ID`` the evaluation is the newest ``eval.json`` by modification time (as
``simulator view`` picks it, so the card and the page show the same scores).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.export.options import ScoreRule
from simulator.reader import Run
from simulator.view.evals import EvalOverview, as_mapping, summarize_eval

EVAL_DIR = "eval"
EVAL_FILE = "eval.json"
EVAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""An evaluation id is a folder name: nothing that could climb out of ``RUN_DIR/eval``."""


@dataclass
class Evaluation:
    run_id: str
    eval_id: str
    path: Path
    sessions: dict[tuple[str, int], dict[str, float]]
    overview: EvalOverview
    """The summary rows, read as ``simulator view`` reads them (one reader of eval.json's summary)."""


@dataclass
class Scores:
    """Every run's evaluation, by run id."""

    evaluations: dict[str, Evaluation] = field(default_factory=dict)

    def score(self, run_id: str, persona_id: str, number: int, key: str) -> float | None:
        evaluation = self.evaluations.get(run_id)
        if evaluation is None:
            return None
        return evaluation.sessions.get((persona_id, number), {}).get(key)

    def check_rules(self, rules: tuple[ScoreRule, ...], runs: list[Run]) -> None:
        """``--min-score`` needs an evaluation and an item that some session was scored on."""
        if not rules:
            return
        missing = [run for run in runs if run.run_id not in self.evaluations]
        if missing:
            where = missing[0].path / EVAL_DIR
            raise InputError(
                where, f"--min-score needs scores: run `simulator evaluate {missing[0].path}` first"
            )
        known = sorted({key for e in self.evaluations.values() for s in e.sessions.values() for key in s})
        for rule in rules:
            if rule.key not in known:
                listed = ", ".join(known) or "none"
                raise InputError(
                    "--min-score", f"no score named {rule.key!r} in the evaluations (scored: {listed})"
                )


def load_scores(runs: list[Run], eval_id: str | None) -> Scores:
    scores = Scores()
    for run in runs:
        path = _eval_file(run, eval_id)
        if path is not None:
            scores.evaluations[run.run_id] = _read(run.run_id, path)
    return scores


def _eval_file(run: Run, eval_id: str | None) -> Path | None:
    folder = run.path / EVAL_DIR
    if eval_id is not None:
        if not EVAL_ID.fullmatch(eval_id):
            raise InputError("--eval", f"invalid evaluation id {eval_id!r}: a folder name under RUN_DIR/eval")
        path = folder / eval_id / EVAL_FILE
        if not path.is_file():
            raise InputError(path, f"--eval {eval_id}: no such evaluation in this run")
        return path
    found = [p for p in folder.glob(f"*/{EVAL_FILE}") if p.is_file()] if folder.is_dir() else []
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.parent.name), default=None)


def _read(run_id: str, path: Path) -> Evaluation:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable evaluation: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, "unreadable evaluation: not a JSON object")
    sessions: dict[tuple[str, int], dict[str, float]] = {}
    for entry in data.get("sessions") or []:
        if not isinstance(entry, dict):
            continue
        persona, number = entry.get("persona_id"), entry.get("session_number")
        if isinstance(persona, str) and isinstance(number, int):
            sessions[(persona, number)] = _session_scores(entry.get("scores"))
    eval_id = path.parent.name
    return Evaluation(run_id, eval_id, path, sessions, summarize_eval(eval_id, data))


def _session_scores(scores: Any) -> dict[str, float]:
    found: dict[str, float] = {}
    for rubric, items in as_mapping(scores).items():
        for item, value in as_mapping(items).items():
            number = _number(value.get("score") if isinstance(value, dict) else value)
            if number is not None:
                found[f"{rubric}.{item}"] = number
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
