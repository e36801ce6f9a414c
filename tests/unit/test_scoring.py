"""Group scores, weights, the critical and nodata rules, verdicts (``judge.scoring``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from judge.config import CanaryConfig, ScoreThresholds
from judge.report import Classification, MetricResult, Verdict
from judge.scoring import group_weights, resolve_thresholds, score_report, verdict_for


def result(name: str, classification: str, *groups: str, muted: bool = False,
           critical_failure: bool = False) -> MetricResult:
    return MetricResult(
        name=name,
        classification=Classification(classification),
        reason=f"{name} was {classification}",
        groups=groups or ("default",),
        muted=muted,
        critical=critical_failure,
        critical_failure=critical_failure,
    )


def config(mode: str = "kayenta", groups: dict[str, float] | None = None, **extra: Any
           ) -> CanaryConfig:
    # One metric in each weighted group: a weight no metric's group matches is refused.
    metrics = [{"name": f"m-{group}", "groups": [group]} for group in groups or {}]
    return CanaryConfig.model_validate(
        {"mode": mode, "groups": groups or {}, "metrics": metrics or [{"name": "m"}], **extra}
    )


def test_unweighted_groups_share_what_is_left() -> None:
    weights = group_weights(config(groups={"a": 50, "unused": 10}), ["a", "b", "c"])
    assert weights == {"a": 50.0, "b": 20.0, "c": 20.0}


def test_error_and_nodata_fail_count_against_a_group_nodata_does_not() -> None:
    report = score_report(
        config(),
        [
            result("ok", "pass", "g"),
            result("broken", "error", "g"),
            result("needed", "nodata_fail", "g"),
            result("empty", "nodata", "g"),
        ],
        ScoreThresholds(),
    )
    (group,) = report.groups
    assert group.score == pytest.approx(100 / 3)
    assert group.counts["nodata"] == 1 and group.counts["error"] == 1
    assert report.score == 33.33  # rounded half-up to 2 decimals, as Kayenta
    assert "failing: 'broken' (error), 'needed' (nodata_fail)" in report.reason


def test_rounding_is_half_up() -> None:
    # 1 of 8 passing = 12.5 in a group weighted 1: 0.125 exactly, which half-up rounds to
    # 0.13 (round-half-even would give 0.12).
    results = [result("p", "pass", "a")] + [result(f"h{i}", "high", "a") for i in range(7)]
    results.append(result("b", "high", "b"))
    report = score_report(config(groups={"a": 1, "b": 99}), results, ScoreThresholds())
    assert report.score == 0.13


def test_muted_metrics_are_reported_but_not_scored() -> None:
    report = score_report(
        config(),
        [result("ok", "pass"), result("noisy", "high", muted=True, critical_failure=True)],
        ScoreThresholds(),
    )
    assert report.score == 100.0
    assert report.verdict is Verdict.PASS
    assert report.metric("noisy").classification is Classification.HIGH
    assert report.details["muted"] == ["noisy"]
    assert report.groups[0].counts["high"] == 0


def test_all_muted_scores_zero_with_a_reason() -> None:
    report = score_report(config(), [result("a", "pass", muted=True)], ScoreThresholds())
    assert report.score == 0.0
    assert "every metric is muted" in report.reason


def test_critical_failure_forces_zero_and_names_the_metric() -> None:
    report = score_report(
        config(),
        [result("errors", "high", critical_failure=True), result("ok", "pass")],
        ScoreThresholds(),
    )
    assert report.score == 0.0
    assert report.verdict is Verdict.FAIL
    assert report.reason.startswith("Critical metric 'errors' (high) failed: score forced to 0.")
    assert report.details["critical_failures"] == ["errors"]
    assert report.details["weighted_score"] == 50.0


def test_kayenta_classifies_a_forced_zero_by_the_thresholds_default_fails_it() -> None:
    thresholds = ScoreThresholds.model_validate({"pass": 50, "marginal": 0})
    results = [result("errors", "high", critical_failure=True)]
    assert score_report(config("kayenta"), results, thresholds).verdict is Verdict.MARGINAL
    assert score_report(config("default"), results, thresholds).verdict is Verdict.FAIL


def test_half_or_more_nodata_forces_zero() -> None:
    results = [result("a", "nodata"), result("b", "pass")]
    report = score_report(config(), results, ScoreThresholds())
    assert report.score == 0.0
    assert "1 of 2 scored metrics (50%) had no data" in report.reason
    below = score_report(
        config(), [result("a", "nodata"), result("b", "pass"), result("c", "pass")],
        ScoreThresholds(),
    )
    assert below.score == 100.0


@pytest.mark.parametrize(
    ("score", "verdict"),
    [(95.0, Verdict.PASS), (94.99, Verdict.MARGINAL), (75.0, Verdict.MARGINAL),
     (74.99, Verdict.FAIL), (0.0, Verdict.FAIL)],
)
def test_verdict_boundaries(score: float, verdict: Verdict) -> None:
    assert verdict_for(score, ScoreThresholds()) is verdict


def test_thresholds_override_forms() -> None:
    base = config(thresholds={"pass": 80, "marginal": 60})
    assert resolve_thresholds(base, None).pass_ == 80
    assert resolve_thresholds(base, {"pass": 90, "marginal": 10}).marginal == 10
    model = ScoreThresholds.model_validate({"pass": 70, "marginal": 20})
    assert resolve_thresholds(base, model) is model
    with pytest.raises(ValidationError, match="marginal"):
        resolve_thresholds(base, {"pass": 50, "marginal": 60})
    with pytest.raises(ValidationError, match="pass"):
        resolve_thresholds(base, {"pass": 150, "marginal": 60})


def test_report_reason_states_rule_and_thresholds() -> None:
    report = score_report(
        config(groups={"lat": 60, "err": 40}),
        [result("p99", "high", "lat"), result("errors", "pass", "err")],
        ScoreThresholds(),
    )
    assert report.score == 40.0
    assert report.reason == (
        "Weighted group score 40; failing: 'p99' (high). Verdict fail: score 40 against pass "
        "95 and marginal 75."
    )
    assert {g.name: g.weight for g in report.groups} == {"lat": 60.0, "err": 40.0}
    json.dumps(report.to_dict(), allow_nan=False)
