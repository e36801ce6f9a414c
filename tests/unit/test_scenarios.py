"""The labelled scenario generator: shapes, labels, determinism, and that each kind really
contains the regression it claims (and good kinds none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from judge.config import Direction, JudgeMode
from judge.lab.scenarios import (
    DEFAULT_TARGET,
    MEANINGFUL_SIZE,
    STANDARD_METRICS,
    Family,
    Label,
    MetricSpec,
    Scenario,
    ScenarioKind,
    generate_canary,
    generate_history,
    history_config,
)


@pytest.mark.parametrize("kind", list(ScenarioKind))
def test_each_kind_has_two_aligned_minute_series_and_its_label(kind: ScenarioKind) -> None:
    scenario = generate_canary(kind, seed=11)
    names = [spec.name for spec in STANDARD_METRICS]
    for frame in (scenario.baseline, scenario.canary):
        assert list(frame.columns) == names
        assert isinstance(frame.index, pd.DatetimeIndex)
        assert str(frame.index.tz) == "UTC"
        assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(minutes=1)).all()
        assert len(frame) == 60
        assert frame["requests"].dtype == np.int64
        assert frame["errors"].dtype == np.int64
        # Error counts can never exceed the requests they come from.
        assert (frame["errors"] <= frame["requests"]).all()
    assert scenario.baseline.index.equals(scenario.canary.index)
    good = (ScenarioKind.AA, ScenarioKind.LOW_TRAFFIC, ScenarioKind.BENIGN_SHIFT)
    expected = Label.GOOD if kind in good else Label.BAD
    assert scenario.label is expected
    if kind is not ScenarioKind.BENIGN_SHIFT:
        assert scenario.target == DEFAULT_TARGET.get(kind)


def test_same_seed_same_scenario_other_seed_other_scenario() -> None:
    first = generate_canary("heavier_tail", seed=5)
    again = generate_canary("heavier_tail", seed=5)
    other = generate_canary("heavier_tail", seed=6)
    pd.testing.assert_frame_equal(first.canary, again.canary)
    pd.testing.assert_frame_equal(first.baseline, again.baseline)
    assert not first.canary.equals(other.canary)


def test_history_scenarios_regenerate_alone_from_their_seed() -> None:
    history = generate_history(12, seed=3)
    sixth = history[5]
    alone = generate_canary(
        sixth.kind,
        seed=np.random.SeedSequence(sixth.meta["seed"]),
        size=sixth.meta["size"],
    )
    pd.testing.assert_frame_equal(sixth.canary, alone.canary)


def test_history_follows_the_mix_exactly() -> None:
    history = generate_history(
        40, seed=1, mix={"aa": 0.5, "new_errors": 0.25, "shifted_mean": 0.25}
    )
    kinds = pd.Series([s.kind.value for s in history]).value_counts()
    assert kinds.to_dict() == {"aa": 20, "new_errors": 10, "shifted_mean": 10}
    assert len({s.id for s in history}) == 40


def test_shifted_mean_moves_the_target_level_by_its_size() -> None:
    # Over many seeds the log-ratio of canary to baseline medians averages log(1 + size) on
    # the target, and zero on a metric left alone.
    ratios, untouched = [], []
    for seed in range(200):
        s = generate_canary("shifted_mean", seed=seed, size=0.3, phi=0.0)
        ratios.append(np.log(s.canary["latency_p50"].median() / s.baseline["latency_p50"].median()))
        untouched.append(np.log(s.canary["cpu"].median() / s.baseline["cpu"].median()))
    assert np.mean(ratios) == pytest.approx(np.log(1.3), abs=0.01)
    assert abs(np.mean(untouched)) < 0.01


def test_wider_spread_keeps_the_median_and_widens_the_log_spread() -> None:
    spread_ratio, median_ratio = [], []
    for seed in range(200):
        s = generate_canary("wider_spread", seed=seed, size=3.0, phi=0.0)
        base, can = np.log(s.baseline["latency_p90"]), np.log(s.canary["latency_p90"])
        spread_ratio.append(can.quantile(0.75) - can.quantile(0.25))
        spread_ratio[-1] /= base.quantile(0.75) - base.quantile(0.25)
        median_ratio.append(can.median() - base.median())
    assert np.median(spread_ratio) == pytest.approx(3.0, rel=0.15)
    assert abs(np.mean(median_ratio)) < 0.02


def test_heavier_tail_adds_spikes_to_the_canary_only() -> None:
    base_share, canary_share = [], []
    for seed in range(100):
        s = generate_canary("heavier_tail", seed=seed, size=0.3)
        threshold = 1.8 * s.baseline["latency_p99"].median()
        base_share.append((s.baseline["latency_p99"] > threshold).mean())
        canary_share.append((s.canary["latency_p99"] > threshold).mean())
    # Spikes are at least twice the body, so about the spike probability exceeds 1.8 x median.
    assert np.mean(base_share) == pytest.approx(0.02, abs=0.015)
    assert np.mean(canary_share) == pytest.approx(0.3, abs=0.04)


def test_new_errors_means_a_clean_baseline_and_errors_in_the_canary() -> None:
    for seed in range(20):
        s = generate_canary("new_errors", seed=seed)
        assert s.baseline["errors"].sum() == 0
        rate = s.canary["errors"].sum() / s.canary["requests"].sum()
        assert rate == pytest.approx(MEANINGFUL_SIZE[ScenarioKind.NEW_ERRORS], rel=0.6)
        assert s.meta["error_rate"]["errors"] == 0.0


def test_low_traffic_has_few_requests_and_gaps_in_latency() -> None:
    s = generate_canary("low_traffic", seed=2)
    assert s.baseline["requests"].mean() < 3
    idle = s.baseline["requests"] == 0
    assert idle.any()
    assert s.baseline.loc[idle, "latency_p50"].isna().all()
    assert s.baseline.loc[~idle, "latency_p50"].notna().all()
    # A gauge is not a per-request statistic: it has no gaps.
    assert s.baseline["cpu"].notna().all()


def test_aa_noise_is_autocorrelated_at_the_requested_phi() -> None:
    lag1 = []
    for seed in range(100):
        s = generate_canary("aa", seed=seed, phi=0.7, n_points=240)
        lag1.append(np.log(s.baseline["memory"]).autocorr(1))
    # memory barely follows the daily cycle, so its lag-1 autocorrelation is about phi.
    assert np.mean(lag1) == pytest.approx(0.7, abs=0.05)
    independent = [
        np.log(generate_canary("aa", seed=seed, phi=0.0, n_points=240).baseline["memory"]).autocorr(
            1
        )
        for seed in range(100)
    ]
    assert abs(np.mean(independent)) < 0.05


def test_custom_metrics_and_targets() -> None:
    specs = [
        MetricSpec("p95", Family.LATENCY, 100.0, 0.1),
        MetricSpec("hits", Family.REQUESTS, 1000.0, 0.05),
        MetricSpec("failures", Family.ERRORS, 0.01, 0.2, denominator="hits"),
    ]
    s = generate_canary("new_errors", seed=1, metrics=specs, target="failures")
    assert list(s.canary.columns) == ["p95", "hits", "failures"]
    assert s.baseline["failures"].sum() == 0 and s.canary["failures"].sum() > 0
    s = generate_canary("shifted_mean", seed=1, metrics=["cpu"], target="cpu", size=0.5)
    assert s.canary["cpu"].mean() > 1.3 * s.baseline["cpu"].mean()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generate_canary("bogus", seed=1), "kind: 'bogus' is not a scenario kind"),
        (lambda: generate_canary("aa", seed=1, metrics=["nope"]), "unknown metric 'nope'"),
        (lambda: generate_canary("aa", seed=1, metrics=["errors"]), "not among the metrics"),
        (lambda: generate_canary("heavier_tail", seed=1, target="cpu"), "family"),
        (lambda: generate_canary("aa", seed=1, target="cpu"), "no regressed metric"),
        (lambda: generate_canary("aa", seed=1, phi=1.0), "phi"),
        (lambda: generate_history(5, seed=1, mix={"aa": 0.0}), "mix"),
    ],
)
def test_invalid_arguments_name_the_parameter(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_errors_spec_needs_a_denominator() -> None:
    with pytest.raises(ValueError, match="denominator"):
        MetricSpec("errs", Family.ERRORS, 0.01, 0.2)


def test_history_config_judges_every_column_in_its_bad_direction() -> None:
    config = history_config("kayenta")
    assert config.mode is JudgeMode.KAYENTA
    assert [m.name for m in config.metrics] == [s.name for s in STANDARD_METRICS]
    assert config.metric("latency_p99").direction is Direction.INCREASE
    assert config.metric("requests").direction is Direction.EITHER


def test_generating_500_canaries_gives_each_its_own_series() -> None:
    # Its speed is benchmarks/' business (a timed assertion fails on a loaded machine).
    history = generate_history(500, seed=9)
    assert len(history) == 500
    assert len({s.id for s in history}) == 500
    assert len({float(s.canary.iloc[0, 0]) for s in history}) > 450


def test_shipped_history_is_the_generator_at_its_seed() -> None:
    # The files under judge/lab/data/history are generate_history at HISTORY_SEED, rounded to
    # 7 significant digits: regenerate with save_history when the generator changes.
    from judge.lab import scenarios

    shipped = scenarios.load_history()
    fresh = generate_history(
        scenarios.HISTORY_SIZE,
        seed=scenarios.HISTORY_SEED,
        size_range=scenarios.HISTORY_SIZE_RANGE,
    )
    assert len(shipped) == len(fresh) == scenarios.HISTORY_SIZE
    for stored, generated in zip(shipped, fresh, strict=True):
        assert (stored.id, stored.kind, stored.label) == (
            generated.id,
            generated.kind,
            generated.label,
        )
        assert stored.meta["phi"] == pytest.approx(generated.meta["phi"])
        assert stored.target == generated.target
        for side in ("baseline", "canary"):
            pd.testing.assert_frame_equal(
                getattr(stored, side), getattr(generated, side), check_freq=False, rtol=1e-6
            )


def test_shipped_history_mixes_good_and_bad_releases_of_every_kind() -> None:
    from judge.lab.scenarios import load_history

    history = load_history()
    kinds = pd.Series([s.kind.value for s in history]).value_counts()
    assert set(kinds.index) == {k.value for k in ScenarioKind}
    labels = pd.Series([s.label.value for s in history]).value_counts()
    assert labels["good"] == labels["bad"] == len(history) // 2


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    from judge.lab.scenarios import load_history, save_history

    history = generate_history(6, seed=4)
    # A past canary of one's own: 10-minute points, the canary a day after its baseline,
    # values that 7 significant digits would round.
    index = pd.date_range("2026-05-01T12:00:00Z", periods=4, freq="10min", name="time")
    past = Scenario("deploy-9", "past", "bad",
                    pd.DataFrame({"p99": [0.1 + 0.2, 1 / 3, 2.0**0.5, 1e-9 / 7]}, index=index),
                    pd.DataFrame({"p99": [1.0, 2.0, 3.0, 4.0]}, index=index + pd.Timedelta("1D")))
    save_history([*history, past], tmp_path)
    loaded = load_history(tmp_path)
    assert [s.id for s in loaded] == [s.id for s in [*history, past]]
    # Exactly what was saved: full precision, each side's own timestamps and step.
    for stored, original in zip(loaded, [*history, past], strict=True):
        for side in ("baseline", "canary"):
            pd.testing.assert_frame_equal(getattr(stored, side), getattr(original, side),
                                          check_freq=False, check_exact=True)
    assert loaded[-1].canary.index[0] == pd.Timestamp("2026-05-02T12:00:00Z")
    assert (loaded[-1].label, loaded[-1].kind) == (past.label, "past")


def test_history_config_judges_error_counts_on_counts_in_default_mode_only() -> None:
    default = history_config("default")
    assert default.metric("errors").test.kind == "rate_ratio"
    assert default.metric("errors").test.denominator == "requests"  # type: ignore[union-attr]
    assert default.metric("latency_p50").test.kind == "mann_whitney"
    kayenta = history_config("kayenta")
    assert {m.test.kind for m in kayenta.metrics} == {"mann_whitney"}


def test_benign_shift_is_a_good_release_with_a_small_level_change() -> None:
    from judge.lab.scenarios import BENIGN_TARGETS

    targets, ratios = set(), []
    for seed in range(120):
        s = generate_canary("benign_shift", seed=seed, phi=0.0)
        assert s.label is Label.GOOD
        targets.add(s.target)
        if s.target == "memory":
            ratios.append(s.canary["memory"].mean() / s.baseline["memory"].mean())
    assert targets == set(BENIGN_TARGETS)
    assert np.mean(ratios) == pytest.approx(1.05, abs=0.01)
    explicit = generate_canary("benign_shift", seed=1, target="cpu", size=0.5, phi=0.0)
    assert explicit.canary["cpu"].mean() > 1.3 * explicit.baseline["cpu"].mean()


def test_load_follows_the_daily_cycle_on_both_sides() -> None:
    # A whole day from midnight: CPU and requests peak around noon and bottom out around
    # midnight, identically on both sides (they run at the same time).
    day = generate_canary("aa", seed=3, n_points=1440, start="2026-03-02T00:00:00Z", phi=0.3)
    for side in (day.baseline, day.canary):
        hourly = side[["cpu", "requests"]].resample("60min").mean()
        assert hourly["cpu"].idxmax().hour in range(10, 15)
        assert hourly["requests"].idxmin().hour in (22, 23, 0, 1, 2)
        ratio = hourly["requests"].max() / hourly["requests"].min()
        assert ratio == pytest.approx((1 + 0.35) / (1 - 0.35), rel=0.15)


def test_error_counts_are_mostly_zero_minutes_with_a_few_errors() -> None:
    zero_share, totals = [], []
    for seed in range(60):
        s = generate_canary("aa", seed=seed)
        if s.meta["error_rate"]["errors"] > 0:
            zero_share.append((s.baseline["errors"] == 0).mean())
            totals.append(s.baseline["errors"].sum())
        else:
            # A service without errors has none on either side.
            assert s.baseline["errors"].sum() == s.canary["errors"].sum() == 0
    assert 0.3 < np.median(zero_share) < 0.9
    assert np.median(totals) > 5
