"""Where a run's sessions execute: ``local`` (this process) or ``ray`` (a cluster's workers,
:mod:`simulator.raydriver`). Either way this process alone writes the run folder."""

from __future__ import annotations

from simulator.config import RunConfig
from simulator.plan import RunPlan
from simulator.protocol import ChatBackend
from simulator.runner import Runner
from simulator.state import RunState


def prepare_executor(config: RunConfig) -> RunConfig:
    """Check and connect before a run folder is made or locked: without Ray installed, or
    with a cluster that cannot be reached, the command exits 2 and nothing is written.
    Returns the config this process builds its backend from: on Ray the workers make the
    calls and the cache is off, so no cache file is opened (or created) here."""
    if config.executor != "ray":
        return config
    from simulator.raydriver import connect

    connect(config.ray_address)
    return config.model_copy(update={"cache": None})


def make_runner(plan: RunPlan, backend: ChatBackend, state: RunState, *, owned: bool) -> Runner:
    """The runner for the plan's executor; run.json records which one ran the sessions (the
    Ray runner adds how many workers). ``owned``: ``backend`` was built from the config, so
    Ray workers build their own; else the caller's backend is copied to each worker."""
    state.index.settings["executor"] = plan.config.executor
    state.index.settings["workers"] = None
    if plan.config.executor == "ray":
        from simulator.raydriver import RayRunner

        return RayRunner(plan, backend, state, given=not owned)
    return Runner(plan, backend, state)
