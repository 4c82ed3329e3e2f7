"""How big and how fast the `simulator view` page is for a large run (200 personas x 10 sessions).

One command, from the repository root (needs Debian's chromium and chromium-driver)::

    .venv/bin/python benchmarks/bench_view.py

It makes a run through the real engine and the OpenAI backend against the benchmark's loopback
model (``benchmarks/loopback_server.py``, no latency: replies of 3-6 sentences, never an end
phrase, so every session runs to the default cap of 40 messages, the longest a default run
writes): 4 personas x 10 sessions, cloned to 200 personas under new ids (records, snapshots and
run.json, through the store). Then it prints:

* the page's size, per session, and against the run's own transcripts (the text it shows);
* the Python time to write the page, against reading the same run (every record) through the
  run reader: the ratio is what rendering costs on top of reading;
* the time headless Chromium takes from navigation to the page's script having run (the
  ``load`` event; the script runs last in the page) and to its first paint, against two baselines loaded the same way
  in the same browser: the same page with its script removed (the cost of the script at load)
  and a page of the run's plain transcripts in a ``<pre>`` (the cost of the page over text);
* the time to open one session and to run a free-text search over all 2,000 sessions.

Each browser figure is the best of ``--repeat`` loads (default 3; the ``<pre>`` baseline, a minute
a load, once).
"""

from __future__ import annotations

import argparse
import html
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loopback_server import MODELS, handler  # noqa: E402
from simulator.index import InputFile  # noqa: E402
from simulator.reader import read_run  # noqa: E402
from simulator.store import RunStore  # noqa: E402
from simulator.view import write_report  # noqa: E402
from tests.browser import CHROMEDRIVER, CHROMIUM, FLAGS  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402

SOURCES = ["marcus_thompson", "priya_shah", "walter_kowalski"]


def make_run(folder: Path, personas: int, sessions: int) -> Path:
    """Sessions of 40 messages from the loopback model, cloned to ``personas`` personas."""
    files = [ROOT / "personas" / f"{name}.yaml" for name in SOURCES]
    roles = [arg for role, model in MODELS.items() for arg in (f"--{role}-model", model)]
    with LoopbackServer(handler, record=False) as server:
        subprocess.run(
            [sys.executable, "-m", "simulator", "run", *map(str, files), "--sessions", str(sessions),
             "--backend", "openai", "--base-url", server.base_url, *roles, "--max-turns", "40",
             "--out", str(folder), "--run-id", "seed", "--no-progress"],
            check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={**os.environ, "OPENAI_API_KEY": "bench"},
        )  # fmt: skip
    seed = read_run(folder / "seed")
    target = folder / "big"
    shutil.copytree(seed.path / "inputs", target / "inputs")
    store = RunStore(target)
    index = seed.index.model_copy(deep=True)
    index.sessions, index.inputs.personas = {}, {}
    for n in range(personas):
        source = seed.persona_ids[n % len(seed.persona_ids)]
        new_id = f"p{n + 1:03d}_{source}"
        snapshot = seed.persona_file(source).read_text().replace(f"id: {source}", f"id: {new_id}")
        (target / "inputs" / "personas" / f"{new_id}.yaml").write_text(snapshot)
        index.inputs.personas[new_id] = InputFile(source=f"{new_id}.yaml", digest="sha256:bench")
        for session in seed.series(source):
            assert session.record is not None
            record = session.record.model_copy(update={"persona_id": new_id})
            store.write_session(record)
            index.sessions.setdefault(new_id, {})[session.number] = session.entry.model_copy()
    for source in seed.persona_ids:
        (target / "inputs" / "personas" / f"{source}.yaml").unlink()
    store.write_run(index.dump())
    return target


def best(times: list[float]) -> float:
    return min(times)


def python_figures(run_dir: Path, repeat: int) -> dict[str, float]:
    reads, writes = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for session in read_run(run_dir).sessions():
            assert session.record is not None
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        write_report(run_dir)
        writes.append(time.perf_counter() - start)
    return {"read": best(reads), "write": best(writes)}


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1280,900"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


