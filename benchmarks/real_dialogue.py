"""The guards and the termination detector on human dialogue: false repeats and found closings.

    .venv/bin/python benchmarks/real_dialogue.py                       # the shared peer-support chats
    .venv/bin/python benchmarks/real_dialogue.py --annomi dataset.csv  # plus AnnoMI, if you have it

Sources: ``../shared/realdata/patienthub/eeyore.json`` (12 human emotional-support conversations
from ESConv and Reddit, via PatientHub, MIT), and optionally AnnoMI's CSV (133 transcribed
motivational-interviewing sessions, github.com/uccollab/AnnoMI; it carries no licence, so it is
not shipped here: pass the file you downloaded). For each utterance, is it flagged as a repeat of
the speaker's earlier ones (a run of the same short reply included)? The previous rule (two short
messages compared as whole word sequences, no content minimum) is measured in the same run as
the baseline. For each conversation, where would the detector end it: in its last 4 messages
(its closing), earlier (premature), or nowhere?
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path

from simulator import guards
from simulator.endings import (
    DEFAULT_PATIENT_END_PHRASES,
    DEFAULT_THERAPIST_END_PHRASES,
    compile_phrases,
    detect_end,
)
from simulator.text import normalize

REPO = Path(__file__).resolve().parent.parent
EEYORE = REPO.parent / "shared" / "realdata" / "patienthub" / "eeyore.json"
Conversation = list[tuple[str, str]]
CLOSING_WINDOW = 4
MIN_TURNS = 8


def eeyore(path: Path) -> dict[str, Conversation]:
    """Supporter ("user") as therapist, help-seeker ("assistant") as patient."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        f"eeyore {n}": [
            ("Therapist" if m["role"] == "user" else "Patient", m["content"].strip())
            for m in c["conversation"]
            if m["role"] != "system"
        ]
        for n, c in enumerate(data)
    }


def annomi(path: Path) -> dict[str, Conversation]:
    """AnnoMI's CSV: transcript_id, utterance_id, interlocutor, utterance_text (and more)."""
    rows: dict[str, list[tuple[int, str, str]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            speaker = "Therapist" if row["interlocutor"] == "therapist" else "Patient"
            rows.setdefault(f"annomi {row['transcript_id']}", []).append(
                (int(row["utterance_id"]), speaker, row["utterance_text"].strip())
            )
    return {key: [(s, t) for _, s, t in sorted(found)] for key, found in rows.items()}


def previous_rule(text: str, earlier: Sequence[str]) -> bool:
    """The rule before issue 9: short messages scored by the ratio of their word sequences."""
    for previous in earlier:
        ta, tb = normalize(text).split(), normalize(previous).split()
        if not ta or not tb:
            score = 1.0 if ta == tb else 0.0
        elif min(len(ta), len(tb)) < guards.CONTENT_WORDS:
            score = SequenceMatcher(None, ta, tb, autojunk=False).ratio()
        else:
            score = guards.similarity(text, previous)
        if score >= guards.DEFAULT_REPETITION_THRESHOLD:
            return True
    return False


def flagged(conversation: Conversation) -> tuple[list[int], list[int]]:
    """Indices flagged as repeats now, and under the previous rule."""
    now: list[int] = []
    before: list[int] = []
    for index, (speaker, text) in enumerate(conversation):
        earlier = [t for s, t in conversation[:index] if s == speaker]
        if guards.find_repeat(text, earlier) is not None or guards.find_short_loop(text, earlier) is not None:
            now.append(index)
        if previous_rule(text, earlier):
            before.append(index)
    return now, before


def natural_end(conversation: Conversation) -> int | None:
    phrases = {
        "Therapist": compile_phrases(DEFAULT_THERAPIST_END_PHRASES),
        "Patient": compile_phrases(DEFAULT_PATIENT_END_PHRASES),
    }
    for count in range(MIN_TURNS, len(conversation) + 1):
        ending = detect_end(conversation[:count], phrases, min_turns=MIN_TURNS)
        if ending is not None:
            return ending.index
    return None


def report(name: str, conversations: dict[str, Conversation]) -> None:
    utterances = sum(len(c) for c in conversations.values())
    now = before = 0
    closing: list[str] = []
    premature: list[str] = []
    for key, conversation in conversations.items():
        flagged_now, flagged_before = flagged(conversation)
        now += len(flagged_now)
        before += len(flagged_before)
        for index in flagged_now:
            print(f"  {key} message {index} flagged: {conversation[index][1][:80]!r}")
        end = natural_end(conversation)
        if end is None:
            continue
        (closing if end >= len(conversation) - CLOSING_WINDOW else premature).append(f"{key} @{end}")
    print(
        f"{name}: {len(conversations)} conversations, {utterances} utterances; repeats flagged: "
        f"{now} ({now / utterances:.2%}), previous rule (baseline): {before} ({before / utterances:.2%})"
    )
    print(f"  ended in the last {CLOSING_WINDOW} messages: {len(closing)} ({', '.join(closing) or '-'})")
    print(f"  ended earlier (premature): {len(premature)} ({', '.join(premature) or '-'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eeyore", type=Path, default=EEYORE)
    parser.add_argument("--annomi", type=Path, help="AnnoMI's dataset.csv (or AnnoMI-simple.csv)")
    args = parser.parse_args()
    report("eeyore (ESConv, Reddit)", eeyore(args.eeyore))
    if args.annomi is not None:
        report("AnnoMI", annomi(args.annomi))


if __name__ == "__main__":
    main()
