"""Labelled canary scenarios: synthetic baseline/canary pairs whose truth is known.

A *scenario* is one canary run: a baseline and a canary DataFrame over the same minutes (one
column per metric, a UTC ``DatetimeIndex`` at 1-minute steps) and a label, ``good`` or ``bad``.
Backtests (``judge.lab.backtest``), the tuning notebook and the judge benchmark all learn from them.

Realism, metric by metric (see :data:`STANDARD_METRICS`):

- **Daily cycle.** Every scenario starts at some minute of the day; load follows
  ``1 + amplitude * sin(2 pi (minute of day - 6 h) / 1440)`` (peak at noon UTC, trough at
  midnight), the same on both sides because baseline and canary run at the same time. Latency,
  CPU and request counts move with load.
- **Autocorrelated noise.** Each series carries its own stationary AR(1) noise
  ``z[t] = phi z[t-1] + sqrt(1 - phi^2) e[t]`` (unit variance, e ~ N(0, 1)); ``phi`` is drawn per
  scenario from ``[0, PHI_MAX]`` unless given. Points are therefore *not* independent: this is
  what makes naive Mann-Whitney over per-minute points over-reject.
- **Heavy-tailed latency.** Latency family: ``level * load^coupling * exp(noise * z) * spike``,
  a lognormal body with, per minute and independently, probability ``tail_prob`` of a Pareto
  spike ``spike = 2 (1 + Lomax(tail_alpha))`` (at least twice the body, tail index
  ``tail_alpha``).
- **Counts.** ``requests`` per minute are Poisson with an autocorrelated lognormal rate (a
  gamma-free way of getting over-dispersion); error-like counts are ``Binomial(requests,
  rate)`` with their own autocorrelated rate, so low traffic gives many zero minutes. Many
  services have no errors at all: the baseline error rate is 0 in :data:`ZERO_ERROR_SHARE` of
  scenarios.

Count columns and their denominator: an error-like metric (family ``errors``) names its
denominator column in :attr:`MetricSpec.denominator` (``requests`` for the standard set). So a
rate test can judge ``errors`` on counts: ``sum(errors) / sum(requests)`` per side.

Kinds (:class:`ScenarioKind`) and the regression each injects into the canary's *target* metric
(:data:`DEFAULT_TARGET`) at a given *size* (default :data:`MEANINGFUL_SIZE`):

============== ===== ================ ====================================================
kind           label default target   what ``size`` means
============== ===== ================ ====================================================
aa             good  (none)           both sides are the same version (size unused)
low_traffic    good  (none)           requests per minute on each side (default 1.5): too
                                      little evidence, a judge should say so
shifted_mean   bad   latency_p50      relative increase of the level (0.2 = 20% higher)
wider_spread   bad   latency_p90      factor on the log-noise s.d. (median unchanged)
heavier_tail   bad   latency_p99      canary's per-minute spike probability (baseline
                                      keeps the metric's own ``tail_prob``)
new_errors     bad   errors           canary error rate (errors / requests) while the
                                      baseline has none
benign_shift   good  drawn (*)        relative change of the level too small to matter
                                      (0.05 = 5% higher): a good release that a judge
                                      without effect-size limits fails for nothing
============== ===== ================ ====================================================

(*) one of :data:`BENIGN_TARGETS`, drawn from the seed. What counts as "too small to matter"
is a team's call, expressed in a config's effect-size limits (``allowed_increase``): this is
the kind that tuning them is for.

*Meaningful* sizes (:data:`MEANINGFUL_SIZE`: +20% level, 3.5x log-spread, 35% spiky minutes,
0.15% errors against none) are the sizes at which a good judge should catch the regression in at
least 90% of canaries of 60 one-minute points. They are calibrated against reference tests that
know the noise model's ``phi`` (``tests/unit/test_scenarios_calibration.py``): a rank test with
the AR(1) variance inflation ``(1 + phi) / (1 - phi)`` for the shift, the same on absolute
deviations from the median for the spread, Fisher's exact test on minutes above 1.5x the pooled
median for the tail, and the conditional binomial test on error counts. At a per-metric level of
0.2% (a family-wise 2% over 10 metrics) each catches its kind in about 95-99% of scenarios with
phi drawn from [0, 0.7], leaving a judge that must estimate phi some room.

Everything is deterministic given ``seed``. A shipped history (:func:`load_history`) is the
output of :func:`generate_history` at :data:`HISTORY_SEED`, stored under
``judge/lab/data/history/``.

Example::

    >>> from judge.lab.scenarios import generate_canary
    >>> scenario = generate_canary("shifted_mean", seed=7)
    >>> scenario.label.value, scenario.target, scenario.canary.shape
    ('bad', 'latency_p50', (60, 10))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from judge.config import (
    CanaryConfig,
    Direction,
    JudgeMode,
    MannWhitneyTest,
    MetricConfig,
    MetricTest,
    RateRatioTest,
)

__all__ = [
    "DEFAULT_MIX",
    "DEFAULT_TARGET",
    "HISTORY_SEED",
    "HISTORY_SIZE",
    "MEANINGFUL_SIZE",
    "PHI_MAX",
    "STANDARD_METRICS",
    "Family",
    "Label",
    "MetricSpec",
    "Scenario",
    "ScenarioKind",
    "generate_canary",
    "generate_history",
    "history_config",
    "load_history",
    "save_history",
]


class ScenarioKind(StrEnum):
    """What happened in a canary run (see the module docstring for each kind's size)."""

    AA = "aa"
    LOW_TRAFFIC = "low_traffic"
    SHIFTED_MEAN = "shifted_mean"
    WIDER_SPREAD = "wider_spread"
    HEAVIER_TAIL = "heavier_tail"
    NEW_ERRORS = "new_errors"
    BENIGN_SHIFT = "benign_shift"

    @property
    def label(self) -> Label:
        return Label.GOOD if self in _GOOD_KINDS else Label.BAD


class Label(StrEnum):
    """The truth about a release: ``good`` should pass, ``bad`` should not."""

    GOOD = "good"
    BAD = "bad"


_GOOD_KINDS = frozenset({ScenarioKind.AA, ScenarioKind.LOW_TRAFFIC, ScenarioKind.BENIGN_SHIFT})
_NO_TARGET_KINDS = frozenset({ScenarioKind.AA, ScenarioKind.LOW_TRAFFIC})


class Family(StrEnum):
    """How a metric is simulated.

    ``latency``: lognormal body times Pareto spikes. ``gauge``: level times load plus Gaussian
    noise (CPU, memory), clipped at 0 (and at 100 when ``bounded``). ``requests``: Poisson
    counts. ``errors``: ``Binomial(denominator count, rate)``.
    """

    LATENCY = "latency"
    GAUGE = "gauge"
    REQUESTS = "requests"
    ERRORS = "errors"


@dataclass(frozen=True)
class MetricSpec:
    """How one metric column is simulated.

    ``level``: typical value at average load (ms for latency, % for CPU, requests per minute,
    and for ``errors`` the mean error *rate* of a service that has errors). ``noise``: s.d. of
    the log-value (latency, requests, error rate) or relative s.d. (gauge). ``coupling``:
    exponent of load (latency, gauge) - how much the daily cycle moves the metric.
    """

    name: str
    family: Family
    level: float
    noise: float
    direction: Direction = Direction.INCREASE
    coupling: float = 0.0
    tail_prob: float = 0.0
    tail_alpha: float = 2.5
    bounded: bool = False
    per_request: bool = False
    """A per-minute statistic over that minute's requests (latency percentiles): NaN in a
    minute without requests, and noisier when there are few."""
    denominator: str | None = None
    """For ``errors``: the column counting the trials (requests) the errors come from."""

    def __post_init__(self) -> None:
        if (self.family is Family.ERRORS) != (self.denominator is not None):
            raise ValueError(
                f"metric {self.name!r}: family 'errors' needs a denominator, and only it has one"
            )


STANDARD_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "latency_p50", Family.LATENCY, 40.0, 0.08, coupling=0.2, tail_prob=0.01, per_request=True
    ),
    MetricSpec(
        "latency_p90", Family.LATENCY, 120.0, 0.12, coupling=0.3, tail_prob=0.02, per_request=True
    ),
    MetricSpec(
        "latency_p99",
        Family.LATENCY,
        300.0,
        0.15,
        coupling=0.4,
        tail_prob=0.02,
        tail_alpha=2.0,
        per_request=True,
    ),
    MetricSpec("gc_pause", Family.LATENCY, 8.0, 0.25, coupling=0.1, tail_prob=0.02),
    MetricSpec("cpu", Family.GAUGE, 45.0, 0.06, coupling=0.8, bounded=True),
    MetricSpec("memory", Family.GAUGE, 1200.0, 0.02, coupling=0.05),
    MetricSpec("connections", Family.GAUGE, 80.0, 0.08, coupling=0.6),
    MetricSpec("requests", Family.REQUESTS, 300.0, 0.05, direction=Direction.EITHER),
    MetricSpec("errors", Family.ERRORS, 0.002, 0.3, denominator="requests"),
    MetricSpec("timeouts", Family.ERRORS, 0.0005, 0.3, denominator="requests"),
)
"""Ten metrics: four latency-like (heavy-tailed), three gauges, requests and two error counts
over ``requests``."""

