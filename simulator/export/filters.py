"""Which sessions export: ``--only-complete`` (always), ``--natural-end-only``,
``--exclude-flags``, ``--min-messages`` and ``--min-score``. Each filter gives the reason a
session is left out, and the export counts sessions by reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from simulator.errors import InputError
from simulator.export.options import ExportOptions
from simulator.export.scores import Scores
from simulator.reader import RunSession
from simulator.records import NATURAL_END, NOT_REPAIRS, SessionRecord

REPAIR_FLAGS = (
    "truncated_continued",
    "truncated_trimmed",
    "regenerated_repetition",
    "regenerated_empty",
    "role_label_stripped",
    "other_speaker_cut",
    "meta_commentary_removed",
    "stage_direction_removed",
    "summary_truncated_continued",
    "summary_truncated_trimmed",
    "summary_regenerated",
    "summary_incomplete",
    "summary_heading_deduplicated",
    "summary_headings_normalized",
    "summary_sections_merged",
    "summary_bullets_normalized",
    "summary_preamble_removed",
    "summary_trailing_text_removed",
    "summary_sections_reordered",
)
"""The repair flags the engine writes (see simulator.session and simulator.guards)."""


def session_flags(record: SessionRecord) -> list[str]:
    """Distinct repair flags of a session (messages and summary), sorted."""
    return sorted(record.flag_counts())


def check_flag_names(names: Iterable[str], seen: Iterable[str]) -> None:
    """Every ``--exclude-flags`` name (``*`` patterns allowed) must name a flag the engine
    writes or one these runs recorded; a typo must not silently exclude nothing."""
    known = sorted({*REPAIR_FLAGS, *seen} - NOT_REPAIRS)
    for name in names:
        if not fnmatch.filter(known, name):
            raise InputError("--exclude-flags", f"unknown flag name {name!r} (known: {', '.join(known)})")


@dataclass
class SessionFilter:
    options: ExportOptions
    scores: Scores

    def reason(self, run_id: str, session: RunSession) -> str | None:
        """Why ``session`` does not export, or None."""
        record = session.record
        if record is None:
            return f"not complete ({session.entry.status}, no record)"
        if session.partial:
            return f"not complete ({session.entry.status}, partial record)"
        if not session.complete:
            return f"not complete ({record.status})"
        termination = record.termination.reason if record.termination is not None else "none"
        if self.options.natural_end_only and termination != NATURAL_END:
            return f"not a natural end ({termination})"
        for flag in session_flags(record):
            if any(fnmatch.fnmatchcase(flag, name) for name in self.options.exclude_flags):
                return f"flag {flag}"
        minimum = self.options.min_messages
        if minimum is not None and len(record.messages) < minimum:
            return f"fewer than {minimum} messages"
        for rule in self.options.min_scores:
            score = self.scores.score(run_id, record.persona_id, record.session_number, rule.key)
            if score is None:
                return f"no {rule.key} score"
            if score < rule.minimum:
                return f"{rule.key} below {rule.minimum:g}"
        return None
