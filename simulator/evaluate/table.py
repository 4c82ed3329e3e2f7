"""The terminal view of eval.json: model-free metrics, then one row per rubric item."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from simulator.evaluate.answers import JUDGE_FAILED, UNSUPPORTED_EVIDENCE
from simulator.evaluate.metrics import METRIC_NAMES


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
        parts.append(_items_table(report))
    return Group(*parts)


def _items_table(report: dict[str, Any]) -> Table:
    """One row per rubric item under its rubric's name, narrow enough for an 80-column
    terminal or a log file without cutting item names."""
    items = report["summary"]["items"]
    width = max(len(item) for rows in items.values() for item in rows) + 2
    table = Table(
        title=f"judge {report['judge']['model']} ({report['judge']['repeats']} repeat(s))",
        title_justify="left",
        caption="unsup.: scores with unsupported evidence; failed: judge_failed; alpha: Krippendorff's alpha over repeats",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("rubric item", no_wrap=True, min_width=width)
    for column in ("mean", "95% CI", "n", "unsup.", "failed", "alpha"):
        table.add_column(column, justify="right", no_wrap=True)
    for rubric, rows in items.items():
        table.add_row(Text(rubric, style="bold"))
        for item, cell in rows.items():
            table.add_row(
                f"  {item}",
                _number(cell["mean"]),
                _ci(cell["ci95"]),
                str(cell["n"]),
                str(cell[UNSUPPORTED_EVIDENCE]),
                str(cell[JUDGE_FAILED]),
                _number(cell["agreement"]["krippendorff_alpha_interval"]),
            )
    return table
