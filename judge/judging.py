"""``judge()``: a config and baseline/canary data in, a :class:`~judge.report.Report` out.

This module wires the steps (``judge.classify`` per metric, one batched Mann-Whitney call,
``judge.scoring``) and translates the accepted inputs; it never fetches anything.

>>> from judge import CanaryConfig, judge
>>> config = CanaryConfig.from_dict({"metrics": [{"name": "latency", "direction": "increase"}]})
>>> report = judge(config, {"latency": [10, 11, 12, 11, 10, 12]}, {"latency": [30, 31, 29, 32]})
>>> report.verdict.value, report.metric("latency").classification.value
('fail', 'high')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import pandas as pd
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

# default_judge registers the default-mode handlers (mann_whitney, quantiles, rate_ratio).
from judge import default_judge
from judge.classify import (
    MannWhitneyRequest,
    Plan,
    Prepared,
    error_result,
    handler_for,
    nodata_result,
    prepare,
    requests_of,
)
from judge.config import CanaryConfig, JudgeMode, MetricConfig, ScoreThresholds
from judge.queries import ColumnQuery
from judge.report import MetricResult, Report
from judge.scoring import resolve_thresholds, score_report
from judge.stats import MannWhitneyResult, mann_whitney_many

__all__ = ["FetchFailure", "SeriesInput", "judge", "judge_series", "validate_config"]


@dataclass(frozen=True)
class FetchFailure:
    """Stands in for a metric's data when fetching it failed; the metric becomes ``error``
    with this reason (the other metrics are judged as usual)."""

    reason: str
    kind: str = "source"
    """Its ``judge.ports.FailureKind``; a source failure (an outage) of a scored metric makes
    the report an error outcome (``judge.scoring.score_report``)."""


SeriesInput: TypeAlias = "tuple[Any, Any] | FetchFailure"
"""One metric's input to :func:`judge_series`: ``(baseline, canary)`` array-likes, or a
:class:`FetchFailure`."""

Thresholds: TypeAlias = "ScoreThresholds | Mapping[str, float] | None"


def validate_config(config: CanaryConfig | Mapping[str, Any]) -> CanaryConfig:
    """The validated config; every problem (pydantic's ``ValidationError`` naming the path) is
    raised here, before anything is judged."""
    if not isinstance(config, CanaryConfig):
        config = CanaryConfig.from_dict(config)
    problems: list[InitErrorDetails] = []
    for index, metric in enumerate(config.metrics):
        try:
            handler_for(config.mode, metric.test.kind)
        except ValueError as exc:
            # e.g. a default-mode-only test (quantiles, rate_ratio) in a kayenta-mode config
            problems.append(
                InitErrorDetails(
                    type=PydanticCustomError("unsupported_test", str(exc).replace("{", "(")),
                    loc=("metrics", index, "test", "kind"),
                    input=metric.test.kind,
                )
            )
    if problems:
        raise ValidationError.from_exception_data("CanaryConfig", problems)
    return config


def _prepare_all(
    config: CanaryConfig,
    series: Mapping[str, SeriesInput],
    decided: Mapping[str, MetricResult],
) -> tuple[dict[str, MetricResult], list[tuple[Prepared, Plan]]]:
    done: dict[str, MetricResult] = dict(decided)
    pending: list[tuple[Prepared, Plan]] = []
    for metric in config.metrics:
        if metric.name in done:
            continue
        given = series.get(metric.name)
        if given is None:
            done[metric.name] = nodata_result(
                metric, config.mode, f"No data was given for metric {metric.name!r}."
            )
            continue
        if isinstance(given, FetchFailure):
            done[metric.name] = error_result(metric, given.reason, fetch_failure=given.kind)
            continue
        baseline, canary = given
        prepared = prepare(metric, config.mode, baseline, canary)
        if isinstance(prepared, MetricResult):
            done[metric.name] = prepared
            continue
        plan = handler_for(config.mode, metric.test.kind).plan(prepared)
        if isinstance(plan, MetricResult):
            done[metric.name] = plan
        else:
            pending.append((prepared, plan))
    return done, pending


def _run_tests(
    pending: list[tuple[Prepared, Plan]],
) -> dict[str, MannWhitneyResult]:
    """Every requested Mann-Whitney test, one batched call per distinct option set (one in
    practice: every metric of a Kayenta config asks for the same)."""
    results: dict[str, MannWhitneyResult] = {}
    for request in requests_of([plan for _, plan in pending]):
        batch = [p for p, plan in pending if plan == request]
        assert isinstance(request, MannWhitneyRequest)
        outcomes = mann_whitney_many(
            [(p.canary, p.baseline) for p in batch],
            confidence=request.confidence,
            correct=request.correct,
            method=request.method,
            interval_search=request.interval_search,
        )
        for prepared, outcome in zip(batch, outcomes, strict=True):
            results[prepared.metric.name] = outcome
    return results


def judge_series(
    config: CanaryConfig | Mapping[str, Any],
    series: Mapping[str, SeriesInput],
    *,
    thresholds: Thresholds = None,
) -> Report:
    """Judge per-metric series: ``series[metric name]`` is ``(baseline, canary)`` (lists,
    numpy arrays or pandas Series, any lengths) or a :class:`FetchFailure`.

    A metric missing from ``series`` is ``nodata``; names in ``series`` that the config does
    not have are ignored and listed in ``report.details["ignored_series"]``. Never raises for
    a metric's data; an invalid config or thresholds raise pydantic's ``ValidationError``.
    """
    config = validate_config(config)
    return _judge(config, series, resolve_thresholds(config, thresholds), {})


def _judge(
    config: CanaryConfig,
    series: Mapping[str, SeriesInput],
    limits: ScoreThresholds,
    decided: Mapping[str, MetricResult],
) -> Report:
    done, pending = _prepare_all(config, series, decided)
    tests = _run_tests(pending)
    batch = []
    for prepared, _plan in pending:
        name = prepared.metric.name
        handler = handler_for(config.mode, prepared.metric.test.kind)
        if handler is default_judge.DEFAULT_HANDLER:
            # Judged together below, vectorised over metrics and evaluated once each.
            batch.append(prepared)
            continue
        done[name] = handler.decide(prepared, tests.get(name))
    known = {m.name for m in config.metrics} | default_judge.denominators(config)
    ignored = sorted(name for name in series if name not in known)
    details: dict[str, Any] = {"ignored_series": ignored}
    if config.mode is JudgeMode.DEFAULT:
        # Count denominators, then the family-wise correction over all tested metrics.
        ordered, extra = default_judge.finish_default(config, done, batch, series)
        details.update(extra)
    else:
        ordered = [done[m.name] for m in config.metrics]
    report = score_report(config, ordered, limits, details=details)
    if config.mode is JudgeMode.DEFAULT:
        report = default_judge.state_evidence(report)
    return report


def _column(metric: MetricConfig) -> str:
    if isinstance(metric.query, ColumnQuery) and metric.query.column:
        return metric.query.column
    return metric.name


def _lookup(data: pd.DataFrame | Mapping[str, Any], column: str) -> Any | None:
    if isinstance(data, pd.DataFrame):
        return data[column] if column in data.columns else None
    return data.get(column)


def judge(
    config: CanaryConfig | Mapping[str, Any],
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
    *,
    thresholds: Thresholds = None,
) -> Report:
    """Is the canary as good as the baseline? Judge every metric of ``config`` and score them.

    ``baseline`` and ``canary`` are pandas DataFrames with one column per metric (other
    columns, such as a timestamp, are ignored) or mappings from column name to an array-like.
    A metric reads the column its ``query: {type: column, column: ...}`` names, else the
    column named like the metric. ``thresholds`` (a ``ScoreThresholds`` or
    ``{"pass": 95, "marginal": 75}``) overrides the config's.

    Bad data never raises: a missing column makes its metric ``nodata`` (``nodata_fail`` if it
    must have data) with a reason naming the column, values that are not numbers make it
    ``error``. An invalid config raises pydantic's ``ValidationError`` before anything is judged.
    """
    config = validate_config(config)
    limits = resolve_thresholds(config, thresholds)
    series: dict[str, SeriesInput] = {}
    missing: dict[str, MetricResult] = {}
    for metric in config.metrics:
        column = _column(metric)
        sides = {"baseline": _lookup(baseline, column), "canary": _lookup(canary, column)}
        absent = [side for side, values in sides.items() if values is None]
        if absent:
            # A missing column is no data whatever the NaN strategy: Kayenta's "replace"
            # pass is about empty fetches, not misspelt columns.
            missing[metric.name] = nodata_result(
                metric,
                config.mode,
                f"Column {column!r} is missing from the {' and '.join(absent)} data.",
                details={"column": column, "missing_from": absent},
            )
        else:
            series[metric.name] = (sides["baseline"], sides["canary"])
    for column in default_judge.denominators(config) - set(series):
        denominator = (_lookup(baseline, column), _lookup(canary, column))
        if denominator[0] is not None and denominator[1] is not None:
            series[column] = denominator
    return _judge(config, series, limits, missing)
