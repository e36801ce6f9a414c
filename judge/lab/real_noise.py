"""Labelled canaries whose noise is real: baseline/canary pairs drawn from production series.

The synthetic AR(1) scenarios of :mod:`judge.scenarios` predict the judges' behaviour on real
metrics badly (issue 13): real series have ties, quantisation, period-2 patterns, regime
changes and bursts. This module draws canaries from the real series of
``../shared/data/real-series/`` (fourteen series of the Numenta Anomaly Benchmark, see the
README there), in the two ways that README describes:

- **concurrent** (:attr:`Flavour.CONCURRENT`, both sides behind one load balancer at the same
  time): ``2 n`` consecutive points; of each pair of neighbouring points one goes to each side,
  at random (never all even points to one side: several series have period-2 patterns). Both
  sides share the load's slow swings and differ by the point-to-point noise.
- **independent** (:attr:`Flavour.INDEPENDENT`, the sides see different stretches of load):
  each side is a moving-block bootstrap (Künsch 1989, Ann. Statist. 17; blocks of
  :attr:`CanarySpec.block` consecutive points keep the autocorrelation) of the same window of
  :attr:`CanarySpec.independent_window` ``* n`` points.

A canary has the metrics of the config the docs lead to (:func:`benchmark_config`): nine
level metrics ``level_1`` ... ``level_9`` (latency/CPU-like, ``direction: increase``), each a
window of a level series (the split's level series in a random order, cycled, each at its own
random window); ``requests`` per minute, Poisson around a traffic series (tweets, taxi
passengers) scaled so its median is :attr:`CanarySpec.requests_per_minute`; and ``errors``,
``Binomial(requests, rate)`` per minute at a rate drawn from
:attr:`CanarySpec.healthy_error_rates` (0 for half the canaries: many healthy services have no
errors). The real series' own steps (5 or 30 minutes, some irregular) become one-minute points:
what matters is the noise from one point to the next, not the clock.

Regressions (:class:`Kind`) are injected into the canary side only, scaled by the spread of
the window the metric was drawn from (its interquartile range, ``IQR``); the regressed metric
(the label's ``target``) is one of the level metrics whose window has ``IQR > 0``:

======================= ======= ==========================================================
kind                    truth   what the canary gets
======================= ======= ==========================================================
healthy                 promote nothing
healthy_low_traffic     promote both sides' requests (and errors) thinned to 1 / 20
shift                   stop    +1 IQR on one metric
spread                  stop    deviations from the canary's median x2 on one metric
tail                    stop    10% of its points + 3 IQR (slow outlier minutes)
error_jump              stop    error rate 0.05% on the baseline, 1% on the canary
ramp                    stop    + 0 ... 1.5 IQR, linearly over the run
low_load_shift          stop    +2 IQR in the minutes whose requests are below the canary's
                                median (a regression only at low traffic, e.g. a cold cache)
flat                    stop    one metric reads 0 throughout (a query that fills gaps with
                                zero, Datadog's ``fill(zero)``, PromQL's ``or vector(0)``)
missing                 stop    one metric has no points on the canary (NaN throughout)
======================= ======= ==========================================================

"stop" means the canary should not be promoted (``fail`` or ``marginal``); for ``missing`` and
``flat`` the evidence on a metric is gone, so ``marginal`` ("cannot tell") is the honest verdict
and ``fail`` is not required.

Both sides get the same one-minute ``DatetimeIndex`` in both flavours, so the judge's inputs
look like one real query over one window; the flavour is in the label (``label.flavour``).

Everything is deterministic given the generators: :func:`canary_generators` derives them from
``(seed, split, flavour, index)`` so that every kind of canary ``index`` starts from the same
healthy canary (common random numbers: kinds differ by their injection only).

Example::

    >>> import numpy as np
    >>> series = load_real_series().select(Split.TUNING)            # doctest: +SKIP
    >>> canary = draw_canary(series, Kind.SHIFT, Flavour.CONCURRENT,
    ...                      np.random.default_rng(7))                # doctest: +SKIP
    >>> canary.label.target, canary.canary.shape                      # doctest: +SKIP
    ('level_3', (60, 11))
"""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from judge.config import CanaryConfig, JudgeMode
from judge.lab.scenarios import Label, Scenario