SEARCH_DEBOUNCE_MS = 150
"""The page waits this long after the last keystroke before it searches."""
FIRST_PAINT = """
const done = arguments[0];
new PerformanceObserver((list, observer) => {
  const paint = list.getEntriesByName("first-contentful-paint")[0];
  if (paint) { observer.disconnect(); done(paint.startTime); }
}).observe({ type: "paint", buffered: true });
"""
"""Waits for the entry: Chromium records the paint a frame after it happens."""
LOAD_TIME = "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"


def load_ms(driver: Any, page: Path, repeat: int) -> tuple[float, float]:
    """Best time to the ``load`` event and to the first contentful paint."""
    loads, paints = [], []
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get(page.resolve().as_uri())
        loads.append(float(driver.execute_script(LOAD_TIME)))
        paints.append(float(driver.execute_async_script(FIRST_PAINT)))
    return best(loads), best(paints)


UNTIL = """
const [start, done] = [performance.now(), arguments[arguments.length - 1]];
const check = () => (%s) ? done(performance.now() - start) : requestAnimationFrame(check);
"""


def interaction_ms(driver: Any, page: Path, sessions: int) -> dict[str, float]:
    """Time from the user's action to the result on screen (bodies unpack asynchronously)."""
    driver.get(page.resolve().as_uri())
    driver.set_script_timeout(60)
    opened = driver.execute_async_script(
        UNTIL % "document.querySelector('details.session .msg')"
        + "document.querySelector('details.session').open = true; check();"
    )
    search = driver.execute_async_script(
        UNTIL % f"document.getElementById('f-count').textContent === '0 of {sessions} sessions'"
        + "const i = document.getElementById('f-text'); i.value = 'no such words anywhere';"
        + "i.dispatchEvent(new Event('input')); check();"
    )
    return {"open": float(opened), "search": float(search) - SEARCH_DEBOUNCE_MS}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--personas", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run_dir = make_run(folder, args.personas, args.sessions)
        run = read_run(run_dir)
        sessions = sum(len(v) for v in run.index.sessions.values())
        lengths = {len(s.record.messages) for s in run.sessions() if s.record is not None}
        length = "-".join(str(n) for n in sorted({min(lengths), max(lengths)}))
        py = python_figures(run_dir, args.repeat)
        page = run_dir / "report.html"
        size = page.stat().st_size
        text = page.read_text()
        no_script = folder / "no_script.html"
        start = text.rindex("<script>")
        no_script.write_text(text[:start] + text[text.index("</script>", start) + 9 :])
        transcripts = "\n\n".join(p.read_text() for p in sorted(run_dir.glob("*/session_*.txt")))
        plain = folder / "plain.html"
        plain.write_text(f"<!DOCTYPE html><meta charset=utf-8><pre>{html.escape(transcripts)}</pre>")
        text_bytes = len(transcripts.encode())
        driver = browser()
        try:
            page_ms = load_ms(driver, page, args.repeat)
            no_script_ms = load_ms(driver, no_script, args.repeat)
            plain_ms = load_ms(driver, plain, 1)  # a minute a load: once is enough
            actions = interaction_ms(driver, page, sessions)
        finally:
            driver.quit()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"run: {args.personas} personas x {args.sessions} sessions = {sessions} sessions of {length} messages"
    )
    print(f"page: {size / 1e6:.1f} MB ({size / sessions / 1e3:.1f} kB a session); the run's transcripts "
          f"{text_bytes / 1e6:.1f} MB (page/transcripts {size / text_bytes:.2f}x)")  # fmt: skip
    print(f"python: write page {py['write']:.2f} s, read the run {py['read']:.2f} s "
          f"(page/read {py['write'] / py['read']:.2f}x); peak RSS {peak:.0f} MB")  # fmt: skip
    print(f"chromium load: page {page_ms[0]:.0f} ms (first paint {page_ms[1]:.0f} ms); same page without "
          f"script {no_script_ms[0]:.0f} ms ({page_ms[0] / no_script_ms[0]:.2f}x); the transcripts in one "
          f"<pre> {plain_ms[0]:.0f} ms ({page_ms[0] / plain_ms[0]:.2f}x)")  # fmt: skip
    print(f"chromium: open one session {actions['open']:.1f} ms; search all {sessions} sessions "
          f"{actions['search']:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
