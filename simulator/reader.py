"""Reading a run folder: the one way later commands (audit, evaluate, export, view) and
notebooks see a run.

``read_run(path)`` gives a :class:`Run`: the typed index (run.json) plus every session the
index lists, complete ones from their final records and unfinished ones from their
``.partial`` records, marked as such. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import RunStateError
from simulator.index import RunIndex, SessionEntry
from simulator.layout import persona_file, prompts_dir, therapist_file
from simulator.records import SessionRecord
from simulator.store import RunStore


@dataclass(frozen=True)
class RunSession:
    """A session the run's index lists, with its record when one is on disk."""

    persona_id: str
    number: int
    entry: SessionEntry
    record: SessionRecord | None
    partial: bool
    """True when ``record`` comes from a ``.partial`` file (the session did not complete)."""

    @property
    def status(self) -> str:
        return self.record.status if self.record is not None else self.entry.status

    @property
    def complete(self) -> bool:
        return self.record is not None and not self.partial and self.record.status == "complete"


@dataclass
class Run:
    """A run folder as data."""

    path: Path
    index: RunIndex

    @property
    def run_id(self) -> str:
        return self.index.run_id

    @property
    def store(self) -> RunStore:
        return RunStore(self.path)

    @property
    def persona_ids(self) -> list[str]:
        """Patients in run order."""
        return list(self.index.inputs.personas)

    def persona_file(self, persona_id: str) -> Path:
        """The snapshot of a patient persona the run was started with."""
        return persona_file(self.path, persona_id)

    @property
    def therapist_file(self) -> Path:
        return therapist_file(self.path)

    @property
    def prompts_dir(self) -> Path:
        return prompts_dir(self.path)

    def session(self, persona_id: str, number: int) -> RunSession:
        """One session; its record is read from the final file, else the partial one."""
        entry = self.index.sessions.get(persona_id, {}).get(number, SessionEntry())
        store = self.store
        if store.is_complete(persona_id, number):
            return RunSession(persona_id, number, entry, store.read_session(persona_id, number), False)
        if store.has_partial(persona_id, number):
            record = store.read_session(persona_id, number, partial=True)
            return RunSession(persona_id, number, entry, record, True)
        return RunSession(persona_id, number, entry, None, False)

    def sessions(self, *, complete_only: bool = False) -> Iterator[RunSession]:
        """Every session of the index in run order (persona, then number), read lazily so a
        large run never sits in memory whole."""
        for persona_id, number, _ in self.index.entries():
            found = self.session(persona_id, number)
            if not complete_only or found.complete:
                yield found

    def series(self, persona_id: str, *, complete_only: bool = False) -> list[RunSession]:
        """One persona's sessions in order."""
        numbers = sorted(self.index.sessions.get(persona_id, {}))
        found = [self.session(persona_id, n) for n in numbers]
        return [s for s in found if s.complete] if complete_only else found


def read_run(path: Path) -> Run:
    """Open a run folder; :class:`RunStateError` (exit 2) when it is not one or is damaged."""
    if not path.is_dir():
        raise RunStateError(path, "not a run folder (not a directory)")
    store = RunStore(path)
    data = store.read_run()
    try:
        index = RunIndex.parse(data)
    except ValueError as exc:
        raise RunStateError(store.run_file, f"damaged run.json: {exc}") from None
    return Run(path, index)
