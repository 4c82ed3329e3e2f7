"""The offline backend: deterministic, persona-driven replies without a language model."""

from simulator.backends.offline.backend import OfflineBackend

__all__ = ["OfflineBackend"]
