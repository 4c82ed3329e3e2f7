"""``simulator audit``: the engine's guards and termination detector over transcripts that
already exist, with no model and no network.

Reads the reference ``.txt`` format, the engine's ``session_NN.json``, run folders (every session
in them), ``.jsonl`` (one ``{"speaker", "content"}`` object a line) and ``.csv`` (``speaker,content``
columns), and folders of such files, and reports each defect by message index, speaker and kind, plus where the session
would have ended naturally. An engine record is audited on its stored, already repaired text.

Defect kinds name what is wrong; the engine's record flags name the repair (see README):
``truncated``, ``repetition``, ``role_label``, ``other_speaker``, ``meta_commentary``,
``stage_direction``, ``summary_preamble``, ``summary_heading_duplicated``,
``summary_sections_missing``, ``ordinal_missing``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator import guards, summary
from simulator.config import RunConfig
from simulator.endings import compile_phrases, detect_end
from simulator.errors import InputError
from simulator.reader import read_run
from simulator.records import NATURAL_END, NOT_REPAIRS, SessionRecord, Speaker
from simulator.store import RunStore
from simulator.text import ends_mid_sentence

__all__ = ["KINDS", "Audit", "Defect", "Transcript", "audit_paths", "audit_transcript", "read_transcripts"]

KINDS = (
    "truncated",
    "repetition",
    "role_label",
    "other_speaker",
    "meta_commentary",
    "stage_direction",
    "summary_preamble",
    "summary_heading_duplicated",
    "summary_sections_missing",
    "ordinal_missing",
)
ROLE_KINDS = {
    "role_label_stripped": "role_label",
    "other_speaker_cut": "other_speaker",
    "meta_commentary_removed": "meta_commentary",
    "stage_direction_removed": "stage_direction",
}
SUMMARY_KINDS = {
    "summary_preamble_removed": "summary_preamble",
    "summary_trailing_text_removed": "summary_preamble",
    "summary_heading_deduplicated": "summary_heading_duplicated",
}
"""Summary repairs that mean a defect; canonicalising heading names and bullets is not one."""

SUFFIXES = (".txt", ".json", ".jsonl", ".csv")
SUMMARY = "Summary"
_SPEAKERS: dict[str, Speaker] = {"therapist": "Therapist", "patient": "Patient", "client": "Patient"}
_MESSAGE_START = re.compile(r"\n\n(?=(?:Patient|Therapist): )")
_LAST_TIME = re.compile(r"\b(?:last time|last session|previously)\b[^:\n]{0,40}:\s*", re.IGNORECASE)
_BARE_ORDINAL = re.compile(
    r"\b(\d{1,3})(?!\d|st\b|nd\b|rd\b|th\b)\s+(?:[A-Za-z][\w-]*\s+)?session\b", re.IGNORECASE
)
_BULLET_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+\S")
_NAME = re.compile(r"\bI(?:'m| am)\s+([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)")


@dataclass
class Transcript:
    """A session as the audit sees it: who said what, the closing summary, and for engine
    records the repairs the record carries."""

    file: str
    messages: list[tuple[Speaker, str]]
    summary: str | None = None
    record: SessionRecord | None = None


@dataclass(frozen=True)
class Defect:
    index: int | None
    """The message, or None for the session summary."""
    speaker: str
    kind: str
    details: str = ""
    earlier: int | None = None
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "speaker": self.speaker,
            "kind": self.kind,
            "details": self.details,
            "earlier": self.earlier,
            "score": None if self.score is None else round(self.score, 2),
        }


@dataclass
class Audit:
    """One transcript's findings."""

    file: str
    messages: int
    defects: list[Defect] = field(default_factory=list)
    end: dict[str, Any] | None = None
    flags: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.file,
            "messages": self.messages,
            "defects": [d.as_dict() for d in self.defects],
            "end": self.end,
        }
        if self.flags is not None:
            data["flags"] = self.flags
        return data

    def text(self) -> str:
        """The human-readable block: a header line, one line per defect, the natural end."""
        count = len(self.defects)
        lines = [f"{self.file}: {self.messages} messages, {count} defect{'s' if count != 1 else ''}"]
        for d in self.defects:
            where = "summary" if d.index is None else f"message {d.index} ({d.speaker})"
            extra = f" of message {d.earlier} (similarity {d.score:.2f})" if d.earlier is not None else ""
            details = f": {d.details}" if d.details else ""
            lines.append(f"  {where}: {d.kind}{extra}{details}")
        if self.flags is not None:
            for index, flags in self.flags["messages"].items():
                lines.append(f"  message {index}: flags {', '.join(flags)}")
            if self.flags["summary"]:
                lines.append(f"  summary: flags {', '.join(self.flags['summary'])}")
        if self.end is None:
            lines.append("  natural end: none")
        else:
            lines.append(
                f"  natural end: message {self.end['index']} ({self.end['reason']}): {self.end['details']}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_transcripts(
    path: Path, therapist_is: str | None = None, unreadable: list[InputError] | None = None
) -> Iterator[Transcript]:
    """Every session at ``path``; :class:`InputError` (exit 2) names the file and row when one
    cannot be read, or, given ``unreadable``, is added to it and the files after it are read."""
    if path.is_dir() and not RunStore(path).run_file.exists():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        # A persona's folder in a run holds each session twice (.txt and .json): audit it once.
        records = {p.stem for p in files if p.suffix.lower() == ".json"}
        files = [p for p in files if not (p.suffix.lower() == ".txt" and p.stem in records)]
        if not files:
            raise InputError(
                path, f"neither a run folder nor a folder of transcripts ({', '.join(SUFFIXES)})"
            )
        yield from _each_readable(files, therapist_is, unreadable)
        return
    if path.is_dir():
        run = read_run(path)
        for persona_id, number, _ in run.index.entries():
            try:
                session = run.session(persona_id, number)
            except InputError as exc:
                # A damaged session file is one unreadable input: the run's other sessions are still audited.
                if unreadable is None:
                    raise
                unreadable.append(exc)
                continue
            if session.record is None:
                continue
            file = run.store.session_path(
                session.persona_id, session.number, ".json", partial=session.partial
            )
            yield _from_record(session.record, str(file))
        return
    if not path.exists():
        raise InputError(path, "no such file or directory")
    suffix = path.suffix.lower()
    text = _read_text(path)
    if suffix == ".txt":
        yield _from_txt(path, text)
    elif suffix == ".json":
        yield _from_json(path, text)
    elif suffix == ".jsonl":
        yield _from_jsonl(path, text, therapist_is)
    elif suffix == ".csv":
        yield _from_csv(path, text, therapist_is)
    else:
        raise InputError(
            path, "unknown transcript format (expected .txt, .json, .jsonl, .csv or a run folder)"
        )