PHI_MAX = 0.7
"""Largest AR(1) coefficient drawn when a scenario's ``phi`` is not given."""

ZERO_ERROR_SHARE = 0.3
"""Share of scenarios whose service has no errors at all (both sides, for good kinds)."""

DAILY_AMPLITUDE = 0.35
"""Relative amplitude of the daily load cycle."""

TRAFFIC_SPREAD = 0.3
"""Log-s.d. of a scenario's traffic level around the requests metric's ``level``."""

DEFAULT_TARGET: Mapping[ScenarioKind, str] = {
    ScenarioKind.SHIFTED_MEAN: "latency_p50",
    ScenarioKind.WIDER_SPREAD: "latency_p90",
    ScenarioKind.HEAVIER_TAIL: "latency_p99",
    ScenarioKind.NEW_ERRORS: "errors",
}

MEANINGFUL_SIZE: Mapping[ScenarioKind, float] = {
    ScenarioKind.LOW_TRAFFIC: 1.5,
    ScenarioKind.SHIFTED_MEAN: 0.2,
    ScenarioKind.WIDER_SPREAD: 3.5,
    ScenarioKind.HEAVIER_TAIL: 0.35,
    ScenarioKind.NEW_ERRORS: 0.0015,
    ScenarioKind.BENIGN_SHIFT: 0.05,
}
"""Default size per kind; for regressions, the size a good judge catches >= 90% of the time."""

