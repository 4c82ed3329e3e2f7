"""Where a run is: a live display on a terminal, plain log lines otherwise.

Both views read the same counters, kept from the runner's session events: sessions done per
persona and in all, sessions running, tokens, cache hits, estimated cost, failed sessions.
The counters start from run.json, so a resumed run shows what it had already done.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from simulator.config import RunConfig
from simulator.cost import estimate_cost
from simulator.records import TokenCounts
from simulator.state import RunState, SessionEvent

LIVE_REFRESH_PER_SECOND = 4


class Progress:
    """Counts sessions per persona, tokens, cost and errors from the runner's events."""

    def __init__(self, state: RunState, config: RunConfig) -> None:
        self.config = config
        self.run_id = state.index.run_id
        self.backend = state.index.backend
        sessions = state.index.sessions
        self.planned = {pid: len(s) for pid, s in sessions.items()}
        self.total = sum(self.planned.values())
        self.done = {pid: sum(1 for e in s.values() if e.status == "complete") for pid, s in sessions.items()}
        self.running: set[tuple[str, int]] = set()
        self.errors = 0
        self.tokens: dict[str, TokenCounts] = state.usage()

    def update(self, event: SessionEvent) -> None:
        key = (event.persona_id, event.session_number)
        if event.status == "running":
            self.running.add(key)
            return
        self.running.discard(key)
        if event.status == "complete":
            self.done[event.persona_id] = self.done.get(event.persona_id, 0) + 1
        elif event.status == "failed":
            self.errors += 1
        if event.record is not None:
            for role, counts in event.record.usage.items():
                self.tokens.setdefault(role, TokenCounts()).merge(counts)

    def line(self, event: SessionEvent) -> str:
        """``[3/16] marcus_thompson session 2: complete (Natural Session End); this session
        1234 tokens, no errors; run 5678 tokens, ..., 0 failed sessions``: the session's own
        numbers first, then the run's."""
        text = f"[{sum(self.done.values())}/{self.total}] {event.persona_id} session {event.session_number}: {event.status}"
        record = event.record
        if record is None:
            return f"{text}; run {self.counters()}"
        if record.termination is not None:
            text += f" ({record.termination.reason})"
        if record.error:
            text += f": {record.error}"
        own = _total(record.usage.values())
        errors = "1 error" if record.status == "failed" else "no errors"
        return f"{text}; this session {own.prompt_tokens + own.completion_tokens} tokens, {errors}; run {self.counters()}"

    def counters(self) -> str:
        totals = _total(self.tokens.values())
        hits = f", {totals.cache_hits} cache hits" if totals.cache_hits else ""
        failed = f"{self.errors} failed session{'s' if self.errors != 1 else ''}"
        return f"{totals.prompt_tokens + totals.completion_tokens} tokens{hits}{self._cost()}, {failed}"

    def _cost(self) -> str:
        cost = estimate_cost(self.tokens, self.config)
        return f", ~${cost:.4f}" if cost is not None else ""

    def view(self) -> RenderableType:
        """The live display: a row per persona, then the run's totals on one line."""
        table = Table(title=f"run {self.run_id} ({self.backend})", title_justify="left")
        table.add_column("persona")
        table.add_column("sessions", justify="right")
        table.add_column("running")
        for pid, planned in self.planned.items():
            now = ", ".join(f"session {n}" for p, n in sorted(self.running) if p == pid)
            table.add_row(pid, f"{self.done.get(pid, 0)}/{planned}", now)
        return Group(table, Text(self.status()))

    def status(self) -> str:
        done = sum(self.done.values())
        return f"{done}/{self.total} sessions done, {len(self.running)} running; {self.counters()}"


def _total(counts: Iterable[TokenCounts]) -> TokenCounts:
    total = TokenCounts()
    for one in counts:
        total.merge(one)
    return total


@contextmanager
def attach_progress(
    state: RunState, config: RunConfig, *, enabled: bool | None, stream: TextIO | None = None
) -> Iterator[Progress]:
    """Live table when ``stream`` (stderr) is a terminal or ``enabled``; one log line per
    finished session when it is not (or ``enabled`` is False), so logs stay greppable."""
    out = stream if stream is not None else sys.stderr
    progress = Progress(state, config)
    live_wanted = out.isatty() if enabled is None else enabled
    if not live_wanted:

        def log(event: SessionEvent) -> None:
            progress.update(event)
            if event.record is not None:
                print(progress.line(event), file=out, flush=True)

        state.listeners.append(log)
        try:
            yield progress
        finally:
            state.listeners.remove(log)
        return
    console = Console(file=out)
    with Live(
        progress.view(), console=console, refresh_per_second=LIVE_REFRESH_PER_SECOND, transient=False
    ) as live:

        def show(event: SessionEvent) -> None:
            progress.update(event)
            live.update(progress.view())

        state.listeners.append(show)
        try:
            yield progress
        finally:
            state.listeners.remove(show)
