"""Helpers for the durability tests: small personas, a scripted loopback chat model, and
readers for a run folder.

The scripted model answers each role with distinct, in-role sentences (so no guard fires) and
the summarizer with five sections that carry a digest of the transcript, so every session's
summary is its own and a test can see which one opened the next session.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from tests.loopback import RecordedRequest, Reply, completion

ROLE_MODELS = (
    "--therapist-model",
    "therapist",
    "--patient-model",
    "patient",
    "--summarizer-model",
    "summarizer",
)
"""Flags naming one model per role, so the scripted server can tell the roles apart."""

VOCABULARY = [
    "amber",
    "bakery",
    "canal",
    "dahlia",
    "ember",
    "fjord",
    "garnet",
    "harbour",
    "indigo",
    "juniper",
    "kestrel",
    "lantern",
    "meadow",
    "nutmeg",
    "orchard",
    "pebble",
    "quartz",
    "riverbank",
    "saffron",
    "thistle",
    "umber",
    "violet",
    "willow",
    "yarrow",
    "zephyr",
    "acorn",
    "bramble",
    "cobalt",
    "driftwood",
    "elm",
    "fennel",
    "granite",
    "hazel",
    "ivy",
    "jasmine",
    "kelp",
    "lilac",
    "maple",
    "nettle",
    "oak",
    "poppy",
    "quince",
    "rowan",
    "sage",
    "tansy",
    "upland",
    "verbena",
    "walnut",
    "yew",
    "basil",
    "cedar",
    "dune",
    "fern",
    "glade",
]

CONFIG = (
    "max_turns: 6\n"
    "min_turns: 2\n"
    "end_phrases: {therapist: [], patient: [], after_wrap_up: false}\n"
    "retry: {attempts: 2, initial_wait_s: 0, max_wait_s: 0, timeout_s: 10}\n"
)
"""Sessions of six messages (five model turns and a summary), no natural ending, fast retries."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def scripted(request: RecordedRequest) -> Reply:
    """A deterministic chat model; the role comes from the model name."""
    body = request.json
    messages = body.get("messages", [])
    last = str(messages[-1]["content"]) if messages else ""
    role = str(body.get("model"))
    if role == "summarizer":
        tag = _digest(last)
        return completion(
            f"Main topics discussed:\n- topic {tag}\n\nTechniques/exercises introduced:\n- thought record\n\n"
            f"Things that appeared helpful:\n- naming the thought\n\nHomework assigned:\n- one record a day\n\n"
            f"Insights/realizations:\n- insight {tag}",
            model=role,
        )
    rng = random.Random(f"{role}:{len(messages)}:{last}")
    words = rng.sample(VOCABULARY, 9)
    return completion(f"{' '.join(words).capitalize()}.", model=role)


def write_personas(folder: Path, count: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = ["Ada Byrne", "Ben Okafor", "Cara Lindqvist", "Dev Raman", "Eli Novak", "Fay Moreau"]
    paths = []
    for index in range(count):
        name = names[index % len(names)]
        pid = f"p{index + 1}_{name.split()[0].lower()}"
        path = folder / f"{pid}.yaml"
        path.write_text(
            f"role: patient\nid: {pid}\nname: {name}\npresenting_problems:\n  - worry number {index + 1}\n",
            encoding="utf-8",
        )
        paths.append(path)
    return paths


def cli_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "simulator", *(str(a) for a in args)]


def cli_env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "PYTHONUNBUFFERED": "1"}


def complete_files(run_dir: Path) -> dict[str, bytes]:
    """Every complete session file (final names), by path relative to the run folder."""
    return {
        path.relative_to(run_dir).as_posix(): path.read_bytes()
        for path in sorted(run_dir.glob("*/session_*"))
        if ".partial." not in path.name and path.suffix in (".txt", ".json")
    }


def complete_sessions(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.glob("*/session_*.json") if ".partial." not in p.name]


def run_json(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return data


def statuses(run_dir: Path) -> dict[str, str]:
    return {
        f"{pid}/{number}": entry["status"]
        for pid, sessions in run_json(run_dir)["sessions"].items()
        for number, entry in sessions.items()
    }


def assert_series_chained(run_dir: Path, personas: list[str], sessions: int) -> None:
    """Every session is complete and opens with the summary its predecessor left."""
    for pid in personas:
        records = [
            json.loads((run_dir / pid / f"session_{n:02d}.json").read_text(encoding="utf-8"))
            for n in range(1, sessions + 1)
        ]
        assert [r["status"] for r in records] == ["complete"] * sessions
        assert records[0]["previous_summary"] is None
        for before, after in itertools.pairwise(records):
            assert before["summary"] and after["previous_summary"] == before["summary"]
            assert after["messages"][0]["content"].endswith(before["summary"])
            assert (
                before["summary"]
                in (run_dir / pid / f"session_{after['session_number']:02d}.txt").read_text()
            )


def leftovers(run_dir: Path) -> list[str]:
    """Partial and temporary files: a finished run has none."""
    return sorted(
        p.relative_to(run_dir).as_posix()
        for p in run_dir.rglob("*")
        if ".partial." in p.name or p.name.endswith(".tmp")
    )