BENIGN_TARGETS = ("latency_p50", "latency_p90", "cpu", "memory")
"""Metrics a ``benign_shift`` scenario moves (one, drawn from its seed, unless ``target``)."""

DEFAULT_MIX: Mapping[ScenarioKind, float] = {
    ScenarioKind.AA: 0.3,
    ScenarioKind.BENIGN_SHIFT: 0.1,
    ScenarioKind.LOW_TRAFFIC: 0.1,
    ScenarioKind.SHIFTED_MEAN: 0.125,
    ScenarioKind.WIDER_SPREAD: 0.125,
    ScenarioKind.HEAVIER_TAIL: 0.125,
    ScenarioKind.NEW_ERRORS: 0.125,
}
"""Share of each kind in a generated history: half good releases, half bad ones."""

HISTORY_SEED = 20240501
HISTORY_SIZE = 320
HISTORY_SIZE_RANGE = (0.8, 1.5)
"""The shipped history scales each regression's meaningful size by a factor drawn uniformly in
this range: past bad releases are not all exactly as bad."""

_HISTORY_DIRECTORY = ("data", "history")
_HISTORY_SERIES = "history.csv.gz"
_HISTORY_INDEX = "history.json"
_EPOCH = pd.Timestamp("2026-01-05T00:00:00Z")
_SPIKE_FLOOR = 2.0


