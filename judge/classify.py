"""Per-metric classification: one metric's baseline and canary series in, a ``MetricResult`` out.

Two steps, so that every Mann-Whitney test of a judgment runs in one batched call
(``judge.stats.mann_whitney_many``, see ``judge.judging``):

1. :func:`prepare` turns raw input into clean arrays (numeric check, infinities dropped, NaN
   strategy, IQR outliers) with a summary of each side, or into a final result when the input
   is unusable (``error``).
2. A :class:`Handler`, looked up by ``(config.mode, metric.test.kind)``, first *plans*: it either
   decides at once (no data, identical samples ...) or asks for a Mann-Whitney test with given
   options, or asks for nothing; then it *decides* with the test result (or ``None``).

New tests or judges are added with :func:`register` without touching the existing handlers.

Kayenta mode reproduces ``NetflixACAJudge`` (kayenta-judge, ``NetflixACAJudge.scala`` and
``classifiers/metric/MannWhitneyClassifier.scala``):

* either side empty after preprocessing: ``nodata`` (``nodata_fail`` when ``mustHaveData`` and
  not critical; a critical metric without data fails the canary); with NaN strategy
  ``replace`` it is a pass;
* identical samples, or one distinct value on both sides together: pass;
* otherwise R's ``wilcox.test(canary, baseline, conf.int=TRUE, exact=FALSE, correct=TRUE)`` at
  98%, with R's own root search for the interval (``interval_search="uniroot"``: with many ties
  its 1e-4 tolerance artefacts decide some cases, in Kayenta too); **high** when the
  direction allows increases, the interval's low end is above ``0.25 * |estimate|`` and the
  effect size is at least ``allowedIncrease``; **low** mirrored; else pass. A critical
  metric fails the canary when its effect size also reaches ``criticalIncrease`` /
  ``criticalDecrease``.
* Effect size ``meanRatio`` is mean(canary) / mean(baseline); when the baseline mean is 0 the
  ratio is undefined and the effect-size check is skipped (Kayenta's "deviation" is then 1.0,
  which passes its default limits of 1.0 the same way). ``cles`` is P(canary > baseline) +
  P(tie) / 2.
* Both sides constant but different: Kayenta adds Gaussian noise of 1e-5 of the value so the
  rank test can run; the samples are then completely separated and the interval collapses to
  the difference, which is what is used here (deterministically).

Default mode's Mann-Whitney, quantile and rate-ratio handlers live in ``judge.default_judge``
(autocorrelation-aware, multiple-testing control), registered here with :func:`register`; the
threshold test below serves both modes.

Input rules, both modes: values that are not numbers make the metric ``error``; infinite
values are dropped and counted (``SideSummary.infinite_count``, and the reason says so), since
neither the rank test nor a mean can use them; NaN follows the metric's NaN strategy; baseline
and canary may have different lengths (the tests compare two independent samples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from judge.config import (
    Aggregate,
    Direction,
    EffectMeasure,
    JudgeMode,
    MannWhitneyTest,
    MetricConfig,
    NanStrategy,
    OutlierStrategy,
    ThresholdTest,
)
from judge.report import Classification, MetricResult, SideSummary
from judge.stats import (
    MannWhitneyResult,
    aggregate,
    apply_nan_strategy,
    cles,
    mean_ratio,
    remove_outliers_iqr,
)
from judge.stats._descriptive import Aggregation

__all__ = [
    "BadSeriesError",
    "Handler",
    "MannWhitneyRequest",
    "Prepared",
    "as_values",
    "classify_metric",
    "error_result",
    "handler_for",
    "nodata_result",
    "prepare",
    "register",
    "summarize_side",
]

FloatArray = npt.NDArray[np.float64]


class BadSeriesError(ValueError):
    """Input that is not a series of numbers; the metric is classified ``error``."""


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


@dataclass(frozen=True)
class MannWhitneyRequest:
    """Options of the Mann-Whitney test a handler asks for (pairs sharing them are batched)."""

    confidence: float
    method: Literal["auto", "exact", "asymptotic"] = "auto"
    correct: bool = True
    interval_search: Literal["closed_form", "uniroot"] = "closed_form"
    """``uniroot`` replays R's root search, tolerance artefacts included (Kayenta's numbers)."""


Plan = MetricResult | MannWhitneyRequest | None


@dataclass(frozen=True)
class Handler:
    """How one ``(mode, test kind)`` classifies a prepared metric.

    ``plan`` returns a final result (decided without a test), a :class:`MannWhitneyRequest`,
    or ``None`` (decide without a test); ``decide`` then gets the test's result or ``None``.
    """

    plan: Callable[[Prepared], Plan]
    decide: Callable[[Prepared, MannWhitneyResult | None], MetricResult]


_HANDLERS: dict[tuple[JudgeMode, str], Handler] = {}


def register(mode: JudgeMode, kind: str, handler: Handler) -> None:
    """Make ``handler`` classify metrics whose test is ``kind`` in ``mode`` (replacing any)."""
    _HANDLERS[(mode, kind)] = handler


def handler_for(mode: JudgeMode, kind: str) -> Handler:
    try:
        return _HANDLERS[(mode, kind)]
    except KeyError:
        known = ", ".join(f"{m.value}/{k}" for m, k in sorted(_HANDLERS))
        message = f"no classifier for mode {mode.value!r} and test {kind!r} (known: {known})"
        raise ValueError(message) from None


# -- input -------------------------------------------------------------------------------------


def as_values(raw: Any) -> FloatArray:
    """A one-dimensional float array from a list, numpy array or pandas Series.

    ``None`` becomes NaN and booleans 0/1. Raises :class:`BadSeriesError` naming the first value
    that is not a number.
    """
    if isinstance(raw, str | bytes) or np.ndim(raw) != 1:
        raise BadSeriesError(f"expected a series of numbers, got {type(raw).__name__}")
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
            raise BadSeriesError(f"has a value that is not a number: {value!r}") from None
    raise BadSeriesError("is not a series of numbers")  # pragma: no cover - all values converted


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
    p90, p99 = np.percentile(values, [90.0, 99.0])
    return SideSummary(
        count=n,
        mean=float(np.mean(values)),
        median=float(np.median(values)),
        # One point has no spread: 0, as Kayenta's DescriptiveStatistics reports it.
        std=float(np.std(values, ddof=1)) if n > 1 else 0.0,
        p90=float(p90),
        p99=float(p99),
        min=float(np.min(values)),
        max=float(np.max(values)),
        nan_count=nan_count,
        infinite_count=infinite_count,
        outliers_removed=outliers_removed,
    )


def _clean_side(metric: MetricConfig, values: FloatArray) -> tuple[FloatArray, SideSummary]:
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


def _base(
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
    return _base(
        metric,
        Classification.ERROR,
        reason,
        critical_failure=metric.critical,
        details=dict(details),
    )


def nodata_result(
    metric: MetricConfig, mode: JudgeMode, reason: str, **fields: Any
) -> MetricResult:
    """``nodata`` or ``nodata_fail`` by the metric's ``must_have_data`` and the mode's rule."""
    if mode is JudgeMode.KAYENTA:
        # MannWhitneyClassifier: NodataFailMetric only for non-critical metrics; a critical
        # metric without data is Nodata flagged critical, which zeroes the score.
        failing = metric.must_have_data and not metric.critical
    else:
        failing = metric.must_have_data
    classification = Classification.NODATA_FAIL if failing else Classification.NODATA
    suffix = (
        " This metric must have data, so it counts as a failure."
        if failing
        else " It is not scored."
    )
    if metric.critical:
        suffix += " It is critical, so the canary fails."
    return _base(
        metric, classification, reason + suffix, critical_failure=metric.critical, **fields
    )


def prepare(
    metric: MetricConfig, mode: JudgeMode, baseline: Any, canary: Any
) -> Prepared | MetricResult:
    """Clean both sides of one metric, or return its ``error`` result when unusable."""
    sides: list[tuple[FloatArray, SideSummary]] = []
    for label, raw in (("baseline", baseline), ("canary", canary)):
        try:
            values = as_values(raw)
        except BadSeriesError as exc:
            return error_result(metric, f"The {label} series {exc}.", side=label)
        sides.append(_clean_side(metric, values))
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
    )


# -- words -------------------------------------------------------------------------------------


def _num(value: float, *, signed: bool = False) -> str:
    """A number for a sentence: 4 significant digits, sign when asked."""
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:+.4g}" if signed else f"{value:.4g}"
    return text


def _relative(p: Prepared) -> str:
    """ "Canary is 18% higher than baseline" (by the means), or the two means when the
    baseline's is 0."""
    base, can = p.baseline_summary.mean, p.canary_summary.mean
    if base == 0 or not math.isfinite(base) or not math.isfinite(can):
        return f"Canary mean is {_num(can)}, baseline mean {_num(base)}"
    change = (can - base) / abs(base) * 100
    if abs(change) < 0.05:
        return "Canary and baseline means are equal"
    word = "higher" if change > 0 else "lower"
    return f"Canary is {abs(change):.3g}% {word} than baseline"


