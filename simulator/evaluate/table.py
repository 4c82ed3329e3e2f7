"""The terminal view of eval.json: model-free metrics, then one row per rubric item."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from simulator.evaluate.answers import JUDGE_FAILED, UNSUPPORTED_EVIDENCE

METRIC_NAMES = {
    "natural_end_share": "sessions ended naturally",
    "messages": "messages per session",
    "therapist_question_share": "therapist messages with a question",
    "therapist_words_per_turn": "therapist words per turn",
    "patient_words_per_turn": "patient words per turn",
    "talk_ratio": "therapist/patient words",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "guard_flags": "guard repairs per session",
}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


def report_view(report: dict[str, Any]) -> RenderableType:
    summary = report["summary"]
    metrics = Table(
        title=f"evaluation {report['eval_id']}: {summary['sessions']} sessions", title_justify="left"
    )
    for column in ("model-free metric", "mean", "95% CI", "n"):
        metrics.add_column(column, justify="left" if column.startswith("model") else "right")
    for name, label in METRIC_NAMES.items():
        cell = summary["metrics"][name]
        metrics.add_row(label, _number(cell["mean"]), _ci(cell["ci95"]), str(cell["n"]))
    parts: list[RenderableType] = [metrics]
    if summary["items"]:
        repeats = report["judge"]["repeats"]
        items = Table(title=f"judge {report['judge']['model']} ({repeats} repeat(s))", title_justify="left")
        for column in ("rubric", "item", "mean", "95% CI", "n", "unsupported", "failed", "alpha"):
            items.add_column(column, justify="left" if column in ("rubric", "item") else "right")
        for rubric, rows in summary["items"].items():
            for item, cell in rows.items():
                alpha = cell["agreement"]["krippendorff_alpha_interval"]
                items.add_row(
                    rubric,
                    item,
                    _number(cell["mean"]),
                    _ci(cell["ci95"]),
                    str(cell["n"]),
                    str(cell[UNSUPPORTED_EVIDENCE]),
                    str(cell[JUDGE_FAILED]),
                    _number(alpha),
                )
        parts.append(items)
    return Group(*parts)