@dataclass(frozen=True)
class Scenario:
    """One labelled canary run: a baseline and a canary DataFrame over the same minutes (one
    column per metric) and the truth about the release.

    Generated scenarios have a :class:`ScenarioKind`; a past canary of your own can have any
    ``kind`` string (``"past"``, a team name ...): backtests group their rates by it. ``label``
    may be given as ``"good"`` / ``"bad"``, or ``None`` when the outcome is not known (the
    backtest still shows the verdict; the error rates leave such canaries out). ``meta`` holds
    what generated a scenario: ``phi``, ``size``, ``target`` (the metric changed, or ``None``),
    ``traffic`` (requests per minute at average load), ``error_rate`` (baseline rate per error
    metric), ``seed``.

    >>> import pandas as pd
    >>> past = Scenario("deploy-812", "past", "bad", pd.DataFrame({"p99": [1.0, 2.0]}),
    ...                 pd.DataFrame({"p99": [3.0, 4.0]}))
    >>> past.label, past.kind
    (<Label.BAD: 'bad'>, 'past')
    """

    id: str
    kind: ScenarioKind | str
    label: Label | None
    baseline: pd.DataFrame
    canary: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__, once, at construction.
        if self.label is not None:
            try:
                object.__setattr__(self, "label", Label(self.label))
            except ValueError:
                raise ValueError(
                    f"label: {self.label!r} is not a label; use 'good', 'bad' or None"
                ) from None
        if self.kind in {k.value for k in ScenarioKind}:
            object.__setattr__(self, "kind", ScenarioKind(self.kind))
        for side in ("baseline", "canary"):
            if not isinstance(getattr(self, side), pd.DataFrame):
                raise TypeError(f"{side}: need a pandas DataFrame, one column per metric")

    @property
    def target(self) -> str | None:
        """The metric the regression (or benign change) was put into, if known."""
        target = self.meta.get("target")
        return None if target is None else str(target)


# -- generation ---------------------------------------------------------------------------


def _ar1(rng: np.random.Generator, phi: float, shape: tuple[int, ...]) -> np.ndarray:
    """Stationary unit-variance AR(1) series along the last axis.

    ``z[0] ~ N(0, 1)``, ``z[t] = phi z[t-1] + sqrt(1 - phi^2) e[t]``: one ``lfilter`` call for
    every series at once (the recursion is an IIR filter with denominator ``[1, -phi]``).
    """
    innovations = rng.standard_normal(shape)
    if phi == 0.0:
        return innovations
    scale = math.sqrt(1.0 - phi * phi)
    drive = innovations * scale
    # Start from the stationary law: the first point has variance 1, not 1 - phi^2.
    drive[..., 0] = innovations[..., 0]
    return np.asarray(lfilter([1.0], [1.0, -phi], drive, axis=-1))


def _load_curve(start: pd.Timestamp, n_points: int) -> np.ndarray:
    minute_of_day = start.hour * 60 + start.minute + np.arange(n_points)
    angle = 2.0 * math.pi * (minute_of_day - 360) / 1440.0
    return np.asarray(1.0 + DAILY_AMPLITUDE * np.sin(angle))


def _resolve_metrics(metrics: Sequence[MetricSpec | str] | None) -> tuple[MetricSpec, ...]:
    if metrics is None:
        return STANDARD_METRICS
    by_name = {spec.name: spec for spec in STANDARD_METRICS}
    resolved: list[MetricSpec] = []
    for item in metrics:
        if isinstance(item, MetricSpec):
            resolved.append(item)
        elif item in by_name:
            resolved.append(by_name[item])
        else:
            raise ValueError(
                f"metrics: unknown metric {item!r}; standard metrics are {sorted(by_name)} "
                "(or pass a MetricSpec)"
            )
    names = [spec.name for spec in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: a name is used twice in {names}")
    for spec in resolved:
        if spec.denominator is not None and spec.denominator not in names:
            raise ValueError(
                f"metrics: {spec.name!r} counts errors out of {spec.denominator!r}, "
                "which is not among the metrics"
            )
    return tuple(resolved)


def _check_kind(kind: ScenarioKind | str) -> ScenarioKind:
    try:
        return ScenarioKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in ScenarioKind)
        raise ValueError(f"kind: {kind!r} is not a scenario kind; use one of {allowed}") from None