def _interval(p: Prepared, estimate: float, low: float, high: float, confidence: float) -> str:
    return (
        f"shift {_num(estimate, signed=True)}, {confidence * 100:g}% CI "
        f"[{_num(low, signed=True)}, {_num(high, signed=True)}]"
    )


def _with_notes(p: Prepared, sentence: str) -> str:
    return " ".join((sentence, *p.notes))


def _sides(p: Prepared) -> dict[str, Any]:
    return {"baseline": p.baseline_summary, "canary": p.canary_summary}


# -- Mann-Whitney handlers ---------------------------------------------------------------------


def _is_constant(values: FloatArray) -> bool:
    return bool(values.size) and bool(values.min() == values.max())


def _mann_whitney_plan(p: Prepared) -> Plan:
    metric, test = p.metric, p.metric.test
    assert isinstance(test, MannWhitneyTest)
    if p.baseline.size == 0 or p.canary.size == 0:
        empty = " and ".join(
            side for side, v in (("baseline", p.baseline), ("canary", p.canary)) if v.size == 0
        )
        if metric.nan_strategy is NanStrategy.REPLACE:
            return _base(
                metric,
                Classification.PASS,
                _with_notes(
                    p,
                    f"No {empty} points; with NaN strategy 'replace' missing points count as "
                    "0 events, so Kayenta passes this metric.",
                ),
                **_sides(p),
            )
        return nodata_result(
            metric,
            p.mode,
            _with_notes(p, f"No {empty} points to compare (after NaN handling)."),
            **_sides(p),
        )
    if np.array_equal(np.sort(p.baseline), np.sort(p.canary)):
        return _base(
            metric,
            Classification.PASS,
            _with_notes(p, "Canary and baseline data are identical."),
            estimate=0.0,
            effect_size=test.effect_size.neutral(),
            effect_measure=test.effect_size.measure.value,
            **_sides(p),
        )
    if _is_constant(p.baseline) and _is_constant(p.canary) and p.baseline[0] == p.canary[0]:
        return _base(
            metric,
            Classification.PASS,
            _with_notes(p, f"Every point on both sides is {_num(float(p.baseline[0]))}."),
            estimate=0.0,
            **_sides(p),
        )
    # Both sides constant but different: Kayenta jitters them so its test can run; the
    # batched test returns the exact answer for that case (estimate = low = high = the
    # difference), with no noise.
    # Kayenta-mode only (default mode registers judge.default_judge's handler). Kayenta runs
    # R's algorithm: with many ties its interval limits are root-search artefacts within 1e-4
    # of a jump, which can decide High vs Pass (ClassifierSuite "Large Input").
    return MannWhitneyRequest(
        confidence=test.confidence, method="asymptotic", correct=True,
        interval_search="uniroot",
    )


