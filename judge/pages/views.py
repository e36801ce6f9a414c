"""What a report page shows, from what the store keeps: a report's JSON (``Report.to_dict()``)
and the config snapshot it was judged with, turned into rows a template prints.

Pure functions over plain data (no store, no HTTP, no plotting), so the service's pages and the
CLI's ``report --html`` show the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from judge.config import (
    CanaryConfig,
    EffectMeasure,
    MannWhitneyTest,
    MetricConfig,
    RateRatioTest,
)
from judge.errors import ConfigError

FAILED = frozenset(("high", "low", "nodata_fail", "error"))
"""Classifications that count against the canary (``judge.report.Classification.failed``)."""


@dataclass(frozen=True)
class MetricRow:
    """One metric of a report, as the page prints it."""

    index: int
    """Position in the report's ``metrics`` (names are user input: URLs use this)."""
    name: str
    classification: str
    reason: str
    groups: tuple[str, ...]
    test: str
    direction: str
    critical: bool
    critical_failure: bool
    muted: bool
    failed: bool
    estimate: str
    interval: str
    allowed: str
    baseline: str
    canary: str
    unit: str | None = None


@dataclass(frozen=True)
class GroupRow:
    name: str
    score: str
    weight: str
    counts: str


@dataclass(frozen=True)
class ReportView:
    """A report's verdict, why, its groups and its metrics (failing and critical first)."""

    verdict: str
    score: str
    reason: str
    mode: str
    config_name: str
    thresholds: str
    groups: tuple[GroupRow, ...]
    metrics: tuple[MetricRow, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def number(value: Any, *, unit: str | None = None, signed: bool = False) -> str:
    """A number for a page: 4 significant digits, ``-`` for a missing one, the unit after."""
    if value is None:
        return "-"
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(as_float):
        return "-"
    if math.isinf(as_float):
        text = "∞" if as_float > 0 else "-∞"
    else:
        text = f"{as_float:+.4g}" if signed else f"{as_float:.4g}"
    return f"{text} {unit}" if unit else text


def metric_order(row: MetricRow) -> tuple[int, int]:
    """Critical failures first, then other failures, then the critical metrics, then the rest;
    report order within each."""
    if row.critical_failure:
        rank = 0
    elif row.failed and not row.muted:
        rank = 1
    elif row.critical:
        rank = 2
    else:
        rank = 3
    return rank, row.index


def parse_config(raw: Mapping[str, Any] | None) -> CanaryConfig | None:
    """A stored config snapshot, or ``None`` when it no longer reads (then the page shows the
    report without the config's limits rather than failing)."""
    if not raw:
        return None
    try:
        return CanaryConfig.from_dict(raw)
    except (ConfigError, ValueError):
        return None


def config_metric(config: CanaryConfig | None, name: str) -> MetricConfig | None:
    """The metric ``name`` of ``config``; a split metric (``name{tag=value}``) is its parent's."""
    if config is None:
        return None
    for candidate in (name, name.split("{", 1)[0]):
        try:
            return config.metric(candidate)
        except KeyError:
            continue
    return None


def allowed_effect(metric: MetricConfig | None, critical: bool) -> str:
    """The change a metric may make without failing, in words."""
    if metric is None:
        return "-"
    test = metric.test
    if isinstance(test, MannWhitneyTest):
        limits = test.effect_size
        up = limits.critical_increase if critical else limits.allowed_increase
        down = limits.critical_decrease if critical else limits.allowed_decrease
        neutral = limits.neutral()
        what = "mean ratio" if limits.measure is EffectMeasure.MEAN_RATIO else "CLES"
        parts = []
        if metric.direction.value in ("increase", "either"):
            parts.append(f"up to {what} {up:g}" if up != neutral else "no significant increase")
        if metric.direction.value in ("decrease", "either"):
            parts.append(f"down to {what} {down:g}" if down != neutral
                         else "no significant decrease")
        return "; ".join(parts)
    if isinstance(test, RateRatioTest):
        return (f"rate ratio up to {test.allowed_increase:g} (material beyond "
                f"{test.margin:g}x)" if metric.direction.value != "decrease"
                else f"rate ratio down to {test.allowed_decrease:g}")
    settings = test.model_dump(mode="json", exclude_none=True, exclude={"kind"})
    return ", ".join(f"{key} {value}" for key, value in settings.items()) or test.kind


def _side(raw: Mapping[str, Any] | None, unit: str | None) -> str:
    side = raw or {}
    return f"{number(side.get('mean'), unit=unit)} (n={side.get('count', 0)})"


def metric_row(index: int, raw: Mapping[str, Any], config: CanaryConfig | None) -> MetricRow:
    """One metric of a stored report."""
    name = str(raw.get("name", ""))
    metric = config_metric(config, name)
    unit = metric.unit if metric is not None else None
    test = str(raw.get("test", ""))
    ratio = test in ("rate_ratio", "sequential_rate_ratio")
    low, high = raw.get("low"), raw.get("high")
    confidence = raw.get("confidence")
    interval = "-"
    if low is not None or high is not None:
        share = f"{float(confidence):.0%} " if confidence is not None else ""
        shown_unit = None if ratio else unit
        interval = (f"{share}[{number(low, signed=not ratio)}, "
                    f"{number(high, signed=not ratio)}]{f' {shown_unit}' if shown_unit else ''}")
    classification = str(raw.get("classification", ""))
    critical = bool(raw.get("critical", False))
    return MetricRow(
        index=index,
        name=name,
        classification=classification,
        reason=str(raw.get("reason", "")),
        groups=tuple(str(g) for g in raw.get("groups") or ()),
        test=test,
        direction=str(raw.get("direction", "")),
        critical=critical,
        critical_failure=bool(raw.get("critical_failure", False)),
        muted=bool(raw.get("muted", False)),
        failed=classification in FAILED,
        estimate=(f"ratio {number(raw.get('estimate'))}" if ratio
                  else number(raw.get("estimate"), unit=unit, signed=True)),
        interval=interval,
        allowed=allowed_effect(metric, critical),
        baseline=_side(raw.get("baseline"), unit),
        canary=_side(raw.get("canary"), unit),
        unit=unit,
    )


def report_view(report: Mapping[str, Any], config: CanaryConfig | None) -> ReportView:
    """A stored report (``Report.to_dict()``) as the page shows it."""
    rows = [metric_row(i, raw, config) for i, raw in enumerate(report.get("metrics") or ())]
    groups = tuple(
        GroupRow(
            name=str(g.get("name", "")),
            score=number(g.get("score")),
            weight=number(g.get("weight")),
            counts=", ".join(f"{k} {v}" for k, v in sorted(dict(g.get("counts") or {}).items())
                             if v),
        )
        for g in report.get("groups") or ()
    )
    thresholds = dict(report.get("thresholds") or {})
    details = dict(report.get("details") or {})
    notes: list[str] = []
    failures = details.get("fetch_failures")
    if isinstance(failures, Mapping):
        notes.extend(f"not fetched: {name}: {why}" for name, why in failures.items())
    return ReportView(
        verdict=str(report.get("verdict", "")),
        score=number(report.get("score")),
        reason=str(report.get("reason", "")),
        mode=str(report.get("mode", "")),
        config_name=str(report.get("config_name", "")),
        thresholds=(f"pass >= {number(thresholds.get('pass'))}, "
                    f"marginal >= {number(thresholds.get('marginal'))}"),
        groups=groups,
        metrics=tuple(sorted(rows, key=metric_order)),
        notes=tuple(str(n) for n in notes),
    )


def poll_entries(polls: Sequence[Mapping[str, Any]], name: str) -> list[dict[str, Any]]:
    """Per poll (``{"call", "metrics": [...]}``), the entry of metric ``name`` with its call."""
    entries = []
    for poll in polls:
        for entry in poll.get("metrics") or ():
            if entry.get("name") == name:
                entries.append({**entry, "call": poll.get("call")})
                break
    return entries


def _scores(metric: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The score confidence sequences a sequential judge reports for a metric (the default
    judge's ``location (high)``, ``spread (high)``...: mean, low, high in robust SDs)."""
    details = dict(metric.get("details") or {})
    return {
        str(key): {"mean": value.get("mean"), "low": value.get("low"), "high": value.get("high")}
        for key, value in details.items()
        if isinstance(value, Mapping) and {"mean", "low", "high"} <= set(value)
    }


def poll_summary(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a run keeps of each poll per metric (see ``Store.add_run_poll``): classification,
    points, the estimate and interval, and the scores' confidence sequences (``scores``), which
    is what the sequential judge reports instead of a shift."""
    return [
        {
            "name": m.get("name"),
            "classification": m.get("classification"),
            "estimate": m.get("estimate"),
            "low": m.get("low"),
            "high": m.get("high"),
            "scores": _scores(m),
            "points": dict(m.get("details") or {}).get("points"),
        }
        for m in report.get("metrics") or ()
    ]
