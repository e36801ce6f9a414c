"""A Kayenta-compatible API, so Argo Rollouts' ``kayenta`` provider and Spinnaker work unchanged.

Shapes follow spinnaker/kayenta (``kayenta-core``: ``CanaryExecutionRequest``, ``CanaryScope``,
``CanaryExecutionStatusResponse``, ``CanaryResult``, ``CanaryJudgeResult``,
``CanaryAnalysisResult``, ``CanaryJudgeGroupScore``) and what Argo's provider reads
(``metricproviders/kayenta/kayenta.go``): it lists ``GET /canaryConfig`` and picks a config by
``name``; ``POST /canary/{configId}`` must answer 200 with ``canaryExecutionId`` within 15 s;
it then polls ``GET /canary/{id}`` every 15 s until ``complete`` and reads
``result.judgeResult.score.score``.

Executions are analyses of kind ``kayenta`` in the same store, run by the same background
runner; their ids are the execution ids. Errors answer in Spring Boot's error shape
(``{timestamp, status, error, message, path}``), as Kayenta does.

When a metric source fails (down, timed out, refused the query, no series at all for a scope)
the analysis ends with status ``error`` and no verdict, and its execution completes as
Kayenta's does when a fetch fails: ``complete: true``, ``status: "terminal"``, an
``exception`` naming each failed source, query and failure, and **no** ``result`` (so no
score): Argo's kayenta provider then records an Error measurement ("Missing Score").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.convertors import StringConvertor, register_url_convertor

from judge.api.deps import RunnerDep, ServicesDep, StoreDep
from judge.api.links import analysis_url
from judge.api.plans import (
    CONFIG_BODY,
    AnalysisPlan,
    BadRequestError,
    check_plan,
    config_document,
    kayenta_document,
    make_scope,
    millis,
    parse_config_document,
    stored_fields,
)
from judge.api.schemas import MAX_STEP_SECONDS, series_values
from judge.api.service import Services
from judge.api.store import AnalysisStatus, StoredAnalysis, StoredConfig
from judge.api.telemetry import Stopwatch
from judge.config import CanaryConfig, MetricConfig, ScoreThresholds
from judge.config.kayenta import KAYENTA_JUDGE_NAME, config_to_kayenta
from judge.errors import ConfigError
from judge.ports import ScopePair
from judge.report import Classification, Report

router = APIRouter(tags=["kayenta"])

_CLASSIFICATION = {
    Classification.PASS: "Pass",
    Classification.HIGH: "High",
    Classification.LOW: "Low",
    Classification.NODATA: "Nodata",
    Classification.NODATA_FAIL: "NodataFailMetric",
    Classification.ERROR: "Error",
}
"""Our classifications in Kayenta's words (``MetricClassificationLabel``)."""

_VERDICT = {"pass": "Pass", "marginal": "Marginal", "fail": "Fail"}
"""Kayenta's ``ScoreClassificationLabel`` for our verdicts."""


# -- wire models (lenient: Kayenta clients send fields we do not use) -------------------------
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _window_required(schema: dict[str, Any]) -> None:
    # An execution needs each scope's window; the model lets "" through (as "not given", see
    # _unset) so the route can name the scope that lacks one, and the schema says it plainly.
    for name in ("start", "end"):
        schema["properties"][name] = {"type": "string", "format": "date-time"}
        schema.setdefault("required", []).append(name)


class CanaryScopeIn(_Lenient):
    """Kayenta's ``CanaryScope``: ``location`` (current Kayenta; Argo's provider sends its
    template's ``region`` under this name) or ``region`` (older Kayenta clients)."""

    model_config = ConfigDict(json_schema_extra=_window_required)

    scope: str = Field(min_length=1)
    location: str | None = None
    region: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    step: int | None = Field(default=None, gt=0, le=MAX_STEP_SECONDS, description="seconds")
    extended_scope_params: dict[str, str] | None = Field(
        default=None, alias="extendedScopeParams"
    )

    @field_validator("location", "region", "start", "end", "step", mode="before")
    @classmethod
    def _unset(cls, raw: Any) -> Any:
        # Argo's provider marshals a Go struct: fields left out of the template arrive as ""
        # (strings) or 0 (step). They mean "not given", not "invalid".
        return None if raw in ("", 0) else raw

    @field_validator("extended_scope_params", mode="before")
    @classmethod
    def _stringify(cls, raw: Any) -> Any:
        # Spinnaker sends numbers and booleans as JSON scalars in this string map.
        if isinstance(raw, dict):
            return {str(k): v if isinstance(v, str) else str(v) for k, v in raw.items()}
        return raw


