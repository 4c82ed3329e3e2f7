"""Grammatical person for the offline backend: persona prose is written about the patient, the
patient speaks about itself, the therapist speaks to the patient, the summary reports on it.

Every conversion reads the same two tables: :data:`PRONOUNS` (one row per pronoun case) and
:data:`AGREEMENT` (verb forms per person). Only pronouns, the patient's name and the verb that
agrees with a converted subject change, so the persona's own words come through. Quoted speech
("I should have caught that") is left as said: an inner voice stays in its own person.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from simulator.backends.offline.lexicon import (
    ADVERBS,
    AFTER_OBJECT_YOU,
    NOT_PRESENT,
    OBJECTS,
    VERBS_AFTER_AND,
)

Person = Literal["first", "second", "third"]


class Pronouns(NamedTuple):
    subject: str
    object: str
    possessive: str
    reflexive: str


def pronouns_of(spec: str | None, prose: str = "") -> Pronouns:
    """``she/her`` -> she, her, her, herself; missing -> what ``prose`` about the patient uses
    most (he / she), else they."""
    key = (spec or "").lower()
    if not key and prose:
        he = len(re.findall(r"\b(?:he|him|his|himself)\b", prose, re.IGNORECASE))
        she = len(re.findall(r"\b(?:she|her|hers|herself)\b", prose, re.IGNORECASE))
        key = "he" if he > she else "she" if she > he else ""
    if key.startswith("he"):
        return Pronouns("he", "him", "his", "himself")
    if key.startswith("she"):
        return Pronouns("she", "her", "her", "herself")
    return THEY


THEY = Pronouns("they", "them", "their", "themselves")

PRONOUNS: dict[str, dict[str, str]] = {
    # case: the patient's pronoun in each voice ("he", "she", "they" for the third person)
    "subject": {"first": "I", "second": "you", "he": "he", "she": "she", "they": "they"},
    "object": {"first": "me", "second": "you", "he": "him", "she": "her", "they": "them"},
    "possessive": {"first": "my", "second": "your", "he": "his", "she": "her", "they": "their"},
    "absolute": {"first": "mine", "second": "yours", "he": "his", "she": "hers", "they": "theirs"},
    "reflexive": {
        "first": "myself",
        "second": "yourself",
        "he": "himself",
        "she": "herself",
        "they": "themselves",
    },
}
"""One row per pronoun case: how the patient is named in each voice."""

AGREEMENT: tuple[tuple[str, str, str], ...] = (
    # (after I, after you / they, after he / she)
    ("am", "are", "is"),
    ("'m", "'re", "'s"),
    ("was", "were", "was"),
    ("wasn't", "weren't", "wasn't"),
    ("am not", "aren't", "isn't"),
    ("have", "have", "has"),
    ("'ve", "'ve", "'s"),
    ("haven't", "haven't", "hasn't"),
    ("do", "do", "does"),
    ("don't", "don't", "doesn't"),
    ("go", "go", "goes"),
)
"""Verb forms that agree with the subject; other present-tense verbs take -s after he / she."""

_AGREEING = frozenset(form for row in AGREEMENT for form in row if " " not in form and form[0] != "'")
_CONJUNCTIONS = frozenset({"and", "but", "or", "then"})
_LINKING = r"to|and|or|about|for|that|when|because|if|at|in|with|as|so|but|again|anymore|too"
_TOKEN = re.compile(r"^([\"'“‘(]*)(.*?)([\"”’),.;:!?]*)$")


def _voice_key(person: Person, pronouns: Pronouns) -> str:
    return pronouns.subject if person == "third" else person


def _agree(verb: str, person: str) -> str | None:
    """The form of a verb after a subject of ``person`` ("first", "second", "he" ...), or None
    when the word is not a present-tense verb this table can inflect."""
    column = 0 if person == "first" else 2 if person in ("he", "she") else 1
    for row in AGREEMENT:
        if verb in row:
            return row[column]
    past = verb.endswith("ed") and not verb.endswith("eed")  # "need", "succeed" are present
    if verb in NOT_PRESENT or not re.fullmatch(r"[a-z]+", verb) or past or verb.endswith(("ing", "ly")):
        return None
    base = _base(verb)
    if column != 2:
        return base
    if base.endswith(("s", "sh", "ch", "x", "o")):
        return base + "es"
    if re.fullmatch(r"[a-z]*[^aeiou]y", base):
        return base[:-1] + "ies"
    return base + "s"


def _after_conjunction(out: list[str]) -> bool:
    """Whether the next word follows "and" / "but" (an adverb between allowed): a verb there
    shares the sentence's subject ("I miss work and feel guilty")."""
    words = [w.lower() for w in out[-2:]]
    if words and (words[-1] in ADVERBS or words[-1].endswith("ly")):
        words = words[:-1]
    return bool(words) and words[-1] in _CONJUNCTIONS


