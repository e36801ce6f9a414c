"""Synthetic, realistic baseline and canary series, so the service and notebooks run with no
Prometheus.

Each metric with a ``DemoQuery`` gets a series on the scope's grid (``start``, ``start + step``,
... ``end``; 60 one-minute points from 2024-01-01T12:00Z when the scope has no window):

- a **daily cycle** ``c(t) = 1 + 0.3 sin(2π (hour - 9) / 24)`` (traffic peaks mid-afternoon UTC),
  shared by both sides because it depends on the wall clock only;
- **AR(1) noise** ``e_k = φ e_{k-1} + sqrt(1 - φ²) z_k`` with ``φ = 0.6``: stationary, unit
  variance, autocorrelated as real per-minute metrics are (which is why a plain Mann-Whitney on
  such points over-rejects: see DESIGN.md, "Statistics notes");
- per signal, with ``L = level`` and ``s = noise``:

  ``latency``   ``L (0.8 + 0.2 c) exp(s e)``, and 3% of points multiplied by ``1 + Pareto(2)``
  (a heavy right tail, as request latencies have);
  ``errors``    ``Poisson(0.01 L c exp(s e))``: a 1% error rate on ``L`` requests per step, so
  mostly small counts and many zeros;
  ``requests``  ``Poisson(L c exp(s e))``;
  ``cpu``       ``max(0, 0.5 L c (1 + s e))``;
  ``memory``    ``L (1 + 0.02 k / n) (1 + 0.2 s e)``: a slow upward drift.

A **regression** is injected into a side whose scope asks for one: extended parameter
``regression`` (a factor, e.g. ``"1.3"``), or a scope value containing ``bad`` (factor 1.3).
It multiplies the level of latency, errors, cpu and memory, and divides requests (a bad
release serves less).

Series are deterministic: the random generator is seeded from the metric name, the scope (value,
location, parameters) and the window, so the same request always gives the same numbers, and
baseline and canary differ only by noise unless a regression is asked for.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

import numpy as np

from judge.config import CanaryConfig, MetricConfig
from judge.config.queries import DemoQuery
from judge.errors import ScopeValueError, UnsupportedSourceError
from judge.ports import FetchedSeries, FloatArray, Scope, TaggedSeries

AR_COEFFICIENT = 0.6
"""Lag-1 autocorrelation of the noise: per-minute service metrics are strongly autocorrelated."""
BAD_RELEASE_FACTOR = 1.3
"""Regression injected when the scope value contains "bad" and gives no explicit factor."""
DEFAULT_START = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
DEFAULT_POINTS = 60


def regression_factor(scope: Scope) -> float:
    """The multiplicative regression a scope asks for (1.0: none)."""
    raw = scope.params.get("regression")
    if raw is not None:
        try:
            factor = float(raw)
        except ValueError as exc:
            raise ScopeValueError(
                f"extended scope parameter 'regression' must be a number, got {raw!r}"
            ) from exc
        if not math.isfinite(factor) or factor <= 0:
            raise ScopeValueError(f"'regression' must be a positive number, got {raw!r}")
        return factor
    return BAD_RELEASE_FACTOR if "bad" in scope.scope.lower() else 1.0


def _seed(metric: MetricConfig, scope: Scope, grid: FloatArray) -> int:
    parts = [
        metric.name,
        scope.scope,
        scope.location or "",
        *(f"{k}={v}" for k, v in sorted(scope.params.items())),
        f"{grid[0]:.3f}/{grid[-1]:.3f}/{grid.size}" if grid.size else "empty",
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _grid(scope: Scope) -> FloatArray:
    step = scope.step or timedelta(minutes=1)
    if scope.start is None:
        start = DEFAULT_START.timestamp()
        return start + step.total_seconds() * np.arange(DEFAULT_POINTS, dtype=np.float64)
    end = (scope.end or scope.start + step * (DEFAULT_POINTS - 1)).timestamp()
    begin = scope.start.timestamp()
    count = math.floor((end - begin) / step.total_seconds()) + 1
    return begin + step.total_seconds() * np.arange(count, dtype=np.float64)


def ar1(rng: np.random.Generator, size: int, phi: float = AR_COEFFICIENT) -> FloatArray:
    """Stationary AR(1) noise with unit variance (first point drawn from the stationary law)."""
    shocks = rng.standard_normal(size)
    noise = np.empty(size)
    if size == 0:
        return noise
    noise[0] = shocks[0]
    scale = math.sqrt(1.0 - phi * phi)
    for k in range(1, size):
        noise[k] = phi * noise[k - 1] + scale * shocks[k]
    return noise


def daily_cycle(timestamps: FloatArray) -> FloatArray:
    hours = (timestamps / 3600.0) % 24.0
    return np.asarray(1.0 + 0.3 * np.sin(2.0 * np.pi * (hours - 9.0) / 24.0), dtype=np.float64)


def generate(query: DemoQuery, metric: MetricConfig, scope: Scope) -> TaggedSeries:
    """The synthetic series for one metric and scope (see module doc for the formulas)."""
    grid = _grid(scope)
    rng = np.random.default_rng(_seed(metric, scope, grid))
    factor = regression_factor(scope)
    level, noise_scale, n = query.level, query.noise, grid.size
    cycle = daily_cycle(grid)
    noise = ar1(rng, n)
    if query.signal == "latency":
        values = level * factor * (0.8 + 0.2 * cycle) * np.exp(noise_scale * noise)
        spikes = rng.random(n) < 0.03
        values[spikes] *= 1.0 + rng.pareto(2.0, int(spikes.sum()))
    elif query.signal == "errors":
        rate = 0.01 * level * factor * cycle * np.exp(noise_scale * noise)
        values = rng.poisson(rate).astype(np.float64)
    elif query.signal == "requests":
        rate = level / factor * cycle * np.exp(noise_scale * noise)
        values = rng.poisson(rate).astype(np.float64)
    elif query.signal == "cpu":
        values = np.maximum(0.0, 0.5 * level * factor * cycle * (1.0 + noise_scale * noise))
    else:  # memory
        drift = 1.0 + 0.02 * np.arange(n) / max(n, 1)
        values = level * factor * drift * (1.0 + 0.2 * noise_scale * noise)
    return TaggedSeries(tags={}, timestamps=grid, values=np.asarray(values, dtype=np.float64))


class DemoSource:
    """Synthetic data for ``DemoQuery`` metrics (see module doc)."""

    query_types: frozenset[str] = frozenset({"demo"})

    def __repr__(self) -> str:
        return "DemoSource()"

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        query = metric.query
        if not isinstance(query, DemoQuery):
            raise UnsupportedSourceError(
                f"metric {metric.name!r} has a {query.type!r} query; the demo source serves "
                "demo queries"
            )
        grid = _grid(scope)
        window = (
            f"{datetime.fromtimestamp(grid[0], UTC).isoformat()} .. "
            f"{datetime.fromtimestamp(grid[-1], UTC).isoformat()}, {grid.size} points"
            if grid.size else "no points"
        )
        return (
            f"demo:{query.signal}(level={query.level:g}, noise={query.noise:g}, "
            f"regression={regression_factor(scope):g}) scope={scope.scope!r} [{window}]"
        )

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        rendered = self.render(metric, scope, config)
        assert isinstance(metric.query, DemoQuery)  # checked by render
        return FetchedSeries(query=rendered, series=(generate(metric.query, metric, scope),))