__all__ = [
    "BENCHMARK_SEED",
    "DEFAULT_SPEC",
    "EXPECTED",
    "HELD_OUT_SERIES",
    "KIND_DESCRIPTIONS",
    "REAL_SERIES_ENV",
    "SERIES_ROLES",
    "CanaryLabel",
    "CanarySpec",
    "Expected",
    "Flavour",
    "Kind",
    "LabelledCanary",
    "RealSeries",
    "RealSeriesSet",
    "Role",
    "SeriesWindow",
    "Split",
    "benchmark_config",
    "block_bootstrap",
    "canary_generators",
    "default_series_path",
    "draw_canary",
    "draw_healthy",
    "inject",
    "labelled_canary",
    "level_metric_names",
    "load_real_series",
    "real_noise_history",
    "split_neighbours",
    "window_iqr",
    "with_overrides",
]

FloatArray = npt.NDArray[np.float64]

REAL_SERIES_ENV = "CANARY_JUDGE_REAL_SERIES"
"""Environment variable overriding the folder of the real series."""

GRID_START = pd.Timestamp("2026-01-01T00:00:00Z")
"""First minute of every canary's index (the real series' own dates do not matter)."""


class Role(StrEnum):
    """What a real series stands for in a canary."""

    LEVEL = "level"
    """A latency/CPU-like per-minute value."""
    TRAFFIC = "traffic"
    """The load: requests per minute (scaled)."""


class Split(StrEnum):
    """Which series a canary may be drawn from: those tuned on, or those kept out of tuning."""

    TUNING = "tuning"
    HELD_OUT = "held-out"


class Flavour(StrEnum):
    """How the two sides are drawn from one stretch of a series (see the module doc)."""

    CONCURRENT = "concurrent"
    INDEPENDENT = "independent"


class Expected(StrEnum):
    """What a good judge does with a canary: promote it, or not (``fail`` or ``marginal``)."""

    PROMOTE = "promote"
    STOP = "stop"


class Kind(StrEnum):
    """What was done to the canary side (see the table in the module doc)."""

    HEALTHY = "healthy"
    HEALTHY_LOW_TRAFFIC = "healthy_low_traffic"
    SHIFT = "shift"
    SPREAD = "spread"
    TAIL = "tail"
    ERROR_JUMP = "error_jump"
    RAMP = "ramp"
    LOW_LOAD_SHIFT = "low_load_shift"
    FLAT = "flat"
    MISSING = "missing"


EXPECTED: Mapping[Kind, Expected] = {
    kind: Expected.PROMOTE if kind in (Kind.HEALTHY, Kind.HEALTHY_LOW_TRAFFIC) else Expected.STOP
    for kind in Kind
}
"""The truth of each kind."""

KIND_DESCRIPTIONS: Mapping[Kind, str] = {
    Kind.HEALTHY: "healthy",
    Kind.HEALTHY_LOW_TRAFFIC: "healthy, low traffic (requests / 20)",
    Kind.SHIFT: "+1 IQR shift on one metric",
    Kind.SPREAD: "spread x2 on one metric",
    Kind.TAIL: "10% slow outliers (+3 IQR) on one metric",
    Kind.ERROR_JUMP: "error rate 0.05% -> 1%",
    Kind.RAMP: "slow ramp 0 -> 1.5 IQR on one metric",
    Kind.LOW_LOAD_SHIFT: "+2 IQR in low-traffic minutes only",
    Kind.FLAT: "one metric flat at 0 on the canary",
    Kind.MISSING: "one metric missing on the canary",
}
"""One line per kind, for tables (sizes as in :data:`DEFAULT_SPEC`)."""

