"""``judge()`` and ``judge_series()``: inputs, containment of bad data, batching, reports."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import judge.judges.kayenta as kayenta_judge
from judge import CanaryConfig, FetchFailure, ScoreThresholds, judge, judge_series
from judge.report import Classification, Verdict

RNG = np.random.default_rng(7)
N = 40


def kayenta_config(**extra: Any) -> CanaryConfig:
    return CanaryConfig.model_validate(
        {
            "mode": "kayenta",
            "groups": {"latency": 50},
            "metrics": [
                {"name": "latency", "groups": ["latency"], "direction": "increase"},
                {"name": "errors", "groups": ["errors"], "direction": "increase",
                 "query": {"type": "column", "column": "http_5xx"}},
                {"name": "cpu", "groups": ["errors"]},
            ],
            **extra,
        }
    )


def frames(latency_shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    times = pd.date_range("2026-11-28", periods=N, freq="1min")
    baseline = pd.DataFrame(
        {"timestamp": times, "latency": RNG.normal(100, 5, N), "http_5xx": RNG.poisson(3, N),
         "cpu": RNG.normal(0.5, 0.05, N)}
    )
    canary = pd.DataFrame(
        {"timestamp": times, "latency": RNG.normal(100 + latency_shift, 5, N),
         "http_5xx": RNG.poisson(3, N), "cpu": RNG.normal(0.5, 0.05, N)}
    )
    return baseline, canary


def test_dataframes_in_report_out() -> None:
    baseline, canary = frames(latency_shift=30)
    report = judge(kayenta_config(), baseline, canary)
    assert report.metric("latency").classification is Classification.HIGH
    assert report.metric("errors").canary.count == N  # read from column http_5xx
    assert report.metric("cpu").classification is Classification.PASS
    # latency group (50%) scores 0, the "errors" group gets the other 50% and passes.
    assert report.score == 50.0
    assert report.verdict is Verdict.FAIL
    assert report.mode == "kayenta"


def test_mappings_of_lists_arrays_and_series() -> None:
    baseline, canary = frames()
    as_mapping = {
        "latency": baseline["latency"].tolist(),
        "http_5xx": baseline["http_5xx"].to_numpy(),
        "cpu": baseline["cpu"],
    }
    report = judge(kayenta_config(), as_mapping, canary)
    assert report.verdict is Verdict.PASS
    assert report.score == 100.0


def test_config_as_a_mapping_and_invalid_config_raises_before_judging() -> None:
    baseline, canary = frames()
    raw = kayenta_config().model_dump(mode="json", by_alias=True)
    assert judge(raw, baseline, canary).verdict is Verdict.PASS
    raw["metrics"][0]["direction"] = "sideways"
    with pytest.raises(ValidationError) as caught:
        judge(raw, baseline, canary)
    assert caught.value.errors()[0]["loc"] == ("metrics", 0, "direction")


def test_missing_column_is_nodata_naming_the_column() -> None:
    baseline, canary = frames()
    report = judge(kayenta_config(), baseline.drop(columns=["http_5xx"]), canary)
    errors = report.metric("errors")
    assert errors.classification is Classification.NODATA
    assert errors.reason.startswith("Column 'http_5xx' is missing from the baseline data.")
    assert errors.details["missing_from"] == ["baseline"]


def test_missing_column_of_a_metric_that_must_have_data_fails_it() -> None:
    # The canary stopped reporting a metric: its column is in the baseline only.
    baseline, canary = frames()
    baseline["gone"] = baseline["latency"]
    config = CanaryConfig.model_validate(
        {"mode": "kayenta", "metrics": [{"name": "latency"},
                                        {"name": "gone", "must_have_data": True}]}
    )
    report = judge(config, baseline, canary)
    assert report.metric("gone").classification is Classification.NODATA_FAIL
    assert "missing from the canary data" in report.metric("gone").reason
    assert report.score == 50.0


def test_bad_data_in_one_metric_never_aborts_the_others() -> None:
    baseline, canary = frames()
    canary["cpu"] = ["high"] * N
    canary.loc[3, "latency"] = np.inf
    baseline.loc[5, "latency"] = np.nan
    report = judge(kayenta_config(), baseline, canary)
    cpu = report.metric("cpu")
    assert cpu.classification is Classification.ERROR
    assert "not a number: 'high'" in cpu.reason
    latency = report.metric("latency")
    assert latency.canary.infinite_count == 1
    assert latency.baseline.nan_count == 1
    assert latency.classification is Classification.PASS
    assert "1 infinite canary point(s) were dropped." in latency.reason


def test_empty_series_and_all_nan() -> None:
    config = kayenta_config()
    report = judge(config, {"latency": [], "http_5xx": [np.nan] * 4, "cpu": [1.0, 2.0, 3.0]},
                   {"latency": [], "http_5xx": [np.nan] * 4, "cpu": [1.0, 2.0, 3.0]})
    assert report.metric("latency").classification is Classification.NODATA
    assert report.metric("errors").classification is Classification.NODATA
    assert report.score == 0.0  # 2 of 3 metrics without data: Kayenta's 50% rule
    assert "had no data" in report.reason


def test_thresholds_override() -> None:
    baseline, canary = frames(latency_shift=30)
    report = judge(kayenta_config(), baseline, canary, thresholds={"pass": 50, "marginal": 10})
    assert (report.pass_threshold, report.verdict) == (50.0, Verdict.PASS)
    model = ScoreThresholds.model_validate({"pass": 60, "marginal": 40})
    assert judge(kayenta_config(), baseline, canary, thresholds=model).verdict is Verdict.MARGINAL
    with pytest.raises(ValidationError):
        judge(kayenta_config(), baseline, canary, thresholds={"pass": 10, "marginal": 50})


def test_one_batched_mann_whitney_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = kayenta_judge.mann_whitney_many

    def counting(pairs: Any, **options: Any) -> Any:
        calls.append(len(pairs))
        return real(pairs, **options)

    monkeypatch.setattr(kayenta_judge, "mann_whitney_many", counting)
    baseline, canary = frames(latency_shift=30)
    judge(kayenta_config(), baseline, canary)
    assert calls == [3]


def test_judge_series_with_fetch_failure_and_unknown_series() -> None:
    baseline, canary = frames()
    series = {
        "latency": (baseline["latency"], canary["latency"]),
        "errors": FetchFailure("Prometheus answered 503 for the canary query"),
        "typo": ([1.0], [2.0]),
    }
    report = judge_series(kayenta_config(), series)
    errors = report.metric("errors")
    assert errors.classification is Classification.ERROR
    assert errors.reason == "Prometheus answered 503 for the canary query"
    assert report.metric("cpu").classification is Classification.NODATA
    assert report.metric("cpu").reason.startswith("No data was given for metric 'cpu'.")
    assert report.details["ignored_series"] == ["typo"]


def test_critical_metric_that_could_not_be_built_fails_the_canary() -> None:
    # A config problem (no I/O happened) is not an outage: the critical rule applies.
    config = CanaryConfig.model_validate(
        {"mode": "kayenta", "metrics": [{"name": "errors", "critical": True}, {"name": "cpu"}]}
    )
    report = judge_series(config, {"errors": FetchFailure("template 't' not found", "config"),
                                   "cpu": ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])})
    assert report.score == 0.0
    assert report.reason.startswith("Critical metric 'errors' (error) failed")


@pytest.mark.parametrize("mode", ["kayenta", "default"])
def test_a_source_failure_is_an_error_outcome_never_a_verdict(mode: str) -> None:
    # Kayenta ends an execution whose fetch failed without a score; both modes do the same.
    same = [float(v) for v in np.random.default_rng(1).normal(10, 1, 60)]
    config = CanaryConfig.model_validate(
        {"mode": mode, "metrics": [{"name": "errors", "critical": True}, {"name": "cpu"},
                                   {"name": "muted", "muted": True}]}
    )
    report = judge_series(config, {"errors": FetchFailure("no answer within 5 s", "timeout"),
                                   "cpu": (same, same),
                                   "muted": FetchFailure("refused", "connect")})
    assert report.verdict is Verdict.ERROR and report.is_error
    assert math.isnan(report.score)
    assert report.to_dict()["score"] is None
    assert report.reason.startswith("No verdict: the data of 1 of 2 scored metrics could not "
                                    "be fetched")
    assert "'errors' (timeout): no answer within 5 s" in report.reason
    assert report.details["fetch_failures"] == [
        {"metric": "errors", "kind": "timeout", "reason": "no answer within 5 s"}]
    assert report.metric("cpu").classification is Classification.PASS  # still shown
    # A muted metric that could not be fetched is reported, and decides nothing.
    only_muted = judge_series(config, {"errors": (same, same),
                                       "cpu": (same, same),
                                       "muted": FetchFailure("refused", "connect")})
    assert only_muted.verdict is Verdict.PASS


def test_threshold_metrics_in_default_mode() -> None:
    config = CanaryConfig.model_validate(
        {"metrics": [{"name": "p99", "direction": "increase",
                      "test": {"kind": "threshold", "aggregate": "percentile", "percentile": 99,
                               "relative": {"percent": 10}}}]}
    )
    report = judge(config, {"p99": [100.0, 110.0, 120.0]}, {"p99": [100.0, 110.0, 200.0]})
    metric = report.metric("p99")
    assert metric.classification is Classification.HIGH
    assert metric.details["canary_value"] == pytest.approx(198.2)  # 110 + 0.98 * 90
    assert report.verdict is Verdict.FAIL


def test_report_to_dict_is_strict_json_and_to_frame_has_a_row_per_metric() -> None:
    baseline, canary = frames(latency_shift=30)
    canary["cpu"] = ["x"] * N  # an error result: NaN estimate and friends
    report = judge(kayenta_config(), baseline, canary)
    payload = report.to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["metrics"][2]["estimate"] is None
    assert payload["verdict"] in ("pass", "marginal", "fail")
    assert payload["thresholds"] == {"pass": 95.0, "marginal": 75.0}
    frame = report.to_frame()
    assert list(frame.index) == ["latency", "errors", "cpu"]
    assert frame.loc["latency", "classification"] == "high"
    assert frame.loc["latency", "canary_count"] == N
    assert {"estimate", "low", "high", "p_value", "effect_size", "reason"} <= set(frame.columns)


def test_a_test_the_mode_does_not_have_is_a_config_error() -> None:
    config = {"mode": "kayenta", "metrics": [{"name": "errors", "test": {"kind": "rate_ratio"}}]}
    with pytest.raises(ValidationError) as caught:
        judge(config, {"errors": [1, 2, 3]}, {"errors": [1, 2, 3]})
    assert caught.value.errors()[0]["loc"] == ("metrics", 0, "test", "kind")
    assert "no classifier for mode 'kayenta' and test 'rate_ratio'" in str(caught.value)


def test_a_report_comes_back_from_its_dict() -> None:
    """``Report.from_dict`` (a stored answer given again) inverts ``to_dict``."""
    from judge.report import Report

    baseline, canary = frames(latency_shift=30)
    report = judge(kayenta_config(), baseline, canary)
    stored = json.loads(json.dumps(report.to_dict()))  # as a JSON column hands it back
    again = Report.from_dict(stored)
    assert again.to_dict() == stored
    assert (again.verdict, again.score, again.metric("latency").classification) == (
        Verdict.FAIL, 50.0, Classification.HIGH)
