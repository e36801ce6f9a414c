"""The library's entry points for data in hand: ``judge()`` (a fixed-horizon judgment),
``poll()`` (one poll of a sequential run) and ``classify_metric()`` (one metric alone).

This module translates what callers give (DataFrames, mappings of array-likes, per-metric
pairs) into each metric's :class:`~judge.judges.common.MetricData` and hands it to the judge of
``config.mode`` (:func:`judge.judges.judge_for`); it never fetches anything.

>>> from judge import CanaryConfig, judge
>>> config = CanaryConfig.from_dict({"metrics": [{"name": "latency", "direction": "increase"}]})
>>> report = judge(config, {"latency": [10, 11, 12, 11, 10, 12]}, {"latency": [30, 31, 29, 32]})
>>> report.verdict.value, report.metric("latency").classification.value
('fail', 'high')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeAlias

import pandas as pd
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from judge.config import CanaryConfig, JudgeMode, MetricConfig, ScoreThresholds
from judge.judges import judge_for
from judge.judges.common import FetchFailure, MetricData, MetricInput, MissingSeries
from judge.judges.state import SequentialState
from judge.report import MetricResult, Report
from judge.scoring import resolve_thresholds
from judge.tables import check_tables, time_warnings

__all__ = [
    "FetchFailure",
    "SeriesInput",
    "classify_metric",
    "inputs_from_tables",
    "judge",
    "judge_series",
    "poll",
    "validate_config",
]

SeriesInput: TypeAlias = "tuple[Any, Any] | MetricData | FetchFailure"
"""One metric's input to :func:`judge_series`: ``(baseline, canary)`` array-likes (pandas
Series keep their timestamps), a :class:`~judge.judges.common.MetricData`, or a
:class:`FetchFailure`."""

Thresholds: TypeAlias = "ScoreThresholds | Mapping[str, float] | None"


def validate_config(config: CanaryConfig | Mapping[str, Any]) -> CanaryConfig:
    """The validated config; every problem (pydantic's ``ValidationError`` naming the path) is
    raised here, before anything is judged."""
    if not isinstance(config, CanaryConfig):
        config = CanaryConfig.from_dict(config)
    judge_of_mode = judge_for(config.mode)
    problems: list[InitErrorDetails] = []
    for index, metric in enumerate(config.metrics):
        if metric.test.kind not in judge_of_mode.test_kinds:
            # e.g. a default-mode-only test (quantiles, rate_ratio) in a kayenta-mode config
            known = ", ".join(sorted(judge_of_mode.test_kinds))
            message = (f"no classifier for mode {config.mode.value!r} and test "
                       f"{metric.test.kind!r} (the {config.mode.value} judge has: {known})")
            problems.append(
                InitErrorDetails(
                    type=PydanticCustomError("unsupported_test", message),
                    loc=("metrics", index, "test", "kind"),
                    input=metric.test.kind,
                )
            )
    if problems:
        raise ValidationError.from_exception_data("CanaryConfig", problems)
    return config


def _as_input(given: SeriesInput) -> MetricInput:
    if isinstance(given, MetricData | FetchFailure):
        return given
    baseline, canary = given
    return MetricData.of(baseline, canary)


def judge_series(
    config: CanaryConfig | Mapping[str, Any],
    series: Mapping[str, SeriesInput],
    *,
    thresholds: Thresholds = None,
) -> Report:
    """Judge per-metric series: ``series[metric name]`` is ``(baseline, canary)`` (lists,
    numpy arrays or pandas Series, any lengths), a ``MetricData`` or a :class:`FetchFailure`.

    A metric missing from ``series`` is ``nodata``; names in ``series`` that the config does
    not have are ignored and listed in ``report.details["ignored_series"]``. Never raises for
    a metric's data; an invalid config or thresholds raise pydantic's ``ValidationError``.
    """
    config = validate_config(config)
    limits = resolve_thresholds(config, thresholds)
    data = {name: _as_input(given) for name, given in series.items()}
    return judge_for(config.mode).judge(config, data, limits)


def _lookup(table: pd.DataFrame | Mapping[str, Any], column: str) -> Any | None:
    if isinstance(table, pd.DataFrame):
        return table[column] if column in table.columns else None
    return table.get(column)


def inputs_from_tables(
    config: CanaryConfig,
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
) -> dict[str, MetricInput]:
    """Each metric's input from two tables (DataFrames with one column per metric, or
    mappings column -> array-like): a metric reads its :attr:`~judge.config.MetricConfig.column`;
    count tests' denominators come along under their own names. A column missing from either
    side makes that metric a :class:`~judge.judges.common.MissingSeries` naming it."""
    data: dict[str, MetricInput] = {}
    for metric in config.metrics:
        column = metric.column
        sides = {"baseline": _lookup(baseline, column), "canary": _lookup(canary, column)}
        absent = [side for side, values in sides.items() if values is None]
        if absent:
            # A missing column is no data whatever the NaN strategy: Kayenta's "replace"
            # pass is about empty fetches, not misspelt columns.
            data[metric.name] = MissingSeries(
                f"Column {column!r} is missing from the {' and '.join(absent)} data.",
                {"column": column, "missing_from": absent},
            )
        else:
            data[metric.name] = MetricData.of(sides["baseline"], sides["canary"])
    for column in config.denominators - set(data):
        denominator = (_lookup(baseline, column), _lookup(canary, column))
        if denominator[0] is not None and denominator[1] is not None:
            data[column] = MetricData.of(*denominator)
    return data


def judge(
    config: CanaryConfig | Mapping[str, Any],
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
    *,
    thresholds: Thresholds = None,
) -> Report:
    """Is the canary as good as the baseline? Judge every metric of ``config`` and score them.

    ``baseline`` and ``canary`` are pandas DataFrames with one column per metric (other
    columns, such as a timestamp, are ignored; a ``DatetimeIndex`` gives the points their
    timestamps) or mappings from column name to an array-like. A metric reads the column its
    ``query: {type: column, column: ...}`` names, else the column named like the metric.
    ``thresholds`` (a ``ScoreThresholds`` or ``{"pass": 95, "marginal": 75}``) overrides the
    config's.

    A call that cannot be meant raises :class:`judge.errors.DataError` saying what was expected
    (:func:`judge.tables.check_tables`): a side that is not a table (a Series, an array), a
    metric column that neither table has (the message lists the columns there are), one side's
    timestamps timezone-aware and the other's naive. Bad *data* never raises: a column that one
    side lacks makes its metric ``nodata`` (``nodata_fail`` if it must have data) with a reason
    naming the column, values that are not numbers make it ``error``. Sides that do not overlap
    in time are judged as independent samples, with a sentence in
    ``report.details["warnings"]``. An invalid config raises pydantic's ``ValidationError``
    before anything is judged.
    """
    config = validate_config(config)
    limits = resolve_thresholds(config, thresholds)
    check_tables(config, baseline, canary)
    report = judge_for(config.mode).judge(config, inputs_from_tables(config, baseline, canary),
                                          limits)
    warnings = time_warnings(baseline, canary)
    if not warnings:
        return report
    return dataclasses.replace(
        report, details={**report.details, "warnings": [*report.details.get("warnings", ()),
                                                        *warnings]})


def poll(
    config: CanaryConfig | Mapping[str, Any],
    state: SequentialState,
    baseline_new: pd.DataFrame | Mapping[str, Any],
    canary_new: pd.DataFrame | Mapping[str, Any],
    *,
    now: str | None = None,
    final: bool = False,
) -> tuple[Report, SequentialState]:
    """One poll of a sequential (anytime-valid) run: the points since the last poll in (tables
    as for :func:`judge`), the report and the run's new state out; ``state`` is not changed.

    Start a run with ``SequentialState.new(run_id, config.name)``; pass ``final=True`` on the
    run's last poll. ``report.details["sequential"]["status"]`` says ``continue`` (keep
    polling), ``pass``, ``fail`` or ``inconclusive`` (see
    :class:`judge.analysis.SequentialStatus`). Only the default judge has a sequential mode.
    """
    config = validate_config(config)
    # A poll may bring new points for some metrics only: no column is required.
    check_tables(config, baseline_new, canary_new, require_columns=False)
    data = inputs_from_tables(config, baseline_new, canary_new)
    new_data = {name: given for name, given in data.items() if isinstance(given, MetricData)}
    return judge_for(config.mode).poll(config, state, new_data, now=now, final=final)


def classify_metric(
    metric: MetricConfig, mode: JudgeMode, baseline: Any, canary: Any
) -> MetricResult:
    """Classify one metric on its own, at its own level (its own test call; no family-wise
    correction). For notebooks and reference suites; :func:`judge` batches all metrics."""
    return judge_for(mode).classify(metric, baseline, canary)