SERIES_ROLES: Mapping[str, Role] = {
    "ec2_disk_write_bytes_1ef3de": Role.LEVEL,
    "ec2_network_in_5abac7": Role.LEVEL,
    "grok_asg_anomaly": Role.LEVEL,
    "iio_us-east-1_i-a2eb1cd9_NetworkIn": Role.LEVEL,
    "cpu_utilization_asg_misconfiguration": Role.LEVEL,
    "machine_temperature_system_failure": Role.LEVEL,
    "speed_6005": Role.LEVEL,
    "speed_7578": Role.LEVEL,
    "speed_t4013": Role.LEVEL,
    "occupancy_6005": Role.LEVEL,
    "Twitter_volume_AAPL": Role.TRAFFIC,
    "Twitter_volume_GOOG": Role.TRAFFIC,
    "Twitter_volume_IBM": Role.TRAFFIC,
    "nyc_taxi": Role.TRAFFIC,
}
"""The series used (file name without ``.csv``) and their roles, as the data README assigns
them."""

HELD_OUT_SERIES: frozenset[str] = frozenset(
    {"speed_t4013", "ec2_network_in_5abac7", "Twitter_volume_IBM"}
)
"""Series kept out of tuning (two level series, one traffic series), reported separately."""

BENCHMARK_SEED = 13
"""The seed of the real-noise benchmark's canaries (``benchmarks/bench_real_noise.py`` and the
scripts that look into the same canaries, such as ``benchmarks/real_noise_spread.py``)."""


@dataclass(frozen=True)
class CanarySpec:
    """Sizes of the canaries and of the injected regressions (defaults: issue 13)."""

    points: int = 60
    """Points (minutes) per side."""
    level_metrics: int = 9
    requests_per_minute: float = 65.0
    """Median requests per minute of a traffic series after scaling (about 3,900 a side)."""
    low_traffic_divisor: float = 20.0
    healthy_error_rates: tuple[float, ...] = (0.0, 0.0, 0.0005, 0.002)
    """Error rates of healthy canaries, one drawn per canary (0 for half of them)."""
    error_jump: tuple[float, float] = (0.0005, 0.01)
    """Baseline and canary error rates of :attr:`Kind.ERROR_JUMP`."""
    independent_window: int = 4
    """The independent flavour bootstraps both sides from one window of this many times
    ``points`` points."""
    block: int = 10
    """Block length of the independent flavour's moving-block bootstrap."""
    shift_iqr: float = 1.0
    spread_factor: float = 2.0
    tail_share: float = 0.1
    tail_iqr: float = 3.0
    ramp_iqr: float = 1.5
    low_load_shift_iqr: float = 2.0

    def __post_init__(self) -> None:
        if self.points < 2:
            raise ValueError(f"points: at least 2 per side, got {self.points}")
        if self.level_metrics < 1:
            raise ValueError(f"level_metrics: at least 1, got {self.level_metrics}")
        if not 1 <= self.block <= self.points * self.independent_window:
            raise ValueError(
                f"block: between 1 and the independent window "
                f"({self.points * self.independent_window} points), got {self.block}"
            )
        if not self.healthy_error_rates or any(
            not 0.0 <= r < 1.0 for r in (*self.healthy_error_rates, *self.error_jump)
        ):
            raise ValueError("error rates: a non-empty list of values in [0, 1)")
        if self.low_traffic_divisor < 1.0:
            raise ValueError(f"low_traffic_divisor: at least 1, got {self.low_traffic_divisor}")


DEFAULT_SPEC = CanarySpec()


def level_metric_names(spec: CanarySpec = DEFAULT_SPEC) -> tuple[str, ...]:
    """``level_1`` ... ``level_9``: the level metrics' names (their series vary by canary)."""
    return tuple(f"level_{k}" for k in range(1, spec.level_metrics + 1))


# -- the real series ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RealSeries:
    """One real series: its name (the file's stem), its role, and its values in time order."""

    name: str
    role: Role
    values: FloatArray

    @property
    def held_out(self) -> bool:
        return self.name in HELD_OUT_SERIES


