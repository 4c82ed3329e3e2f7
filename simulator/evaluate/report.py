"""eval.json: every session's metrics and scores, then means, bootstrap intervals and judge
agreement per rubric item, over the run and per persona.

Built from the records on disk (and the run's session records), so a resumed evaluation
reports exactly what a single pass would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from simulator.evaluate.answers import JUDGE_FAILED, UNSUPPORTED_EVIDENCE
from simulator.evaluate.metrics import SESSION_METRICS
from simulator.evaluate.rubrics import Item, Rubric
from simulator.evaluate.stats import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, bootstrap_ci, interval_alpha, mean
from simulator.records import TokenCounts

FORMAT = 1
Record = dict[str, Any]


def _ok_score(judgment: Record, item_id: str) -> float | None:
    result = judgment.get("items", {}).get(item_id)
    if result is None or result.get("status") != "ok" or result.get("score") is None:
        return None
    return float(result["score"])


def case_scores(judgments: list[Record], items: Iterable[Item]) -> dict[str, float | None]:
    """Each item's score for one case: the mean over the repeats that judged it."""
    scores: dict[str, float | None] = {}
    for item in items:
        values = [v for j in judgments if (v := _ok_score(j, item.id)) is not None]
        scores[item.id] = mean(values)
    return scores


def count_status(judgments: list[Record], *, flag: str) -> dict[str, int]:
    """Repeats per item that carry ``flag`` (``unsupported_evidence``) or failed (``judge_failed``)."""
    counts: dict[str, int] = {}
    for judgment in judgments:
        for item_id, result in judgment.get("items", {}).items():
            hit = (
                result.get("status") == JUDGE_FAILED
                if flag == JUDGE_FAILED
                else flag in result.get("flags", [])
            )
            if hit:
                counts[item_id] = counts.get(item_id, 0) + 1
    return counts


def _interval(values: list[float]) -> dict[str, Any]:
    ci = bootstrap_ci(values)
    return {"mean": mean(values), "ci95": list(ci) if ci is not None else None, "n": len(values)}


def _item_summary(item: Item, records: list[Record], repeats: int, *, agreement: bool) -> dict[str, Any]:
    values = [s for r in records if (s := r["scores"].get(item.id)) is not None]
    summary: dict[str, Any] = {"label": item.label, **_interval(values)}
    summary["judgments"] = sum(
        1 for r in records for j in r["judgments"] if _ok_score(j, item.id) is not None
    )
    summary[UNSUPPORTED_EVIDENCE] = sum(r["flags"][UNSUPPORTED_EVIDENCE].get(item.id, 0) for r in records)
    summary[JUDGE_FAILED] = sum(r["flags"][JUDGE_FAILED].get(item.id, 0) for r in records)
    if agreement:
        by_repeat = [{j["repeat"]: j for j in r["judgments"]} for r in records]
        ratings = [
            [_ok_score(own[repeat], item.id) if repeat in own else None for own in by_repeat]
            for repeat in range(1, repeats + 1)
        ]
        summary["agreement"] = {
            "krippendorff_alpha_interval": interval_alpha(ratings) if repeats > 1 else None,
            "repeats": repeats,
            "units": len(records),
        }
    return summary


def _items(
    rubrics: list[Rubric], records: list[Record], repeats: int, *, agreement: bool
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rubric in rubrics:
        mine = [r for r in records if r["rubric"] == rubric.name]
        if mine:
            out[rubric.name] = {
                item.id: _item_summary(item, mine, repeats, agreement=agreement) for item in rubric.spec.items
            }
    return out


def _metrics(sessions: list[Record]) -> dict[str, Any]:
    ends = [1.0 if s["natural_end"] else 0.0 for s in sessions]
    out: dict[str, Any] = {"natural_end_share": _interval(ends)}
    for name in SESSION_METRICS:
        out[name] = _interval([float(s[name]) for s in sessions if s[name] is not None])
    return out


def _usage(records: list[Record]) -> TokenCounts:
    total = TokenCounts()
    for record in records:
        for judgment in record["judgments"]:
            total.merge(TokenCounts.model_validate(judgment["usage"]))
    return total


def build_report(
    head: dict[str, Any],
    rubrics: list[Rubric],
    sessions: list[Record],
    records: list[Record],
    *,
    repeats: int,
    cost: Callable[[TokenCounts], float | None] | None = None,
) -> dict[str, Any]:
    """The whole of eval.json; ``head`` holds the identifying fields (ids, status, settings)."""
    by_session: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        by_session.setdefault((record["persona_id"], record["session_number"]), []).append(record)
    rows = []
    for session in sessions:
        mine = by_session.get((session["persona_id"], session["session_number"]), [])
        rows.append(
            {
                **session,
                "scores": {r["rubric"]: r["scores"] for r in mine},
                UNSUPPORTED_EVIDENCE: {
                    r["rubric"]: r["flags"][UNSUPPORTED_EVIDENCE]
                    for r in mine
                    if r["flags"][UNSUPPORTED_EVIDENCE]
                },
                JUDGE_FAILED: {
                    r["rubric"]: r["flags"][JUDGE_FAILED] for r in mine if r["flags"][JUDGE_FAILED]
                },
            }
        )
    personas: dict[str, Any] = {}
    for persona_id in dict.fromkeys(s["persona_id"] for s in sessions):
        own = [s for s in sessions if s["persona_id"] == persona_id]
        own_records = [r for r in records if r["persona_id"] == persona_id]
        personas[persona_id] = {
            "sessions": len(own),
            "metrics": _metrics(own),
            "items": _items(rubrics, own_records, repeats, agreement=False),
        }
    usage = _usage(records)
    summary = {
        "sessions": len(sessions),
        "natural_end_share": mean([1.0 if s["natural_end"] else 0.0 for s in sessions]),
        "metrics": _metrics(sessions),
        "items": _items(rubrics, records, repeats, agreement=True),
        "personas": personas,
        "judge": {
            "records": len(records),
            "judgments": sum(len(r["judgments"]) for r in records),
            UNSUPPORTED_EVIDENCE: sum(sum(r["flags"][UNSUPPORTED_EVIDENCE].values()) for r in records),
            JUDGE_FAILED: sum(sum(r["flags"][JUDGE_FAILED].values()) for r in records),
            "usage": usage.model_dump(),
            "cost_usd": cost(usage) if cost is not None else None,
        },
        "bootstrap": {
            "draws": BOOTSTRAP_DRAWS,
            "seed": BOOTSTRAP_SEED,
            "resampled": "sessions",
            "level": 0.95,
        },
    }
    return {"format": FORMAT, **head, "sessions": rows, "summary": summary}
