"""The judge's answer: the JSON schema it must follow, and reading a reply against it.

One schema serves twice: sent as ``response_format`` (``json_schema``, strict) where the server
accepts it, and used to validate every reply (with :mod:`jsonschema`) where it does not. The
schema keeps to the subset strict structured outputs accept (every key required, no extra
keys, enums instead of ranges); what it cannot say (a count is not negative, every summary
bullet is labelled once) is checked here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from simulator.evaluate.evidence import Haystack
from simulator.evaluate.rubrics import Item

UNSUPPORTED_EVIDENCE = "unsupported_evidence"
"""A score whose evidence is missing or not found verbatim in the material."""
JUDGE_FAILED = "judge_failed"
"""No valid answer for the item after every retry."""

_STRINGS = {"type": "array", "items": {"type": "string"}}
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def item_schema(item: Item, bullets: int) -> dict[str, Any]:
    """The answer to one item, for a summary of ``bullets`` bullets."""
    reasons = {"rationale": {"type": "string"}, "evidence": _STRINGS}
    if item.kind == "rating":
        assert item.scale is not None
        return _object(
            {"score": {"type": "integer", "enum": list(range(item.scale[0], item.scale[1] + 1))}, **reasons}
        )
    if item.kind == "count":
        return _object({"count": {"type": "integer"}, **reasons})
    if item.kind == "bullets":
        verdict = _object(
            {
                "bullet": {"type": "integer", "enum": list(range(1, bullets + 1))},
                "label": {"type": "string", "enum": item.labels},
                **reasons,
            }
        )
        return _object({"bullets": {"type": "array", "items": verdict}})
    finding = _object({"text": {"type": "string"}, "evidence": _STRINGS})
    return _object({"found": {"type": "array", "items": finding}})


def answer_schema(items: list[Item], bullets: int) -> dict[str, Any]:
    """The whole reply: one key per asked item."""
    return _object({item.id: item_schema(item, bullets) for item in items})


@dataclass
class ItemResult:
    """One item of one judgment, as recorded."""

    status: str
    """``ok`` or ``judge_failed``."""
    score: float | None = None
    rationale: str | None = None
    evidence: list[str] = field(default_factory=list)
    evidence_found: list[bool] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    """Per-bullet verdicts or listed findings, each with its evidence check."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "score": self.score,
            "rationale": self.rationale,
            "evidence": self.evidence,
            "evidence_found": self.evidence_found,
            "flags": self.flags,
        }
        if self.details:
            data["details"] = self.details
        if self.error is not None:
            data["error"] = self.error
        return data


def parse_json(content: str) -> Any:
    """The JSON value in a reply, tolerating a Markdown fence or words around one object."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced[1]
    try:
        return json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise
        return json.loads(text[start : end + 1])


def problems(value: Any, schema: dict[str, Any]) -> list[str]:
    """Why ``value`` does not match ``schema``: one short line per problem (empty when it does)."""
    found = []
    for error in sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path)):
        where = "/".join(str(part) for part in error.absolute_path) or "the reply"
        found.append(f"{where}: {error.message}")
    return found


def _checked(evidence: list[str], haystack: Haystack) -> list[bool]:
    return [haystack.contains(quote) for quote in evidence]


def _supported(found: list[bool], *, needed: bool) -> bool:
    """Evidence holds when every quote is found and, where the score claims something, one exists."""
    return all(found) and (bool(found) or not needed)


def read_item(item: Item, answer: Any, bullets: int, haystack: Haystack) -> ItemResult:
    """Score one valid item answer and check its evidence; ``ValueError`` when its content is
    wrong in a way the schema cannot express."""
    if item.kind in ("rating", "count"):
        value = int(answer["score" if item.kind == "rating" else "count"])
        if value < 0:
            raise ValueError(f"{item.id}: a count cannot be negative")
        evidence = [str(q) for q in answer["evidence"]]
        found = _checked(evidence, haystack)
        ok = _supported(found, needed=item.kind == "rating" or value > 0)
        return ItemResult(
            "ok",
            float(value),
            str(answer["rationale"]),
            evidence,
            found,
            [] if ok else [UNSUPPORTED_EVIDENCE],
        )
    if item.kind == "bullets":
        return _read_bullets(item, answer["bullets"], bullets, haystack)
    details = []
    for finding in answer["found"]:
        evidence = [str(q) for q in finding["evidence"]]
        found = _checked(evidence, haystack)
        details.append({"text": finding["text"], "evidence": evidence, "evidence_found": found})
    ok = all(_supported(d["evidence_found"], needed=True) for d in details)
    return ItemResult(
        "ok", float(len(details)), None, details=details, flags=[] if ok else [UNSUPPORTED_EVIDENCE]
    )


def _read_bullets(item: Item, verdicts: list[dict[str, Any]], bullets: int, haystack: Haystack) -> ItemResult:
    numbers = sorted(int(v["bullet"]) for v in verdicts)
    if numbers != list(range(1, bullets + 1)):
        raise ValueError(f"{item.id}: label every bullet 1..{bullets} exactly once (got {numbers})")
    details = []
    for verdict in sorted(verdicts, key=lambda v: int(v["bullet"])):
        evidence = [str(q) for q in verdict["evidence"]]
        found = _checked(evidence, haystack)
        details.append({**verdict, "evidence_found": found})
    ok = all(_supported(d["evidence_found"], needed=d["label"] == item.positive) for d in details)
    positive = sum(1 for d in details if d["label"] == item.positive)
    return ItemResult(
        "ok",
        positive / bullets,
        None,
        details=details,
        flags=[] if ok else [UNSUPPORTED_EVIDENCE],
    )


def ratio(item: Item, results: dict[str, ItemResult]) -> ItemResult:
    """A ratio item from the rubric's counts (``judge_failed`` when a count is, None over 0)."""
    parts = [results.get(name) for name in (*item.numerator, *item.denominator)]
    if any(part is None or part.score is None for part in parts):
        return ItemResult(JUDGE_FAILED, error="a count it is computed from was not judged")
    top = sum(results[name].score or 0.0 for name in item.numerator)
    bottom = sum(results[name].score or 0.0 for name in item.denominator)
    return ItemResult("ok", top / bottom if bottom else None)
