"""Judging off the event loop: a pool of worker processes, sized by ``judge_workers``.

A judgment is pure CPU (numpy and Python). Run on the event loop it stalls every other
request; run in a thread it still holds the GIL most of the time, so one process judges on
one core however many the machine has. :class:`JudgePool` sends each judgment of
``POST /v1/judge`` and of an analysis to one of ``judge_workers`` processes (default: the cores
this process may run on) and awaits its answer, so the event loop keeps answering
(``/healthz``, polls, other requests) while every core judges. For ``POST /v1/judge`` the
worker also serialises the report: the answer comes back as the JSON bytes to send.

Why not ``concurrent.futures.ProcessPoolExecutor``: it moves every task through two helper
threads of the service's process (a queue feeder and a result manager), which take the GIL
from the event loop at each hand-over; measured on ``POST /v1/judge`` (5 metrics x 30 points),
the event loop's ``submit`` alone waited 1.4 ms a request for it on a busy 2-core machine.
Here each worker has its own socket (a socket pair) that the event loop reads and writes as
streams (no thread at all), and a worker that dies is known by its own socket closing, so only
the judgment it held fails.

The workers are started by a *forkserver* that has imported the judge once (a worker starts
in milliseconds with everything imported): forking the service's own process would copy its
threads' locks (the thread pool, SQLAlchemy's pool, logging) in whatever state they were, and
a child can deadlock on one of them.

A worker found dead before it is given a judgment (killed while idle) is replaced and the
judgment goes to the new one; a worker that dies while it holds a judgment (killed, out of
memory, a crash in native code) answers that request with :class:`JudgeWorkerError` (503,
saying so) instead of a hang, and is replaced. ``judge_workers=0`` judges in the service's own
process (in a thread), as a single-process deployment or a debugger wants.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from judge.config import CanaryConfig, ScoreThresholds
from judge.errors import ConfigError, DataError, JudgeError, NotFoundError
from judge.report import json_bytes

if TYPE_CHECKING:
    from judge.report import Report

logger = logging.getLogger(__name__)

_PRELOAD = ["judge.api.workers", "judge.judging", "judge.judges"]
"""Imported once by the forkserver, before it forks any worker (see the module doc)."""


class JudgeWorkerError(JudgeError):
    """A judging worker process died while it held this judgment (503: send it again)."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset), at
    least 1: the default number of judging workers."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Judged:
    """One judgment's answer: the report as JSON bytes, its verdict, and the seconds the
    judgment itself took (without queueing and transport)."""

    body: bytes
    verdict: str
    seconds: float


@functools.lru_cache(maxsize=64)
def config_of(native_json: str) -> CanaryConfig:
    """The config a native document (JSON text) describes, read once per worker: sending the
    text and reading it here costs less than pickling the config object (a pydantic model),
    and a service judges with a handful of configs."""
    return CanaryConfig.from_dict(json.loads(native_json))


def judge_to_json(
    native_json: str,
    baseline: Mapping[str, Sequence[float]],
    canary: Mapping[str, Sequence[float]],
    thresholds: tuple[float, float] | None,
) -> Judged:
    """Judge and serialise: what a worker runs (``judge_workers=0``: a thread of the service).
    ``native_json``: the config (``CanaryConfig.to_dict()`` as JSON); ``thresholds``: pass and
    marginal scores overriding the config's."""
    from judge.judging import judge

    started = time.perf_counter()
    limits = None if thresholds is None else ScoreThresholds.of(*thresholds)
    report = judge(config_of(native_json), baseline, canary, thresholds=limits)
    # orjson where it can: the standard library's encoder took a tenth of a small
    # judgment's time, and to_dict leaves no NaN or numpy value it would write apart.
    body = json_bytes(report.to_dict())
    return Judged(body, report.verdict.value, time.perf_counter() - started)


def judge_inputs(
    config: CanaryConfig, inputs: Mapping[str, Any], thresholds: ScoreThresholds | None
) -> Report:
    """Judge fetched series (``judge.judging.judge_series``): an analysis' judgment, in a
    worker (see :meth:`JudgePool.judge_series`)."""
    from judge.judging import judge_series

    return judge_series(config, inputs, thresholds=thresholds)


def portable(exc: BaseException) -> BaseException:
    """``exc``, or an exception that says the same and survives pickling: one whose
    constructor takes other arguments than its ``args`` cannot be rebuilt in the service's
    process. A :class:`JudgeError` keeps its kind (its nearest base among ``ConfigError``,
    ``DataError``, ``NotFoundError``) and so its HTTP status."""
    if _crosses(exc):
        return exc
    if isinstance(exc, JudgeError):
        for base in (ConfigError, DataError, NotFoundError):
            if isinstance(exc, base):
                same = base(str(exc))
                # Its fields (a ConfigError's ``field``) where they cross too.
                same.__dict__.update(
                    {k: v for k, v in getattr(exc, "__dict__", {}).items() if _crosses(v)})
                return same
        return JudgeError(str(exc))
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _crosses(value: object) -> bool:
    """Whether ``value`` survives a pickle round trip (the way to the service's process)."""
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        return False
    return True


_HEADER = struct.Struct("!Q")
"""Each message on a worker's socket: its length (8 bytes, big-endian), then a pickle."""


def serve(channel: socket.socket) -> None:
    """A worker's life: read a task (a module-level function and its arguments), run it,
    answer (its result or its exception), until the service closes its end of the socket."""
    # Ctrl-C in a terminal reaches the whole process group: the service stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    incoming = channel.makefile("rb")
    while True:
        header = incoming.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        task = incoming.read(size)
        if len(task) < size:
            return
        try:
            function, arguments = pickle.loads(task)
            answer: tuple[bool, Any] = (True, function(*arguments))
        except Exception as exc:
            answer = (False, portable(exc))
        payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        channel.sendall(_HEADER.pack(len(payload)) + payload)


@dataclass
class _Worker:
    process: BaseProcess
    channel: socket.socket
    """The service's end of a socket pair; the worker holds the other."""
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    """The channel on the event loop (made at first use)."""

    def dead(self) -> bool:
        """Known dead: exited, or its end of the socket closed (a process's sockets close as
        it dies, before anyone can see it gone)."""
        if not self.process.is_alive():
            return True
        readable, _, _ = select.select([self.channel], [], [], 0)
        return bool(readable)  # an idle worker sends nothing: readable is end of file


class _WorkerDiedError(Exception):
    """The worker's socket closed while it held a judgment: it died."""


