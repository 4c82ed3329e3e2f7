"""A real OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

The OpenAI SDK talks through ``httpx2``, which request-mocking libraries do not see, so the
backend is tested over real HTTP against this server. Each ``POST /v1/chat/completions`` is
recorded, then answered by the next queued :class:`Reply` if any, else by the handler
(default: a deterministic, plausible completion)::

    with serve() as server:
        server.enqueue(rate_limited(retry_after=2), server_error())
        ...  # point a client at server.base_url
        assert len(server.requests) == 3

Standalone, for benchmarks: ``python -m tests.loopback --port 8000 --latency-ms 50``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

__all__ = [
    "LoopbackServer",
    "RecordedRequest",
    "Reply",
    "bad_request",
    "completion",
    "context_length_exceeded",
    "cut_off",
    "default_handler",
    "drip",
    "error_reply",
    "hang",
    "insufficient_quota",
    "key_echo",
    "llama_cpp_context_exceeded",
    "llama_cpp_not_found",
    "no_choices",
    "not_found",
    "rate_limited",
    "serve",
    "server_error",
    "unauthorized",
    "vllm_error",
]

CHAT_PATH = "/v1/chat/completions"
IDLE_CONNECTION_TIMEOUT_S = 10.0
"""A keep-alive connection with no new request for this long is closed by the server."""
MAX_DELAY_S = 30.0
"""No reply is ever held longer than this, whatever a test asks for."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body (``None`` if it was not JSON)."""
    index: int
    """0 for the first request this server received, then 1, 2, ..."""
    raw: bytes = b""
    """The body exactly as it arrived."""
    received_s: float = 0.0
    """``time.perf_counter()`` when the server had read the request."""

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


class Reply(NamedTuple):
    """What to answer: a dict or list body is sent as JSON, str or bytes as they are."""

    status: int = 200
    headers: Mapping[str, str] = {}
    body: Any = None
    delay_s: float = 0.0
    """Wait this long before answering; if the server stops meanwhile, drop the connection."""
    drip_s: float = 0.0
    """Send the body one byte at a time, this long apart (the headers promise all of it)."""


Handler = Callable[[RecordedRequest], Reply | tuple[int, Mapping[str, str], Any]]


# ---------------------------------------------------------------------------- replies


def completion(
    content: str | None = "Hello from the loopback server.",
    *,
    model: str = "loopback-model",
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = None,
    completion_id: str = "chatcmpl-loopback",
    headers: Mapping[str, str] | None = None,
    with_usage: bool = True,
) -> Reply:
    """A successful chat completion; ``with_usage=False`` leaves the ``usage`` key out."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }
    if with_usage:
        body["usage"] = usage or {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 8},
        }
    return Reply(200, dict(headers or {}), body)


def error_reply(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    code: str | int | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return Reply(status, dict(headers or {}), {"error": error})


def rate_limited(retry_after: float | str | None = 1, *, retry_after_ms: float | None = None) -> Reply:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return error_reply(
        429,
        "Rate limit reached for requests. Please try again later.",
        type_="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def insufficient_quota() -> Reply:
    return error_reply(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type_="insufficient_quota",
        code="insufficient_quota",
    )


def server_error(status: int = 500, message: str = "The server had an error") -> Reply:
    return error_reply(status, message, type_="server_error")


def unauthorized(message: str = "Incorrect API key provided.") -> Reply:
    return error_reply(401, message, type_="invalid_request_error", code="invalid_api_key")


def not_found(model: str = "loopback-model") -> Reply:
    return error_reply(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        type_="invalid_request_error",
        code="model_not_found",
    )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> Reply:
    return error_reply(400, message, type_="invalid_request_error", param=param, code=code)


def context_length_exceeded(limit: int = 8192, asked: int = 9001) -> Reply:
    return bad_request(
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {asked} tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )


def llama_cpp_context_exceeded(n_prompt_tokens: int = 4476, n_ctx: int = 4096) -> Reply:
    """llama-server's answer to a prompt larger than a slot's context (``-c`` / ``-np``)."""
    error = {
        "code": 400,
        "message": f"request ({n_prompt_tokens} tokens) exceeds the available context size "
        f"({n_ctx} tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": n_prompt_tokens,
        "n_ctx": n_ctx,
    }
    return Reply(400, {}, {"error": error})


def llama_cpp_not_found() -> Reply:
    """llama-server's answer to any path it has no route for."""
    return Reply(404, {}, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})


