"""Request and response bodies of the HTTP API (wire formats, not domain objects).

Native schemas are strict (unknown fields are rejected and named in the 422). Controller
payloads (Kayenta, Flagger) tolerate fields they may add in later versions; their adapters
translate them into the same analysis call as the native API.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from judge.analysis import SequentialStatus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


MAX_STEP_SECONDS = 7 * 24 * 3600
"""The longest step a request may ask for (a week): longer ones cannot make a series."""


# -- rules between fields, in the published schema ------------------------------------------
# The models' validators enforce these; the JSON Schema says them too, so a client (or a schema
# fuzzer) knows which combinations are accepted before sending one. ``null`` counts as absent.
def _given(name: str, json_type: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": json_type}}}


def _absent(*names: str) -> dict[str, Any]:
    return {"properties": {name: {"type": "null"} for name in names}}


def _all_of(*parts: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"required": [], "properties": {}}
    for part in parts:
        merged["required"] += part.get("required", [])
        merged["properties"].update(part.get("properties", {}))
    if not merged["required"]:
        del merged["required"]
    return merged


ONE_CONFIG: dict[str, Any] = {
    "oneOf": [
        _all_of(_given("config", "object"), _absent("config_id")),
        _all_of(_given("config_id", "string"), _absent("config")),
    ]
}
"""Exactly one of ``config`` (inline) and ``config_id``."""

SCOPES_ONE_WAY: dict[str, Any] = {
    "oneOf": [
        _all_of(_given("baseline", "object"), _given("canary", "object"), _absent("scopes")),
        _all_of(_given("scopes", "object"), _absent("baseline", "canary")),
    ]
}
"""``baseline`` + ``canary``, or ``scopes``."""

WINDOW_ONE_WAY: dict[str, Any] = {
    "oneOf": [
        _absent("start", "end"),
        _all_of(_given("start", "string"), _given("end", "string"), _absent("lookback")),
    ]
}
"""``start`` + ``end``, or a ``lookback`` (or the default one) ending now."""

DURATION: dict[str, JsonValue] = {
    "pattern": r"^(?=.*[1-9])\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h|d|w|MS|S|M|H|D|W))+)\s*$"
}
"""What ``judge.api.plans.parse_duration`` reads: ``10m``, ``1h30m``, ``90s``, ``600``, not
zero. Published only: the route's own check answers a 400 naming the field (as before)."""


def _rules(*rules: dict[str, Any]) -> Any:
    def extend(schema: dict[str, Any]) -> None:
        schema["allOf"] = [*schema.get("allOf", []), *rules]

    return extend


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _to_float(value: Any) -> float:
    # JSON has no NaN: a gap arrives as null, or as the string "NaN" (Kayenta's Jackson output).
    if value is None:
        return math.nan
    if isinstance(value, str):
        if value.strip().lower() in ("nan", "null", ""):
            return math.nan
        return float(value)
    if isinstance(value, bool):
        raise ValueError("a metric value must be a number, not a boolean")
    if not isinstance(value, int | float):
        # An object or a list where a number belongs: a 422 naming the value, not a 500.
        raise ValueError(f"a metric value must be a number, got {type(value).__name__}")
    return float(value)


_FLOAT = frozenset({float})
_NUMBER = frozenset({float, int})


def series_values(raw: Any) -> list[float]:
    """A list of numbers where ``null`` / ``"NaN"`` become NaN; anything else is an error."""
    if not isinstance(raw, list):
        raise ValueError("expected a list of numbers")
    # Nearly every list holds plain numbers only: their set of types (made in C) instead of a
    # Python call per value.
    kinds = set(map(type, raw))
    if kinds <= _FLOAT:
        return raw
    if kinds <= _NUMBER:
        return [float(v) for v in raw]
    return [_to_float(v) for v in raw]


SERIES_SCHEMA: dict[str, Any] = {"additionalProperties": {"type": "array", "items": {
    "anyOf": [{"type": "number"}, {"type": "null"}, {"enum": ["NaN"]}]}}}
"""What :func:`series_values` accepts, as OpenAPI shows it: a gap is ``null`` or ``"NaN"``."""


# -- shared ------------------------------------------------------------------------------------
class ThresholdsIn(_Strict):
    pass_: float = Field(alias="pass", ge=0, le=100)
    marginal: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsIn:
        if self.marginal > self.pass_:
            raise ValueError(
                f"'marginal' ({self.marginal}) must not be above 'pass' ({self.pass_})"
            )
        return self


