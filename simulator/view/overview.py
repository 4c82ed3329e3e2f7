"""The overview of a run: settings, totals, and the counts the charts draw."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from simulator.evaluate.results import as_mapping
from simulator.index import RunIndex
from simulator.view.sessions import SessionView

ROLES = ("therapist", "patient", "summarizer")
STATES = ("complete", "partial", "failed", "interrupted", "running", "pending", "missing", "damaged")


@dataclass
class Overview:
    settings: list[tuple[str, str]]
    states: list[tuple[str, int]]
    tokens: list[tuple[str, int, int, int]]
    """Role, prompt, completion and cached tokens (run.json's usage)."""
    cost_usd: float | None
    cached_share: float
    reasons: list[tuple[str, int]]
    lengths: list[int]
    repairs: list[tuple[str, int]]
    origins: list[tuple[str, int]]
    sessions: int
    problems: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _when(stamp: str | None) -> str:
    """An ISO timestamp as people read it (``2026-11-26 10:17:06 UTC``)."""
    if not stamp:
        return "—"
    return stamp.replace("T", " ").removesuffix("+00:00") + (" UTC" if stamp.endswith("+00:00") else "")


def role_models(index: RunIndex, views: Iterable[SessionView]) -> dict[str, str]:
    """The model each role used: what the session records say, else what the settings asked."""
    seen: dict[str, set[str]] = {role: set() for role in ROLES}
    for view in views:
        if view.body is not None:
            for role, model in view.body["meta"]["models"].items():
                seen.setdefault(role, set()).add(str(model))
    settings = index.settings
    roles = as_mapping(settings.get("roles"))
    models: dict[str, str] = {}
    for role in ROLES:
        role_settings = as_mapping(roles.get(role))
        asked = settings.get(f"{role}_model") or role_settings.get("model") or settings.get("model")
        models[role] = ", ".join(sorted(seen[role])) or _text(asked)
        if models[role] == "—" and index.offline:
            models[role] = "none (offline)"
    return models


def run_settings(index: RunIndex, views: list[SessionView]) -> list[tuple[str, str]]:
    settings = index.settings
    rows = [
        ("Run", index.run_id),
        ("Status", index.status),
        ("Command", index.command),
        ("Backend", index.backend),
    ]
    rows += [(f"{role.capitalize()} model", model) for role, model in role_models(index, views).items()]
    rows += [
        ("Therapist", index.inputs.therapist.id),
        ("Seed", _text(settings.get("seed"))),
        ("Sessions per persona", _text(settings.get("sessions"))),
        ("Max turns", _text(settings.get("max_turns"))),
        ("Engine version", _text(index.versions.get("simulator"))),
        ("Started", _when(index.started_at or index.created_at)),
        ("Ended", _when(index.ended_at)),
    ]
    if settings.get("base_url"):
        rows.append(("Base URL", str(settings["base_url"])))
    if index.resumes:
        rows.append(("Resumed", _text(index.resumes)))
    if index.branched_from:
        rows.append(("Branched from", ", ".join(f"{k}: {v}" for k, v in index.branched_from.items())))
    return rows


def build_overview(index: RunIndex, views: list[SessionView]) -> Overview:
    """Totals over every session the run lists (records first, run.json where none is on disk)."""
    states = Counter(view.state for view in views)
    reasons = Counter(view.reason_label for view in views)
    repairs: Counter[str] = Counter()
    origins: Counter[str] = Counter()
    for view in views:
        repairs.update(view.repairs)
        origins.update(view.origins)
    tokens = [
        (role, counts.prompt_tokens, counts.completion_tokens, counts.cached_tokens)
        for role, counts in index.usage.items()
    ]
    prompt = sum(row[1] for row in tokens)
    cached = sum(row[3] for row in tokens)
    if len(tokens) > 1:
        tokens.append(("total", prompt, sum(row[2] for row in tokens), cached))
    return Overview(
        settings=run_settings(index, views),
        states=[(state, states[state]) for state in STATES if states[state]],
        tokens=tokens,
        cost_usd=index.cost_usd,
        cached_share=cached / prompt if prompt else 0.0,
        reasons=reasons.most_common(),
        lengths=[view.messages for view in views if view.body is not None],
        repairs=repairs.most_common(),
        origins=origins.most_common(),
        sessions=len(views),
        problems=[f"{view.key}: {view.problem}" for view in views if view.problem],
    )
