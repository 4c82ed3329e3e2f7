"""What the simulator costs on top of the model calls it makes.

One command, from the repository root::

    .venv/bin/python benchmarks/bench_overhead.py

starts the loopback server (``benchmarks/loopback_server.py``, 50 ms a reply, in its own
process), then runs the same work twice, each in a fresh process so neither warms the other:

* ``simulator``: 16 personas x 2 sessions at concurrency 16 through ``simulator run``
  (``--backend openai --base-url``; the library call the CLI makes, timed from the call),
  with everything it does: guards, records, atomic files, run.json, log lines;
* ``bare``: a plain ``openai.AsyncOpenAI`` loop of the same shape: the same rendered prompts,
  the same number of calls per session with the same message history growth (system prompt,
  alternating turns, the wrap-up note, a summary that opens the next session), one
  transcript file per session, the same concurrency.

It prints wall time per LLM call for both and their ratio (target: the simulator within
1.2x of the bare loop), CPU time and peak memory. Then a longer run (64 personas x 2
sessions, concurrency 16, ``tracemalloc`` on) samples the traced heap each time a session
finishes, to show whether memory grows with the number of sessions already finished.
Flags change the shape; ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loopback_server import MODELS  # noqa: E402

NAMES = ["Ada Byrne", "Ben Okafor", "Cara Lindqvist", "Dev Raman", "Eli Novak", "Fay Moreau", "Gus Hale"]


def write_personas(folder: Path, count: int) -> list[Path]:
    """``count`` small patient personas (distinct ids and names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        first, last = NAMES[index % len(NAMES)].split()
        pid = f"p{index + 1:03d}_{first.lower()}"
        path = folder / f"{pid}.yaml"
        path.write_text(
            f"role: patient\nid: {pid}\nname: {first} {last}{index + 1}\nage: {20 + index % 50}\n"
            f"occupation: librarian\npresenting_problems:\n  - worry about work\n  - trouble sleeping\n"
            f"background: Lives alone and walks to work every day.\n",
            encoding="utf-8",
        )
        paths.append(path)
    return paths


def guard_cache_entries() -> int:
    """Texts held by the guards' similarity caches (bounded ``lru_cache``s)."""
    from simulator import guards

    return sum(f.cache_info().currsize for f in _guard_caches(guards))


def clear_guard_caches() -> None:
    from simulator import guards

    for cached in _guard_caches(guards):
        cached.cache_clear()


def _guard_caches(module: Any) -> list[Any]:
    return [f for f in vars(module).values() if callable(getattr(f, "cache_info", None))]


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------------------ phases


def run_settings(args: argparse.Namespace, url: str, out: Path) -> dict[str, Any]:
    return {
        "sessions": args.sessions,
        "backend": "openai",
        "base_url": url,
        "therapist_model": MODELS["therapist"],
        "patient_model": MODELS["patient"],
        "summarizer_model": MODELS["summarizer"],
        "concurrency": args.concurrency,
        "max_turns": args.max_turns,
        "out": out,
        "run_id": "bench",
    }


async def simulator_phase(args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    import simulator.backends.openai  # noqa: F401  (imported before the clock starts, as in bare)
    from simulator import commands
    from simulator.state import SessionEvent

    personas = write_personas(work / "personas", args.personas)
    samples: list[tuple[int, int, int, int]] = []
    finished = 0

    def sample(event: SessionEvent) -> None:
        nonlocal finished
        if event.record is None:
            return
        finished += 1
        if not args.trace_memory:
            return
        if args.clear_guard_caches:
            clear_guard_caches()
        gc.collect()
        samples.append((finished, rss_bytes(), sys.getallocatedblocks(), guard_cache_entries()))

    gc.collect()
    rss_before = rss_bytes()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    code = await commands.run(
        personas, None, run_settings(args, url, work / "runs"), progress=False, listeners=[sample]
    )
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    run = json.loads((work / "runs" / "bench" / "run.json").read_text())
    return {
        "exit_code": code,
        "calls": run["totals"]["requests"],
        "sessions": run["totals"].get("complete", 0),
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before": rss_before,
        "peak_rss": peak_rss_bytes(),
        "samples": samples,
    }


async def bare_phase(args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    """The same calls with nothing around them but what any script needs."""
    import openai

    from simulator.config import RunConfig
    from simulator.personas import Patient
    from simulator.plan import load_plan

    config = RunConfig(max_turns=args.max_turns)
    plan = load_plan(config, write_personas(work / "personas", args.personas))
    client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
    semaphore = asyncio.Semaphore(args.concurrency)
    calls = 0
    out = work / "bare"
    out.mkdir()

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        nonlocal calls
        calls += 1
        reply = await client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    async def series(patient: Patient) -> None:
        async with semaphore:
            previous: str | None = None
            for number in range(1, args.sessions + 1):
                prompts = plan.prompts(patient, number, previous)
                said = [("Patient", prompts.opening)]
                for turn in range(args.max_turns - 1):
                    speaker = "Therapist" if turn % 2 == 0 else "Patient"
                    system = prompts.therapist if speaker == "Therapist" else prompts.patient
                    view = [{"role": "system", "content": system}]
                    view += [{"role": "assistant" if s == speaker else "user", "content": t} for s, t in said]
                    if speaker == "Therapist" and args.max_turns - len(said) <= config.wrap_up_turns:
                        view.append({"role": "system", "content": config.wrap_up_note})
                    said.append((speaker, await ask(MODELS[speaker.lower()], view)))
                transcript = "\n\n".join(f"{s}: {t}" for s, t in said)
                previous = await ask(
                    MODELS["summarizer"],
                    [
                        {"role": "system", "content": prompts.summarizer},
                        {"role": "user", "content": transcript},
                    ],
                )
                (out / f"{patient.key}_{number:02d}.txt").write_text(f"{transcript}\n\n{previous}\n")

    patients = [p.persona for p in plan.patients if isinstance(p.persona, Patient)]
    gc.collect()
    rss_before = rss_bytes()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(series(p) for p in patients))
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    await client.close()
    return {
        "exit_code": 0,
        "calls": calls,
        "sessions": len(patients) * args.sessions,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before": rss_before,
        "peak_rss": peak_rss_bytes(),
        "samples": [],
    }


def phase_main(args: argparse.Namespace) -> None:
    import simulator.backends.openai  # noqa: F401  (both phases pay the imports before timing)

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        phase = simulator_phase if args.phase == "simulator" else bare_phase
        result = asyncio.run(phase(args, args.url, Path(tmp)))
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------ driver


def start_server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "loopback_server.py"),
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url.startswith("http"):
        server.kill()
        raise SystemExit(f"the loopback server did not start: {url!r}")
    return server, url


def run_phase(name: str, args: argparse.Namespace, url: str, **overrides: Any) -> dict[str, Any]:
    settings = {**vars(args), **overrides}
    command = [sys.executable, __file__, "--phase", name, "--url", url]
    for key in ("personas", "sessions", "concurrency", "max_turns"):
        command += [f"--{key.replace('_', '-')}", str(settings[key])]
    for flag in ("trace_memory", "clear_guard_caches"):
        if settings.get(flag):
            command.append(f"--{flag.replace('_', '-')}")
    return run_command(name, command)


def run_command(name: str, command: list[str]) -> dict[str, Any]:
    """Run one phase in a fresh process (no key, no base URL); its last stdout line is JSON."""
    env = {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"{name} phase failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["exit_code"] != 0:
        raise SystemExit(f"{name} phase: exit code {result['exit_code']}:\n{proc.stderr[-3000:]}")
    return result


def memory_growth(samples: list[tuple[int, float]], total: int, concurrency: int) -> dict[str, float]:
    """Slope of a measure against sessions finished, away from the start (caches filling,
    allocator warming up) and the tail (fewer sessions in flight), and its two ends."""
    window = [(n, m) for n, m in samples if total // 4 <= n <= total - concurrency]
    if len(window) < 3:
        nan = float("nan")
        return {"slope": nan, "first": nan, "last": nan, "from": nan, "to": nan}
    xs, ys = [float(n) for n, _ in window], [float(m) for _, m in window]
    slope = statistics.linear_regression(xs, ys).slope
    return {"slope": slope, "first": ys[0], "last": ys[-1], "from": xs[0], "to": xs[-1]}


def mb(value: float) -> str:
    return f"{value / 2**20:.1f}"


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> float:
    print(
        f"\nshape: {args.personas} personas x {args.sessions} sessions, concurrency {args.concurrency}, "
        f"{args.latency_ms:g} ms latency, {args.max_turns} messages a session; best of {args.repeat}"
    )
    print(
        f"{'':10} {'calls':>6} {'wall s':>8} {'ms/call':>8} {'CPU s':>7} {'CPU ms/call':>11} {'peak RSS MB':>12} {'run ΔRSS MB':>12}"
    )
    best: dict[str, dict[str, Any]] = {}
    for name, runs in results.items():
        top = min(runs, key=lambda r: r["wall_s"])
        best[name] = top
        calls = top["calls"]
        print(
            f"{name:10} {calls:>6} {top['wall_s']:>8.2f} {top['wall_s'] / calls * 1000:>8.2f} "
            f"{top['cpu_s']:>7.2f} {top['cpu_s'] / calls * 1000:>11.3f} {mb(top['peak_rss']):>12} "
            f"{mb(top['peak_rss'] - top['rss_before']):>12}"
        )
    if best["simulator"]["calls"] != best["bare"]["calls"]:
        print(
            f"warning: the two made different numbers of calls ({best['simulator']['calls']} vs {best['bare']['calls']})"
        )
    per_call = {name: float(top["wall_s"]) / int(top["calls"]) for name, top in best.items()}
    ratio = per_call["simulator"] / per_call["bare"]
    walls = {name: ", ".join(f"{r['wall_s']:.2f}" for r in runs) for name, runs in results.items()}
    print(f"every run, wall s: {walls}")
    print(
        f"ratio, wall time per call, simulator / bare: {ratio:.3f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})"
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulator overhead against a bare AsyncOpenAI loop.")
    parser.add_argument("--personas", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--max-turns", type=int, default=40, help="messages a session (default 40)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating; the best counts")
    parser.add_argument(
        "--memory-personas", type=int, default=64, help="personas in the memory run (0: skip)"
    )
    parser.add_argument("--phase", choices=["simulator", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--trace-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clear-guard-caches", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        phase_main(args)
        return 0
    server, url = start_server(args.latency_ms)
    try:
        results: dict[str, list[dict[str, Any]]] = {"bare": [], "simulator": []}
        for _ in range(args.repeat):
            for name in ("bare", "simulator"):
                results[name].append(run_phase(name, args, url))
        if args.repeat:
            report(args, results)
        if args.memory_personas:
            memory(args, url)
    finally:
        server.terminate()
        server.wait()
    return 0


def memory(args: argparse.Namespace, url: str) -> None:
    total = args.memory_personas * args.sessions
    print(
        f"\nmemory: {args.memory_personas} personas x {args.sessions} sessions at concurrency "
        f"{args.concurrency} ({total} sessions), sampled after a full collection as each session finishes"
    )
    for label, clear in (("as run", False), ("guards' text caches emptied at each sample", True)):
        result = run_phase(
            "simulator", args, url, personas=args.memory_personas, trace_memory=True, clear_guard_caches=clear
        )
        samples = result["samples"]
        rss = memory_growth([(s[0], s[1]) for s in samples], total, args.concurrency)
        blocks = memory_growth([(s[0], s[2]) for s in samples], total, args.concurrency)
        cached = samples[-1][3] if samples else 0
        print(
            f"  {label}: RSS {mb(rss['first'])} -> {mb(rss['last'])} MB from {rss['from']:.0f} to {rss['to']:.0f} "
            f"sessions finished ({rss['slope'] / 1024:+.1f} KB per session); Python heap "
            f"{blocks['first'] / 1000:.0f}k -> {blocks['last'] / 1000:.0f}k blocks ({blocks['slope']:+.0f} blocks "
            f"per session); guard cache entries at the end: {cached}; peak RSS {mb(result['peak_rss'])} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
