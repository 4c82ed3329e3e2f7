"""How long ``simulator export`` takes for 10,000 sessions (target: under 30 s a format).

One command, from the repository root::

    .venv/bin/python benchmarks/bench_export.py

makes an offline run of the three shipped personas (5 sessions each), then a run folder of
``--personas`` x ``--sessions`` (default 400 x 25 = 10,000) sessions by cloning those sessions
under new persona ids (each clone's messages carry its own id, so no two sessions are the
same text). Then, each in a fresh process so nothing is warm but the OS file cache:

* ``baseline``: read every session record through ``simulator.reader.read_run`` and nothing
  else (the floor any export stands on);
* ``simulator export`` in every format, and once more with ``--dedupe`` and a persona split.

It prints each wall time and CPU time (user + system), their ratios to the baseline's, and
whether the wall time met the 30 s target. On a machine shared with other work the wall time
swells while the CPU time does not: compare CPU figures across runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 30.0
SEED_SESSIONS = 5
BASELINE = """
import sys
from pathlib import Path
from simulator.reader import read_run
count = sum(1 for s in read_run(Path(sys.argv[1])).sessions() if s.record is not None)
assert count > 0
"""


def seed_run(root: Path) -> Path:
    personas = [ROOT / "personas" / f"{p}.yaml" for p in ("marcus_thompson", "priya_shah", "walter_kowalski")]
    subprocess.run(
        [sys.executable, "-m", "simulator", "run", *map(str, personas), "--sessions", str(SEED_SESSIONS),
         "--backend", "offline", "--seed", "1", "--out", str(root), "--run-id", "seed", "--no-progress"],
        check=True, capture_output=True,
    )  # fmt: skip
    return root / "seed"


def clone_run(seed: Path, target: Path, personas: int, sessions: int) -> int:
    """A run folder of ``personas`` x ``sessions`` sessions made from the seed run's files."""
    index = json.loads((seed / "run.json").read_text())
    originals = list(index["inputs"]["personas"])
    records = {
        (p, n): json.loads((seed / p / f"session_{n:02d}.json").read_text())
        for p in originals
        for n in range(1, SEED_SESSIONS + 1)
    }
    shutil.copytree(seed / "inputs", target / "inputs", ignore=shutil.ignore_patterns("personas"))
    (target / "inputs" / "personas").mkdir()
    index["run_id"], index["inputs"]["personas"], index["sessions"] = target.name, {}, {}
    for i in range(personas):
        original = originals[i % len(originals)]
        pid = f"c{i:04d}_{original}"
        text = (seed / "inputs" / "personas" / f"{original}.yaml").read_text()
        (target / "inputs" / "personas" / f"{pid}.yaml").write_text(
            text.replace(f"id: {original}", f"id: {pid}")
        )
        index["inputs"]["personas"][pid] = {"source": f"clone of {original}", "digest": "sha256:0"}
        (target / pid).mkdir()
        entries = index["sessions"][pid] = {}
        for n in range(1, sessions + 1):
            record = json.loads(json.dumps(records[(original, (n - 1) % SEED_SESSIONS + 1)]))
            record["persona_id"], record["session_number"] = pid, n
            for message in record["messages"][1:]:
                message["content"] += f" ({pid} {n})"
            (target / pid / f"session_{n:02d}.json").write_text(json.dumps(record, indent=2))
            entries[str(n)] = {"status": "complete", "file": f"{pid}/session_{n:02d}.json"}
    (target / "run.json").write_text(json.dumps(index, indent=2))
    return personas * sessions


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one command in a fresh process; the CPU
    figure is what to compare on a machine shared with other work."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[2:4])} failed: {done.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--personas", type=int, default=400)
    parser.add_argument("--sessions", type=int, default=25)
    parser.add_argument("--case", default="", help="Run only the cases whose name contains this.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "big"
        count = clone_run(seed_run(root), run, args.personas, args.sessions)
        python = sys.executable
        baseline, baseline_cpu = timed([python, "-c", BASELINE, str(run)])
        print(
            f"{count} sessions; baseline (read every record through read_run): "
            f"{baseline:.1f} s wall, {baseline_cpu:.1f} s CPU"
        )
        out = str(root / "out")
        cases = {
            "openai": ["--format", "openai"],
            "sharegpt --as patient": ["--format", "sharegpt", "--as", "patient"],
            "records": ["--format", "records"],
            "parquet --series-context": ["--format", "parquet", "--series-context"],
            "openai --dedupe --split train=0.9,test=0.1": [
                "--format",
                "openai",
                "--dedupe",
                "--split",
                "train=0.9,test=0.1",
            ],
        }
        for name, flags in cases.items():
            if args.case not in name:
                continue
            wall, cpu = timed(
                [python, "-m", "simulator", "export", str(run), *flags, "--out", out, "--force"]
            )
            verdict = "ok" if wall < TARGET_S else "OVER TARGET"
            print(
                f"export {name:45s} {wall:6.1f} s wall ({wall / baseline:4.1f}x baseline), "
                f"{cpu:5.1f} s CPU ({cpu / baseline_cpu:4.1f}x)  [{verdict}]"
            )


if __name__ == "__main__":
    main()
