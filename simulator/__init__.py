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

import importlib
from typing import TYPE_CHECKING, Any

from simulator.errors import BackendError, InputError, SimulatorError

if TYPE_CHECKING:
    from simulator.commands import run_series
    from simulator.config import RunConfig, load_config
    from simulator.personas import load_persona
    from simulator.plan import RunPlan, load_plan
    from simulator.reader import Run, RunSession, read_run

_HOMES = {
    "run_series": "simulator.commands",
    "RunConfig": "simulator.config",
    "load_config": "simulator.config",
    "load_persona": "simulator.personas",
    "RunPlan": "simulator.plan",
    "load_plan": "simulator.plan",
    "Run": "simulator.reader",
    "RunSession": "simulator.reader",
    "read_run": "simulator.reader",
}
"""Where each public name lives. They are imported on first use (PEP 562), so that
``simulator --help`` does not pay for pydantic, jinja2 and the rest of a run."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
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
