"""Hard limits on what users and servers hand us, in one place (the README lists them).

Inputs come from strangers (persona data from other groups, configs, templates, servers), so
each has a ceiling that turns a resource blow-up into one clear error.
"""

from __future__ import annotations

MAX_INPUT_BYTES = 5 * 1024 * 1024
"""Largest persona or config file accepted (5 MB)."""
MAX_YAML_DEPTH = 20
"""Deepest nesting of mappings and lists in a YAML input; the top-level mapping is level 1."""
MAX_SESSION = 999
"""Highest session number: session files are named ``session_01`` ... ``session_999``."""
TEMPLATE_SECONDS = 5.0
"""Wall-clock budget for rendering one template."""
TEMPLATE_OUTPUT_CHARS = 1024 * 1024
"""Longest text one template may render (1 MB), and longest string or list it may build."""
TEMPLATE_RANGE = 10_000
"""Most items a ``range()`` in a template may have."""
MAX_REPLY_TOKENS = 100_000_000
"""Token counts a server reports above this are not believed (a request is never that big)."""