def is_verb(word: str) -> bool:
    """Whether ``word`` is one of the verbs persona prose uses without a subject ("Avoids ...")."""
    return word in VERBS_AFTER_AND or word in _AGREEING


def _base(verb: str) -> str:
    if re.fullmatch(r"[a-z]+(?:sses|shes|ches|xes|oes)", verb):
        return verb[:-2]
    if re.fullmatch(r"[a-z]+[^aeiou]ies", verb):
        return verb[:-3] + "y"
    if re.fullmatch(r"[a-z]+[^su]s", verb):
        return verb[:-1]
    return verb


def _pronoun_table(source: str, name: str | None) -> dict[str, tuple[str, str]]:
    """Word -> (case, original) for the words that name the patient in the source voice."""
    table: dict[str, tuple[str, str]] = {}
    for case, row in PRONOUNS.items():
        word = row[source]
        if word not in table:  # "her": object and possessive; resolved by context below
            table[word.lower()] = (case, word)
    if name:
        table[name.split()[0].lower()] = ("subject", name)
    return table


_QUOTE = re.compile(r'("[^"]*"|“[^”]*”)')
_GLUED = re.compile(r"\b(I|you|he|she|they)'(m|re|s|ve|d|ll)\b", re.IGNORECASE)


def convert(
    text: str,
    source: Person,
    target: Person,
    pronouns: Pronouns = THEY,
    name: str | None = None,
) -> str:
    """Say ``text`` about the patient in another voice: 'He misses work and feels guilty' (third)
    -> 'You miss work and feel guilty' (second). ``name`` is the patient's, read as the subject
    "he"/"she" in third-person prose; ``pronouns`` are the patient's own. Quotes stay as said."""
    src, dst = _voice_key(source, pronouns), _voice_key(target, pronouns)
    if src == dst:
        return text
    text = text.replace("’", "'")
    if name:
        first = re.escape(name.split()[0])
        text = re.sub(rf"\b(?:{re.escape(name)}|{first})'s\b", PRONOUNS["possessive"][src], text)
        text = re.sub(rf"\b{re.escape(name)}\b", name.split()[0], text)
    parts = _QUOTE.split(text)
    table = _pronoun_table(src, name)
    converted = [p if i % 2 else _convert_plain(p, table, src, dst) for i, p in enumerate(parts)]
    return "".join(converted)


