"""The analysis use-case: fetch every metric's baseline and canary series, then judge them once.

``analyze(config, sources, scopes, start, end, step)`` is what the service, the CLI and notebooks
call when the data is not in hand yet. It

1. routes each metric to a source (see :func:`resolve_source`); a query for a source nobody
   serves (SignalFx, Graphite, ...) fails that metric with a reason, without any I/O;
2. fetches both sides of all metrics concurrently (``asyncio.gather``; ``concurrency`` bounds
   how many fetches are in flight), each attempt under a per-source timeout, retrying
   :class:`~judge.ports.RetryableSourceError` and timeouts with exponential backoff and jitter
   (:class:`RetryPolicy`);
3. turns each metric's series into one ``(baseline, canary)`` array pair, or several when the
   query groups by tags (see below), or a ``FetchFailure(reason)`` when a side could not be
   fetched: that metric is classified ``error``; the others are judged as usual;
4. calls ``judge.judging.judge_series`` once and returns its :class:`~judge.report.Report`,
   with what was fetched under ``report.details["fetch"]`` (query text, attempts, seconds).

Several series for one metric:

- When the query groups by tags (Prometheus ``groupByFields``, Datadog ``by {...}``), each tag
  set is judged as its own metric named ``"<metric>{tag=value,...}"`` (Kayenta pairs control and
  experiment metric sets by their tags in the same way). A tag set seen on one side only is
  judged with an empty other side, so it shows up as ``nodata`` rather than disappearing.
- Otherwise the series are combined point by point (same timestamp) with ``combine``: ``mean``
  (the default, as Kayenta's ``avg(...)`` does for Prometheus; right for latencies, ratios,
  utilisation) or ``sum`` (right for counts: errors, requests). A point missing from every
  series stays NaN; NaN points are ignored otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from judge.config import JudgeMode
from judge.config.queries import UNSERVED_QUERY_TYPES
from judge.errors import ConfigError, RetryableSourceError, SourceError
from judge.judges import judge_for
from judge.judges.common import MetricData
from judge.judges.state import SequentialState
from judge.judging import FetchFailure, judge_series
from judge.ports import (
    FetchedSeries,
    FloatArray,
    MetricSource,
    Scope,
    ScopePair,
    Scopes,
    served_query_types,
)

if TYPE_CHECKING:
    from judge.config import CanaryConfig, MetricConfig, ScoreThresholds
    from judge.report import Report

logger = logging.getLogger(__name__)
T = TypeVar("T")

Combine = Literal["mean", "sum"]
ProgressCallback = Callable[[int, int], None]
DEFAULT_SCOPES = ScopePair(Scope("baseline"), Scope("canary"))
"""The scopes of an analysis given none: the side labels of ``metricsources.files``."""
DEFAULT_TIMEOUT = 30.0
"""Seconds one fetch attempt may take when neither the caller nor the source says otherwise."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of retryable fetch errors: exponential backoff with "equal jitter".

    Attempt ``n`` (1-based) failing waits ``d/2 + uniform(0, d/2)`` with
    ``d = min(max_delay, base_delay * 2**(n-1))`` (AWS Architecture Blog, "Exponential Backoff
    And Jitter", 2015): the spread keeps many metrics that failed together from retrying in
    lock-step. A source's ``Retry-After`` replaces ``d`` (capped at ``max_delay``).
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass(frozen=True)
class SideFetch:
    """The outcome of fetching one side of one metric."""

    query: str | None
    series: FetchedSeries | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    """Wall time from the first attempt to the outcome: queueing, retries and backoff included."""
    latency: float = 0.0
    """How long the source took to answer the last attempt (the query's own latency)."""

    def summary(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "series": 0 if self.series is None else len(self.series.series),
            "error": self.error,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 4),
            "latency": round(self.latency, 4),
        }


