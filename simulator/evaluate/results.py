"""eval.json read back, defensively: the one reader of ``RUN_DIR/eval/*/eval.json`` for the
run page (``simulator view``) and the dataset card and ``--min-score`` (``simulator export``).

``simulator evaluate`` writes those files. The evaluation shown is the newest one (by
modification time) that has judge scores, else the newest, so a later metrics-only evaluation
never hides a judged one. It reads only these fields, tolerating any other shape:

- ``status``, ``judge.model``, ``judge.repeats``, ``skipped`` (sessions not evaluated);
- ``summary.items[RUBRIC][ITEM]``: ``mean``, ``ci95`` (``[low, high]``), ``n``, ``label``,
  ``unsupported_evidence``, ``judge_failed`` and ``agreement.krippendorff_alpha_interval``,
  one row per rubric item;
- ``summary.metrics[NAME]``: ``mean``, ``ci95`` and ``n`` of each model-free metric
  (``natural_end_share``, ``therapist_question_share``, ...);
- when ``summary`` lacks them, per session ``scores[RUBRIC][ITEM]`` (a number, or an object
  with a numeric ``score``) and ``natural_end`` / ``therapist_question_share``, averaged here;
- per session ``persona_id``, ``session_number`` and ``scores[RUBRIC][ITEM]``: each session's
  scores (``--min-score``).

A value that is not a finite number is skipped; a file that cannot be read becomes a note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.evaluate.metrics import METRIC_NAMES
from simulator.layout import EVAL_DIR, EVAL_FILE


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
    alpha: float | None = None
    """Krippendorff's alpha over the judge's repeats (None with one repeat)."""
    unsupported: int = 0
    failed: int = 0

    @property
    def title(self) -> str:
        """What the row is called on the page: a metric by its name, an item as rubric · item."""
        if self.group == "metric":
            return METRIC_NAMES.get(self.name, self.name)
        return f"{self.group} · {self.name}"


@dataclass
class EvalOverview:
    """The evaluation of a run the overview shows."""

    eval_id: str
    items: list[Score] = field(default_factory=list)
    metrics: list[Score] = field(default_factory=list)
    sessions: int = 0
    notes: list[str] = field(default_factory=list)
    status: str | None = None
    judge: str | None = None
    """The judge model and its repeats, when a judge scored this evaluation."""
    skipped: int = 0
    """Sessions of the run that were not complete, so not evaluated."""
    session_scores: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    """(persona id, session number) -> ``RUBRIC.ITEM`` -> score."""
    unreadable: str | None = None
    """Why the file could not be read (then nothing else is set)."""


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def as_mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _summary_score(group: str, name: str, entry: Any) -> Score | None:
    """A row from a summary entry ``{mean, ci95, n, label}``."""
    entry = as_mapping(entry)
    mean = _number(entry.get("mean"))
    if mean is None:
        return None
    ci = entry.get("ci95")
    low, high = (_number(ci[0]), _number(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
    label = entry.get("label")
    return Score(
        group,
        name,
        mean,
        _count(entry.get("n")),
        low,
        high,
        label if isinstance(label, str) else None,
        alpha=_number(as_mapping(entry.get("agreement")).get("krippendorff_alpha_interval")),
        unsupported=_count(entry.get("unsupported_evidence")),
        failed=_count(entry.get("judge_failed")),
    )


def _averaged(group_values: dict[tuple[str, str], list[float]]) -> list[Score]:
    return [
        Score(group, name, sum(values) / len(values), len(values))
        for (group, name), values in sorted(group_values.items())
        if values
    ]


def _scores(session: dict[str, Any]) -> dict[tuple[str, str], float]:
    """A session's ``scores[RUBRIC][ITEM]``: (rubric, item) -> score."""
    found: dict[tuple[str, str], float] = {}
    for rubric, items in as_mapping(session.get("scores")).items():
        for item, score in as_mapping(items).items():
            if (value := _number(score)) is not None:
                found[(str(rubric), str(item))] = value
    return found


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
        for key, value in _scores(session).items():
            scores.setdefault(key, []).append(value)
    return _averaged(scores), _averaged(metrics)


def _session_scores(sessions: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, float]]:
    """(persona id, session number) -> ``RUBRIC.ITEM`` -> score, for sessions that name both."""
    found: dict[tuple[str, int], dict[str, float]] = {}
    for session in sessions:
        persona, number = session.get("persona_id"), session.get("session_number")
        if isinstance(persona, str) and isinstance(number, int) and not isinstance(number, bool):
            found[(persona, number)] = {f"{r}.{i}": v for (r, i), v in _scores(session).items()}
    return found


def summarize_eval(eval_id: str, data: Any) -> EvalOverview:
    """The rows of one ``eval.json``."""
    view = EvalOverview(eval_id)
    if not isinstance(data, dict):
        view.unreadable = "not a JSON object"
        view.notes.append(f"{eval_id}/{EVAL_FILE}: {view.unreadable}")
        return view
    listed = data.get("sessions")
    sessions = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
    summary = as_mapping(data.get("summary"))
    view.sessions = len(sessions)
    status, judge = data.get("status"), as_mapping(data.get("judge"))
    view.status = status if isinstance(status, str) else None
    skipped = data.get("skipped")
    view.skipped = len(skipped) if isinstance(skipped, list) else 0
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
    view.session_scores = _session_scores(sessions)
    items, metrics = _from_sessions(sessions)
    view.items = view.items or items
    view.metrics = view.metrics or metrics
    model, repeats = judge.get("model"), _count(judge.get("repeats"))
    if view.items and isinstance(model, str):
        view.judge = model + (f", {repeats} repeats" if repeats > 1 else "")
    return view


def read_eval(path: Path) -> EvalOverview:
    """One ``eval.json``; a file that cannot be read gives an overview with ``unreadable`` set."""
    eval_id = path.parent.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        view = EvalOverview(eval_id, unreadable=f"unreadable ({exc})")
        view.notes.append(f"{eval_id}/{EVAL_FILE}: {view.unreadable}")
        return view
    return summarize_eval(eval_id, data)


def read_evals(run_dir: Path) -> EvalOverview | None:
    """The newest ``eval/EVAL_ID/eval.json`` with judge scores, else the newest; None when the
    run has none. Files are read newest first, only until one with judge scores is found."""
    files = sorted((run_dir / EVAL_DIR).glob(f"*/{EVAL_FILE}"), key=lambda p: (p.stat().st_mtime, p.name))
    if not files:
        return None
    newest = chosen = read_eval(files[-1])
    for path in reversed(files[:-1]):
        if chosen.items:
            break
        chosen = read_eval(path)
    if not chosen.items:
        chosen = newest
    if len(files) > 1:
        note = f"{len(files) - 1} other evaluation(s) in {EVAL_DIR}/ not shown"
        if chosen is not newest:
            note += f"; the newest, {newest.eval_id}, has no judge scores"
        chosen.notes.append(note)
    return chosen