def _effect_size(p: Prepared, test: MannWhitneyTest) -> float:
    if test.effect_size.measure is EffectMeasure.CLES:
        return float(cles(p.canary, p.baseline))
    return float(mean_ratio(p.canary, p.baseline))


def _mann_whitney_decide(p: Prepared, mw: MannWhitneyResult | None) -> MetricResult:
    metric, test = p.metric, p.metric.test
    assert isinstance(test, MannWhitneyTest)
    if mw is None:
        raise ValueError(f"metric {metric.name!r}: the Mann-Whitney result is missing")
    estimate, low, high, p_value = mw.estimate, mw.low, mw.high, mw.p_value
    details: dict[str, Any] = {
        "tolerance": test.tolerance,
        "method": mw.method,
        "statistic": mw.statistic,
    }
    effect = _effect_size(p, test)
    limits = test.effect_size
    band = test.tolerance * abs(estimate)
    details["band"] = band
    up_matters = metric.direction in (Direction.INCREASE, Direction.EITHER)
    down_matters = metric.direction in (Direction.DECREASE, Direction.EITHER)
    significant_up = low > band
    significant_down = high < -band
    undefined_effect = math.isnan(effect)
    big_up = undefined_effect or effect >= limits.allowed_increase
    big_down = undefined_effect or effect <= limits.allowed_decrease
    if up_matters and significant_up and big_up:
        classification = Classification.HIGH
        critical_failure = metric.critical and (
            undefined_effect or effect >= limits.critical_increase
        )
    elif down_matters and significant_down and big_down:
        classification = Classification.LOW
        critical_failure = metric.critical and (
            undefined_effect or effect <= limits.critical_decrease
        )
    else:
        classification = Classification.PASS
        critical_failure = False

    measure = "ratio of means" if limits.measure is EffectMeasure.MEAN_RATIO else "CLES"
    numbers = f"{_relative(p)} ({_interval(p, estimate, low, high, test.confidence)})"
    if classification is Classification.HIGH:
        why = "increases fail this metric."
    elif classification is Classification.LOW:
        why = "decreases fail this metric."
    elif not (significant_up or significant_down):
        why = (
            f"no significant shift: the interval does not clear the tolerance band "
            f"±{_num(band)} ({test.tolerance:g} x |shift|)."
        )
    elif (significant_up and not up_matters) or (significant_down and not down_matters):
        direction = "increase" if significant_up else "decrease"
        why = f"a significant {direction}, but only {metric.direction.value}s fail this metric."
    else:
        limit = limits.allowed_increase if significant_up else limits.allowed_decrease
        side = "increase" if significant_up else "decrease"
        why = (
            f"a significant {side}, but the {measure} {_num(effect)} is within the allowed "
            f"{side} {_num(limit)}."
        )
    reason = f"{numbers}; {why}"
    if classification is not Classification.PASS and metric.critical:
        reason += (
            " Critical metric: the canary fails."
            if critical_failure
            else f" Critical metric, but the {measure} {_num(effect)} is within the critical "
            "limit, so the canary is not failed outright."
        )
    if undefined_effect and classification is not Classification.PASS:
        reason += " The baseline mean is 0, so the effect-size limit could not apply."
    return _base(
        metric,
        classification,
        _with_notes(p, reason),
        critical_failure=critical_failure,
        estimate=estimate,
        low=low,
        high=high,
        confidence=test.confidence,
        p_value=p_value,
        effect_size=effect,
        effect_measure=limits.measure.value,
        details=details,
        **_sides(p),
    )


