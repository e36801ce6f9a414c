"""What every door translates its payload into: a config, a window, and an
:class:`AnalysisPlan`, run by :func:`run_plan` (synchronously, within a time budget, see
:mod:`judge.api.service`) or stored for :class:`judge.api.runner.AnalysisRunner` (in the
background). A plan is stored as JSON with its analysis, so a restarted process can run it again
unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml
from fastapi import Request

from judge.analysis import analyze_async
from judge.api.settings import Settings
from judge.api.sources import SourceRegistry
from judge.api.store import Store, StoredConfig
from judge.config import (
    CanaryConfig,
    KayentaIgnoredFieldWarning,
    ScoreThresholds,
    config_to_kayenta,
    looks_like_kayenta,
)
from judge.errors import ConfigError, ConflictError, NotFoundError
from judge.fetching import SeriesPairs
from judge.ports import MetricSource, Scope, ScopePair, Scopes
from judge.report import Report

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""``on_progress(done, total)``: metrics fetched so far, of all metrics."""

# Fields Kayenta adds to a stored config (ids and timestamps): not part of its meaning.
KAYENTA_BOOKKEEPING = frozenset(
    ("id", "createdTimestamp", "updatedTimestamp", "createdTimestampIso", "updatedTimestampIso")
)

if TYPE_CHECKING:
    from judge.analysis import JudgeSeries


BadRequestError = ConfigError
"""The request cannot be served as given; ``field`` names the part that is wrong (the
library's :class:`~judge.errors.ConfigError`, under the name the doors use)."""


# -- configs -------------------------------------------------------------------------------------
def parse_config_document(document: Mapping[str, Any]) -> tuple[CanaryConfig, str]:
    """A config sent as native or Kayenta JSON (recognised by its shape), and which it was.
    Fields a Kayenta import drops (Kayenta ignores them too) are logged as warnings."""
    if looks_like_kayenta(document):
        cleaned = {k: v for k, v in document.items() if k not in KAYENTA_BOOKKEEPING}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KayentaIgnoredFieldWarning)
            config = CanaryConfig.from_kayenta(cleaned)
        for warning in caught:
            logger.warning("Kayenta config field dropped on import",
                           extra={"config": config.name, "detail": str(warning.message)})
        return config, "kayenta"
    return CanaryConfig.from_dict(document), "native"


def stored_fields(document: Mapping[str, Any]) -> tuple[CanaryConfig, dict[str, Any]]:
    """A config document parsed, and the fields ``Store.create_config`` / ``update_config``
    store for it (Kayenta JSON is kept as sent, to be given back as sent)."""
    config, fmt = parse_config_document(document)
    return config, {
        "name": config.name,
        "native": config.to_dict(),
        "applications": config.applications,
        "original": dict(document) if fmt == "kayenta" else None,
        "original_format": fmt,
    }


def resolve_config(
    store: Store,
    *,
    inline: Mapping[str, Any] | None,
    config_ref: str | None,
    version: int | None = None,
) -> tuple[CanaryConfig, StoredConfig | None]:
    """The config of a request: inline, or stored (by id, else by name; optionally a version).

    Raises :class:`BadRequestError` naming ``config`` or ``config_id``; pydantic's
    ``ValidationError`` for an invalid inline config (its locations name the field).
    """
    if inline is not None:
        config, _ = parse_config_document(inline)
        return config, None
    if config_ref is None:
        raise BadRequestError("give a config inline or a stored config's id", "config_id")
    try:
        stored = store.find_config(config_ref)
        if version is not None:
            stored = store.get_config(stored.id, version)
    except NotFoundError as exc:
        raise BadRequestError(str(exc), "config_id") from exc
    return CanaryConfig.from_dict(stored.native), stored


_CONFIG_DOCUMENT = {
    "type": "object",
    "required": ["metrics"],
    "properties": {"metrics": {"type": "array", "items": {"type": "object"}}},
    "description": "a canary config, native (docs/configuration.md) or Kayenta's JSON; what a "
    "config means (metric names, groups, tests, thresholds) is checked when it is read, and a "
    "config that breaks a rule gets a 400/422 naming the field",
}

