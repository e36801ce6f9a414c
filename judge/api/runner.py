"""Background analyses: run stored plans on the event loop, a few at a time, and store results.

The store is the source of truth: an analysis is written (``queued``, with its config snapshot
and plan) before its id is returned, progress is written while it runs, and the report when it
ends. At startup, analyses a stopped process left ``queued``/``running`` are re-run from their
stored plan (the window is fixed in the plan, so a re-run judges the same data), unless they
were interrupted ``max_resume_attempts`` times already or resuming is switched off: then they
are marked ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging

from anyio import to_thread

from judge.api.plans import AnalysisPlan, fetch_deadline, outcome_cause, run_plan
from judge.api.service import Services
from judge.api.telemetry import Stopwatch, analysis_context
from judge.config import CanaryConfig
from judge.errors import NotFoundError
from judge.fetching import SeriesPairs
from judge.pages.series import series_json

logger = logging.getLogger(__name__)

_PROGRESS_INTERVAL = 0.25
"""Seconds between progress writes: enough to watch, few enough not to load the database."""


class AnalysisRunner:
    """Runs stored analyses in the background, at most ``max_concurrent_analyses`` at once."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._slots = asyncio.Semaphore(services.settings.max_concurrent_analyses)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def active(self) -> int:
        return len(self._tasks)

    def submit(self, analysis_id: str) -> None:
        """Schedule a stored (queued) analysis."""
        task = asyncio.create_task(self._run(analysis_id), name=f"analysis-{analysis_id}")
        self._tasks[analysis_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(analysis_id, None))

    async def resume_interrupted(self) -> list[str]:
        """Re-run (or fail) what a stopped process left unfinished. Returns the resumed ids."""
        settings = self._services.settings
        store = self._services.store
        resumed: list[str] = []
        for analysis in await to_thread.run_sync(store.unfinished_analyses):
            if analysis.kind in ("argo", "flagger"):
                # Their caller got an answer (or timed out) long ago; nobody will read a re-run.
                await to_thread.run_sync(
                    store.mark_failed,
                    analysis.id,
                    "interrupted by a restart of the service; the caller's request had ended",
                )
            elif not settings.resume_interrupted:
                await to_thread.run_sync(
                    store.mark_failed,
                    analysis.id,
                    "interrupted by a restart of the service (resuming is switched off: "
                    "CANARY_JUDGE_RESUME_INTERRUPTED=false)",
                )
            elif analysis.attempts >= settings.max_resume_attempts:
                await to_thread.run_sync(
                    store.mark_failed,
                    analysis.id,
                    f"interrupted by a restart of the service after {analysis.attempts} "
                    f"attempt(s); not resumed again (CANARY_JUDGE_MAX_RESUME_ATTEMPTS="
                    f"{settings.max_resume_attempts})",
                )
            else:
                await to_thread.run_sync(
                    store.requeue,
                    analysis.id,
                    f"resumed after a restart (attempt {analysis.attempts + 1})",
                )
                self.submit(analysis.id)
                resumed.append(analysis.id)
        if resumed:
            logger.info("resumed interrupted analyses", extra={"analysis_ids": resumed})
        return resumed

    async def stop(self) -> None:
        """Cancel running analyses; they stay stored as running and are resumed next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, analysis_id: str) -> None:
        with analysis_context(analysis_id):
            async with self._slots:
                await self._run_now(analysis_id)

    async def _run_now(self, analysis_id: str) -> None:
        store = self._services.store
        metrics = self._services.metrics
        try:
            analysis = await to_thread.run_sync(store.mark_running, analysis_id)
        except NotFoundError:
            logger.warning("analysis vanished before it ran")
            return
        metrics.analyses_running.inc()
        watch = Stopwatch()
        fetched = {"done": 0, "total": 0}

        def on_progress(done: int, total: int) -> None:
            fetched.update(done=done, total=total)

        writer = asyncio.create_task(self._write_progress(analysis_id, fetched))
        try:
            config = CanaryConfig.from_dict(analysis.config)
            plan = AnalysisPlan.from_json(config, analysis.request)
            logger.info(
                "analysis started",
                extra={"kind": analysis.kind, "config": config.name, "attempt": analysis.attempts},
            )
            budget = self._services.settings.analysis_timeout_seconds
            saving: list[asyncio.Task[None]] = []

            def keep_series(pairs: SeriesPairs) -> None:
                # Kept for the report page's plots, made and stored on a thread while a
                # worker judges them (a day of points for a hundred metrics is a third of a
                # second of JSON).
                task = asyncio.create_task(to_thread.run_sync(
                    lambda: store.save_series(analysis_id, series_json(pairs))))
                task.add_done_callback(lambda done: done.cancelled() or done.exception())
                saving.append(task)

            report = await asyncio.wait_for(
                run_plan(plan, self._services.sources, on_progress=on_progress,
                         deadline=fetch_deadline(budget), on_pairs=keep_series,
                         judge_with=self._services.judges.judge_series),
                timeout=budget,
            )
            for task in saving:
                await task
        except asyncio.CancelledError:
            # Shutdown: leave it stored as running so the next start resumes it.
            logger.info("analysis interrupted by shutdown; it will be resumed at next start")
            raise
        except TimeoutError:
            message = (
                f"analysis did not finish within "
                f"{self._services.settings.analysis_timeout_seconds:g}s "
                "(CANARY_JUDGE_ANALYSIS_TIMEOUT_SECONDS)"
            )
            await self._fail(analysis_id, analysis.kind, message)
        except Exception as exc:
            logger.exception("analysis failed")
            await self._fail(analysis_id, analysis.kind, f"{type(exc).__name__}: {exc}")
        else:
            if report.is_error:
                # No verdict: a source failed. Status "error" with the cause (Kayenta's
                # executions then complete without a score, as Kayenta's do).
                await to_thread.run_sync(
                    store.mark_error, analysis_id, report.to_dict(), outcome_cause(report)
                )
                logger.warning("analysis has no verdict: a metric source failed",
                               extra={"error": report.reason})
            else:
                await to_thread.run_sync(store.mark_succeeded, analysis_id, report.to_dict())
            metrics.analyses_finished.labels(analysis.kind, report.verdict.value).inc()
            metrics.analysis_seconds.labels(analysis.kind).observe(watch.seconds)
            logger.info(
                "analysis finished",
                extra={
                    "verdict": report.verdict.value,
                    "score": report.score,
                    "seconds": round(watch.seconds, 3),
                },
            )
        finally:
            writer.cancel()
            metrics.analyses_running.dec()

    async def _write_progress(self, analysis_id: str, fetched: dict[str, int]) -> None:
        """Store progress every ``_PROGRESS_INTERVAL`` s while it changes (the fetch callback
        is synchronous and frequent; the database write is neither)."""
        written: dict[str, int] = {}
        while True:
            await asyncio.sleep(_PROGRESS_INTERVAL)
            if fetched != written and fetched["total"]:
                written = dict(fetched)
                detail = {"metrics_fetched": written["done"], "metrics": written["total"]}
                await to_thread.run_sync(
                    self._services.store.set_progress,
                    analysis_id,
                    # Fetching is nearly all of an analysis' time; judging is the last 5%.
                    0.95 * written["done"] / written["total"],
                    detail,
                )

    async def _fail(self, analysis_id: str, kind: str, message: str) -> None:
        await to_thread.run_sync(self._services.store.mark_failed, analysis_id, message)
        self._services.metrics.analyses_finished.labels(kind, "error").inc()
        logger.warning("analysis failed", extra={"error": message})

