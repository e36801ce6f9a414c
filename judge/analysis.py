"""The use-cases, for data not in hand yet: fetch and judge once (:func:`analyze`), or poll a
sequential run (:func:`poll_async`, :class:`SequentialAnalysis`). The service's doors, the CLI
and notebooks call these.

``analyze(config, sources, scopes, start, end, step)``

1. routes each metric to a source and fetches both sides of every metric concurrently, with
   retries, backoff and an optional overall ``deadline`` (:mod:`judge.fetching`, which also
   says how several series of one metric are combined or split by tags);
2. turns each metric's series into its time-indexed pair (``MetricData``), or a
   ``FetchFailure(reason, kind)`` when a side could not be fetched: that metric is classified
   ``error``; the others are judged as usual;
3. calls ``judge.judging.judge_series`` once and returns its :class:`~judge.report.Report`,
   with what was fetched under ``report.details["fetch"]`` (query text, attempts, seconds).

Failure is not a verdict. A side that could not be fetched carries a
:class:`~judge.errors.FailureKind` (``connect``, ``timeout``, ``http``, ``rejected``, ``auth``,
``malformed``, ``no_series`` ...) and a reason naming the source, the query and what happened.
When a scored metric failed with one of :data:`~judge.errors.OUTAGE_KINDS`, the judge makes the
whole report an *error outcome* (``Verdict.ERROR``, no score; see
:func:`judge.scoring.score_report`): an outage is no evidence about the canary, so it must
neither pass nor fail it. Each service door reports that as its controller's error. A scope
for which no query of a source returns any series (a misspelt scope value) fails with
``no_series``; a single empty query is ordinary missing data (``nodata``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from judge.config import JudgeMode
from judge.errors import (
    OUTAGE_KINDS,
    ConfigError,
    FailureKind,
)
from judge.fetching import (
    DEFAULT_SCOPES,
    Combine,
    MetricFetch,
    NewPoints,
    ProgressCallback,
    RetryPolicy,
    SeriesPairs,
    build_pairs,
    fetch_metrics,
    fetch_summary,
    new_points,
)
from judge.judges import judge_for
from judge.judges.state import SequentialState
from judge.judging import judge_series
from judge.ports import (
    MetricSource,
    Scopes,
)
from judge.report import Classification
from judge.scoring import error_outcome

if TYPE_CHECKING:
    from judge.config import CanaryConfig, ScoreThresholds
    from judge.report import Report
    # Where an analysis judges what it fetched: ``(config, inputs, thresholds) -> report``.
    JudgeSeries = Callable[
        [CanaryConfig, Mapping[str, Any], ScoreThresholds | None], Coroutine[Any, Any, Report]
    ]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def poll_outcome(config: CanaryConfig, report: Report, points: NewPoints) -> Report:
    """A sequential poll's report as an error outcome when the run is still undecided and a
    scored metric that is not decided yet could not be fetched because its source failed
    (an outage): its status becomes ``error`` and its verdict :attr:`Verdict.ERROR
    <judge.report.Verdict.ERROR>`, so no controller reads "keep going" from a poll that saw
    nothing. Decisions already taken are final and still answered (a run that failed stays
    failed, whatever the source does later); a failed fetch of a metric already decided
    changes nothing.
    """
    sequential = dict(report.details.get("sequential") or {})
    if sequential.get("status") in ("pass", "fail") or not points.errors:
        return report
    muted = {m.name for m in config.metrics if m.muted}
    results = {m.name: m for m in report.metrics}
    failures: dict[str, tuple[str, str]] = {}
    for name, reason in points.errors.items():
        kind = points.kinds.get(name, FailureKind.SOURCE.value)
        result = results.get(name)
        if kind not in OUTAGE_KINDS or name in muted or result is None:
            continue
        if result.classification is Classification.NODATA:  # undecided: its data mattered
            failures[name] = (kind, reason)
    if not failures:
        return report
    metrics = tuple(
        replace(m, classification=Classification.ERROR,
                reason=f"Not fetched this poll ({failures[m.name][0]}): "
                       f"{failures[m.name][1]}. {m.reason}")
        if m.name in failures else m
        for m in report.metrics
    )
    outcome = error_outcome(replace(report, metrics=metrics), failures)
    sequential["status"] = "error"
    return replace(outcome, details={**outcome.details, "sequential": sequential})


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
    deadline: float | None = None,
    on_pairs: Callable[[SeriesPairs], None] | None = None,
    judge_with: JudgeSeries | None = None,
) -> Report:
    """Fetch every metric of ``config`` for the baseline and canary scopes, and judge them.

    ``sources``: one source, or sources by name (see :func:`resolve_source`). ``scopes``: one
    :class:`~judge.ports.ScopePair`, or pairs by the metrics' ``scope_name``. ``start`` /
    ``end`` / ``step`` fill in scopes that have no window of their own. ``concurrency`` bounds
    fetches in flight (``None``: no bound). ``timeout`` is seconds per fetch attempt, one value
    or per source name (default: the source's own ``timeout`` + 1 s, else 30 s). ``retry``:
    :class:`RetryPolicy`. ``combine``: how several untagged series of one metric become one.
    ``on_progress(done, total)`` is called as metrics finish fetching (``done`` of ``total``).
    ``deadline``: seconds the whole fetching may take (``None``: no limit beyond the attempts);
    each attempt gets what is left of it at most, and no retry starts (nor waits for a
    backoff or a ``Retry-After``) that would end past it: a metric still without data then
    fails with kind ``timeout`` (or its last error) saying so. ``on_pairs`` is handed the
    fetched series as judged (the service keeps them for the report page's plots).
    ``judge_with(config, inputs, thresholds)`` judges them elsewhere (the service: in a worker
    process, ``judge.api.workers``); by default :func:`judge.judging.judge_series`, here.

    A metric that cannot be fetched is classified ``error`` with the reason (source, query,
    kind of failure); it never fails the other metrics. When the source failed (an outage,
    see :data:`~judge.ports.OUTAGE_KINDS`) on a scored metric, the report is an error outcome:
    ``report.verdict`` is ``Verdict.ERROR`` with no score, never ``pass`` nor ``fail``.
    Without ``scopes`` the sides are the scope values ``baseline`` and ``canary`` (the labels
    the file and DataFrame sources use).
    """
    if scopes is None:
        scopes = DEFAULT_SCOPES
    fetches = await fetch_metrics(
        config, sources, scopes, start=start, end=end, step=step, concurrency=concurrency,
        timeout=timeout, retry=retry, on_progress=on_progress, deadline=deadline,
    )
    built = build_pairs(config, fetches, combine)
    if on_pairs is not None:
        on_pairs(built)
    if judge_with is None:
        report = judge_series(built.config, built.inputs(), thresholds=thresholds)
    else:
        report = await judge_with(built.config, built.inputs(), thresholds)
    # The deadline is reported: a metric that gave up on a rate limit's reset names it too.
    return replace(report, details={**report.details, "fetch": fetch_summary(fetches),
                                    "fetch_deadline": deadline})


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
    ``inconclusive``: decided ``marginal`` (a person decides): the run can no longer pass but
    what failed does not fail the canary by the config's scoring, or it ended (its ``final``
    poll) without enough evidence. ``error``: this poll has no
    answer because a metric source failed; the run goes on (not a decision).
    """

    CONTINUE = "continue"
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"

    @property
    def decided(self) -> bool:
        return self in (SequentialStatus.PASS, SequentialStatus.FAIL,
                        SequentialStatus.INCONCLUSIVE)


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
    report = poll_outcome(config, report, points)  # an outage: status "error", no verdict
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