KAYENTA_MANN_WHITNEY = Handler(plan=_mann_whitney_plan, decide=_mann_whitney_decide)
"""NetflixACAJudge's MannWhitneyClassifier (the default judge registers its own)."""
register(JudgeMode.KAYENTA, "mann_whitney", KAYENTA_MANN_WHITNEY)


# -- threshold handler -------------------------------------------------------------------------


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


def _threshold_plan(p: Prepared) -> Plan:
    test = p.metric.test
    assert isinstance(test, ThresholdTest)
    missing = ["canary"] if p.canary.size == 0 else []
    if test.relative is not None and p.baseline.size == 0:
        missing.insert(0, "baseline")
    if missing:
        return nodata_result(
            p.metric,
            p.mode,
            _with_notes(p, f"No {' and '.join(missing)} points to compare."),
            **_sides(p),
        )
    return None


def _threshold_decide(p: Prepared, mw: MannWhitneyResult | None) -> MetricResult:
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
        upper.append((test.max, f"the limit {_num(test.max)}"))
    if test.min is not None:
        details["min"] = test.min
        lower.append((test.min, f"the floor {_num(test.min)}"))
    if test.relative is not None:
        allowances = []
        if test.relative.percent is not None:
            allowances.append(abs(baseline_value) * test.relative.percent / 100)
        if test.relative.absolute is not None:
            allowances.append(test.relative.absolute)
        allowance = max(allowances)  # both given: the looser one applies
        details["allowance"] = allowance
        what = "baseline " + name + f" {_num(baseline_value)}"
        if metric.direction in (Direction.INCREASE, Direction.EITHER):
            details["allowed_up_to"] = baseline_value + allowance
            up_to = baseline_value + allowance
            upper.append((up_to, f"{what} + {_num(allowance)} (= {_num(up_to)})"))
        if metric.direction in (Direction.DECREASE, Direction.EITHER):
            details["allowed_down_to"] = baseline_value - allowance
            down_to = baseline_value - allowance
            lower.append((down_to, f"{what} - {_num(allowance)} (= {_num(down_to)})"))
    above = [(limit, what) for limit, what in upper if canary_value > limit]
    below = [(limit, what) for limit, what in lower if canary_value < limit]
    subject = f"Canary {name} {_num(canary_value)}"
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
    return _base(
        metric,
        classification,
        _with_notes(p, reason),
        critical_failure=critical_failure,
        estimate=canary_value - baseline_value,
        effect_size=ratio,
        effect_measure="aggregate_ratio",
        details=details,
        **_sides(p),
    )


