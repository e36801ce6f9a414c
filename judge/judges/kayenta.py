"""The Kayenta judge: reproduces NetflixACAJudge (kayenta-judge, ``NetflixACAJudge.scala`` and
``classifiers/metric/MannWhitneyClassifier.scala``) exactly, for users who want Kayenta's
verdicts.

* either side empty after preprocessing: ``nodata`` (``nodata_fail`` when ``mustHaveData`` and
  not critical; a critical metric without data fails the canary); with NaN strategy
  ``replace`` it is a pass;
* identical samples, or one distinct value on both sides together: pass;
* otherwise R's ``wilcox.test(canary, baseline, conf.int=TRUE, exact=FALSE, correct=TRUE)`` at
  98%, with R's own root search for the interval (``interval_search="uniroot"``: with many ties
  its 1e-4 tolerance artefacts decide some cases, in Kayenta too; ClassifierSuite "Large
  Input"); **high** when the direction allows increases, the interval's low end is above
  ``0.25 * |estimate|`` and the effect size is at least ``allowedIncrease``; **low** mirrored;
  else pass. A critical metric fails the canary when its effect size also reaches
  ``criticalIncrease`` / ``criticalDecrease``.
* Effect size ``meanRatio`` is mean(canary) / mean(baseline); when the baseline mean is 0 the
  ratio is undefined and the effect-size check is skipped (Kayenta's "deviation" is then 1.0,
  which passes its default limits of 1.0 the same way). ``cles`` is P(canary > baseline) +
  P(tie) / 2.
* Both sides constant but different: Kayenta adds Gaussian noise of 1e-5 of the value so the
  rank test can run; the samples are then completely separated and the interval collapses to
  the difference, which is what is used here (deterministically).

Every metric's test of one judgment runs in one batched call
(:func:`judge.stats.mann_whitney_many`); scores follow :mod:`judge.scoring`. No sequential mode:
Kayenta has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from judge.config import (
    CanaryConfig,
    Direction,
    EffectMeasure,
    JudgeMode,
    MannWhitneyTest,
    MetricConfig,
    NanStrategy,
    ScoreThresholds,
)
from judge.errors import ConfigError
from judge.judges.base import finish_report
from judge.judges.common import (
    BATCH_ROWS,
    MetricData,
    MetricInput,
    Prepared,
    empty_sides,
    metric_result,
    nodata_result,
    prepare,
    prepare_all,
)
from judge.judges.state import SequentialState
from judge.judges.threshold import judge_threshold
from judge.judges.words import number
from judge.report import Classification, MetricResult, Report
from judge.stats import MannWhitneyResult, cles, mann_whitney_many

__all__ = ["KayentaJudge"]

FloatArray = npt.NDArray[np.float64]


def _relative(p: Prepared) -> str:
    """ "Canary is 18% higher than baseline" (by the means), or the two means when the
    baseline's is 0."""
    base, can = p.baseline_summary.mean, p.canary_summary.mean
    if base == 0 or not math.isfinite(base) or not math.isfinite(can):
        return f"Canary mean is {number(can)}, baseline mean {number(base)}"
    change = (can - base) / abs(base) * 100
    if abs(change) < 0.05:
        return "Canary and baseline means are equal"
    word = "higher" if change > 0 else "lower"
    return f"Canary is {abs(change):.3g}% {word} than baseline"


def _interval(p: Prepared, estimate: float, low: float, high: float, confidence: float) -> str:
    return (
        f"shift {number(estimate, signed=True)}, {confidence * 100:g}% CI "
        f"[{number(low, signed=True)}, {number(high, signed=True)}]"
    )



def _is_constant(values: FloatArray) -> bool:
    return bool(values.size) and bool(values.min() == values.max())


def _plan(p: Prepared) -> MetricResult | None:
    """A result decided without the test (no data, identical samples ...), else ``None``:
    the metric needs the Mann-Whitney test."""
    metric, test = p.metric, p.metric.test
    assert isinstance(test, MannWhitneyTest)
    if p.baseline.size == 0 or p.canary.size == 0:
        empty = empty_sides(p)
        if metric.nan_strategy is NanStrategy.REPLACE:
            return metric_result(
                metric,
                Classification.PASS,
                p.with_notes(
                    f"No {empty} points; with NaN strategy 'replace' missing points count as "
                    "0 events, so Kayenta passes this metric.",
                ),
                **p.sides,
            )
        return nodata_result(
            metric,
            p.mode,
            p.with_notes(f"No {empty} points to compare (after NaN handling)."),
            **p.sides,
        )
    if np.array_equal(np.sort(p.baseline), np.sort(p.canary)):
        return metric_result(
            metric,
            Classification.PASS,
            p.with_notes("Canary and baseline data are identical."),
            estimate=0.0,
            effect_size=test.effect_size.neutral(),
            effect_measure=test.effect_size.measure.value,
            **p.sides,
        )
    if _is_constant(p.baseline) and _is_constant(p.canary) and p.baseline[0] == p.canary[0]:
        return metric_result(
            metric,
            Classification.PASS,
            p.with_notes(f"Every point on both sides is {number(float(p.baseline[0]))}."),
            estimate=0.0,
            **p.sides,
        )
    # Both sides constant but different: Kayenta jitters them so its test can run; the
    # batched test returns the exact answer for that case (estimate = low = high = the
    # difference), with no noise.
    return None


