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
``sequential``     ``"true"``: a sequential run; each call judges only the points since the last
``runId``          the run's id (default ``<namespace>/<name>/<checksum>``: one run per revision)
``gate``           ``"promotion"`` on a ``confirm-promotion`` hook (see below)
=================  ===========================================================================

A sequential run answers 200 once it passed and 412 once it failed (decisions are final). While
it is undecided (``continue``) it answers 202 (a passed check: Flagger keeps shifting traffic,
and no failed check is counted against ``threshold`` for lack of evidence yet), except on a
hook marked ``gate: promotion``, where it answers 425 Too Early: Flagger holds the promotion
and keeps running its checks until the run has passed. Flagger's payload does not say which
kind of hook is calling (``phase`` is the canary's phase), hence the explicit ``gate``.

The hook's ``name`` and ``namespace`` are extended scope parameters, usable as ``${name}`` and
``${namespace}`` in queries. Answers: 200 pass; 412 fail or marginal; 400 bad metadata; **503
when there is no verdict because a metric source failed** (down, timed out, refused the query,
no series at all for a scope: an *error outcome*, see ``judge.report.Verdict``), in every mode,
sequential and ``gate: promotion`` included, with ``verdict: "error"`` and the source, query and
failure in ``reason``; 504 when the answer would not be ready within
``CANARY_JUDGE_SYNC_TIMEOUT_SECONDS``; 503 too if something unexpected breaks. The JSON body
always says why. Flagger counts every non-2xx answer as a failed check, as it counts a timeout:
an outage rolls back only after the canary's ``threshold`` of them (and on a
``confirm-promotion`` hook it only holds the promotion), never at once as a 412 with
``threshold: 1`` does.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from judge.api.argo import validation_message
from judge.api.deps import ServicesDep
from judge.api.links import analysis_url, run_url
from judge.api.plans import AnalysisPlan, BadRequestError, controller_plan
from judge.api.runs import sequential_out
from judge.api.schemas import FlaggerHook, FlaggerMetadata, FlaggerOut
from judge.api.sources import UnknownSourceError
from judge.api.store import StoredConfig
from judge.config import CanaryConfig, ScoreThresholds
from judge.errors import ConflictError, StoreUnavailableError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/flagger/v1", tags=["flagger"])

_FAILED = 412
"""Precondition Failed: the canary did not meet the bar (any status above 202 fails a hook)."""
_UNDECIDED = 202
"""Accepted: a sequential run has no decision yet (Flagger counts 200-202 as a passed check)."""
_TOO_EARLY = 425
"""Too Early: a promotion gate while the sequential run is undecided (promotion waits)."""
_NO_VERDICT = 503
"""Service Unavailable: a metric source failed, nothing was judged (an error, not a 412)."""


def _answer(status: int, hook: FlaggerHook, **fields: Any) -> JSONResponse:
    body = FlaggerOut(canary=f"{hook.namespace}/{hook.name}", phase=hook.phase, **fields)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes")


