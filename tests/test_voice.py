"""Grammatical person for the offline backend: persona prose, reflections, summary bullets."""

from __future__ import annotations

import pytest

from simulator.backends.offline.voice import (
    first_to_second,
    first_to_third,
    pronouns_of,
    second_to_third,
    third_to_first,
)

HE, SHE, THEY = pronouns_of("he/him"), pronouns_of("she/her"), pronouns_of(None)


@pytest.mark.parametrize(
    ("text", "pronouns", "expected"),
    [
        ("I take time for myself", HE, "he takes time for himself"),
        (
            "I skipped the meeting and I found it awkward",
            SHE,
            "she skipped the meeting and she found it awkward",
        ),
        ("I worry about my mom", SHE, "she worries about her mom"),
        ("I'm tired and I've had enough", HE, "he is tired and he has had enough"),
        ("I take a walk", THEY, "they take a walk"),
    ],
)
def test_first_to_third(text: str, pronouns: object, expected: str) -> None:
    assert first_to_third(text, pronouns) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I was tired", "you were tired"),
        ("it was something my boss said to me", "it was something your boss said to you"),
        ("I think my week was bad. My mom called", "you think your week was bad. Your mom called"),
    ],
)
def test_first_to_second(text: str, expected: str) -> None:
    assert first_to_second(text) == expected


def test_third_to_first_handles_names_and_her() -> None:
    text = "Priya's tutor says everyone is judging her. Her mother told her to call, and she stays quiet"
    assert third_to_first(text, "Priya Shah", SHE) == (
        "My tutor says everyone is judging me. My mother told me to call, and I stay quiet"
    )
    assert (
        third_to_first("He misses two days of school", "Marcus Thompson", HE) == "I miss two days of school"
    )


def test_second_to_third() -> None:
    assert second_to_third("notice when you criticise yourself, which ties in with your goal", HE) == (
        "notice when he criticises himself, which ties in with his goal"
    )