class ScopeIn(_Strict):
    """One side's selection: a scope value (label value, version ...) and an optional window."""

    scope: str = Field(min_length=1)
    location: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    step: int | None = Field(default=None, gt=0, le=MAX_STEP_SECONDS, description="seconds")
    params: dict[str, str] = Field(default_factory=dict)


class ScopePairIn(_Strict):
    baseline: ScopeIn
    canary: ScopeIn


class ErrorOut(BaseModel):
    """Every non-2xx answer of the native API: ``error`` says what is wrong; ``field`` names
    the part of the request (400), ``detail`` lists each offending field (422)."""

    error: str
    field: str | None = None
    detail: list[dict[str, Any]] | None = None


# -- native: judge -----------------------------------------------------------------------------
class JudgeRequest(_Strict):
    """Judge data given inline: one list of numbers per metric and side."""

    model_config = ConfigDict(json_schema_extra=_rules(ONE_CONFIG))

    config: dict[str, Any] | None = Field(
        default=None, description="a native or Kayenta config (or give config_id)"
    )
    config_id: str | None = Field(default=None, description="id or name of a stored config")
    config_version: int | None = Field(default=None, ge=1)
    baseline: dict[str, list[float]] = Field(json_schema_extra=SERIES_SCHEMA)
    canary: dict[str, list[float]] = Field(json_schema_extra=SERIES_SCHEMA)
    thresholds: ThresholdsIn | None = None

    @field_validator("baseline", "canary", mode="before")
    @classmethod
    def _nan_tolerant(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("expected an object: metric name -> list of numbers")
        return {str(name): series_values(values) for name, values in raw.items()}

    @model_validator(mode="after")
    def _one_config(self) -> JudgeRequest:
        if (self.config is None) == (self.config_id is None):
            raise ValueError("give exactly one of 'config' (inline) and 'config_id'")
        return self


class ReportOut(BaseModel):
    """``judge.report.Report.to_dict()``: verdict, score, reason, groups, metrics."""

    model_config = ConfigDict(extra="allow")

    verdict: Literal["pass", "marginal", "fail", "error"] = Field(
        description="error: no verdict, a metric source failed (details.fetch_failures)"
    )
    score: float | None
    reason: str
    thresholds: dict[str, float]
    mode: str
    config_name: str
    groups: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    details: dict[str, Any] = Field(default_factory=dict)


# -- native: configs ---------------------------------------------------------------------------
class ConfigOut(BaseModel):
    id: str
    name: str
    version: int
    applications: list[str]
    format: str = Field(description="the format it was sent in: native or kayenta")
    created_at: datetime
    updated_at: datetime
    config: dict[str, Any] = Field(description="the config in native form")


class ConfigSummaryOut(BaseModel):
    id: str
    name: str
    version: int
    applications: list[str]
    format: str
    updated_at: datetime


class ConfigVersionsOut(BaseModel):
    id: str
    versions: list[int]


# -- native: analyses --------------------------------------------------------------------------
class AnalysisRequest(_Strict):
    """Start a background analysis: fetch both sides from a metric source and judge them.

    Scopes: ``baseline`` + ``canary`` (one pair for every metric), or ``scopes`` by the
    metrics' ``scope_name``. Window: ``start`` + ``end``, or ``lookback`` ending now.
    """

    model_config = ConfigDict(
        json_schema_extra=_rules(ONE_CONFIG, SCOPES_ONE_WAY, WINDOW_ONE_WAY)
    )

    config: dict[str, Any] | None = None
    config_id: str | None = None
    config_version: int | None = Field(default=None, ge=1)
    baseline: ScopeIn | None = None
    canary: ScopeIn | None = None
    scopes: dict[str, ScopePairIn] | None = None
    start: datetime | None = None
    end: datetime | None = None
    lookback: str | None = Field(
        default=None, description="e.g. 10m, 1h, 90s", json_schema_extra=DURATION
    )
    step: int | None = Field(default=None, gt=0, le=MAX_STEP_SECONDS, description="seconds")
    source: str | None = Field(default=None, description="a configured metric source's name")
    thresholds: ThresholdsIn | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisRequest:
        if (self.config is None) == (self.config_id is None):
            raise ValueError("give exactly one of 'config' (inline) and 'config_id'")
        pair = self.baseline is not None and self.canary is not None
        if (self.baseline is None) != (self.canary is None):
            raise ValueError("give both 'baseline' and 'canary' scopes")
        if pair == (self.scopes is not None):
            raise ValueError("give either 'baseline' + 'canary' or 'scopes', not both or neither")
        if self.lookback is not None and (self.start is not None or self.end is not None):
            raise ValueError("give 'lookback' or 'start' + 'end', not both")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both 'start' and 'end'")
        return self


class SequentialOut(BaseModel):
    """Where a sequential run stands after a poll."""

    run_id: str
    status: SequentialStatus = Field(
        description="error: this poll has no answer, a metric source failed (the run goes on)"
    )
    calls: int
    new_points: int
    points: int = Field(description="points judged so far (the most of any metric)")
    level: float | None = None
    last_point: str | None = None
    fetch_errors: dict[str, str] = Field(default_factory=dict)


class RunPollRequest(AnalysisRequest):
    """One poll of a sequential run: the same fields as an analysis. The first poll's window
    start (``start``, else ``end``/now minus ``lookback``) is where the run's data begins;
    later polls judge only the points after the last judged one, up to ``end`` (default now).
    ``final``: the run's last poll (undecided metrics are then settled, see the docs)."""

    final: bool = False


class RunOut(BaseModel):
    """A sequential run: where it stands, and (for one run) its last report."""

    run_id: str
    kind: str
    status: SequentialStatus
    calls: int
    config_name: str | None = None
    config_id: str | None = None
    config_version: int | None = None
    window_start: datetime
    last_point: datetime | None = None
    created_at: datetime
    updated_at: datetime
    sequential: SequentialOut | None = None
    report: dict[str, Any] | None = None
    report_url: str | None = Field(
        default=None, description="the report page of this run (CANARY_JUDGE_EXTERNAL_URL)"
    )


class AnalysisOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "error"] = Field(
        description="error: ran without a verdict because a metric source failed ('error' "
        "says which source, query and failure); failed: could not run to the end"
    )
    progress: float = Field(description="0..1: fetched metrics over all metrics")
    progress_detail: dict[str, Any]
    config_id: str | None
    config_version: int | None
    config_name: str | None
    attempts: int
    error: str | None
    report: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    report_url: str | None = Field(
        default=None, description="the report page of this analysis (CANARY_JUDGE_EXTERNAL_URL)"
    )


class AnalysisSummaryOut(BaseModel):
    id: str
    kind: str
    status: str
    progress: float
    config_name: str | None
    verdict: str | None
    score: float | None
    created_at: datetime
    finished_at: datetime | None
    report_url: str | None = Field(
        default=None, description="the report page of this analysis (CANARY_JUDGE_EXTERNAL_URL)"
    )


# -- Argo Rollouts web provider ----------------------------------------------------------------
class ArgoJudgeRequest(_Strict):
    """What an AnalysisTemplate sends (JSON body, or the same names as query parameters)."""

    config: str | dict[str, Any] = Field(description="stored config id or name, or inline")
    baseline: str = Field(min_length=1, description="baseline scope value")
    canary: str = Field(min_length=1, description="canary scope value")
    location: str | None = None
    lookback: str | None = Field(
        default=None, description="window ending now, e.g. 10m",
        json_schema_extra=DURATION,
    )
    start: datetime | None = None
    end: datetime | None = None
    step: int | None = Field(default=None, gt=0, le=MAX_STEP_SECONDS, description="seconds")
    source: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    thresholds: ThresholdsIn | None = None
    run_id: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="sequential run id (e.g. rollout name + revision): each call judges only "
        "the points since the previous call of this run, anytime-valid",
    )
    final: bool = Field(default=False, description="the run's last call (sequential only)")


class MetricSummaryOut(BaseModel):
    name: str
    classification: str
    reason: str
    baseline_mean: float | None = None
    canary_mean: float | None = None
    estimate: float | None = None
    low: float | None = None
    high: float | None = None


class ArgoJudgeOut(BaseModel):
    """``verdict`` is ``pass``, ``marginal``, ``fail`` (HTTP 200) or ``error`` (HTTP 503 when a
    metric source or the database failed, 504 past the time budget, 401/403 without a valid
    token, 404/405 for a wrong URL or method, 413 for an oversized body: Argo's Error
    measurement; HTTP 200 for a request that cannot be served: Inconclusive); the booleans
    make ``successCondition: result.pass`` style conditions read naturally."""

    model_config = ConfigDict(populate_by_name=True)

    verdict: Literal["pass", "marginal", "fail", "error"]
    status: Literal["pass", "marginal", "fail", "error", "continue", "inconclusive"] = Field(
        default="error",
        description="the verdict; for a sequential run its status (continue: keep polling)",
    )
    score: float | None = None
    pass_: bool = Field(default=False, alias="pass", serialization_alias="pass")
    marginal: bool = False
    fail: bool = False
    reason: str = ""
    error: str | None = None
    config: str | None = None
    analysis_id: str | None = None
    failed_metrics: list[str] = Field(default_factory=list)
    metrics: list[MetricSummaryOut] = Field(default_factory=list)
    sequential: SequentialOut | None = None
    report_url: str | None = Field(
        default=None,
        description="the report page of this analysis or sequential run "
        "(CANARY_JUDGE_EXTERNAL_URL)",
    )


