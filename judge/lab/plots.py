"""Plots for notebooks: the data behind a verdict, backtest rates and sweep trade-offs.

matplotlib is an optional dependency (the ``notebooks`` and ``server`` extras): it is imported
inside each function, so ``import judge.lab.plots`` works without it; the service loads it only
to draw a report page's plots (:mod:`judge.pages`, via :func:`figure_svg`).

Per metric, :func:`plot_metric` draws three panels side by side:

1. **time series** of baseline and canary over the canary run (minute by minute);
2. **distributions** as empirical CDFs (every point shown, no binning choice to argue about);
3. **shift**: the test's estimate with its interval, against the null (0 for a shift or a
   difference, 1 for a ratio) and the band the metric may move without failing (Kayenta's
   tolerance band ``± tolerance * |shift|``, and with a config the effect-size limits as
   shifts of the baseline mean, the allowed region shaded).

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

__all__ = [
    "figure_svg", "plot_backtest", "plot_evidence", "plot_metric", "plot_report", "plot_sweep",
]

BASELINE_COLOR = "#4c72b0"
CANARY_COLOR = "#dd8452"
ALLOWED_COLOR = "#55a868"
"""The allowed region of a shift (its effect-size limits), shaded."""
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
    result: MetricResult | str,
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
    *,
    report: Report | None = None,
    metric: MetricConfig | None = None,
    axes: Sequence[Axes] | Axes | None = None,
    unit: str | None = None,
    tight: bool = True,
) -> Figure:
    """Three panels for one judged metric (time series, ECDFs, shift with its interval).

    ``result`` is the metric's result, or its name with ``report=`` (an unknown name lists
    the report's metrics). ``baseline`` / ``canary`` are the inputs given to
    :func:`judge.judge` (DataFrames or mappings); the metric's column is its ``query.column``
    when ``metric`` (its config) is given, else its name. ``unit`` labels the value axes
    (default: the config's ``unit``). Draws into ``axes`` (three of them; or one Axes: the time
    series alone, e.g. one cell of the caller's grid) or a new figure; returns the figure.
    ``tight=False`` leaves the figure's layout to the caller (``tight_layout`` is half the
    drawing time of a page's plot, which sets fixed margins instead).
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes as AxesType

    if isinstance(result, str):
        if report is None:
            raise ValueError(f"plot_metric({result!r}, ...): a metric name needs report= (the "
                             "report it was judged in)")
        result = report.metric(result)
    single = isinstance(axes, AxesType)
    if axes is None:
        figure, created = plt.subplots(
            1, 3, figsize=(13, 3.2), gridspec_kw={"width_ratios": [2.2, 1.2, 1.2]}
        )
        axes = list(created)
    elif isinstance(axes, AxesType):
        figure = cast("Figure", axes.figure)
        axes = [axes]
    else:
        if len(axes) != 3:
            raise ValueError(f"axes: need 3 axes (series, distributions, shift) or one (the "
                             f"series), got {len(axes)}")
        figure = cast("Figure", axes[0].figure)
    column = _column(result, metric)
    unit = unit if unit is not None else (metric.unit if metric is not None else None)
    sides = {"baseline": _series(baseline, column), "canary": _series(canary, column)}
    colors = {"baseline": BASELINE_COLOR, "canary": CANARY_COLOR}
    color = CLASS_COLORS[result.classification]

    series_ax = axes[0]
    for side, values in sides.items():
        x = values.index if isinstance(values.index, pd.DatetimeIndex) else np.arange(len(values))
        series_ax.plot(x, values.to_numpy(), color=colors[side], lw=1.1, label=side)
    series_ax.set_title(
        f"{result.name}: {result.classification.value}", color=color, loc="left", fontsize=10
    )
    series_ax.legend(loc="upper left", fontsize=8, frameon=False)
    series_ax.tick_params(axis="x", labelsize=7)
    timed = any(isinstance(v.index, pd.DatetimeIndex) for v in sides.values())
    if timed:
        # Ticks a long window can carry: the locator picks the step, the concise formatter
        # writes each tick once (no overlapping full timestamps).
        from matplotlib import dates as mdates

        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
        series_ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
        series_ax.xaxis.set_major_formatter(formatter)
    series_ax.set_xlabel("time (UTC)" if timed else "point", fontsize=8)
    series_ax.set_ylabel(unit or "value", fontsize=8)
    if single:
        return figure
    dist_ax, shift_ax = axes[1], axes[2]

    for row, (side, values) in enumerate(sides.items()):
        xs, ys = _ecdf(values)
        if len(xs) and np.ptp(xs) == 0:
            # One value (an all-zero error count): a step would draw nothing; mark it.
            dist_ax.plot([xs[0]], [1.0], marker="o", color=colors[side], ls="none", label=side)
            dist_ax.text(0.03, 0.55 - 0.12 * row, f"every {side} point is {xs[0]:g}",
                         transform=dist_ax.transAxes, fontsize=7, color=colors[side])
        elif len(xs):
            dist_ax.step(xs, ys, where="post", color=colors[side], lw=1.1, label=side)
    dist_ax.set_title("distributions (ECDF)", fontsize=9)
    dist_ax.set_ylim(0, 1.02)
    dist_ax.set_xlabel(unit or "value", fontsize=8)
    dist_ax.set_ylabel("share of points", fontsize=8)

    _draw_shift(shift_ax, result, metric, color, unit)
    if tight:
        figure.tight_layout()
    return figure


def _draw_allowed(ax: Axes, result: MetricResult, metric: MetricConfig | None, null: float,
                  *, vertical: bool = True) -> None:
    """Kayenta's tolerance band and the effect-size limits, the region between the limits
    (and no change) shaded: an estimate inside it is a change the metric may make."""
    span, line = (ax.axvspan, ax.axvline) if vertical else (ax.axhspan, ax.axhline)
    band = result.details.get("band")
    if isinstance(band, int | float) and math.isfinite(band) and band > 0:
        span(null - band, null + band, color="#cccccc", alpha=0.6, label="tolerance band")
    limits = _effect_limits(result, metric)
    if limits:
        edges = [position for _name, position in limits] + [null]
        span(min(edges), max(edges), color=ALLOWED_COLOR, alpha=0.15, label="allowed change")
    for name, position in limits:
        line(position, color="#8172b3", lw=1.0, ls="--", label=name)


def _draw_shift(ax: Axes, result: MetricResult, metric: MetricConfig | None, color: str,
                unit: str | None = None) -> None:
    ratio = result.test in _RATIO_TESTS
    null = 1.0 if ratio else 0.0
    ax.axvline(null, color="black", lw=0.8, ls=":", label="no change")
    _draw_allowed(ax, result, metric, null)
    ax.set_xlabel(
        "ratio canary / baseline" if ratio
        else f"shift canary - baseline{f' ({unit})' if unit else ''}",
        fontsize=8,
    )
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
    results = [report.metric(name) for name in names]  # UnknownMetricError lists the names
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


def plot_evidence(
    result: MetricResult,
    polls: Sequence[Mapping[str, Any]],
    *,
    metric: MetricConfig | None = None,
    ax: Axes | None = None,
    unit: str | None = None,
    pass_margin: float | None = None,
) -> Figure:
    """A sequential run's evidence on one metric over its polls, with the poll that decided
    the metric marked.

    ``polls``: one mapping per poll with ``call`` and that poll's entry for the metric, as
    :meth:`judge.api.store.Store.run_polls` keeps them: ``classification``, and either
    ``scores`` (the default judge's anytime-valid confidence sequences of its scores, e.g.
    ``location (high)``, in robust standard deviations; drawn against ``± pass_margin``) or an
    ``estimate`` with ``low`` / ``high`` (a shift, drawn against the allowed change).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        figure, ax = plt.subplots(figsize=(13, 2.6))
    else:
        figure = cast("Figure", ax.figure)
    ratio = result.test in _RATIO_TESTS
    names = list(dict.fromkeys(name for poll in polls for name in poll.get("scores") or {}))
    scored = bool(names)
    null = 0.0 if scored or not ratio else 1.0
    ax.axhline(null, color="black", lw=0.8, ls=":", label="no change")
    if scored and pass_margin is not None:
        ax.axhspan(-pass_margin, pass_margin, color=ALLOWED_COLOR, alpha=0.15,
                   label=f"pass margin (±{pass_margin:g})")
    elif not scored:
        _draw_allowed(ax, result, metric, null, vertical=False)
    calls = [int(poll["call"]) for poll in polls]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    if scored:
        for name in names:
            lines[name] = [
                tuple(_finite(((poll.get("scores") or {}).get(name) or {}).get(k))  # type: ignore[misc]
                      for k in ("mean", "low", "high"))
                for poll in polls
            ]
    else:
        lines["estimate"] = [
            (_finite(poll.get("estimate")), _finite(poll.get("low")), _finite(poll.get("high")))
            for poll in polls
        ]
    for position, (name, points) in enumerate(lines.items()):
        color = _EVIDENCE_COLORS[position % len(_EVIDENCE_COLORS)]
        means, lows, highs = zip(*points, strict=True) if points else ((), (), ())
        ax.fill_between(calls, lows, highs, color=color, alpha=0.2)
        ax.plot(calls, means, color=color, marker="o", ms=3, lw=1.2,
                label=f"{name} with interval")
    decided = next(
        ((int(poll["call"]), str(poll["classification"])) for poll in polls
         if poll.get("classification") in ("pass", "high", "low")), None,
    )
    if decided is not None:
        ax.axvline(decided[0], color=CLASS_COLORS[Classification(decided[1])], lw=1.2,
                   label=f"decided: {decided[1]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if calls:
        ax.set_xlim(min(calls) - 0.5, max(calls) + 0.5)
    ax.set_xlabel("poll", fontsize=8)
    if scored:
        ax.set_ylabel("score (robust SDs)", fontsize=8)
    else:
        ax.set_ylabel("ratio" if ratio else f"shift{f' ({unit})' if unit else ''}", fontsize=8)
    ax.set_title(f"{result.name}: evidence over the polls", fontsize=9, loc="left")
    ax.legend(loc="upper left", fontsize=7, frameon=False, ncol=4)
    return figure


_EVIDENCE_COLORS = ("#8172b3", "#937860", "#da8bc3", "#64b5cd")
"""Evidence lines: not the baseline's or the canary's colours, which mean the sides."""


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def figure_svg(figure: Figure) -> str:
    """The figure as SVG text (no creation date, so the same figure gives the same text).

    Text is drawn as paths, so the SVG needs no fonts; matplotlib escapes the text it keeps in
    comments and attributes, so a metric name cannot inject markup into a page."""
    import io

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


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
    params = [c for c in frame.columns if c not in _RATE_COLUMNS and ":" not in c
              and not c.endswith(("_low", "_high"))]
    names = _short_names(params)
    # The Wilson intervals of both rates, when the sweep has them.
    bounds = {axis: (f"{column}_low", f"{column}_high") for axis, column in (("x", x), ("y", y))}
    errors = {}
    for axis, (low_column, high_column) in bounds.items():
        column = x if axis == "x" else y
        if low_column in frame.columns and high_column in frame.columns:
            errors[axis] = [frame[column] - frame[low_column],
                            frame[high_column] - frame[column]]
    if errors:
        ax.errorbar(frame[x], frame[y], xerr=errors.get("x"), yerr=errors.get("y"), fmt="none",
                    ecolor=BASELINE_COLOR, alpha=0.35, elinewidth=1, zorder=2)
    ax.scatter(frame[x], frame[y], color=BASELINE_COLOR, zorder=3, label="setting")
    # One label per point: settings with the same two rates share it (their labels would
    # otherwise be printed on top of each other).
    labels: dict[tuple[float, float], list[str]] = {}
    for _, row in frame.iterrows():
        text = ", ".join(f"{names[p]}={_value(row[p])}" for p in params if pd.notna(row[p]))
        labels.setdefault((float(row[x]), float(row[y])), []).append(text)
    for position, ((px, py), texts) in enumerate(sorted(labels.items())):
        shown = texts if len(texts) <= 3 else [*texts[:2], f"... {len(texts) - 2} more"]
        # Alternate the label above and below its point: neighbours overlap less.
        offset = (5, 4) if position % 2 == 0 else (5, -10 - 8 * (len(shown) - 1))
        ax.annotate("\n".join(shown), (px, py), fontsize=7, xytext=offset,
                    textcoords="offset points", annotation_clip=False)
    if highlight is not None and highlight in frame.index:
        chosen = frame.loc[highlight]
        ax.scatter([chosen[x]], [chosen[y]], s=160, facecolors="none", edgecolors="#c44e52", lw=1.5,
                   zorder=4, label="chosen")
    front = _pareto_front(frame, x, y)
    ax.plot(front[x], front[y], color="#c44e52", lw=1.0, ls="--", label="Pareto front")
    ax.margins(x=0.1, y=0.1)
    low, high = ax.get_xlim()
    span = max(high - low, 0.05)
    # Rates: never below 0 (the margin used to run the axis to negative rates), room on the
    # right for the labels of the rightmost points.
    ax.set_xlim(max(low, -0.02), high + 0.35 * span)
    y_low, y_high = ax.get_ylim()
    ax.set_ylim(max(y_low, -0.02), min(y_high, 1.05))
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
    the false-failure rate for good kinds, the detection rate for bad kinds, each with its
    Wilson 95% interval as an error bar (a rate of 0 shows as a marker at 0)."""
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
        rates = ["false_failure" if summary.loc[k, "label"] == "good" else "detection"
                 for k in kinds]
        heights = np.array([summary.loc[k, r] for k, r in zip(kinds, rates, strict=True)],
                           dtype=float)
        low = np.array([summary.loc[k, f"{r}_low"] for k, r in zip(kinds, rates, strict=True)],
                       dtype=float)
        high = np.array([summary.loc[k, f"{r}_high"] for k, r in zip(kinds, rates, strict=True)],
                        dtype=float)
        x = positions + i * width
        bars = ax.bar(x, heights, width=width, label=name)
        # The Wilson 95% interval of each rate, and a marker on the bar's top so that a rate of
        # 0 is seen as 0 (with its interval), not as a missing bar.
        colour = bars.patches[0].get_facecolor() if bars.patches else None
        ax.errorbar(x, heights, yerr=[heights - low, high - heights], fmt="o", markersize=3,
                    color="black", ecolor=colour, elinewidth=1.2, capsize=3)
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
    ax.set_title("Backtest: false failures on good releases, detection of bad ones "
                 "(Wilson 95% intervals)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure
