"""Where a run is: a live display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulator.records import TokenCounts
from simulator.runner import RunState, SessionEvent, estimate_cost

if TYPE_CHECKING:
    from simulator.plan import RunPlan


class Progress:
    """Counts sessions per persona, tokens, cost and errors from the runner's events."""

    def __init__(self, state: RunState, plan: RunPlan) -> None:
        self.plan = plan
        self.state = state
        self.total = sum(len(s) for s in state.data["sessions"].values())
        self.done: dict[str, int] = {
            pid: sum(1 for e in s.values() if e.get("status") == "complete")
            for pid, s in state.data["sessions"].items()
        }
        self.planned = {pid: len(s) for pid, s in state.data["sessions"].items()}
        self.errors = 0
        self.tokens: dict[str, TokenCounts] = {}

    def update(self, event: SessionEvent) -> None:
        if event.record is None:
            return
        if event.status == "complete":
            self.done[event.persona_id] = self.done.get(event.persona_id, 0) + 1
        elif event.status == "failed":
            self.errors += 1
        for role, counts in event.record.usage.items():
            self.tokens.setdefault(role, TokenCounts()).merge(counts)

    def line(self, event: SessionEvent) -> str:
        done = sum(self.done.values())
        text = f"[{done}/{self.total}] {event.persona_id} session {event.session_number}: {event.status}"
        if event.record is not None and event.record.termination is not None:
            text += f" ({event.record.termination.reason})"
        return text + f"; {self._tokens()} tokens{self._cost()}, {self.errors} errors"

    def _tokens(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.tokens.values())

    def _cost(self) -> str:
        cost = estimate_cost(self.tokens, self.plan.config)
        return f", ~${cost:.4f}" if cost is not None else ""

    def table(self) -> Table:
        table = Table(title=f"run {self.state.data['run_id']} ({self.state.data['backend']})")
        table.add_column("persona")
        table.add_column("sessions", justify="right")
        for pid, planned in self.planned.items():
            table.add_row(pid, f"{self.done.get(pid, 0)}/{planned}")
        table.caption = (
            f"{sum(self.done.values())}/{self.total} sessions, {self._tokens()} tokens{self._cost()}, "
            f"{self.errors} errors"
        )
        return table


@contextmanager
def attach_progress(state: RunState, plan: RunPlan, *, enabled: bool | None) -> Iterator[None]:
    """Live table when stderr is a terminal (or --progress), log lines when it is not."""
    progress = Progress(state, plan)
    live_wanted = sys.stderr.isatty() if enabled is None else enabled
    if not live_wanted:

        def log(event: SessionEvent) -> None:
            progress.update(event)
            if event.record is not None:
                print(progress.line(event), file=sys.stderr, flush=True)

        state.listeners.append(log)
        try:
            yield
        finally:
            state.listeners.remove(log)
        return
    console = Console(stderr=True)
    with Live(progress.table(), console=console, refresh_per_second=4, transient=False) as live:

        def show(event: SessionEvent) -> None:
            progress.update(event)
            live.update(progress.table())

        state.listeners.append(show)
        try:
            yield
        finally:
            state.listeners.remove(show)
