"""Argo Rollouts ``web`` metric provider: judge a canary on each measurement, synchronously.

Argo's web provider (``metricproviders/webmetric`` in argoproj/argo-rollouts) makes one HTTP
call per measurement interval and treats any non-2xx answer, or a body that is not JSON, as an
*Error* measurement (``consecutiveErrorLimit`` of them in a row, 4 by default, end the analysis
as Error). Every answer is a JSON object; ``verdict`` says what happened:

- ``pass`` / ``marginal`` / ``fail`` (HTTP 200): the judgment (``pass``, ``marginal``, ``fail``
  are also booleans, for ``successCondition: result.pass``);
- ``error`` with **HTTP 503**: a metric source is down, timed out, refused the query or returned
  no series at all for a scope, so there is no verdict (an *error outcome*, see
  ``judge.report.Verdict``); ``error`` names the source, the query and the failure. Argo
  records an Error measurement and its ``consecutiveErrorLimit`` decides: an outage neither
  promotes nor rolls back a canary by itself;
- ``error`` with **HTTP 504**: the answer would not be ready within
  ``CANARY_JUDGE_SYNC_TIMEOUT_SECONDS`` (an Error measurement too);
- ``error`` with HTTP 200: the request itself is wrong (unknown config, bad lookback ...).
  Neither success nor failure conditions written against ``verdict`` match it, so Argo records
  the measurement *Inconclusive* and pauses the rollout for a person to fix the template.

The window is ``lookback`` (default ``CANARY_JUDGE_DEFAULT_LOOKBACK``) ending now. Fetching
(retries with backoff included) ends 1.5 s before ``CANARY_JUDGE_SYNC_TIMEOUT_SECONDS`` (8 s by
default), so the answer comes by 8 s, under the provider's 10 s timeout.

With ``run_id`` the call is one poll of a sequential run (:mod:`judge.api.runs`): only the points
since the previous poll of that run are judged, anytime-valid, and ``status`` is the run's
``continue`` / ``pass`` / ``fail`` / ``inconclusive`` (``final: true`` on the last call); see
``docs/recipes/argo-web.md`` for the AnalysisTemplates. Without it ``status`` is the verdict.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from judge.api.deps import ServicesDep
from judge.api.links import analysis_url, run_url
from judge.api.openapi_errors import add_component
from judge.api.plans import BadRequestError, controller_plan
from judge.api.runs import sequential_out
from judge.api.schemas import ArgoJudgeOut, ArgoJudgeRequest, MetricSummaryOut
from judge.api.sources import UnknownSourceError
from judge.config import ScoreThresholds
from judge.errors import ConflictError, StoreUnavailableError
from judge.report import Report

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/argo/v1", tags=["argo"])

_QUERY_FIELDS = ("config", "baseline", "canary", "location", "lookback", "start", "end", "step",
                 "source", "run_id", "final")


def validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as ``field.path: message; ...`` (the field that is wrong, first)."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


OUTAGE_STATUS = 503
"""An error outcome (a metric source failed): non-2xx, so Argo records an Error measurement."""
TIMEOUT_STATUS = 504
"""No answer within ``CANARY_JUDGE_SYNC_TIMEOUT_SECONDS``: an Error measurement too."""


def error_answer(message: str, config: str | None = None, status: int = 200) -> JSONResponse:
    """The answer for a measurement that judged nothing (200 for a bad request: Inconclusive)."""
    body = ArgoJudgeOut(verdict="error", status="error", error=message, reason=message,
                        config=config)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json", by_alias=True))


async def _request_fields(request: Request) -> dict[str, Any]:
    """Query parameters, overlaid by a JSON body when there is one (GET or POST alike)."""
    fields: dict[str, Any] = {k: v for k, v in request.query_params.items() if k in _QUERY_FIELDS}
    params = {
        key.removeprefix("param."): value
        for key, value in request.query_params.items()
        if key.startswith("param.")
    }
    if params:
        fields["params"] = params
    if "pass" in request.query_params or "marginal" in request.query_params:
        fields["thresholds"] = {
            "pass": request.query_params.get("pass"),
            "marginal": request.query_params.get("marginal"),
        }
    unknown = sorted(
        set(request.query_params)
        - set(_QUERY_FIELDS)
        - {"pass", "marginal"}
        - {k for k in request.query_params if k.startswith("param.")}
    )
    if unknown:
        raise BadRequestError(f"unknown query parameter(s) {unknown}", unknown[0])
    raw = await request.body()
    if raw.strip():
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"body: not valid JSON ({exc})", "body") from exc
        if not isinstance(body, dict):
            raise BadRequestError("body: must be a JSON object", "body")
        fields.update(body)
    return fields


def answer(
    report: Report, analysis_id: str | None, config_name: str, report_url: str | None = None
) -> ArgoJudgeOut:
    metrics = [
        MetricSummaryOut(
            name=m.name,
            classification=m.classification.value,
            reason=m.reason,
            baseline_mean=_finite(m.baseline.mean),
            canary_mean=_finite(m.canary.mean),
            estimate=_finite(m.estimate),
            low=_finite(m.low),
            high=_finite(m.high),
        )
        for m in report.metrics
    ]
    verdict = report.verdict.value
    sequential = sequential_out(report)
    return ArgoJudgeOut(
        verdict=verdict,
        status="error" if report.is_error else sequential.status if sequential else verdict,
        sequential=sequential,
        score=_finite(report.score),
        pass_=verdict == "pass",
        marginal=verdict == "marginal",
        fail=verdict == "fail",
        reason=report.reason,
        error=report.reason if report.is_error else None,
        config=config_name,
        analysis_id=analysis_id,
        failed_metrics=[m.name for m in report.metrics if m.classification.failed],
        metrics=metrics,
        report_url=report_url,
    )


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def _given(field: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as a query parameter: a query has no null (a parameter is left out)."""
    choices = [c for c in field.get("anyOf", []) if c.get("type") != "null"]
    described = {k: v for k, v in field.items() if k not in ("anyOf", "default")}
    if len(choices) == 1:
        described.update(choices[0])
    return described


