"""Evaluation scores for the overview, read defensively from ``RUN_DIR/eval/*/eval.json``.

``simulator evaluate`` writes those files; the page reads only the fields its issue fixes, and
tolerates any other shape: per session ``scores`` (or ``rubrics``) as ``{rubric: {item: score}}``
where a score is a number or an object with a numeric ``score``/``value``; ``natural_end`` and
``therapist_question_share`` per session; and from ``summary`` the ``natural_end_share`` and,
when present, an interval per item (``[lo, hi]`` under ``interval``/``ci``, or
``ci_low``/``ci_high``) found under ``summary.rubrics`` (or ``summary.items``/``summary.scores``).
Means are computed here from the session scores. A file that cannot be read becomes a note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVAL_DIR = "eval"
EVAL_FILE = "eval.json"
_SCORE_KEYS = ("scores", "rubrics")
_SUMMARY_KEYS = ("rubrics", "items", "scores")


@dataclass(frozen=True)
class ItemScore:
    rubric: str
    item: str
    mean: float
    n: int
    low: float | None = None
    high: float | None = None


@dataclass
class EvalOverview:
    """The newest evaluation of a run, as the overview shows it."""

    eval_id: str
    items: list[ItemScore] = field(default_factory=list)
    natural_end_share: float | None = None
    question_share: float | None = None
    sessions: int = 0
    notes: list[str] = field(default_factory=list)


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("score", value.get("value"))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _interval(summary: dict[str, Any], rubric: str, item: str) -> tuple[float | None, float | None]:
    for key in _SUMMARY_KEYS:
        rubrics = summary.get(key)
        items = rubrics.get(rubric) if isinstance(rubrics, dict) else None
        entry = items.get(item) if isinstance(items, dict) else None
        if isinstance(entry, dict):
            pair = entry.get("interval", entry.get("ci"))
            if isinstance(pair, list) and len(pair) == 2:
                return _number(pair[0]), _number(pair[1])
            return _number(entry.get("ci_low")), _number(entry.get("ci_high"))
    return None, None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_eval(eval_id: str, data: Any) -> EvalOverview:
    """Per rubric item means over the sessions of one ``eval.json``."""
    view = EvalOverview(eval_id)
    if not isinstance(data, dict):
        view.notes.append(f"{eval_id}/{EVAL_FILE}: not a JSON object")
        return view
    sessions = [s for s in data.get("sessions") or [] if isinstance(s, dict)]
    summary = _mapping(data.get("summary"))
    view.sessions = len(sessions)
    scores: dict[tuple[str, str], list[float]] = {}
    ends: list[float] = []
    questions: list[float] = []
    for session in sessions:
        if isinstance(session.get("natural_end"), bool):
            ends.append(float(session["natural_end"]))
        share = _number(session.get("therapist_question_share"))
        if share is not None:
            questions.append(share)
        for key in _SCORE_KEYS:
            rubrics = session.get(key)
            if not isinstance(rubrics, dict):
                continue
            for rubric, items in rubrics.items():
                for item, score in items.items() if isinstance(items, dict) else []:
                    value = _number(score)
                    if value is not None:
                        scores.setdefault((str(rubric), str(item)), []).append(value)
    for (rubric, item), values in sorted(scores.items()):
        low, high = _interval(summary, rubric, item)
        view.items.append(ItemScore(rubric, item, sum(values) / len(values), len(values), low, high))
    view.natural_end_share = _number(summary.get("natural_end_share"))
    if view.natural_end_share is None:
        view.natural_end_share = _mean(ends)
    view.question_share = _mean(questions)
    return view


def read_evals(run_dir: Path) -> EvalOverview | None:
    """The newest ``eval/EVAL_ID/eval.json`` (by modification time), or None when there is none."""
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
        view.notes.append(f"{len(files) - 1} older evaluation(s) not shown")
    return view
