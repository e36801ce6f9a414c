"""Sequential (polled) runs: a controller polls every minute for one rollout; each poll judges
only the points that arrived since the last one, and the run's state lives in the store.

The library's sequential use-case (:func:`judge.analysis.poll_async`: fetch the new points,
judge them with the run's :class:`~judge.judges.state.SequentialState`) does the work; this
module keeps the runs in the store:

- the first poll of a run id snapshots the config (a config edited mid-run does not change the
  test) and fetches from the request's window start (``start``, else ``end - lookback``);
- every later poll fetches from the last judged point to ``end`` (now, unless given), drops the
  points it judged before (:func:`judge.fetching.new_points`: none counted twice, however the
  polls and windows overlap), judges the new ones and stores the new state with a
  compare-and-set on the call count, so two polls of one run at once cannot both count;
- polls are idempotent by window end: a poll whose window ends no later than the stored
  answer's (``poll_end``; and is not final when that one was not) gets the stored answer back,
  with no fetch and no points added, unless that answer had a failed fetch (then it is
  retried). Polls of one run from several replicas take turns under a lease on the run
  (:meth:`judge.api.store.Store.claim_run`); the one that waited finds the answer stored and
  gives it, so both callers get the same answer. Two first polls at once both judge, one is
  stored, and the other answers what was stored;
- a restart loses nothing: the next poll reads the stored state and carries on.

A metric whose fetch fails adds no points: the run never passes because of it, a ``final`` poll
with a failed fetch is not treated as final (the run would otherwise pass metrics it never
saw), and an undecided run answers status ``error`` when the source failed
(:func:`judge.analysis.poll_outcome`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from judge.analysis import SequentialStatus, poll_async
from judge.api.plans import (
    AnalysisPlan,
    BadRequestError,
    fetch_deadline,
    plan_scopes,
    routed_sources,
)
from judge.api.schemas import SequentialOut
from judge.api.sources import SourceRegistry
from judge.api.store import RunPoll, Store, StoredConfig, StoredRun
from judge.api.telemetry import ServiceMetrics, Stopwatch, analysis_context
from judge.config import CanaryConfig, JudgeMode
from judge.errors import ConflictError, NotFoundError
from judge.judges.state import SequentialState
from judge.pages.views import poll_summary
from judge.report import Report

logger = logging.getLogger(__name__)

_LEASE_RETRY_SECONDS = 0.05
"""How often a poll waiting for another replica's poll of the same run asks again."""

@dataclass(frozen=True)
class PollResult:
    """One poll's report (``details.sequential`` says the status) and the run as stored."""

    report: Report
    run: StoredRun
    new_points: int




