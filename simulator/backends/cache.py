"""Opt-in response cache (``--cache FILE``): SQLite, keyed by everything that shapes a reply.

It wraps any backend through the same protocol. A hit returns the stored text and costs no
tokens (its usage is zero; the hit is counted). WAL mode and a busy timeout make one file safe
for many concurrent sessions and for several processes at once; identical requests in flight
at the same moment are sent once, and the others wait for that reply (and count as hits).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.protocol import ChatBackend, ChatReply, ChatRequest, Usage
from simulator.store import redact

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


def request_key(request: ChatRequest, endpoint: str, *, context_matters: bool = False) -> str:
    """Digest of the endpoint, model, messages, parameters (seed included) and role; with
    ``context_matters`` (the offline backend, whose replies come from the personas rather than
    the messages) also the persona and the session. Replicas in ``base_urls`` serve one model,
    so they are left out: a reply from one is good for all."""
    context = request.context if context_matters else None
    shape: dict[str, Any] = {
        "endpoint": endpoint,
        "role": request.role,
        "purpose": request.purpose,
        "messages": [m.as_dict() for m in request.messages],
        "settings": request.settings.model_dump(mode="json", exclude={"base_urls"}),
        "context": [context.persona_id, context.session_number] if context is not None else None,
    }
    blob = json.dumps(shape, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


_COLUMNS = ["key", "content", "model", "finish_reason", "usage", "created_at"]


class _NotThisCache(Exception):
    """The file is a database, but not one this cache can trust."""


class CachedBackend:
    """A caching layer in front of another backend."""

    def __init__(
        self,
        inner: ChatBackend,
        path: Path,
        endpoint: str,
        *,
        context_matters: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.inner = inner
        self.context_matters = context_matters
        self.secrets = tuple(secrets)
        self.name = inner.name
        self.endpoint = endpoint
        self.path = path
        self._lock = threading.Lock()
        if path.exists() and not path.is_file():
            raise InputError(path, "cannot use as a response cache: not a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(path, f"cannot use as a response cache: {exc}") from None
        try:
            self._open()
        except (OSError, sqlite3.Error, _NotThisCache) as exc:
            self._db.close()
            raise InputError(path, f"cannot use as a response cache: {exc}") from None
        self.hits = 0
        self.misses = 0
        self._in_flight: dict[str, asyncio.Future[ChatReply | None]] = {}

    def _open(self) -> None:
        """Check the file before the run writes anything: SQLite, undamaged, this cache's
        table if it has one, and every stored row readable."""
        db = self._db
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise _NotThisCache("the database is damaged (PRAGMA quick_check failed)")
        columns = [row[1] for row in db.execute("PRAGMA table_info(replies)")]
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if columns and columns != _COLUMNS:
            raise _NotThisCache(f"its 'replies' table has other columns ({', '.join(columns)})")
        if not columns and tables:
            raise _NotThisCache("it is an SQLite database of something else (no 'replies' table)")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        bad = db.execute(
            "SELECT key FROM replies WHERE NOT json_valid(usage) OR typeof(content) != 'text' LIMIT 1"
        ).fetchone()
        if bad is not None:
            raise _NotThisCache(f"the stored reply {bad[0][:12]}... is damaged (its usage is not JSON)")

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
                (key, redact(reply.content, self.secrets), reply.model, reply.finish_reason, usage),
            )

    async def complete(self, request: ChatRequest) -> ChatReply:
        key = request_key(request, self.endpoint, context_matters=self.context_matters)
        row = self._get(key)
        if row is not None:
            self.hits += 1
            content, model, finish_reason, usage = row
            return _hit(content, model, finish_reason, json.loads(usage))
        waiting = self._in_flight.get(key)
        if waiting is not None:
            shared = await asyncio.shield(waiting)
            if shared is None:  # the first asker failed or was stopped: ask again ourselves
                return await self.complete(request)
            self.hits += 1
            return _hit(shared.content, shared.model, shared.finish_reason, shared.usage.as_dict())
        self.misses += 1
        future: asyncio.Future[ChatReply | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        reply: ChatReply | None = None
        try:
            reply = await self.inner.complete(request)
            if reply.finish_reason != "error":
                self._put(key, reply)
            return reply
        finally:
            del self._in_flight[key]
            future.set_result(reply)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
        await self.inner.aclose()


def _hit(content: str, model: str, finish_reason: str | None, usage: dict[str, Any]) -> ChatReply:
    """A reply from the cache: no tokens spent now; what the original cost is kept in ``extra``."""
    return ChatReply(
        content=content,
        model=model,
        finish_reason=finish_reason,
        usage=Usage(),
        cache_hit=True,
        extra={"cached_usage": usage},
    )
