"""Fetching for the use-cases (:mod:`judge.analysis`): route each metric to a source, fetch
both sides of every metric concurrently with retries, backoff and an overall deadline, and turn
what came back into each metric's time-indexed series.

- :func:`resolve_source` routes a metric to a source; a query for a source nobody serves
  (SignalFx, Graphite, ...) fails that metric with a reason, without any I/O.
- :func:`fetch_metrics` fetches both sides of all metrics concurrently (``asyncio.gather``;
  ``concurrency`` bounds how many fetches are in flight), each attempt under a per-source
  timeout, retrying :class:`~judge.errors.RetryableSourceError` and timeouts with exponential
  backoff and jitter (:class:`RetryPolicy`), within an overall deadline. A side that cannot be
  fetched carries its reason and :class:`~judge.errors.FailureKind`; a scope for which no query
  of a source returns any series fails with ``no_series``.
- :func:`build_pairs` (one judgment) and :func:`new_points` (a sequential poll) turn the
  fetched series into each metric's :class:`~judge.judges.common.MetricData`.

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
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from judge.config.queries import UNSERVED_QUERY_TYPES
from judge.errors import (
    OUTAGE_KINDS,
    FailureKind,
    RetryableSourceError,
    SourceError,
    failure_kind,
)
from judge.judges.common import MetricData
from judge.judging import FetchFailure
from judge.ports import (
    FetchedSeries,
    FloatArray,
    MetricSource,
    PacedSource,
    Scope,
    ScopePair,
    Scopes,
    served_query_types,
)

if TYPE_CHECKING:
    from judge.config import CanaryConfig, MetricConfig

logger = logging.getLogger(__name__)

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
    lock-step. A source's ``Retry-After`` (Datadog's ``X-RateLimit-Reset``) replaces ``d`` and
    is waited in full, up to ``max_wait``: retrying earlier would land while the limit still
    holds. The analysis' deadline bounds every wait: one that would pass it is not started,
    and the metric fails saying so (with the deadline).
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_wait: float = 300.0
    """The longest a source's own ``Retry-After`` / rate-limit reset is waited (with no
    deadline, or a deadline further away)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_wait < 0:
            raise ValueError("base_delay, max_delay and max_wait must not be negative")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass(frozen=True)
