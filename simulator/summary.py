"""The five-section session summary: its shape, parsed and written back."""

from __future__ import annotations

import re

from simulator.guards import SUMMARY_SECTIONS

SECTIONS = SUMMARY_SECTIONS

_HEADING = re.compile(r"^\s*([A-Za-z][A-Za-z /&-]*?):\s*$")
_BULLET = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+(.*\S)\s*$")


def parse_sections(text: str | None) -> dict[str, list[str]]:
    """Bullets under each known heading (case-insensitive); unknown headings are skipped."""
    sections: dict[str, list[str]] = {}
    if not text:
        return sections
    lookup = {name.lower(): name for name in SECTIONS}
    current: str | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = lookup.get(heading[1].strip().lower())
            if current is not None:
                sections.setdefault(current, [])
            continue
        bullet = _BULLET.match(line)
        if bullet and current is not None:
            sections[current].append(bullet[1])
    return sections


def format_sections(sections: dict[str, list[str]]) -> str:
    """The canonical text: every section in order, ``- `` bullets, a blank line between."""
    blocks = []
    for name in SECTIONS:
        bullets = sections.get(name) or ["None this session"]
        blocks.append(name + ":\n" + "\n".join(f"- {b}" for b in bullets))
    return "\n\n".join(blocks)
