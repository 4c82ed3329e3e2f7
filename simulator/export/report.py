"""What an export did, for the printed summary and the dataset card."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from simulator.export.example import Example
from simulator.export.options import ExportOptions

CHARS_PER_TOKEN = 4
"""The usual rough ratio for English text; the summary says it is an estimate."""


def tokens(examples: list[Example]) -> int:
    return sum(e.chars for e in examples) // CHARS_PER_TOKEN


@dataclass
class ExportReport:
    options: ExportOptions
    splits: dict[str, list[Example]]
    files: dict[str, str]
    """Split name -> file name inside ``--out`` (for a folder) or ``--out``'s name."""
    excluded: Counter[str] = field(default_factory=Counter)
    dedupe: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exported(self) -> int:
        return sum(len(v) for v in self.splits.values())

    @property
    def out(self) -> Path:
        return self.options.out

    def lines(self) -> list[str]:
        """The summary ``simulator export`` prints."""
        o = self.options
        side = "" if o.fmt == "records" else f" as {o.perspective}"
        lines = [f"exported {self.exported} session(s){side} ({o.fmt}) to {self.out}"]
        for name, examples in self.splits.items():
            personas = len({(e.persona_id) for e in examples})
            lines.append(
                f"  {name}: {len(examples)} example(s), {personas} persona(s), "
                f"~{tokens(examples):,} tokens -> {self.files[name]}"
            )
        total = sum(self.excluded.values())
        lines.append(f"excluded {total} session(s)" + (":" if total else ""))
        lines.extend(f"  {reason}: {count}" for reason, count in sorted(self.excluded.items()))
        if self.dedupe is not None:
            lines.append(f"dedupe: {self.dedupe}")
        all_examples = [e for v in self.splits.values() for e in v]
        lines.append(
            f"tokens: ~{tokens(all_examples):,} in all (estimate: {CHARS_PER_TOKEN} characters a token)"
        )
        lines.extend(f"note: {n}" for n in self.notes)
        return lines
