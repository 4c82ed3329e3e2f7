"""The five-section session summary: its sections, cleaned (the summary guard), parsed and
written back."""

from __future__ import annotations

import re
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------

SUMMARY_SECTIONS = (
    "Main topics discussed",
    "Techniques/exercises introduced",
    "Things that appeared helpful",
    "Homework assigned",
    "Insights/realizations",
)

_HEADING_VARIANTS: dict[str, str] = {
    SUMMARY_SECTIONS[0]: r"(?:main\s+|key\s+)?(?:topics?|themes?)(?:\s+(?:discussed|covered|explored))?"
    r"|discussion\s+topics|what\s+we\s+discussed",
    SUMMARY_SECTIONS[1]: r"(?:techniques?|exercises?|interventions?|skills?|tools?)"
    r"(?:\s*(?:/|and|&|or)\s*(?:techniques?|exercises?|interventions?|skills?|tools?))?"
    r"(?:\s+(?:introduced|used|practi[cs]ed|discussed|taught|covered))?",
    SUMMARY_SECTIONS[2]: r"(?:things|what)\s+(?:that\s+)?(?:appeared|seemed|was|were)\s+helpful"
    r"|helpful(?:\s*(?:/|and|&)\s*important)?(?:\s+(?:elements|things|aspects|factors|moments))?"
    r"|what\s+(?:helped|worked(?:\s+well)?)",
    SUMMARY_SECTIONS[3]: r"homework(?:\s+(?:assigned|assignments?|given|tasks?|set))?"
    r"|assignments?|between[- ]session\s+tasks|action\s+items",
    SUMMARY_SECTIONS[4]: r"(?:key\s+)?(?:insights?|reali[sz]ations?|takeaways?)"
    r"(?:\s*(?:/|and|&)\s*(?:insights?|reali[sz]ations?))?(?:\s+gained)?",
}
_HEADING_RES = [(name, re.compile(rf"(?:{p})", re.IGNORECASE)) for name, p in _HEADING_VARIANTS.items()]
_MARKUP = re.compile(r"^(?:#{1,6}\s*)?(?:\d{1,2}[.)]\s+|[ivx]{1,4}[.)]\s+)?")
_SESSION_SUMMARY = re.compile(
    r"(?:session\s+)?summary(?:\s+(?:of|for)\s+(?:the\s+)?session(?:\s+\d+)?)?", re.IGNORECASE
)
_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?P<mark>[-*•–—+·]|\d{1,3}[.)]|[a-z][.)])[ \t]+(?P<body>\S.*)$")
_RULE = re.compile(r"^[ \t]*(?:[-*_=][ \t]*){3,}$")


@dataclass(frozen=True)
class SummaryCheck:
    """A summary after cleaning: text, repairs made, sections not found, and input order."""

    text: str
    flags: tuple[str, ...]
    missing: tuple[str, ...]
    out_of_order: bool

    @property
    def ok(self) -> bool:
        """All five sections are there (order is repaired, so it does not count)."""
        return not self.missing


def _unmark(line: str) -> str:
    """A line with markdown emphasis and heading marks removed, for heading matching."""
    bare = line.strip().replace("**", "").replace("__", "")
    bare = bare.strip("*_ \t")
    return _MARKUP.sub("", bare).strip()


def _parse_heading(line: str) -> tuple[str, str] | None:
    """(canonical section, inline text after the colon) when ``line`` is a section heading."""
    bare = _unmark(line)
    if not bare:
        return None
    title, colon, rest = bare.partition(":")
    title = re.sub(r"\s+", " ", title.strip(" *_")).strip()
    rest = rest.strip(" *_")
    for name, pattern in _HEADING_RES:
        if pattern.fullmatch(title):
            if not colon and title != bare.strip():
                return None
            return name, rest
    return None


def _is_session_summary_heading(line: str) -> bool:
    bare = _unmark(line).rstrip(":").strip(" *_")
    return bool(_SESSION_SUMMARY.fullmatch(bare))