@dataclass(frozen=True)
class MetricFetch:
    """Both sides of one metric, or why they could not be fetched."""

    metric: MetricConfig
    baseline: SideFetch
    canary: SideFetch

    @property
    def error(self) -> str | None:
        errors = [
            f"{side}: {fetch.error}"
            for side, fetch in (("baseline", self.baseline), ("canary", self.canary))
            if fetch.error is not None
        ]
        if errors and self.baseline.error is not None and self.baseline.error == self.canary.error:
            return self.baseline.error
        return "; ".join(errors) or None


@dataclass(frozen=True)
class SeriesPairs:
    """What goes to the judge: per metric name, the two timed series or the reason they are
    missing."""

    config: CanaryConfig
    """The config to judge with: split metrics (``name{tag=value}``) replace their parent."""
    pairs: dict[str, MetricData | str] = field(default_factory=dict)


# -- routing -----------------------------------------------------------------------------------
def _describe(sources: Mapping[str, MetricSource]) -> str:
    described = []
    for name in sorted(sources):
        types = served_query_types(sources[name])
        described.append(f"{name} ({', '.join(sorted(types)) if types is not None else 'any'})")
    return ", ".join(described) or "none"


def resolve_source(
    metric: MetricConfig, sources: Mapping[str, MetricSource]
) -> tuple[str, MetricSource]:
    """The source for a metric, by name or else by the type of its query.

    1. The metric's own ``source`` name (an error when it is not configured).
    2. A source that runs the metric's query type (its ``query_types``): the one named
       ``"default"`` (the service puts the request's ``source`` / Kayenta's
       ``metricsAccountName`` there, so an account selects a source *for its type*), else the
       one named like the type (``prometheus``, ``datadog``, ...), else the only one.
    3. A source that reads any type (files, DataFrames: ``query_types`` is ``None``):
       ``"default"``, else the only one.

    So a Datadog metric in a config whose default is Prometheus goes to the Datadog source.
    Raises ``LookupError`` with the reason when no source, or several equally, fit.
    """
    if metric.source is not None:
        if metric.source in sources:
            return metric.source, sources[metric.source]
        raise LookupError(
            f"metric {metric.name!r} asks for source {metric.source!r}, which is not configured "
            f"(configured: {', '.join(sorted(sources)) or 'none'})"
        )
    kind = metric.query.type
    types = {name: served_query_types(source) for name, source in sources.items()}
    exact = [name for name, served in types.items() if served is not None and kind in served]
    anything = [name for name, served in types.items() if served is None]
    for candidates in (exact, anything):
        # "default" and a source named after the type may be the same object under two names.
        distinct = {id(sources[name]): name for name in sorted(candidates, reverse=True)}
        for preferred in ("default", kind):
            if preferred in candidates:
                return preferred, sources[preferred]
        if len(distinct) == 1:
            name = next(iter(distinct.values()))
            return name, sources[name]
        if candidates:
            raise LookupError(
                f"metric {metric.name!r} names no source and several run {kind!r} queries "
                f"({', '.join(sorted(candidates))}); set the metric's 'source', or name one "
                "for the request"
            )
    raise LookupError(
        f"no configured source runs {kind!r} queries, needed by metric {metric.name!r} "
        f"(configured: {_describe(sources)}); configure one or set the metric's 'source'"
    )


def resolve_scopes(metric: MetricConfig, scopes: Scopes) -> ScopePair:
    """The scope pair for a metric's ``scope_name`` (any name when one pair is given)."""
    if isinstance(scopes, ScopePair):
        return scopes
    if metric.scope_name in scopes:
        return scopes[metric.scope_name]
    raise LookupError(
        f"metric {metric.name!r} uses scope {metric.scope_name!r}, which the analysis was not "
        f"given (given: {', '.join(sorted(scopes)) or 'none'})"
    )


