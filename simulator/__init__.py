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

# The modules below read __version__, so it is set first.
from simulator.commands import run_series
from simulator.config import RunConfig, load_config
from simulator.errors import BackendError, InputError, SimulatorError
from simulator.personas import load_persona
from simulator.plan import RunPlan, load_plan
from simulator.reader import Run, RunSession, read_run

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
