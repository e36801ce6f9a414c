"""Per-metric classification (``judge.classify_metric``, through each judge's ``classify``):
edge cases of the input (``judge.judges.common``), Kayenta mode's Mann-Whitney rule with its
reasons (``judge.judges.kayenta``), and threshold tests (both modes).

The default judge's own tests are tested with it (``test_default_judge*.py``); here a
default-mode call only checks what the shared preparation does for every judge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from judge import classify_metric
from judge.config import JudgeMode, MetricConfig
from judge.judges import judge_for
from judge.judges.common import as_values
from judge.judges.default import DefaultJudge
from judge.judges.kayenta import KayentaJudge
from judge.report import Classification, MetricResult

RNG = np.random.default_rng(20261128)
BASELINE = RNG.normal(100.0, 5.0, 60)
SHIFTED = BASELINE + 25.0


def metric(**fields: Any) -> MetricConfig:
    return MetricConfig.model_validate({"name": "latency", **fields})


def classify(m: MetricConfig, baseline: Any, canary: Any, mode: str = "kayenta") -> MetricResult:
    return classify_metric(m, JudgeMode(mode), baseline, canary)


def test_clear_increase_is_high_with_numbers_and_reason() -> None:
    result = classify(metric(direction="increase"), BASELINE, SHIFTED)
    assert result.classification is Classification.HIGH
    assert result.low > 0 and result.low <= result.estimate <= result.high
    assert result.estimate == pytest.approx(25.0, abs=3.0)
    assert result.confidence == 0.98
    assert result.p_value < 1e-6
    assert result.effect_size == pytest.approx(np.mean(SHIFTED) / np.mean(BASELINE))
    assert result.baseline.count == result.canary.count == 60
    assert result.canary.mean == pytest.approx(float(np.mean(SHIFTED)))
    assert result.reason.startswith("Canary is 2")
    assert "% higher than baseline (shift +2" in result.reason
    assert "98% CI [" in result.reason
    assert result.reason.endswith("increases fail this metric.")


def test_kayenta_mode_uses_the_asymptotic_test_even_for_small_samples() -> None:
    # R's wilcox.test(..., exact = FALSE), as Kayenta's MannWhitney always runs it.
    result = classify(metric(), BASELINE[:10], SHIFTED[:10])
    assert result.details["method"] == "asymptotic"


def test_shift_in_a_direction_that_does_not_matter_passes_and_says_why() -> None:
    result = classify(metric(direction="decrease"), BASELINE, SHIFTED)
    assert result.classification is Classification.PASS
    assert "a significant increase, but only decreases fail this metric" in result.reason


def test_decrease_is_low() -> None:
    result = classify(metric(direction="decrease"), SHIFTED, BASELINE)
    assert result.classification is Classification.LOW
    assert result.reason.endswith("decreases fail this metric.")


def test_no_shift_passes_naming_the_tolerance_band() -> None:
    result = classify(metric(), BASELINE, RNG.normal(100.0, 5.0, 60))
    assert result.classification is Classification.PASS
    assert "no significant shift" in result.reason
    assert "tolerance band" in result.reason


def test_allowed_increase_lets_a_small_significant_shift_pass() -> None:
    m = metric(direction="increase", test={"effect_size": {"allowed_increase": 1.5}})
    result = classify(m, BASELINE, SHIFTED)
    assert result.classification is Classification.PASS
    assert "is within the allowed increase 1.5" in result.reason


def test_cles_effect_size() -> None:
    m = metric(test={"effect_size": {"measure": "cles"}})
    result = classify(m, BASELINE, SHIFTED)
    assert result.effect_measure == "cles"
    assert result.effect_size > 0.95
    assert result.classification is Classification.HIGH


def test_nan_is_removed_and_counted() -> None:
    baseline = np.concatenate([BASELINE, [np.nan, np.nan]])
    result = classify(metric(), baseline, SHIFTED)
    assert result.baseline.count == 60
    assert result.baseline.nan_count == 2
    assert result.classification is Classification.HIGH


def test_nan_replaced_by_zero() -> None:
    errors_base = [0.0, 1.0, np.nan, 0.0, 2.0, np.nan]
    result = classify(metric(nan_strategy="replace"), errors_base, [0.0, 1.0, 0.0, 0.0, 2.0, 0.0])
    assert result.canary.nan_count == 0
    assert result.baseline.count == 6
    assert result.baseline.nan_count == 2
    assert result.classification is Classification.PASS
    assert "identical" in result.reason


@pytest.mark.parametrize("mode", ["default", "kayenta"])
def test_infinities_are_dropped_counted_and_reported(mode: str) -> None:
    canary = np.concatenate([SHIFTED, [np.inf, -np.inf]])
    result = classify(metric(), BASELINE, canary, mode)
    assert result.canary.infinite_count == 2
    assert result.canary.count == 60
    assert result.classification is Classification.HIGH
    if mode == "kayenta":  # the default judge writes its own reasons (judge.default_judge)
        assert result.reason.endswith("2 infinite canary point(s) were dropped.")


def test_all_nan_is_nodata() -> None:
    result = classify(metric(), BASELINE, [np.nan] * 5)
    assert result.classification is Classification.NODATA
    assert "No canary points to compare" in result.reason
    assert not result.critical_failure


@pytest.mark.parametrize("mode", ["default", "kayenta"])
def test_empty_series_is_nodata(mode: str) -> None:
    result = classify(metric(), [], [], mode)
    assert result.classification is Classification.NODATA
    assert "No baseline and canary points" in result.reason


def test_kayenta_must_have_data_makes_nodata_a_failure() -> None:
    result = classify(metric(must_have_data=True), BASELINE, [])
    assert result.classification is Classification.NODATA_FAIL
    assert "must have data" in result.reason


def test_default_must_have_data_without_data_is_required_evidence_not_a_failure() -> None:
    result = classify(metric(must_have_data=True), BASELINE, [], "default")
    assert result.classification is Classification.NODATA
    assert not result.critical_failure and result.details["required"] is True
    assert "must have data" in result.reason and "at most marginal" in result.reason


def test_critical_without_data_kayenta_fails_the_canary_default_holds_it_at_marginal() -> None:
    m = metric(must_have_data=True, critical=True)
    kayenta = classify(m, BASELINE, [], "kayenta")
    assert kayenta.classification is Classification.NODATA
    assert kayenta.critical_failure
    default = classify(m, BASELINE, [], "default")
    assert default.classification is Classification.NODATA
    assert not default.critical_failure and default.details["required"] is True
    assert "critical" in default.reason and "never a failure" in default.reason


def test_empty_with_nan_replace_passes_in_kayenta_mode_only() -> None:
    m = metric(nan_strategy="replace")
    assert classify(m, BASELINE, [], "kayenta").classification is Classification.PASS
    assert classify(m, BASELINE, [], "default").classification is Classification.NODATA


def test_one_point_series() -> None:
    # Kayenta judges even one point a side: two different constants are a known shift.
    kayenta = classify(metric(direction="increase"), [5.0], [6.0], "kayenta")
    assert kayenta.classification is Classification.HIGH
    assert (kayenta.estimate, kayenta.low, kayenta.high) == (1.0, 1.0, 1.0)
    assert classify(metric(), [5.0], [5.0]).classification is Classification.PASS
    # Our own judge refuses to be confident on so little.
    default = classify(metric(direction="increase"), [5.0], [6.0], "default")
    assert default.classification is Classification.NODATA
    assert "Too few points" in default.reason


def test_constant_series() -> None:
    same = classify(metric(), [3.0] * 10, [3.0] * 12)
    assert same.classification is Classification.PASS
    assert "Every point on both sides is 3" in same.reason
    shifted = classify(metric(direction="increase"), [3.0] * 10, [4.0] * 12)
    assert shifted.classification is Classification.HIGH
    assert shifted.estimate == shifted.low == shifted.high == 1.0


def test_mismatched_lengths_are_fine() -> None:
    result = classify(metric(direction="increase"), BASELINE[:15], SHIFTED)
    assert (result.baseline.count, result.canary.count) == (15, 60)
    assert result.classification is Classification.HIGH


@pytest.mark.parametrize(
    ("canary", "fragment"),
    [
        (["1.0", "fast", "2.0"], "a value that is not a number: 'fast'"),
        ([1.0, {"a": 1}], "a value that is not a number"),
        ("12345", "expected a series of numbers, got str"),
        (5.0, "expected a series of numbers, got float"),
        ([[1.0, 2.0], [3.0, 4.0]], "expected a series of numbers"),
    ],
)
def test_non_numeric_input_is_an_error(canary: Any, fragment: str) -> None:
    result = classify(metric(critical=True), BASELINE, canary)
    assert result.classification is Classification.ERROR
    assert fragment in result.reason
    assert result.reason.startswith("The canary series")
    assert result.critical_failure  # a broken critical metric never promotes a canary


def test_as_values_accepts_lists_arrays_series_and_none() -> None:
    assert as_values([1, None, 3]).tolist()[1] != as_values([1, None, 3]).tolist()[1]  # NaN
    assert as_values(np.array([1, 2], dtype=np.int64)).dtype == np.float64
    assert as_values(pd.Series([1.0, None, 2.0])).size == 3
    assert as_values(pd.Series(["1.5", "2"])).tolist() == [1.5, 2.0]
    assert as_values([True, False]).tolist() == [1.0, 0.0]


def test_outliers_removed_and_counted() -> None:
    baseline = np.concatenate([BASELINE, [10_000.0]])
    m = metric(outliers={"strategy": "remove"})
    result = classify(m, baseline, BASELINE + 0.5)
    assert result.baseline.outliers_removed == 1
    assert result.baseline.max < 10_000.0


def test_summary_numbers() -> None:
    result = classify(metric(), [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0])
    summary = result.canary
    assert (summary.count, summary.min, summary.max, summary.median) == (4, 1.0, 5.0, 2.5)
    assert summary.std == pytest.approx(float(np.std([1.0, 2.0, 3.0, 5.0], ddof=1)))
    assert summary.p90 == pytest.approx(float(np.percentile([1.0, 2.0, 3.0, 5.0], 90)))


# -- threshold tests ---------------------------------------------------------------------------


def threshold(**test: Any) -> dict[str, Any]:
    return {"kind": "threshold", **test}


def test_threshold_absolute_max() -> None:
    m = metric(test=threshold(aggregate="percentile", percentile=99, max=120.0))
    result = classify(m, BASELINE, SHIFTED)
    assert result.classification is Classification.HIGH
    assert result.details["aggregate"] == "p99"
    assert result.details["max"] == 120.0
    assert result.details["canary_value"] == pytest.approx(float(np.percentile(SHIFTED, 99)))
    assert result.reason.startswith("Canary p99 1")
    assert "is above the limit 120" in result.reason


def test_threshold_absolute_min_and_within() -> None:
    low = classify(metric(test=threshold(min=110.0)), BASELINE, BASELINE)
    assert low.classification is Classification.LOW
    ok = classify(metric(test=threshold(min=50.0, max=150.0)), BASELINE, BASELINE)
    assert ok.classification is Classification.PASS
    assert "is within the limit 150 and the floor 50" in ok.reason


def test_threshold_relative_respects_direction() -> None:
    relative = threshold(aggregate="mean", relative={"percent": 10})
    up = classify(metric(direction="increase", test=relative), BASELINE, SHIFTED)
    assert up.classification is Classification.HIGH
    assert up.details["allowed_up_to"] == pytest.approx(float(np.mean(BASELINE)) * 1.1)
    assert up.details["baseline_value"] == pytest.approx(float(np.mean(BASELINE)))
    ignored = classify(metric(direction="decrease", test=relative), BASELINE, SHIFTED)
    assert ignored.classification is Classification.PASS
    down = classify(metric(direction="decrease", test=relative), SHIFTED, BASELINE)
    assert down.classification is Classification.LOW


def test_threshold_relative_looser_of_percent_and_absolute() -> None:
    test = threshold(relative={"percent": 10, "absolute": 30})
    result = classify(metric(direction="increase", test=test), BASELINE, SHIFTED)
    assert result.details["allowance"] == 30.0
    assert result.classification is Classification.PASS


def test_threshold_relative_needs_a_baseline() -> None:
    result = classify(metric(test=threshold(relative={"absolute": 1})), [], SHIFTED)
    assert result.classification is Classification.NODATA
    assert "No baseline points" in result.reason
    absolute = classify(metric(test=threshold(max=200.0)), [], SHIFTED)
    assert absolute.classification is Classification.PASS


def test_critical_threshold_failure_fails_the_canary() -> None:
    result = classify(metric(critical=True, test=threshold(max=1.0)), BASELINE, SHIFTED)
    assert result.critical_failure
    assert "Critical metric: the canary fails." in result.reason


# -- dispatch ----------------------------------------------------------------------------------


def test_every_mode_has_its_judge() -> None:
    assert isinstance(judge_for(JudgeMode.DEFAULT), DefaultJudge)
    assert isinstance(judge_for(JudgeMode.KAYENTA), KayentaJudge)
    for mode in JudgeMode:
        assert judge_for(mode).mode is mode
        assert "threshold" in judge_for(mode).test_kinds


def test_classify_dispatches_by_mode() -> None:
    # The Kayenta judge writes Kayenta's sentence; the default judge its own (autocorrelation).
    kayenta = classify(metric(direction="increase"), BASELINE, SHIFTED, "kayenta")
    default = classify(metric(direction="increase"), BASELINE, SHIFTED, "default")
    assert kayenta.classification is default.classification is Classification.HIGH
    assert "tolerance" in kayenta.details and "default_judge" not in kayenta.details
    assert "default_judge" in default.details and "autocorrelation" in default.details
