"""Plots for notebooks: the data behind a verdict, backtest rates and sweep trade-offs.

matplotlib is an optional dependency (the ``notebooks`` extra): it is imported inside each
function, so ``import judge.lab.plots`` works without it and the service never loads it.

Per metric, :func:`plot_metric` draws three panels side by side:

1. **time series** of baseline and canary over the canary run (minute by minute);
2. **distributions** as empirical CDFs (every point shown, no binning choice to argue about);
3. **shift**: the test's estimate with its interval, against the null (0 for a shift or a
   difference, 1 for a ratio) and the band the metric may move without failing (Kayenta's
   tolerance band ``± tolerance * |shift|``, and with a config the effect-size limits as
   shifts of the baseline mean).

The panel titles carry the classification; :func:`plot_report` stacks one row per metric
under a title with the verdict and score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from judge.config import CanaryConfig, EffectMeasure, MannWhitneyTest, MetricConfig
from judge.report import Classification, MetricResult, Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from judge.lab.backtest import BacktestResult

__all__ = ["plot_backtest", "plot_metric", "plot_report", "plot_sweep"]

BASELINE_COLOR = "#4c72b0"
CANARY_COLOR = "#dd8452"
CLASS_COLORS: Mapping[Classification, str] = {
    Classification.PASS: "#55a868",
    Classification.HIGH: "#c44e52",
    Classification.LOW: "#c44e52",
    Classification.NODATA: "#8c8c8c",
    Classification.NODATA_FAIL: "#c44e52",
    Classification.ERROR: "#c44e52",
}
_RATIO_TESTS = ("rate_ratio", "sequential_rate_ratio")


def _series(data: pd.DataFrame | Mapping[str, Any], column: str) -> pd.Series:
    """One side of one metric as a float Series (empty when the column is missing), keeping a
    time index when there is one."""
    if isinstance(data, pd.DataFrame):
        if column not in data.columns:
            return pd.Series(dtype=float)
        return pd.to_numeric(data[column], errors="coerce").astype(float)
    raw = data.get(column)
    if raw is None:
        return pd.Series(dtype=float)
    if isinstance(raw, pd.Series):
        return pd.to_numeric(raw, errors="coerce").astype(float)
    return pd.Series(np.asarray(raw, dtype=float))


def _column(result: MetricResult, metric: MetricConfig | None) -> str:
    return metric.column if metric is not None else result.name


def _ecdf(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    finite = np.sort(values.to_numpy(dtype=float)[np.isfinite(values.to_numpy(dtype=float))])
    return finite, np.arange(1, len(finite) + 1) / max(len(finite), 1)


def _effect_limits(result: MetricResult, metric: MetricConfig | None) -> list[tuple[str, float]]:
    """Effect-size limits of a Mann-Whitney metric as shifts: with ``meanRatio`` a limit ``r``
    allows the canary mean up to ``r`` times the baseline mean, i.e. a shift of
    ``(r - 1) * baseline mean``. Only limits that differ from 1 (no limit) are drawn."""
    if metric is None or not isinstance(metric.test, MannWhitneyTest):
        return []
    limits = metric.test.effect_size
    mean = result.baseline.mean
    if limits.measure is not EffectMeasure.MEAN_RATIO or not math.isfinite(mean):
        return []
    lines = []
    if limits.allowed_increase != 1.0:
        lines.append(("allowed increase", (limits.allowed_increase - 1.0) * mean))
    if limits.allowed_decrease != 1.0:
        lines.append(("allowed decrease", (limits.allowed_decrease - 1.0) * mean))
    return lines


def plot_metric(
    result: MetricResult,
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
    *,
    metric: MetricConfig | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Three panels for one judged metric (time series, ECDFs, shift with its interval).

    ``baseline`` / ``canary`` are the inputs given to :func:`judge.judge` (DataFrames or
    mappings); the metric's column is its ``query.column`` when ``metric`` (its config) is
    given, else its name. Draws into ``axes`` (three of them) or a new figure; returns the
    figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        figure, created = plt.subplots(
            1, 3, figsize=(13, 3.2), gridspec_kw={"width_ratios": [2.2, 1.2, 1.2]}
        )
        axes = list(created)
    else:
        if len(axes) != 3:
            raise ValueError(f"axes: need 3 axes (series, distributions, shift), got {len(axes)}")
        figure = cast("Figure", axes[0].figure)
    column = _column(result, metric)
    sides = {"baseline": _series(baseline, column), "canary": _series(canary, column)}
    colors = {"baseline": BASELINE_COLOR, "canary": CANARY_COLOR}
    color = CLASS_COLORS[result.classification]

    series_ax, dist_ax, shift_ax = axes
    for side, values in sides.items():
        x = values.index if isinstance(values.index, pd.DatetimeIndex) else np.arange(len(values))
        series_ax.plot(x, values.to_numpy(), color=colors[side], lw=1.1, label=side)
    series_ax.set_title(
        f"{result.name}: {result.classification.value}", color=color, loc="left", fontsize=10
    )
    series_ax.legend(loc="upper left", fontsize=8, frameon=False)
    series_ax.tick_params(axis="x", labelsize=7)

    for side, values in sides.items():
        xs, ys = _ecdf(values)
        if len(xs):
            dist_ax.step(xs, ys, where="post", color=colors[side], lw=1.1, label=side)
    dist_ax.set_title("distributions (ECDF)", fontsize=9)
    dist_ax.set_ylim(0, 1.02)

    _draw_shift(shift_ax, result, metric, color)
    figure.tight_layout()
    return figure


def _draw_shift(ax: Axes, result: MetricResult, metric: MetricConfig | None, color: str) -> None:
    ratio = result.test in _RATIO_TESTS
    null = 1.0 if ratio else 0.0
    ax.axvline(null, color="black", lw=0.8, ls=":", label="no change")
    band = result.details.get("band")
    if isinstance(band, int | float) and math.isfinite(band) and band > 0:
        ax.axvspan(null - band, null + band, color="#cccccc", alpha=0.6, label="tolerance band")
    for name, position in _effect_limits(result, metric):
        ax.axvline(position, color="#8172b3", lw=1.0, ls="--", label=name)
    estimate, low, high = result.estimate, result.low, result.high
    if math.isfinite(estimate):
        lower = estimate - low if math.isfinite(low) else 0.0
        upper = high - estimate if math.isfinite(high) else 0.0
        ax.errorbar(
            [estimate],
            [0.0],
            xerr=[[max(lower, 0.0)], [max(upper, 0.0)]],
            fmt="o",
            color=color,
            capsize=4,
            label="estimate, interval",
        )
        confidence = f"{result.confidence:.0%} " if math.isfinite(result.confidence) else ""
        what = "ratio" if ratio else "shift"
        ax.set_title(f"{what} {estimate:.3g} [{confidence}CI]", fontsize=9)
    elif math.isinf(estimate) and math.isfinite(low):
        # A canary with events against a baseline with none: the ratio is infinite, but its
        # lower confidence bound is a number worth showing.
        ax.plot([low], [0.0], marker=">", color=color, ls="none", label="lower bound")
        ax.set_title(
            f"{'ratio' if ratio else 'shift'} >= {low:.3g} (estimate infinite)", fontsize=9
        )
    else:
        ax.set_title("no estimate", fontsize=9)
        ax.text(
            0.5, 0.5, result.classification.value, transform=ax.transAxes, ha="center", color=color
        )
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    ax.legend(loc="upper left", fontsize=7, frameon=False)


def plot_report(
    report: Report,
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
    metrics: Sequence[str] | None = None,
    *,
    config: CanaryConfig | None = None,
) -> Figure:
    """One row of :func:`plot_metric` panels per metric (all, or those named in ``metrics``,
    in that order) under a title with the verdict and score. With ``config`` the effect-size
    limits are drawn and each metric reads its configured column."""
    import matplotlib.pyplot as plt

    names = [m.name for m in report.metrics] if metrics is None else list(metrics)
    if not names:
        raise ValueError("metrics: nothing to plot")
    results = [report.metric(name) for name in names]  # KeyError names an unknown metric
    figure, grid = plt.subplots(
        len(results),
        3,
        figsize=(13, 2.9 * len(results) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [2.2, 1.2, 1.2]},
    )
    for row, result in zip(grid, results, strict=True):
        metric = _config_metric(config, result.name)
        plot_metric(result, baseline, canary, metric=metric, axes=list(row))
    figure.suptitle(
        f"{report.config_name}: verdict {report.verdict.value.upper()} "
        f"(score {report.score:g}; pass >= {report.pass_threshold:g}, "
        f"marginal >= {report.marginal_threshold:g})",
        fontsize=12,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def _config_metric(config: CanaryConfig | None, name: str) -> MetricConfig | None:
    if config is None:
        return None
    try:
        return config.metric(name)
    except KeyError:
        return None


_RATE_COLUMNS = ("false_failure", "detection", "fail_on_good")


def plot_sweep(
    frame: pd.DataFrame,
    *,
    x: str = "false_failure",
    y: str = "detection",
    highlight: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The trade-off of a :func:`judge.lab.backtest.sweep`: one point per setting (``x``: rate of
    false failures on good releases, ``y``: detection of bad ones), each labelled with its
    parameter values; the settings no other setting beats on both rates (the Pareto front) are
    joined by a line. ``highlight`` (a row label) circles a chosen setting."""
    import matplotlib.pyplot as plt

    for column in (x, y):
        if column not in frame.columns:
            raise ValueError(f"{column!r} is not a column of the sweep frame")
    if ax is None:
        figure, ax = plt.subplots(figsize=(8, 5))
    else:
        figure = cast("Figure", ax.figure)
    params = [c for c in frame.columns if c not in _RATE_COLUMNS and ":" not in c]
    names = _short_names(params)
    ax.scatter(frame[x], frame[y], color=BASELINE_COLOR, zorder=3, label="setting")
    for position, (label, row) in enumerate(frame.iterrows()):
        text = ", ".join(f"{names[p]}={_value(row[p])}" for p in params)
        # Alternate the label above and below its point: neighbours overlap less.
        offset = (5, 4) if position % 2 == 0 else (5, -10)
        ax.annotate(
            text,
            (row[x], row[y]),
            fontsize=7,
            xytext=offset,
            textcoords="offset points",
            annotation_clip=False,
        )
        if highlight is not None and label == highlight:
            ax.scatter(
                [row[x]],
                [row[y]],
                s=160,
                facecolors="none",
                edgecolors="#c44e52",
                lw=1.5,
                zorder=4,
                label="chosen",
            )
    front = _pareto_front(frame, x, y)
    ax.plot(front[x], front[y], color="#c44e52", lw=1.0, ls="--", label="Pareto front")
    ax.margins(x=0.1, y=0.1)
    low, high = ax.get_xlim()
    ax.set_xlim(low, high + 0.35 * (high - low))  # room for the labels of the rightmost points
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(f"{y.replace('_', ' ')} vs {x.replace('_', ' ')} per setting")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    """For each dotted path the shortest tail of its segments that no other path ends with
    (``allowed_increase``; ``latency_p50.test.confidence`` next to ``cpu.test.confidence``)."""
    names = {}
    for path in paths:
        parts = path.split(".")
        for size in range(1, len(parts) + 1):
            tail = ".".join(parts[-size:])
            if not any(
                other != path and (other == tail or other.endswith("." + tail)) for other in paths
            ):
                break
        names[path] = tail
    return names


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _pareto_front(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows not dominated by another (lower or equal ``x`` and higher or equal ``y``, one
    strictly), sorted by ``x``."""
    values = frame[[x, y]].to_numpy(dtype=float)
    keep = []
    for xi, yi in values:
        dominated = np.any(
            (values[:, 0] <= xi)
            & (values[:, 1] >= yi)
            & ((values[:, 0] < xi) | (values[:, 1] > yi))
        )
        keep.append(not dominated)
    return frame[keep].sort_values([x, y])


def plot_backtest(results: Mapping[str, BacktestResult], *, ax: Axes | None = None) -> Figure:
    """Bars per scenario kind for several backtests (e.g. ``{"default": .., "kayenta": ..}``):
    the false-failure rate for good kinds, the detection rate for bad kinds."""
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("results: need at least one backtest")
    summaries = {name: r.summary() for name, r in results.items()}
    first = next(iter(summaries.values()))
    kinds = [k for k in first.index if k not in ("all",)]
    if ax is None:
        figure, ax = plt.subplots(figsize=(max(7, 1.3 * len(kinds)), 4))
    else:
        figure = cast("Figure", ax.figure)
    width = 0.8 / len(summaries)
    positions = np.arange(len(kinds))
    for i, (name, summary) in enumerate(summaries.items()):
        heights = [
            summary.loc[k, "false_failure"]
            if summary.loc[k, "label"] == "good"
            else summary.loc[k, "detection"]
            for k in kinds
        ]
        ax.bar(positions + i * width, heights, width=width, label=name)
    ax.set_xticks(positions + width * (len(summaries) - 1) / 2)
    ax.set_xticklabels(
        [
            f"{k}\n({'false failure' if first.loc[k, 'label'] == 'good' else 'detection'})"
            for k in kinds
        ],
        fontsize=8,
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title("Backtest: false failures on good releases, detection of bad ones")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure
