"""Judging off the event loop: a pool of worker processes, sized by ``judge_workers``.

A judgment is pure CPU (numpy and Python). Run on the event loop it stalls every other
request; run in a thread it still holds the GIL most of the time, so one process judges on
one core however many the machine has. :class:`JudgePool` sends each judgment of
``POST /v1/judge`` to one of ``judge_workers`` processes (default: the cores this process may
run on) and awaits it, so the event loop keeps answering (``/healthz``, polls, other requests)
while every core judges. The worker also serialises the report to JSON: the answer comes back
as the bytes to send, and the event loop does no per-metric work at all.

The workers are started by a *forkserver* that has imported the judge once (``import judge``'s
heavy parts are then shared by every worker, and a worker restarts in milliseconds): forking the
service's own process would copy its threads' locks (the thread pool, SQLAlchemy's pool,
logging) in whatever state they were, and a child can deadlock on one of them.

A worker that dies (killed, out of memory, a crash in native code) breaks the whole executor
(``concurrent.futures`` cannot tell which task killed it); the judgments in flight then fail
with :class:`JudgeWorkerError` (503, saying so) instead of hanging, and the next judgment gets
a fresh pool. ``judge_workers=0`` judges in the service's own process (in a thread), as a
single-process deployment or a debugger wants.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from anyio import to_thread

from judge.config import CanaryConfig, ScoreThresholds
from judge.errors import ConfigError, DataError, JudgeError, NotFoundError

logger = logging.getLogger(__name__)

_PRELOAD = ["judge.api.workers", "judge.judging", "judge.judges"]
"""Imported once by the forkserver, before it forks any worker (see the module doc)."""


class JudgeWorkerError(JudgeError):
    """A judging worker process died while it held this judgment (503: retry)."""


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
    text and reading it here costs less than pickling the config object, and a service judges
    with a handful of configs."""
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
    try:
        report = judge(config_of(native_json), baseline, canary, thresholds=limits)
    except JudgeError as exc:
        raise _portable(exc) from None
    body = json.dumps(report.to_dict()).encode()
    return Judged(body, report.verdict.value, time.perf_counter() - started)


def _portable(exc: JudgeError) -> JudgeError:
    """``exc``, or the same message as its nearest base that survives pickling: an exception
    whose constructor takes other arguments than its ``args`` cannot be rebuilt in the service
    process, and ``concurrent.futures`` would then lose the answer."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        for base in (ConfigError, DataError, NotFoundError):
            if isinstance(exc, base):
                portable = base(str(exc))
                portable.__dict__.update(getattr(exc, "__dict__", {}))
                return portable
        return JudgeError(str(exc))
    return exc


def _ready() -> int:
    """A no-op task: starting every worker before the first request (their pid, for logs)."""
    return os.getpid()


class JudgePool:
    """``workers`` judging processes (0: judge in the service's own process); see module doc."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError(f"judge_workers must be >= 0, got {workers}")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("forkserver") if workers else None
        if self._context is not None:
            self._context.set_forkserver_preload(_PRELOAD)

    def start(self) -> list[int]:
        """Start the workers now (not at the first request), each with the judge imported.
        Returns their process ids (empty in-process). Blocking: call it off the event loop."""
        if not self.workers:
            return []
        executor = self._current()
        futures = [executor.submit(_ready) for _ in range(self.workers)]
        return sorted({future.result() for future in futures})

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(self.workers, mp_context=self._context)
            return self._executor

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        """Replace a broken executor (once, however many judgments saw it break)."""
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def judge(
        self,
        native_json: str,
        baseline: Mapping[str, Sequence[float]],
        canary: Mapping[str, Sequence[float]],
        thresholds: tuple[float, float] | None = None,
    ) -> Judged:
        """Judge in a worker and await the answer (in-process: in a thread); the arguments
        are :func:`judge_to_json`'s."""
        if not self.workers:
            return await to_thread.run_sync(
                judge_to_json, native_json, baseline, canary, thresholds
            )
        executor = self._current()
        try:
            future = executor.submit(judge_to_json, native_json, baseline, canary, thresholds)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            self._discard(executor)
            logger.error("a judging worker process died; the pool is restarted: %s", exc)
            raise JudgeWorkerError(
                "a judging worker process died while this judgment was queued or running "
                "(killed, or out of memory); the workers have been restarted: send the "
                "request again"
            ) from None

    def close(self) -> None:
        """Stop the workers (judgments in flight are cancelled)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