class CanaryScopePairIn(_Lenient):
    control_scope: CanaryScopeIn = Field(alias="controlScope")
    experiment_scope: CanaryScopeIn = Field(alias="experimentScope")


class ThresholdsKayentaIn(_Lenient):
    pass_: float = Field(alias="pass", ge=0, le=100)
    marginal: float = Field(ge=0, le=100)


class CanaryExecutionRequestIn(_Lenient):
    scopes: dict[str, CanaryScopePairIn] = Field(min_length=1)
    thresholds: ThresholdsKayentaIn | None = None
    metadata: list[dict[str, Any]] | None = None
    site_local: dict[str, Any] | None = Field(default=None, alias="siteLocal")


class CanaryAdhocExecutionRequestIn(_Lenient):
    canary_config: dict[str, Any] = Field(alias="canaryConfig")
    execution_request: CanaryExecutionRequestIn = Field(alias="executionRequest")


class CanaryExecutionResponseOut(BaseModel):
    canaryExecutionId: str  # noqa: N815 - Kayenta's field name
    report_url: str | None = Field(
        default=None, description="the execution's report page (not Kayenta's; its clients "
        "ignore fields they do not know)"
    )


class CanaryConfigUpdateResponseOut(BaseModel):
    canaryConfigId: str  # noqa: N815 - Kayenta's field name


class CanaryConfigSummaryOut(BaseModel):
    id: str
    name: str
    updatedTimestamp: int  # noqa: N815
    updatedTimestampIso: str  # noqa: N815
    applications: list[str]


class MetricSetPairIn(_Lenient):
    name: str = Field(min_length=1)
    id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    values: dict[str, list[float]]
    scopes: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _nan_tolerant(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("expected {control: [...], experiment: [...]}")
        for side in ("control", "experiment"):
            if side not in raw:
                raise ValueError(f"'{side}' values are missing")
        return {str(k): series_values(v) for k, v in raw.items()}

    @field_validator("tags", mode="before")
    @classmethod
    def _string_tags(cls, raw: Any) -> Any:
        if raw is None:
            return {}
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return raw


class RemoteJudgeRequestIn(_Lenient):
    canary_config: dict[str, Any] = Field(alias="canaryConfig")
    metric_set_pair_list: list[MetricSetPairIn] = Field(alias="metricSetPairList")
    score_thresholds: ThresholdsKayentaIn | None = Field(default=None, alias="scoreThresholds")


# -- errors ------------------------------------------------------------------------------------
KAYENTA_PATH_PREFIXES = ("/canaryConfig", "/canary", "/judge")


def is_kayenta_path(path: str) -> bool:
    return path == "/judge" or any(
        path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?")
        for prefix in KAYENTA_PATH_PREFIXES[:2]
    )


def spring_error(status_code: int, message: str, path: str) -> dict[str, Any]:
    """Spring Boot's default error body, which Kayenta clients know how to show."""
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
               422: "Unprocessable Entity", 500: "Internal Server Error",
               503: "Service Unavailable", 504: "Gateway Timeout"}
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "status": status_code,
        "error": reasons.get(status_code, "Error"),
        "message": message,
        "path": path,
    }


