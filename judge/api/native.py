"""The native API (``/v1``): judge inline data, store configs, run analyses in the background."""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response, status
from starlette.convertors import PathConvertor, register_url_convertor

from judge.api.deps import RunnerDep, ServicesDep, StoreDep
from judge.api.links import analysis_url, run_url
from judge.api.plans import (
    CONFIG_BODY,
    AnalysisPlan,
    BadRequestError,
    check_plan,
    config_document,
    kayenta_document,
    make_scope,
    parse_config_document,
    resolve_config,
    stored_fields,
    window,
)
from judge.api.runs import sequential_out
from judge.api.schemas import (
    AnalysisOut,
    AnalysisRequest,
    AnalysisSummaryOut,
    ConfigOut,
    ConfigSummaryOut,
    ConfigVersionsOut,
    ErrorOut,
    JudgeRequest,
    ReportOut,
    RunOut,
    RunPollRequest,
    ScopeIn,
)
from judge.api.service import Services
from judge.api.store import AnalysisStatus, StoredAnalysis, StoredConfig, StoredRun
from judge.config import CanaryConfig, ScoreThresholds
from judge.ports import ScopePair

router = APIRouter(prefix="/v1", tags=["native"])


class RunIdConvertor(PathConvertor):
    """A run id in a path: any text, slashes included (Flagger's are
    ``namespace/name/checksum``), except one ending in ``/poll``. ``/v1/runs/x/poll`` is then the
    poll of run ``x`` and nothing else (not also the run ``x/poll`` to GET or DELETE), so a 405
    there names the one method it takes, and the document's paths do not overlap."""

    regex = r"(?!.*/poll$).+"


POLL_SUFFIX = "/poll"

# Starlette's convertors are one registry; the routes below are compiled with this one when
# this module is imported (a name, not a connection or a setting).
register_url_convertor("run_id", RunIdConvertor())

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    404: {"model": ErrorOut},
}



def _thresholds(raw: Any) -> ScoreThresholds | None:
    if raw is None:
        return None
    return ScoreThresholds.of(raw.pass_, raw.marginal)


# -- judge ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=128)
def _inline_config(document_json: str) -> tuple[CanaryConfig, str]:
    """An inline config read once: a caller sends the same config with every request, and
    reading it is most of what a small judgment costs besides the judging. Also its native
    JSON, which the judging worker reads (:func:`judge.api.workers.config_of`)."""
    config, _ = parse_config_document(json.loads(document_json))
    return config, json.dumps(config.to_dict(), sort_keys=True)


@router.post("/judge", response_model=ReportOut, responses=_ERRORS)
async def judge_inline(body: JudgeRequest, request: Request) -> Response:
    """Judge baseline and canary data given inline (one list of numbers per metric)."""
    services: Services = request.app.state.services
    if body.config is not None:
        config, native_json = _inline_config(json.dumps(body.config, sort_keys=True))
    else:
        # A stored config: the database is blocking I/O, kept off the event loop.
        config, _ = await to_thread.run_sync(
            lambda: resolve_config(
                services.store, inline=None, config_ref=body.config_id,
                version=body.config_version,
            )
        )
        native_json = json.dumps(config.to_dict(), sort_keys=True)
    # A misspelt name would otherwise just leave its metric without data: say so instead.
    known = {metric.column for metric in config.metrics}
    for side, series in (("baseline", body.baseline), ("canary", body.canary)):
        unknown = sorted(set(series) - known)
        if unknown:
            raise BadRequestError(
                f"{side}: {unknown} match no metric of config {config.name!r} "
                f"(it reads: {sorted(known)})",
                side,
            )
    services.metrics.analyses_started.labels("judge").inc()
    thresholds = (
        None if body.thresholds is None
        else (body.thresholds.pass_, body.thresholds.marginal)
    )
    # Judged in a worker process (judge_workers), so this event loop keeps serving.
    judged = await services.judges.judge(native_json, body.baseline, body.canary, thresholds)
    services.metrics.judge_seconds.labels("judge").observe(judged.seconds)
    services.metrics.analyses_finished.labels("judge", judged.verdict).inc()
    # The worker serialised Report.to_dict() (already JSON-ready); validating it again
    # against ReportOut (which documents it) would cost more than the HTTP layer itself.
    return Response(judged.body, media_type="application/json")


# -- configs -------------------------------------------------------------------------------------
def _config_out(stored: StoredConfig) -> ConfigOut:
    return ConfigOut(
        id=stored.id,
        name=stored.name,
        version=stored.version,
        applications=list(stored.applications),
        format=stored.original_format,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        config=stored.native,
    )


