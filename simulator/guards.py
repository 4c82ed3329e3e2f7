"""Guards every generated message and summary passes through before it is stored.

Each function is pure: it looks at text and says what is wrong or returns a repaired copy, so the
session loop can decide whether to keep, continue, trim or regenerate, and record the repair as a
short snake_case flag on the message. The defects they target are the ones the reference output
shows (SPEC.md, "Quality"): messages cut mid-sentence, near-verbatim repeats, role breaks, and
summaries wrapped in preambles and doubled headings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

__all__ = [
    "DEFAULT_REPETITION_THRESHOLD",
    "SUMMARY_SECTIONS",
    "RoleCheck",
    "SummaryCheck",
    "TextMemo",
    "check_role",
    "clean_summary",
    "ends_mid_sentence",
    "find_repeat",
    "join_continuation",
    "normalize",
    "similarity",
    "split_sentences",
    "trim_to_last_sentence",
]

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


# --------------------------------------------------------------------------------------------
# Continuing a truncated reply
# --------------------------------------------------------------------------------------------

_MAX_OVERLAP_WORDS = 80
# Words people do say twice in a row; a continuation opening with one is not a restatement.
_REAL_DOUBLES = frozenset({"had", "that", "is", "really", "very", "so", "no", "bye", "do", "it"})
_WORD = re.compile(r"\S+")


def _token_key(token: str) -> str:
    return re.sub(r"[\W_]+", "", token.casefold())


def join_continuation(text: str, continuation: str) -> str:
    """Join a reply cut at the token limit with the model's continuation of it.

    A continuation that restates the tail of ``text`` is merged over it, the restated words
    winning, so a cut word restated whole ("stan" + "standards") replaces its fragment. A bare
    fragment ("stan" + "dards") is glued on when the joined word occurs elsewhere in the reply;
    otherwise a new word is assumed (the common case: cuts fall between words far more often than
    inside them). Punctuation attaches directly; a leading paragraph break is kept.
    """
    if not continuation.strip():
        return text
    if not text.strip():
        return continuation.strip()
    head = continuation.lstrip()
    tail_tokens = list(_WORD.finditer(text))[-_MAX_OVERLAP_WORDS:]
    head_tokens = list(_WORD.finditer(head))[:_MAX_OVERLAP_WORDS]
    tail_keys = [_token_key(m.group()) for m in tail_tokens]
    head_keys = [_token_key(m.group()) for m in head_tokens]
    cut_inside_word = not text[-1].isspace()
    for k in range(min(len(tail_keys), len(head_keys)), 0, -1):
        tail, start = tail_keys[-k:], head_keys[:k]
        last, first = tail[-1], start[-1]
        if tail[:-1] != start[:-1] or not last:
            continue
        if last == first:
            if k >= 2 or last not in _REAL_DOUBLES:
                return text[: tail_tokens[-k].start()] + head
        elif cut_inside_word and first.startswith(last) and (k >= 2 or len(last) >= 4):
            return text[: tail_tokens[-k].start()] + head
    if text[-1].isspace():
        return text + head
    if continuation[0].isspace():
        gap = continuation[: len(continuation) - len(head)]
        return text + ("\n\n" if "\n" in gap else " ") + head
    if head[0] in ",.;:!?…)]}'’\"”-—–":
        return text + head
    if tail_keys and head_keys and text[-1].isalpha() and head[0].islower():
        joined = tail_keys[-1] + head_keys[0]
        words = set(_token_key(w) for w in text.split()) | set(_token_key(w) for w in head.split())
        if joined in words:
            return text + head
    return text + " " + head


# --------------------------------------------------------------------------------------------
# Repetition
# --------------------------------------------------------------------------------------------

DEFAULT_REPETITION_THRESHOLD = 0.3
"""Share of a message's 4-word sequences already said in an earlier message that marks a repeat.