def _convert_plain(text: str, table: dict[str, tuple[str, str]], src: str, dst: str) -> str:
    text = re.sub(r"\b(he|she)'s (been|got|had)\b", r"\1 has \2", text, flags=re.IGNORECASE)
    text = _GLUED.sub(lambda m: f"{m[1]} '{m[2]}", text)
    tokens = text.split(" ")
    out: list[str] = []
    subject_seen = False  # a converted subject earlier in this sentence (for "and feels")
    pending = False  # the next verb agrees with a converted subject
    after_verb = False  # "he sees him": an object right after its verb is someone else
    for i, token in enumerate(tokens):
        if pending and token in ("'m", "'re", "'s", "'ve"):
            out.append(_agree(token, dst) or token)
            pending = False
            continue
        match = _TOKEN.match(token)
        assert match is not None
        lead, core, trail = match.groups()
        low = core.lower()
        starts = bool(out) and out[-1][-1:] in (".", "!", "?")
        nxt = tokens[i + 1].lower().strip("\"'”’.,;:!?") if i + 1 < len(tokens) else ""
        new = core
        was_after_verb, after_verb = after_verb, False
        if low == "i" and dst == "first":  # first-person prose keeps "I", agreeing: "I has" -> "I have"
            pending = True
        elif low in table:
            case = table[low][0]
            prev = out[-1].lower().strip("\"'“‘(,") if out else ""
            if low == "her" and src == "she":
                ends_clause = trail != "" or not nxt or re.fullmatch(_LINKING, nxt) is not None
                case = "object" if ends_clause else "possessive"
            elif low == "you" and src == "second":
                case = "object" if prev in AFTER_OBJECT_YOU or trail else "subject"
            elif low == "his" and (trail or not nxt):
                case = "absolute"
            elif case == "object" and nxt in ("has", "is", "was") and prev in ("like", "that", ""):
                # "I feel like me has been": a subject
                case = "subject"
            other = case == "object" and was_after_verb and src in ("he", "she")
            new = core if other else PRONOUNS[case][dst]
            pending = case == "subject"
            subject_seen = subject_seen or pending
        elif pending and low == core and (low in ADVERBS or low.endswith("ly")):
            out.append(token)
            continue
        elif pending and low == core:
            agreed = _agree(low, dst)
            if low in ("am", "is", "are") and nxt == "not":
                agreed = {"first": "am", "he": "is", "she": "is"}.get(dst, "are")
            new = agreed if agreed is not None else core
            pending = False
            after_verb = True
            out.append(lead + new + trail)
            continue
        elif (
            subject_seen
            and _after_conjunction(out)
            and (
                low in VERBS_AFTER_AND | _AGREEING  # "and feels", "and dreads every message"
                or (low.endswith("s") and not low.endswith("ss") and nxt in OBJECTS)
            )
        ):
            new = _agree(low, dst) or core
        else:
            pending = False
        if new != core and new != "I":
            capital = starts or (core[:1].isupper() and core != "I")
            new = new[:1].upper() + new[1:] if capital else new[:1].lower() + new[1:]
        out.append(lead + new + trail)
        if trail[-1:] in (".", "!", "?"):
            subject_seen = pending = False
    return re.sub(r" '(m|re|s|ve|d|ll)\b", r"'\1", " ".join(out))


def first_to_second(text: str) -> str:
    """The therapist reflecting the patient's words: 'I was tired' -> 'you were tired'."""
    return convert(text, "first", "second")


def first_to_third(text: str, pronouns: Pronouns) -> str:
    """What the patient said, as the summary reports it: 'I take time' -> 'he takes time'."""
    return convert(text, "first", "third", pronouns)


def second_to_third(text: str, pronouns: Pronouns) -> str:
    """Homework as the therapist gave it, for the summary: 'your goal' -> 'his goal'."""
    return convert(text, "second", "third", pronouns)


def third_to_first(text: str, name: str, pronouns: Pronouns) -> str:
    """Persona prose about the patient, said by the patient: 'His mother fell; he missed work'
    -> 'My mother fell; I missed work'."""
    converted = convert(text, "third", "first", pronouns, name)
    return converted[:1].upper() + converted[1:]


def third_to_second(text: str, name: str, pronouns: Pronouns) -> str:
    """Summary or persona prose about the patient, said to the patient: 'he notices' -> 'you notice'."""
    return convert(text, "third", "second", pronouns, name)


_FILLER = re.compile(
    r"^(?:(?:yeah|yes|yep|no|okay|ok|oh|ah|um+|uh+|hmm+|mm+|ha|haha|honestly|anyway|right|well|so|"
    r"actually|like|you know|i mean|i guess|i suppose|i think|i feel like|to be honest|and|but|then|maybe)"
    r"(?![\w'])[,.…!]*\s*)+",
    re.IGNORECASE,
)


def strip_fillers(text: str) -> str:
    """'Yeah, well, part of me believes it' -> 'part of me believes it': the leading fillers,
    discourse markers and hedges a reflection does not repeat."""
    text = re.sub(r"^[\w' ]{1,20}(?:\.\.\.|…)\s+", "", text.strip())  # "It's like... "
    stripped = _FILLER.sub("", text.lstrip("…. "))
    return stripped if stripped else text.strip()


def reflect(text: str, names: frozenset[str] = frozenset()) -> str:
    """A patient's sentence as the therapist says it back: fillers off, in the second person,
    its first word in lower case unless it is one of ``names`` (Karen, Dot...)."""
    core = strip_fillers(text)
    first = re.match(r"[\w']+", core)
    word = first.group() if first else ""
    if word and word not in names and word != "I" and not (len(word) > 1 and word.isupper()):
        core = core[:1].lower() + core[1:]
    said = first_to_second(core)
    return re.sub(r"([.!?])([\"”'])$", r"\2", said)
