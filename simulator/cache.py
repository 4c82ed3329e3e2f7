"""Opt-in response cache (``--cache FILE``): SQLite, keyed by everything that shapes a reply.

It wraps any backend through the same protocol. A hit returns the stored text and costs no
tokens (its usage is zero; the hit is counted). WAL mode and a busy timeout make one file safe
for many concurrent sessions and for several processes at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from simulator.backend import ChatBackend, ChatReply, ChatRequest, Usage
from simulator.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    model TEXT NOT NULL,
    finish_reason TEXT,
    usage TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
)
"""


def request_key(request: ChatRequest, endpoint: str) -> str:
    """Digest of the endpoint, model, messages, parameters and seed (and, for the offline
    backend whose replies come from the scene, the persona and session)."""
    scene = request.scene
    shape: dict[str, Any] = {
        "endpoint": endpoint,
        "role": request.role,
        "purpose": request.purpose,
        "messages": [m.as_dict() for m in request.messages],
        "settings": request.settings.model_dump(mode="json", exclude={"base_urls"}),
        "scene": [scene.patient.key, scene.session_number, scene.seed] if scene is not None else None,
    }
    blob = json.dumps(shape, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


class CachedBackend:
    """A caching layer in front of another backend."""

    def __init__(self, inner: ChatBackend, path: Path, endpoint: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.endpoint = endpoint
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(path, f"cannot use as a response cache: {exc}") from None
        self.hits = 0
        self.misses = 0

    def _get(self, key: str) -> tuple[str, str, str | None, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT content, model, finish_reason, usage FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def _put(self, key: str, reply: ChatReply) -> None:
        usage = json.dumps(reply.usage.as_dict())
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO replies (key, content, model, finish_reason, usage) VALUES (?, ?, ?, ?, ?)",
                (key, reply.content, reply.model, reply.finish_reason, usage),
            )

    async def complete(self, request: ChatRequest) -> ChatReply:
        key = request_key(request, self.endpoint)
        row = self._get(key)
        if row is not None:
            self.hits += 1
            content, model, finish_reason, usage = row
            return ChatReply(
                content=content,
                model=model,
                finish_reason=finish_reason,
                usage=Usage(),
                cache_hit=True,
                extra={"cached_usage": json.loads(usage)},
            )
        self.misses += 1
        reply = await self.inner.complete(request)
        if reply.finish_reason != "error":
            self._put(key, reply)
        return reply

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
        await self.inner.aclose()