@router.post(
    "/configs",
    response_model=ConfigOut,
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    openapi_extra=CONFIG_BODY,
)
async def create_config(request: Request, store: StoreDep) -> ConfigOut:
    """Store a config (native or Kayenta JSON, or YAML); it gets an id and version 1."""
    document = await config_document(request)
    _config, fields = stored_fields(document)
    stored = await to_thread.run_sync(
        lambda: store.create_config(**fields)
    )
    return _config_out(stored)


@router.get("/configs", response_model=list[ConfigSummaryOut])
def list_configs(
    store: StoreDep, application: str | None = Query(default=None)
) -> list[ConfigSummaryOut]:
    """Stored configs (latest versions), optionally of one application."""
    return [
        ConfigSummaryOut(
            id=c.id,
            name=c.name,
            version=c.version,
            applications=list(c.applications),
            format=c.original_format,
            updated_at=c.updated_at,
        )
        for c in store.list_configs(application)
    ]


@router.get("/configs/{config_id}", response_model=ConfigOut, responses=_ERRORS)
def get_config(
    config_id: str, store: StoreDep, version: int | None = Query(default=None, ge=1)
) -> ConfigOut:
    """A stored config by id or name (latest version, or ``?version=N``)."""
    stored = store.find_config(config_id)
    if version is not None:
        stored = store.get_config(stored.id, version)
    return _config_out(stored)


@router.get("/configs/{config_id}/versions", response_model=ConfigVersionsOut, responses=_ERRORS)
def config_versions(config_id: str, store: StoreDep) -> ConfigVersionsOut:
    stored = store.find_config(config_id)
    return ConfigVersionsOut(id=stored.id, versions=store.config_versions(stored.id))


@router.get("/configs/{config_id}/kayenta", response_model=dict[str, Any], responses=_ERRORS)
def export_kayenta(config_id: str, store: StoreDep) -> dict[str, Any]:
    """The config as Kayenta JSON (as sent, when it was sent as Kayenta JSON)."""
    return kayenta_document(store.find_config(config_id))


@router.put(
    "/configs/{config_id}", response_model=ConfigOut, responses=_ERRORS, openapi_extra=CONFIG_BODY
)
async def update_config(config_id: str, request: Request, store: StoreDep) -> ConfigOut:
    """Store a new version of a config (earlier versions stay readable)."""
    document = await config_document(request)
    _config, fields = stored_fields(document)
    existing = await to_thread.run_sync(store.find_config, config_id)
    stored = await to_thread.run_sync(
        lambda: store.update_config(existing.id, **fields)
    )
    return _config_out(stored)


@router.delete(
    "/configs/{config_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_ERRORS,
)
def delete_config(config_id: str, store: StoreDep) -> Response:
    store.delete_config(store.find_config(config_id).id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- analyses ------------------------------------------------------------------------------------
def analysis_out(analysis: StoredAnalysis, report_url: str | None = None) -> AnalysisOut:
    return AnalysisOut(
        report_url=report_url,
        id=analysis.id,
        kind=analysis.kind,
        status=analysis.status.value,
        progress=analysis.progress,
        progress_detail=analysis.progress_detail,
        config_id=analysis.config_id,
        config_version=analysis.config_version,
        config_name=analysis.config.get("name"),
        attempts=analysis.attempts,
        error=analysis.error,
        report=analysis.report,
        created_at=analysis.created_at,
        started_at=analysis.started_at,
        finished_at=analysis.finished_at,
    )


def _scope(raw: ScopeIn, field_name: str) -> Any:
    return make_scope(
        raw.scope,
        location=raw.location,
        start=raw.start,
        end=raw.end,
        step_seconds=raw.step,
        params=raw.params,
        field_name=field_name,
    )


async def _analysis_plan(
    body: AnalysisRequest, services: Services
) -> tuple[AnalysisPlan, StoredConfig | None]:
    """The checked plan of an analysis (or sequential poll) request, and its stored config."""
    config, stored = await to_thread.run_sync(
        lambda: resolve_config(
            services.store,
            inline=body.config,
            config_ref=body.config_id,
            version=body.config_version,
        )
    )
    start, end = window(
        lookback=body.lookback,
        start=body.start,
        end=body.end,
        default_lookback=services.settings.default_lookback,
        now=services.clock(),
    )
    if body.scopes is not None:
        scopes = {
            name: ScopePair(
                baseline=_scope(pair.baseline, f"scopes.{name}.baseline"),
                canary=_scope(pair.canary, f"scopes.{name}.canary"),
            )
            for name, pair in body.scopes.items()
        }
    else:
        assert body.baseline is not None and body.canary is not None  # checked by the schema
        scopes = {
            "default": ScopePair(
                baseline=_scope(body.baseline, "baseline"), canary=_scope(body.canary, "canary")
            )
        }
    plan = AnalysisPlan(
        config=config,
        scopes=scopes,
        start=start,
        end=end,
        step=timedelta(seconds=body.step or services.settings.default_step_seconds),
        source=body.source,
        thresholds=_thresholds(body.thresholds),
    )
    check_plan(plan, services.settings, services.sources)
    return plan, stored


@router.post(
    "/analyses",
    response_model=AnalysisOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_ERRORS,
)
async def start_analysis(
    body: AnalysisRequest, services: ServicesDep, runner: RunnerDep, request: Request
) -> AnalysisOut:
    """Start an analysis in the background; poll ``GET /v1/analyses/{id}`` for its report."""
    plan, stored = await _analysis_plan(body, services)
    analysis = await to_thread.run_sync(
        lambda: services.store.create_analysis(
            kind="native",
            config=plan.config.to_dict(),
            request=plan.to_json(),
            config_id=stored.id if stored else None,
            config_version=stored.version if stored else None,
        )
    )
    services.metrics.analyses_started.labels("native").inc()
    runner.submit(analysis.id)
    return analysis_out(analysis, analysis_url(request, analysis.id))


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut, responses=_ERRORS)
def get_analysis(analysis_id: str, store: StoreDep, request: Request) -> AnalysisOut:
    """An analysis: status (queued, running, succeeded, failed), progress, and its report."""
    analysis = store.get_analysis(analysis_id)
    return analysis_out(analysis, analysis_url(request, analysis.id))