@dataclass(frozen=True, eq=False)
class RealSeriesSet:
    """Level and traffic series to draw canaries from; ``split`` says which subset it is
    (``None``: all series)."""

    level: tuple[RealSeries, ...]
    traffic: tuple[RealSeries, ...]
    split: Split | None = None

    def select(self, split: Split) -> RealSeriesSet:
        """The series of ``split``: the held-out ones (:data:`HELD_OUT_SERIES`) or the others."""
        keep = split is Split.HELD_OUT
        level = tuple(s for s in self.level if s.held_out == keep)
        traffic = tuple(s for s in self.traffic if s.held_out == keep)
        if not level or not traffic:
            raise ValueError(f"split {split.value!r} has no level or no traffic series")
        return RealSeriesSet(level=level, traffic=traffic, split=split)

    def names(self) -> frozenset[str]:
        return frozenset(s.name for s in (*self.level, *self.traffic))


def default_series_path() -> Path:
    """``$CANARY_JUDGE_REAL_SERIES`` if set, else ``../shared/data/real-series`` next to the
    repository's root (where CI has it too)."""
    override = os.environ.get(REAL_SERIES_ENV)
    if override:
        return Path(override)
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data" / "real-series"


def load_real_series(path: str | os.PathLike[str] | None = None) -> RealSeriesSet:
    """Read the real series (``name.csv`` with a ``timestamp,value`` header) of
    :data:`SERIES_ROLES` from ``path`` (default :func:`default_series_path`).

    Raises ``FileNotFoundError`` naming the folder and the missing file.
    """
    folder = Path(path) if path is not None else default_series_path()
    loaded: list[RealSeries] = []
    for name, role in SERIES_ROLES.items():
        file = folder / f"{name}.csv"
        if not file.is_file():
            raise FileNotFoundError(
                f"real series {name!r} not found at {file} (set {REAL_SERIES_ENV} to the "
                "folder holding the NAB series, see ../shared/data/real-series/README.md)"
            )
        frame = pd.read_csv(file, usecols=["value"])
        values = frame["value"].to_numpy(dtype=np.float64, copy=True)
        values.setflags(write=False)
        loaded.append(RealSeries(name=name, role=role, values=values))
    return RealSeriesSet(
        level=tuple(s for s in loaded if s.role is Role.LEVEL),
        traffic=tuple(s for s in loaded if s.role is Role.TRAFFIC),
    )


# -- drawing pairs ------------------------------------------------------------------------------


