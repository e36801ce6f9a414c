"""Flagger webhook: judge a canary during ``pre-rollout``, ``rollout`` or ``confirm-promotion``.

Flagger (``pkg/controller/webhook.go`` in fluxcd/flagger) POSTs ``{name, namespace, phase,
checksum, metadata}`` and counts a status of 200-202 as a passed check; anything else, or no
answer within the hook's ``timeout`` (Flagger's default is 10 s), fails it. ``metadata`` is a
string map set in the Canary resource: it carries the config and the scopes:

=================  ===========================================================================
``config``         stored config id or name (required)
``baseline``       baseline scope value (default ``<name>-primary``, Flagger's primary)
``canary``         canary scope value (default ``<name>``)
``location``       scope location (e.g. a cluster or region label value)
``lookback``       window ending now (default ``CANARY_JUDGE_DEFAULT_LOOKBACK``)
``step``           seconds between points (default ``CANARY_JUDGE_DEFAULT_STEP_SECONDS``)
``source``         named metric source
``pass``           score threshold overrides (``marginal`` too)
``allowMarginal``  ``"true"``: a marginal verdict answers 200 instead of 412
=================  ===========================================================================

The hook's ``name`` and ``namespace`` are extended scope parameters, usable as ``${name}`` and
``${namespace}`` in queries. Answers: 200 pass; 412 fail or marginal; 400 bad metadata; 504
when the analysis does not finish within ``CANARY_JUDGE_SYNC_TIMEOUT_SECONDS``; 503 if
something unexpected breaks. The JSON body always says why.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from judge.api.argo import validation_message
from judge.api.deps import ServicesDep
from judge.api.schemas import FlaggerHook, FlaggerMetadata, FlaggerOut
from judge.api.service import (
    AnalysisPlan,
    BadRequestError,
    check_plan,
    make_scope,
    resolve_config,
    window,
)
from judge.api.sources import UnknownSourceError
from judge.config import ScoreThresholds
from judge.ports import ScopePair

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/flagger/v1", tags=["flagger"])

_FAILED = 412
"""Precondition Failed: the canary did not meet the bar (any status above 202 fails a hook)."""


def _answer(status: int, hook: FlaggerHook, **fields: Any) -> JSONResponse:
    body = FlaggerOut(canary=f"{hook.namespace}/{hook.name}", phase=hook.phase, **fields)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def _number(text: str | None, field_name: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise BadRequestError(
            f"metadata.{field_name}: {text!r} is not a number", f"metadata.{field_name}"
        ) from exc


def _plan(hook: FlaggerHook, meta: FlaggerMetadata, services: Any) -> AnalysisPlan:
    config, _stored = resolve_config(services.store, inline=None, config_ref=meta.config)
    start, end = window(
        lookback=meta.lookback,
        start=None,
        end=None,
        default_lookback=services.settings.default_lookback,
    )
    params = {"name": hook.name, "namespace": hook.namespace}
    pair = ScopePair(
        baseline=make_scope(meta.baseline or f"{hook.name}-primary", location=meta.location,
                            params=params, field_name="metadata.baseline"),
        canary=make_scope(meta.canary or hook.name, location=meta.location, params=params,
                          field_name="metadata.canary"),
    )
    step = _number(meta.step, "step") or services.settings.default_step_seconds
    if step <= 0:
        raise BadRequestError("metadata.step: must be positive", "metadata.step")
    pass_at, marginal_at = _number(meta.pass_threshold, "pass"), _number(
        meta.marginal_threshold, "marginal"
    )
    thresholds = None
    if pass_at is not None or marginal_at is not None:
        try:
            thresholds = ScoreThresholds.model_validate(
                {
                    "pass": pass_at if pass_at is not None else config.thresholds.pass_,
                    "marginal": (
                        marginal_at if marginal_at is not None else config.thresholds.marginal
                    ),
                }
            )
        except ValidationError as exc:
            raise BadRequestError(
                f"metadata.pass/marginal: {validation_message(exc)}", "metadata.pass"
            ) from exc
    plan = AnalysisPlan(
        config=config,
        scopes={"default": pair},
        start=start,
        end=end,
        step=timedelta(seconds=step),
        source=meta.source,
        thresholds=thresholds,
        extra={"flagger": {"name": hook.name, "namespace": hook.namespace, "phase": hook.phase}},
    )
    check_plan(plan, services.settings, services.sources)
    return plan


@router.post(
    "/check",
    response_model=FlaggerOut,
    responses={412: {"model": FlaggerOut}, 400: {"model": FlaggerOut}},
    summary="Flagger webhook: 200 when the canary passes, 412 when it does not",
)
async def flagger_check(hook: FlaggerHook, services: ServicesDep) -> JSONResponse:
    try:
        meta = FlaggerMetadata.model_validate(hook.metadata)
    except ValidationError as exc:
        message = "metadata: " + validation_message(exc)
        return _answer(400, hook, verdict="error", reason=message, error=message)
    try:
        plan = _plan(hook, meta, services)
        report, analysis_id = await services.judge_now(plan, "flagger")
    except (BadRequestError, UnknownSourceError) as exc:
        return _answer(400, hook, verdict="error", reason=str(exc), error=str(exc))
    except ValidationError as exc:
        message = validation_message(exc)
        return _answer(400, hook, verdict="error", reason=message, error=message)
    except TimeoutError as exc:
        return _answer(504, hook, verdict="error", reason=str(exc), error=str(exc))
    except Exception as exc:
        logger.exception("flagger check failed")
        services.metrics.request_errors.labels("flagger", "internal").inc()
        message = f"internal error: {type(exc).__name__}: {exc}"
        return _answer(503, hook, verdict="error", reason=message, error=message)
    verdict = report.verdict.value
    allow_marginal = (meta.allow_marginal or "").strip().lower() in ("true", "1", "yes")
    ok = verdict == "pass" or (verdict == "marginal" and allow_marginal)
    score = report.score if report.score == report.score else None
    return _answer(
        200 if ok else _FAILED,
        hook,
        verdict=verdict,
        score=score,
        reason=report.reason,
        analysis_id=analysis_id,
        failed_metrics=[m.name for m in report.metrics if m.classification.failed],
    )