def _read(text: str) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """The one summary parser: items per canonical section, the order sections came in, and
    the repairs reading them needed (lenient about markup, preambles and trailing text)."""
    flags: list[str] = []
    sections: dict[str, list[str]] = {}
    found_order: list[str] = []
    current: str | None = None
    prose_section = False  # the current section's items are unbulleted lines so far
    after_blank = False
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    for line in lines:
        if not line.strip() or _RULE.match(line):
            after_blank = True
            continue
        bullet = _BULLET.match(line)
        if bullet is None:
            heading = _parse_heading(line)
        else:  # a numbered or bulleted heading, "1. **Main topics:**", but not "- Homework: x"
            heading = _parse_heading(bullet.group("body"))
            if heading is not None and current is not None:
                titled = bullet.group("body").rstrip(" *_").endswith(":")
                heading = heading if titled and not heading[1] else None
        if heading is None and bullet is None and _is_session_summary_heading(line):
            flags.append("summary_heading_deduplicated")
            continue
        if heading is not None:
            name, inline = heading
            if line.strip() != f"{name}:":
                flags.append("summary_headings_normalized")
            if name in sections:
                flags.append("summary_sections_merged")
            else:
                sections[name] = []
                found_order.append(name)
            current, prose_section, after_blank = name, True, False
            if inline:
                sections[name].append(inline)
                flags.append("summary_bullets_normalized")
            continue
        if current is None:
            flags.append("summary_preamble_removed")
            continue
        items = sections[current]
        if bullet:
            if bullet.group("mark") != "-" or bullet.group("indent"):
                flags.append("summary_bullets_normalized")
            items.append(bullet.group("body").strip())
            prose_section, after_blank = False, False
        elif items and not after_blank and (line[:1].isspace() or line.strip()[:1].islower()):
            items[-1] = f"{items[-1]} {line.strip()}"
        elif prose_section and not (items and after_blank):
            items.append(line.strip())
            flags.append("summary_bullets_normalized")
            after_blank = False
        else:
            flags.append("summary_trailing_text_removed")

    return sections, found_order, flags


def clean_summary(text: str) -> SummaryCheck:
    """Reduce a summarizer reply to the five canonical sections with '- ' bullets.

    Removes what models wrap around the sections (preambles, a repeated "Session Summary:"
    heading, closing remarks), canonicalises heading names and bullet marks, merges repeated
    sections and puts them in canonical order. A reply with no recognisable section comes back
    unchanged (stripped) with all five missing, so the caller can ask again.
    """
    sections, found_order, flags = _read(text)
    if not found_order:
        return SummaryCheck(text.strip(), (), SUMMARY_SECTIONS, False)

    canonical = [name for name in SUMMARY_SECTIONS if name in sections]
    out_of_order = found_order != canonical
    if out_of_order:
        flags.append("summary_sections_reordered")
    blocks: list[str] = []
    for name in canonical:
        items = list(dict.fromkeys(re.sub(r"\s+", " ", item).strip() for item in sections[name]))
        items = [item for item in items if item]
        if items:
            blocks.append(f"{name}:\n" + "\n".join(f"- {item}" for item in items))
    present = {block.split(":\n", 1)[0] for block in blocks}
    missing = tuple(name for name in SUMMARY_SECTIONS if name not in present)
    return SummaryCheck("\n\n".join(blocks), tuple(dict.fromkeys(flags)), missing, out_of_order)


def parse_sections(text: str | None) -> dict[str, list[str]]:
    """Items under each section found in ``text`` (read like :func:`clean_summary` does)."""
    return _read(text)[0] if text else {}


def format_sections(sections: dict[str, list[str]]) -> str:
    """The canonical text: every section in order, ``- `` bullets, a blank line between."""
    blocks = []
    for name in SUMMARY_SECTIONS:
        bullets = sections.get(name) or ["None this session"]
        blocks.append(name + ":\n" + "\n".join(f"- {b}" for b in bullets))
    return "\n\n".join(blocks)