# -- configs -------------------------------------------------------------------------------------
@router.get("/canaryConfig", response_model=list[CanaryConfigSummaryOut])
def list_canary_configs(
    store: StoreDep,
    application: str | None = Query(default=None),
    configuration_account_name: str | None = Query(default=None, alias="configurationAccountName"),
) -> list[CanaryConfigSummaryOut]:
    """Kayenta's config listing; Argo's provider picks the entry whose ``name`` matches."""
    return [
        CanaryConfigSummaryOut(
            id=c.id,
            name=c.name,
            updatedTimestamp=millis(c.updated_at),
            updatedTimestampIso=c.updated_at.isoformat(),
            applications=list(c.applications),
        )
        for c in store.list_configs(application)
    ]


@router.get("/canaryConfig/{config_id}", response_model=dict[str, Any])
def get_canary_config(config_id: str, store: StoreDep) -> dict[str, Any]:
    return kayenta_document(store.get_config(config_id))


@router.post("/canaryConfig", response_model=CanaryConfigUpdateResponseOut,
             openapi_extra=CONFIG_BODY)
async def create_canary_config(request: Request, store: StoreDep) -> CanaryConfigUpdateResponseOut:
    """Store a config (Kayenta JSON; native accepted too). Names must be unique per
    application, as Kayenta requires."""
    document = await config_document(request)
    config, fields = stored_fields(document)
    for other in await to_thread.run_sync(store.list_configs, None):
        shared = not other.applications or not config.applications or (
            set(other.applications) & set(config.applications)
        )
        if other.name == config.name and shared:
            raise BadRequestError(
                f"Canary config with name '{config.name}' already exists in the scope of "
                f"applications {sorted(other.applications)} (id {other.id}); use PUT to update",
                "name",
            )
    stored = await to_thread.run_sync(
        lambda: store.create_config(**fields)
    )
    return CanaryConfigUpdateResponseOut(canaryConfigId=stored.id)


@router.put("/canaryConfig/{config_id}", response_model=CanaryConfigUpdateResponseOut,
            openapi_extra=CONFIG_BODY)
async def update_canary_config(
    config_id: str, request: Request, store: StoreDep
) -> CanaryConfigUpdateResponseOut:
    document = await config_document(request)
    _config, fields = stored_fields(document)
    stored = await to_thread.run_sync(
        lambda: store.update_config(config_id, **fields)
    )
    return CanaryConfigUpdateResponseOut(canaryConfigId=stored.id)