def split_neighbours(
    window: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """The concurrent flavour: ``(baseline, canary)`` of ``window.size / 2`` points each; of
    every pair of neighbouring points ``(2k, 2k + 1)`` one goes to each side, by a fair coin."""
    if window.size % 2:
        raise ValueError(f"window: an even number of points, got {window.size}")
    pairs = window.reshape(-1, 2)
    first_to_baseline = rng.random(pairs.shape[0]) < 0.5
    baseline = np.where(first_to_baseline, pairs[:, 0], pairs[:, 1])
    canary = np.where(first_to_baseline, pairs[:, 1], pairs[:, 0])
    return baseline, canary


def block_bootstrap(
    window: FloatArray, points: int, block: int, rng: np.random.Generator
) -> FloatArray:
    """Moving-block bootstrap (Künsch 1989, Ann. Statist. 17): ``points`` values made of
    consecutive runs of ``block`` points of ``window``, each run starting at a uniformly drawn
    position (the last run cut to length)."""
    if not 1 <= block <= window.size:
        raise ValueError(f"block: between 1 and the window's {window.size} points, got {block}")
    runs = -(-points // block)
    starts = rng.integers(0, window.size - block + 1, size=runs)
    index = (starts[:, None] + np.arange(block)[None, :]).ravel()[:points]
    out: FloatArray = window[index]
    return out


def window_iqr(window: FloatArray) -> float:
    """Interquartile range (R-7 quantiles, numpy's default) of the finite points."""
    finite = window[np.isfinite(window)]
    if finite.size == 0:
        return 0.0
    q75, q25 = np.percentile(finite, [75.0, 25.0])
    return float(q75 - q25)


def _window_length(flavour: Flavour, spec: CanarySpec) -> int:
    if flavour is Flavour.CONCURRENT:
        return 2 * spec.points
    return spec.independent_window * spec.points


def _draw_pair(
    values: FloatArray, flavour: Flavour, rng: np.random.Generator, spec: CanarySpec
) -> tuple[int, FloatArray, FloatArray, FloatArray]:
    """A random window of ``values`` and the two sides drawn from it: (start, window,
    baseline, canary)."""
    length = _window_length(flavour, spec)
    if values.size < length:
        raise ValueError(f"a series of {values.size} points is shorter than a {length}-point "
                         "window")
    start = int(rng.integers(0, values.size - length + 1))
    window = values[start:start + length]
    if flavour is Flavour.CONCURRENT:
        baseline, canary = split_neighbours(window, rng)
    else:
        baseline = block_bootstrap(window, spec.points, spec.block, rng)
        canary = block_bootstrap(window, spec.points, spec.block, rng)
    return start, window, baseline, canary


# -- labelled canaries --------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesWindow:
    """Where a metric's points came from: ``series[start:start + length]``, whose spread
    (interquartile range) scales injected regressions."""

    metric: str
    series: str
    start: int
    length: int
    iqr: float


@dataclass(frozen=True)
class CanaryLabel:
    """The truth of a canary and how it was built."""

    kind: Kind
    flavour: Flavour
    split: Split | None
    expected: Expected
    windows: tuple[SeriesWindow, ...]
    """One per level metric, then ``requests`` (its IQR is of the scaled load)."""
    requests_scale: float
    """Requests per minute per unit of the traffic series (before the low-traffic divisor)."""
    baseline_error_rate: float
    canary_error_rate: float
    target: str | None = None
    """The regressed metric (``errors`` for an error jump; ``None`` for healthy kinds)."""
    injected: str = ""
    """What was done to the canary, with its size in the metric's units."""

    def window(self, metric: str) -> SeriesWindow:
        for window in self.windows:
            if window.metric == metric:
                return window
        raise KeyError(metric)

    def series_of(self, metric: str) -> str:
        """The real series ``metric`` was drawn from (``errors``: the traffic series)."""
        return self.window("requests" if metric == "errors" else metric).series


@dataclass(frozen=True, eq=False)
class LabelledCanary:
    """A canary run: baseline and canary DataFrames (one column per metric, the same one-minute
    UTC ``DatetimeIndex``) and its label."""

    label: CanaryLabel
    baseline: pd.DataFrame
    canary: pd.DataFrame


def _frame(columns: Mapping[str, FloatArray], points: int) -> pd.DataFrame:
    index = pd.date_range(GRID_START, periods=points, freq="1min", name="timestamp")
    return pd.DataFrame(dict(columns), index=index)


def draw_healthy(
    series: RealSeriesSet,
    flavour: Flavour,
    rng: np.random.Generator,
    spec: CanarySpec = DEFAULT_SPEC,
) -> LabelledCanary:
    """A healthy canary (:attr:`Kind.HEALTHY`) drawn from ``series`` (see the module doc)."""
    names = level_metric_names(spec)
    order = rng.permutation(len(series.level))
    baseline: dict[str, FloatArray] = {}
    canary: dict[str, FloatArray] = {}
    windows: list[SeriesWindow] = []
    for k, name in enumerate(names):
        source = series.level[int(order[k % order.size])]
        start, window, baseline[name], canary[name] = _draw_pair(source.values, flavour, rng,
                                                                 spec)
        windows.append(SeriesWindow(name, source.name, start, window.size, window_iqr(window)))

    traffic = series.traffic[int(rng.integers(len(series.traffic)))]
    level = float(np.median(traffic.values))
    scale = spec.requests_per_minute / (level if level > 0 else float(np.mean(traffic.values)))
    start, window, load_b, load_c = _draw_pair(traffic.values * scale, flavour, rng, spec)
    windows.append(SeriesWindow("requests", traffic.name, start, window.size, window_iqr(window)))
    # Requests are counts around the real load curve (Poisson noise per minute).
    requests_b = rng.poisson(np.maximum(load_b, 0.0)).astype(np.float64)
    requests_c = rng.poisson(np.maximum(load_c, 0.0)).astype(np.float64)
    rate = float(rng.choice(np.asarray(spec.healthy_error_rates)))
    baseline["requests"], canary["requests"] = requests_b, requests_c
    baseline["errors"] = rng.binomial(requests_b.astype(np.int64), rate).astype(np.float64)
    canary["errors"] = rng.binomial(requests_c.astype(np.int64), rate).astype(np.float64)

    label = CanaryLabel(
        kind=Kind.HEALTHY, flavour=flavour, split=series.split, expected=Expected.PROMOTE,
        windows=tuple(windows), requests_scale=scale, baseline_error_rate=rate,
        canary_error_rate=rate,
    )
    return LabelledCanary(label, _frame(baseline, spec.points), _frame(canary, spec.points))


def _pick_target(label: CanaryLabel, spec: CanarySpec, rng: np.random.Generator) -> SeriesWindow:
    names = set(level_metric_names(spec))
    eligible = [w for w in label.windows if w.metric in names and w.iqr > 0]
    if not eligible:
        raise ValueError("no level metric of this canary has a window with IQR > 0")
    return eligible[int(rng.integers(len(eligible)))]


def _non_negative(metric: str, series: pd.DataFrame) -> bool:
    # Latency, CPU, bytes are never negative: a widened spread is clipped at 0 when the
    # metric's points all are (0 included).
    return bool((series[metric].dropna() >= 0).all())


def inject(
    healthy: LabelledCanary,
    kind: Kind,
    rng: np.random.Generator,
    spec: CanarySpec = DEFAULT_SPEC,
) -> LabelledCanary:
    """``healthy`` (a :func:`draw_healthy` canary) turned into a canary of ``kind``: the
    regression goes into the canary side only (the baseline changes only for
    :attr:`Kind.HEALTHY_LOW_TRAFFIC`, where both sides' traffic drops, and
    :attr:`Kind.ERROR_JUMP`, where both sides' errors are redrawn at the jump's rates)."""
    if healthy.label.kind is not Kind.HEALTHY:
        raise ValueError(f"inject: needs a healthy canary, got {healthy.label.kind.value!r}")
    label = healthy.label
    if kind is Kind.HEALTHY:
        return healthy
    baseline = healthy.baseline.copy()
    canary = healthy.canary.copy()
    changes: dict[str, Any] = {"kind": kind, "expected": EXPECTED[kind]}

    if kind is Kind.HEALTHY_LOW_TRAFFIC:
        keep = 1.0 / spec.low_traffic_divisor
        for side in (baseline, canary):
            # Thinning each request with probability ``keep`` keeps errors binomial at the same
            # rate: kept errors ~ Bin(errors, keep), kept successes ~ Bin(others, keep).
            errors = side["errors"].to_numpy().astype(np.int64)
            others = side["requests"].to_numpy().astype(np.int64) - errors
            kept_errors = rng.binomial(errors, keep)
            side["errors"] = kept_errors.astype(np.float64)
            side["requests"] = (kept_errors + rng.binomial(others, keep)).astype(np.float64)
        changes["injected"] = f"requests and errors thinned to 1/{spec.low_traffic_divisor:g}"
    elif kind is Kind.ERROR_JUMP:
        before, after = spec.error_jump
        baseline["errors"] = rng.binomial(
            baseline["requests"].to_numpy().astype(np.int64), before).astype(np.float64)
        canary["errors"] = rng.binomial(
            canary["requests"].to_numpy().astype(np.int64), after).astype(np.float64)
        changes.update(target="errors", baseline_error_rate=before, canary_error_rate=after,
                       injected=f"error rate {before:.2%} on the baseline, {after:.2%} on the "
                                "canary")
    else:
        target = _pick_target(label, spec, rng)
        metric, iqr = target.metric, target.iqr
        values = canary[metric].to_numpy(dtype=np.float64, copy=True)
        n = values.size
        if kind is Kind.SHIFT:
            values += spec.shift_iqr * iqr
            what = f"+{spec.shift_iqr:g} IQR (+{spec.shift_iqr * iqr:.4g})"
        elif kind is Kind.SPREAD:
            centre = float(np.median(values))
            values = centre + spec.spread_factor * (values - centre)
            if _non_negative(metric, healthy.canary):
                values = np.maximum(values, 0.0)
            what = f"deviations from the median ({centre:.4g}) x{spec.spread_factor:g}"
        elif kind is Kind.TAIL:
            count = max(1, round(spec.tail_share * n))
            slow = rng.choice(n, size=count, replace=False)
            values[slow] += spec.tail_iqr * iqr
            what = (f"{count} of {n} points +{spec.tail_iqr:g} IQR "
                    f"(+{spec.tail_iqr * iqr:.4g})")
        elif kind is Kind.RAMP:
            values += np.linspace(0.0, spec.ramp_iqr * iqr, n)
            what = f"+0 ... +{spec.ramp_iqr:g} IQR (+{spec.ramp_iqr * iqr:.4g}) linearly"
        elif kind is Kind.LOW_LOAD_SHIFT:
            requests = canary["requests"].to_numpy()
            low = requests < np.median(requests)
            values[low] += spec.low_load_shift_iqr * iqr
            what = (f"+{spec.low_load_shift_iqr:g} IQR (+{spec.low_load_shift_iqr * iqr:.4g}) "
                    f"in the {int(low.sum())} minutes with requests below the median")
        elif kind is Kind.FLAT:
            values = np.zeros(n)
            what = "0 throughout"
        elif kind is Kind.MISSING:
            values = np.full(n, math.nan)
            what = "no points (NaN throughout)"
        else:  # pragma: no cover - every kind is handled above
            raise ValueError(f"unknown kind {kind!r}")
        canary[metric] = values
        changes.update(target=metric, injected=f"{metric} ({target.series}): {what}")
    return LabelledCanary(dataclasses.replace(label, **changes), baseline, canary)


def draw_canary(
    series: RealSeriesSet,
    kind: Kind,
    flavour: Flavour,
    rng: np.random.Generator,
    spec: CanarySpec = DEFAULT_SPEC,
) -> LabelledCanary:
    """A canary of ``kind``: :func:`draw_healthy` then :func:`inject`, from one generator."""
    return inject(draw_healthy(series, flavour, rng, spec), kind, rng, spec)


def _code(text: str) -> int:
    # A stable number per name (not the enum's position), so adding a kind changes no seed.
    return zlib.crc32(text.encode())


def canary_generators(
    seed: int, split: Split | None, flavour: Flavour, index: int, kind: Kind
) -> tuple[np.random.Generator, np.random.Generator]:
    """Generators for canary ``index``: one for its healthy base, shared by every kind (common
    random numbers), and one for the kind's injection."""
    base = [seed, _code(split.value if split else "all"), _code(flavour.value), index]
    return (
        np.random.default_rng(np.random.SeedSequence(base)),
        np.random.default_rng(np.random.SeedSequence([*base, _code(kind.value)])),
    )


def labelled_canary(
    series: RealSeriesSet,
    kind: Kind,
    flavour: Flavour,
    *,
    seed: int,
    index: int,
    spec: CanarySpec = DEFAULT_SPEC,
) -> LabelledCanary:
    """Canary ``index`` of ``kind``: the same healthy base for every kind at one index (see
    :func:`canary_generators`)."""
    base_rng, kind_rng = canary_generators(seed, series.split, flavour, index, kind)
    return inject(draw_healthy(series, flavour, base_rng, spec), kind, kind_rng, spec)


# -- as a backtest history -----------------------------------------------------------------------


def real_noise_history(
    series: RealSeriesSet,
    *,
    kinds: Sequence[Kind] = tuple(Kind),
    flavour: Flavour = Flavour.CONCURRENT,
    canaries: int = 20,
    seed: int = 13,
    spec: CanarySpec = DEFAULT_SPEC,
) -> list[Scenario]:
    """The benchmark's canaries as a history for :func:`judge.lab.backtest.backtest`,
    :func:`~judge.lab.backtest.sweep` and :mod:`judge.lab.tuning`: ``canaries`` of each kind
    (the same canaries ``benchmarks/bench_real_noise.py`` judges at this seed), labelled
    ``good`` where a good judge promotes them and ``bad`` where it should not, ``kind`` the
    :class:`Kind`'s value. ``meta`` has ``series`` (the real series the regressed metric, or
    the first level metric, was drawn from: group :func:`judge.lab.tuning.split_scenarios` by it
    to keep a series out of both halves), ``target``, ``injected``, ``flavour``, ``split`` and
    the error rates. Draw ``series`` with :meth:`RealSeriesSet.select` to keep the held-out
    series for the end."""
    history = []
    for kind in kinds:
        for index in range(canaries):
            canary = labelled_canary(series, kind, flavour, seed=seed, index=index, spec=spec)
            label = canary.label
            drawn_from = label.series_of(label.target) if label.target else label.windows[0].series
            history.append(Scenario(
                id=f"{kind.value}-{flavour.value}-{index:04d}",
                kind=kind.value,
                label=Label.GOOD if label.expected is Expected.PROMOTE else Label.BAD,
                baseline=canary.baseline,
                canary=canary.canary,
                meta={"series": drawn_from, "target": label.target, "injected": label.injected,
                      "flavour": flavour.value,
                      "split": None if label.split is None else label.split.value,
                      "baseline_error_rate": label.baseline_error_rate,
                      "canary_error_rate": label.canary_error_rate},
            ))
    return history


# -- the config the docs lead to ----------------------------------------------------------------


def benchmark_config(
    mode: JudgeMode = JudgeMode.DEFAULT, spec: CanarySpec = DEFAULT_SPEC
) -> CanaryConfig:
    """The config a new user writes from the docs (issue 13): the level metrics with
    ``direction: increase`` and the default test, ``errors`` critical, ``requests`` with
    ``direction: decrease``, thresholds pass 95 / marginal 75.

    Default mode judges ``errors`` with ``rate_ratio`` over ``requests``; ``rate_ratio`` is
    default-only, so in Kayenta mode ``errors`` gets Mann-Whitney on its per-minute counts, as
    a Kayenta user would configure it.
    """
    errors: dict[str, Any] = {"name": "errors", "direction": "increase", "critical": True}
    if mode is JudgeMode.DEFAULT:
        errors["test"] = {"kind": "rate_ratio", "denominator": "requests"}
    return CanaryConfig.from_dict({
        "name": f"real-noise-{mode.value}",
        "mode": mode.value,
        "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [
            *({"name": name, "direction": "increase"} for name in level_metric_names(spec)),
            errors,
            {"name": "requests", "direction": "decrease"},
        ],
    })


def with_overrides(config: CanaryConfig, overrides: Mapping[str, Any]) -> CanaryConfig:
    """``config`` with some fields set, for measuring what a setting buys on the benchmark
    (``bench_real_noise.py --set``): dotted paths into the config's mapping, where a segment
    after ``metrics`` names a metric (``*``: every metric), e.g.
    ``{"multiple_testing.level": 0.05, "metrics.errors.test.negligible_rate": 0.005}``. The
    result is validated like any config, so a misspelt field is named.

    >>> changed = with_overrides(benchmark_config(), {"multiple_testing.level": 0.05})
    >>> changed.multiple_testing.level
    0.05
    >>> with_overrides(benchmark_config(), {"metrics.latency.critical": True})
    Traceback (most recent call last):
    ...
    ValueError: metrics.latency.critical: no metric 'latency' (the config has level_1, ...)
    """
    raw = config.to_dict()
    for path, value in overrides.items():
        parts = path.split(".")
        targets: list[dict[str, Any]] = [raw]
        position = 0
        while position < len(parts) - 1:
            key = parts[position]
            if key == "metrics":
                name = parts[position + 1]
                metrics = [m for t in targets for m in t["metrics"]
                           if name == "*" or m["name"] == name]
                if not metrics:
                    names = [m["name"] for m in raw["metrics"]]
                    raise ValueError(f"{path}: no metric {name!r} (the config has "
                                     f"{names[0]}, ...)")
                targets, position = metrics, position + 2
                continue
            targets = [t.setdefault(key, {}) for t in targets]
            position += 1
        if position != len(parts) - 1:
            raise ValueError(f"{path}: a path ends in a field, not in a metric")
        for target in targets:
            target[parts[-1]] = value
    return CanaryConfig.from_dict(raw)