# -- fetching ----------------------------------------------------------------------------------
async def _fetch_side(
    source: MetricSource,
    metric: MetricConfig,
    scope: Scope,
    config: CanaryConfig,
    *,
    timeout: float,
    retry: RetryPolicy,
    limiter: asyncio.Semaphore | None,
    rng: random.Random,
) -> SideFetch:
    began = time.perf_counter()
    try:
        query = source.render(metric, scope, config)
    except SourceError as exc:
        return SideFetch(query=None, error=str(exc), seconds=time.perf_counter() - began)
    except Exception as exc:  # a bug in a source must not take the other metrics down
        logger.exception("rendering metric %r failed", metric.name)
        return SideFetch(query=None, error=f"{type(exc).__name__}: {exc}")

    async def attempt_once() -> tuple[FetchedSeries, float]:
        asked = time.perf_counter()
        series = await asyncio.wait_for(source.fetch(metric, scope, config), timeout)
        return series, time.perf_counter() - asked

    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            if limiter is not None:
                async with limiter:
                    series, latency = await attempt_once()
            else:
                series, latency = await attempt_once()
            return SideFetch(query=query, series=series, attempts=attempt,
                             seconds=time.perf_counter() - began, latency=latency)
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except RetryableSourceError as exc:
            error = str(exc)
            retry_after = exc.retry_after
        except SourceError as exc:
            return SideFetch(query=query, error=str(exc), attempts=attempt,
                             seconds=time.perf_counter() - began)
        except Exception as exc:
            logger.exception("fetching metric %r failed unexpectedly", metric.name)
            return SideFetch(query=query, error=f"{type(exc).__name__}: {exc}",
                             attempts=attempt, seconds=time.perf_counter() - began)
        if attempt >= retry.max_attempts:
            return SideFetch(
                query=query,
                error=f"{error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",
                attempts=attempt,
                seconds=time.perf_counter() - began,
            )
        pause = retry.delay(attempt, retry_after, rng)
        logger.info("metric %r attempt %d failed (%s); retrying in %.2f s",
                    metric.name, attempt, error, pause)
        await asyncio.sleep(pause)


def _source_timeout(
    name: str, source: MetricSource, timeout: float | Mapping[str, float] | None
) -> float:
    if isinstance(timeout, Mapping):
        if name in timeout:
            return float(timeout[name])
    elif timeout is not None:
        return float(timeout)
    # A source with its own request timeout gets a little more, so its own (clearer) timeout
    # error wins over the generic one here.
    own = getattr(source, "timeout", None)
    return float(own) + 1.0 if isinstance(own, int | float) else DEFAULT_TIMEOUT


async def fetch_metrics(
    config: CanaryConfig,
    sources: Mapping[str, MetricSource] | MetricSource,
    scopes: Scopes,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta | None = None,
    concurrency: int | None = None,
    timeout: float | Mapping[str, float] | None = None,
    retry: RetryPolicy | None = None,
    on_progress: ProgressCallback | None = None,
    rng: random.Random | None = None,
) -> tuple[MetricFetch, ...]:
    """Fetch both sides of every metric concurrently; see :func:`analyze_async` for arguments.

    Never raises for a metric's failure: each :class:`MetricFetch` carries its error.
    """
    if concurrency is not None and concurrency < 1:
        raise ValueError(
            f"concurrency must be at least 1 (or None for no limit), got {concurrency}"
        )
    named: Mapping[str, MetricSource] = (
        sources if isinstance(sources, Mapping) else {"default": sources}
    )
    retry = retry or RetryPolicy()
    rng = rng or random.Random()
    limiter = asyncio.Semaphore(concurrency) if concurrency is not None else None
    total = len(config.metrics)
    done = 0

    def report_progress() -> None:
        if on_progress is not None:
            try:
                on_progress(done, total)
            except Exception:  # a broken progress display must not fail the analysis
                logger.exception("on_progress callback failed")

    def progressed() -> None:
        nonlocal done
        done += 1
        report_progress()

    async def one(metric: MetricConfig) -> MetricFetch:
        try:
            if metric.query.type in UNSERVED_QUERY_TYPES:
                reason = f"source {metric.query.type} is not served by canary-judge"
                return MetricFetch(metric, SideFetch(None, error=reason),
                                   SideFetch(None, error=reason))
            try:
                name, source = resolve_source(metric, named)
                pair = resolve_scopes(metric, scopes)
            except LookupError as exc:
                reason = str(exc.args[0])
                return MetricFetch(metric, SideFetch(None, error=reason),
                                   SideFetch(None, error=reason))
            seconds = _source_timeout(name, source, timeout)
            baseline, canary = await asyncio.gather(*(
                _fetch_side(source, metric, side.with_window(start, end, step), config,
                            timeout=seconds, retry=retry, limiter=limiter, rng=rng)
                for side in (pair.baseline, pair.canary)
            ))
            return MetricFetch(metric, baseline, canary)
        finally:
            progressed()

    report_progress()
    return tuple(await asyncio.gather(*(one(m) for m in config.metrics)))


