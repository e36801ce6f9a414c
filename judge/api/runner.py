"""Background analyses: run stored plans on the event loop, a few at a time, and store results.

The store is the source of truth: an analysis is written (``queued``, with its config snapshot
and plan) before its id is returned, progress is written while it runs, and the report when it
ends. Several replicas may share the store, so an analysis is *claimed* before it runs
(:meth:`judge.api.store.Store.claim_analysis`): a lease in this replica's name
(``replica_id``) that holds for ``lease_seconds``. While it runs, a thread renews this
replica's leases every third of that (a thread, so a busy event loop cannot let them lapse);
an analysis whose lease was taken over meanwhile is cancelled here, and a result is only
stored by the lease's holder: no analysis is judged to the end twice.

At startup and then every third of a lease, the runner takes over what nobody works on
(:meth:`judge.api.store.Store.claim_abandoned`): analyses whose replica died (its leases
expired) or that waited queued without a lease for longer than one. They are re-run from their
stored plan (the window is fixed in the plan, so a re-run judges the same data), unless they
were interrupted ``max_resume_attempts`` times already or resuming is switched off: then they
are marked ``failed`` with the reason. Argo and Flagger analyses (synchronous: their caller's
request is gone) are marked failed. A graceful stop releases this replica's leases, so another
replica (or this one, restarted) resumes at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from functools import partial

from anyio import to_thread

from judge.api.plans import AnalysisPlan, fetch_deadline, outcome_cause, run_plan
from judge.api.service import Services
from judge.api.store import LeaseLostError, StoredAnalysis
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
        self.replica = services.settings.replica_name()
        self.lease_seconds = services.settings.lease_seconds
        self._leased: set[str] = set()
        """Analyses this replica holds a lease on (claimed, running or about to)."""
        self._scanner: asyncio.Task[None] | None = None
        self._renewer: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def active(self) -> int:
        return len(self._tasks)

    def submit(self, analysis_id: str) -> None:
        """Schedule a stored (queued) analysis (once: one already scheduled here is left)."""
        if analysis_id in self._tasks:
            return
        task = asyncio.create_task(self._run(analysis_id), name=f"analysis-{analysis_id}")
        self._tasks[analysis_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(analysis_id, None))

    async def resume_interrupted(self) -> list[str]:
        """Take over what stopped replicas left unfinished (re-run, or fail), then keep doing
        so and keep this replica's leases renewed until :meth:`stop`. The resumed ids."""
        resumed = await self.take_over()
        if self._scanner is None:
            self._scanner = asyncio.create_task(self._scan(), name="analysis-takeover")
            self._renewer = threading.Thread(
                target=self._renew, name="analysis-leases", daemon=True,
                args=(asyncio.get_running_loop(),),
            )
            self._renewer.start()
        return resumed

    async def take_over(self) -> list[str]:
        """One scan: claim abandoned analyses (as many as there are free slots) and re-run or
        fail each. The ids re-run."""
        free = self._services.settings.max_concurrent_analyses - len(self._tasks)
        claimed = await to_thread.run_sync(
            lambda: self._services.store.claim_abandoned(
                self.replica, self.lease_seconds, limit=free
            )
        )
        resumed: list[str] = []
        for analysis in claimed:
            self._leased.add(analysis.id)
            if analysis.id in self._tasks:
                continue  # queued here, waiting for a slot: now leased, so nobody else takes it
            why_not = self._not_resumed(analysis)
            if why_not is not None:
                await self._give_up(analysis, why_not)
                continue
            await to_thread.run_sync(
                self._services.store.requeue,
                analysis.id,
                f"resumed by replica {self.replica} (attempt {analysis.attempts + 1})",
            )
            self.submit(analysis.id)
            resumed.append(analysis.id)
        if resumed:
            logger.info("resumed interrupted analyses",
                        extra={"analysis_ids": resumed, "replica": self.replica})
        return resumed

    def _not_resumed(self, analysis: StoredAnalysis) -> str | None:
        """Why an abandoned analysis is failed instead of re-run (``None``: re-run it)."""
        settings = self._services.settings
        if analysis.kind in ("argo", "flagger"):
            # Their caller got an answer (or timed out) long ago; nobody will read a re-run.
            return "interrupted by a restart of the service; the caller's request had ended"
        if analysis.attempts == 0:
            return None  # never started: queued work whose replica went away, not interrupted
        if not settings.resume_interrupted:
            return ("interrupted by a restart of the service (resuming is switched off: "
                    "CANARY_JUDGE_RESUME_INTERRUPTED=false)")
        if analysis.attempts >= settings.max_resume_attempts:
            return (f"interrupted by a restart of the service after {analysis.attempts} "
                    f"attempt(s); not resumed again (CANARY_JUDGE_MAX_RESUME_ATTEMPTS="
                    f"{settings.max_resume_attempts})")
        return None

    async def _give_up(self, analysis: StoredAnalysis, reason: str) -> None:
        try:
            await to_thread.run_sync(
                lambda: self._services.store.mark_failed(analysis.id, reason, owner=self.replica)
            )
        except LeaseLostError:
            pass  # another replica took it meanwhile: it decides
        finally:
            self._leased.discard(analysis.id)

    async def _scan(self) -> None:
        """Every third of a lease: take over abandoned work (a failed scan is retried)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.take_over()
            except Exception:
                logger.exception("taking over abandoned analyses failed; retrying")

    def _renew(self, loop: asyncio.AbstractEventLoop) -> None:
        """Renew this replica's leases every third of a lease (in its own thread); cancel the
        analyses whose lease another replica took over meanwhile."""
        while not self._stopping.wait(self.lease_seconds / 3):
            leased = list(self._leased)
            try:
                held = self._services.store.renew_leases(self.replica, leased, self.lease_seconds)
            except Exception:
                logger.exception("renewing leases failed; retrying")
                continue
            for lost in set(leased) - held:
                if lost not in self._leased:
                    continue  # finished meanwhile: its lease was released, not lost
                self._leased.discard(lost)
                task = self._tasks.get(lost)
                if task is not None:
                    logger.warning("lease lost: another replica took the analysis over",
                                   extra={"analysis_id": lost, "replica": self.replica})
                    loop.call_soon_threadsafe(task.cancel)

    async def stop(self) -> None:
        """Cancel running analyses and release their leases: they stay stored as running, and
        another replica (or this one, at its next start) resumes them at once."""
        self._stopping.set()
        if self._scanner is not None:
            self._scanner.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._scanner is not None:
            await asyncio.gather(self._scanner, return_exceptions=True)
        try:
            await to_thread.run_sync(self._services.store.release_leases, self.replica)
        except Exception:
            logger.exception("releasing leases at shutdown failed; they expire by themselves")

    async def _run(self, analysis_id: str) -> None:
        with analysis_context(analysis_id):
            async with self._slots:
                await self._run_now(analysis_id)

    async def _run_now(self, analysis_id: str) -> None:
        store = self._services.store
        metrics = self._services.metrics
        owner = self.replica
        try:
            claimed = await to_thread.run_sync(
                store.claim_analysis, analysis_id, owner, self.lease_seconds
            )
        except NotFoundError:
            logger.warning("analysis vanished before it ran")
            return
        if claimed is None:
            logger.info("analysis is run by another replica")
            return
        analysis = claimed
        self._leased.add(analysis_id)
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
            # Shutdown (or a lease lost): leave it stored as running; whoever holds it next
            # resumes it.
            logger.info("analysis interrupted; it will be resumed")
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
            try:
                if report.is_error:
                    # No verdict: a source failed. Status "error" with the cause (Kayenta's
                    # executions then complete without a score, as Kayenta's do).
                    await to_thread.run_sync(lambda: store.mark_error(
                        analysis_id, report.to_dict(), outcome_cause(report), owner=owner
                    ))
                    logger.warning("analysis has no verdict: a metric source failed",
                                   extra={"error": report.reason})
                else:
                    await to_thread.run_sync(lambda: store.mark_succeeded(
                        analysis_id, report.to_dict(), owner=owner
                    ))
            except LeaseLostError as exc:
                logger.warning("%s", exc)  # another replica has it: its result counts
                return
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
            self._leased.discard(analysis_id)

    async def _write_progress(self, analysis_id: str, fetched: dict[str, int]) -> None:
        """Store progress every ``_PROGRESS_INTERVAL`` s while it changes (the fetch callback
        is synchronous and frequent; the database write is neither)."""
        written: dict[str, int] = {}
        while True:
            await asyncio.sleep(_PROGRESS_INTERVAL)
            if fetched != written and fetched["total"]:
                written = dict(fetched)
                detail = {"metrics_fetched": written["done"], "metrics": written["total"]}
                # Fetching is nearly all of an analysis' time; judging is the last 5%.
                progress = 0.95 * written["done"] / written["total"]
                await to_thread.run_sync(partial(
                    self._services.store.set_progress, analysis_id, progress, detail,
                    owner=self.replica,
                ))

    async def _fail(self, analysis_id: str, kind: str, message: str) -> None:
        try:
            await to_thread.run_sync(lambda: self._services.store.mark_failed(
                analysis_id, message, owner=self.replica
            ))
        except LeaseLostError as exc:
            logger.warning("%s", exc)
            return
        self._services.metrics.analyses_finished.labels(kind, "error").inc()
        logger.warning("analysis failed", extra={"error": message})

