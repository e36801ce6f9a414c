"""Backtests and sweeps over labelled scenarios (small generated histories, no files)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from judge.config import CanaryConfig
from judge.lab.backtest import (
    RESERVED_COLUMNS,
    BacktestResult,
    backtest,
    configure,
    set_path,
    summarize,
    sweep,
)
from judge.lab.scenarios import (
    Scenario,
    ScenarioKind,
    generate_canary,
    generate_history,
    history_config,
)


@pytest.fixture(scope="module")
def history() -> list[Scenario]:
    return generate_history(12, seed=5, mix={"aa": 0.5, "shifted_mean": 0.25, "new_errors": 0.25})


def test_frame_has_one_row_per_scenario_with_the_report_in_it(history: list[Scenario]) -> None:
    config = history_config("kayenta")
    result = backtest(config, history)
    frame = result.frame
    assert list(frame.index) == [s.id for s in history]
    assert list(frame.columns) == [*RESERVED_COLUMNS, *(m.name for m in config.metrics)]
    for scenario in history:
        report = result.reports[scenario.id]
        row = frame.loc[scenario.id]
        assert row["verdict"] == report.verdict.value
        assert row["score"] == report.score
        assert row["label"] == scenario.label.value
        assert row["latency_p50"] == report.metric("latency_p50").classification.value
        failed = {m.name for m in report.metrics if m.classification.failed}
        assert set(filter(None, row["failed"].split(","))) == failed
    assert result.seconds > 0


def test_a_gross_regression_is_caught_in_its_target_and_identical_sides_pass() -> None:
    bad = generate_canary("shifted_mean", seed=3, size=1.0, phi=0.2)
    same = generate_canary("aa", seed=4)
    same = type(same)(
        id="identical",
        kind=same.kind,
        label=same.label,
        baseline=same.baseline,
        canary=same.baseline.copy(),
        meta=same.meta,
    )
    result = backtest(history_config("kayenta"), [bad, same])
    assert result.frame.loc[bad.id, "target_classification"] == "high"
    assert result.frame.loc[bad.id, "verdict"] != "pass"
    assert result.frame.loc["identical", "verdict"] == "pass"
    rates = result.rates()
    assert (rates["false_failure"], rates["detection"]) == (0.0, 1.0)
    # One canary of each: the intervals say how little that is.
    assert rates["false_failure_high"] > 0.75 and rates["detection_low"] < 0.25


def _frame(rows: list[tuple[str, str, str, str | None, str | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": f"s{i}",
                "kind": k,
                "label": lab,
                "verdict": v,
                "score": 0.0,
                "failed": "",
                "nodata": nd,
                "target": t,
                "target_classification": tc,
            }
            for i, (k, lab, v, t, tc, nd) in enumerate(rows)
        ]
    ).set_index("id")


def test_summary_counts_false_failures_and_misses_per_kind() -> None:
    frame = _frame(
        [
            ("aa", "good", "pass", None, None, 0),
            ("aa", "good", "marginal", None, None, 0),
            ("aa", "good", "fail", None, None, 0),
            ("aa", "good", "pass", None, None, 0),
            ("low_traffic", "good", "marginal", None, None, 2),
            ("shifted_mean", "bad", "pass", "m", "pass", 0),
            ("shifted_mean", "bad", "fail", "m", "high", 0),
            ("new_errors", "bad", "marginal", "e", "pass", 1),
        ]
    )
    summary = summarize(frame)
    assert list(summary.index) == [
        "aa",
        "low_traffic",
        "new_errors",
        "shifted_mean",
        "good (all)",
        "bad (all)",
        "all",
    ]
    assert summary.loc["aa", "false_failure"] == 0.5
    assert summary.loc["aa", "fail"] == 0.25
    assert math.isnan(summary.loc["aa", "missed"])
    assert summary.loc["low_traffic", "some_nodata"] == 1.0
    assert summary.loc["shifted_mean", "missed"] == 0.5
    assert summary.loc["shifted_mean", "target_flagged"] == 0.5
    assert summary.loc["new_errors", "detection"] == 1.0
    assert summary.loc["new_errors", "target_flagged"] == 0.0
    assert summary.loc["good (all)", "false_failure"] == 3 / 5
    assert summary.loc["bad (all)", "detection"] == 2 / 3
    assert summary.loc["all", "label"] == "mixed"
    assert summary.loc["all", "n"] == 8


def test_set_path_by_wildcard_name_and_position() -> None:
    native = CanaryConfig.from_dict(
        {
            "metrics": [
                {"name": "a"},
                {"name": "b", "test": {"kind": "threshold", "max": 5}},
                {"name": "c"},
            ]
        }
    ).to_dict()
    # The threshold test has no confidence: the wildcard skips it.
    assert set_path(native, "metrics.*.test.confidence", 0.9) == 2
    assert native["metrics"][1]["test"].get("confidence") is None
    assert set_path(native, "metrics.c.test.tolerance", 0.5) == 1
    assert set_path(native, "metrics.0.direction", "increase") == 1
    assert set_path(native, "thresholds.pass", 90) == 1
    config = CanaryConfig.from_dict(native)
    assert config.metric("a").test.confidence == 0.9  # type: ignore[union-attr]
    assert config.metric("c").test.tolerance == 0.5  # type: ignore[union-attr]
    assert config.metric("a").direction.value == "increase"
    assert config.thresholds.pass_ == 90
    for bad_path in ("metrics.zzz.direction", "nothing.here", "metrics.*.test.nope", ""):
        with pytest.raises(KeyError):
            set_path(native, bad_path, 1)


def test_threshold_sweep_rescoring_matches_a_full_backtest(history: list[Scenario]) -> None:
    config = history_config("kayenta")
    table = sweep(config, history, {"thresholds.pass": [85.0, 95.0, 100.0]})
    assert list(table["thresholds.pass"]) == [85.0, 95.0, 100.0]
    for _, row in table.iterrows():
        direct = backtest(
            config, history, thresholds={"pass": row["thresholds.pass"], "marginal": 75.0}
        )
        assert row["false_failure"] == direct.rates()["false_failure"]
        assert row["detection"] == direct.rates()["detection"]
    # A stricter pass threshold can only turn passes into non-passes.
    assert table["false_failure"].is_monotonic_increasing
    assert table["detection"].is_monotonic_increasing


def test_sweep_over_test_parameters_and_thresholds_is_a_full_grid(history: list[Scenario]) -> None:
    grid = {"metrics.*.test.confidence": [0.8, 0.999], "thresholds.pass": [90.0, 95.0]}
    table = sweep(history_config("kayenta"), history, grid)
    assert len(table) == 4
    assert {
        "false_failure",
        "detection",
        "fail_on_good",
        "detection:shifted_mean",
        "false_failure:aa",
    } <= set(table.columns)
    loose = table[(table["metrics.*.test.confidence"] == 0.8) & (table["thresholds.pass"] == 95)]
    strict = table[(table["metrics.*.test.confidence"] == 0.999) & (table["thresholds.pass"] == 95)]
    # Lower confidence flags more metrics: at least as many false failures and detections.
    assert loose["false_failure"].item() >= strict["false_failure"].item()
    assert loose["detection"].item() >= strict["detection"].item()


def test_sweep_rejects_paths_that_do_not_fit_before_judging(history: list[Scenario]) -> None:
    with pytest.raises(KeyError, match=r"metrics\.nope"):
        sweep(history_config(), history, {"metrics.nope.test.confidence": [0.9]})
    with pytest.raises(ValueError, match="non-empty list"):
        sweep(history_config(), history, {"thresholds.pass": []})


def test_metric_names_must_not_clash_with_backtest_columns() -> None:
    config = CanaryConfig.from_dict({"metrics": [{"name": "score"}]})
    with pytest.raises(ValueError, match="clash"):
        backtest(config, [])


def test_duplicate_scenario_ids_are_rejected() -> None:
    scenario = generate_canary("aa", seed=1)
    with pytest.raises(ValueError, match="twice"):
        backtest(history_config(), [scenario, scenario])


def test_sweep_reuses_a_backtest_of_the_same_config_instead_of_judging(
    history: list[Scenario],
) -> None:
    config = history_config("kayenta")
    base = backtest(config, history)
    # Doctor the reused reports: if the sweep took them, its row shows the doctored verdicts.
    doctored = BacktestResult(
        config=base.config,
        frame=base.frame.assign(verdict="fail"),
        reports=base.reports,
        seconds=base.seconds,
    )
    table = sweep(config, history, {"metrics.*.test.confidence": [0.98]}, reuse=[doctored])
    assert table["false_failure"].item() == 1.0
    # A backtest run with overridden thresholds cannot stand in for the config's own.
    overridden = backtest(config, history, thresholds={"pass": 0, "marginal": 0})
    table = sweep(config, history, {"metrics.*.test.confidence": [0.98]}, reuse=[overridden])
    assert table["false_failure"].item() == base.rates()["false_failure"]


def test_configure_applies_a_setting_without_touching_the_base() -> None:
    base = history_config()
    tuned = configure(base, {"metrics.*.test.effect_size.allowed_increase": 1.1})
    assert tuned.metric("latency_p50").test.effect_size.allowed_increase == 1.1  # type: ignore[union-attr]
    assert base.metric("latency_p50").test.effect_size.allowed_increase == 1.0  # type: ignore[union-attr]
    # The rate-ratio test has no effect_size block: the wildcard leaves it alone.
    assert tuned.metric("errors").test == base.metric("errors").test


def test_past_canaries_of_your_own_kind_backtest_like_generated_ones() -> None:
    generated = generate_canary("shifted_mean", seed=8, size=1.0, phi=0.1)
    past = Scenario("deploy-812", "past", "bad", generated.baseline, generated.canary)
    fine = Scenario("deploy-813", "past", "good", generated.baseline, generated.baseline.copy())
    result = backtest(history_config("kayenta"), [past, fine])
    summary = result.summary()
    assert summary.loc["past", "n"] == 2
    assert summary.loc["past", "label"] == "mixed"
    assert {k: result.rates()[k] for k in ("false_failure", "detection")} == {
        "false_failure": 0.0, "detection": 1.0}
    # Without a known target the row says so rather than guessing.
    assert result.frame.loc["deploy-812", "target"] is None


def test_scenarios_validate_their_label_and_data() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'good', 'bad' or None"):
        Scenario("s", "past", "ugly", frame, frame)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="canary"):
        Scenario("s", "past", "good", frame, {"x": [1.0]})  # type: ignore[arg-type]
    assert Scenario("s", "aa", "good", frame, frame).kind is ScenarioKind.AA


def test_canaries_with_unknown_outcome_are_shown_but_not_counted_in_the_rates() -> None:
    bad = generate_canary("shifted_mean", seed=8, size=1.0, phi=0.1)
    unknown = Scenario("deploy-900", "past", None, bad.baseline, bad.canary)
    good = Scenario("deploy-901", "past", "good", bad.baseline, bad.baseline.copy())
    result = backtest(history_config("kayenta"), [unknown, good])
    assert result.frame.loc["deploy-900", "verdict"] != "pass"
    summary = result.summary()
    assert summary.loc["past", "label"] == "mixed"
    assert summary.loc["good (all)", "false_failure"] == 0.0
    assert np.isnan(summary.loc["bad (all)", "detection"])
    assert summary.loc["all", "n"] == 2


def test_every_headline_rate_comes_with_its_wilson_interval() -> None:
    history = generate_history(10, seed=4, mix={"aa": 1.0})
    result = backtest(history_config("default"), history)
    rates = result.rates()
    # 10 good canaries: even 0 false failures is "at most about 28%" at 95%.
    assert rates["false_failure_low"] <= rates["false_failure"] <= rates["false_failure_high"]
    count = round(rates["false_failure"] * 10)
    ci = binomtest(count, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert (rates["false_failure_low"], rates["false_failure_high"]) == pytest.approx(
        (ci.low, ci.high))
    assert rates["false_failure_high"] > 0.25
    # No bad releases: no rate and no interval, never "0 missed".
    assert math.isnan(rates["detection"]) and math.isnan(rates["detection_high"])
    summary = result.summary()
    assert {"false_failure_low", "false_failure_high", "detection_low",
            "detection_high"} <= set(summary.columns)


def test_parallel_backtest_gives_the_same_results_in_order() -> None:
    history = generate_history(12, seed=9)
    config = history_config("default")
    serial = backtest(config, history, jobs=1)
    parallel = backtest(config, history, jobs=2)
    pd.testing.assert_frame_equal(serial.frame, parallel.frame)
    assert list(parallel.reports) == [s.id for s in history]
    assert parallel.reports[history[5].id].to_dict() == serial.reports[history[5].id].to_dict()
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        backtest(config, history, jobs=0)
