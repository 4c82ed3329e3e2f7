"""simulator: synthetic therapy-session series from persona files and prompt templates."""

from simulator.errors import BackendError, InputError, SimulatorError

__version__ = "0.1.0"

__all__ = ["BackendError", "InputError", "SimulatorError", "__version__"]
