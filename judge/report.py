"""What a judgment returns: per-metric results, per-group scores, and the verdict.

Frozen dataclasses: domain objects, not API schemas. ``Report.to_dict()`` is the JSON-ready
form every adapter starts from; ``Report.to_frame()`` is one row per metric for notebooks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson

from judge.errors import UnknownMetricError

if TYPE_CHECKING:
    import pandas as pd


class Classification(StrEnum):
    """The outcome for one metric.

    ``pass``: no shift that matters. ``high`` / ``low``: the canary is significantly and
    materially above / below the baseline in a direction the metric cares about.
    ``nodata``: not enough data to judge (not scored against the canary).
    ``nodata_fail``: no data for a metric that must have data (scored as a failure).
    ``error``: the metric could not be judged (failed query, unusable data); scored as a
    failure so a broken source never promotes a canary by accident. When the cause is the
    source failing (down, slow, refusing the query, no series at all for a scope), the whole
    report is an error outcome instead: see :class:`Verdict`.
    """

    PASS = "pass"
    HIGH = "high"
    LOW = "low"
    NODATA = "nodata"
    NODATA_FAIL = "nodata_fail"
    ERROR = "error"

    @property
    def failed(self) -> bool:
        return self in (Classification.HIGH, Classification.LOW, Classification.NODATA_FAIL,
                        Classification.ERROR)


class Verdict(StrEnum):
    """What the judgment says: ``pass``, ``marginal`` (cannot tell yet) or ``fail``, or
    ``error``, which is *not* a verdict: the data of a scored metric could not be fetched
    because its source failed (``report.details["fetch_failures"]`` says which and why), so
    nothing about the canary was decided and the report has no score. The service reports it
    as each controller's error, so the controller's own error policy applies."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    ERROR = "error"


