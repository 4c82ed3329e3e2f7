"""The Ray executor's driver side: connect to a cluster, start the workers, run each persona's
series on one of them, and write what comes back.

A peer of the local executor: :class:`RayRunner` is the :class:`simulator.runner.Runner`
(the same global ``--concurrency``, the same handling of Ctrl-C and failures, the same writes
through the store and the index) with each series run by a worker instead of in-process. The
driver stays the run folder's only writer. A worker that dies loses at most the sessions it
had in flight; its series start again on a live (or restarted) worker from the first session
the driver has not written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from simulator.errors import InputError, SimulatorError
from simulator.message_layout import STRICTNESS
from simulator.personas import Patient
from simulator.plan import RunPlan
from simulator.protocol import ChatBackend
from simulator.raybudget import start_budget
from simulator.rayworker import Failure, LayoutChange, SeriesWorker, Started
from simulator.records import SessionRecord
from simulator.runner import Runner
from simulator.state import RunState

log = logging.getLogger(__name__)

RAY_MISSING = "Ray is not installed: pip install 'simulator[ray]'"
MAX_RETRIES = 3
"""Times one series is started again after its worker died, before the run fails."""
MAX_RESTARTS = 8
"""Times Ray restarts a dead worker process."""
STOP_WAIT_S = 30.0
"""How long a stopped run waits for the workers to send back their interrupted sessions."""
CONNECT_TIMEOUT_S = 5.0
"""How long a ``--ray-address`` gets to accept a connection."""
CLOSE_WAIT_S = 10.0
"""How long the workers get to close their backends before they are killed."""


class WorkerError(RuntimeError):
    """An unexpected error in a worker; the message carries the worker's traceback."""


