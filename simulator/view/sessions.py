"""What the page shows of one session: its card (number, length, ending, repairs, summary head)
and its body (bubbles, flags, end-phrase span, summaries by section) as JSON for the page's
script, built once in Python so the browser only lays text out."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from simulator import endings
from simulator.errors import InputError, RunStateError
from simulator.personas import validate_id
from simulator.reader import Run, RunSession
from simulator.records import NATURAL_END, NOT_REPAIRS, Message, SessionRecord
from simulator.summary import parse_sections

SUMMARY_HEAD_LINES = 2
"""Summary bullets a session card shows."""


@dataclass(frozen=True)
class SessionView:
    """One session of the run as the page shows it; ``body`` is None when no record is on disk."""

    persona_id: str
    number: int
    state: str
    """complete, partial (an unfinished record), failed, interrupted, pending, running, missing
    (listed but no record on disk) or damaged (a record that does not parse)."""
    reason: str | None
    details: str | None
    messages: int
    repairs: dict[str, int] = field(default_factory=dict)
    origins: dict[str, int] = field(default_factory=dict)
    summary_head: list[str] = field(default_factory=list)
    continuity: str | None = None
    problem: str | None = None
    body: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """``PERSONA_ID/N``: the ``data-session`` value of the card and the session view."""
        return f"{self.persona_id}/{self.number}"

    @property
    def anchor(self) -> str:
        return f"s-{self.persona_id}-{self.number}"

    @property
    def repair_total(self) -> int:
        return sum(self.repairs.values())

    @property
    def reason_label(self) -> str:
        return self.reason or f"({self.state})"


def split_flags(flags: list[str]) -> tuple[list[str], list[str]]:
    """Repair flags and origin flags (``NOT_REPAIRS``: where a message came from, not a fix)."""
    return [f for f in flags if f not in NOT_REPAIRS], [f for f in flags if f in NOT_REPAIRS]


def summary_sections(text: str | None) -> list[dict[str, Any]]:
    """The summary as headed bullet lists; text with no known heading is kept as one paragraph."""
    if not text or not text.strip():
        return []
    sections = parse_sections(text)
    if not sections:
        return [{"h": None, "p": text.strip()}]
    return [{"h": heading, "b": bullets} for heading, bullets in sections.items()]


def end_phrase_span(record: SessionRecord) -> tuple[int, int, int] | None:
    """(message index, start, end) of the end phrase in the message that ended the session."""
    ending = record.termination
    if ending is None or ending.reason != NATURAL_END or ending.message_index is None:
        return None
    message = next((m for m in record.messages if m.index == ending.message_index), None)
    span = endings.end_phrase_span(ending.details, message.content) if message is not None else None
    return (message.index, *span) if message is not None and span is not None else None


def _message(message: Message, ended_by: int | None, span: tuple[int, int, int] | None) -> dict[str, Any]:
    repairs, origins = split_flags(message.flags)
    data: dict[str, Any] = {"s": message.speaker, "i": message.index, "t": message.content}
    if repairs:
        data["r"] = repairs
    if origins:
        data["o"] = origins
    if message.model:
        data["m"] = message.model
    if message.finish_reason and message.finish_reason != "stop":
        data["f"] = message.finish_reason
    if message.index == ended_by:
        data["end"] = True
    if span is not None and span[0] == message.index:
        data["e"] = [span[1], span[2]]
    return data


def session_body(record: SessionRecord) -> dict[str, Any]:
    """What the page's script renders when the session is opened."""
    ending = record.termination
    ended_by = ending.message_index if ending is not None else None
    span = end_phrase_span(record)
    summary_repairs, summary_origins = split_flags(record.summary_flags)
    tokens = {role: counts.prompt_tokens + counts.completion_tokens for role, counts in record.usage.items()}
    return {
        "messages": [_message(m, ended_by, span) for m in record.messages],
        "prev": summary_sections(record.previous_summary),
        "summary": summary_sections(record.summary),
        "summaryRepairs": summary_repairs,
        "summaryOrigins": summary_origins,
        "ending": ending.model_dump() if ending is not None else None,
        "meta": {
            "status": record.status,
            "backend": record.backend,
            "models": {role: model for role, model in record.models.items() if model},
            "seed": record.seed,
            "started": record.started_at,
            "ended": record.ended_at,
            "tokens": tokens,
            "error": record.error,
        },
    }


def _continuity(record: SessionRecord, previous: SessionRecord | None, first: int) -> str | None:
    """Whether this session opened from the summary the session before it left."""
    if record.session_number == first and record.previous_summary is None:
        return None
    if previous is None or previous.summary is None:
        return f"opened without session {record.session_number - 1}'s summary on disk"
    if (record.previous_summary or "").strip() == previous.summary.strip():
        return f"opened from session {record.session_number - 1}'s summary"
    return f"opening summary differs from session {record.session_number - 1}'s summary"


def _state(found: RunSession) -> str:
    if found.record is None:
        return (
            "missing" if found.entry.status in ("complete", "failed", "interrupted") else found.entry.status
        )
    if found.partial:
        return "partial" if found.record.status == "complete" else found.record.status
    return found.record.status


def session_view(found: RunSession, previous: SessionRecord | None, first: int) -> SessionView:
    """The card and body of one session the run lists."""
    record = found.record
    if record is None:
        return SessionView(
            found.persona_id,
            found.number,
            _state(found),
            found.entry.termination,
            found.entry.details,
            found.entry.messages or 0,
            problem=found.entry.error,
        )
    repairs = record.flag_counts()
    flags = [f for m in record.messages for f in m.flags] + record.summary_flags
    origins = dict(Counter(split_flags(flags)[1]))
    head = [bullet for bullets in parse_sections(record.summary).values() for bullet in bullets]
    ending = record.termination
    return SessionView(
        found.persona_id,
        found.number,
        _state(found),
        ending.reason if ending is not None else None,
        ending.details if ending is not None else None,
        len(record.messages),
        repairs=repairs,
        origins=origins,
        summary_head=head[:SUMMARY_HEAD_LINES] or ([record.summary.strip()[:200]] if record.summary else []),
        continuity=_continuity(record, previous, first),
        problem=record.error,
        body=session_body(record),
    )


def read_series(run: Run, persona_id: str) -> list[SessionView]:
    """A persona's sessions in order; a record that does not parse is shown as damaged, and so is
    every session of a persona id that could lead outside the run folder (never read)."""
    views: list[SessionView] = []
    previous: SessionRecord | None = None
    numbers = sorted(run.index.sessions.get(persona_id, {}))
    try:
        validate_id(persona_id, run.store.run_file)
    except InputError as exc:
        return [SessionView(persona_id, n, "damaged", None, None, 0, problem=str(exc)) for n in numbers]
    for number in numbers:
        try:
            found = run.session(persona_id, number)
        except RunStateError as exc:
            entry = run.index.sessions[persona_id][number]
            views.append(
                SessionView(
                    persona_id, number, "damaged", entry.termination, entry.details, 0, problem=str(exc)
                )
            )
            previous = None
            continue
        views.append(session_view(found, previous, numbers[0]))
        previous = found.record
    return views


def packed(data: Any) -> str:
    """A session body as the page carries it: JSON, gzipped, in base64. Base64 has no ``<`` or
    ``&``, so no string can close its ``<script>`` block; gzip keeps a 2,000-session page small
    (the browser's DecompressionStream unpacks one session when it is opened)."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def unpacked(text: str) -> Any:
    """The inverse of :func:`packed` (for tests and scripts reading a page)."""
    return json.loads(gzip.decompress(base64.b64decode(text)))