class SideFetch:
    """The outcome of fetching one side of one metric."""

    query: str | None
    series: FetchedSeries | None = None
    error: str | None = None
    """What went wrong, in the source's words (``None``: fetched)."""
    attempts: int = 0
    seconds: float = 0.0
    """Wall time from the first attempt to the outcome: queueing, retries and backoff included."""
    latency: float = 0.0
    """How long the source took to answer the last attempt (the query's own latency)."""
    kind: str | None = None
    """The :class:`~judge.ports.FailureKind` of ``error`` (``None`` when fetched)."""
    source: str | None = None
    """The name of the source asked (``None``: none could be chosen)."""
    scope: Scope | None = None
    """The scope this side was fetched for."""

    @property
    def reason(self) -> str | None:
        """``error`` with the source, the query and the kind of failure, e.g. ``source
        'prometheus' (connect), query 'up{...}': cannot connect to ...``."""
        if self.error is None:
            return None
        who = " ".join(part for part in (
            f"source {self.source!r}" if self.source is not None else "",
            f"({self.kind})" if self.kind and self.query is not None else "",
        ) if part)
        what = f"query {self.query!r}" if self.query is not None else ""
        head = ", ".join(part for part in (who, what) if part)
        return f"{head}: {self.error}" if head else self.error

    def summary(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "source": self.source,
            "series": 0 if self.series is None else len(self.series.series),
            "error": self.error,
            "kind": self.kind,
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
        """Why this metric has no data: each failed side's reason (source, query, kind and
        the source's message), or one reason when both sides failed alike."""
        failed = [
            (side, fetch)
            for side, fetch in (("baseline", self.baseline), ("canary", self.canary))
            if fetch.error is not None
        ]
        if not failed:
            return None
        if len(failed) == 2 and self.baseline.reason == self.canary.reason:
            return self.baseline.reason
        return "; ".join(f"{side}: {fetch.reason}" for side, fetch in failed)

    @property
    def kind(self) -> str | None:
        """The failure kind of this metric: a side's that is an outage, else the first's."""
        kinds = [f.kind or FailureKind.SOURCE.value for f in (self.baseline, self.canary)
                 if f.error is not None]
        outages = [k for k in kinds if k in OUTAGE_KINDS]
        chosen = outages or kinds
        return chosen[0] if chosen else None


@dataclass(frozen=True)
class SeriesPairs:
    """What goes to the judge: per metric name, the two timed series or the reason they are
    missing."""

    config: CanaryConfig
    """The config to judge with: split metrics (``name{tag=value}``) replace their parent."""
    pairs: dict[str, MetricData | str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    """Per metric whose ``pairs`` entry is a reason: the kind of failure."""

    def inputs(self) -> dict[str, MetricData | FetchFailure]:
        """``pairs`` as :func:`judge.judging.judge_series` takes them (reasons become
        :class:`~judge.judging.FetchFailure` with their kind)."""
        return {
            name: FetchFailure(value, kind=self.kinds.get(name, FailureKind.SOURCE.value))
            if isinstance(value, str) else value
            for name, value in self.pairs.items()
        }


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
_DEADLINE_SLACK = 0.05
"""Seconds under which what is left of a deadline is not worth another attempt."""


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


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
    source_name: str | None = None,
    until: float | None = None,
    deadline: float | None = None,
) -> SideFetch:
    """One side of one metric: render, then fetch with retries until it works, fails for good,
    the attempts run out or (``until``, a ``time.perf_counter()`` instant) the deadline of
    ``deadline`` seconds comes."""
    began = time.perf_counter()
    done = partial(SideFetch, source=source_name, scope=scope)
    try:
        query = source.render(metric, scope, config)
    except SourceError as exc:
        # Nothing was asked of the source: the query could not be built (config, scope).
        return done(query=None, error=str(exc), kind=FailureKind.CONFIG.value,
                    seconds=time.perf_counter() - began)
    except Exception as exc:  # a bug in a source must not take the other metrics down
        logger.exception("rendering metric %r failed", metric.name)
        return done(query=None, error=f"{type(exc).__name__}: {exc}",
                    kind=FailureKind.CONFIG.value)

    def left() -> float | None:
        return None if until is None else until - time.perf_counter()

    async def attempt_once() -> tuple[FetchedSeries, float]:
        remaining = left()
        if remaining is not None and remaining <= _DEADLINE_SLACK:
            raise _DeadlinePassedError
        limit = timeout if remaining is None else min(timeout, remaining)
        asked = time.perf_counter()
        try:
            series = await asyncio.wait_for(source.fetch(metric, scope, config), limit)
        except TimeoutError:
            raise _AttemptTimeoutError(limit, cut=limit < timeout) from None
        return series, time.perf_counter() - asked

    async def attempt_limited() -> tuple[FetchedSeries, float]:
        if limiter is not None:
            async with limiter:
                return await attempt_once()
        return await attempt_once()

    async def attempt_admitted() -> tuple[FetchedSeries, float]:
        # A source that paces itself (a rate limit) waits here, outside the attempt's
        # timeout, at most until the deadline (or the policy's max_wait).
        if not isinstance(source, PacedSource):
            return await attempt_limited()
        remaining = left()
        within = retry.max_wait if remaining is None else max(0.0, remaining - _DEADLINE_SLACK)
        async with source.admission(within):
            return await attempt_limited()

    attempt = 0
    error = ""
    kind = FailureKind.SOURCE.value
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            series, latency = await attempt_admitted()
            return done(query=query, series=series, attempts=attempt,
                        seconds=time.perf_counter() - began, latency=latency)
        except _DeadlinePassedError:
            attempt -= 1
            if not error:
                error = (f"no time left to ask: the analysis' deadline of {deadline:g} s "
                         "passed while waiting for a free fetch slot")
                kind = FailureKind.TIMEOUT.value
            return done(query=query, error=f"{error} (gave up after {_attempts(attempt)}: "
                                           f"the deadline of {deadline:g} s came)",
                        kind=kind, attempts=attempt, seconds=time.perf_counter() - began)
        except _AttemptTimeoutError as exc:
            error = (f"no answer within {exc.limit:.3g} s (the analysis' deadline of "
                     f"{deadline:g} s)" if exc.cut else f"no answer within {exc.limit:g} s")
            kind = FailureKind.TIMEOUT.value
        except RetryableSourceError as exc:
            error, kind = str(exc), exc.kind.value
            retry_after = exc.retry_after
        except SourceError as exc:
            return done(query=query, error=str(exc), kind=exc.kind.value, attempts=attempt,
                        seconds=time.perf_counter() - began)
        except Exception as exc:
            logger.exception("fetching metric %r failed unexpectedly", metric.name)
            return done(query=query, error=f"{type(exc).__name__}: {exc}",
                        kind=failure_kind(exc).value, attempts=attempt,
                        seconds=time.perf_counter() - began)
        if attempt >= retry.max_attempts:
            return done(query=query, error=f"{error} (gave up after {_attempts(attempt)})",
                        kind=kind, attempts=attempt, seconds=time.perf_counter() - began)
        pause = retry.delay(attempt, retry_after, rng)
        remaining = left()
        if remaining is not None and pause >= remaining - _DEADLINE_SLACK:
            asked = (f"waiting {retry_after:.3g} s as the source asked"
                     if retry_after is not None else f"a {pause:.2g} s backoff")
            return done(query=query,
                        error=f"{error} (gave up after {_attempts(attempt)}: {asked} would "
                              f"pass the analysis' deadline of {deadline:g} s)",
                        kind=kind, attempts=attempt, seconds=time.perf_counter() - began)
        logger.info("metric %r attempt %d failed (%s); retrying in %.2f s",
                    metric.name, attempt, error, pause)
        await asyncio.sleep(pause)


class _DeadlinePassedError(Exception):
    """No time is left for another attempt."""


class _AttemptTimeoutError(Exception):
    def __init__(self, limit: float, *, cut: bool) -> None:
        super().__init__(limit)
        self.limit = limit
        self.cut = cut


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
    deadline: float | None = None,
) -> tuple[MetricFetch, ...]:
    """Fetch both sides of every metric concurrently; see :func:`analyze_async` for arguments.

    Never raises for a metric's failure: each :class:`MetricFetch` carries its error. A scope
    for which no query of a source returned any series fails those sides with kind
    ``no_series`` (see the module doc).
    """
    if concurrency is not None and concurrency < 1:
        raise ValueError(
            f"concurrency must be at least 1 (or None for no limit), got {concurrency}"
        )
    if deadline is not None and deadline <= 0:
        raise ValueError(f"deadline must be positive (seconds), got {deadline}")
    until = None if deadline is None else time.perf_counter() + deadline
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
            config_error = FailureKind.CONFIG.value
            if metric.query.type in UNSERVED_QUERY_TYPES:
                reason = f"source {metric.query.type} is not served by canary-judge"
                return MetricFetch(metric, SideFetch(None, error=reason, kind=config_error),
                                   SideFetch(None, error=reason, kind=config_error))
            try:
                name, source = resolve_source(metric, named)
                pair = resolve_scopes(metric, scopes)
            except LookupError as exc:
                reason = str(exc.args[0])
                return MetricFetch(metric, SideFetch(None, error=reason, kind=config_error),
                                   SideFetch(None, error=reason, kind=config_error))
            seconds = _source_timeout(name, source, timeout)
            # "default" is an alias the service gives the request's source: name the source.
            shown = next((n for n, s in named.items() if s is source and n != "default"), name)
            baseline, canary = await asyncio.gather(*(
                _fetch_side(source, metric, side.with_window(start, end, step), config,
                            timeout=seconds, retry=retry, limiter=limiter, rng=rng,
                            source_name=shown, until=until, deadline=deadline)
                for side in (pair.baseline, pair.canary)
            ))
            return MetricFetch(metric, baseline, canary)
        finally:
            progressed()

    report_progress()
    fetched = tuple(await asyncio.gather(*(one(m) for m in config.metrics)))
    return _fail_empty_scopes(fetched)