def _number(text: str | None, field_name: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise BadRequestError(
            f"metadata.{field_name}: {text!r} is not a number", f"metadata.{field_name}"
        ) from exc


def _plan(
    hook: FlaggerHook, meta: FlaggerMetadata, services: Any
) -> tuple[AnalysisPlan, StoredConfig | None]:
    step = _number(meta.step, "step")
    if step is not None and step <= 0:
        raise BadRequestError("metadata.step: must be positive", "metadata.step")
    return controller_plan(
        services.store, services.settings, services.sources,
        config_inline=None, config_ref=meta.config,
        baseline=meta.baseline or f"{hook.name}-primary", canary=meta.canary or hook.name,
        location=meta.location, params={"name": hook.name, "namespace": hook.namespace},
        lookback=meta.lookback, now=services.clock(), step_seconds=step, source=meta.source,
        thresholds=lambda config: _thresholds(meta, config),
        extra={"flagger": {"name": hook.name, "namespace": hook.namespace,
                           "phase": hook.phase}},
        field_prefix="metadata.",
    )


def _thresholds(meta: FlaggerMetadata, config: CanaryConfig) -> ScoreThresholds | None:
    """Score threshold overrides from ``pass`` / ``marginal`` (the other from the config)."""
    pass_at = _number(meta.pass_threshold, "pass")
    marginal_at = _number(meta.marginal_threshold, "marginal")
    if pass_at is None and marginal_at is None:
        return None
    try:
        return config.thresholds.replaced(pass_at, marginal_at)
    except ValidationError as exc:
        raise BadRequestError(
            f"metadata.pass/marginal: {validation_message(exc)}", "metadata.pass"
        ) from exc


@router.post(
    "/check",
    response_model=FlaggerOut,
    responses={
        412: {"model": FlaggerOut},
        400: {"model": FlaggerOut},
        503: {"model": FlaggerOut},
        504: {"model": FlaggerOut},
    },
    summary="Flagger webhook: 200 when the canary passes, 412 when it does not, 503 when a "
    "metric source failed",
)
async def flagger_check(
    hook: FlaggerHook, services: ServicesDep, request: Request
) -> JSONResponse:
    try:
        meta = FlaggerMetadata.model_validate(hook.metadata)
    except ValidationError as exc:
        message = "metadata: " + validation_message(exc)
        return _answer(400, hook, verdict="error", reason=message, error=message)
    sequential = _flag(meta.sequential) or meta.run_id is not None
    analysis_id: str | None = None
    report_url: str
    try:
        plan, stored = _plan(hook, meta, services)
        if sequential:
            if meta.run_id is None and not hook.checksum:
                # Without a revision in the id, a new revision would continue (and inherit the
                # final decisions of) the previous revision's run.
                raise BadRequestError(
                    "metadata.runId: the hook carries no checksum to tell canary revisions "
                    "apart; set runId (one per revision)", "metadata.runId",
                )
            run_id = meta.run_id or f"{hook.namespace}/{hook.name}/{hook.checksum}"
            polled = await services.runs.poll(run_id, plan, kind="flagger",
                                              stored_config=stored)
            report = polled.report
            report_url = run_url(request, run_id)
        else:
            report, analysis_id = await services.judge_now(plan, "flagger")
            report_url = analysis_url(request, analysis_id)
    except (BadRequestError, UnknownSourceError, ConflictError) as exc:
        return _answer(400, hook, verdict="error", reason=str(exc), error=str(exc))
    except ValidationError as exc:
        message = validation_message(exc)
        return _answer(400, hook, verdict="error", reason=message, error=message)
    except TimeoutError as exc:
        return _answer(504, hook, verdict="error", reason=str(exc), error=str(exc))
    except StoreUnavailableError as exc:  # our database, not the canary: no verdict
        logger.error("%s", exc)
        return _answer(_NO_VERDICT, hook, verdict="error", reason=str(exc), error=str(exc))
    except Exception as exc:
        logger.exception("flagger check failed")
        services.metrics.request_errors.labels("flagger", "internal").inc()
        message = f"internal error: {type(exc).__name__}: {exc}"
        return _answer(503, hook, verdict="error", reason=message, error=message)
    verdict = report.verdict.value
    summary = sequential_out(report)
    if report.is_error:
        status = _NO_VERDICT
    elif summary is not None:
        # A run decided marginal (it can no longer pass, or ended without enough evidence)
        # is a verdict like a fixed-horizon marginal one: a failed check unless allowed.
        decided_marginal = 200 if _flag(meta.allow_marginal) else _FAILED
        status = {"pass": 200, "fail": _FAILED, "error": _NO_VERDICT,
                  "inconclusive": decided_marginal}.get(summary.status, _UNDECIDED)
        if status == _UNDECIDED and (meta.gate or "").strip().lower() == "promotion":
            status = _TOO_EARLY
    else:
        ok = verdict == "pass" or (verdict == "marginal" and _flag(meta.allow_marginal))
        status = 200 if ok else _FAILED
    score = report.score if report.score == report.score else None
    return _answer(
        status,
        hook,
        sequential=summary,
        verdict=verdict,
        score=score,
        reason=report.reason,
        error=report.reason if report.is_error else None,
        analysis_id=analysis_id,
        failed_metrics=[m.name for m in report.metrics if m.classification.failed],
        report_url=report_url,
    )
