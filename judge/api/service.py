"""The wired parts of one app, shared by every router: the store, the metric sources, the
service's own metrics, sequential runs, and synchronous analyses within a time budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from anyio import to_thread

from judge.api.plans import AnalysisPlan, fetch_deadline, outcome_cause, run_plan
from judge.api.runs import RunKeeper
from judge.api.settings import Settings
from judge.api.sources import SourceRegistry
from judge.api.store import Store
from judge.api.telemetry import ServiceMetrics, Stopwatch, analysis_context
from judge.api.workers import JudgePool
from judge.fetching import SeriesPairs
from judge.pages.series import series_json
from judge.report import Report

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""What "now" is for the doors: where a lookback window ends."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


def settings_clock(settings: Settings) -> Clock:
    """The wall clock, or the moment ``CANARY_JUDGE_PINNED_NOW`` pins (replays, tests: the
    same request then judges the same window whenever it is sent)."""
    pinned = settings.pinned_now
    if pinned is None:
        return wall_clock
    return lambda: pinned


@dataclass
class Services:
    """The wired parts of one app (built in ``create_app``'s lifespan)."""

    settings: Settings
    store: Store
    sources: SourceRegistry
    metrics: ServiceMetrics
    clock: Clock = wall_clock
    """Where lookback windows end (``settings_clock``)."""
    judges: JudgePool = field(default_factory=lambda: JudgePool(0))
    """Where ``POST /v1/judge`` judges (``judge_workers`` processes; :mod:`judge.api.workers`)."""
    _runs: RunKeeper | None = field(default=None, repr=False)

    @property
    def runs(self) -> RunKeeper:
        """Sequential runs (``judge.api.runs``), polled within ``sync_timeout_seconds``."""
        if self._runs is None:
            self._runs = RunKeeper(self.store, self.sources, self.metrics,
                                   timeout=self.settings.sync_timeout_seconds,
                                   replica=self.settings.replica_name(),
                                   lease_seconds=self.settings.lease_seconds)
        return self._runs

    async def judge_now(self, plan: AnalysisPlan, kind: str) -> tuple[Report, str]:
        """Run a plan synchronously within ``sync_timeout_seconds``, storing it as an analysis.

        Fetching ends by :func:`fetch_deadline` of that budget, so a source that is down or
        slow gives an error outcome (``report.is_error``; stored with status ``error`` and the
        cause) in time. Raises ``TimeoutError`` when the budget runs out anyway (the stored
        analysis is marked failed saying so).
        """
        stored = await to_thread.run_sync(
            lambda: self.store.create_analysis(
                kind=kind, config=plan.config.to_dict(), request=plan.to_json()
            )
        )
        # Leased for as long as the request may take, so no replica's scan takes it over
        # while it runs (nor renews it: the request's budget bounds it).
        lease = self.settings.sync_timeout_seconds + self.settings.lease_seconds
        await to_thread.run_sync(lambda: self.store.mark_running(
            stored.id, owner=self.settings.replica_name(), lease_seconds=lease
        ))
        self.metrics.analyses_started.labels(kind).inc()
        fetched: list[SeriesPairs] = []
        with analysis_context(stored.id):
            report = await self._run_sync(plan, kind, stored.id, fetched.append)
        if fetched:
            await to_thread.run_sync(
                self.store.save_series, stored.id, series_json(fetched[-1])
            )
        if report.is_error:
            await to_thread.run_sync(
                self.store.mark_error, stored.id, report.to_dict(), outcome_cause(report)
            )
        else:
            await to_thread.run_sync(self.store.mark_succeeded, stored.id, report.to_dict())
        return report, stored.id

    async def _run_sync(
        self, plan: AnalysisPlan, kind: str, analysis_id: str,
        on_pairs: Callable[[SeriesPairs], None],
    ) -> Report:
        watch = Stopwatch()
        try:
            budget = self.settings.sync_timeout_seconds
            report = await asyncio.wait_for(
                run_plan(plan, self.sources, deadline=fetch_deadline(budget), on_pairs=on_pairs,
                         judge_with=self.judges.judge_series),
                timeout=budget,
            )
        except TimeoutError:
            message = (
                f"analysis did not finish within {self.settings.sync_timeout_seconds:g}s "
                "(CANARY_JUDGE_SYNC_TIMEOUT_SECONDS); use fewer metrics, a larger step, or "
                "the background API"
            )
            await to_thread.run_sync(self.store.mark_failed, analysis_id, message)
            self.metrics.analyses_finished.labels(kind, "error").inc()
            logger.warning("synchronous analysis timed out", extra={"kind": kind})
            raise TimeoutError(message) from None
        except Exception as exc:
            await to_thread.run_sync(
                self.store.mark_failed, analysis_id, f"{type(exc).__name__}: {exc}"
            )
            self.metrics.analyses_finished.labels(kind, "error").inc()
            logger.warning("synchronous analysis failed", extra={"kind": kind, "error": str(exc)})
            raise
        self.metrics.analysis_seconds.labels(kind).observe(watch.seconds)
        self.metrics.analyses_finished.labels(kind, report.verdict.value).inc()
        if report.is_error:
            logger.warning(
                "synchronous analysis has no verdict: a metric source failed",
                extra={"kind": kind, "config": plan.config.name, "error": report.reason,
                       "seconds": round(watch.seconds, 3)},
            )
            return report
        logger.info(
            "synchronous analysis finished",
            extra={
                "kind": kind,
                "config": plan.config.name,
                "verdict": report.verdict.value,
                "score": report.score,
                "seconds": round(watch.seconds, 3),
            },
        )
        return report
