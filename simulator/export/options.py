"""What ``simulator export`` is asked to do, parsed and checked before anything is read.

Every bad value here is an :class:`InputError` naming the flag, so the CLI exits 2 with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simulator.errors import InputError

FORMATS = ("openai", "sharegpt", "parquet", "records")
Format = Literal["openai", "sharegpt", "parquet", "records"]
Perspective = Literal["therapist", "patient"]
SplitBy = Literal["persona", "session"]

SYSTEM_RENDERED = "rendered"
SYSTEM_NONE = "none"
DEFAULT_DEDUPE_THRESHOLD = 0.8
SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
"""Hugging Face split names are word characters; a name also becomes a file name."""
SCORE_RULE = re.compile(r"^\s*([\w-]+)\.([\w-]+)\s*>=\s*(-?\d+(?:\.\d+)?)\s*$")
LICENSE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")


@dataclass(frozen=True)
class Split:
    name: str
    fraction: float


@dataclass(frozen=True)
class ScoreRule:
    """``--min-score RUBRIC.ITEM>=X``: keep sessions whose score for the item is at least X."""

    rubric: str
    item: str
    minimum: float

    @property
    def key(self) -> str:
        return f"{self.rubric}.{self.item}"

    def __str__(self) -> str:
        return f"{self.key}>={self.minimum:g}"


@dataclass(frozen=True)
class ExportOptions:
    run_dirs: tuple[Path, ...]
    fmt: Format
    out: Path
    perspective: Perspective = "therapist"
    system: str = SYSTEM_RENDERED
    """``rendered``, ``none``, or the path of a Jinja template."""
    series_context: bool = False
    natural_end_only: bool = False
    exclude_flags: tuple[str, ...] = ()
    min_messages: int | None = None
    min_scores: tuple[ScoreRule, ...] = ()
    eval_ids: tuple[str, ...] = ()
    dedupe: bool = False
    dedupe_threshold: float = DEFAULT_DEDUPE_THRESHOLD
    splits: tuple[Split, ...] = ()
    split_by: SplitBy = "persona"
    split_seed: int = 0
    license: str | None = None
    force: bool = False

    @property
    def folder(self) -> bool:
        """A folder (one file per split plus the card) rather than one JSONL file."""
        return self.fmt == "parquet" or bool(self.splits)

    @property
    def system_file(self) -> Path | None:
        return None if self.system in (SYSTEM_RENDERED, SYSTEM_NONE) else Path(self.system)


def parse_splits(text: str | None) -> tuple[Split, ...]:
    """``train=0.9,test=0.1`` -> splits; names unique, fractions positive and adding up to 1."""
    if text is None:
        return ()
    splits: list[Split] = []
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not SPLIT_NAME.fullmatch(name):
            raise InputError(
                "--split", f"bad split spec {text!r}: expected NAME=FRACTION,... (train=0.9,test=0.1)"
            )
        try:
            fraction = float(value)
        except ValueError:
            raise InputError(
                "--split", f"bad split spec {text!r}: {value.strip()!r} is not a number"
            ) from None
        if not 0 < fraction <= 1:
            raise InputError("--split", f"bad split spec {text!r}: {name} must be a fraction in (0, 1]")
        if any(s.name == name for s in splits):
            raise InputError("--split", f"bad split spec {text!r}: {name} is given twice")
        splits.append(Split(name, fraction))
    total = sum(s.fraction for s in splits)
    if abs(total - 1) > 1e-6:
        raise InputError("--split", f"bad split spec {text!r}: fractions add up to {total:g}, not 1")
    return tuple(splits)


def parse_score_rule(text: str) -> ScoreRule:
    match = SCORE_RULE.fullmatch(text)
    if match is None:
        raise InputError(
            "--min-score", f"bad score rule {text!r}: expected RUBRIC.ITEM>=NUMBER (ctrs.agenda>=4)"
        )
    return ScoreRule(match[1], match[2], float(match[3]))


def parse_flag_names(text: str | None) -> tuple[str, ...]:
    """``--exclude-flags a,b`` -> names; checked against the known flags later."""
    if not text:
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise InputError("--exclude-flags", "expected FLAG[,FLAG...]")
    return names


CHAT_ONLY_FLAGS = {"perspective": "--as", "system": "--system", "series_context": "--series-context"}
"""Flags that shape a chat example (whose turn is the target, its system prompt and opening);
``records`` are the engine's own session JSON, both sides as they were, so they have none."""


def check_chat_flags(fmt: str, given: dict[str, object]) -> None:
    """Refuse chat-only flags with ``--format records`` rather than silently ignore them;
    ``given`` maps option names to values, ``None`` or ``False`` when left out."""
    if fmt != "records":
        return
    named = [flag for name, flag in CHAT_ONLY_FLAGS.items() if given.get(name) not in (None, False)]
    if named:
        verb, them = ("does", "it") if len(named) == 1 else ("do", "them")
        raise InputError(
            None,
            f"{' and '.join(named)} {verb} not apply to --format records (the engine's own session "
            f"JSON, both sides as generated, not a chat example): leave {them} out",
        )


def check_license(text: str | None) -> str | None:
    """An SPDX id, written the Hub's way (lowercase: ``MIT`` -> ``mit``)."""
    if text is None:
        return None
    if not LICENSE_ID.fullmatch(text):
        raise InputError(
            "--license", f"bad licence {text!r}: expected an SPDX identifier such as MIT or CC-BY-4.0"
        )
    return text.lower()