THRESHOLD = Handler(plan=_threshold_plan, decide=_threshold_decide)
register(JudgeMode.KAYENTA, "threshold", THRESHOLD)
register(JudgeMode.DEFAULT, "threshold", THRESHOLD)


def requests_of(plans: Sequence[Plan]) -> list[MannWhitneyRequest]:
    """The distinct Mann-Whitney option sets among ``plans`` (one batched call each)."""
    seen: dict[MannWhitneyRequest, None] = {}
    for plan in plans:
        if isinstance(plan, MannWhitneyRequest):
            seen.setdefault(plan, None)
    return list(seen)


def classify_metric(
    metric: MetricConfig, mode: JudgeMode, baseline: Any, canary: Any
) -> MetricResult:
    """Classify one metric on its own (its own Mann-Whitney call).

    For notebooks and tests; ``judge()`` batches the tests of all metrics instead.
    """
    from judge.stats import mann_whitney

    prepared = prepare(metric, mode, baseline, canary)
    if isinstance(prepared, MetricResult):
        return prepared
    handler = handler_for(mode, metric.test.kind)
    plan = handler.plan(prepared)
    if isinstance(plan, MetricResult):
        return plan
    outcome = None
    if isinstance(plan, MannWhitneyRequest):
        outcome = mann_whitney(
            prepared.canary,
            prepared.baseline,
            confidence=plan.confidence,
            method=plan.method,
            correct=plan.correct,
            interval_search=plan.interval_search,
        )
    return handler.decide(prepared, outcome)
