"""The writer: atomic files, reference transcript format, completed sessions never rewritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simulator.errors import RunStateError
from simulator.layout import session_stem
from simulator.records import Message, SessionRecord, Termination
from simulator.store import RunStore, atomic_write
from simulator.transcript import format_transcript


def _record(status: str = "complete") -> SessionRecord:
    return SessionRecord(
        session_number=8,
        persona_id="marcus_thompson",
        therapist_id="nova",
        previous_summary="Main topics discussed:\n- x",
        messages=[
            Message(
                speaker="Patient", content="Hi, I'm Marcus Thompson. This is my 8th CBT session.", index=0
            ),
            Message(speaker="Therapist", content="Welcome back.\n\nHow was the week?", index=1),
        ],
        termination=Termination(
            reason="Natural Session End",
            details="Detected end phrase: '\\bdon't hesitate to reach out\\b'",
            message_index=1,
        ),
        summary="Main topics discussed:\n- Perfectionism",
        backend="offline",
        started_at="2026-11-25T00:00:00+00:00",
        status=status,
    )


def test_transcript_matches_reference_layout() -> None:
    assert format_transcript(_record()) == (
        "Session Number: 8\n\n"
        "Patient: Hi, I'm Marcus Thompson. This is my 8th CBT session.\n\n"
        "Therapist: Welcome back.\n\nHow was the week?\n\n"
        "Termination Details:\n"
        "Reason: Natural Session End\n"
        "Details: Detected end phrase: '\\bdon't hesitate to reach out\\b'\n"
        "\n\nSession Summary:\n\n"
        "Main topics discussed:\n- Perfectionism\n"
    )


@pytest.mark.parametrize(
    ("number", "stem"), [(1, "session_01"), (8, "session_08"), (12, "session_12"), (123, "session_123")]
)
def test_session_numbers_are_zero_padded(number: int, stem: str) -> None:
    assert session_stem(number) == stem


def test_atomic_write_leaves_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "session_01.txt"
    atomic_write(target, "old complete text")

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, "new text that never lands")
    assert target.read_text() == "old complete text"
    assert [p.name for p in tmp_path.iterdir()] == ["session_01.txt"], "no temporary file is left behind"


def test_incomplete_sessions_never_take_final_names(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.write_session(_record("interrupted"))
    folder = tmp_path / "marcus_thompson"
    assert sorted(p.name for p in folder.iterdir()) == ["session_08.partial.json", "session_08.partial.txt"]
    assert not store.is_complete("marcus_thompson", 8)
    store.write_session(_record("complete"))
    assert sorted(p.name for p in folder.iterdir()) == ["session_08.json", "session_08.txt"]
    with pytest.raises(RunStateError, match="refusing to overwrite a completed session"):
        store.write_session(_record("complete"))
