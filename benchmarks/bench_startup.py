"""CPU time of the commands a user types most, from process start to exit.

One command, from the repository root::

    .venv/bin/python benchmarks/bench_startup.py

runs ``simulator --help`` and ``simulator validate`` (the bundled personas and templates
under ``personas/`` and ``prompts/``) each ``--repeat`` times in a fresh process and prints
the least user + system CPU of each (targets: 0.15 s and 0.35 s), beside a bare
``python -c pass`` as the floor every Python program pays.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = Path(sys.executable).parent / "simulator"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "simulator --help": [str(SIMULATOR), "--help"],
    "simulator validate": [str(SIMULATOR), "validate"],
}
TARGETS = {"simulator --help": 0.15, "simulator validate": 0.35}


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(command: list[str]) -> float:
    before = child_cpu()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    return child_cpu() - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each; the least CPU counts")
    args = parser.parse_args(argv)
    print(f"{'command':22} {'CPU s (least)':>14} {'target':>8}")
    for name, command in COMMANDS.items():
        best = min(cpu_of(command) for _ in range(args.repeat))
        target = TARGETS.get(name)
        verdict = "" if target is None else f"{target:>8.2f} {'met' if best <= target else 'NOT met'}"
        print(f"{name:22} {best:>14.3f} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