@router.get("/analyses", response_model=list[AnalysisSummaryOut])
def list_analyses(
    store: StoreDep,
    request: Request,
    limit: int = Query(default=50, ge=1, le=1000),
    status_filter: AnalysisStatus | None = Query(default=None, alias="status"),
) -> list[AnalysisSummaryOut]:
    """Recent analyses, newest first."""
    return [
        AnalysisSummaryOut(
            id=a.id,
            kind=a.kind,
            status=a.status.value,
            progress=a.progress,
            config_name=a.config.get("name"),
            verdict=a.report.get("verdict") if a.report else None,
            score=a.report.get("score") if a.report else None,
            created_at=a.created_at,
            finished_at=a.finished_at,
            report_url=analysis_url(request, a.id),
        )
        for a in store.list_analyses(limit=limit, status=status_filter)
    ]


# -- sequential runs ---------------------------------------------------------------------------
def run_out(
    run: StoredRun, *, with_report: bool = True, report_url: str | None = None
) -> RunOut:
    return RunOut(
        report_url=report_url,
        run_id=run.run_id,
        kind=run.kind,
        status=run.status,
        calls=run.calls,
        config_name=run.config.get("name"),
        config_id=run.config_id,
        config_version=run.config_version,
        window_start=run.window_start,
        last_point=run.last_end,
        created_at=run.created_at,
        updated_at=run.updated_at,
        sequential=sequential_out(run.report) if run.report else None,
        report=run.report if with_report else None,
    )


@router.post("/runs/{run_id:path}/poll", response_model=RunOut, responses=_ERRORS)
async def poll_run(
    run_id: str, body: RunPollRequest, services: ServicesDep, request: Request
) -> RunOut:
    """One poll of a sequential run: judge the points since the previous poll (anytime-valid),
    store the run's state, and answer where it stands (``status``: continue, pass, fail,
    inconclusive) with the report."""
    if run_id.endswith(POLL_SUFFIX):  # could never be read back (see RunIdConvertor)
        raise BadRequestError(f"run id {run_id!r}: must not end in {POLL_SUFFIX!r}", "run_id")
    plan, stored = await _analysis_plan(body, services)
    result = await services.runs.poll(run_id, plan, kind="native", final=body.final,
                                     stored_config=stored)
    return run_out(result.run, report_url=run_url(request, run_id))


@router.get("/runs/{run_id:run_id}", response_model=RunOut, responses=_ERRORS)
def get_run(run_id: str, store: StoreDep, request: Request) -> RunOut:
    """A sequential run as stored: status, calls, last judged point, last report. Run ids may
    contain ``/`` (Flagger's are ``namespace/name/checksum``)."""
    return run_out(store.get_run(run_id), report_url=run_url(request, run_id))


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    store: StoreDep, request: Request, limit: int = Query(default=50, ge=1, le=1000)
) -> list[RunOut]:
    """Recent sequential runs (most recently polled first), without their reports."""
    return [run_out(run, with_report=False, report_url=run_url(request, run.run_id))
            for run in store.list_runs(limit=limit)]


@router.delete("/runs/{run_id:run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def delete_run(run_id: str, store: StoreDep) -> Response:
    """Forget a run (its next poll starts a new one)."""
    store.delete_run(run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
