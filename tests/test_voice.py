"""Grammatical person for the offline backend: one table of filler, voice and agreement cases.

Each row is a seam a reader of the offline transcripts saw (issue 17): a reflection that kept the
patient's filler, the therapist speaking about the patient in the third person, a verb that no
longer agrees once the subject changed.
"""

from __future__ import annotations

import pytest

from simulator.backends.offline.voice import (
    AGREEMENT,
    PRONOUNS,
    Pronouns,
    first_to_second,
    first_to_third,
    pronouns_of,
    reflect,
    second_to_third,
    strip_fillers,
    third_to_first,
    third_to_second,
)

HE, SHE, THEY = pronouns_of("he/him"), pronouns_of("she/her"), pronouns_of(None)

FILLERS = [
    ("Yeah, well, part of me really believes it", "part of me really believes it"),
    ("Um, I think I'd like to work on sleep", "I'd like to work on sleep"),
    ("So, honestly, it was a long week", "it was a long week"),
    ("I mean, like, nobody noticed", "nobody noticed"),
    ("Okay... I guess I can try that", "I can try that"),
    ("Soup is what I make on Sundays", "Soup is what I make on Sundays"),  # "so" only as a word
    ("Likely not", "Likely not"),
]


@pytest.mark.parametrize(("text", "expected"), FILLERS)
def test_strip_fillers(text: str, expected: str) -> None:
    assert strip_fillers(text) == expected


REFLECTIONS = [
    (
        "Yeah, well, part of me really believes that if my voice shakes, everyone will think I'm weird.",
        "part of you really believes that if your voice shakes, everyone will think you're weird.",
    ),
    ("Um, I think I'd like to work on feeling judged.", "you'd like to work on feeling judged."),
    ("I was tired and I am sure my mom noticed.", "you were tired and you are sure your mom noticed."),
    ("I'm not sure. I've had enough of it.", "you're not sure. You've had enough of it."),
    # an inner voice stays in its own words, and a name keeps its capital
    (
        'The thought was, "I should have caught that mistake."',
        'the thought was, "I should have caught that mistake"',
    ),
    ("Karen made the appointment and drove me here.", "Karen made the appointment and drove you here."),
    ("It's like... what got to me was the conferences.", "what got to you was the conferences."),
    ("A parent emailed me twice.", "a parent emailed you twice."),
]


@pytest.mark.parametrize(("said", "reflected"), REFLECTIONS)
def test_reflect(said: str, reflected: str) -> None:
    assert reflect(said, frozenset({"Karen"})) == reflected


VOICE = [
    # persona prose about the patient, said by the patient (third -> first)
    (
        third_to_first,
        "Priya's tutor says everyone is judging her.",
        "Priya Shah",
        SHE,
        "My tutor says everyone is judging me.",
    ),
    (
        third_to_first,
        "He missed two days of school and feels guilty.",
        "Marcus Thompson",
        HE,
        "I missed two days of school and feel guilty.",
    ),
    (
        third_to_first,
        "She isn't sure she really needs therapy and worries about it.",
        "Priya Shah",
        SHE,
        "I am not sure I really need therapy and worry about it.",
    ),
    (
        third_to_first,
        "Noah occasionally mentions it but typically brushes it off.",
        "Noah",
        HE,
        "I occasionally mention it but typically brush it off.",
    ),
    (
        third_to_first,
        "His old buddy asked if he's coming back.",
        "Walter Kowalski",
        HE,
        "My old buddy asked if I'm coming back.",
    ),
    (third_to_first, "She's been dreading it.", "Robin", SHE, "I have been dreading it."),
    # first-person sources keep "I" and fix its verb (imported MI data: "I has migraines")
    (third_to_first, "I use heroin. I has migraines.", "Drew", THEY, "I use heroin. I have migraines."),
    # the summary, said to the patient (third -> second): never "he" to the patient's face
    (
        third_to_second,
        "Fill in a thought record whenever he notices that critical voice, for his goal",
        "Marcus Thompson",
        HE,
        "Fill in a thought record whenever you notice that critical voice, for your goal",
    ),
    (
        third_to_second,
        "He missed two days and feels guilty toward her",
        "Marcus Thompson",
        HE,
        "You missed two days and feel guilty toward her",
    ),
    (third_to_second, "Marcus does what he can", "Marcus Thompson", HE, "You do what you can"),
]


@pytest.mark.parametrize(("convert", "text", "name", "pronouns", "expected"), VOICE)
def test_third_person_prose(convert: object, text: str, name: str, pronouns: Pronouns, expected: str) -> None:
    assert convert(text, name, pronouns) == expected  # type: ignore[operator]


AGREEMENT_CASES = [
    ("I take time for myself", HE, "he takes time for himself"),
    ("I worry about my mom", SHE, "she worries about her mom"),
    ("I'm tired and I've had enough", HE, "he's tired and he's had enough"),
    ("I don't know if I can", SHE, "she doesn't know if she can"),
    (
        "Some days I forgot completely, but when I did it, it helped",
        HE,
        "Some days he forgot completely, but when he did it, it helped",
    ),
    (
        "I almost cancelled and I really need a break",
        SHE,
        "she almost cancelled and she really needs a break",
    ),
    ("I take a walk", THEY, "they take a walk"),
    ("I'm not sure I was ready", THEY, "they're not sure they were ready"),
]


@pytest.mark.parametrize(("text", "pronouns", "expected"), AGREEMENT_CASES)
def test_first_to_third_agreement(text: str, pronouns: Pronouns, expected: str) -> None:
    assert first_to_third(text, pronouns) == expected


def test_second_to_third_homework() -> None:
    assert second_to_third("notice when you criticise yourself, which ties in with your goal", HE) == (
        "notice when he criticises himself, which ties in with his goal"
    )
    assert second_to_third("write down what you predicted and tell you friend", SHE).startswith(
        "write down what she predicted"
    )


def test_first_to_second_keeps_the_sentence() -> None:
    assert first_to_second("it was something my boss said to me") == "it was something your boss said to you"


def test_pronouns_from_prose_when_the_persona_names_none() -> None:
    assert pronouns_of(None, "Father leaves when Abe is 11. He never sees him again.") == HE
    assert pronouns_of(None, "I smoke to relax.") == THEY


def test_one_table_covers_every_voice() -> None:
    """Every conversion reads the same rows: each pronoun case has every voice, and each
    agreement row gives the first-person, second-person and third-singular form."""
    for row in PRONOUNS.values():
        assert set(row) == {"first", "second", "he", "she", "they"}
    assert ("am", "are", "is") in AGREEMENT and ("don't", "don't", "doesn't") in AGREEMENT