# -- series to pairs ---------------------------------------------------------------------------
def combine_series(fetched: FetchedSeries | None, how: Combine = "mean") -> FloatArray:
    """One array from all series of a fetch, point by point (see module doc)."""
    return combine_timed(fetched, how)[1]


def combine_timed(
    fetched: FetchedSeries | None, how: Combine = "mean"
) -> tuple[FloatArray, FloatArray]:
    """:func:`combine_series` with the timestamps: ``(timestamps, values)``."""
    if fetched is None or not fetched.series:
        return np.array([], dtype=np.float64), np.array([], dtype=np.float64)
    if len(fetched.series) == 1:
        only = fetched.series[0]
        return (only.timestamps.astype(np.float64, copy=True),
                only.values.astype(np.float64, copy=True))
    stamps = np.unique(np.concatenate([s.timestamps for s in fetched.series]))
    grid = np.full((len(fetched.series), stamps.size), np.nan)
    for row, series in enumerate(fetched.series):
        grid[row, np.searchsorted(stamps, series.timestamps)] = series.values
    present = ~np.isnan(grid)
    counts = present.sum(axis=0)
    sums = np.where(present, grid, 0.0).sum(axis=0)
    combined = sums / np.maximum(counts, 1) if how == "mean" else sums
    return stamps.astype(np.float64), np.where(counts > 0, combined, np.nan)