def generate_canary(
    kind: ScenarioKind | str,
    *,
    seed: int | np.random.SeedSequence,
    n_points: int = 60,
    metrics: Sequence[MetricSpec | str] | None = None,
    size: float | None = None,
    target: str | None = None,
    phi: float | None = None,
    start: pd.Timestamp | str | None = None,
    scenario_id: str | None = None,
) -> Scenario:
    """Simulate one labelled canary run.

    ``size`` defaults to :data:`MEANINGFUL_SIZE` for the kind; ``target`` to
    :data:`DEFAULT_TARGET` (it must be a metric of a family the kind can regress: latency or
    gauge for ``shifted_mean`` / ``wider_spread``, latency for ``heavier_tail``, errors for
    ``new_errors``). ``phi`` (AR(1) coefficient, in [0, 0.99)) and ``start`` are drawn from the
    seed when not given. The same arguments always give the same scenario.
    """
    kind = _check_kind(kind)
    specs = _resolve_metrics(metrics)
    if n_points < 2:
        raise ValueError(f"n_points: need at least 2 points per side, got {n_points}")
    rng = np.random.default_rng(seed)

    # Scenario-level draws come first and in a fixed order, so a scenario is reproducible from
    # its seed whatever overrides are given for the other parameters.
    drawn_phi = float(rng.uniform(0.0, PHI_MAX))
    drawn_start = _EPOCH + pd.Timedelta(minutes=int(rng.integers(0, 60 * 1440)))
    traffic_factor = float(np.exp(TRAFFIC_SPREAD * rng.standard_normal()))
    has_errors = bool(rng.uniform() >= ZERO_ERROR_SHARE)
    rate_factors = np.exp(0.5 * rng.standard_normal(len(specs)))

    phi = drawn_phi if phi is None else float(phi)
    if not 0.0 <= phi < 0.99:
        raise ValueError(f"phi: the AR(1) coefficient must be in [0, 0.99), got {phi}")
    start_ts = drawn_start if start is None else pd.Timestamp(start)
    if start_ts.tzinfo is None:
        start_ts = start_ts.tz_localize("UTC")
    size = MEANINGFUL_SIZE.get(kind) if size is None else float(size)
    if kind is ScenarioKind.BENIGN_SHIFT and target is None:
        candidates = [spec.name for spec in specs if spec.name in BENIGN_TARGETS]
        if not candidates:
            raise ValueError(
                f"target: a benign_shift scenario needs one of {list(BENIGN_TARGETS)} "
                "among the metrics, or an explicit target"
            )
        target = candidates[int(rng.integers(0, len(candidates)))]
    target = _check_target(kind, specs, target)
    # A benign shift is a shifted mean too small to matter: simulated the same way.
    effect = ScenarioKind.SHIFTED_MEAN if kind is ScenarioKind.BENIGN_SHIFT else kind

    names = [spec.name for spec in specs]
    load = _load_curve(start_ts, n_points)
    noise = _ar1(rng, phi, (2, len(specs), n_points))
    count_noise = _ar1(rng, phi, (2, len(specs), n_points))
    spike_draws = rng.uniform(size=(2, len(specs), n_points))
    spike_sizes = rng.pareto(
        np.array([spec.tail_alpha for spec in specs])[None, :, None], (2, len(specs), n_points)
    )

    if kind is ScenarioKind.LOW_TRAFFIC:
        assert size is not None
        traffic = size
    else:
        traffic = _denominator_level(specs) * traffic_factor
    error_rates: dict[str, float] = {}
    values: dict[str, np.ndarray] = {}
    # Requests first: errors are drawn out of the request counts, and a latency percentile
    # over a minute without requests does not exist (NaN).
    rank = {Family.REQUESTS: 0, Family.LATENCY: 1, Family.GAUGE: 1, Family.ERRORS: 2}
    order = sorted(range(len(specs)), key=lambda i: rank[specs[i].family])
    request_column = next((s.name for s in specs if s.family is Family.REQUESTS), None)
    for i in order:
        spec = specs[i]
        regress = spec.name == target
        if spec.family is Family.LATENCY:
            values[spec.name] = _latency(
                spec,
                load,
                noise[:, i],
                spike_draws[:, i],
                spike_sizes[:, i],
                effect if regress else ScenarioKind.AA,
                size,
                traffic,
                kind,
            )
            if spec.per_request and request_column is not None:
                idle = values[request_column] == 0
                values[spec.name] = np.where(idle, np.nan, values[spec.name])
        elif spec.family is Family.GAUGE:
            values[spec.name] = _gauge(spec, load, noise[:, i], effect if regress else None, size)
        elif spec.family is Family.REQUESTS:
            rate = traffic if spec.name in {s.denominator for s in specs} else spec.level
            lam = rate * load * np.exp(spec.noise * noise[:, i] - 0.5 * spec.noise**2)
            values[spec.name] = rng.poisson(lam)
        else:
            assert spec.denominator is not None
            base_rate = spec.level * float(rate_factors[i]) if has_errors else 0.0
            canary_rate = base_rate
            if regress:
                assert size is not None
                base_rate, canary_rate = 0.0, size
            error_rates[spec.name] = base_rate
            sides = np.array([base_rate, canary_rate])[:, None]
            wobble = np.exp(spec.noise * count_noise[:, i] - 0.5 * spec.noise**2)
            p = np.clip(sides * wobble, 0.0, 1.0)
            trials = values[spec.denominator]
            values[spec.name] = rng.binomial(trials, p)

    index = pd.date_range(start_ts, periods=n_points, freq="min", name="time")
    sides_frames = []
    for side in (0, 1):
        frame = pd.DataFrame({name: values[name][side] for name in names}, index=index)
        sides_frames.append(frame)
    meta: dict[str, Any] = {
        "phi": phi,
        "size": size if kind is not ScenarioKind.AA else None,
        "target": target,
        "traffic": traffic,
        "error_rate": error_rates,
        "seed": seed if isinstance(seed, int) else None,
    }
    return Scenario(
        id=scenario_id or f"{kind.value}-{seed if isinstance(seed, int) else 'seq'}",
        kind=kind,
        label=kind.label,
        baseline=sides_frames[0],
        canary=sides_frames[1],
        meta=meta,
    )