CONFIG_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _CONFIG_DOCUMENT},
            "application/yaml": {"schema": _CONFIG_DOCUMENT},
        },
        "description": "a canary config, native or Kayenta JSON (or the same as YAML)",
    }
}
"""The request body of the routes that store a config (read by :func:`config_document`, so
FastAPI cannot describe it by itself)."""


async def config_document(request: Request) -> dict[str, Any]:
    """A config sent in a request body: JSON or YAML, whatever the content type says (``curl
    --data-binary @checkout.yaml`` sends YAML as a form; YAML is read when JSON is not)."""
    raw = await request.body()
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        try:
            document = yaml.safe_load(raw.decode())
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise BadRequestError(f"body: not valid JSON or YAML ({exc})", "body") from exc
    if not isinstance(document, dict):
        raise BadRequestError("body: a config must be an object", "body")
    return document


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class NoKayentaFormError(ConflictError):
    """A stored config that Kayenta JSON cannot express (a demo or inline-data query, a test
    Kayenta lacks): 409, as the request is fine and the config's content is what conflicts."""


def kayenta_document(stored: StoredConfig) -> dict[str, Any]:
    """A stored config as Kayenta JSON: as it was sent, or exported from the native form."""
    if stored.original is not None and stored.original_format == "kayenta":
        document = dict(stored.original)
    else:
        try:
            document = config_to_kayenta(CanaryConfig.from_dict(stored.native))
        except ConfigError as exc:
            raise NoKayentaFormError(
                f"config {stored.name!r} has no Kayenta form: {exc}; read it with "
                f"GET /v1/configs/{stored.id}"
            ) from exc
    document.update(
        name=stored.name,
        applications=list(stored.applications) or document.get("applications", []),
        createdTimestamp=millis(stored.created_at),
        createdTimestampIso=stored.created_at.isoformat(),
        updatedTimestamp=millis(stored.updated_at),
        updatedTimestampIso=stored.updated_at.isoformat(),
    )
    document.pop("id", None)
    return document


