"""Default judge end to end on labelled scenarios (fixed seeds), reasons, sequential state."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from judge.config import CanaryConfig
from judge.errors import DataError
from judge.judges.state import SequentialState
from judge.judges.words import figure
from judge.judging import judge, poll
from judge.lab.scenarios import (
    MEANINGFUL_SIZE,
    Scenario,
    ScenarioKind,
    generate_canary,
    history_config,
)
from judge.report import Classification, Report, Verdict
from judge.stats.counts import rate_difference_upper
from judge.stats.sequential import GAUSSIAN_LOG_CHANGE_VARIANCE, change_ratio_score


def _config(mode: str = "default") -> CanaryConfig:
    raw = history_config(mode).to_dict()
    if mode == "default":
        for metric in raw["metrics"]:
            if metric["name"] in ("errors", "timeouts"):
                metric["test"] = {"kind": "rate_ratio", "denominator": "requests"}
    return CanaryConfig.from_dict(raw)


def _seed(kind: ScenarioKind, i: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([777, list(ScenarioKind).index(kind), i])


def test_aa_with_strong_autocorrelation_rarely_fails() -> None:
    config = _config()
    failed = 0
    for i in range(12):
        scenario = generate_canary(ScenarioKind.AA, seed=_seed(ScenarioKind.AA, i), phi=0.7)
        report = judge(config, scenario.baseline, scenario.canary)
        failed += any(m.classification.failed for m in report.metrics)
    assert failed <= 1


@pytest.mark.parametrize(
    ("kind", "size"),
    [
        (ScenarioKind.SHIFTED_MEAN, 0.36),
        (ScenarioKind.WIDER_SPREAD, 4.0),
        (ScenarioKind.HEAVIER_TAIL, 0.5),
        (ScenarioKind.NEW_ERRORS, 0.004),
    ],
)
def test_detects_clear_regressions(kind: ScenarioKind, size: float) -> None:
    # Two to three times the generator's meaningful size (spread: twice its excess over 1); the
    # meaningful sizes themselves are measured by benchmarks/bench_judges.py.
    config = _config()
    hits = 0
    for i in range(10):
        scenario = generate_canary(kind, seed=_seed(kind, i), size=size)
        report = judge(config, scenario.baseline, scenario.canary)
        assert scenario.target is not None
        hits += report.metric(scenario.target).classification is Classification.HIGH
    assert hits >= 9


@pytest.mark.parametrize("kind", [ScenarioKind.SHIFTED_MEAN, ScenarioKind.WIDER_SPREAD,
                                  ScenarioKind.HEAVIER_TAIL, ScenarioKind.NEW_ERRORS])
def test_detects_meaningful_regressions_at_ninety_percent(kind: ScenarioKind) -> None:
    # Issue 7: >= 90% detection at the generator's meaningful size. 120 canaries at fixed seeds
    # (the batched judge makes this under two seconds; the benchmark measures 200): at least
    # 90% minus two binomial standard errors (2.7%), i.e. 102.
    config = _config()
    hits = 0
    for i in range(120):
        scenario = generate_canary(kind, seed=np.random.SeedSequence([4242, i]))
        report = judge(config, scenario.baseline, scenario.canary)
        assert scenario.target is not None
        hits += report.metric(scenario.target).classification is Classification.HIGH
    assert hits >= 102


def test_aa_false_failures_per_canary_stay_near_two_percent() -> None:
    # Issue 7: <= 2% of A/A canaries of 10 metrics with some failing metric (Holm at 0.02),
    # here with phi drawn in [0, 0.7]: 150 canaries, at most 2% plus two binomial standard
    # errors (~2.3%) of slack, i.e. 6.
    config = _config()
    failed = 0
    for i in range(150):
        scenario = generate_canary(ScenarioKind.AA, seed=np.random.SeedSequence([4343, i]))
        report = judge(config, scenario.baseline, scenario.canary)
        failed += any(m.classification.failed for m in report.metrics)
    assert failed <= 6


def test_low_traffic_says_not_enough_evidence_for_counts() -> None:
    scenario = generate_canary(ScenarioKind.LOW_TRAFFIC, seed=_seed(ScenarioKind.LOW_TRAFFIC, 0))
    report = judge(_config(), scenario.baseline, scenario.canary)
    errors = report.metric("errors")
    assert errors.classification is Classification.NODATA
    assert "Not enough evidence" in errors.reason
    # The cause is named: at this traffic not even 0 errors against 0 would do.
    assert errors.reason.startswith("Low traffic: ")
    assert "even with no events on either side" in errors.reason
    # The verdict says so too: a pass on the rest is not a confident pass on the counts.
    assert report.verdict.value != "fail"
    assert "not enough evidence on" in report.reason.lower() and "errors" in report.reason
    assert "errors" in report.details["not_enough_evidence"]["metrics"]


def test_low_traffic_required_count_never_passes_and_never_fails_for_it() -> None:
    raw = _config().to_dict()
    for metric in raw["metrics"]:
        if metric["name"] in ("errors", "timeouts"):
            metric["must_have_data"] = True
    config = CanaryConfig.from_dict(raw)
    for i in range(3):
        scenario = generate_canary(ScenarioKind.LOW_TRAFFIC,
                                   seed=_seed(ScenarioKind.LOW_TRAFFIC, i))
        report = judge(config, scenario.baseline, scenario.canary)
        errors = report.metric("errors")
        assert errors.classification is Classification.NODATA
        assert errors.details["required"] is True and not errors.critical_failure
        assert "about" in errors.reason and "more intervals at this traffic" in errors.reason
        assert "errors" in report.details["not_enough_evidence"]["required"]
        # Cannot tell never rolls back: only a metric with evidence of harm can fail it.
        harmed = [m.name for m in report.metrics if m.classification.value in ("high", "low")]
        assert report.verdict.value in ("marginal", "fail")
        assert report.verdict.value != "fail" or harmed
    # With more metrics the score alone would pass (one failing of 40 scores 97.5): the
    # required evidence still holds the verdict at marginal.
    many = dict(raw, metrics=raw["metrics"] + [
        {"name": f"cpu_{k}", "query": {"type": "column", "column": "cpu"},
         "test": {"kind": "mann_whitney"}} for k in range(30)])
    report = judge(CanaryConfig.from_dict(many), scenario.baseline, scenario.canary)
    assert report.score >= 95
    assert report.verdict.value == "marginal"
    assert "must be shown safe" in report.reason and "Missing: errors:" in report.reason


def test_report_names_correction_and_level() -> None:
    scenario = generate_canary(ScenarioKind.SHIFTED_MEAN, seed=_seed(ScenarioKind.SHIFTED_MEAN, 0))
    report = judge(_config(), scenario.baseline, scenario.canary)
    correction = report.details["multiple_testing"]
    assert correction["method"] == "holm" and correction["level"] == 0.02
    result = report.metric("latency_p50")
    assert "holm over" in result.reason and "CI [" in result.reason
    assert result.details["default_judge"]["adjusted_p_value"] <= 0.02


def test_spread_change_with_same_median_caught_by_spread_check() -> None:
    rng = np.random.default_rng(3)
    base = rng.lognormal(4, 0.1, 240)
    canary = rng.lognormal(4, 0.4, 240)
    config = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"}]})
    report = judge(config, {"lat": base}, {"lat": canary})
    result = report.metric("lat")
    assert result.classification is Classification.HIGH
    assert "more spread out" in result.reason and "upper half" in result.reason
    decrease = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "decrease"}]})
    assert judge(decrease, {"lat": base}, {"lat": canary}).metric("lat").classification in (
        Classification.LOW, Classification.PASS)


def _reach_config(reach: float | None = None) -> CanaryConfig:
    test: dict[str, Any] = {} if reach is None else {"spread_reach": reach}
    return CanaryConfig.from_dict(
        {"metrics": [{"name": "lat", "direction": "increase", "test": test}]})


def test_a_shift_fails_at_the_neutral_effect_size_whatever_the_means_say() -> None:
    # Every canary minute 10 above the baseline's typical value, while the baseline drew three
    # big spikes: the ratio of means is below 1. At the default (neutral) limit any significant
    # shift counts, so the means do not veto the rank test's own estimate; a limit the config
    # sets is still read on its effect size, and Kayenta mode keeps Kayenta's rule.
    rng = np.random.default_rng(4)
    baseline = rng.normal(100.0, 5.0, 60)
    baseline[[10, 30, 50]] += 400.0
    canary = rng.normal(110.0, 5.0, 60)
    raw = {"metrics": [{"name": "latency", "direction": "increase",
                        "test": {"kind": "mann_whitney", "tails": False}}]}
    shifted = judge(CanaryConfig.from_dict(raw), {"latency": baseline}, {"latency": canary})
    latency = shifted.metric("latency")
    assert latency.effect_size is not None and latency.effect_size < 1.0
    assert latency.classification is Classification.HIGH, latency.reason
    raw["metrics"][0]["test"]["effect_size"] = {"allowed_increase": 1.05}
    limited = judge(CanaryConfig.from_dict(raw), {"latency": baseline}, {"latency": canary})
    assert limited.metric("latency").classification is Classification.PASS
    assert "not material" in limited.metric("latency").reason
    kayenta = judge(CanaryConfig.from_dict({**raw, "mode": "kayenta"}), {"latency": baseline},
                    {"latency": canary})
    assert kayenta.metric("latency").classification is Classification.PASS


def test_a_wider_upper_half_below_the_baselines_p90_passes_as_not_material() -> None:
    # A canary lower than its baseline most of the time, its upper half three times as wide
    # from its own median, yet its p90 below the baseline's: no value higher than the
    # baseline's, so not a spread regression (the rule of the spread check's reach).
    rng = np.random.default_rng(5)
    base = rng.normal(100.0, 1.0, 240)
    canary = rng.normal(96.0, 3.0, 240)
    result = judge(_reach_config(), {"lat": base}, {"lat": canary}).metric("lat")
    assert result.classification is Classification.PASS
    details = result.details["default_judge"]
    assert details["worst"] == "spread" and details["adjusted_p_value"] <= 0.02
    assert details["material"] is False
    spread = result.details["tails"]["spread"]
    assert spread["upper_half_ratio"] > 2.0 and spread["upper_reach"] < 1.0
    assert "but not material: the canary is more spread out" in result.reason
    assert f"its upper half is {figure(spread['upper_half_ratio'])}x as wide" in result.reason
    assert "but the canary's p90 is only" in result.reason
    assert f"only {figure(spread['upper_reach'])}x as far above" in result.reason
    assert "fails from spread_reach 1x" in result.reason and "passes" in result.reason


def test_a_wider_upper_half_beyond_the_baselines_p90_fails_unless_reach_asks_more() -> None:
    rng = np.random.default_rng(6)
    base = rng.normal(100.0, 1.0, 240)
    canary = rng.normal(100.0, 2.0, 240)  # twice as wide: its p90 about 2x as far out
    failed = judge(_reach_config(), {"lat": base}, {"lat": canary}).metric("lat")
    assert failed.classification is Classification.HIGH
    reach = failed.details["tails"]["spread"]["upper_reach"]
    assert 1.5 < reach < 2.5 and failed.details["default_judge"]["material"] is True
    assert "more spread out" in failed.reason and "Fails" in failed.reason
    # A team that counts only widenings reaching three baseline half-widths out.
    lenient = judge(_reach_config(3.0), {"lat": base}, {"lat": canary}).metric("lat")
    assert lenient.classification is Classification.PASS
    assert f"only {figure(reach)}x" in lenient.reason
    assert "fails from spread_reach 3x" in lenient.reason


def test_kayenta_mode_untouched_by_default_settings() -> None:
    scenario = generate_canary(ScenarioKind.AA, seed=_seed(ScenarioKind.AA, 99))
    report = judge(_config("kayenta"), scenario.baseline, scenario.canary)
    assert "multiple_testing" not in report.details
    assert all(m.test == "mann_whitney" for m in report.metrics)


def _poll_minutes(config: CanaryConfig, scenario: Any, stop: set[str]) -> tuple[Any, Any, int]:
    state = SequentialState.new("run-1", config.name, now="2026-01-01T00:00:00Z")
    for minute in range(60):
        report, state = poll(
            config, SequentialState.from_json(state.to_json()),
            scenario.baseline.iloc[minute:minute + 1], scenario.canary.iloc[minute:minute + 1],
        )
        if report.details["sequential"]["status"] in stop:
            return report, state, minute
    raise AssertionError(f"never reached {stop}: {report.reason}")


def test_sequential_state_round_trips_and_decisions_stick() -> None:
    # One metric of ten (one group, equal shares) failing leaves a score of 90: the whole-run
    # judgment says marginal at 95 / 75, and so does the run, as soon as it cannot pass.
    config = _config()
    scenario = generate_canary(ScenarioKind.NEW_ERRORS, seed=_seed(ScenarioKind.NEW_ERRORS, 1))
    assert judge(config, scenario.baseline, scenario.canary).verdict is Verdict.MARGINAL
    report, state, decided_at = _poll_minutes(config, scenario, {"fail", "inconclusive"})
    assert decided_at < 40
    assert report.details["sequential"]["status"] == "inconclusive"
    assert report.verdict is Verdict.MARGINAL and report.score == 90.0
    assert report.reason.startswith("Cannot pass any more: errors failed")
    assert "a person decides" in report.reason
    assert report.metric("errors").classification is Classification.HIGH
    assert json.loads(state.to_json())["metrics"]["errors"]["decision"] == "high"
    again, _ = poll(config, state, {}, {})
    assert again.metric("errors").classification is Classification.HIGH
    assert again.details["sequential"]["status"] == "inconclusive"


def test_sequential_failure_follows_the_configs_scoring() -> None:
    # The same run with errors critical fails the canary the poll errors fail, as the
    # fixed-horizon judgment does; with errors weighted 80% the score falls below marginal.
    scenario = generate_canary(ScenarioKind.NEW_ERRORS, seed=_seed(ScenarioKind.NEW_ERRORS, 1))
    raw = _config().to_dict()
    for metric in raw["metrics"]:
        if metric["name"] == "errors":
            metric["critical"] = True
    critical = CanaryConfig.from_dict(raw)
    report, _, minute = _poll_minutes(critical, scenario, {"fail", "inconclusive"})
    assert report.details["sequential"]["status"] == "fail"
    assert report.verdict is Verdict.FAIL and report.score == 0.0
    assert "Critical metric" in report.metric("errors").reason
    assert report.metric("errors").critical_failure
    raw = _config().to_dict()
    for metric in raw["metrics"]:
        metric["groups"] = ["errors"] if metric["name"] == "errors" else ["rest"]
    raw["groups"] = {"errors": 80, "rest": 20}
    weighted = CanaryConfig.from_dict(raw)
    report, _, weighted_minute = _poll_minutes(weighted, scenario, {"fail", "inconclusive"})
    assert weighted_minute == minute
    assert report.details["sequential"]["status"] == "fail"
    assert report.verdict is Verdict.FAIL and report.score < 75
    assert report.reason.startswith("Failed (anytime-valid at level 0.05): errors.")


def test_sequential_aa_polled_every_minute_rarely_fails() -> None:
    # The run's level is 5% (anytime-valid, split over metrics and checks); the benchmark
    # measures 3.8% over 1000 runs at phi = 0.7. 40 runs at fixed seeds (1 fails): more than 4
    # failures (10%) would mean the false-failure rate roughly doubled.
    config = _config()
    failures = 0
    for i in range(40):
        scenario = generate_canary(ScenarioKind.AA, seed=_seed(ScenarioKind.AA, 50 + i), phi=0.7)
        state = SequentialState.new(f"run-{i}", config.name)
        for minute in range(60):
            report, state = poll(
                config, state, scenario.baseline.iloc[minute:minute + 1],
                scenario.canary.iloc[minute:minute + 1],
            )
            if report.details["sequential"]["status"] == "fail":
                failures += 1
                break
    assert failures <= 4


def test_sequential_state_rejects_other_config() -> None:
    state = SequentialState.new("run", "other")
    with pytest.raises(DataError, match="state belongs to config 'other'"):
        poll(_config(), state, {}, {})


def test_sequential_final_call_passes_undecided_continuous_metrics() -> None:
    config = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"}]})
    rng = np.random.default_rng(21)
    state = SequentialState.new("run", config.name)
    base, canary = rng.normal(100, 5, 20), rng.normal(100, 5, 20)
    report, state = poll(config, state, {"lat": base[:19]}, {"lat": canary[:19]})
    assert report.details["sequential"]["status"] == "continue"
    assert report.metric("lat").classification is Classification.NODATA
    report, state = poll(config, state, {"lat": base[19:]}, {"lat": canary[19:]},
                                     final=True)
    assert report.verdict.value == "pass"
    assert "no evidence of a regression" in report.metric("lat").reason
    assert state.calls == 2 and len(state.metrics["lat"].canary) == 20
    # The verdict does not claim evidence the metric did not have.
    assert "enough evidence" not in report.reason
    assert report.reason.startswith("Passed: no metric showed a regression. 0 of 1 passed "
                                    "during the run") and "lat passed at the end" in report.reason
    assert report.metric("lat").details["passed_at_end"] is True


def test_gaussian_log_change_variance_by_simulation() -> None:
    # The spread score of two independent sides of Gaussian white noise of one scale (any
    # levels): each side's per-minute term has variance GAUSSIAN_LOG_CHANGE_VARIANCE, so their
    # difference, the score, has twice it (the clip at +-4 almost never binds).
    rng = np.random.default_rng(20261128)
    canary, baseline = rng.normal(0, 3.0, 1_000_003), rng.normal(50, 3.0, 1_000_003)
    score, null_variance = change_ratio_score(canary, baseline, relative=False)
    # A million points; neighbouring scores share points, so allow ~5 standard errors.
    assert float(score.var()) == pytest.approx(2 * GAUSSIAN_LOG_CHANGE_VARIANCE, abs=0.01)
    assert null_variance == pytest.approx(2 * GAUSSIAN_LOG_CHANGE_VARIANCE, abs=0.01)
    assert abs(float(score.mean())) < 0.01  # exchangeable sides: no spread change


def test_sequential_short_run_of_regular_changes_does_not_fail() -> None:
    # Twelve minutes in which the canary always moves 1.5x more than the baseline, with no
    # variation at all (an unlucky A/A start: every minute the canary moved more): the spread
    # score's variance must not be taken as ~0 (prior pseudo-points at the Gaussian null
    # variance) nor its autocorrelation as 0 (a constant score series gets the margin).
    config = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"}]})
    base = 100.0 + 0.5 * np.tile([1.0, -1.0], 6)
    canary = 100.0 + 0.75 * np.tile([1.0, -1.0], 6)
    report, _ = poll(config, SequentialState.new("run", config.name),
                                 {"lat": base}, {"lat": canary})
    assert report.details["sequential"]["status"] == "continue"


def _polled_until_decided(
    config: CanaryConfig, scenario: Scenario, run_id: str, *, minutes: int
) -> Report:
    """Poll a sequential run one minute at a time until it decides or ``minutes`` pass; the
    last report."""
    state = SequentialState.new(run_id, config.name)
    for minute in range(minutes):
        report, state = poll(
            config, state, scenario.baseline.iloc[minute:minute + 1],
            scenario.canary.iloc[minute:minute + 1],
        )
        if report.details["sequential"]["status"] != "continue":
            break
    return report


@pytest.mark.parametrize(("kind", "size", "first_seed", "within_20"), [
    # twice the meaningful excess: 6x the log-noise s.d. 6 of 12 within 20 minutes before a
    # sequence's failure needed a one-shot judgment of the run so far to show it too (issue
    # 13, thirteenth round); the fixed-horizon spread test needs a few more minutes (median
    # 16.5 -> 24 minutes on these 12), which is the price of that guard.
    (ScenarioKind.WIDER_SPREAD, 6.0, 300, 5),
    (ScenarioKind.HEAVIER_TAIL, 0.7, 500, 6),   # twice the meaningful share of spiky minutes
])
def test_sequential_clear_spread_and_tail_caught_and_mostly_early(
    kind: ScenarioKind, size: float, first_seed: int, within_20: int
) -> None:
    # Issue 7's target: clear regressions caught in under a third of the 60-minute run.
    config = _config()
    early = caught = 0
    for i in range(12):
        scenario = generate_canary(kind, seed=_seed(kind, first_seed + i), size=size)
        assert scenario.target is not None
        report = _polled_until_decided(config, scenario, f"run-{i}", minutes=59)
        target = report.metric(scenario.target)
        caught += target.classification is Classification.HIGH
        early += (target.classification is Classification.HIGH
                  and target.details["decided_call"] <= 19)  # one minute a call
    assert caught == 12
    assert early >= within_20


@pytest.mark.parametrize(("method", "level"), [("holm", 0.02), ("none", 0.01)])
def test_sequential_failure_names_the_one_shot_judgment_that_confirmed_it(
    method: str, level: float
) -> None:
    # A 3-sigma shift: the sequence's bound clears 0 early, and a one-shot judgment of the
    # points so far fails the metric too, at the level it applied (the family level, or the
    # metric's own one-sided 1% with no multiple-testing correction).
    config = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"}],
                                     "multiple_testing": {"method": method}})
    rng = np.random.default_rng(1)
    baseline, canary = rng.normal(100.0, 5.0, 60), rng.normal(115.0, 5.0, 60)
    report, points = _polled(config, {"lat": baseline}, {"lat": canary})
    assert points <= 20 and report.details["sequential"]["status"] == "fail"
    lat = report.metric("lat")
    confirmed = lat.details["run_so_far"]
    assert lat.classification is Classification.HIGH and confirmed["classification"] == "high"
    assert confirmed["level"] == pytest.approx(level)
    assert confirmed["p_value"] <= level
    assert f"points so far shows it too (p = {confirmed['p_value']:.2g} at level {level:.2g})" \
        in lat.reason


def test_sequential_clear_shifted_mean_mostly_caught_within_20_minutes() -> None:
    # Twice the meaningful shift; the target is "under a third of the 60-minute run".
    config = _config()
    kind = ScenarioKind.SHIFTED_MEAN
    early = 0
    for i in range(6):
        scenario = generate_canary(kind, seed=_seed(kind, 400 + i),
                                   size=2.0 * MEANINGFUL_SIZE[kind])
        assert scenario.target is not None
        report = _polled_until_decided(config, scenario, f"run-{i}", minutes=20)
        early += report.metric(scenario.target).classification.failed
    assert early >= 3


def test_sequential_final_poll_does_not_pass_a_metric_the_canary_stopped_reporting() -> None:
    config = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"},
                                                 {"name": "cpu", "direction": "increase"}]})
    rng = np.random.default_rng(8)
    base = {"lat": rng.normal(100, 5, 30), "cpu": rng.normal(50, 5, 30)}
    flat = {"lat": rng.normal(100, 5, 30), "cpu": np.zeros(30)}
    missing = {"lat": rng.normal(100, 5, 30), "cpu": np.full(30, np.nan)}
    for canary, why in ((flat, "flat"), (missing, "stopped reporting")):
        report, _ = poll(config, SequentialState.new("run", config.name), base, canary,
                         final=True)
        assert report.details["sequential"]["status"] == "inconclusive"
        assert report.verdict.value == "marginal"
        cpu = report.metric("cpu")
        assert cpu.classification is Classification.NODATA and cpu.details["required"]
        assert why in cpu.reason
        assert report.metric("lat").classification is Classification.PASS


def test_fixed_horizon_holds_a_flat_or_missing_canary_metric_at_marginal() -> None:
    config = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"},
                                                 {"name": "cpu", "direction": "increase"}]})
    rng = np.random.default_rng(9)
    base = {"lat": rng.normal(100, 5, 60), "cpu": rng.normal(50, 5, 60)}
    for cpu, why in ((np.zeros(60), "flat"), (np.full(60, np.nan), "stopped reporting")):
        report = judge(config, base, {"lat": rng.normal(100, 5, 60), "cpu": cpu})
        assert report.verdict.value == "marginal"
        assert report.metric("cpu").details["required"] and why in report.metric("cpu").reason
    # A mostly-zero baseline (disk writes) may well be zero throughout on the canary.
    sparse = np.where(rng.random(60) < 0.7, 0.0, rng.normal(50, 5, 60))
    report = judge(config, {"lat": base["lat"], "cpu": sparse},
                   {"lat": rng.normal(100, 5, 60), "cpu": np.zeros(60)})
    assert "flat" not in report.metric("cpu").reason


def _errors_config() -> CanaryConfig:
    return CanaryConfig.from_dict({"metrics": [
        {"name": "errors", "direction": "increase", "critical": True,
         "test": {"kind": "rate_ratio", "denominator": "requests"}},
        {"name": "requests", "direction": "decrease"},
    ]})


def _counts(total: int, per_minute: int = 62, minutes: int = 60) -> dict[str, np.ndarray]:
    # ``total`` errors spread evenly over the run, steady requests.
    errors = np.zeros(minutes)
    errors[np.linspace(0, minutes - 1, total).astype(int)] = 1.0
    return {"errors": errors, "requests": np.full(minutes, float(per_minute))}


def test_similar_error_counts_pass_on_evidence_of_no_material_increase() -> None:
    # 7 canary errors against 8 in 3,720 requests a side (0.2%): the rate difference is bounded
    # by MOVER at 0.11% < negligible_rate 0.2%, a pass on evidence. Comparing the canary's upper
    # bound with the baseline's lower bound compounded two bounds and held this at marginal.
    report = judge(_errors_config(), _counts(8), _counts(7))
    errors = report.metric("errors")
    assert errors.classification is Classification.PASS, errors.reason
    assert report.verdict.value == "pass"
    assert errors.details["evidence_difference_upper"] == pytest.approx(
        rate_difference_upper(7, 8, 3720, 3720, mid_p=True,
                              dispersion=errors.details["dispersion"]["dispersion"]))


def test_low_traffic_is_named_by_the_requests_not_by_the_errors() -> None:
    # 0 errors against 0 is evidence enough from about ln 5 / 0.2% = 805 canary requests
    # (mid-p 90% bound): 780 a side are low traffic, and the reason says how many would do;
    # 840 pass.
    low = judge(_errors_config(), _counts(0, per_minute=13), _counts(0, per_minute=13))
    errors = low.metric("errors")
    assert errors.classification is Classification.NODATA
    assert errors.reason.startswith(
        "Low traffic: 780 canary requests cannot show the canary's rate at most 0.2% above the "
        "baseline's even with no events on either side (about 805 are needed). Not enough "
        "evidence: "), errors.reason
    enough = judge(_errors_config(), _counts(0, per_minute=14), _counts(0, per_minute=14))
    assert enough.metric("errors").classification is Classification.PASS


def test_an_unexplained_error_increase_is_marginal_and_says_why() -> None:
    # 16 against 5: not significant at the judge's level, not shown small either; and at
    # these rates the difference is itself material, so more traffic would not help.
    report = judge(_errors_config(), _counts(5), _counts(16))
    errors = report.metric("errors")
    assert errors.classification is Classification.NODATA
    assert report.verdict.value == "marginal"
    assert "at 90% confidence the rate ratio is not shown at most 3" in errors.reason
    assert "not even 1000 times this traffic would show it" in errors.reason
    # 3,720 requests a side is not low traffic (0 errors against 0 would pass): the counts
    # are what is ambiguous, and the reason does not blame the traffic.
    assert "Low traffic" not in errors.reason


def _polled(config: CanaryConfig, baseline: dict[str, np.ndarray],
            canary: dict[str, np.ndarray]) -> tuple[Report, int]:
    # Polled every 5 points up to 60, final on the last poll; stops when the run is decided.
    state = SequentialState.new("run", config.name)
    for start in range(0, 60, 5):
        report, state = poll(config, state,
                             {k: v[start:start + 5] for k, v in baseline.items()},
                             {k: v[start:start + 5] for k, v in canary.items()},
                             final=start == 55)
        if report.details["sequential"]["status"] != "continue":
            return report, start + 5
    raise AssertionError("the final poll always ends a run")


def test_sequential_final_poll_judges_the_undecided_as_a_fixed_horizon_test_would() -> None:
    # A shift of one standard deviation of the noise: too small for the anytime-valid
    # sequences within the hour, too large for them to rule out. At the end the whole run is
    # judged once as the fixed-horizon judge judges it, which fails it: the run ends at least
    # as strict as a one-shot judgment of its data. The same run without the shift passes.
    config = CanaryConfig.from_dict({"metrics": [
        {"name": "latency", "direction": "increase"}, {"name": "cpu", "direction": "increase"}]})
    rng = np.random.default_rng(21)
    baseline = {"latency": rng.normal(100, 5, 60), "cpu": rng.normal(50, 5, 60)}
    canary = {"latency": rng.normal(105, 5, 60), "cpu": rng.normal(50, 5, 60)}
    report, points = _polled(config, baseline, canary)
    latency = report.metric("latency")
    assert points == 60
    assert latency.classification is Classification.HIGH, latency.reason
    assert "whole run judged as one fixed-horizon test shows a regression" in latency.reason
    assert latency.details["whole_run"]["classification"] == "high"
    assert judge(config, baseline, canary).metric("latency").classification \
        is Classification.HIGH
    assert "plus at most 0.02 for the final call" in report.details["sequential"]["sentence"]
    healthy, _ = _polled(config, baseline, {**canary, "latency": canary["latency"] - 5.0})
    assert healthy.details["sequential"]["status"] == "pass"


def test_sequential_final_poll_passes_a_count_the_whole_run_shows_small() -> None:
    # 0.2% errors on both sides, polled every 5 minutes: the e-processes cannot rule out a
    # doubling within the hour, but at the end the whole run bounds the increase below the
    # negligible rate (the same evidence rule as the fixed-horizon judge), so the run passes.
    config = _errors_config()
    base = _counts(8)
    report, points = _polled(config, base, _counts(7))
    assert points == 60  # undecided ("continue") at every poll before the last
    errors = report.metric("errors")
    assert report.details["sequential"]["status"] == "pass", errors.reason
    assert "the whole run shows no material change" in errors.reason
    assert errors.details["final_evidence"]["shown"] is True
    # With the canary's errors doubled the end cannot show it, and the whole run shows no
    # significant increase either (16 against 8: p = 0.08): not a pass, not a fail.
    report, points = _polled(config, base, _counts(16))
    assert points == 60
    assert report.details["sequential"]["status"] == "inconclusive"
    assert "more intervals at this traffic" in report.metric("errors").reason \
        or "not even" in report.metric("errors").reason
    assert report.metric("errors").details["whole_run"]["classification"] == "nodata"


def test_a_count_shown_fine_early_still_fails_when_errors_begin_later() -> None:
    # No errors on either side for 40 minutes: by minute 30 the e-process shows the canary's
    # rate below the material 0.2%. Then the canary errs every minute. While the latency is
    # still undecided, that early evidence does not decide the count (it used to pass it for
    # good): the failure e-process keeps watching and fails it at minute 50, as a one-shot
    # judgment of the hour fails it too.
    config = CanaryConfig.from_dict({"metrics": [
        {"name": "errors", "direction": "increase", "critical": True,
         "test": {"kind": "rate_ratio", "denominator": "requests"}},
        {"name": "requests", "direction": "decrease"},
        {"name": "latency", "direction": "increase"}]})
    rng = np.random.default_rng(5)
    baseline = {**_counts(0), "latency": rng.normal(100.0, 5.0, 60)}
    canary = {**_counts(0), "latency": rng.normal(100.0, 5.0, 60)}
    canary["errors"] = np.where(np.arange(60) >= 40, 1.0, 0.0)
    state = SequentialState.new("late-errors", config.name)
    statuses = []
    for start in range(0, 60, 5):
        report, state = poll(config, state, {k: v[start:start + 5] for k, v in baseline.items()},
                             {k: v[start:start + 5] for k, v in canary.items()},
                             final=start == 55)
        statuses.append(report.details["sequential"]["status"])
        if start + 5 == 35:
            assert state.metrics["errors"].shown_at == 30
            assert "no material increase shown so far" in report.metric("errors").reason
        if start + 5 == 45:
            assert "no material increase was shown at 30 points, but the evidence no longer " \
                   "shows it" in report.metric("errors").reason
    assert statuses[:9] == ["continue"] * 9 and statuses[9] == "fail"
    assert report.metric("errors").classification is Classification.HIGH
    assert judge(config, baseline, canary).metric("errors").classification \
        is Classification.HIGH
    # Without the late errors the run passes at its end, the count on its early evidence.
    healthy, points = _polled(config, baseline, {**canary, "errors": np.zeros(60)})
    assert points == 60 and healthy.details["sequential"]["status"] == "pass"
    assert "the run ended with no evidence of a regression" in healthy.metric("errors").reason


def test_a_count_shown_fine_passes_with_the_run_once_everything_else_passed() -> None:
    # No errors, steady requests: at minute 30 the count is shown fine and every other metric
    # has passed, so the run passes then (a promotion gate need not wait for a final call),
    # and the count with it: decisions are final, later errors change nothing.
    config = _errors_config()
    report, points = _polled(config, _counts(0), _counts(0))
    assert points == 30 and report.details["sequential"]["status"] == "pass"
    errors = report.metric("errors")
    assert errors.classification is Classification.PASS
    assert "every other metric has passed" in errors.reason


def test_sequential_final_poll_fails_a_count_the_whole_run_shows_increased() -> None:
    # 7 canary errors against none in 3,720 requests a side: the e-processes do not reach
    # their anytime-valid bar within the hour, but a one-shot judgment of the same hour fails
    # the errors (conditional binomial p = 0.0078). The final poll's look at the whole run
    # judges the undecided counts too, so the run ends as strict as that judgment: fail.
    # Before, an undecided count could only pass (on evidence) or stay "not enough evidence".
    config = _errors_config()
    report, points = _polled(config, _counts(0), _counts(7))
    assert points == 60
    errors = report.metric("errors")
    assert report.details["sequential"]["status"] == "fail", errors.reason
    assert errors.classification is Classification.HIGH
    assert "whole run judged as one fixed-horizon test shows a regression" in errors.reason
    assert errors.details["whole_run"]["classification"] == "high"
    assert errors.details["final_evidence"]["shown"] is False
    assert judge(config, _counts(0), _counts(7)).metric("errors").classification \
        is Classification.HIGH


def test_count_evidence_passes_a_material_increase_about_one_time_in_ten() -> None:
    # "No material change shown at 90%" (mid-p bounds): at the material limit (3x the
    # baseline's rate or 0.2 points above it, whichever is larger) about 10% of canaries still
    # pass, by simulation at 3,300 requests a side; a healthy one at a 0.05% error rate is held
    # at marginal in about 3% (exact bounds: 9%, with 4-9% passing at the limit).
    from judge.config import Direction, RateRatioTest
    from judge.judges.default.counts import no_material_change

    test = RateRatioTest(denominator="requests")
    rng = np.random.default_rng(20261202)
    requests, draws = 3300, 1500

    def shown(rate_b: float, rate_c: float) -> float:
        canary = rng.binomial(requests, rate_c, draws)
        baseline = rng.binomial(requests, rate_b, draws)
        return float(np.mean([
            no_material_change(Direction.INCREASE, test, c, b, requests, requests).shown
            for c, b in zip(canary, baseline, strict=True)]))

    for rate_b in (0.0, 0.0005, 0.002):
        material = max(test.margin * rate_b, rate_b + test.negligible_rate)
        assert 0.06 <= shown(rate_b, material) <= 0.13, rate_b
    assert shown(0.0005, 0.0005) >= 0.94


LAT_INCREASE = CanaryConfig.from_dict({"metrics": [{"name": "lat", "direction": "increase"}]})


def _lat_on_minutes(base: np.ndarray, canary: np.ndarray, config: CanaryConfig = LAT_INCREASE
                    ) -> Any:
    """The ``lat`` metric judged with both sides on the same 60 minutes (a DatetimeIndex)."""
    index = pd.date_range("2026-03-01T00:00:00Z", periods=60, freq="1min")
    return judge(config, pd.DataFrame({"lat": base}, index=index),
                 pd.DataFrame({"lat": canary}, index=index)).metric("lat")


def test_aligned_sides_that_share_the_load_loosely_use_the_minutes_variance() -> None:
    # Both sides follow one load (a daily swing and a drift) with their own noise, loosely
    # (rank correlation 0.38, below the signed-rank test's 0.5), and the canary ramps up by
    # 18 over the hour. The unpaired test, with each side's autocorrelation, counts the shared
    # swings as noise twice; the minutes' variance lets them cancel (issue 13: on the
    # real-noise benchmark's concurrent canaries, ramps stopped 67% -> 85%).
    rng = np.random.default_rng(18)
    load = 20 * np.sin(np.linspace(0, 2 * math.pi, 60)) + np.cumsum(rng.normal(0, 2, 60))
    base = 200 + load + rng.normal(0, 12, 60)
    canary = 200 + load + rng.normal(0, 12, 60) + np.linspace(0, 18, 60)
    aligned = _lat_on_minutes(base, canary)
    assert aligned.classification is Classification.HIGH
    assert aligned.reason.startswith("Mann-Whitney on 60 time-aligned minutes")
    pairing = aligned.details["pairing"]
    assert pairing["used"] is True and pairing["spread_test"] == "unpaired"
    assert 0 < pairing["phi"] < 0.5 and pairing["variance_factor"] < 1.5
    # The same values without timestamps: the unpaired test, which cannot see it.
    unpaired = judge(LAT_INCREASE, {"lat": base}, {"lat": canary}).metric("lat")
    assert unpaired.classification is Classification.PASS
    assert unpaired.reason.startswith("Mann-Whitney with autocorrelation correction")
    assert "pairing" not in unpaired.details
    # Kayenta mode keeps Kayenta's test whatever the timestamps.
    kayenta = CanaryConfig.from_dict({**LAT_INCREASE.to_dict(), "mode": "kayenta"})
    assert _lat_on_minutes(base, canary, kayenta).to_dict() == judge(
        kayenta, {"lat": base}, {"lat": canary}).metric("lat").to_dict()


def test_closely_aligned_sides_take_the_time_aligned_spread_test_and_survive_a_missed_scrape(
) -> None:
    # Sides that move together closely (rank correlation about 0.9): the location test uses
    # the minutes' variance and the spread test is the time-aligned one, which sees a canary
    # twice as far from the common level. Two minutes the canary did not report (a missed
    # scrape) leave 58 shared minutes, still compared minute by minute.
    rng = np.random.default_rng(3)
    level = 100 + 20 * np.sin(np.linspace(0, 4 * math.pi, 60)) + rng.normal(0, 3, 60)
    base = level + rng.normal(0, 1, 60)
    wider = 100 + 2 * (level - 100) + rng.normal(0, 1, 60)
    wider[[10, 40]] = np.nan
    result = _lat_on_minutes(base, wider)
    assert result.classification is Classification.HIGH
    assert result.reason.startswith("Mann-Whitney on 58 time-aligned minutes")
    assert "more spread out" in result.reason
    pairing = result.details["pairing"]
    assert pairing["used"] is True and pairing["minutes"] == 58
    assert pairing["spread_test"] == "time-aligned"
    assert result.details["tails"]["spread"]["paired"] is True
