"""Deferred imports, so a command pays only for the modules it uses (``simulator --help``
should not import pydantic, jinja2, rich or the OpenAI SDK)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import click

__all__ = ["LazyChoice", "lazy_module"]


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, executed on its first attribute access rather than now."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


class LazyChoice(click.Choice[str]):
    """A :class:`click.Choice` whose choices are read when first needed (parsing or the
    command's own help), not when the command line interface is built."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True) -> None:
        super().__init__((), case_sensitive)
        self._load = load

    def __getattribute__(self, name: str) -> Any:
        if name == "choices":
            return tuple(object.__getattribute__(self, "_load")())
        return super().__getattribute__(name)
