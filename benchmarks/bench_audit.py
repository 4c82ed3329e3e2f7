"""How fast `simulator audit` goes: 10,000+ messages on one core, against reading them alone.

    .venv/bin/python benchmarks/bench_audit.py            # about 30 s, most of it making the runs

Makes a run folder of offline sessions (3 personas, --sessions 215: about 10,000 messages), then,
pinned to one core and in one process, times (a) reading every session of it (the baseline) and
(b) auditing it, and the same for one 10,000-message JSONL whose messages recombine the reference
session's sentences (the worst case for the repetition index: every message shares phrases with
hundreds of earlier ones). Prints wall and CPU seconds, messages per CPU second and the
audit/read ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from simulator.audit import audit_paths, read_transcripts
from simulator.config import RunConfig

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "data" / "reference_session_08.txt"
PERSONAS = ["marcus_thompson.yaml", "priya_shah.yaml", "walter_kowalski.yaml"]


def make_run(root: Path, sessions: int) -> Path:
    command = [sys.executable, "-m", "simulator", "run", *(str(REPO / "personas" / p) for p in PERSONAS)]
    command += ["--backend", "offline", "--sessions", str(sessions), "--out", str(root), "--run-id", "bench"]
    command += ["--no-progress", "--seed", "1"]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    return root / "bench"


def make_recombined(path: Path, messages: int) -> Path:
    text = REFERENCE.read_text(encoding="utf-8")
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if 20 < len(s) < 300]
    rng = random.Random(1)
    with path.open("w", encoding="utf-8") as handle:
        for index in range(messages):
            content = " ".join(rng.sample(sentences, rng.randint(1, 5)))
            speaker = "Therapist" if index % 2 else "Patient"
            handle.write(json.dumps({"speaker": speaker, "content": content}) + "\n")
    return path


def timed(step: Callable[[], int]) -> tuple[float, float, int]:
    """Wall and CPU seconds of ``step`` (CPU time is what the machine's other load cannot inflate)."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = step()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def measure(label: str, path: Path) -> None:
    config = RunConfig()

    def read() -> int:
        return sum(len(t.messages) for t in read_transcripts(path))

    def audit() -> int:
        return sum(a.messages for a in audit_paths([path], config))

    read_s, read_cpu, count = timed(read)
    audit_s, audit_cpu, audited = timed(audit)
    assert audited == count
    print(
        f"{label}: {count} messages; read {read_s:.2f} s wall, {read_cpu:.2f} s CPU (baseline); "
        f"audit {audit_s:.2f} s wall, {audit_cpu:.2f} s CPU ({count / audit_cpu:,.0f} messages per CPU "
        f"second); audit/read {audit_cpu / read_cpu:.1f}x CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=215, help="offline sessions per persona")
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the recombined JSONL")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, args.sessions)
        measure("run folder (offline sessions)", run)
        measure(
            "one recombined JSONL (worst case)", make_recombined(root / "recombined.jsonl", args.messages)
        )


if __name__ == "__main__":
    main()
