"""``--executor ray`` against the local executor on the same work.

One command, from the repository root (Ray installed: ``pip install -e '.[ray]'``)::

    .venv/bin/python benchmarks/bench_ray.py

starts a local Ray instance (``--cpus``, default 2) in this process and, for each server
latency (``--latency-ms``, default 0 and 50), the loopback server
(``benchmarks/loopback_server.py``) in its own process; then runs the same work (16 personas
x 2 sessions, concurrency 16) through ``simulator run`` as a library call in a fresh driver
process: once locally, once on Ray with each ``--workers`` count (default 1 and 2), the driver
joining this process's Ray instance. ``--repeat`` rounds (default 2) alternate the variants;
the fastest run of each counts (the machine may be shared).

Timed from the first session start to the last session end (what the executor adds per call,
not Ray's start-up, which is printed apart as "start"). It prints LLM calls per second, wall
time per call on one of the C concurrent lanes (``span x C / calls``), and each against the
local run measured in the same invocation. Targets (issue 16) apply only where the server
runs on other cores or another host (4+ cores): 2 workers >= 1.6x local throughput, per-call
time <= 1.15x local at 50 ms. On a 2-core machine driver, workers and server share the cores:
the figures are reported without a target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_overhead import run_command, start_server, write_personas  # noqa: E402
from benchmarks.loopback_server import MODELS  # noqa: E402


async def phase(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One run in this (driver) process, timed by the session events it emits."""
    from simulator import commands
    from simulator.state import SessionEvent

    personas = write_personas(work / "personas", args.personas)
    marks: list[float] = []

    def mark(event: SessionEvent) -> None:
        marks.append(time.perf_counter())

    settings: dict[str, Any] = {
        "sessions": args.sessions,
        "concurrency": args.concurrency,
        "max_turns": args.max_turns,
        "backend": "openai",
        "base_url": args.url,
        "therapist_model": MODELS["therapist"],
        "patient_model": MODELS["patient"],
        "summarizer_model": MODELS["summarizer"],
        "out": work / "out",
        "run_id": "bench",
    }
    if args.workers:
        settings.update(executor="ray", workers=args.workers, ray_address=args.ray_address)
    called = time.perf_counter()
    code = await commands.run(personas, None, settings, progress=False, listeners=[mark])
    run = json.loads((work / "out" / "bench" / "run.json").read_text(encoding="utf-8"))
    return {
        "exit_code": code,
        "calls": run["totals"]["requests"],
        "span_s": marks[-1] - marks[0],
        "start_s": marks[0] - called,
    }


def run_phase(args: argparse.Namespace, url: str, workers: int, address: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", "--url", url, "--workers", str(workers)]
    command += ["--ray-address", address]
    for key in ("personas", "sessions", "concurrency", "max_turns"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    return run_command(f"ray x{workers}" if workers else "local", command)


def report(latency: float, name: str, result: dict[str, Any], base: dict[str, Any], lanes: int) -> None:
    throughput = result["calls"] / result["span_s"]
    per_call_ms = result["span_s"] * lanes / result["calls"] * 1000
    base_throughput = base["calls"] / base["span_s"]
    base_per_call = base["span_s"] * lanes / base["calls"] * 1000
    print(
        f"{latency:>5.0f} ms  {name:<10} {result['calls']:>5} calls  {throughput:7.1f} calls/s "
        f"({throughput / base_throughput:4.2f}x local)  {per_call_ms:7.1f} ms/call "
        f"({per_call_ms / base_per_call:4.2f}x local)  start {result['start_s']:5.1f} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ray executor against the local executor.")
    parser.add_argument("--personas", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-turns", type=int, default=20, help="messages a session (default 20)")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--workers-counts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds of every variant, alternating; the best counts"
    )
    parser.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ray-address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
            print(json.dumps(asyncio.run(phase(args, Path(tmp)))), flush=True)
        return 0

    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    address = str(ray.get_runtime_context().gcs_address)
    print(
        f"{args.personas} personas x {args.sessions} sessions, max {args.max_turns} messages, "
        f"concurrency {args.concurrency}, Ray with {args.cpus} CPUs, {os.cpu_count()} cores here",
        flush=True,
    )
    try:
        for latency in args.latency_ms:
            server, url = start_server(latency)
            try:
                variants = [0, *args.workers_counts]
                rounds = [[run_phase(args, url, w, address) for w in variants] for _ in range(args.repeat)]
                best = [min((r[i] for r in rounds), key=lambda x: x["span_s"]) for i in range(len(variants))]
                for workers, result in zip(variants, best, strict=True):
                    report(
                        latency, f"ray x{workers}" if workers else "local", result, best[0], args.concurrency
                    )
            finally:
                server.kill()
                server.wait()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