def _check_target(
    kind: ScenarioKind, specs: Sequence[MetricSpec], target: str | None
) -> str | None:
    if kind in _NO_TARGET_KINDS:
        if target is not None:
            raise ValueError(f"target: a {kind.value} scenario has no regressed metric")
        return None
    chosen = DEFAULT_TARGET[kind] if target is None else target
    by_name = {spec.name: spec for spec in specs}
    if chosen not in by_name:
        raise ValueError(f"target: {chosen!r} is not among the metrics {sorted(by_name)}")
    allowed = {
        ScenarioKind.SHIFTED_MEAN: {Family.LATENCY, Family.GAUGE},
        ScenarioKind.WIDER_SPREAD: {Family.LATENCY, Family.GAUGE},
        ScenarioKind.HEAVIER_TAIL: {Family.LATENCY},
        ScenarioKind.NEW_ERRORS: {Family.ERRORS},
        ScenarioKind.BENIGN_SHIFT: {Family.LATENCY, Family.GAUGE},
    }[kind]
    if by_name[chosen].family not in allowed:
        raise ValueError(
            f"target: {kind.value} needs a metric of family "
            f"{sorted(f.value for f in allowed)}; {chosen!r} is {by_name[chosen].family.value}"
        )
    return chosen


def _denominator_level(specs: Sequence[MetricSpec]) -> float:
    for spec in specs:
        if spec.family is Family.REQUESTS:
            return spec.level
    return 300.0


def _latency(
    spec: MetricSpec,
    load: np.ndarray,
    noise: np.ndarray,
    spike_draws: np.ndarray,
    spike_sizes: np.ndarray,
    regression: ScenarioKind,
    size: float | None,
    traffic: float,
    kind: ScenarioKind,
) -> np.ndarray:
    """Both sides (rows: baseline, canary) of a latency-like metric."""
    sigma = np.full((2, 1), spec.noise)
    level = np.full((2, 1), spec.level)
    tail_prob = np.full((2, 1), spec.tail_prob)
    if regression is ScenarioKind.SHIFTED_MEAN:
        assert size is not None
        level[1] *= 1.0 + size
    elif regression is ScenarioKind.WIDER_SPREAD:
        assert size is not None
        sigma[1] *= size
    elif regression is ScenarioKind.HEAVIER_TAIL:
        assert size is not None
        tail_prob[1] = size
    if kind is ScenarioKind.LOW_TRAFFIC and spec.per_request:
        # A per-minute percentile over a handful of requests is much noisier than over
        # hundreds: its spread grows like 1/sqrt(requests).
        sigma = sigma * min(6.0, math.sqrt(100.0 / max(traffic, 1e-9)))
    body = level * load**spec.coupling * np.exp(sigma * noise)
    spikes = np.where(spike_draws < tail_prob, _SPIKE_FLOOR * (1.0 + spike_sizes), 1.0)
    return np.asarray(body * spikes)


def _gauge(
    spec: MetricSpec,
    load: np.ndarray,
    noise: np.ndarray,
    regression: ScenarioKind | None,
    size: float | None,
) -> np.ndarray:
    mean = np.full((2, 1), spec.level) * load**spec.coupling
    spread = np.full((2, 1), spec.noise * spec.level)
    if regression is ScenarioKind.SHIFTED_MEAN:
        assert size is not None
        mean[1] *= 1.0 + size
    elif regression is ScenarioKind.WIDER_SPREAD:
        assert size is not None
        spread[1] *= size
    result = np.maximum(mean + spread * noise, 0.0)
    if spec.bounded:
        result = np.minimum(result, 100.0)
    return np.asarray(result)