# -- Flagger webhook ---------------------------------------------------------------------------
class FlaggerMetadata(_Strict):
    """The keys canary-judge reads from a webhook's ``metadata`` (all strings, as Flagger
    sends them). Unknown keys are rejected so a typo does not silently judge the wrong thing."""

    config: str = Field(min_length=1)
    baseline: str | None = None
    canary: str | None = None
    location: str | None = None
    lookback: str | None = None
    step: str | None = None
    source: str | None = None
    pass_threshold: str | None = Field(default=None, alias="pass")
    marginal_threshold: str | None = Field(default=None, alias="marginal")
    allow_marginal: str | None = Field(
        default=None, alias="allowMarginal", description="'true': marginal answers 200"
    )
    sequential: str | None = Field(
        default=None, description="'true': a sequential run (each call judges the new points)"
    )
    run_id: str | None = Field(
        default=None, alias="runId",
        description="sequential run id (default: <namespace>/<name>/<checksum>)",
    )
    gate: str | None = Field(
        default=None,
        description="'promotion' on a confirm-promotion hook: an undecided run answers 425 "
        "(promotion waits) instead of 202",
    )


def _flagger_metadata_schema() -> dict[str, Any]:
    """:class:`FlaggerMetadata` as JSON Schema, with ``token`` (read and removed by
    ``judge.api.auth`` before the door sees the metadata)."""
    schema = FlaggerMetadata.model_json_schema(by_alias=True)
    properties: dict[str, Any] = schema["properties"]
    for name, described in properties.items():
        # Flagger's metadata is a map of strings: a key is given as text, or left out.
        described.pop("anyOf", None)
        described.pop("default", None)
        described["type"] = "string"
        if name == "lookback":
            described.update(DURATION)
        elif name == "step":
            described["pattern"] = r"^\s*(?=.*[1-9])\d+(\.\d+)?\s*$"
        elif name in ("pass", "marginal"):
            described["pattern"] = r"^\s*(100(\.0+)?|\d{1,2}(\.\d+)?)\s*$"
    properties["token"] = {
        "type": "string",
        "description": "an API token, for a webhook that cannot send headers",
    }
    return schema


class FlaggerHook(_Lenient):
    """Flagger's webhook payload (``CanaryWebhookPayload``). ``metadata`` is a string map to
    Flagger; the keys canary-judge reads are :class:`FlaggerMetadata`'s (``config`` at least),
    and that is the schema published for it."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema.setdefault("required", []).append("metadata")
    )

    name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    phase: str = ""
    checksum: str | None = None
    metadata: Annotated[dict[str, str], WithJsonSchema(_flagger_metadata_schema())] = Field(
        default_factory=dict
    )


class FlaggerOut(BaseModel):
    verdict: Literal["pass", "marginal", "fail", "error"]
    score: float | None = None
    reason: str
    error: str | None = None
    canary: str
    phase: str
    analysis_id: str | None = None
    failed_metrics: list[str] = Field(default_factory=list)
    sequential: SequentialOut | None = None
    report_url: str | None = Field(
        default=None,
        description="the report page of this analysis or sequential run "
        "(CANARY_JUDGE_EXTERNAL_URL)",
    )


# -- health ------------------------------------------------------------------------------------
class SourceHealthOut(BaseModel):
    """What was last seen of a metric source (a health check or a fetch)."""

    status: Literal["up", "down", "unknown"]
    kind: str | None = Field(default=None, description="the failure kind while down")
    error: str | None = None
    checked_at: str | None = None
    via: Literal["check", "fetch"] | None = None
    down_since: str | None = None
    last_up: str | None = None


class HealthOut(BaseModel):
    status: str
    detail: str | None = None
    database: str | None = None
    sources: dict[str, SourceHealthOut] | None = Field(
        default=None,
        description="metric sources' health: shown, never a reason to take the pod out of "
        "service (an outage of a source is not fixed by restarting canary-judge)",
    )