def vllm_error(message: str, status: int = 400) -> Reply:
    """vLLM's error shape: the fields at the top level, no ``error`` wrapper."""
    body = {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": status}
    return Reply(status, {}, body)


def no_choices(error_message: str | None = "Upstream provider returned an error") -> Reply:
    """What OpenRouter sends when the upstream model fails: a 200 with no ``choices``."""
    body: dict[str, Any] = {"id": "gen-loopback", "object": "chat.completion", "choices": []}
    if error_message is not None:
        body["error"] = {"message": error_message, "code": 502}
    return Reply(200, {}, body)


def hang(seconds: float = 2.0, then: Reply | None = None) -> Reply:
    """Answer ``then`` (a completion by default) only after ``seconds``: a client with a
    shorter timeout gives up first."""
    late = then or completion("This reply is too late.")
    return late._replace(delay_s=seconds)


def cut_off(reply: Reply | None = None, *, keep: float = 0.5) -> Reply:
    """``reply`` (a completion by default) with its JSON body cut after ``keep`` of its bytes,
    sent whole as far as HTTP goes (as a proxy that truncated it would): a 200 that does not parse."""
    whole = reply or completion("This reply will not arrive whole.")
    payload = json.dumps(whole.body).encode()
    headers = {**whole.headers, "Content-Type": "application/json"}
    return whole._replace(headers=headers, body=payload[: max(1, int(len(payload) * keep))])


def drip(reply: Reply | None = None, *, every_s: float = 0.05) -> Reply:
    """``reply`` (a completion by default) with its body sent one byte every ``every_s``: each
    read gets a byte in time, so only a deadline on the whole request ends it early."""
    return (reply or completion("This reply arrives one byte at a time."))._replace(drip_s=every_s)


def key_echo(request: RecordedRequest) -> Reply:
    """A careless model that repeats the API key it was sent (from ``Authorization``) in its
    reply, and ends summaries with it too: what is stored must not contain it."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    reply = default_handler(request)
    if reply.status != 200:
        return reply
    return completion(
        f"Between us, the key is {key}. {reply.body['choices'][0]['message']['content']}",
        model=reply.body["model"],
    )


def default_handler(request: RecordedRequest) -> Reply:
    """A deterministic reply that quotes the last message, with plausible usage numbers."""
    body = request.json
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    if not body or not messages:
        return bad_request("'messages' is a required property", param="messages")
    words = [len(str(m.get("content", "")).split()) + 4 for m in messages]
    last = " ".join(str(messages[-1].get("content", "")).split()[:12])
    content = f'I hear you saying "{last}". Could you tell me more about that?'
    prompt_tokens = sum(words)
    completion_tokens = len(content.split())
    return completion(
        content,
        model=str(body.get("model") or "loopback-model"),
        completion_id=f"chatcmpl-loopback-{request.index}",
        headers={"x-request-id": f"req-loopback-{request.index}"},
        usage={
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": prompt_tokens - words[-1]},
        },
    )


# ---------------------------------------------------------------------------- server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # benchmarks open hundreds of connections at once
    owner: LoopbackServer


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.owner.idle_timeout_s)
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines."""

    def do_GET(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner._record(self.command, self.path, headers, None)
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                Reply(200, {}, {"object": "list", "data": [{"id": "loopback-model", "object": "model"}]})
            )
        else:
            self._send(self.server.owner.unknown_route or error_reply(404, f"no route for GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner = self.server.owner
        request = owner._record(self.command, self.path, headers, body, raw)
        if self.path.rstrip("/") != CHAT_PATH:
            self._send(owner.unknown_route or error_reply(404, f"no route for POST {self.path}"))
            return
        self._send(owner._answer(request))

    def _send(self, reply: Reply) -> None:
        delay = min(max(reply.delay_s, 0.0), MAX_DELAY_S)
        if delay and self.server.owner._stopping.wait(delay):
            self.close_connection = True  # shutting down: drop the request unanswered
            return
        if isinstance(reply.body, bytes):
            payload, content_type = reply.body, "application/octet-stream"
        elif isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, content_type = json.dumps(reply.body).encode(), "application/json"
        try:
            self.send_response(reply.status)
            names = {name.lower() for name in reply.headers}
            if "content-type" not in names:
                self.send_header("Content-Type", content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if reply.drip_s > 0:
                self._drip(payload, reply.drip_s)
            else:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the socket
            self.close_connection = True

    def _drip(self, payload: bytes, every_s: float) -> None:
        self.wfile.flush()
        for index in range(len(payload)):
            if self.server.owner._stopping.wait(every_s):
                self.close_connection = True
                return
            self.wfile.write(payload[index : index + 1])
            self.wfile.flush()


class LoopbackServer:
    """The server, its reply queue and its request log. Start with :func:`serve`."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        latency_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        idle_timeout_s: float = IDLE_CONNECTION_TIMEOUT_S,
    ) -> None:
        self.handler: Handler = handler or default_handler
        self.idle_timeout_s = idle_timeout_s
        self.unknown_route: Reply | None = None
        """The answer to a path with no route (default: a 404 naming it)."""
        self.latency_s = latency_s
        self.record = record
        self._lock = threading.Lock()
        self._queue: deque[Reply | tuple[int, Mapping[str, str], Any]] = deque()
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _RequestHandler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to give an OpenAI client: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def enqueue(self, *replies: Reply | tuple[int, Mapping[str, str], Any]) -> None:
        """Answer the next chat requests with these, in order, before the handler."""
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake delayed replies, close open connections, join the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: Any, raw: bytes = b""
    ) -> RecordedRequest:
        with self._lock:
            request = RecordedRequest(method, path, headers, body, self._count, raw, time.perf_counter())
            self._count += 1
            if self.record:
                self._requests.append(request)
            return request

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
        answer = queued if queued is not None else self.handler(request)
        reply = answer if isinstance(answer, Reply) else Reply(*answer)
        return reply._replace(delay_s=reply.delay_s + self.latency_s) if self.latency_s else reply


@contextmanager
def serve(
    handler: Handler | None = None, *, latency_s: float = 0.0, port: int = 0
) -> Iterator[LoopbackServer]:
    """Run a loopback server for the duration of a ``with`` block (or a pytest fixture)."""
    server = LoopbackServer(handler, latency_s=latency_s, port=port)
    with server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.loopback", description="Loopback OpenAI-compatible chat server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every reply")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    server = LoopbackServer(latency_s=args.latency_ms / 1000, host=args.host, port=args.port, record=False)
    with server:
        print(
            f"loopback server on http://{args.host}:{server.port}/v1 "
            f"(latency {args.latency_ms:g} ms); Ctrl-C stops it",
            flush=True,
        )
        deadline = time.monotonic() + args.duration if args.duration is not None else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
