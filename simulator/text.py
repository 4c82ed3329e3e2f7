"""Text helpers the guards, the end-phrase detector and the summarizer share: where sentences
end, whether a text stops inside one, and a normal form for comparing messages."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ends_mid_sentence", "normalize", "split_sentences", "trim_to_last_sentence"]

# --------------------------------------------------------------------------------------------
# Sentences: where they end, and whether a text stops inside one
# --------------------------------------------------------------------------------------------

_TERMINALS = ".!?…。！？"
_OPENERS = "\"'“‘([{«"
_CLOSERS = "\"'”’»)]}*_"
_TERMINAL_RUN = re.compile(r"[.!?…。！？]+[\"'”’»)\]}*_]*")
# A period after these never ends a sentence ("Dr. Patel", "e.g. journaling").
_NEVER_FINAL = frozenset(
    {"dr", "mr", "mrs", "ms", "prof", "st", "sr", "jr", "vs", "cf", "e.g", "i.e", "approx", "fig", "mt"}
)
# A sentence ending with one of these titles is unfinished ("I called Dr.").
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "prof", "mt", "rev", "gen", "hon"})
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*•–—+·]|\d{1,3}[.)]|[a-zA-Z][.)])[ \t]+\S")


def _strip_trailing_decor(text: str) -> str:
    """Drop trailing whitespace and emoji, which may follow a finished sentence."""
    end = len(text)
    while end > 0:
        ch = text[end - 1]
        cat = unicodedata.category(ch)
        emoji_part = ch in "\u200d\ufe0f\ufe0e" or 0x1F3FB <= ord(ch) <= 0x1F3FF
        if ch.isspace() or cat == "So" or emoji_part:
            end -= 1
        else:
            break
    return text[:end]


def _word_before(text: str, end: int) -> str:
    """The whitespace-delimited word ending at ``end``, lower-cased, outer punctuation removed."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lower().lstrip(_OPENERS).rstrip(".")


def _is_boundary(text: str, run_start: int, run_end: int) -> bool:
    """Whether the terminal punctuation at text[run_start:run_end] closes a sentence."""
    if run_end < len(text) and not text[run_end].isspace():
        return False  # "3.5", "e.g.,", "U.S.A"
    rest = text[run_end:].lstrip(" \t")
    if rest[:1].islower():
        return False  # "I just... don't know", '"Why?" she asked'
    if text[run_start] != ".":
        return True
    word = _word_before(text, run_start + 1)
    if word in _NEVER_FINAL:
        return False
    if len(word) == 1 and word.isalpha() and run_start > 0 and text[run_start - 1].isupper():
        return False  # an initial: "J. Smith"
    if word.isdigit():
        line_start = text.rfind("\n", 0, run_start) + 1
        if not text[line_start : run_start - len(word)].strip():
            return False  # a list number: "1. Practise ..."
    return True


def _sentence_ends(text: str) -> list[int]:
    """Offsets just past each complete sentence (or complete list item) in ``text``."""
    ends: list[int] = []
    for match in _TERMINAL_RUN.finditer(text):
        if _is_boundary(text, match.start(), match.end()):
            ends.append(match.end())
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if line != body and _LIST_ITEM.match(body):
            ends.append(offset + len(body.rstrip()))
        offset += len(line)
    return sorted(set(ends))


def split_sentences(text: str) -> list[str]:
    """Split into sentences, keeping abbreviations, decimals and list numbers intact."""
    sentences: list[str] = []
    start = 0
    for end in [*_sentence_ends(text), len(text)]:
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    return sentences


def ends_mid_sentence(text: str) -> bool:
    """True when ``text`` stops inside a sentence, as a reply cut at the token limit does.

    A heuristic: pair it with ``finish_reason == "length"``; a finished reply may still end on a
    colon or an unpunctuated list item, which this also reports.
    """
    core = _strip_trailing_decor(text)
    if not core:
        return False
    bare = core.rstrip(_CLOSERS + " \t")
    if not bare:
        return False
    if bare[-1] not in _TERMINALS:
        return True
    return bare[-1] == "." and _word_before(bare, len(bare)) in _TITLES


def trim_to_last_sentence(text: str) -> str | None:
    """Cut ``text`` back to its last complete sentence; None when none is complete."""
    body = text.rstrip()
    if not body:
        return None
    if not ends_mid_sentence(body):
        return body
    ends = [end for end in _sentence_ends(body) if end < len(body)]
    if not ends:
        return None
    trimmed = body[: ends[-1]].rstrip()
    return trimmed or None


def normalize(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form for comparing messages."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"['’‘ʼ`]", "", text)
    text = re.sub(r"[\W_]+", " ", text)
    return text.strip()
