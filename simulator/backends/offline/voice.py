"""Grammatical person for the offline backend: persona prose is written about the patient,
the patient speaks about itself, the therapist reflects it back, the summary reports it.

Small, rule-based and deliberately conservative: only the pronoun and the verb right after
it change, so the persona's own words come through.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Pronouns(NamedTuple):
    subject: str
    object: str
    possessive: str
    reflexive: str


def pronouns_of(spec: str | None) -> Pronouns:
    """``she/her`` -> she, her, her, herself; unknown or missing -> they."""
    key = (spec or "").lower()
    if key.startswith("he"):
        return Pronouns("he", "him", "his", "himself")
    if key.startswith("she"):
        return Pronouns("she", "her", "her", "herself")
    return Pronouns("they", "them", "their", "themselves")


_THIRD_PERSON_VERBS = {
    "am": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "try": "tries",
    "worry": "worries",
    "don't": "doesn't",
}
_WORD = re.compile(r"^([\"'“‘(]*)(.*?)([\"'”’),.;:!?]*)$")


_PAST = frozenset(
    [
        "was",
        "were",
        "had",
        "did",
        "said",
        "found",
        "felt",
        "went",
        "got",
        "kept",
        "made",
        "took",
        "thought",
        "knew",
        "came",
        "saw",
        "told",
        "left",
        "could",
        "would",
        "should",
        "might",
        "must",
        "can",
        "will",
        "really",
        "just",
        "never",
        "always",
        "also",
        "still",
    ]
)


def _third_verb(word: str) -> str:
    if word in _THIRD_PERSON_VERBS:
        return _THIRD_PERSON_VERBS[word]
    past = word.endswith("ed") and word not in ("need", "feed")
    if not re.fullmatch(r"[a-z]+", word) or word in _PAST or past or word.endswith("ly"):
        return word
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def _base_verb(word: str) -> str:
    irregular = {"is": "am", "has": "have", "does": "do", "goes": "go", "doesn't": "don't", "was": "was"}
    if word in irregular:
        return irregular[word]
    if re.fullmatch(r"[a-z]+(?:sses|shes|ches|xes)", word):
        return word[:-2]
    if re.fullmatch(r"[a-z]+ies", word):
        return word[:-3] + "y"
    if re.fullmatch(r"[a-z]+[^s]s", word):
        return word[:-1]
    return word


_FIRST_PERSON_I = frozenset({"i", "i'm", "i've", "i'd", "i'll"})


def _swap(text: str, convert: dict[str, str], verb: str | None) -> str:
    """Replace whole words by ``convert``; ``verb`` says how to inflect the word after a subject."""
    out: list[str] = []
    after_subject = False
    sentence_start = False  # the caller decides the case of the text's first word
    for token in text.replace("’", "'").split():
        match = _WORD.match(token)
        assert match is not None
        lead, core, trail = match.groups()
        low = core.lower()
        starts, sentence_start = sentence_start, trail[-1:] in (".", "!", "?")
        if low in convert:
            new = convert[low]
            # "I" is capital anywhere; other words keep a capital only where a sentence starts.
            capital = starts or (core[:1].isupper() and low not in _FIRST_PERSON_I)
            new = new[:1].upper() + new[1:] if capital else new
            after_subject = low in ("i", "you", "he", "she", "they")
        elif after_subject and verb is not None and low == core:
            new = _third_verb(low) if verb == "third" else _base_verb(low) if verb == "base" else low
            after_subject = False
        else:
            new = core
            after_subject = False
        out.append(lead + new + trail)
    return " ".join(out)


def first_to_third(text: str, pronouns: Pronouns) -> str:
    """What the patient said, as the summary reports it: 'I take time for myself' ->
    'he takes time for himself'."""
    subject = pronouns.subject
    convert = {
        "i": subject,
        "i'm": f"{subject} {'are' if subject == 'they' else 'is'}",
        "i've": f"{subject} {'have' if subject == 'they' else 'has'}",
        "i'd": f"{subject} would",
        "i'll": f"{subject} will",
        "my": pronouns.possessive,
        "me": pronouns.object,
        "myself": pronouns.reflexive,
        "mine": pronouns.possessive if pronouns.possessive != "her" else "hers",
    }
    return _swap(text, convert, "third" if subject != "they" else None)


def first_to_second(text: str) -> str:
    """The therapist reflecting the patient's words: 'I was tired' -> 'you were tired'."""
    convert = {
        "i": "you",
        "i'm": "you're",
        "i've": "you've",
        "i'd": "you'd",
        "i'll": "you'll",
        "my": "your",
        "me": "you",
        "myself": "yourself",
        "mine": "yours",
    }
    text = re.sub(r"\bI was\b", "you were", text)
    text = re.sub(r"\bI am\b", "you are", text)
    return _swap(text, convert, None)


def second_to_third(text: str, pronouns: Pronouns) -> str:
    """Homework as the therapist gave it, for the summary: 'your goal' -> 'his goal'."""
    convert = {
        "you": pronouns.subject,
        "your": pronouns.possessive,
        "yourself": pronouns.reflexive,
        "you're": f"{pronouns.subject} {'are' if pronouns.subject == 'they' else 'is'}",
    }
    return _swap(text, convert, "third" if pronouns.subject != "they" else None)


def third_to_first(text: str, name: str, pronouns: Pronouns) -> str:
    """Persona prose about the patient, said by the patient: 'His mother fell; he missed work'
    -> 'My mother fell; I missed work'."""
    first_name = name.split()[0]
    text = re.sub(rf"\b(?:{re.escape(name)}|{re.escape(first_name)})'s\b", "my", text)
    text = re.sub(rf"\b(?:{re.escape(name)}|{re.escape(first_name)})\b", "I", text)
    if pronouns.object == pronouns.possessive:  # "her": an object before a stop or a linking word
        linking = r"to|and|or|about|for|that|when|because|if|at|in|with|as|so|but|again|anymore"
        text = re.sub(rf"\b{pronouns.object}\b(?=\s*(?:[.,;:!?)]|$|(?:{linking})\b))", "me", text)
    convert = {
        pronouns.subject: "I",
        pronouns.possessive: "my",
        pronouns.reflexive: "myself",
        "i": "I",
    }
    if pronouns.object != pronouns.possessive:
        convert[pronouns.object] = "me"
    converted = _swap(text, convert, "base")
    return converted[:1].upper() + converted[1:]