def require_ray() -> None:
    """Raise the one-line install hint when Ray is missing (before any run folder exists)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError("--executor ray", RAY_MISSING) from None


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""A client's HTTP/2 connection preface and an empty SETTINGS frame."""


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable ``HOST:PORT`` for minutes, and one where another service
    listens (the dashboard's port, say) for longer still: a TCP connect and a greeting say at once."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # ``auto`` and the like: Ray itself answers quickly
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            grpc = _speaks_grpc(conn)
    except OSError as exc:
        raise InputError("--ray-address", f"cannot reach a Ray cluster at {address}: {exc}") from None
    if not grpc:
        raise InputError(
            "--ray-address",
            f"{address} answers, but not as a Ray cluster: give the port `ray start --head` "
            "printed (6379 by default; the dashboard's, 8265, is for `ray job submit`)",
        )


def _speaks_grpc(conn: socket.socket) -> bool:
    """Whether the server answers the HTTP/2 greeting with a SETTINGS frame, as every gRPC
    server (Ray's GCS, its client server) does. Not asked when Ray talks TLS (RAY_USE_TLS)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("0", "false"):
        return True
    conn.sendall(HTTP2_PREFACE)
    frame = conn.recv(9)
    return len(frame) >= 4 and frame[3] == 4


def connect(address: str | None) -> None:
    """Join the cluster (``None``: $RAY_ADDRESS, else start a local Ray). Ray installs its
    own SIGTERM handler on init; the caller's is put back, so stopping works as in local runs."""
    require_ray()
    import ray

    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        return
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    local = address is None and not os.environ.get("RAY_ADDRESS")
    options: dict[str, Any] = {"include_dashboard": False} if local else {}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError("--ray-address", f"cannot start or reach Ray ({where}): {first}") from None
    finally:
        if main and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


@dataclass
class Worker:
    handle: Any
    where: str
    busy: int = 0
    down: bool = False
    """Died and not heard from since (Ray may be restarting it): picked only when all are."""


class WorkerPool:
    """The run's workers (async actors, one CPU each) and its shared rate-limit budget."""

    def __init__(self, workers: list[Worker], budget: Any) -> None:
        self.workers = workers
        self.budget = budget

    @classmethod
    async def start(
        cls, plan: RunPlan, backend_name: str, given: ChatBackend | None, count: int
    ) -> WorkerPool:
        import ray

        limits = plan.config.rate_limits
        budget, budget_name = (
            start_budget(limits.requests_per_minute, limits.tokens_per_minute)
            if limits.requests_per_minute or limits.tokens_per_minute
            else (None, None)
        )
        remote: Any = ray.remote(SeriesWorker)
        actor = remote.options(
            num_cpus=1,
            max_restarts=MAX_RESTARTS,
            max_task_retries=0,
            max_concurrency=plan.config.concurrency + 4,
        )
        log.info("ray: starting %d worker(s)", count)
        handles = [actor.remote(plan, backend_name, given, budget_name) for _ in range(count)]
        infos = await asyncio.gather(*(h.info.remote() for h in handles))
        workers = [Worker(h, f"{i['host']} pid {i['pid']}") for h, i in zip(handles, infos, strict=True)]
        log.info("ray: %d worker(s): %s", len(workers), ", ".join(w.where for w in workers))
        return cls(workers, budget)

    def pick(self) -> Worker:
        """The least busy live worker: series spread over the workers as they free up."""
        worker = min(self.workers, key=lambda w: (w.down, w.busy))
        worker.busy += 1
        return worker

    async def close(self) -> None:
        import ray

        closing = asyncio.gather(*(w.handle.close.remote() for w in self.workers), return_exceptions=True)
        try:
            await asyncio.wait_for(closing, CLOSE_WAIT_S)
        except TimeoutError:
            log.warning("ray: workers did not close their connections in %.0f s; stopping them", CLOSE_WAIT_S)
        for handle in [w.handle for w in self.workers] + ([self.budget] if self.budget else []):
            ray.kill(handle)


def worker_count(plan: RunPlan, pending: int) -> int:
    """``--workers``, else one per CPU of the cluster; never more than series can use."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    wanted = plan.config.workers or max(1, cpus)
    if wanted > cpus:
        log.warning("ray: %d workers asked for, the cluster has %d CPUs: some wait for one", wanted, cpus)
    return max(1, min(wanted, pending, plan.config.concurrency))


class RayRunner(Runner):
    """:class:`Runner` with each series run on a Ray worker. ``given``: a backend the caller
    handed in, copied to every worker (else each worker builds the run's registry backend)."""

    def __init__(self, plan: RunPlan, backend: ChatBackend, state: RunState, *, given: bool) -> None:
        super().__init__(plan, backend, state)
        self.given = backend if given else None
        self.pool: WorkerPool | None = None

    def _first_pending(self, patient: Patient) -> int | None:
        config = self.plan.config
        numbers = range(config.start, config.start + config.sessions)
        return next((n for n in numbers if not self.store.is_complete(patient.key, n)), None)

    async def run(self) -> int:
        patients = [p.persona for p in self.plan.patients if isinstance(p.persona, Patient)]
        pending = sum(1 for p in patients if self._first_pending(p) is not None)
        if pending == 0:
            return await super().run()
        if self.plan.config.cache is not None:
            log.warning("--cache is off with --executor ray: the cache file is on the driver's disk")
        count = worker_count(self.plan, pending)
        self.state.index.settings["workers"] = count
        try:
            self.pool = await WorkerPool.start(self.plan, self.state.index.backend, self.given, count)
        except asyncio.CancelledError:  # stopped while the workers start: nothing ran yet
            self.finish("interrupted")
            raise
        try:
            return await super().run()
        finally:
            await self.pool.close()

    async def series(self, patient: Patient) -> bool:
        """The persona's pending sessions on a worker; started again after a worker death."""
        import ray

        assert self.pool is not None
        deaths = 0
        while (first := self._first_pending(patient)) is not None:
            worker = self.pool.pick()
            try:
                return await self._remote(worker, patient.key, first)
            except ray.exceptions.RayActorError as exc:
                worker.down = True
                deaths += 1
                reason = type(exc).__name__
                if deaths > MAX_RETRIES:
                    raise SimulatorError(
                        f"{patient.key}: its Ray worker died {deaths} times (last: {reason}); "
                        "`simulator resume RUN_DIR` finishes the run"
                    ) from None
                log.warning(
                    "%s: Ray worker %s died (%s); the series continues from session %d",
                    patient.key,
                    worker.where,
                    reason,
                    self._first_pending(patient),
                )
            finally:
                worker.busy -= 1
        return True

    async def _remote(self, worker: Worker, persona_id: str, first: int) -> bool:
        """Run the series from ``first`` on ``worker``, writing each session as it arrives.

        The items are read by a task of their own, which a stop does not cancel (a cancelled
        read could drop the item it was taking): stopped, the worker is told to stop its
        sessions and the reader goes on until their interrupted records are written."""
        previous = self._opening_summary(persona_id, first)
        items = worker.handle.series.remote(persona_id, first, previous, dict(self.layouts.current))

        async def read() -> bool:
            complete = True
            async for ref in items:
                item = await ref
                worker.down = False
                complete = self._take(persona_id, item, worker) and complete
            return complete

        reader = asyncio.ensure_future(read())
        try:
            return await asyncio.shield(reader)
        except asyncio.CancelledError:
            if reader.done() and not reader.cancelled():
                reader.exception()  # the stop wins over whatever ended the reader meanwhile
            elif not reader.done():
                worker.handle.stop.remote()
                try:
                    await asyncio.wait_for(reader, STOP_WAIT_S)
                except Exception as exc:  # a dead or slow worker: its sessions stay for resume
                    log.warning(
                        "%s: interrupted sessions not received from %s: %r", persona_id, worker.where, exc
                    )
            raise

    def _take(
        self, persona_id: str, item: Started | LayoutChange | SessionRecord | Failure, worker: Worker
    ) -> bool:
        """Act on one item from a worker; False for a session that did not complete."""
        if isinstance(item, Started):
            self.state.start(persona_id, item.number)
            return True
        if isinstance(item, LayoutChange):
            self._tighten(item)
            return True
        if isinstance(item, SessionRecord):
            self._keep(item)
            return item.status == "complete"
        where = f"on Ray worker {worker.where}"
        if item.kind == "input":
            raise InputError(None, f"{item.message} ({where})")
        if item.kind == "simulator":
            raise SimulatorError(f"{item.message} ({where})")
        raise WorkerError(f"{item.message} ({where}); its traceback:\n{item.remote_traceback}")

    def _tighten(self, change: LayoutChange) -> None:
        """Take up a layout a server forced on a worker, step by step from the run's current
        one, so run.json records each change once however many workers met the refusal."""
        while STRICTNESS.index(current := self.layouts.get(change.role)) < STRICTNESS.index(change.new):
            self.layouts.tighten(change.role, current, change.server_said)