class JudgePool:
    """``workers`` judging processes (0: judge in the service's own process); see module doc.

    ``start()`` before the first judgment and ``close()`` at the end (both blocking: call them
    off the event loop); :meth:`judge` on the one event loop that serves.
    """

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError(f"judge_workers must be >= 0, got {workers}")
        self.workers = workers
        # In-process (0) needs no start method: the forkserver is a POSIX one.
        self._context = multiprocessing.get_context("forkserver") if workers else None
        if self._context is not None:
            self._context.set_forkserver_preload(_PRELOAD)
        self._all: list[_Worker] = []
        self._idle: asyncio.Queue[_Worker] | None = None

    def start(self) -> list[int]:
        """Start the workers now (not at the first request), each with the judge imported.
        Returns their process ids (empty in-process)."""
        self._all = [self._spawn() for _ in range(self.workers)]
        return self.pids()

    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [worker.process.pid for worker in self._all if worker.process.pid is not None]

    def _spawn(self) -> _Worker:
        assert self._context is not None, "an in-process pool has no workers to start"
        ours, theirs = socket.socketpair()
        process = self._context.Process(
            target=serve, args=(theirs,), name="canary-judge-worker", daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _queue(self) -> asyncio.Queue[_Worker]:
        # Made on first use, on the event loop that judges.
        if self._idle is None:
            self._idle = asyncio.Queue()
            for worker in self._all:
                self._idle.put_nowait(worker)
        return self._idle

    async def _replace(self, worker: _Worker) -> _Worker:
        self._retire(worker)
        fresh = await to_thread.run_sync(self._spawn)
        self._all.append(fresh)
        return fresh

    def _retire(self, worker: _Worker) -> None:
        if worker in self._all:
            self._all.remove(worker)
        if worker.streams is not None:
            worker.streams[1].close()
        worker.channel.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=1)

    async def judge(
        self,
        native_json: str,
        baseline: Mapping[str, Sequence[float]],
        canary: Mapping[str, Sequence[float]],
        thresholds: tuple[float, float] | None = None,
    ) -> Judged:
        """Judge in a worker and await the answer (in-process: in a thread); the arguments
        are :func:`judge_to_json`'s."""
        judged: Judged = await self.run(judge_to_json, native_json, baseline, canary, thresholds)
        return judged

    async def judge_series(
        self, config: CanaryConfig, inputs: Mapping[str, Any],
        thresholds: ScoreThresholds | None,
    ) -> Report:
        """An analysis' judgment of its fetched series, in a worker (:func:`judge_inputs`);
        the shape ``judge.analysis.analyze_async`` takes as ``judge_with``."""
        report: Report = await self.run(judge_inputs, config, inputs, thresholds)
        return report

    async def run(self, function: Callable[..., Any], *arguments: Any) -> Any:
        """``function(*arguments)`` in a worker, awaited (in-process: in a thread).
        ``function`` must be a module-level function, and its arguments and result
        picklable."""
        if not self.workers:
            return await to_thread.run_sync(function, *arguments)
        task = pickle.dumps((function, arguments), protocol=pickle.HIGHEST_PROTOCOL)
        idle = self._queue()
        worker = await idle.get()
        try:
            if worker.dead():
                logger.warning("a judging worker had died while idle; it has been replaced",
                               extra={"exit_code": worker.process.exitcode})
                worker = await self._replace(worker)
            ok, answer = await self._exchange(worker, task)
        except _WorkerDiedError:
            await asyncio.sleep(0)  # let its exit status arrive, for the log
            code = worker.process.exitcode
            worker = await self._replace(worker)
            idle.put_nowait(worker)
            logger.error("a judging worker died while judging; it has been replaced",
                         extra={"exit_code": code})
            raise JudgeWorkerError(
                "the judging worker process died while judging this request (killed, or out "
                "of memory); it has been replaced: send the request again"
            ) from None
        except asyncio.CancelledError:
            # Abandoned mid-exchange (shutdown): what the worker still sends must not be read
            # as the next request's answer, so it is replaced.
            asyncio.get_running_loop().create_task(self._renew(worker))
            raise
        except BaseException:
            idle.put_nowait(worker)
            raise
        idle.put_nowait(worker)
        if not ok:
            raise answer
        return answer

    async def _exchange(self, worker: _Worker, task: bytes) -> tuple[bool, Any]:
        """Send the task, await the answer (``_WorkerDiedError`` when the socket closes)."""
        if worker.streams is None:
            worker.streams = await asyncio.open_connection(sock=worker.channel)
        reader, writer = worker.streams
        try:
            writer.write(_HEADER.pack(len(task)) + task)
            await writer.drain()
            (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
            raw = await reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _WorkerDiedError from exc
        answer: tuple[bool, Any] = pickle.loads(raw)
        return answer

    async def _renew(self, worker: _Worker) -> None:
        self._queue().put_nowait(await self._replace(worker))

    async def aclose(self) -> None:
        """Stop the workers, from the event loop that judged (its sockets are closed there)."""
        for worker in self._all:
            if worker.streams is not None:
                worker.streams[1].close()
                worker.streams = None
        await to_thread.run_sync(self.close)

    def close(self) -> None:
        """Stop the workers: each ends when its socket closes (killed if still judging).
        Blocking; on a pool that judged on an event loop, :meth:`aclose` instead."""
        workers, self._all = self._all, []
        for worker in workers:
            worker.channel.close()
        for worker in workers:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
        self._idle = None