def _scope_key(side: SideFetch) -> tuple[Any, ...]:
    scope = side.scope
    assert scope is not None
    return (side.source, scope.scope, scope.location, tuple(sorted(scope.params.items())))


def _fail_empty_scopes(fetches: tuple[MetricFetch, ...]) -> tuple[MetricFetch, ...]:
    """Sides of a scope for which no query on a source returned any series at all become
    ``no_series`` failures; a lone empty query among fetched ones stays missing data."""
    queries: dict[tuple[Any, ...], list[bool]] = {}
    for fetch in fetches:
        for side in (fetch.baseline, fetch.canary):
            if side.series is not None and side.scope is not None:
                queries.setdefault(_scope_key(side), []).append(bool(side.series.series))
    empty = {key: len(found) for key, found in queries.items() if not any(found)}
    if not empty:
        return fetches

    def checked(side: SideFetch, role: str) -> SideFetch:
        if side.series is None or side.scope is None or _scope_key(side) not in empty:
            return side
        count = empty[_scope_key(side)]
        others = (f"none of the {count} queries for this scope matched anything"
                  if count > 1 else "it is the only query for this scope")
        return replace(
            side, series=None, kind=FailureKind.NO_SERIES.value,
            error=(f"no series at all for {role} scope {side.scope.scope!r} ({others}): "
                   "a scope value or a label that matches no series?"),
        )

    return tuple(replace(f, baseline=checked(f.baseline, "baseline"),
                         canary=checked(f.canary, "canary")) for f in fetches)


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
    kinds: dict[str, str] = {}
    for fetch in fetches:
        metric = fetch.metric
        if fetch.error is not None:
            metrics.append(metric)
            pairs[metric.name] = fetch.error
            kinds[metric.name] = fetch.kind or FailureKind.SOURCE.value
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
    return SeriesPairs(config=derived, pairs=pairs, kinds=kinds)