_AS_IS = frozenset({str, int, bool, type(None)})


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: make them ``None`` so every adapter emits valid JSON.

    numpy scalars (``np.int64``, ``np.bool_`` ...) become Python numbers, which ``json`` can
    write; numpy arrays become lists; dataclasses (the report's own parts) become dicts of
    their fields, as ``dataclasses.asdict`` makes them.
    """
    # One walk, the common exact types first: a report has hundreds of numbers, and
    # dataclasses.asdict deep-copies each before this would read it again (most of what
    # serialising a small judgment cost).
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind in _AS_IS:
        return value
    if kind is dict:
        return {k: _clean(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_clean(v) for v in value]
    if hasattr(kind, "__dataclass_fields__") and not isinstance(value, type):
        return {f.name: _clean(getattr(value, f.name)) for f in fields(value)}
    # Duck-typed (numpy scalars and arrays have ``tolist``), so that reading a report does not
    # import numpy: the CLI's start-up pays for this module.
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def json_bytes(value: Any) -> bytes:
    """``value`` (JSON-ready, as :func:`_clean` leaves it) as JSON: written by orjson, in
    about a tenth of the standard library's time, or by the standard library where orjson
    refuses it (a key that is not a string, an int beyond 64 bits), which writes those."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value).encode()


_FRAME_COLUMNS = (
    "metric", "classification", "groups", "test", "direction", "critical", "muted",
    "critical_failure", "estimate", "low", "high", "confidence", "p_value", "effect_size",
    "effect_measure", "baseline_count", "canary_count", "baseline_mean", "canary_mean",
    "baseline_median", "canary_median", "reason",
)


@dataclass(frozen=True)
class SideSummary:
    """Descriptive numbers for one side (baseline or canary) after preprocessing."""

    count: int
    """Points judged (after NaN handling and outlier removal)."""
    mean: float = math.nan
    median: float = math.nan
    std: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    min: float = math.nan
    max: float = math.nan
    nan_count: int = 0
    """NaN points in the input (removed or replaced by 0, per the metric's NaN strategy)."""
    infinite_count: int = 0
    outliers_removed: int = 0


@dataclass(frozen=True)
class MetricResult:
    """The judgment of one metric, with the numbers behind it and a sentence saying why."""

    name: str
    classification: Classification
    reason: str
    """One sentence a release engineer understands, e.g. "Canary is 18% higher than baseline
    (shift +12.3 ms, 98% CI [+8.1, +16.0]); increases fail this metric"."""
    groups: tuple[str, ...] = ("default",)
    test: str = "mann_whitney"
    direction: str = "either"
    critical: bool = False
    muted: bool = False
    critical_failure: bool = False
    """This metric fails the whole canary (score forced to 0): a critical metric that did not
    pass (beyond its critical effect size, or without data)."""
    estimate: float = math.nan
    """Shift estimate, canary minus baseline (Hodges-Lehmann for Mann-Whitney)."""
    low: float = math.nan
    high: float = math.nan
    confidence: float = math.nan
    p_value: float = math.nan
    effect_size: float = math.nan
    effect_measure: str | None = None
    baseline: SideSummary = field(default_factory=lambda: SideSummary(count=0))
    canary: SideSummary = field(default_factory=lambda: SideSummary(count=0))
    details: dict[str, Any] = field(default_factory=dict)
    """Test-specific extras (method, thresholds compared, correction applied ...)."""

    def to_dict(self) -> dict[str, Any]:
        return _clean(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MetricResult:
        """Back from :meth:`to_dict` (as stored with an analysis); ``None`` numbers are NaN."""
        def number(value: Any) -> float:
            return math.nan if value is None else float(value)

        def side(value: Any) -> SideSummary:
            values = dict(value or {})
            return SideSummary(
                count=int(values.get("count") or 0),
                **{name: number(values.get(name))
                   for name in ("mean", "median", "std", "p90", "p99", "min", "max")},
                nan_count=int(values.get("nan_count") or 0),
                infinite_count=int(values.get("infinite_count") or 0),
                outliers_removed=int(values.get("outliers_removed") or 0),
            )

        return cls(
            name=str(raw["name"]),
            classification=Classification(raw["classification"]),
            reason=str(raw.get("reason", "")),
            groups=tuple(raw.get("groups") or ("default",)),
            test=str(raw.get("test", "mann_whitney")),
            direction=str(raw.get("direction", "either")),
            critical=bool(raw.get("critical", False)),
            muted=bool(raw.get("muted", False)),
            critical_failure=bool(raw.get("critical_failure", False)),
            **{name: number(raw.get(name))
               for name in ("estimate", "low", "high", "confidence", "p_value", "effect_size")},
            effect_measure=raw.get("effect_measure"),
            baseline=side(raw.get("baseline")),
            canary=side(raw.get("canary")),
            details=dict(raw.get("details") or {}),
        )


@dataclass(frozen=True)
class GroupResult:
    """A group's score: 100 * passing / scored metrics, and its weight in the total."""

    name: str
    score: float
    weight: float
    counts: dict[str, int] = field(default_factory=dict)
    """How many metrics of the group had each classification."""

    def to_dict(self) -> dict[str, Any]:
        return _clean(self)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Report:
    """The answer to "is the canary as good as the baseline?"."""

    verdict: Verdict
    score: float
    reason: str
    """Why the verdict, in one or two sentences (which rule decided it)."""
    pass_threshold: float
    marginal_threshold: float
    metrics: tuple[MetricResult, ...]
    groups: tuple[GroupResult, ...]
    mode: str = "default"
    config_name: str = "canary"
    details: dict[str, Any] = field(default_factory=dict)
    """Scoring extras: critical failures, nodata share, multiple-testing correction ..."""

    @property
    def is_error(self) -> bool:
        """An error outcome: no verdict, no score (see :class:`Verdict`)."""
        return self.verdict is Verdict.ERROR

    def metric(self, name: str) -> MetricResult:
        """The result of metric ``name``; :class:`~judge.errors.UnknownMetricError` (a
        ``KeyError``) listing the report's metrics when there is none."""
        for result in self.metrics:
            if result.name == name:
                return result
        raise UnknownMetricError(name, [m.name for m in self.metrics],
                                 f"the report of config {self.config_name!r}")

    def ordered_metrics(self) -> list[MetricResult]:
        """The metrics as someone reading a verdict wants them: critical failures, other
        failures, errors, then those without enough evidence, then the passes; config order
        within each."""
        def rank(m: MetricResult) -> int:
            if m.critical_failure:
                return 0
            if m.classification is Classification.ERROR:
                return 2
            if m.classification.failed:
                return 1
            if m.classification is not Classification.PASS:
                return 3
            return 4

        return sorted(self.metrics, key=rank)

    def summary(self) -> str:
        """A few lines for a terminal or a notebook: the verdict, score and reason, then each
        metric that is not a pass (failures first) with its reason, and how many passed."""
        score = "no score" if math.isnan(self.score) else f"score {self.score:g}"
        lines = [f"{self.verdict.value.upper()} ({score}; pass >= {self.pass_threshold:g}, "
                 f"marginal >= {self.marginal_threshold:g}) - config {self.config_name!r}, "
                 f"{self.mode} mode", self.reason]
        passed = 0
        for m in self.ordered_metrics():
            if m.classification is Classification.PASS:
                passed += 1
                continue
            flag = " (critical)" if m.critical else ""
            lines.append(f"  {m.name}{flag}: {m.classification.value} - {m.reason}")
        lines.append(f"  {passed} of {len(self.metrics)} metrics passed.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Report(verdict={self.verdict.value!r}, score={self.score!r}, "
                f"metrics={len(self.metrics)}, config_name={self.config_name!r})")

    def _repr_html_(self) -> str:
        """Jupyter's view: the verdict, score and reason, then one row per metric, failures
        first. Everything shown is escaped (metric names and reasons are user input)."""
        from html import escape

        score = "no score" if math.isnan(self.score) else f"{self.score:g}"
        colour = {"pass": "#1a7f37", "marginal": "#9a6700", "fail": "#cf222e"}.get(
            self.verdict.value, "#57606a")
        rows = []
        for m in self.ordered_metrics():
            interval = ("" if math.isnan(m.estimate) else
                        f"{m.estimate:.4g} [{m.low:.4g}, {m.high:.4g}]")
            rows.append(
                "<tr>"
                f"<td>{escape(m.name)}{' <b>(critical)</b>' if m.critical else ''}</td>"
                f"<td>{escape(m.classification.value)}</td>"
                f"<td>{escape(interval)}</td>"
                f"<td style='text-align:left'>{escape(m.reason)}</td>"
                "</tr>")
        return (
            f"<div><p><b style='color:{colour}'>{escape(self.verdict.value.upper())}</b>, "
            f"score {escape(score)} (pass &ge; {self.pass_threshold:g}, marginal &ge; "
            f"{self.marginal_threshold:g}); config {escape(self.config_name)}, "
            f"{escape(self.mode)} mode</p><p>{escape(self.reason)}</p>"
            "<table><thead><tr><th>metric</th><th>classification</th>"
            "<th>estimate [interval]</th><th>reason</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "score": _clean(self.score),
            "reason": self.reason,
            "thresholds": {"pass": self.pass_threshold, "marginal": self.marginal_threshold},
            "mode": self.mode,
            "config_name": self.config_name,
            "groups": [g.to_dict() for g in self.groups],
            "metrics": [m.to_dict() for m in self.metrics],
            "details": _clean(self.details),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Report:
        """Back from :meth:`to_dict` (a stored answer given again, e.g. a repeated poll of a
        sequential run); a ``None`` score is NaN."""
        thresholds = dict(raw.get("thresholds") or {})
        score = raw.get("score")
        return cls(
            verdict=Verdict(raw["verdict"]),
            score=math.nan if score is None else float(score),
            reason=str(raw.get("reason", "")),
            pass_threshold=float(thresholds.get("pass", math.nan)),
            marginal_threshold=float(thresholds.get("marginal", math.nan)),
            metrics=tuple(MetricResult.from_dict(m) for m in raw.get("metrics") or ()),
            groups=tuple(
                GroupResult(name=str(g["name"]),
                            score=math.nan if g.get("score") is None else float(g["score"]),
                            weight=float(g.get("weight", 1.0)), counts=dict(g.get("counts") or {}))
                for g in raw.get("groups") or ()
            ),
            mode=str(raw.get("mode", "default")),
            config_name=str(raw.get("config_name", "canary")),
            details=dict(raw.get("details") or {}),
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: classification, reason, estimate, interval, effect size, and
        count/mean/median of each side."""
        import pandas as pd

        rows = []
        for m in self.metrics:
            rows.append(
                {
                    "metric": m.name,
                    "classification": m.classification.value,
                    "groups": ",".join(m.groups),
                    "test": m.test,
                    "direction": m.direction,
                    "critical": m.critical,
                    "muted": m.muted,
                    "critical_failure": m.critical_failure,
                    "estimate": m.estimate,
                    "low": m.low,
                    "high": m.high,
                    "confidence": m.confidence,
                    "p_value": m.p_value,
                    "effect_size": m.effect_size,
                    "effect_measure": m.effect_measure,
                    "baseline_count": m.baseline.count,
                    "canary_count": m.canary.count,
                    "baseline_mean": m.baseline.mean,
                    "canary_mean": m.canary.mean,
                    "baseline_median": m.baseline.median,
                    "canary_median": m.canary.median,
                    "reason": m.reason,
                }
            )
        # Explicit columns keep an empty report a well-formed (empty) frame.
        return pd.DataFrame(rows, columns=list(_FRAME_COLUMNS)).set_index("metric")