Calibrated on the reference session: its repeated closing ("It sounds like we've had a very
productive session, Marcus...") scores 0.42 against the earlier one (0.34 before the role guard
strips its meta paragraph), while every other pair of turns in it scores 0.16 or less.
"""

_SHINGLE = 4
_SHORT_TOKENS = 8  # below this many words, compare whole token sequences instead
MEMO_LIMIT = 1024
"""Texts one :class:`TextMemo` keeps; a session of 100 messages with regenerations stays under it."""


def normalize(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form for comparing messages."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"['’‘ʼ`]", "", text)
    text = re.sub(r"[\W_]+", " ", text)
    return text.strip()


class TextMemo:
    """Each text's words and shingles, worked out once: a session compares every new message
    with all its earlier ones. One memo per session, dropped with it (a global LRU thrashes
    once more than about a hundred sessions run at once); bounded, oldest text out first."""

    def __init__(self, limit: int = MEMO_LIMIT) -> None:
        self.limit = limit
        self._tokens: dict[str, tuple[str, ...]] = {}
        self._shingles: dict[str, frozenset[tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def tokens(self, text: str) -> tuple[str, ...]:
        found = self._tokens.get(text)
        if found is None:
            found = tuple(normalize(text).split())
            if len(self._tokens) >= self.limit:
                oldest = next(iter(self._tokens))
                del self._tokens[oldest]
                self._shingles.pop(oldest, None)
            self._tokens[text] = found
        return found

    def shingles(self, text: str) -> frozenset[tuple[str, ...]]:
        found = self._shingles.get(text)
        if found is None:
            tokens = self.tokens(text)
            found = frozenset(tokens[i : i + _SHINGLE] for i in range(len(tokens) - _SHINGLE + 1))
            self._shingles[text] = found
        return found


def similarity(a: str, b: str, memo: TextMemo | None = None) -> float:
    """How much of the shorter message the other already says, in [0, 1].

    For messages of a few words it is the difflib ratio of their word sequences. Otherwise it is
    the share of the shorter one's 4-word shingles found in the longer one, damped when the shorter
    is under half the longer's length so that one stock sentence reused in a short reply does not
    count as repeating a whole message. Containment rather than a plain ratio because LLM loops
    recycle an earlier message's paragraphs around a new middle (see the reference session).
    """
    memo = memo if memo is not None else TextMemo()
    ta, tb = memo.tokens(a), memo.tokens(b)
    if not ta or not tb:
        return 1.0 if ta == tb else 0.0
    short, long_ = sorted((len(ta), len(tb)))
    if short < _SHORT_TOKENS:
        return SequenceMatcher(None, ta, tb, autojunk=False).ratio()
    sa, sb = memo.shingles(a), memo.shingles(b)
    contained = len(sa & sb) / min(len(sa), len(sb))
    damping = min(1.0, short / (0.5 * long_))
    return contained * damping


def find_repeat(
    text: str,
    earlier: Sequence[str],
    threshold: float = DEFAULT_REPETITION_THRESHOLD,
    memo: TextMemo | None = None,
) -> int | None:
    """Index of the earlier message ``text`` most resembles, if at or above ``threshold``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"repetition threshold must be in (0, 1], got {threshold}")
    memo = memo if memo is not None else TextMemo()
    best_index: int | None = None
    best_score = threshold
    for index, previous in enumerate(earlier):
        score = similarity(text, previous, memo)
        if score >= best_score and (best_index is None or score > best_score):
            best_index, best_score = index, score
    return best_index


# --------------------------------------------------------------------------------------------
# Role breaks
# --------------------------------------------------------------------------------------------

Speaker = Literal["Therapist", "Patient"]

_ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "Therapist": ("therapist", "counselor", "counsellor"),
    "Patient": ("patient", "client"),
}
_OTHER: dict[str, Speaker] = {"Therapist": "Patient", "Patient": "Therapist"}

_NARRATION = (
    r"(?:has|also|then|continues|responds|replies|asks|says|gave|gives|introduced|suggested"
    r"|provided|concluded|ended|acknowledged|validated)\b"
)
_META_TAIL = [
    # Narration about the conversation; what follows it is more of the same.
    r"\b(?:this|the)\s+(?:conversation|dialogue|exchange|transcript|interaction|session)\s+"
    r"(?:has\s+been|was|is)\s+an?\b[^\n]{0,80}?\bbetween\b",
    r"\bbetween\s+(?:a|the)\s+(?:therapist|counsell?or|ai)\b[^\n]{0,60}?"
    r"\band\s+(?:a|the)\s+(?:patient|client|user)\b",
    r"\b(?:therapist|patient|client)\s+\((?:me|myself|you)\)",
    rf"^\W*the\s+therapist\s+{_NARRATION}[^\n]*\bthe\s+(?:patient|client)\b",
    rf"^\W*the\s+(?:patient|client)\s+{_NARRATION}[^\n]*\bthe\s+therapist\b",
    r"^\W*(?:end\s+of\s+(?:the\s+)?(?:session|conversation|transcript|dialogue|role-?play|simulation)"
    r"|(?:the\s+)?(?:session|conversation|transcript|role-?play|simulation)\s+"
    r"(?:ends|ended|is\s+over|concludes|complete[ds]?))\W*$",
]
_META_PARAGRAPH = [
    # Stepping out of the role without narrating the rest of the session.
    r"\bas\s+an?\s+(?:ai|artificial\s+intelligence|(?:ai\s+|large\s+)?language\s+model|llm"
    r"|ai\s+assistant|virtual\s+assistant|chatbot)\b",
    r"\bI(?:'m|’m|\s+am)\s+(?:just\s+|only\s+|merely\s+)?an?\s+(?:ai|artificial\s+intelligence"
    r"|(?:large\s+)?language\s+model|llm|chatbot|virtual\s+assistant|ai\s+assistant)\b",
    r"\bI(?:'m|’m|\s+am)\s+not\s+(?:a\s+real|an\s+actual|a\s+licensed)\s+"
    r"(?:therapist|human|counsell?or|mental\s+health\s+professional)\b",
    r"\b(?:in\s+)?(?:this|the|our)\s+(?:simulated|simulation)\b",
    r"\bsimulated\s+(?:(?:therapy|cbt|counsell?ing)\s+)?(?:session|conversation|dialogue|scenario"
    r"|patient|therapist)\b",
]
_META_TAIL_RE = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in _META_TAIL]
_META_PARAGRAPH_RE = [re.compile(p, re.IGNORECASE) for p in _META_PARAGRAPH]

