"""The threshold test: the canary's aggregate (mean, a percentile ...) against fixed limits or
the baseline's aggregate plus an allowance. No statistics; the same in every judge."""

from __future__ import annotations

import math
from typing import Any

from judge.config import Aggregate, Direction, ThresholdTest
from judge.judges.common import Prepared, metric_result, nodata_result
from judge.judges.words import number
from judge.report import Classification, MetricResult
from judge.stats import aggregate
from judge.stats._descriptive import Aggregation

__all__ = ["judge_threshold"]


def _aggregate_name(test: ThresholdTest) -> str:
    if test.percentile is not None:
        return f"p{test.percentile:g}"
    return test.aggregate.value


_AGGREGATIONS: dict[Aggregate, Aggregation] = {
    Aggregate.MEAN: "mean",
    Aggregate.MEDIAN: "median",
    Aggregate.MIN: "min",
    Aggregate.MAX: "max",
    Aggregate.LAST: "last",
    Aggregate.SUM: "sum",
    Aggregate.PERCENTILE: "percentile",
}


def _missing(p: Prepared) -> MetricResult | None:
    test = p.metric.test
    assert isinstance(test, ThresholdTest)
    missing = ["canary"] if p.canary.size == 0 else []
    if test.relative is not None and p.baseline.size == 0:
        missing.insert(0, "baseline")
    if missing:
        return nodata_result(
            p.metric,
            p.mode,
            p.with_notes(f"No {' and '.join(missing)} points to compare."),
            **p.sides,
        )
    return None


def judge_threshold(p: Prepared) -> MetricResult:
    """Classify a prepared metric whose test is ``threshold``."""
    missing = _missing(p)
    if missing is not None:
        return missing
    metric, test = p.metric, p.metric.test
    assert isinstance(test, ThresholdTest)
    how = _AGGREGATIONS[test.aggregate]
    name = _aggregate_name(test)
    canary_value = float(aggregate(p.canary, how, percentile=test.percentile))
    baseline_value = (
        float(aggregate(p.baseline, how, percentile=test.percentile))
        if p.baseline.size
        else math.nan
    )
    details: dict[str, Any] = {
        "aggregate": name,
        "canary_value": canary_value,
        "baseline_value": baseline_value,
    }
    upper: list[tuple[float, str]] = []  # (limit, what it is)
    lower: list[tuple[float, str]] = []
    if test.max is not None:
        details["max"] = test.max
        upper.append((test.max, f"the limit {number(test.max)}"))
    if test.min is not None:
        details["min"] = test.min
        lower.append((test.min, f"the floor {number(test.min)}"))
    if test.relative is not None:
        allowances = []
        if test.relative.percent is not None:
            allowances.append(abs(baseline_value) * test.relative.percent / 100)
        if test.relative.absolute is not None:
            allowances.append(test.relative.absolute)
        allowance = max(allowances)  # both given: the looser one applies
        details["allowance"] = allowance
        what = "baseline " + name + f" {number(baseline_value)}"
        if metric.direction in (Direction.INCREASE, Direction.EITHER):
            details["allowed_up_to"] = baseline_value + allowance
            up_to = baseline_value + allowance
            upper.append((up_to, f"{what} + {number(allowance)} (= {number(up_to)})"))
        if metric.direction in (Direction.DECREASE, Direction.EITHER):
            details["allowed_down_to"] = baseline_value - allowance
            down_to = baseline_value - allowance
            lower.append((down_to, f"{what} - {number(allowance)} (= {number(down_to)})"))
    above = [(limit, what) for limit, what in upper if canary_value > limit]
    below = [(limit, what) for limit, what in lower if canary_value < limit]
    subject = f"Canary {name} {number(canary_value)}"
    if above:
        classification = Classification.HIGH
        reason = f"{subject} is above " + " and ".join(what for _, what in above) + "."
    elif below:
        classification = Classification.LOW
        reason = f"{subject} is below " + " and ".join(what for _, what in below) + "."
    else:
        classification = Classification.PASS
        bounds = [what for _, what in upper] + [what for _, what in lower]
        reason = f"{subject} is within " + " and ".join(bounds) + "."
    critical_failure = metric.critical and classification is not Classification.PASS
    if critical_failure:
        reason += " Critical metric: the canary fails."
    ratio = (
        canary_value / baseline_value
        if baseline_value not in (0.0,) and math.isfinite(baseline_value)
        else math.nan
    )
    return metric_result(
        metric,
        classification,
        p.with_notes(reason),
        critical_failure=critical_failure,
        estimate=canary_value - baseline_value,
        effect_size=ratio,
        effect_measure="aggregate_ratio",
        details=details,
        **p.sides,
    )
