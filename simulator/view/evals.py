"""Evaluation scores for the overview, read defensively from ``RUN_DIR/eval/*/eval.json``.

``simulator evaluate`` writes those files. The page shows the newest one (by modification
time) and reads only these fields, tolerating any other shape:

- ``summary.items[RUBRIC][ITEM]``: ``mean``, ``ci95`` (``[low, high]``), ``n`` and ``label``,
  one row per rubric item;
- ``summary.metrics[NAME]``: ``mean``, ``ci95`` and ``n`` of each model-free metric
  (``natural_end_share``, ``therapist_question_share``, ...);
- when ``summary`` lacks them, per session ``scores[RUBRIC][ITEM]`` (a number, or an object
  with a numeric ``score``) and ``natural_end`` / ``therapist_question_share``, averaged here.

A value that is not a finite number is skipped; a file that cannot be read becomes a note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVAL_DIR = "eval"
EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class Score:
    """One row of the page's score table: a rubric item or a model-free metric."""

    group: str
    name: str
    mean: float
    n: int
    low: float | None = None
    high: float | None = None
    label: str | None = None


@dataclass
class EvalOverview:
    """The newest evaluation of a run, as the overview shows it."""

    eval_id: str
    items: list[Score] = field(default_factory=list)
    metrics: list[Score] = field(default_factory=list)
    sessions: int = 0
    notes: list[str] = field(default_factory=list)


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def as_mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _summary_score(group: str, name: str, entry: Any) -> Score | None:
    """A row from a summary entry ``{mean, ci95, n, label}``."""
    entry = as_mapping(entry)
    mean = _number(entry.get("mean"))
    if mean is None:
        return None
    ci = entry.get("ci95")
    low, high = (_number(ci[0]), _number(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
    n = entry.get("n")
    label = entry.get("label")
    return Score(
        group,
        name,
        mean,
        n if isinstance(n, int) else 0,
        low,
        high,
        label if isinstance(label, str) else None,
    )


def _averaged(group_values: dict[tuple[str, str], list[float]]) -> list[Score]:
    return [
        Score(group, name, sum(values) / len(values), len(values))
        for (group, name), values in sorted(group_values.items())
        if values
    ]


def _from_sessions(sessions: list[dict[str, Any]]) -> tuple[list[Score], list[Score]]:
    """Means computed here when the summary does not give them."""
    scores: dict[tuple[str, str], list[float]] = {}
    metrics: dict[tuple[str, str], list[float]] = {}
    for session in sessions:
        if isinstance(session.get("natural_end"), bool):
            metrics.setdefault(("metric", "natural_end_share"), []).append(float(session["natural_end"]))
        share = _number(session.get("therapist_question_share"))
        if share is not None:
            metrics.setdefault(("metric", "therapist_question_share"), []).append(share)
        for rubric, items in as_mapping(session.get("scores")).items():
            for item, score in as_mapping(items).items():
                value = _number(score)
                if value is not None:
                    scores.setdefault((str(rubric), str(item)), []).append(value)
    return _averaged(scores), _averaged(metrics)


def summarize_eval(eval_id: str, data: Any) -> EvalOverview:
    """The rows of one ``eval.json``."""
    view = EvalOverview(eval_id)
    if not isinstance(data, dict):
        view.notes.append(f"{eval_id}/{EVAL_FILE}: not a JSON object")
        return view
    sessions = [s for s in data.get("sessions") or [] if isinstance(s, dict)]
    summary = as_mapping(data.get("summary"))
    view.sessions = len(sessions)
    view.items = [
        score
        for rubric, items in as_mapping(summary.get("items")).items()
        for item, entry in as_mapping(items).items()
        if (score := _summary_score(str(rubric), str(item), entry)) is not None
    ]
    view.metrics = [
        score
        for name, entry in as_mapping(summary.get("metrics")).items()
        if (score := _summary_score("metric", str(name), entry)) is not None
    ]
    items, metrics = _from_sessions(sessions)
    view.items = view.items or items
    view.metrics = view.metrics or metrics
    return view


def read_evals(run_dir: Path) -> EvalOverview | None:
    """The newest ``eval/EVAL_ID/eval.json``, or None when the run has none."""
    files = sorted((run_dir / EVAL_DIR).glob(f"*/{EVAL_FILE}"), key=lambda p: (p.stat().st_mtime, p.name))
    if not files:
        return None
    newest = files[-1]
    eval_id = newest.parent.name
    try:
        data = json.loads(newest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        view = EvalOverview(eval_id)
        view.notes.append(f"{eval_id}/{EVAL_FILE}: unreadable ({exc})")
        return view
    view = summarize_eval(eval_id, data)
    if len(files) > 1:
        view.notes.append(f"{len(files) - 1} older evaluation(s) in {EVAL_DIR}/ not shown")
    return view