_STAGE_DIRECTIONS = [
    re.compile(r"\[[^\[\]\n]{1,80}\](?!\()"),
    re.compile(
        r"(?:^|(?<=[.!?…])|(?<=[.!?…][ \t]))[ \t]*\*(?![*\s])([^*\n]{1,60})(?<![.!?:\s])\*(?!\*)"
        r"(?=[ \t]*$|[ \t]+[A-Z\"“])",
        re.MULTILINE,
    ),
    re.compile(
        r"\((?:[A-Z][a-z]+\s+)?(?:smiles?|smiling|laughs?|laughing|chuckles?|chuckling|sighs?"
        r"|sighing|nods?|nodding|pauses?|pausing|leans?|leaning|takes?\s+a\s+(?:deep\s+)?breath)"
        r"\b[^()\n]{0,40}\)",
        re.IGNORECASE,
    ),
]


@dataclass(frozen=True)
class RoleCheck:
    """A message after the role guard: cleaned text, repairs made, and whether to regenerate."""

    text: str
    flags: tuple[str, ...]
    needs_regeneration: bool


def _label_pattern(labels: Sequence[str]) -> str:
    alternatives = "|".join(re.escape(label) for label in sorted(set(labels), key=len, reverse=True))
    return (
        rf"(?:\*\*|__)?[ \t]*(?:{alternatives})(?:[ \t]*\([^)\n]{{0,40}}\))?"
        r"[ \t]*(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]*"
    )


def _split_names(speaker: Speaker, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Own and other names: the first name given is the speaker's, as is its first word."""
    cleaned = [n.strip() for n in names if n.strip()]
    if not cleaned:
        return [], []
    own = {cleaned[0], cleaned[0].split()[0]}
    others = {n for n in cleaned[1:] if n not in own}
    others |= {n.split()[0] for n in others if n.split()[0] not in own}
    return sorted(own), sorted(others)


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def check_role(text: str, speaker: Speaker, names: Sequence[str] = ()) -> RoleCheck:
    """Keep a message in its speaker's voice: strip its own label, cut lines written for the other
    speaker, drop meta commentary about the conversation or being an AI, and stage directions.

    ``names`` are display names of the participants, the speaker's own first (e.g.
    ``("Nova", "Marcus Thompson")`` for the therapist); a name's first word counts as the name.
    """
    if not text.strip():
        return RoleCheck("", ("empty",), True)
    flags: list[str] = []
    own_names, other_names = _split_names(speaker, names)
    own_labels = [*_ROLE_WORDS[speaker], *own_names]
    other_labels = [*_ROLE_WORDS[_OTHER[speaker]], *other_names]
    body = text.strip()

    leading = re.compile(r"^\s*" + _label_pattern(own_labels), re.IGNORECASE)
    while match := leading.match(body):
        body = body[match.end() :].lstrip()
        flags.append("role_label_stripped")

    other = _label_pattern(other_labels)
    cut = re.compile(rf"(?:^[ \t>]*{other}|(?<=[.!?…\"”])[ \t]+{other})", re.IGNORECASE | re.MULTILINE)
    if match := cut.search(body):
        body = body[: match.start()].rstrip()
        flags.append("other_speaker_cut")

    own_mid = re.compile(r"^[ \t>]*" + _label_pattern(own_labels), re.IGNORECASE | re.MULTILINE)
    body, count = own_mid.subn("", body)
    if count:
        flags.append("role_label_stripped")

    kept: list[str] = []
    removed_meta = False
    for paragraph in re.split(r"\n[ \t]*\n", body):
        if any(p.search(paragraph) for p in _META_TAIL_RE):
            removed_meta = True
            break
        if any(p.search(paragraph) for p in _META_PARAGRAPH_RE):
            removed_meta = True
            continue
        kept.append(paragraph)
    if removed_meta:
        flags.append("meta_commentary_removed")
    body = "\n\n".join(kept)

    staged = False
    for pattern in _STAGE_DIRECTIONS:
        body, count = pattern.subn("", body)
        staged = staged or count > 0
    if staged:
        flags.append("stage_direction_removed")

    if flags:
        body = _tidy(body)
    if not body.strip():
        flags.append("empty")
        return RoleCheck("", tuple(dict.fromkeys(flags)), True)
    return RoleCheck(body, tuple(dict.fromkeys(flags)), False)


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


def clean_summary(text: str) -> SummaryCheck:
    """Reduce a summarizer reply to the five canonical sections with '- ' bullets.

    Removes what models wrap around the sections (preambles, a repeated "Session Summary:"
    heading, closing remarks), canonicalises heading names and bullet marks, merges repeated
    sections and puts them in canonical order. A reply with no recognisable section comes back
    unchanged (stripped) with all five missing, so the caller can ask again.
    """
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