class RunKeeper:
    """Polls of sequential runs for one app (one lock per run id within the process; the
    store's compare-and-set guards runs shared by several processes)."""

    def __init__(
        self,
        store: Store,
        sources: SourceRegistry,
        metrics: ServiceMetrics,
        *,
        timeout: float,
        replica: str = "local",
        lease_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.sources = sources
        self.metrics = metrics
        self.timeout = timeout
        self.replica = replica
        self.lease_seconds = timeout + lease_seconds
        """A poll's lease on its run outlasts the poll's budget: it is never renewed."""
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Per run id: its lock and how many polls hold or wait for it (dropped at zero, so
        the map does not grow with every run ever polled)."""

    async def poll(
        self,
        run_id: str,
        plan: AnalysisPlan,
        *,
        kind: str,
        final: bool = False,
        stored_config: StoredConfig | None = None,
    ) -> PollResult:
        """Judge the points of ``run_id`` that arrived up to ``plan.end``; see module doc.

        Within ``timeout`` seconds, else ``TimeoutError``: nothing of that poll is stored
        unless it had already been saved, so the next poll judges the same points (none lost).
        """
        if not run_id.strip() or len(run_id) > 255:
            raise BadRequestError("run_id: give 1 to 255 characters", "run_id")
        self.metrics.analyses_started.labels(kind).inc()
        watch = Stopwatch()
        with analysis_context(f"run:{run_id}"):
            try:
                result = await asyncio.wait_for(
                    self._serialised(run_id, plan, kind, final, stored_config), self.timeout
                )
            except TimeoutError:
                self.metrics.analyses_finished.labels(kind, "error").inc()
                raise TimeoutError(
                    f"poll of run {run_id!r} did not finish within {self.timeout:g}s "
                    "(CANARY_JUDGE_SYNC_TIMEOUT_SECONDS)"
                ) from None
            except Exception:
                self.metrics.analyses_finished.labels(kind, "error").inc()
                raise
            self.metrics.analysis_seconds.labels(kind).observe(watch.seconds)
            self.metrics.analyses_finished.labels(kind, result.report.verdict.value).inc()
            logger.info(
                "sequential poll finished",
                extra={"kind": kind, "run_id": run_id, "status": result.run.status,
                       "calls": result.run.calls, "new_points": result.new_points},
            )
        return result

    async def _serialised(
        self,
        run_id: str,
        plan: AnalysisPlan,
        kind: str,
        final: bool,
        stored_config: StoredConfig | None,
    ) -> PollResult:
        """One poll at a time per run id in this process."""
        lock, users = self._locks.get(run_id, (asyncio.Lock(), 0))
        self._locks[run_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._poll(run_id, plan, kind, final, stored_config)
        finally:
            lock, users = self._locks[run_id]
            if users <= 1:
                del self._locks[run_id]
            else:
                self._locks[run_id] = (lock, users - 1)

    async def _poll(
        self,
        run_id: str,
        plan: AnalysisPlan,
        kind: str,
        final: bool,
        stored_config: StoredConfig | None,
    ) -> PollResult:
        previous = await self._stored(run_id)
        if (answer := _stored_answer(previous, plan.end, final)) is not None:
            return answer
        leased = previous is not None
        if leased:
            await self._lease(run_id)
            previous = await self._stored(run_id)  # as the poll before this one left it
            if (answer := _stored_answer(previous, plan.end, final)) is not None:
                await asyncio.to_thread(self.store.release_run, run_id, self.replica)
                return answer
        try:
            return await self._judge(run_id, plan, kind, final, stored_config, previous)
        except ConflictError:
            # Another replica's poll of the same run was stored first: its answer, if it
            # covers this window, is this poll's too.
            answer = _stored_answer(await self._stored(run_id), plan.end, final)
            if answer is not None:
                return answer
            raise
        finally:
            if leased:  # saved polls released it already; this covers the rest
                await asyncio.to_thread(self.store.release_run, run_id, self.replica)

    async def _stored(self, run_id: str) -> StoredRun | None:
        try:
            return await asyncio.to_thread(self.store.get_run, run_id)
        except NotFoundError:
            return None

    async def _lease(self, run_id: str) -> None:
        """Wait until this replica holds the run's lease (the caller's timeout bounds it)."""
        while not await asyncio.to_thread(
            self.store.claim_run, run_id, self.replica, self.lease_seconds
        ):
            await asyncio.sleep(_LEASE_RETRY_SECONDS)

    async def _judge(
        self,
        run_id: str,
        plan: AnalysisPlan,
        kind: str,
        final: bool,
        stored_config: StoredConfig | None,
        previous: StoredRun | None,
    ) -> PollResult:
        if previous is None:
            config = plan.config
            if config.mode is not JudgeMode.DEFAULT:
                raise BadRequestError(
                    f"config {config.name!r} uses the {config.mode.value!r} judge; sequential "
                    "runs need the default judge (mode: default)",
                    "config",
                )
            state = SequentialState.new(run_id, config.name, now=plan.end.isoformat())
            window_start, after = plan.start, None
        else:
            config = CanaryConfig.from_dict(previous.config)
            if plan.config.name != config.name:
                raise BadRequestError(
                    f"run {run_id!r} judges config {config.name!r}, not {plan.config.name!r}; "
                    "use a new run id for another config",
                    "config",
                )
            state = SequentialState.from_json(previous.state)
            window_start = previous.window_start
            after = previous.last_end
        outcome = await poll_async(
            config, routed_sources(plan, self.sources), plan_scopes(plan), state,
            start=window_start, end=plan.end, step=plan.step, after=after, final=final,
            deadline=fetch_deadline(self.timeout),
        )
        sequential: dict[str, Any] = dict(outcome.report.details["sequential"])
        sequential.update({"run_id": run_id, "window_start": window_start.isoformat()})
        report = replace(outcome.report,
                         details={**outcome.report.details, "sequential": sequential})
        last = outcome.last
        run = StoredRun(
            run_id=run_id,
            kind=kind,
            config_id=(previous.config_id if previous else
                       stored_config.id if stored_config else None),
            config_version=(previous.config_version if previous else
                            stored_config.version if stored_config else None),
            config=previous.config if previous else config.to_dict(),
            request=plan.to_json(),
            state=outcome.state.to_json(),
            status=outcome.status.value,
            calls=(previous.calls if previous else 0) + 1,
            window_start=window_start,
            last_end=last,
            report=report.to_dict(),
            created_at=previous.created_at if previous else datetime.now(UTC),
            updated_at=datetime.now(UTC),
            poll_end=plan.end,
            poll_final=final,
        )
        saved = await asyncio.to_thread(
            lambda: self.store.save_run(run, previous_calls=previous.calls if previous else 0)
        )
        # The evidence over the polls, for the run's report page.
        await asyncio.to_thread(self.store.add_run_poll, RunPoll(
            run_id=run_id, call=saved.calls, status=saved.status, last_end=saved.last_end,
            metrics=poll_summary(run.report or {}), created_at=saved.updated_at,
            poll_end=plan.end, poll_final=final,
        ))
        return PollResult(report=report, run=saved, new_points=outcome.new_points)



def _answered(run: StoredRun | None, end: datetime, final: bool) -> bool:
    """Whether ``run``'s stored answer is the answer to a poll up to ``end``: it covers the
    window (:meth:`StoredRun.answers`) and no fetch of it failed (a failed fetch added no
    points; asking again retries it)."""
    if run is None or not run.answers(end, final):
        return False
    sequential = dict((run.report or {}).get("details") or {}).get("sequential") or {}
    return not sequential.get("fetch_errors")


def _stored_answer(run: StoredRun | None, end: datetime, final: bool) -> PollResult | None:
    """The stored answer given again when it answers a poll up to ``end`` (nothing fetched,
    no points added); ``None`` when the poll has to judge."""
    if run is None or not _answered(run, end, final):
        return None
    return PollResult(report=Report.from_dict(run.report or {}), run=run, new_points=0)


def sequential_out(report: Report | Mapping[str, Any]) -> SequentialOut | None:
    """The ``sequential`` part of an answer, from a poll's report or its stored ``to_dict()``
    (``None`` for reports of other judgments)."""
    if isinstance(report, Report):
        raw = report.details.get("sequential")
        points = [int(m.details.get("points", 0)) for m in report.metrics]
    else:
        raw = dict(report.get("details") or {}).get("sequential")
        points = [int(dict(m.get("details") or {}).get("points", 0))
                  for m in report.get("metrics") or ()]
    if not isinstance(raw, dict) or "run_id" not in raw:
        return None
    return SequentialOut(
        run_id=str(raw["run_id"]),
        status=SequentialStatus(raw.get("status", "continue")),
        calls=int(raw.get("calls", 0)),
        new_points=int(raw.get("new_points", 0)),
        points=max(points, default=0),
        level=raw.get("level"),
        last_point=raw.get("last_point"),
        fetch_errors=dict(raw.get("fetch_errors") or {}),
    )