def describe_in_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """What the door reads, which FastAPI cannot see (it reads the request itself, so that a
    JSON body may overlay the query): ``GET`` takes :class:`ArgoJudgeRequest`'s fields as query
    parameters (``pass``/``marginal`` for the thresholds, ``param.KEY`` for scope parameters),
    ``POST`` a JSON body of that model."""
    ref = add_component(schema, ArgoJudgeRequest)
    fields = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    operations = schema["paths"]["/argo/v1/judge"]
    required = {"config", "baseline", "canary"}
    parameters = [
        {"name": name, "in": "query", "required": name in required,
         "schema": {"type": "string", "minLength": 1} if name == "config"
         else _given(fields[name])}
        for name in _QUERY_FIELDS
    ]
    parameters += [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": "number", "minimum": 0, "maximum": 100},
         "description": f"score threshold override: {name} (give both)"}
        for name in ("pass", "marginal")
    ]
    operations["get"]["parameters"] = parameters
    operations["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": ref}}},
    }
    return schema


_JUDGE_ROUTE: dict[str, Any] = {
    "response_model": ArgoJudgeOut,
    "summary": "Judge a canary now (Argo Rollouts web provider); 503/504 when there is no "
    "verdict",
    "responses": {503: {"model": ArgoJudgeOut}, 504: {"model": ArgoJudgeOut}},
}


# One function, two operations (each with its own id, as OpenAPI requires).
@router.get("/judge", operation_id="argo_judge_get", **_JUDGE_ROUTE)
@router.post("/judge", operation_id="argo_judge_post", **_JUDGE_ROUTE)
async def argo_judge(request: Request, services: ServicesDep) -> JSONResponse:
    """Fetch the lookback window for both scopes and judge it; see the module doc."""
    config_label: str | None = None
    try:
        fields = await _request_fields(request)
        body = ArgoJudgeRequest.model_validate(fields)
        inline = body.config if isinstance(body.config, dict) else None
        config_label = body.config if isinstance(body.config, str) else None
        thresholds = (
            ScoreThresholds.of(body.thresholds.pass_, body.thresholds.marginal)
            if body.thresholds
            else None
        )
        plan, stored = controller_plan(
            services.store, services.settings, services.sources,
            config_inline=inline, config_ref=config_label, baseline=body.baseline,
            canary=body.canary, location=body.location, params=body.params,
            lookback=body.lookback, now=services.clock(), start=body.start, end=body.end,
            step_seconds=body.step, source=body.source, thresholds=thresholds,
        )
        config = plan.config
        config_label = config.name
        analysis_id: str | None
        report_url: str
        if body.run_id is not None:
            polled = await services.runs.poll(body.run_id, plan, kind="argo", final=body.final,
                                             stored_config=stored)
            report, analysis_id = polled.report, None
            report_url = run_url(request, body.run_id)
        elif body.final:
            raise BadRequestError("final: only for a sequential run (give run_id)", "final")
        else:
            report, analysis_id = await services.judge_now(plan, "argo")
            report_url = analysis_url(request, analysis_id)
    except ValidationError as exc:
        return error_answer(validation_message(exc), config_label)
    except TimeoutError as exc:
        return error_answer(str(exc), config_label, TIMEOUT_STATUS)
    except (BadRequestError, UnknownSourceError, ConflictError) as exc:
        return error_answer(str(exc), config_label)
    except StoreUnavailableError as exc:  # our database, not the request: an Error
        logger.error("%s", exc)
        return error_answer(str(exc), config_label, OUTAGE_STATUS)
    except Exception as exc:
        # Argo reads non-2xx as an Error measurement; a bug here must still answer in JSON.
        logger.exception("argo judge failed")
        services.metrics.request_errors.labels("argo", "internal").inc()
        return error_answer(f"internal error: {type(exc).__name__}: {exc}", config_label)
    out = answer(report, analysis_id, config.name, report_url)
    status = OUTAGE_STATUS if report.is_error else 200
    return JSONResponse(status_code=status, content=out.model_dump(mode="json", by_alias=True))