@dataclass(frozen=True)
class NewPoints:
    """The points of a poll not judged before: per metric name, arrays on a common grid of
    timestamps after the previous poll's last judged point (see :func:`new_points`)."""

    baseline: dict[str, FloatArray]
    canary: dict[str, FloatArray]
    timestamps: FloatArray
    errors: dict[str, str]
    """Metrics whose fetch failed this poll, with the reason."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Metrics whose fetch failed this poll, with the kind of failure."""

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
    kinds: dict[str, str] = {}
    for fetch in fetches:
        if fetch.error is not None:
            errors[fetch.metric.name] = fetch.error
            kinds[fetch.metric.name] = fetch.kind or FailureKind.SOURCE.value
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
        kinds=kinds,
    )


def _on_grid(grid: FloatArray, stamps: FloatArray, values: FloatArray) -> FloatArray:
    out = np.full(grid.size, np.nan)
    if stamps.size == 0 or grid.size == 0:
        return out
    index = np.searchsorted(grid, stamps)
    inside = (index < grid.size) & (grid[np.minimum(index, grid.size - 1)] == stamps)
    out[index[inside]] = values[inside]
    return out


def fetch_summary(fetches: Sequence[MetricFetch]) -> dict[str, Any]:
    """What was fetched per metric and side (query, series, error, attempts, seconds), for a
    report's ``details["fetch"]``."""
    return {
        f.metric.name: {"baseline": f.baseline.summary(), "canary": f.canary.summary()}
        for f in fetches
    }