@router.delete(
    "/canaryConfig/{config_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_canary_config(config_id: str, store: StoreDep) -> Response:
    store.delete_config(config_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- executions ----------------------------------------------------------------------------------
def _plan(
    config: CanaryConfig,
    execution: CanaryExecutionRequestIn,
    services: Services,
    accounts: dict[str, str | None],
) -> AnalysisPlan:
    scopes: dict[str, ScopePair] = {}
    first: CanaryScopeIn | None = None
    for name, pair in execution.scopes.items():
        sides = {}
        for side, raw in (("controlScope", pair.control_scope),
                          ("experimentScope", pair.experiment_scope)):
            where = f"scopes.{name}.{side}"
            if raw.start is None or raw.end is None:
                raise BadRequestError(f"{where}: 'start' and 'end' are required", where)
            sides[side] = make_scope(
                raw.scope,
                location=raw.location or raw.region or None,
                start=raw.start,
                end=raw.end,
                step_seconds=raw.step,
                params=raw.extended_scope_params,
                field_name=where,
            )
            first = first or raw
        scopes[name] = ScopePair(baseline=sides["controlScope"], canary=sides["experimentScope"])
    assert first is not None and first.start is not None and first.end is not None
    thresholds = None
    if execution.thresholds is not None:
        try:
            thresholds = ScoreThresholds.of(
                execution.thresholds.pass_, execution.thresholds.marginal
            )
        except ValidationError as exc:
            raise BadRequestError(f"thresholds: {exc.errors()[0]['msg']}", "thresholds") from exc
    plan = AnalysisPlan(
        config=config,
        scopes=scopes,
        start=first.start if first.start.tzinfo else first.start.replace(tzinfo=UTC),
        end=first.end if first.end.tzinfo else first.end.replace(tzinfo=UTC),
        step=timedelta(seconds=first.step or services.settings.default_step_seconds),
        source=accounts.get("metricsAccountName") or None,
        thresholds=thresholds,
        extra={"kayenta": accounts},
    )
    check_plan(plan, services.settings, services.sources)
    return plan


async def _start(
    services: Services,
    runner: Any,
    plan: AnalysisPlan,
    execution: dict[str, Any],
    stored: StoredConfig | None,
    request: Request,
) -> CanaryExecutionResponseOut:
    request_json = plan.to_json()
    request_json["extra"]["executionRequest"] = execution
    analysis = await to_thread.run_sync(
        lambda: services.store.create_analysis(
            kind="kayenta",
            config=plan.config.to_dict(),
            request=request_json,
            config_id=stored.id if stored else None,
            config_version=stored.version if stored else None,
        )
    )
    services.metrics.analyses_started.labels("kayenta").inc()
    runner.submit(analysis.id)
    return CanaryExecutionResponseOut(
        canaryExecutionId=analysis.id, report_url=analysis_url(request, analysis.id)
    )


def _accounts(
    application: str | None,
    metrics_account: str | None,
    configuration_account: str | None,
    storage_account: str | None,
) -> dict[str, str | None]:
    return {
        "application": application,
        "metricsAccountName": metrics_account,
        "configurationAccountName": configuration_account,
        "storageAccountName": storage_account,
    }


_CANARY_ID = (
    "a config's id (POST: start an execution with it) or an execution's id (GET: its status); "
    "one name for both, as the two share the path /canary/{id}"
)


class CanaryIdConvertor(StringConvertor):
    """A config or execution id in ``/canary/{id}``: any one segment except ``executions``,
    which is Kayenta's list of executions (``GET /canary/executions``). Without it
    ``/canary/executions`` also matched ``POST /canary/{id}``, so that one URL took a method
    its documented path does not (found by Schemathesis: a 405 ``Allow`` of GET, POST)."""

    regex = r"(?!executions$)[^/]+"


register_url_convertor("canary_id", CanaryIdConvertor())


@router.post("/canary/{id:canary_id}", response_model=CanaryExecutionResponseOut)
async def start_canary(
    config_id: Annotated[str, Path(alias="id", description=_CANARY_ID)],
    execution: CanaryExecutionRequestIn,
    services: ServicesDep,
    runner: RunnerDep,
    request: Request,
    application: str | None = Query(default=None),
    metrics_account_name: str | None = Query(default=None, alias="metricsAccountName"),
    configuration_account_name: str | None = Query(
        default=None, alias="configurationAccountName"
    ),
    storage_account_name: str | None = Query(default=None, alias="storageAccountName"),
    parent_pipeline_execution_id: str | None = Query(
        default=None, alias="parentPipelineExecutionId"
    ),
) -> CanaryExecutionResponseOut:
    """Start a canary analysis with a stored config; answers at once with its execution id."""
    stored = await to_thread.run_sync(services.store.get_config, config_id)
    config = CanaryConfig.from_dict(stored.native)
    accounts = _accounts(application, metrics_account_name, configuration_account_name,
                         storage_account_name)
    accounts["parentPipelineExecutionId"] = parent_pipeline_execution_id
    plan = _plan(config, execution, services, accounts)
    return await _start(
        services, runner, plan, execution.model_dump(mode="json", by_alias=True), stored,
        request,
    )


@router.post("/canary", response_model=CanaryExecutionResponseOut)
async def start_adhoc_canary(
    body: CanaryAdhocExecutionRequestIn,
    services: ServicesDep,
    runner: RunnerDep,
    request: Request,
    application: str | None = Query(default=None),
    metrics_account_name: str | None = Query(default=None, alias="metricsAccountName"),
    storage_account_name: str | None = Query(default=None, alias="storageAccountName"),
) -> CanaryExecutionResponseOut:
    """Start a canary analysis with the config in the body (Kayenta's ad-hoc execution)."""
    config, _fmt = parse_config_document(body.canary_config)
    accounts = _accounts(application, metrics_account_name, None, storage_account_name)
    plan = _plan(config, body.execution_request, services, accounts)
    return await _start(
        services,
        runner,
        plan,
        body.execution_request.model_dump(mode="json", by_alias=True),
        None,
        request,
    )


AD_HOC_APPLICATION = "ad-hoc"
"""Kayenta's application of executions started without one."""
EXECUTIONS_SCANNED = 10_000
"""``GET /canary/executions`` pages through at most this many of the newest executions."""


@router.get("/canary/executions", response_model=list[dict[str, Any]])
def list_canary_executions(
    store: StoreDep,
    application: str | None = Query(default=None),
    limit: int = Query(default=20, ge=1, le=1000),
    page: int = Query(default=1, ge=1),
    statuses: str | None = Query(
        default=None, description="comma-separated execution statuses (RUNNING, SUCCEEDED, "
        "TERMINAL); default: all"),
    storage_account_name: str | None = Query(default=None, alias="storageAccountName"),
) -> list[dict[str, Any]]:
    """Kayenta's ``GET /canary/executions``: an application's executions (``ad-hoc`` when
    none is given), newest first, ``limit`` a page, as ``CanaryExecutionStatusResponse`` objects.
    ``storageAccountName`` is accepted and ignored (one store here)."""
    wanted_application = application or AD_HOC_APPLICATION
    wanted = {s.strip().upper() for s in (statuses or "").split(",") if s.strip()}
    matching = []
    for analysis in store.list_analyses(limit=EXECUTIONS_SCANNED, kind="kayenta"):
        status = execution_status(analysis)
        if (status["application"] or AD_HOC_APPLICATION) != wanted_application:
            continue
        if wanted and status["executionStatus"] not in wanted:
            continue
        matching.append(status)
    return matching[(page - 1) * limit : page * limit]


@router.get("/canary/{id:canary_id}", response_model=dict[str, Any])
def get_canary(
    execution_id: Annotated[str, Path(alias="id", description=_CANARY_ID)], store: StoreDep,
    request: Request,
) -> dict[str, Any]:
    """Kayenta's ``CanaryExecutionStatusResponse`` for an execution (any analysis id works),
    with the execution's report page in ``report_url`` (also in ``result``)."""
    analysis = store.get_analysis(execution_id)
    return execution_status(analysis, report_url=analysis_url(request, analysis.id))


def _exported(config: CanaryConfig) -> dict[str, Any]:
    """The config as Kayenta JSON, or in native form when it has no Kayenta equivalent (demo
    queries): a status response must never fail because of how its config is shown."""
    try:
        return config_to_kayenta(config)
    except ConfigError:
        return config.to_dict()


def execution_status(
    analysis: StoredAnalysis, *, report_url: str | None = None
) -> dict[str, Any]:
    accounts: dict[str, Any] = (analysis.request.get("extra") or {}).get("kayenta") or {}
    config = CanaryConfig.from_dict(analysis.config)
    done = analysis.status.done
    state = {
        AnalysisStatus.QUEUED: "running",
        AnalysisStatus.RUNNING: "running",
        AnalysisStatus.SUCCEEDED: "succeeded",
        AnalysisStatus.FAILED: "terminal",
        AnalysisStatus.ERROR: "terminal",
    }[analysis.status]
    response: dict[str, Any] = {
        "application": accounts.get("application"),
        "parentPipelineExecutionId": accounts.get("parentPipelineExecutionId"),
        "pipelineId": analysis.id,
        "stageStatus": {"fetchAndJudge": state.upper() if done else "RUNNING"},
        "complete": done,
        "status": state,
        "executionStatus": state.upper(),
        "progress": analysis.progress,
        "config": _exported(config),
        "configId": analysis.config_id,
        "canaryExecutionRequest": (analysis.request.get("extra") or {}).get("executionRequest"),
        "buildTimeMillis": millis(analysis.created_at),
        "buildTimeIso": analysis.created_at.isoformat(),
        "storageAccountName": accounts.get("storageAccountName"),
        "configurationAccountName": accounts.get("configurationAccountName"),
        "metricsAccountName": accounts.get("metricsAccountName"),
        # Not Kayenta's: Argo's kayenta provider and Spinnaker ignore fields they do not know.
        "report_url": report_url,
    }
    if analysis.started_at is not None:
        response["startTimeMillis"] = millis(analysis.started_at)
        response["startTimeIso"] = analysis.started_at.isoformat()
    if analysis.finished_at is not None:
        response["endTimeMillis"] = millis(analysis.finished_at)
        response["endTimeIso"] = analysis.finished_at.isoformat()
    if analysis.status is AnalysisStatus.FAILED:
        response["exception"] = {
            "timestamp": millis(analysis.finished_at or analysis.created_at),
            "exceptionType": "AnalysisFailed",
            "details": {"error": analysis.error, "errors": [analysis.error]},
        }
    if analysis.status is AnalysisStatus.ERROR:
        # Kayenta ends an execution whose fetch failed without a result: no score to read.
        failures = (analysis.report or {}).get("details", {}).get("fetch_failures") or []
        response["exception"] = {
            "timestamp": millis(analysis.finished_at or analysis.created_at),
            "exceptionType": "MetricsFetchFailed",
            "details": {
                "error": analysis.error,
                "errors": [f"{f.get('metric')}: {f.get('reason')}" for f in failures]
                or [analysis.error],
            },
        }
    elif analysis.report is not None:
        start = analysis.request.get("start")
        end = analysis.request.get("end")
        duration = None
        if start and end:
            seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            duration = f"PT{int(seconds)}S"
        response["result"] = {
            "judgeResult": judge_result_from_dict(analysis.report, config),
            "canaryDuration": duration,
            "report_url": report_url,
        }
    return response


# -- reports in Kayenta's shape --------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _side_stats(side: dict[str, Any]) -> dict[str, Any]:
    return {
        "stats": {
            "count": side.get("count", 0),
            "mean": _number(side.get("mean")),
            "median": _number(side.get("median")),
            "min": _number(side.get("min")),
            "max": _number(side.get("max")),
        }
    }


def judge_result_from_dict(report: dict[str, Any], config: CanaryConfig) -> dict[str, Any]:
    """Kayenta's ``CanaryJudgeResult`` from a stored ``Report.to_dict()``."""
    results = []
    for index, metric in enumerate(report.get("metrics", [])):
        classification = Classification(metric["classification"])
        result_metadata = {
            "ratio": _number(metric.get("effect_size"))
            if metric.get("effect_measure") == "meanRatio"
            else None,
            "effectSize": _number(metric.get("effect_size")),
            "effectMeasure": metric.get("effect_measure"),
            "estimate": _number(metric.get("estimate")),
            "lowerConfidence": _number(metric.get("low")),
            "upperConfidence": _number(metric.get("high")),
            "confidence": _number(metric.get("confidence")),
            "pValue": _number(metric.get("p_value")),
            "test": metric.get("test"),
            "direction": metric.get("direction"),
        }
        results.append(
            {
                "name": metric["name"],
                "id": str(index),
                "tags": {},
                "classification": _CLASSIFICATION[classification],
                "classificationReason": metric.get("reason", ""),
                "groups": list(metric.get("groups", [])),
                "experimentMetadata": _side_stats(metric.get("canary") or {}),
                "controlMetadata": _side_stats(metric.get("baseline") or {}),
                "resultMetadata": result_metadata,
                # Kayenta's CanaryAnalysisResult booleans (kayenta-core, since 2020; the
                # older "criticality" string is gone from Kayenta).
                "critical": bool(metric.get("critical")),
                "muted": bool(metric.get("muted")),
            }
        )
    group_scores = [
        {
            "name": group["name"],
            "score": _number(group.get("score")) or 0.0,
            # NetflixACAJudge leaves group classifications empty; the overall score decides.
            "classification": "",
            "classificationReason": "",
        }
        for group in report.get("groups", [])
    ]
    score = _number(report.get("score"))
    return {
        "judgeName": KAYENTA_JUDGE_NAME if config.mode.value == "kayenta" else "canary-judge",
        "results": results,
        "groupScores": group_scores,
        "score": {
            "score": score if score is not None else 0.0,
            "classification": _VERDICT.get(report.get("verdict", ""), "Error"),
            "classificationReason": report.get("reason", ""),
        },
    }


def judge_result(report: Report, config: CanaryConfig) -> dict[str, Any]:
    return judge_result_from_dict(report.to_dict(), config)


# -- remote judge ----------------------------------------------------------------------------------
def _split_metric(metric: MetricConfig, tags: dict[str, str]) -> MetricConfig:
    name = metric.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(tags.items())) + "}"
    return metric.model_copy(update={"name": name})


def remote_judge_config(raw: dict[str, Any]) -> CanaryConfig:
    """The config Kayenta's remote judge sends. Its ``judge.name`` is ``RemoteJudge-v1.0``
    (that is how Kayenta picked this service); ``judge.judgeConfigurations.mode`` chooses our
    judge: ``default`` (the default) or ``kayenta`` (NetflixACAJudge reproduced)."""
    judge_block = raw.get("judge")
    if not isinstance(judge_block, dict) or judge_block.get("name") in (None, KAYENTA_JUDGE_NAME):
        config, _fmt = parse_config_document(raw)
        return config
    options = judge_block.get("judgeConfigurations") or {}
    mode = options.get("mode", "default") if isinstance(options, dict) else "default"
    as_kayenta = {**raw, "judge": {"name": KAYENTA_JUDGE_NAME, "judgeConfigurations": {}}}
    config, _fmt = parse_config_document(as_kayenta)
    return CanaryConfig.from_dict({**config.to_dict(), "mode": mode})


@router.post("/judge", response_model=dict[str, Any])
def remote_judge(body: RemoteJudgeRequestIn, services: ServicesDep) -> dict[str, Any]:
    """Kayenta's remote judge: judge the metric set pairs Kayenta fetched, with its config."""
    from judge.judging import judge_series

    config = remote_judge_config(body.canary_config)
    by_name: dict[str, list[MetricSetPairIn]] = {}
    for pair in body.metric_set_pair_list:
        by_name.setdefault(pair.name, []).append(pair)
    unknown = sorted(set(by_name) - {m.name for m in config.metrics})
    if unknown:
        raise BadRequestError(
            f"metricSetPairList: {unknown} are not metrics of the canaryConfig", "metricSetPairList"
        )
    metrics: list[MetricConfig] = []
    series: dict[str, tuple[list[float], list[float]]] = {}
    origin: dict[str, tuple[str, MetricSetPairIn]] = {}
    for metric in config.metrics:
        pairs = by_name.get(metric.name, [])
        if len(pairs) <= 1:
            metrics.append(metric)
            if pairs:
                values = pairs[0].values
                series[metric.name] = (values["control"], values["experiment"])
                origin[metric.name] = (metric.name, pairs[0])
            continue
        # Several pairs of one metric (grouped by tags): each tag set is judged on its own,
        # as Kayenta's judge does, and reported under the metric's name with its tags.
        for pair in pairs:
            split = _split_metric(metric, pair.tags)
            metrics.append(split)
            series[split.name] = (pair.values["control"], pair.values["experiment"])
            origin[split.name] = (metric.name, pair)
    judged_config = config.model_copy(update={"metrics": tuple(metrics)})
    thresholds = (
        ScoreThresholds.of(body.score_thresholds.pass_, body.score_thresholds.marginal)
        if body.score_thresholds
        else None
    )
    services.metrics.analyses_started.labels("kayenta-judge").inc()
    watch = Stopwatch()
    report = judge_series(judged_config, series, thresholds=thresholds)
    services.metrics.judge_seconds.labels("kayenta-judge").observe(watch.seconds)
    services.metrics.analyses_finished.labels("kayenta-judge", report.verdict.value).inc()
    result = judge_result(report, judged_config)
    for entry in result["results"]:
        if entry["name"] in origin:
            name, pair = origin[entry["name"]]
            entry.update(name=name, tags=pair.tags, id=pair.id or entry["id"])
    return result

