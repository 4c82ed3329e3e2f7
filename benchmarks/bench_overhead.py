"""What the simulator costs on top of the model calls it makes, beside what a user would
write instead and beside the limit.

One command, from the repository root::

    .venv/bin/python benchmarks/bench_overhead.py

For each shape (personas x sessions / concurrency / server latency; by default 16x2/c16/50,
64x2/c64/200 and 600x1/c600/200) it starts the loopback server
(``benchmarks/loopback_server.py``, in its own process, so the CPU figures are the client's
alone) and runs the same work with each contender, each in a fresh process:

* ``aiohttp loop``: a bare aiohttp POST loop, one ``ClientSession`` with a pool of the
  concurrency, ``json=`` in, ``await response.json()`` out: the limit;
* ``AsyncOpenAI loop``: a bare ``openai.AsyncOpenAI`` loop as a user would write it
  (``client.chat.completions.create``, the SDK's defaults): what a user would write instead;
* ``simulator``: ``simulator run --backend openai --base-url`` (the library call the CLI
  makes, timed from the call), with everything it does: guards, records, atomic files,
  run.json, log lines;
* AutoGen AgentChat, when it is installed (it is not a dependency; the table says so).

The two loops are written once, plainly, and not tuned: the same rendered prompts, the same
number of calls per session with the same message history growth (system prompt, alternating
turns, the wrap-up note, a summary that opens the next session), one transcript file per
session. The table gives, per shape, each contender's wall time and CPU time per call, the
ideal (calls x latency / concurrency) and the ratios to it, to the aiohttp loop and to the
SDK loop. Then the simulator's CPU per call at two session lengths (``--flat-turns``,
default 12 and 100 messages; the SDK loop beside it), and its memory sampled as sessions
finish. ``--help`` lists the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loopback_server import MODELS  # noqa: E402

NAMES = ["Ada Byrne", "Ben Okafor", "Cara Lindqvist", "Dev Raman", "Eli Novak", "Fay Moreau", "Gus Hale"]
CONTENDERS = {"aiohttp": "aiohttp loop", "sdk": "AsyncOpenAI loop", "simulator": "simulator"}
DEFAULT_SHAPES = "16x2/c16/50,64x2/c64/200,600x1/c600/200"
Ask = Callable[[str, list[dict[str, str]]], Awaitable[str]]


@dataclass(frozen=True)
class Shape:
    personas: int
    sessions: int
    concurrency: int
    latency_ms: float

    @classmethod
    def parse(cls, text: str) -> Shape:
        """``64x2/c64/200``: 64 personas x 2 sessions, concurrency 64, 200 ms a reply."""
        size, concurrency, latency = text.strip().split("/")
        personas, sessions = size.split("x")
        return cls(int(personas), int(sessions), int(concurrency.lstrip("c")), float(latency))

    def __str__(self) -> str:
        return f"{self.personas}x{self.sessions}/c{self.concurrency}/{self.latency_ms:g}ms"


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


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """This process's CPU, all threads: the client's share only (the server is another process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------------------ phases


async def simulator_phase(args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    import simulator.backends.openai  # noqa: F401  (imported before the clock starts, as in the loops)
    from simulator import commands
    from simulator.state import SessionEvent

    personas = write_personas(work / "personas", args.personas)
    samples: list[tuple[int, int, int]] = []
    finished = 0

    def sample(event: SessionEvent) -> None:
        nonlocal finished
        if event.record is None:
            return
        finished += 1
        if args.trace_memory:
            gc.collect()
            samples.append((finished, rss_bytes(), sys.getallocatedblocks()))

    settings = {
        "sessions": args.sessions,
        "backend": "openai",
        "base_url": url,
        "therapist_model": MODELS["therapist"],
        "patient_model": MODELS["patient"],
        "summarizer_model": MODELS["summarizer"],
        "concurrency": args.concurrency,
        "max_turns": args.max_turns,
        "out": work / "runs",
        "run_id": "bench",
    }
    gc.collect()
    rss_before = rss_bytes()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    code = await commands.run(personas, None, settings, progress=False, listeners=[sample])
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


async def loop_phase(args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    """The same calls with nothing around them but what any script needs."""
    from simulator.config import RunConfig
    from simulator.personas import Patient
    from simulator.plan import load_plan

    config = RunConfig(max_turns=args.max_turns)
    plan = load_plan(config, write_personas(work / "personas", args.personas))
    semaphore = asyncio.Semaphore(args.concurrency)
    calls = 0
    out = work / "transcripts"
    out.mkdir()

    async def series(patient: Patient, ask: Ask) -> None:
        nonlocal calls
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
                    calls += 1
                    said.append((speaker, await ask(MODELS[speaker.lower()], view)))
                transcript = "\n\n".join(f"{s}: {t}" for s, t in said)
                calls += 1
                previous = await ask(
                    MODELS["summarizer"],
                    [
                        {"role": "system", "content": prompts.summarizer},
                        {"role": "user", "content": transcript},
                    ],
                )
                (out / f"{patient.key}_{number:02d}.txt").write_text(f"{transcript}\n\n{previous}\n")

    patients = [p.persona for p in plan.patients if isinstance(p.persona, Patient)]
    client = await LOOPS[args.phase](url, args.concurrency)
    gc.collect()
    rss_before = rss_bytes()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    async with client as ask:
        await asyncio.gather(*(series(p, ask) for p in patients))
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
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


class _SdkLoop:
    """``openai.AsyncOpenAI`` with its defaults, as its README shows."""

    def __init__(self, url: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(base_url=url, api_key="bench")

    async def __aenter__(self) -> Ask:
        async def ask(model: str, messages: list[dict[str, str]]) -> str:
            reply = await self.client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
            return reply.choices[0].message.content or ""

        return ask

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


class _AiohttpLoop:
    """One aiohttp ``ClientSession`` with a connection per concurrent series."""

    def __init__(self, url: str, concurrency: int) -> None:
        import aiohttp

        self.url = f"{url}/chat/completions"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            headers={"Authorization": "Bearer bench"},
        )

    async def __aenter__(self) -> Ask:
        async def ask(model: str, messages: list[dict[str, str]]) -> str:
            async with self.session.post(self.url, json={"model": model, "messages": messages}) as response:
                response.raise_for_status()
                data = await response.json()
            return str(data["choices"][0]["message"]["content"])

        return ask

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


async def _sdk(url: str, concurrency: int) -> _SdkLoop:
    return _SdkLoop(url)


async def _aiohttp(url: str, concurrency: int) -> _AiohttpLoop:
    return _AiohttpLoop(url, concurrency)


LOOPS: dict[str, Callable[[str, int], Awaitable[Any]]] = {"sdk": _sdk, "aiohttp": _aiohttp}


def phase_main(args: argparse.Namespace) -> None:
    import openai  # noqa: F401  (every phase pays the imports before its clock starts)

    import simulator.backends.openai  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        phase = simulator_phase if args.phase == "simulator" else loop_phase
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


def run_phase(
    name: str, shape: Shape, url: str, max_turns: int, *, trace_memory: bool = False
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", name, "--url", url, "--max-turns", str(max_turns)]
    command += ["--personas", str(shape.personas), "--sessions", str(shape.sessions)]
    command += ["--concurrency", str(shape.concurrency)]
    if trace_memory:
        command.append("--trace-memory")
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


def per_call_ms(result: dict[str, Any], key: str) -> float:
    return float(result[key]) / int(result["calls"]) * 1000


def compare(args: argparse.Namespace, shapes: list[Shape]) -> list[dict[str, Any]]:
    """Every contender on every shape; the run with the least wall time of ``--repeat`` counts."""
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        server, url = start_server(shape.latency_ms)
        try:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
            for _ in range(args.repeat):
                for name in CONTENDERS:
                    runs[name].append(run_phase(name, shape, url, args.max_turns))
                    print(f"  {shape} {CONTENDERS[name]}: {runs[name][-1]['wall_s']:.1f} s", file=sys.stderr)
        finally:
            server.terminate()
            server.wait()
        best = {name: min(results, key=lambda r: r["wall_s"]) for name, results in runs.items()}
        rows.append({"shape": shape, "best": best})
    return rows


def print_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    autogen = (
        "installed but not measured" if importlib.util.find_spec("autogen_agentchat") else "not installed"
    )
    print(
        f"\n{args.max_turns} messages a session; best of {args.repeat} by wall time; CPU is the client "
        f"process's alone; AutoGen AgentChat: {autogen}"
    )
    header = (
        f"{'shape':22} {'contender':17} {'calls':>6} {'wall s':>7} {'wall ms/call':>12} {'CPU ms/call':>11} "
        f"{'x ideal':>7} {'x aiohttp':>9} {'x SDK':>6} {'peak RSS MB':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        shape, best = row["shape"], row["best"]
        calls = int(best["simulator"]["calls"])
        ideal_s = calls * shape.latency_ms / 1000 / shape.concurrency
        print(f"{shape!s:22} {'ideal':17} {calls:>6} {ideal_s:>7.2f} {ideal_s / calls * 1000:>12.2f}")
        walls = {name: per_call_ms(result, "wall_s") for name, result in best.items()}
        for name, result in best.items():
            print(
                f"{'':22} {CONTENDERS[name]:17} {result['calls']:>6} {result['wall_s']:>7.2f} {walls[name]:>12.2f} "
                f"{per_call_ms(result, 'cpu_s'):>11.2f} {result['wall_s'] / ideal_s:>7.2f} "
                f"{walls[name] / walls['aiohttp']:>9.2f} {walls[name] / walls['sdk']:>6.2f} "
                f"{result['peak_rss'] / 2**20:>11.0f}"
            )
            if result["calls"] != calls:
                print(
                    f"{'':22} warning: {CONTENDERS[name]} made {result['calls']} calls, the simulator {calls}"
                )
    print()
    for row in rows:
        shape, best = row["shape"], row["best"]
        sim = best["simulator"]
        cpu = per_call_ms(sim, "cpu_s")
        vs_aiohttp = sim["wall_s"] / best["aiohttp"]["wall_s"]
        vs_sdk = sim["wall_s"] / best["sdk"]["wall_s"]
        cpu_target = 2.0 if shape.concurrency <= 64 else 3.0
        print(
            f"{shape!s:22} simulator CPU/call {cpu:.2f} ms (target <= {cpu_target:g}: {_verdict(cpu <= cpu_target)}); "
            f"wall/call {vs_aiohttp:.2f}x the aiohttp loop (target <= 1.3: {_verdict(vs_aiohttp <= 1.3)}), "
            f"{vs_sdk:.2f}x the SDK loop (target <= 0.7: {_verdict(vs_sdk <= 0.7)})"
        )


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def flatness(args: argparse.Namespace) -> None:
    """CPU per call at a short and a long session: flat means nothing grows with the history."""
    shape = Shape.parse(args.flat_shape)
    lengths = [int(n) for n in args.flat_turns.split(",")]
    server, url = start_server(shape.latency_ms)
    try:
        figures = {
            name: [per_call_ms(run_phase(name, shape, url, turns), "cpu_s") for turns in lengths]
            for name in ("simulator", "sdk")
        }
    finally:
        server.terminate()
        server.wait()
    print(f"\nCPU per call against session length ({shape}):")
    for name, values in figures.items():
        cells = ", ".join(
            f"{turns} messages {value:.2f} ms" for turns, value in zip(lengths, values, strict=True)
        )
        print(f"  {CONTENDERS[name]:17} {cells}; longest / shortest {values[-1] / values[0]:.2f}")
    growth = figures["simulator"][-1] / figures["simulator"][0]
    print(f"  simulator flat within 20%: {_verdict(0.8 <= growth <= 1.2)}")


def memory_growth(samples: list[tuple[int, float]], total: int, concurrency: int) -> dict[str, float]:
    """Slope of a measure against sessions finished, away from the start (allocator warming
    up) and the tail (fewer sessions in flight), and its two ends."""
    window = [(n, m) for n, m in samples if total // 4 <= n <= total - concurrency]
    if len(window) < 3:
        nan = float("nan")
        return {"slope": nan, "first": nan, "last": nan, "from": nan, "to": nan}
    xs, ys = [float(n) for n, _ in window], [float(m) for _, m in window]
    slope = statistics.linear_regression(xs, ys).slope
    return {"slope": slope, "first": ys[0], "last": ys[-1], "from": xs[0], "to": xs[-1]}


def memory(args: argparse.Namespace) -> None:
    shape = Shape.parse(args.memory_shape)
    total = shape.personas * shape.sessions
    server, url = start_server(shape.latency_ms)
    try:
        result = run_phase("simulator", shape, url, args.max_turns, trace_memory=True)
    finally:
        server.terminate()
        server.wait()
    samples = result["samples"]
    rss = memory_growth([(s[0], s[1]) for s in samples], total, shape.concurrency)
    blocks = memory_growth([(s[0], s[2]) for s in samples], total, shape.concurrency)
    print(
        f"\nmemory ({shape}, {total} sessions, sampled after a full collection as each finishes): "
        f"RSS {rss['first'] / 2**20:.1f} -> {rss['last'] / 2**20:.1f} MB from {rss['from']:.0f} to "
        f"{rss['to']:.0f} sessions finished ({rss['slope'] / 1024:+.1f} KB per session); Python heap "
        f"{blocks['first'] / 1000:.0f}k -> {blocks['last'] / 1000:.0f}k blocks ({blocks['slope']:+.0f} "
        f"blocks per session)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", default=DEFAULT_SHAPES, help=f"comma-separated (default {DEFAULT_SHAPES})"
    )
    parser.add_argument("--max-turns", type=int, default=40, help="messages a session (default 40)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender; the best counts")
    parser.add_argument("--flat-shape", default="16x1/c16/50", help="shape of the session-length runs")
    parser.add_argument("--flat-turns", default="12,100", help="session lengths to compare ('' skips)")
    parser.add_argument("--memory-shape", default="128x1/c16/50", help="shape of the memory run ('' skips)")
    parser.add_argument("--phase", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--personas", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trace-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        phase_main(args)
        return 0
    shapes = [Shape.parse(text) for text in args.shapes.split(",") if text.strip()]
    if shapes:
        print_table(args, compare(args, shapes))
    if args.flat_turns:
        flatness(args)
    if args.memory_shape:
        memory(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