def _each_readable(
    paths: Sequence[Path], therapist_is: str | None, unreadable: list[InputError] | None
) -> Iterator[Transcript]:
    """The sessions of every path in turn; an unreadable one goes to ``unreadable`` (when given)."""
    for path in paths:
        try:
            yield from read_transcripts(path, therapist_is, unreadable)
        except InputError as exc:
            if unreadable is None:
                raise
            unreadable.append(exc)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None


def _from_txt(path: Path, text: str) -> Transcript:
    body = text.replace("\r\n", "\n")
    summary: str | None = None
    if "\n\nSession Summary:\n" in body:
        body, summary = body.split("\n\nSession Summary:\n", 1)
        summary = summary.strip("\n")
    body = body.split("\n\nTermination Details:\n", 1)[0]
    parts = _MESSAGE_START.split("\n\n" + body.strip("\n"))
    messages: list[tuple[Speaker, str]] = []
    for part in parts[1:]:
        speaker, _, content = part.partition(": ")
        messages.append((_SPEAKERS[speaker.lower()], content.strip()))
    if not messages:
        raise InputError(path, "no 'Patient:' or 'Therapist:' messages found (expected the reference format)")
    return Transcript(str(path), messages, summary)


def _from_record(record: SessionRecord, file: str) -> Transcript:
    messages = [(m.speaker, m.content) for m in record.messages]
    return Transcript(file, messages, record.summary, record)


