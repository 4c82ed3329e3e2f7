"""Guards every generated message passes through before it is stored (summaries: see
:func:`simulator.summary.clean_summary`).

Each function is pure: it looks at text and says what is wrong or returns a repaired copy, so the
session loop can decide whether to keep, continue, trim or regenerate, and record the repair as a
short snake_case flag on the message. The defects they target are the ones the reference output
shows (tests/data/reference_session_08.txt): messages cut mid-sentence, near-verbatim repeats
and role breaks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import chain

from simulator.records import Speaker
from simulator.text import normalize

__all__ = [
    "BACKCHANNELS",
    "CONTENT_WORDS",
    "DEFAULT_REPETITION_THRESHOLD",
    "SHORT_LOOP_RUN",
    "RepeatFinder",
    "RoleCheck",
    "check_role",
    "find_repeat",
    "find_short_loop",
    "is_repeat",
    "join_continuation",
    "similarity",
]

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

CONTENT_WORDS = 8
"""Both messages need this many words to count as a repeat: shorter ones ("Yeah.", "I don't
know.", "Okay, that makes sense.") are how people answer, not repetition."""
MIN_SHARED_SHINGLES = 8
"""4-word sequences a repeat must share with the earlier message (all of them when the shorter
message has fewer), on top of the score: one stock phrase in common is not a repeat."""
STOCK_RUN = 12
"""Shared 4-word sequences that all sit in one unbroken stretch of the new message, fewer than
this (a stretch under 15 words: "Can you tell me a little more about what went through your
mind?"), are one stock sentence reused around new content, not a repeat. Therapists talking
with brief-answer clients reuse such questions turn after turn."""
SHORT_LOOP_RUN = 5
"""The same short message on this many consecutive turns of one speaker is a loop."""
BACKCHANNELS = frozenset(
    {
        "yeah", "yes", "yep", "yup", "yeah yeah", "yes yes", "mm hmm", "mhm", "mm", "hmm", "uh huh",
        "um", "uh", "okay", "ok", "right", "sure", "i see", "i know", "true", "exactly", "no", "nope",
        "oh", "ah", "really", "wow", "alright", "all right", "got it", "mm hmm yeah", "yeah mm hmm",
        "okay yeah", "yeah okay", "right right", "sure sure", "uh hm", "mmm", "yes maam", "oh okay",
        "i dont know", "thats right", "thats true", "fine", "good", "great", "cool", "kind of", "sort of",
        "maybe", "i guess", "probably", "of course", "definitely", "absolutely", "totally",
    }
)  # fmt: skip
"""Normalised replies that keep a conversation going; a run of them is listening, never a loop."""

_SHINGLE = 4


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


@lru_cache(maxsize=4096)
def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    tokens = _tokens(text)
    return frozenset(tokens[i : i + _SHINGLE] for i in range(len(tokens) - _SHINGLE + 1))


def similarity(a: str, b: str) -> float:
    """How much of the shorter message the other already says, in [0, 1].

    For messages of a few words it is the difflib ratio of their word sequences. Otherwise it is
    the share of the shorter one's 4-word shingles found in the longer one, damped when the shorter
    is under half the longer's length so that one stock sentence reused in a short reply does not
    count as repeating a whole message. Containment rather than a plain ratio because LLM loops
    recycle an earlier message's paragraphs around a new middle (see the reference session).
    The score alone does not make a repeat: see :func:`is_repeat`.
    """
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb:
        return 1.0 if ta == tb else 0.0
    short, long_ = sorted((len(ta), len(tb)))
    if short < CONTENT_WORDS:
        return SequenceMatcher(None, ta, tb, autojunk=False).ratio()
    sa, sb = _shingles(a), _shingles(b)
    contained = len(sa & sb) / min(len(sa), len(sb))
    damping = min(1.0, short / (0.5 * long_))
    return contained * damping


def is_repeat(text: str, earlier: str, threshold: float = DEFAULT_REPETITION_THRESHOLD) -> float | None:
    """The similarity when ``text`` re-says ``earlier``'s substance, else None.

    Both need :data:`CONTENT_WORDS` words and :data:`MIN_SHARED_SHINGLES` shared 4-word
    sequences, not just one stock sentence (:data:`STOCK_RUN`), and the score must reach
    ``threshold``. On human dialogue
    (``benchmarks/real_dialogue.py``) nothing is flagged: 0 of 576 utterances of transcribed
    motivational interviewing (AnnoMI), against 21% under the previous rule that scored two
    acknowledgements as identical, and 0 of 183 in peer-support chats (ESConv, Reddit).
    """
    ta, tb = _tokens(text), _tokens(earlier)
    if len(ta) < CONTENT_WORDS or len(tb) < CONTENT_WORDS:
        return None
    sa, sb = _shingles(text), _shingles(earlier)
    common = sa & sb
    shared = len(common)
    if shared < min(MIN_SHARED_SHINGLES, len(sa), len(sb)):
        return None
    if shared < min(STOCK_RUN, len(sa), len(sb)) and _one_stretch(ta, common):
        return None
    short, long_ = sorted((len(ta), len(tb)))
    score = shared / min(len(sa), len(sb)) * min(1.0, short / (0.5 * long_))  # as in similarity()
    return score if score >= threshold else None


def _one_stretch(tokens: tuple[str, ...], common: frozenset[tuple[str, ...]]) -> bool:
    """Whether every shared 4-word sequence of ``tokens`` lies in one unbroken stretch."""
    starts = [i for i in range(len(tokens) - _SHINGLE + 1) if tokens[i : i + _SHINGLE] in common]
    return starts[-1] - starts[0] + 1 == len(starts)


_MAX_CANDIDATES = 8  # earlier messages scored per new one: those sharing the most sequences
_MAX_POSTINGS = 16  # a sequence said more often than this is a stock phrase: its latest uses count


class RepeatFinder:
    """One speaker's messages so far, indexed by 4-word sequence, so that each new message is
    scored only against the earlier ones it shares a sequence with: auditing a transcript stays
    linear in its length instead of comparing every pair."""

    def __init__(self, threshold: float = DEFAULT_REPETITION_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"repetition threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._texts: list[str] = []
        self._index: dict[tuple[str, ...], list[int]] = {}

    def add(self, text: str) -> None:
        position = len(self._texts)
        self._texts.append(text)
        if len(_tokens(text)) >= CONTENT_WORDS:
            for shingle in _shingles(text):
                positions = self._index.setdefault(shingle, [])
                positions.append(position)
                if len(positions) > _MAX_POSTINGS:
                    del positions[0]

    def find(self, text: str) -> tuple[int, float] | None:
        """(position among the added messages, score) of the one ``text`` repeats most, the
        first of equals; None when it repeats none (:func:`is_repeat`)."""
        if len(_tokens(text)) < CONTENT_WORDS:
            return None
        index = self._index
        shared = Counter(chain.from_iterable(index.get(shingle, ()) for shingle in _shingles(text)))
        needed = min(MIN_SHARED_SHINGLES, len(_shingles(text)))
        candidates = sorted((p for p in shared if shared[p] >= needed), key=lambda p: (-shared[p], p))
        best: tuple[int, float] | None = None
        for position in sorted(candidates[:_MAX_CANDIDATES]):
            score = is_repeat(text, self._texts[position], self.threshold)
            if score is not None and (best is None or score > best[1]):
                best = (position, score)
        return best


def find_repeat(
    text: str, earlier: Sequence[str], threshold: float = DEFAULT_REPETITION_THRESHOLD
) -> int | None:
    """Index of the earlier message ``text`` most resembles, if it repeats it (:func:`is_repeat`);
    the first of equals. For a long history, :class:`RepeatFinder` avoids comparing every pair."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"repetition threshold must be in (0, 1], got {threshold}")
    best: tuple[int, float] | None = None
    for index, previous in enumerate(earlier):
        score = is_repeat(text, previous, threshold)
        if score is not None and (best is None or score > best[1]):
            best = (index, score)
    return best[0] if best is not None else None


def find_short_loop(text: str, earlier: Sequence[str]) -> int | None:
    """Index in ``earlier`` (one speaker's previous turns) where a run of the same short message
    began, when ``text`` makes it :data:`SHORT_LOOP_RUN` long; backchannels never count."""
    key = _tokens(text)
    if not key or " ".join(key) in BACKCHANNELS or len(key) >= CONTENT_WORDS:
        return None
    run = SHORT_LOOP_RUN - 1
    if len(earlier) < run or any(_tokens(e) != key for e in earlier[-run:]):
        return None
    start = len(earlier) - run
    while start > 0 and _tokens(earlier[start - 1]) == key:
        start -= 1
    return start


# --------------------------------------------------------------------------------------------
# Role breaks
# --------------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class _RolePatterns:
    """The label regexes of one speaker with given names, compiled once (per speaker and names:
    two entries a persona, so the cache holds a 2,000-persona run without recompiling)."""

    leading: re.Pattern[str]
    other: re.Pattern[str]
    own_mid: re.Pattern[str]


@lru_cache(maxsize=4096)
def _role_patterns(speaker: Speaker, names: tuple[str, ...]) -> _RolePatterns:
    own_names, other_names = _split_names(speaker, names)
    own = _label_pattern([*_ROLE_WORDS[speaker], *own_names])
    other = _label_pattern([*_ROLE_WORDS[_OTHER[speaker]], *other_names])
    return _RolePatterns(
        leading=re.compile(r"^\s*" + own, re.IGNORECASE),
        other=re.compile(rf"(?:^[ \t>]*{other}|(?<=[.!?…\"”])[ \t]+{other})", re.IGNORECASE | re.MULTILINE),
        own_mid=re.compile(r"^[ \t>]*" + own, re.IGNORECASE | re.MULTILINE),
    )


def check_role(text: str, speaker: Speaker, names: Sequence[str] = ()) -> RoleCheck:
    """Keep a message in its speaker's voice: strip its own label, cut lines written for the other
    speaker, drop meta commentary about the conversation or being an AI, and stage directions.

    ``names`` are display names of the participants, the speaker's own first (e.g.
    ``("Nova", "Marcus Thompson")`` for the therapist); a name's first word counts as the name.
    """
    if not text.strip():
        return RoleCheck("", ("empty",), True)
    flags: list[str] = []
    patterns = _role_patterns(speaker, tuple(names))
    body = text.strip()

    while match := patterns.leading.match(body):
        body = body[match.end() :].lstrip()
        flags.append("role_label_stripped")

    if match := patterns.other.search(body):
        body = body[: match.start()].rstrip()
        flags.append("other_speaker_cut")

    body, count = patterns.own_mid.subn("", body)
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