# -- windows -------------------------------------------------------------------------------------
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, field_name: str = "lookback") -> timedelta:
    """``"10m"``, ``"1h30m"``, ``"90s"`` (Prometheus/Go style) or plain seconds (``"600"``)."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    else:
        position, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(cleaned):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position != len(cleaned) or not cleaned:
            raise BadRequestError(
                f"{field_name}: {text!r} is not a duration (examples: 10m, 1h30m, 90s, 600)",
                field_name,
            )
    if seconds <= 0:
        raise BadRequestError(f"{field_name}: must be positive, got {text!r}", field_name)
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:  # beyond any window a source could answer
        raise BadRequestError(f"{field_name}: {text!r} is too long", field_name) from exc


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def window(
    *,
    lookback: str | None,
    start: datetime | None,
    end: datetime | None,
    default_lookback: str,
    now: datetime,
) -> tuple[datetime, datetime]:
    """``(start, end)`` from explicit bounds, or a lookback ending ``now`` (the service's
    clock: :func:`judge.api.service.settings_clock`)."""
    if start is not None and end is not None:
        start, end = _aware(start), _aware(end)
        if end <= start:
            raise BadRequestError(f"end ({end.isoformat()}) must be after start", "end")
        return start, end
    if start is not None or end is not None:
        raise BadRequestError("give both 'start' and 'end', or a lookback", "start")
    finish = _aware(now)
    return finish - parse_duration(lookback or default_lookback), finish


# -- plans ---------------------------------------------------------------------------------------
def _scope_json(scope: Scope) -> dict[str, Any]:
    return {
        "scope": scope.scope,
        "location": scope.location,
        "start": scope.start.isoformat() if scope.start else None,
        "end": scope.end.isoformat() if scope.end else None,
        "step": scope.step.total_seconds() if scope.step else None,
        "params": dict(scope.params),
    }


def _scope_from_json(raw: Mapping[str, Any]) -> Scope:
    return Scope(
        scope=str(raw["scope"]),
        location=raw.get("location"),
        start=datetime.fromisoformat(raw["start"]) if raw.get("start") else None,
        end=datetime.fromisoformat(raw["end"]) if raw.get("end") else None,
        step=timedelta(seconds=float(raw["step"])) if raw.get("step") else None,
        params=dict(raw.get("params") or {}),
    )


def make_scope(
    scope: str,
    *,
    location: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    step_seconds: float | None = None,
    params: Mapping[str, str] | None = None,
    field_name: str = "scope",
) -> Scope:
    """A :class:`Scope`, with its validation errors reported against ``field_name``."""
    try:
        return Scope(
            scope=scope,
            location=location,
            start=_aware(start) if start else None,
            end=_aware(end) if end else None,
            step=timedelta(seconds=step_seconds) if step_seconds else None,
            params=dict(params or {}),
        )
    except ConfigError as exc:
        raise BadRequestError(f"{field_name}: {exc}", field_name) from exc
    except OverflowError as exc:  # a step no clock can count
        raise BadRequestError(f"{field_name}.step: {step_seconds!r} is too long",
                              f"{field_name}.step") from exc


@dataclass(frozen=True)
class AnalysisPlan:
    """Everything needed to run (and re-run) one analysis."""

    config: CanaryConfig
    scopes: Mapping[str, ScopePair]
    start: datetime
    end: datetime
    step: timedelta
    source: str | None = None
    thresholds: ScoreThresholds | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific bookkeeping stored with the plan (Kayenta's account names ...)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "scopes": {
                name: {"baseline": _scope_json(pair.baseline), "canary": _scope_json(pair.canary)}
                for name, pair in self.scopes.items()
            },
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "step": self.step.total_seconds(),
            "source": self.source,
            "thresholds": (
                self.thresholds.to_dict()
                if self.thresholds
                else None
            ),
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, config: CanaryConfig, raw: Mapping[str, Any]) -> AnalysisPlan:
        thresholds = raw.get("thresholds")
        return cls(
            config=config,
            scopes={
                name: ScopePair(
                    baseline=_scope_from_json(pair["baseline"]),
                    canary=_scope_from_json(pair["canary"]),
                )
                for name, pair in raw["scopes"].items()
            },
            start=datetime.fromisoformat(raw["start"]),
            end=datetime.fromisoformat(raw["end"]),
            step=timedelta(seconds=float(raw["step"])),
            source=raw.get("source"),
            thresholds=ScoreThresholds.model_validate(thresholds) if thresholds else None,
            extra=dict(raw.get("extra") or {}),
        )


def controller_plan(
    store: Store,
    settings: Settings,
    sources: SourceRegistry,
    *,
    config_inline: Mapping[str, Any] | None,
    config_ref: str | None,
    baseline: str,
    canary: str,
    location: str | None,
    params: Mapping[str, str],
    lookback: str | None,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    step_seconds: float | None,
    source: str | None,
    thresholds: Callable[[CanaryConfig], ScoreThresholds | None] | ScoreThresholds | None,
    extra: dict[str, Any] | None = None,
    field_prefix: str = "",
) -> tuple[AnalysisPlan, StoredConfig | None]:
    """The checked plan of a controller's check (Argo web, Flagger): one config, one scope
    pair, a window ending ``now`` (or ``start``..``end``). ``thresholds`` may depend on the
    config (a partial override). Errors name ``field_prefix + field``."""
    config, stored = resolve_config(store, inline=config_inline, config_ref=config_ref)
    if callable(thresholds):
        thresholds = thresholds(config)
    begin, finish = window(lookback=lookback, start=start, end=end,
                           default_lookback=settings.default_lookback, now=now)
    pair = ScopePair(
        baseline=make_scope(baseline, location=location, params=params,
                            field_name=f"{field_prefix}baseline"),
        canary=make_scope(canary, location=location, params=params,
                          field_name=f"{field_prefix}canary"),
    )
    plan = AnalysisPlan(
        config=config,
        scopes={"default": pair},
        start=begin,
        end=finish,
        step=timedelta(seconds=step_seconds or settings.default_step_seconds),
        source=source,
        thresholds=thresholds,
        extra=extra or {},
    )
    check_plan(plan, settings, sources)
    return plan, stored


def check_plan(plan: AnalysisPlan, settings: Settings, sources: SourceRegistry) -> None:
    """Refuse a plan before it runs: unknown source, scope names the config does not use,
    windows that would fetch more points than a source serves."""
    sources.resolve(plan.source)
    needed = {metric.scope_name for metric in plan.config.metrics}
    if len(plan.scopes) > 1:
        missing = needed - set(plan.scopes)
        if missing:
            raise BadRequestError(
                f"no scopes given for scope name(s) {sorted(missing)} used by the config's "
                f"metrics (given: {sorted(plan.scopes)})",
                "scopes",
            )
    for pair in plan.scopes.values():
        for scope in (pair.baseline, pair.canary):
            start = scope.start or plan.start
            end = scope.end or plan.end
            step = scope.step or plan.step
            points = (end - start) / step
            if points > settings.max_points_per_series:
                raise BadRequestError(
                    f"window {start.isoformat()}..{end.isoformat()} at step "
                    f"{step.total_seconds():g}s is {points:.0f} points per series, above "
                    f"{settings.max_points_per_series}; use a larger step or a shorter window",
                    "step",
                )


def routed_sources(plan: AnalysisPlan, sources: SourceRegistry) -> dict[str, MetricSource]:
    """Every source by name, the plan's preferred one also as ``"default"``:
    ``judge.fetching.resolve_source`` prefers it for metrics of its query type and sends the
    others to a source of theirs (a Datadog metric to the Datadog source when the request
    named Prometheus)."""
    preferred, named = sources.resolve(plan.source)
    routed: dict[str, MetricSource] = dict(named)
    if preferred is not None:
        routed["default"] = named[preferred]
    return routed


def plan_scopes(plan: AnalysisPlan) -> Scopes:
    """The plan's scopes for the analysis: one scope pair (the native shorthand, or a Kayenta
    request with one scope) applies to every metric whatever its scope_name, as a single-scope
    Kayenta execution does."""
    return next(iter(plan.scopes.values())) if len(plan.scopes) == 1 else plan.scopes


JUDGE_RESERVE_SECONDS = 1.5
"""Of a time budget, what fetching leaves for judging, storing and answering (a quarter of
the budget when that is less): with ``CANARY_JUDGE_SYNC_TIMEOUT_SECONDS`` at 8 s, fetching
(retries and backoff included) ends by 6.5 s and the answer is sent by 8 s, under the
controllers' 10 s."""


def fetch_deadline(budget: float) -> float:
    """Seconds the fetching of an analysis with ``budget`` seconds in all may take."""
    return budget - min(JUDGE_RESERVE_SECONDS, budget / 4)


async def run_plan(
    plan: AnalysisPlan,
    sources: SourceRegistry,
    *,
    on_progress: ProgressCallback | None = None,
    deadline: float | None = None,
    on_pairs: Callable[[SeriesPairs], None] | None = None,
    judge_with: JudgeSeries | None = None,
) -> Report:
    """Fetch both sides of every metric and judge them (``judge.analysis.analyze_async``),
    the fetching within ``deadline`` seconds (retries and backoff included); ``on_pairs``
    receives the series judged, ``judge_with`` judges them (the service: its judging
    workers)."""
    return await analyze_async(
        plan.config,
        routed_sources(plan, sources),
        plan_scopes(plan),
        start=plan.start,
        end=plan.end,
        step=plan.step,
        thresholds=plan.thresholds,
        on_progress=on_progress,
        deadline=deadline,
        on_pairs=on_pairs,
        judge_with=judge_with,
    )


def outcome_cause(report: Report) -> str:
    """The cause of an error outcome, for the ``error`` field of an analysis: its reason."""
    return report.reason
