"""Figures from reports, sweeps and backtests (Agg backend: drawn in memory, never shown)."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from judge import judge
from judge.config import CanaryConfig
from judge.lab.backtest import backtest, sweep
from judge.lab.plots import plot_backtest, plot_metric, plot_report, plot_sweep
from judge.lab.scenarios import generate_canary, generate_history, history_config


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def bad_canary():  # type: ignore[no-untyped-def]
    return generate_canary("shifted_mean", seed=3, size=0.5, phi=0.2)


def _lines_by_label(ax: plt.Axes) -> dict[str, plt.Line2D]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_report_figure_has_three_panels_per_metric_and_the_verdict(bad_canary) -> None:  # type: ignore[no-untyped-def]
    config = history_config("kayenta", metrics=["latency_p50", "cpu", "requests"])
    report = judge(config, bad_canary.baseline, bad_canary.canary)
    figure = plot_report(report, bad_canary.baseline, bad_canary.canary)
    assert len(figure.axes) == 9
    title = figure._suptitle.get_text()
    assert f"verdict {report.verdict.value.upper()}" in title
    assert f"score {report.score:g}" in title
    for row, result in enumerate(report.metrics):
        series_ax, dist_ax, shift_ax = figure.axes[3 * row : 3 * row + 3]
        assert series_ax.get_title(loc="left") == f"{result.name}: {result.classification.value}"
        lines = _lines_by_label(series_ax)
        np.testing.assert_allclose(
            lines["canary"].get_ydata(), bad_canary.canary[result.name].to_numpy(float)
        )
        np.testing.assert_allclose(
            lines["baseline"].get_ydata(), bad_canary.baseline[result.name].to_numpy(float)
        )
        ecdf = _lines_by_label(dist_ax)["canary"]
        assert ecdf.get_ydata()[-1] == pytest.approx(1.0)
        assert np.all(np.diff(ecdf.get_ydata()) >= 0)
        # The estimate is drawn where the report puts it, its interval as the error bar.
        (container,) = shift_ax.containers
        assert container.get_label() == "estimate, interval"
        assert container.lines[0].get_xdata()[0] == pytest.approx(result.estimate)
        # The error bar spans the interval.
        segment = container.lines[2][0].get_segments()[0]
        assert segment[0][0] == pytest.approx(result.low)
        assert segment[1][0] == pytest.approx(result.high)
    latency = report.metric("latency_p50")
    assert latency.classification.value == "high"
    # Kayenta's tolerance band, 0.25 * |shift| each side of zero, is shaded.
    band = figure.axes[2].patches[0].get_bbox()
    assert band.x0 == pytest.approx(-0.25 * abs(latency.estimate))
    assert band.x1 == pytest.approx(0.25 * abs(latency.estimate))


def test_report_plots_only_the_named_metrics_in_order(bad_canary) -> None:  # type: ignore[no-untyped-def]
    config = history_config("kayenta")
    report = judge(config, bad_canary.baseline, bad_canary.canary)
    figure = plot_report(report, bad_canary.baseline, bad_canary.canary, metrics=["cpu", "errors"])
    assert len(figure.axes) == 6
    assert figure.axes[0].get_title(loc="left").startswith("cpu:")
    assert figure.axes[3].get_title(loc="left").startswith("errors:")
    with pytest.raises(KeyError):
        plot_report(report, bad_canary.baseline, bad_canary.canary, metrics=["nope"])


def test_effect_size_limits_are_drawn_as_shifts_of_the_baseline_mean(bad_canary) -> None:  # type: ignore[no-untyped-def]
    config = history_config("kayenta", metrics=["latency_p50"]).model_copy()
    from judge.lab.backtest import configure

    config = configure(config, {"metrics.*.test.effect_size.allowed_increase": 1.1})
    report = judge(config, bad_canary.baseline, bad_canary.canary)
    result = report.metric("latency_p50")
    figure = plot_metric(
        result, bad_canary.baseline, bad_canary.canary, metric=config.metric("latency_p50")
    )
    limit = _lines_by_label(figure.axes[2])["allowed increase"]
    assert limit.get_xdata()[0] == pytest.approx(0.1 * result.baseline.mean)
    # Without the config there is nothing to say about limits.
    bare = plot_metric(result, bad_canary.baseline, bad_canary.canary)
    assert "allowed increase" not in _lines_by_label(bare.axes[2])


def test_rate_ratio_panel_is_centred_on_one() -> None:
    scenario = generate_canary("aa", seed=2)
    baseline = scenario.baseline.assign(errors=np.full(60, 2))
    canary = scenario.canary.assign(errors=np.full(60, 6))
    report = judge(history_config("default"), baseline, canary)
    result = report.metric("errors")
    assert result.test == "rate_ratio"
    figure = plot_metric(result, baseline, canary)
    shift_ax = figure.axes[2]
    assert _lines_by_label(shift_ax)["no change"].get_xdata()[0] == 1.0
    assert shift_ax.get_title().startswith("ratio")
    assert shift_ax.containers[0].lines[0].get_xdata()[0] == pytest.approx(result.estimate)


def test_an_infinite_ratio_shows_its_lower_bound() -> None:
    scenario = generate_canary("new_errors", seed=2, size=0.01)
    report = judge(history_config("default"), scenario.baseline, scenario.canary)
    result = report.metric("errors")
    assert np.isinf(result.estimate)
    figure = plot_metric(result, scenario.baseline, scenario.canary)
    bound = _lines_by_label(figure.axes[2])["lower bound"]
    assert bound.get_xdata()[0] == pytest.approx(result.low)
    assert "estimate infinite" in figure.axes[2].get_title()


def test_plot_metric_accepts_mappings_and_checks_axes(bad_canary) -> None:  # type: ignore[no-untyped-def]
    config = history_config("kayenta", metrics=["cpu"])
    baseline = {"cpu": bad_canary.baseline["cpu"].to_list()}
    canary = {"cpu": bad_canary.canary["cpu"].to_list()}
    report = judge(config, baseline, canary)
    figure = plot_metric(report.metric("cpu"), baseline, canary)
    assert len(_lines_by_label(figure.axes[0])["canary"].get_xdata()) == len(canary["cpu"])
    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="3 axes"):
        plot_metric(report.metric("cpu"), baseline, canary, axes=list(axes))


def test_sweep_plot_marks_every_setting_and_the_pareto_front() -> None:
    frame = pd.DataFrame(
        {
            "thresholds.pass": [90, 95, 99, 80],
            "false_failure": [0.05, 0.10, 0.30, 0.20],
            "detection": [0.60, 0.80, 0.90, 0.50],
        }
    )
    figure = plot_sweep(frame, highlight=1)
    ax = figure.axes[0]
    points = ax.collections[0].get_offsets()
    assert len(points) == 4
    labels = [t.get_text() for t in ax.texts]
    assert "pass=95" in labels
    front = _lines_by_label(ax)["Pareto front"]
    # (0.2, 0.5) is beaten by (0.05, 0.6) on both rates: it is not on the front.
    assert list(front.get_xdata()) == [0.05, 0.10, 0.30]
    assert "chosen" in [h.get_label() for h in ax.get_legend().legend_handles]
    with pytest.raises(ValueError, match="column"):
        plot_sweep(frame, x="nope")


def test_sweep_labels_keep_paths_that_end_alike_apart() -> None:
    frame = pd.DataFrame(
        {
            "metrics.cpu.test.confidence": [0.95],
            "metrics.latency_p50.test.confidence": [0.99],
            "thresholds.pass": [90],
            "false_failure": [0.1],
            "detection": [0.9],
        }
    )
    ax = plot_sweep(frame).axes[0]
    assert [t.get_text() for t in ax.texts] == [
        "cpu.test.confidence=0.95, latency_p50.test.confidence=0.99, pass=90"
    ]


def test_backtest_plot_bars_are_the_summary_rates() -> None:
    history = generate_history(8, seed=2, mix={"aa": 0.5, "shifted_mean": 0.5})
    results = {
        "kayenta": backtest(history_config("kayenta"), history),
        "default": backtest(history_config("default"), history),
    }
    figure = plot_backtest(results)
    ax = figure.axes[0]
    # kinds aa, shifted_mean, good (all), bad (all): 4 bars per backtest.
    assert len(ax.patches) == 8
    summary = results["kayenta"].summary()
    heights = [p.get_height() for p in ax.patches[:4]]
    expected = [
        summary.loc["aa", "false_failure"],
        summary.loc["shifted_mean", "detection"],
        summary.loc["good (all)", "false_failure"],
        summary.loc["bad (all)", "detection"],
    ]
    assert heights == pytest.approx(expected)


def test_backtest_plot_shows_each_rates_interval_and_zero_rates() -> None:
    history = generate_history(8, seed=2, mix={"aa": 0.5, "shifted_mean": 0.5})
    result = backtest(history_config("default"), history)
    summary = result.summary()
    ax = plot_backtest({"default": result}).axes[0]
    # One error bar per bar: its whiskers are the Wilson interval, its marker the rate (so a
    # rate of 0 is drawn, not an empty slot).
    (container,) = ax.containers[1:]  # [0] the bars, [1] the error bars
    marker_line, _caps, (whiskers,) = container.lines
    _, tops = marker_line.get_data()
    kinds = ["aa", "shifted_mean", "good (all)", "bad (all)"]
    rates = ["false_failure", "detection", "false_failure", "detection"]
    pairs = list(zip(kinds, rates, strict=True))
    assert list(tops) == pytest.approx([summary.loc[k, r] for k, r in pairs])
    spans = [float(v) for segment in whiskers.get_segments() for v in segment[:, 1]]
    assert spans == pytest.approx(
        [float(summary.loc[k, f"{r}_{end}"]) for k, r in pairs for end in ("low", "high")])
    assert min(tops) == 0.0  # the A/A rate here: drawn as a marker at 0


def test_sweep_plot_of_a_real_sweep_labels_settings_not_intervals() -> None:
    history = generate_history(8, seed=2, mix={"aa": 0.5, "shifted_mean": 0.5})
    table = sweep(history_config("kayenta"), history,
                  {"thresholds.pass": [80.0, 90.0, 95.0]})
    ax = plot_sweep(table).axes[0]
    texts = [t.get_text() for t in ax.texts]
    # The intervals' columns are drawn as error bars, never printed as settings; settings with
    # the same two rates share one label.
    assert not any("_low" in t or "_high" in t for t in texts)
    assert sum(t.count("pass=") for t in texts) == 3
    assert len(texts) == len({(r.false_failure, r.detection) for r in table.itertuples()})
    assert ax.get_xlim()[0] >= -0.02 and ax.get_ylim()[1] <= 1.05


def test_metric_plot_shows_an_all_zero_metric_and_concise_time_ticks() -> None:
    index = pd.date_range("2026-03-01T00:00:00Z", periods=1440, freq="1min")
    baseline = pd.DataFrame({"errors": np.zeros(1440), "lat": np.linspace(1, 2, 1440)},
                            index=index)
    canary = baseline.copy()
    config = CanaryConfig.from_dict({"metrics": [{"name": "errors"}, {"name": "lat"}]})
    report = judge(config, baseline, canary)
    figure = plot_metric(report.metric("errors"), baseline, canary)
    series_ax, dist_ax, _ = figure.axes
    # The distribution panel is not empty: each side's single value is marked and named.
    assert len(dist_ax.lines) == 2
    assert [t.get_text() for t in dist_ax.texts] == ["every baseline point is 0",
                                                     "every canary point is 0"]
    from matplotlib.dates import ConciseDateFormatter

    assert isinstance(series_ax.xaxis.get_major_formatter(), ConciseDateFormatter)


def test_metric_plot_takes_a_name_and_one_axes() -> None:
    import matplotlib.pyplot as plt

    from judge.errors import UnknownMetricError

    scenario = generate_canary("shifted_mean", seed=3)
    config = history_config("default")
    report = judge(config, scenario.baseline, scenario.canary)
    figure, grid = plt.subplots(1, 2)
    drawn = plot_metric("latency_p50", scenario.baseline, scenario.canary, report=report,
                        axes=grid[1])
    assert drawn is figure
    assert len(grid[1].lines) == 2 and grid[1].get_title(loc="left").startswith("latency_p50: ")
    assert not grid[0].lines  # the caller's other cell is left alone
    with pytest.raises(UnknownMetricError, match=r"no metric 'tmp'.*latency_p50"):
        plot_metric("tmp", scenario.baseline, scenario.canary, report=report)
    with pytest.raises(ValueError, match="needs report="):
        plot_metric("latency_p50", scenario.baseline, scenario.canary)
    plt.close("all")
