"""What every judge shares: the data it receives, preprocessing, and the results it cannot
judge (missing, unusable or failed data).

A judge receives, per metric name, a :class:`MetricData` (the baseline and canary series with
their timestamps when known), a :class:`FetchFailure` (the source failed: ``error``) or a
:class:`MissingSeries` (nothing was given: ``nodata``). :func:`prepare_all` turns that into
clean arrays per metric (:class:`Prepared`) or final results, the same way for every judge:

* values that are not numbers make the metric ``error``; infinite values are dropped and counted
  (``SideSummary.infinite_count``, and the reason says so), since neither the rank test nor a
  mean can use them; NaN follows the metric's NaN strategy; Kayenta's IQR outlier removal when
  configured; baseline and canary may have different lengths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from judge.config import JudgeMode, MetricConfig, NanStrategy, OutlierStrategy
from judge.errors import DataError
from judge.report import Classification, MetricResult, SideSummary
from judge.stats import apply_nan_strategy, remove_outliers_iqr
from judge.stats._descriptive import sorted_quantile

__all__ = [
    "FetchFailure",
    "MetricData",
    "MetricInput",
    "MissingSeries",
    "Prepared",
    "as_values",
    "empty_sides",
    "error_result",
    "metric_result",
    "nodata_result",
    "prepare",
    "prepare_all",
    "summarize_side",
]

FloatArray = npt.NDArray[np.float64]

TimeArray = npt.NDArray[np.datetime64]

BATCH_ROWS = 64
"""Metrics a batched test takes at once at most (the default judge's evaluation, Kayenta's
Mann-Whitney). Every row is judged on its own (a batch of one gives the same numbers), and
the intermediate arrays of a batch (ranks, pairwise selections, quantiles: several times its
input each) would otherwise be held for all metrics at once: 64 rows keep the per-call
overhead amortised, and the peak memory of 500 metrics x 1,440 points a side about 4x the
input instead of 14-26x (benchmarks/bench_batch.py)."""


def _times_of(values: Any) -> TimeArray | None:
    if isinstance(values, pd.Series) and isinstance(values.index, pd.DatetimeIndex):
        index = values.index
        if index.tz is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        return index.to_numpy(dtype="datetime64[ns]")
    return None


@dataclass(frozen=True)
class MetricData:
    """One metric's baseline and canary series, time-indexed when the timestamps are known.

    ``baseline`` / ``canary`` hold the values as given (a list, numpy array or pandas Series;
    checked when the metric is judged, so one bad series makes only its metric ``error``);
    ``baseline_times`` / ``canary_times`` their UTC timestamps (``None``: indexed by position).
    :meth:`of` reads the timestamps of pandas Series with a ``DatetimeIndex``.
    """

    baseline: Any
    canary: Any
    baseline_times: TimeArray | None = field(default=None, compare=False)
    canary_times: TimeArray | None = field(default=None, compare=False)

    @classmethod
    def of(cls, baseline: Any, canary: Any) -> MetricData:
        """From two array-likes; pandas Series with a ``DatetimeIndex`` keep their timestamps."""
        if isinstance(baseline, MetricData):
            return baseline
        return cls(baseline, canary, _times_of(baseline), _times_of(canary))

    @classmethod
    def from_epoch(
        cls, baseline: FloatArray, canary: FloatArray, baseline_seconds: FloatArray,
        canary_seconds: FloatArray,
    ) -> MetricData:
        """From values and their timestamps in epoch seconds (as sources return them)."""
        def stamp(seconds: FloatArray) -> TimeArray:
            nanos = np.round(np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64)
            return nanos.astype("datetime64[ns]")
        return cls(baseline, canary, stamp(baseline_seconds), stamp(canary_seconds))

    @property
    def aligned(self) -> bool:
        """Both sides carry timestamps and they are the same minutes, point for point (the
        usual canary: both run at once and are queried over one window with one step)."""
        b, c = self.baseline_times, self.canary_times
        return b is not None and c is not None and b.shape == c.shape and bool(np.all(b == c))


@dataclass(frozen=True)
class FetchFailure:
    """Stands in for a metric's data when fetching it failed; the metric becomes ``error``
    with this reason (the other metrics are judged as usual)."""

    reason: str
    kind: str = "source"
    """Its :class:`judge.errors.FailureKind`; a source failure (an outage) of a scored metric
    makes the report an error outcome (:func:`judge.scoring.score_report`)."""


@dataclass(frozen=True)
class MissingSeries:
    """Stands in for a metric's data when none was given (a missing column); the metric
    becomes ``nodata`` (``nodata_fail`` if it must have data) with this reason."""

    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


MetricInput: TypeAlias = "MetricData | FetchFailure | MissingSeries"
"""One metric's input to a judge."""


@dataclass(frozen=True)
class Prepared:
    """One metric's series after preprocessing, ready to be tested."""

    metric: MetricConfig
    mode: JudgeMode
    baseline: FloatArray
    canary: FloatArray
    baseline_summary: SideSummary
    canary_summary: SideSummary
    notes: tuple[str, ...] = ()
    """Sentences about the input added to every reason (e.g. infinite points dropped)."""
    paired: tuple[FloatArray, FloatArray] | None = None
    """``(baseline, canary)`` minute by minute when both sides cover the same timestamps:
    the pairs where both are finite (NaN strategy applied), for the time-aligned tests."""

    @property
    def sides(self) -> dict[str, Any]:
        """The two summaries as :class:`MetricResult` fields."""
        return {"baseline": self.baseline_summary, "canary": self.canary_summary}

    def with_notes(self, sentence: str) -> str:
        """``sentence`` followed by the notes about the input."""
        return " ".join((sentence, *self.notes))


# -- input -------------------------------------------------------------------------------------


def as_values(raw: Any) -> FloatArray:
    """A one-dimensional float array from a list, numpy array or pandas Series.

    ``None`` becomes NaN and booleans 0/1. Raises :class:`DataError` naming the first value
    that is not a number.
    """
    if isinstance(raw, str | bytes) or np.ndim(raw) != 1:
        raise DataError(f"expected a series of numbers, got {type(raw).__name__}")
    if isinstance(raw, pd.Series):
        raw = raw.to_numpy(dtype=object, na_value=np.nan)
    try:
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    for value in np.asarray(raw, dtype=object):
        try:
            float(value if value is not None else math.nan)
        except (TypeError, ValueError):
            raise DataError(f"has a value that is not a number: {value!r}") from None
    raise DataError("is not a series of numbers")  # pragma: no cover - all values converted


def summarize_side(
    values: FloatArray, *, nan_count: int = 0, infinite_count: int = 0, outliers_removed: int = 0
) -> SideSummary:
    """Count, mean, median, sample standard deviation, p90/p99 (R-7), min and max."""
    n = int(values.size)
    if n == 0:
        return SideSummary(
            count=0,
            nan_count=nan_count,
            infinite_count=infinite_count,
            outliers_removed=outliers_removed,
        )
    # One sort gives the order statistics (numpy's median is the middle value, or the mean
    # of the two middle ones: (a + b) / 2); four numpy calls fewer per side, which matters
    # for small judgments. Mean and spread are summed over the values in their given order.
    ordered = np.sort(values)
    middle = n // 2
    if n % 2:
        median = float(ordered[middle])
    else:
        median = (float(ordered[middle - 1]) + float(ordered[middle])) / 2.0
    # numpy's mean and std(ddof=1) spelled out (the same pairwise sums and divisions, so the
    # same bits: tests/unit/test_summaries.py) without their dozen wrapper calls each.
    mean = float(np.add.reduce(values)) / n
    deviations = values - mean
    return SideSummary(
        count=n,
        mean=mean,
        median=median,
        # One point has no spread: 0, as Kayenta's DescriptiveStatistics reports it.
        std=math.sqrt(float(np.add.reduce(deviations * deviations)) / (n - 1)) if n > 1 else 0.0,
        p90=sorted_quantile(ordered, 90.0 / 100.0),
        p99=sorted_quantile(ordered, 99.0 / 100.0),
        min=float(ordered[0]),
        max=float(ordered[-1]),
        nan_count=nan_count,
        infinite_count=infinite_count,
        outliers_removed=outliers_removed,
    )


def _clean_side(metric: MetricConfig, values: FloatArray) -> tuple[FloatArray, SideSummary]:
    if metric.outliers.strategy is not OutlierStrategy.REMOVE and bool(np.isfinite(values).all()):
        # Nothing to drop or replace (the usual case): a copy, as the general path makes.
        return values.copy(), summarize_side(values)
    infinite = np.isinf(values)
    finite = values[~infinite]
    strategy: Literal["remove", "replace"] = (
        "replace" if metric.nan_strategy is NanStrategy.REPLACE else "remove"
    )
    cleaned, nan_count = apply_nan_strategy(finite, strategy)
    before = cleaned.size
    if metric.outliers.strategy is OutlierStrategy.REMOVE and before > 0:
        cleaned = remove_outliers_iqr(cleaned, metric.outliers.factor)
    cleaned = np.asarray(cleaned, dtype=np.float64)
    summary = summarize_side(
        cleaned,
        nan_count=int(nan_count),
        infinite_count=int(infinite.sum()),
        outliers_removed=int(before - cleaned.size),
    )
    return cleaned, summary


def metric_result(
    metric: MetricConfig, classification: Classification, reason: str, **fields: Any
) -> MetricResult:
    return MetricResult(
        name=metric.name,
        classification=classification,
        reason=reason,
        groups=metric.groups,
        test=metric.test.kind,
        direction=metric.direction.value,
        critical=metric.critical,
        muted=metric.muted,
        **fields,
    )


def error_result(metric: MetricConfig, reason: str, **details: Any) -> MetricResult:
    """An ``error`` result; a critical metric in error fails the canary (never promote blind)."""
    return metric_result(
        metric,
        Classification.ERROR,
        reason,
        critical_failure=metric.critical,
        details=dict(details),
    )


def nodata_result(
    metric: MetricConfig, mode: JudgeMode, reason: str, *, required: bool = False,
    **fields: Any,
) -> MetricResult:
    """A metric that could not be judged for lack of data or evidence, by the mode's rule.

    Kayenta mode (MannWhitneyClassifier): ``nodata_fail`` when ``mustHaveData`` and not
    critical, counted as a failure; a critical metric without data is ``nodata`` flagged
    critical, which zeroes the score. Default mode: "cannot tell" never rolls back. The metric
    is ``nodata`` and not scored; when it is critical or must have data the evidence is
    *required* (``details["required"]``), and the default judge then holds the verdict at
    ``marginal`` at most (:func:`judge.judges.default.decide.state_evidence`); ``required``
    makes it so whatever the metric's flags (default mode).
    """
    if mode is JudgeMode.KAYENTA:
        failing = metric.must_have_data and not metric.critical
        classification = Classification.NODATA_FAIL if failing else Classification.NODATA
        suffix = (
            " This metric must have data, so it counts as a failure."
            if failing
            else " It is not scored."
        )
        if metric.critical:
            suffix += " It is critical, so the canary fails."
        return metric_result(
            metric, classification, reason + suffix, critical_failure=metric.critical, **fields
        )
    flagged = metric.critical or metric.must_have_data
    why = ("critical" if metric.critical else "must have data (mustHaveData)") if flagged else (
        "needed")
    required = required or flagged
    suffix = (
        f" It is {why}, so without this evidence the canary cannot pass: verdict at most "
        "marginal (never a failure: no evidence is not evidence of harm)."
        if required
        else " It is not scored."
    )
    details = dict(fields.pop("details", None) or {})
    details["required"] = required
    return metric_result(
        metric, Classification.NODATA, reason + suffix, details=details, **fields
    )


def _aligned_pairs(
    metric: MetricConfig, baseline: FloatArray, canary: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The minutes where both sides have a finite value (NaN as the NaN strategy says)."""
    if metric.nan_strategy is NanStrategy.REPLACE:
        baseline, canary = np.nan_to_num(baseline, nan=0.0), np.nan_to_num(canary, nan=0.0)
    keep = np.isfinite(baseline) & np.isfinite(canary)
    return baseline[keep], canary[keep]


def prepare(
    metric: MetricConfig, mode: JudgeMode, baseline: Any, canary: Any, *, aligned: bool = False
) -> Prepared | MetricResult:
    """Clean both sides of one metric, or return its ``error`` result when unusable.

    ``aligned``: the two sides cover the same timestamps point for point; the default judge
    then also gets the time-aligned pairs (:attr:`Prepared.paired`)."""
    sides: list[tuple[FloatArray, SideSummary]] = []
    raw_values: list[FloatArray] = []
    for label, raw in (("baseline", baseline), ("canary", canary)):
        try:
            values = as_values(raw)
        except DataError as exc:
            return error_result(metric, f"The {label} series {exc}.", side=label)
        raw_values.append(values)
        sides.append(_clean_side(metric, values))
    paired = None
    if aligned and mode is JudgeMode.DEFAULT and raw_values[0].size == raw_values[1].size:
        paired = _aligned_pairs(metric, raw_values[0], raw_values[1])
    (base_values, base_summary), (canary_values, canary_summary) = sides
    notes = []
    for label, summary in (("baseline", base_summary), ("canary", canary_summary)):
        if summary.infinite_count:
            notes.append(f"{summary.infinite_count} infinite {label} point(s) were dropped.")
    return Prepared(
        metric=metric,
        mode=mode,
        baseline=base_values,
        canary=canary_values,
        baseline_summary=base_summary,
        canary_summary=canary_summary,
        notes=tuple(notes),
        paired=paired,
    )


def prepare_all(
    config_metrics: tuple[MetricConfig, ...],
    mode: JudgeMode,
    data: Mapping[str, MetricInput],
) -> tuple[dict[str, MetricResult], list[Prepared]]:
    """Every metric's input cleaned (:func:`prepare`), or its final result when there is
    nothing to test: no data given (``nodata``), a failed fetch or unusable values
    (``error``)."""
    done: dict[str, MetricResult] = {}
    prepared: list[Prepared] = []
    for metric in config_metrics:
        given = data.get(metric.name)
        if given is None:
            done[metric.name] = nodata_result(
                metric, mode, f"No data was given for metric {metric.name!r}."
            )
        elif isinstance(given, FetchFailure):
            done[metric.name] = error_result(metric, given.reason, fetch_failure=given.kind)
        elif isinstance(given, MissingSeries):
            done[metric.name] = nodata_result(
                metric, mode, given.reason, details=dict(given.details)
            )
        else:
            outcome = prepare(metric, mode, given.baseline, given.canary,
                              aligned=given.aligned)
            if isinstance(outcome, MetricResult):
                done[metric.name] = outcome
            else:
                prepared.append(outcome)
    return done, prepared


def empty_sides(p: Prepared) -> str | None:
    """"baseline", "canary" or "baseline and canary" when a side has no points left."""
    empty = [side for side, v in (("baseline", p.baseline), ("canary", p.canary)) if v.size == 0]
    return " and ".join(empty) or None