def _allocate(n: int, mix: Mapping[ScenarioKind, float]) -> list[ScenarioKind]:
    """Exactly ``n`` kinds in proportion to ``mix`` (largest remainders), in a fixed order."""
    total = sum(mix.values())
    exact = {kind: n * weight / total for kind, weight in mix.items()}
    counts = {kind: math.floor(value) for kind, value in exact.items()}
    short = n - sum(counts.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k.value))
    for kind in by_remainder[:short]:
        counts[kind] += 1
    return [kind for kind in mix for _ in range(counts[kind])]


def generate_history(
    n: int,
    *,
    seed: int,
    mix: Mapping[ScenarioKind | str, float] | None = None,
    n_points: int = 60,
    metrics: Sequence[MetricSpec | str] | None = None,
    size_range: tuple[float, float] = (1.0, 1.0),
) -> list[Scenario]:
    """``n`` labelled scenarios with kinds in proportion to ``mix`` (default
    :data:`DEFAULT_MIX`), in shuffled order.

    Each regression's size is its meaningful size times a factor drawn uniformly from
    ``size_range``. Scenario ``i`` is ``generate_canary(kind, seed=SeedSequence([seed, i]),
    ...)``, so any one of them can be regenerated alone.
    """
    if n < 1:
        raise ValueError(f"n: need at least one scenario, got {n}")
    low, high = size_range
    if not 0 < low <= high:
        raise ValueError(f"size_range: need 0 < low <= high, got {size_range}")
    weights = {_check_kind(k): float(w) for k, w in (mix or DEFAULT_MIX).items()}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"mix: weights must be >= 0 and not all 0, got {dict(weights)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31]))
    kinds = _allocate(n, weights)
    kinds = [kinds[i] for i in rng.permutation(n)]
    factors = rng.uniform(low, high, size=n)
    scenarios = []
    for i, kind in enumerate(kinds):
        size = None
        if kind in MEANINGFUL_SIZE and kind is not ScenarioKind.LOW_TRAFFIC:
            size = MEANINGFUL_SIZE[kind] * float(factors[i])
            if kind is ScenarioKind.WIDER_SPREAD:
                # A spread factor scales above 1: factor 1 would be no regression at all.
                size = 1.0 + (MEANINGFUL_SIZE[kind] - 1.0) * float(factors[i])
        scenarios.append(
            generate_canary(
                kind,
                seed=np.random.SeedSequence([seed, i]),
                n_points=n_points,
                metrics=metrics,
                size=size,
                scenario_id=f"{kind.value}-{i:04d}",
            )
        )
        scenarios[-1].meta["seed"] = [seed, i]
    return scenarios


# -- configs ------------------------------------------------------------------------------


def history_config(
    mode: JudgeMode | str = JudgeMode.DEFAULT,
    metrics: Sequence[MetricSpec | str] | None = None,
    *,
    name: str = "history",
) -> CanaryConfig:
    """A canary config judging every generated metric, each column by its own name, with the
    direction the generator treats as bad (all metrics in one group).

    In ``default`` mode an error-like metric is judged on its counts against its denominator
    (``test: {kind: rate_ratio, denominator: requests}``); ``kayenta`` mode has only Kayenta's
    Mann-Whitney, so there every metric keeps it.
    """
    specs = _resolve_metrics(metrics)
    mode = JudgeMode(mode)
    configs = []
    for spec in specs:
        if mode is JudgeMode.DEFAULT and spec.denominator is not None:
            test: MetricTest = RateRatioTest(denominator=spec.denominator)
        else:
            test = MannWhitneyTest()
        configs.append(MetricConfig(name=spec.name, direction=spec.direction, test=test))
    return CanaryConfig(name=name, mode=mode, metrics=tuple(configs))


# -- the shipped history ------------------------------------------------------------------


