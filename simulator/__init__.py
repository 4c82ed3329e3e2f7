"""simulator: synthetic therapy-session series from persona files and prompt templates.

The public API drives a run without the CLI (a notebook, a pipeline)::

    config = simulator.RunConfig(sessions=2, backend="offline")
    plan = simulator.load_plan(config, [Path("personas/marcus_thompson.yaml")])
    run = asyncio.run(simulator.run_series(plan))
    for session in run.sessions():
        ...

Everything else is internal and may change between versions.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.commands import run_series
    from simulator.config import RunConfig, load_config
    from simulator.errors import BackendError, InputError, SimulatorError
    from simulator.personas import load_persona
    from simulator.plan import RunPlan, load_plan
    from simulator.reader import Run, RunSession, read_run

_WHERE = {
    "run_series": "simulator.commands",
    "RunConfig": "simulator.config",
    "load_config": "simulator.config",
    "BackendError": "simulator.errors",
    "InputError": "simulator.errors",
    "SimulatorError": "simulator.errors",
    "load_persona": "simulator.personas",
    "RunPlan": "simulator.plan",
    "load_plan": "simulator.plan",
    "Run": "simulator.reader",
    "RunSession": "simulator.reader",
    "read_run": "simulator.reader",
}


def __getattr__(name: str) -> Any:
    """The public names load on first use, so that importing a small module of the package
    (the ``simulator`` command's signal handling, first of all) stays cheap."""
    if name not in _WHERE:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "BackendError",
    "InputError",
    "Run",
    "RunConfig",
    "RunPlan",
    "RunSession",
    "SimulatorError",
    "__version__",
    "load_config",
    "load_persona",
    "load_plan",
    "read_run",
    "run_series",
]