def _from_json(path: Path, text: str) -> Transcript:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    try:
        record = SessionRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top"
        raise InputError(path, f"not a session record: {where}: {first['msg']}") from None
    return _from_record(record, str(path))


def _speaker(path: Path, where: str, row: dict[str, Any], therapist_is: str | None) -> Speaker:
    speaker = row.get("speaker")
    if isinstance(speaker, str) and speaker.strip().lower() in _SPEAKERS:
        return _SPEAKERS[speaker.strip().lower()]
    role = row.get("role")
    if role in ("assistant", "user"):
        if therapist_is is None:
            raise InputError(path, f"{where}: role {role!r} needs --therapist-is assistant|user")
        return "Therapist" if role == therapist_is else "Patient"
    found = speaker if speaker is not None else role
    raise InputError(path, f"{where}: speaker must be Therapist or Patient, found {found!r}")


def _content(path: Path, where: str, row: dict[str, Any]) -> str:
    content = row.get("content")
    if not isinstance(content, str):
        raise InputError(path, f"{where}: 'content' must be text, found {type(content).__name__}")
    return content.strip()


def _from_jsonl(path: Path, text: str, therapist_is: str | None) -> Transcript:
    messages: list[tuple[Speaker, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"{where}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise InputError(path, f"{where}: expected an object with speaker and content")
        if row.get("role") == "system":
            continue
        messages.append((_speaker(path, where, row, therapist_is), _content(path, where, row)))
    if not messages:
        raise InputError(path, "no messages")
    return Transcript(str(path), messages)


def _from_csv(path: Path, text: str, therapist_is: str | None) -> Transcript:
    try:
        # A file-like reader, not lines: a quoted message keeps its paragraph breaks.
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = reader.fieldnames or []
        if "content" not in fields or not {"speaker", "role"} & set(fields):
            raise InputError(path, f"expected 'speaker,content' columns, found {', '.join(fields) or 'none'}")
        messages = []
        for n, row in enumerate(reader, 2):
            where = f"row {n}"
            if None in row or None in row.values():
                found = len(fields) + len(row.get(None) or ()) - list(row.values()).count(None)
                raise InputError(
                    path, f"{where}: {found} field{'' if found == 1 else 's'}, the header has {len(fields)}"
                )
            messages.append((_speaker(path, where, row, therapist_is), _content(path, where, row)))
    except csv.Error as exc:
        raise InputError(path, f"invalid CSV: {exc}") from None
    if not messages:
        raise InputError(path, "no messages")
    return Transcript(str(path), messages)


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


def _names(messages: Sequence[tuple[Speaker, str]]) -> tuple[str, ...]:
    """The patient's name from an opening that introduces it ("Hi, I'm Marcus Thompson.")."""
    for speaker, text in messages[:1]:
        if speaker == "Patient" and (match := _NAME.search(text)):
            return (match.group(1),)
    return ()


def _summary_defects(text: str, *, opening: bool, index: int | None, speaker: str) -> list[Defect]:
    checked = summary.clean_summary(text)
    kinds: list[str] = []
    for flag in checked.flags:
        kind = SUMMARY_KINDS.get(flag)
        if kind == "summary_heading_duplicated" and opening:
            kind = "summary_preamble"  # a heading inside "Last time we talked about:" wraps it
        if kind is not None:
            kinds.append(kind)
    defects = [Defect(index, speaker, kind) for kind in dict.fromkeys(kinds)]
    if checked.missing and (not opening or len(checked.missing) < len(summary.SUMMARY_SECTIONS)):
        defects.append(Defect(index, speaker, "summary_sections_missing", ", ".join(checked.missing)))
    return defects


def _opening_defects(text: str) -> list[Defect]:
    defects: list[Defect] = []
    if match := _BARE_ORDINAL.search(text):
        defects.append(Defect(0, "Patient", "ordinal_missing", f'"{match.group(0)}"'))
    if match := _LAST_TIME.search(text):
        defects.extend(_summary_defects(text[match.end() :], opening=True, index=0, speaker="Patient"))
    return defects


def _cut(text: str) -> bool:
    """Whether a message stops mid-sentence. One ending on a list item has no full stop to miss
    (without the reply's finish reason a finished bullet and a cut one look the same)."""
    last_line = text.rstrip().rsplit("\n", 1)[-1]
    return ends_mid_sentence(text) and _BULLET_LINE.match(last_line) is None


def _tail(text: str, words: int = 8) -> str:
    parts = text.split()
    return ("…" if len(parts) > words else "") + " ".join(parts[-words:])


def audit_transcript(transcript: Transcript, config: RunConfig, *, flags: bool = False) -> Audit:
    """Run every guard over each message, the summary checks over the summary, and the
    termination detector over the conversation as it went."""
    messages = transcript.messages
    names = _names(messages)
    finders = {
        "Therapist": guards.RepeatFinder(config.guards.repetition_threshold),
        "Patient": guards.RepeatFinder(config.guards.repetition_threshold),
    }
    said: dict[Speaker, list[int]] = {"Therapist": [], "Patient": []}
    defects: list[Defect] = []
    cleaned: list[tuple[str, str]] = []
    for index, (speaker, text) in enumerate(messages):
        if index == 0 and speaker == "Patient":
            defects.extend(_opening_defects(text))
        if _cut(text):
            defects.append(Defect(index, speaker, "truncated", f'ends "{_tail(text)}"'))
        checked = guards.check_role(text, speaker, names)
        for flag in checked.flags:
            if flag in ROLE_KINDS:
                defects.append(Defect(index, speaker, ROLE_KINDS[flag]))
        kept = checked.text or text  # what the engine would have kept and compared
        earlier = said[speaker]
        hit = finders[speaker].find(kept)
        if hit is not None:
            defects.append(Defect(index, speaker, "repetition", earlier=earlier[hit[0]], score=hit[1]))
        else:
            recent = earlier[-guards.SHORT_LOOP_RUN :]
            start = guards.find_short_loop(kept, [cleaned[i][1] for i in recent])
            if start is not None:
                loop = "a run of the same short reply"
                defects.append(Defect(index, speaker, "repetition", loop, recent[start], 1.0))
        finders[speaker].add(kept)
        earlier.append(index)
        cleaned.append((speaker, kept))
    if transcript.summary is not None:
        defects.extend(_summary_defects(transcript.summary, opening=False, index=None, speaker=SUMMARY))
    audit = Audit(transcript.file, len(messages), defects, _natural_end(cleaned, config))
    if flags and transcript.record is not None:
        record = transcript.record
        repairs = {m.index: [f for f in m.flags if f not in NOT_REPAIRS] for m in record.messages}
        audit.flags = {
            "messages": {str(index): found for index, found in repairs.items() if found},
            "summary": record.summary_flags,
        }
    return audit


def _natural_end(messages: Sequence[tuple[str, str]], config: RunConfig) -> dict[str, Any] | None:
    phrases = {
        "Therapist": compile_phrases(config.end_phrases.therapist),
        "Patient": compile_phrases(config.end_phrases.patient),
    }
    wrap_up_from = config.max_turns - config.wrap_up_turns
    for count in range(config.min_turns, len(messages) + 1):
        ending = detect_end(
            messages[:count],
            phrases,
            min_turns=config.min_turns,
            wrap_up_from=wrap_up_from,
            after_wrap_up=config.end_phrases.after_wrap_up,
        )
        if ending is not None:
            return {"index": ending.index, "reason": NATURAL_END, "details": ending.details}
    return None


def audit_paths(
    paths: Sequence[Path],
    config: RunConfig,
    *,
    flags: bool = False,
    therapist_is: str | None = None,
    unreadable: list[InputError] | None = None,
) -> Iterator[Audit]:
    """Audit every session under ``paths``, in order, one at a time. Given ``unreadable``, a
    file that cannot be read is added to it and the others are still audited; else it raises."""
    for transcript in _each_readable(paths, therapist_is, unreadable):
        yield audit_transcript(transcript, config, flags=flags)