def save_history(scenarios: Sequence[Scenario], directory: str | Path) -> None:
    """Write scenarios as ``history.csv.gz`` (one row per scenario, side and point: ``id``,
    ``side``, ``minute`` (the point's position), ``time`` (its timestamp, ISO 8601, empty for a
    side without a ``DatetimeIndex``) and one column per metric) and ``history.json`` (id,
    kind, label, start, meta per scenario), the layout :func:`load_history` reads. Values are
    written in full precision (Python's shortest round-trip repr) and each side keeps its own
    timestamps: :func:`load_history` gives back exactly what was saved."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = []
    parts = []
    for scenario in scenarios:
        start = scenario.baseline.index[0] if len(scenario.baseline) else None
        index.append(
            {
                "id": scenario.id,
                "kind": str(scenario.kind),
                "label": None if scenario.label is None else scenario.label.value,
                "start": start.isoformat() if isinstance(start, pd.Timestamp) else None,
                "columns": {str(c): str(t) for c, t in scenario.baseline.dtypes.items()},
                "canary_columns": {str(c): str(t) for c, t in scenario.canary.dtypes.items()},
                "meta": scenario.meta,
            }
        )
        for side, frame in (("baseline", scenario.baseline), ("canary", scenario.canary)):
            part = frame.reset_index(drop=True)
            times = (
                [t.isoformat() for t in frame.index]
                if isinstance(frame.index, pd.DatetimeIndex) else [None] * len(frame)
            )
            part.insert(0, "time", times)
            part.insert(0, "minute", np.arange(len(frame)))
            part.insert(0, "side", side)
            part.insert(0, "id", scenario.id)
            parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    table.to_csv(
        directory / _HISTORY_SERIES,
        index=False,
        compression={"method": "gzip", "mtime": 0},
    )
    (directory / _HISTORY_INDEX).write_text(json.dumps(index, indent=1) + "\n")


def _side_index(entry: Mapping[str, Any], times: Any, points: int) -> pd.Index:
    """A side's index: its saved timestamps when the file has them (each side its own, any
    step), else one-minute steps from the scenario's start (files written before timestamps
    were saved, such as the shipped history), else positions."""
    if times is not None and len(times) and pd.notna(times).all():
        return pd.DatetimeIndex(pd.to_datetime(list(times), format="ISO8601"), name="time")
    if entry.get("start"):
        return pd.date_range(pd.Timestamp(entry["start"]), periods=points, freq="min",
                             name="time")
    return pd.RangeIndex(points)


def load_history(directory: str | Path | None = None) -> list[Scenario]:
    """The labelled history shipped with the package (or one written by :func:`save_history`,
    given back exactly: values in full precision, each side's own timestamps).

    The shipped one is ``generate_history(HISTORY_SIZE, seed=HISTORY_SEED,
    size_range=HISTORY_SIZE_RANGE)`` stored to 7 significant digits, before timestamps were
    saved (its sides get one-minute steps from the scenario's start).
    """
    if directory is None:
        root = resources.files("judge.lab").joinpath(*_HISTORY_DIRECTORY)
        index_text = root.joinpath(_HISTORY_INDEX).read_text()
        with root.joinpath(_HISTORY_SERIES).open("rb") as stream:
            table = pd.read_csv(stream, compression="gzip")
    else:
        directory = Path(directory)
        index_text = (directory / _HISTORY_INDEX).read_text()
        table = pd.read_csv(directory / _HISTORY_SERIES)
    entries = json.loads(index_text)
    columns = [c for c in table.columns if c not in ("id", "side", "minute", "time")]
    positions = table.groupby(["id", "side"], sort=False).indices
    order = table["minute"].to_numpy()
    arrays = {c: table[c].to_numpy() for c in columns}
    times = table["time"].to_numpy(dtype=object) if "time" in table.columns else None
    scenarios = []
    for entry in entries:
        sides = []
        for side in ("baseline", "canary"):
            found = np.asarray(positions[(entry["id"], side)])
            rows = found[np.argsort(order[found], kind="stable")]
            index = _side_index(entry, None if times is None else times[rows], len(rows))
            # Each side's own columns (a file of several scenarios has the union of them).
            own = entry.get("columns" if side == "baseline" else "canary_columns")
            frame = pd.DataFrame({c: arrays[c][rows] for c in (own or columns)}, index=index)
            # ... with its own dtypes (integer counts stay integers when another scenario's
            # missing column made the file's column float).
            sides.append(frame.astype(own) if own else frame)
        scenarios.append(
            Scenario(
                id=entry["id"],
                kind=entry["kind"],
                label=entry["label"],
                baseline=sides[0],
                canary=sides[1],
                meta=entry["meta"],
            )
        )
    return scenarios
