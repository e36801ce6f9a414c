"""The service's own metrics (prometheus-client) and structured JSON logs.

Metrics live in a registry per app, so tests (and one process) can build several apps without
"Duplicated timeseries" errors. Log lines carry the analysis id through a context variable set
by whoever is working on an analysis (the runner, or a synchronous webhook).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from judge.redaction import RedactingFilter, Redactor

analysis_id_var: ContextVar[str | None] = ContextVar("analysis_id", default=None)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """Counters and histograms of one app, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.analyses_started = Counter(
            "canary_judge_analyses_started",
            "Analyses started, by kind (native, kayenta, argo, flagger, judge).",
            ["kind"],
            registry=self.registry,
        )
        self.analyses_finished = Counter(
            "canary_judge_analyses_finished",
            "Analyses finished, by kind and verdict (pass, marginal, fail, error).",
            ["kind", "verdict"],
            registry=self.registry,
        )
        self.analyses_running = Gauge(
            "canary_judge_analyses_running",
            "Background analyses running now.",
            registry=self.registry,
        )
        self.judge_seconds = Histogram(
            "canary_judge_judge_seconds",
            "Time to judge (statistics and scoring, after data is in hand), by kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.analysis_seconds = Histogram(
            "canary_judge_analysis_seconds",
            "Wall time of a whole analysis (fetching and judging), by kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "canary_judge_fetch_seconds",
            "Time of one metric fetch from a source, by source name.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fetch_errors = Counter(
            "canary_judge_fetch_errors",
            "Failed fetches, by source name and error type.",
            ["source", "error"],
            registry=self.registry,
        )
        self.source_up = Gauge(
            "canary_judge_source_up",
            "1 while a metric source answers (last health check or fetch), 0 while it does not; "
            "absent until it was checked or used.",
            ["source"],
            registry=self.registry,
        )
        self.source_checks = Counter(
            "canary_judge_source_checks",
            "Health checks of metric sources, by source and result (up, or the failure kind).",
            ["source", "result"],
            registry=self.registry,
        )
        self.request_errors = Counter(
            "canary_judge_request_errors",
            "Requests answered with an error, by route group and status class.",
            ["route", "status"],
            registry=self.registry,
        )


@contextmanager
def analysis_context(analysis_id: str) -> Iterator[None]:
    """Tag log lines emitted inside the block with ``analysis_id``."""
    token = analysis_id_var.set(analysis_id)
    try:
        yield
    finally:
        analysis_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, analysis_id, and extras."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        analysis_id = analysis_id_var.get()
        if analysis_id is not None:
            entry["analysis_id"] = analysis_id
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:  # already formatted (and redacted) by RedactingFilter
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
"""The server's own loggers (access lines carry paths): redacted like ours."""


def configure_logging(level: str, as_json: bool, redactor: Redactor | None = None) -> None:
    """Send ``judge`` and ``metricsources`` logs to stderr, one JSON object per line, with
    every secret ``redactor`` knows hidden (in the server's own log lines too)."""
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    redacting = RedactingFilter(redactor or Redactor())
    handler.addFilter(redacting)
    for name in ("judge", "metricsources"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        for old in [f for f in server_logger.filters
                    if isinstance(f, RedactingFilter | AlreadyLoggedStartupFailure)]:
            server_logger.removeFilter(old)
        server_logger.addFilter(redacting)
        server_logger.addFilter(AlreadyLoggedStartupFailure())


class AlreadyLoggedStartupFailure(logging.Filter):
    """Drops the server's traceback of a startup failure the service has already logged in one
    line (a database that is locked or unreachable, ``judge.api.app.open_store``): uvicorn
    prints the whole traceback of whatever stopped the app's startup, which would bury that
    line under twenty of Starlette's."""

    MARKER = "StoreUnavailableError"

    def filter(self, record: logging.LogRecord) -> bool:
        raised = record.exc_info[0] if record.exc_info else None
        if raised is not None and raised.__name__ == self.MARKER:
            return False
        return self.MARKER not in str(record.msg)


class Stopwatch:
    """Seconds since creation (monotonic)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._started