def _tag_key(tags: Mapping[str, str], fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((f, tags.get(f, "")) for f in fields)


def _split_name(metric: str, key: tuple[tuple[str, str], ...]) -> str:
    return metric + "{" + ",".join(f"{k}={v}" for k, v in key) + "}"


def _timed_pair(
    baseline: tuple[FloatArray, FloatArray], canary: tuple[FloatArray, FloatArray]
) -> MetricData:
    """A metric's data from each side's ``(timestamps, values)``."""
    return MetricData.from_epoch(baseline[1], canary[1], baseline[0], canary[0])


def build_pairs(
    config: CanaryConfig, fetches: Sequence[MetricFetch], combine: Combine = "mean"
) -> SeriesPairs:
    """Timed series per metric (or per group-by tag set), or the fetch error's reason."""
    metrics: list[MetricConfig] = []
    pairs: dict[str, MetricData | str] = {}
    for fetch in fetches:
        metric = fetch.metric
        if fetch.error is not None:
            metrics.append(metric)
            pairs[metric.name] = fetch.error
            continue
        baseline, canary = fetch.baseline.series, fetch.canary.series
        assert baseline is not None and canary is not None
        fields = baseline.group_by or canary.group_by
        if not fields:
            metrics.append(metric)
            pairs[metric.name] = _timed_pair(combine_timed(baseline, combine),
                                             combine_timed(canary, combine))
            continue
        keys = list(dict.fromkeys(
            _tag_key(s.tags, fields) for s in (*baseline.series, *canary.series)
        ))
        if not keys:  # grouped query, no data on either side: judged (nodata) under its name
            metrics.append(metric)
            empty = np.array([], dtype=np.float64)
            pairs[metric.name] = MetricData.from_epoch(empty, empty, empty, empty)
            continue
        for key in keys:
            name = _split_name(metric.name, key)
            sides = []
            for fetched in (baseline, canary):
                matching = tuple(s for s in fetched.series if _tag_key(s.tags, fields) == key)
                sides.append(combine_timed(replace(fetched, series=matching), combine))
            metrics.append(metric.model_copy(update={"name": name}))
            pairs[name] = _timed_pair(sides[0], sides[1])
    derived = config.model_copy(update={"metrics": tuple(metrics)})
    return SeriesPairs(config=derived, pairs=pairs)


@dataclass(frozen=True)
class NewPoints:
    """The points of a poll not judged before: per metric name, arrays on a common grid of
    timestamps after the previous poll's last judged point (see :func:`new_points`)."""

    baseline: dict[str, FloatArray]
    canary: dict[str, FloatArray]
    timestamps: FloatArray
    errors: dict[str, str]
    """Metrics whose fetch failed this poll, with the reason."""

    @property
    def last(self) -> float | None:
        """The newest timestamp judged (``None``: nothing new)."""
        return float(self.timestamps[-1]) if self.timestamps.size else None

    @property
    def data(self) -> dict[str, MetricData]:
        """The judge's input: per metric name, both sides on the grid's timestamps."""
        return {
            name: MetricData.from_epoch(
                self.baseline[name], self.canary[name], self.timestamps, self.timestamps
            )
            for name in self.baseline
        }


def new_points(
    fetches: Sequence[MetricFetch], after: float | None, combine: Combine = "mean"
) -> NewPoints:
    """The points of ``fetches`` later than ``after`` (epoch seconds), for a sequential judge.

    A poll refetches from the previous poll's last judged point, so the point at ``after``
    comes back and is dropped here: no point is counted twice. All metrics share one grid (the
    union of their new timestamps, a missing point is NaN and the judge drops that pair), so a
    count and its denominator stay aligned. The grid ends at the newest timestamp where some
    metric has both sides: trailing points with one side missing (a scrape not in yet) are
    left for the next poll. Series of a grouped query are combined (``combine``): sequential
    runs judge the metric as a whole.
    """
    timed: dict[str, tuple[tuple[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]] = {}
    errors: dict[str, str] = {}
    for fetch in fetches:
        if fetch.error is not None:
            errors[fetch.metric.name] = fetch.error
            continue
        timed[fetch.metric.name] = (
            combine_timed(fetch.baseline.series, combine),
            combine_timed(fetch.canary.series, combine),
        )
    stamps = [side[0] for pair in timed.values() for side in pair]
    grid = np.unique(np.concatenate(stamps)) if stamps else np.array([], dtype=np.float64)
    if after is not None:
        grid = grid[grid > after]
    sides: dict[str, tuple[FloatArray, FloatArray]] = {}
    paired = np.zeros(grid.size, dtype=bool)
    for column, ((b_time, b_values), (c_time, c_values)) in timed.items():
        b, c = _on_grid(grid, b_time, b_values), _on_grid(grid, c_time, c_values)
        paired |= np.isfinite(b) & np.isfinite(c)
        sides[column] = (b, c)
    end = int(np.flatnonzero(paired)[-1]) + 1 if paired.any() else 0
    return NewPoints(
        baseline={column: pair[0][:end] for column, pair in sides.items()},
        canary={column: pair[1][:end] for column, pair in sides.items()},
        timestamps=grid[:end],
        errors=errors,
    )


def _on_grid(grid: FloatArray, stamps: FloatArray, values: FloatArray) -> FloatArray:
    out = np.full(grid.size, np.nan)
    if stamps.size == 0 or grid.size == 0:
        return out
    index = np.searchsorted(grid, stamps)
    inside = (index < grid.size) & (grid[np.minimum(index, grid.size - 1)] == stamps)
    out[index[inside]] = values[inside]
    return out


# -- the use-case ------------------------------------------------------------------------------
async def analyze_async(
    config: CanaryConfig,
    sources: Mapping[str, MetricSource] | MetricSource,
    scopes: Scopes | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta | None = None,
    thresholds: ScoreThresholds | None = None,
    concurrency: int | None = 32,
    timeout: float | Mapping[str, float] | None = None,
    retry: RetryPolicy | None = None,
    combine: Combine = "mean",
    on_progress: ProgressCallback | None = None,
) -> Report:
    """Fetch every metric of ``config`` for the baseline and canary scopes, and judge them.

    ``sources``: one source, or sources by name (see :func:`resolve_source`). ``scopes``: one
    :class:`~judge.ports.ScopePair`, or pairs by the metrics' ``scope_name``. ``start`` /
    ``end`` / ``step`` fill in scopes that have no window of their own. ``concurrency`` bounds
    fetches in flight (``None``: no bound). ``timeout`` is seconds per fetch attempt, one value
    or per source name (default: the source's own ``timeout`` + 1 s, else 30 s). ``retry``:
    :class:`RetryPolicy`. ``combine``: how several untagged series of one metric become one.
    ``on_progress(done, total)`` is called as metrics finish fetching (``done`` of ``total``).

    A metric that cannot be fetched is classified ``error`` with the reason; it never fails
    the other metrics and never passes silently. Without ``scopes`` the sides are the scope
    values ``baseline`` and ``canary`` (the labels the file and DataFrame sources use).
    """
    if scopes is None:
        scopes = DEFAULT_SCOPES
    fetches = await fetch_metrics(
        config, sources, scopes, start=start, end=end, step=step, concurrency=concurrency,
        timeout=timeout, retry=retry, on_progress=on_progress,
    )
    built = build_pairs(config, fetches, combine)
    pairs = {
        name: FetchFailure(value) if isinstance(value, str) else value
        for name, value in built.pairs.items()
    }
    report = judge_series(built.config, pairs, thresholds=thresholds)
    return replace(report, details={**report.details, "fetch": fetch_summary(fetches)})


def fetch_summary(fetches: Sequence[MetricFetch]) -> dict[str, Any]:
    """What was fetched per metric and side (query, series, error, attempts, seconds), for a
    report's ``details["fetch"]``."""
    return {
        f.metric.name: {"baseline": f.baseline.summary(), "canary": f.canary.summary()}
        for f in fetches
    }


def analyze(
    config: CanaryConfig,
    sources: Mapping[str, MetricSource] | MetricSource,
    scopes: Scopes | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta | None = None,
    **options: Any,
) -> Report:
    """:func:`analyze_async` for callers without an event loop (scripts, the CLI).

    Inside a running loop (a Jupyter cell) the analysis runs on a private loop in a worker
    thread, so notebooks can call it directly too.
    """
    return _run_sync(
        analyze_async(config, sources, scopes, start=start, end=end, step=step, **options)
    )


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end; inside a running loop (a Jupyter cell) on a private loop
    in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result()


# -- the sequential use-case --------------------------------------------------------------------
class SequentialStatus(StrEnum):
    """Where a sequential run stands after a poll (``report.details["sequential"]["status"]``).

    ``continue``: undecided, keep polling. ``pass`` / ``fail``: decided (final).
    ``inconclusive``: the run ended (its ``final`` poll) undecided.
    """

    CONTINUE = "continue"
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"

    @property
    def decided(self) -> bool:
        return self is not SequentialStatus.CONTINUE


@dataclass(frozen=True)
class PollOutcome:
    """One poll of a sequential run: the report, the run's new state, and what was judged."""

    report: Report
    state: SequentialState
    new_points: int
    """Points (per metric, on the poll's common grid) judged for the first time."""
    last: datetime | None
    """The newest point judged so far (``None``: none yet): the next poll fetches after it."""
    fetch_errors: dict[str, str]
    """Metrics whose fetch failed this poll, with the reason (they added no points)."""

    @property
    def status(self) -> SequentialStatus:
        return SequentialStatus(self.report.details["sequential"]["status"])


def _epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


async def poll_async(
    config: CanaryConfig,
    sources: Mapping[str, MetricSource] | MetricSource,
    scopes: Scopes | None,
    state: SequentialState,
    *,
    start: datetime,
    end: datetime,
    step: timedelta | None = None,
    after: datetime | None = None,
    final: bool = False,
    **options: Any,
) -> PollOutcome:
    """One poll of a sequential (anytime-valid) analysis: fetch the points after ``after`` (the
    previous poll's :attr:`PollOutcome.last`; ``None`` on the first poll: from ``start``) up
    to ``end``, judge the new ones with the run's ``state``, and return the new state.

    No point is judged twice, however the polls and windows overlap (:func:`new_points`). A
    metric whose fetch fails adds no points: the run stays undecided, and a ``final`` poll with
    a failed fetch is not treated as final (a run never passes on data it did not see).
    ``options`` go to :func:`fetch_metrics` (``timeout``, ``retry``, ``concurrency`` ...).
    """
    if config.mode is not JudgeMode.DEFAULT:
        raise ConfigError(
            f"config {config.name!r} uses the {config.mode.value!r} judge; sequential runs "
            "need the default judge (mode: default)",
            "config",
        )
    fetch_start = after or start
    fetches: tuple[MetricFetch, ...] = ()
    if end > fetch_start:
        fetches = await fetch_metrics(
            config, sources, scopes or DEFAULT_SCOPES, start=fetch_start, end=end, step=step,
            **options,
        )
    # else: polled again for the same moment; nothing new, the state is re-judged as is
    points = new_points(fetches, None if after is None else _epoch(after))
    report, new_state = judge_for(config.mode).poll(
        config, state, points.data, now=end.isoformat(), final=final and not points.errors,
    )
    sequential: dict[str, Any] = dict(report.details.get("sequential", {}))
    sequential.update({"new_points": int(points.timestamps.size),
                       "fetch_errors": points.errors})
    if final and points.errors:
        sequential["note"] = ("final poll not treated as final: some metrics could not be "
                              "fetched, and a run never passes on data it did not see")
    last = (datetime.fromtimestamp(points.last, UTC) if points.last is not None else after)
    sequential["last_point"] = last.isoformat() if last else None
    report = replace(report, details={
        **report.details, "sequential": sequential, "fetch": fetch_summary(fetches),
    })
    return PollOutcome(report=report, state=new_state, new_points=int(points.timestamps.size),
                       last=last, fetch_errors=points.errors)


class SequentialAnalysis:
    """A sequential analysis run from a notebook or a script, without the service: it keeps
    the run's state and its last judged point between polls.

    >>> run = SequentialAnalysis(config, source, scopes, start=start, step=timedelta(minutes=1))
    >>> outcome = run.poll(end=start + timedelta(minutes=10))   # doctest: +SKIP
    >>> outcome.status, outcome.report.verdict                  # doctest: +SKIP

    The service's sequential runs (``/v1/runs``, the Argo and Flagger doors) are the same
    :func:`poll_async` with the state kept in its store.
    """

    def __init__(
        self,
        config: CanaryConfig,
        sources: Mapping[str, MetricSource] | MetricSource,
        scopes: Scopes | None = None,
        *,
        start: datetime,
        step: timedelta | None = None,
        run_id: str = "notebook",
        **options: Any,
    ) -> None:
        self.config = config
        self.sources = sources
        self.scopes = scopes
        self.start = start
        self.step = step
        self.options = options
        self.state = SequentialState.new(run_id, config.name, now=start.isoformat())
        self.last: datetime | None = None
        self.outcomes: list[PollOutcome] = []

    async def poll_async(self, end: datetime, *, final: bool = False) -> PollOutcome:
        """Judge what arrived up to ``end``; see :func:`poll_async`."""
        outcome = await poll_async(
            self.config, self.sources, self.scopes, self.state, start=self.start, end=end,
            step=self.step, after=self.last, final=final, **self.options,
        )
        self.state, self.last = outcome.state, outcome.last
        self.outcomes.append(outcome)
        return outcome

    def poll(self, end: datetime, *, final: bool = False) -> PollOutcome:
        """:meth:`poll_async` for callers without an event loop (and Jupyter cells)."""
        return _run_sync(self.poll_async(end, final=final))