def _effect_size(p: Prepared, test: MannWhitneyTest) -> float:
    if test.effect_size.measure is EffectMeasure.CLES:
        return float(cles(p.canary, p.baseline))
    # mean_ratio(p.canary, p.baseline) from the sides' summaries, whose means are numpy's of
    # the same cleaned values (tests/unit/test_summaries.py): no second pass and validation.
    canary_mean, baseline_mean = p.canary_summary.mean, p.baseline_summary.mean
    if baseline_mean == 0.0 or canary_mean == 0.0:
        return math.nan
    return canary_mean / baseline_mean


def _decide(p: Prepared, mw: MannWhitneyResult) -> MetricResult:
    metric, test = p.metric, p.metric.test
    assert isinstance(test, MannWhitneyTest)
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
            f"±{number(band)} ({test.tolerance:g} x |shift|)."
        )
    elif (significant_up and not up_matters) or (significant_down and not down_matters):
        direction = "increase" if significant_up else "decrease"
        why = f"a significant {direction}, but only {metric.direction.value}s fail this metric."
    else:
        limit = limits.allowed_increase if significant_up else limits.allowed_decrease
        side = "increase" if significant_up else "decrease"
        why = (
            f"a significant {side}, but the {measure} {number(effect)} is within the allowed "
            f"{side} {number(limit)}."
        )
    reason = f"{numbers}; {why}"
    if classification is not Classification.PASS and metric.critical:
        reason += (
            " Critical metric: the canary fails."
            if critical_failure
            else f" Critical metric, but the {measure} {number(effect)} is within the critical "
            "limit, so the canary is not failed outright."
        )
    if undefined_effect and classification is not Classification.PASS:
        reason += " The baseline mean is 0, so the effect-size limit could not apply."
    return metric_result(
        metric,
        classification,
        p.with_notes(reason),
        critical_failure=critical_failure,
        estimate=estimate,
        low=low,
        high=high,
        confidence=test.confidence,
        p_value=p_value,
        effect_size=effect,
        effect_measure=limits.measure.value,
        details=details,
        **p.sides,
    )


def _test_all(pending: list[Prepared]) -> list[MannWhitneyResult]:
    """Every pending metric's test, batched calls per confidence level (one in practice:
    Kayenta judges at 98%) of at most ``BATCH_ROWS`` metrics."""
    outcomes: dict[int, MannWhitneyResult] = {}
    levels: dict[float, list[int]] = {}
    for index, p in enumerate(pending):
        assert isinstance(p.metric.test, MannWhitneyTest)
        levels.setdefault(p.metric.test.confidence, []).append(index)
    for confidence, level in levels.items():
        for first in range(0, len(level), BATCH_ROWS):
            members = level[first:first + BATCH_ROWS]
            # R's algorithm as Kayenta runs it: asymptotic, continuity-corrected, R's root
            # search.
            results = mann_whitney_many(
                [(pending[i].canary, pending[i].baseline) for i in members],
                confidence=confidence, correct=True, method="asymptotic",
                interval_search="uniroot",
            )
            outcomes.update(zip(members, results, strict=True))
    return [outcomes[i] for i in range(len(pending))]


class KayentaJudge:
    """NetflixACAJudge's classifications and scores (``mode: kayenta``)."""

    mode: ClassVar[JudgeMode] = JudgeMode.KAYENTA
    test_kinds: ClassVar[frozenset[str]] = frozenset({"mann_whitney", "threshold"})

    def judge(
        self, config: CanaryConfig, data: Mapping[str, MetricInput], thresholds: ScoreThresholds
    ) -> Report:
        done, prepared = prepare_all(config.metrics, self.mode, data)
        pending: list[Prepared] = []
        for p in prepared:
            decided = self._without_test(p)
            if decided is None:
                pending.append(p)
            else:
                done[p.metric.name] = decided
        for p, outcome in zip(pending, _test_all(pending), strict=True):
            done[p.metric.name] = _decide(p, outcome)
        ordered = [done[m.name] for m in config.metrics]
        return finish_report(config, ordered, data, thresholds)

    def classify(self, metric: MetricConfig, baseline: Any, canary: Any) -> MetricResult:
        prepared = prepare(metric, self.mode, baseline, canary)
        if isinstance(prepared, MetricResult):
            return prepared
        decided = self._without_test(prepared)
        if decided is not None:
            return decided
        return _decide(prepared, _test_all([prepared])[0])

    def poll(
        self, config: CanaryConfig, state: SequentialState,
        new_data: Mapping[str, MetricData], *, now: str | None = None, final: bool = False,
    ) -> tuple[Report, SequentialState]:
        raise ConfigError(
            f"config {config.name!r} uses the 'kayenta' judge; sequential runs need the "
            "default judge (mode: default)",
            "config",
        )

    @staticmethod
    def _without_test(p: Prepared) -> MetricResult | None:
        if p.metric.test.kind == "threshold":
            return judge_threshold(p)
        return _plan(p)
