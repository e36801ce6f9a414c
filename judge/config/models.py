"""Canary configs: which metrics to judge, how, and how to score them.

A config is parsed once, strictly: an unknown field or value is an error that names its path
(pydantic's ``ValidationError`` lists ``metrics.2.test.confidence`` style locations). Enums are
enums, never free strings, so a typo in a direction or a strategy cannot become a silent default.

The native format (YAML or JSON)::

    name: checkout
    mode: default              # the judge: "default" (ours) or "kayenta" (NetflixACAJudge)
    thresholds: {pass: 95, marginal: 75}
    groups: {latency: 60, errors: 40}   # weights; groups without one share what is left of 100
    metrics:
      - name: p99 latency
        groups: [latency]
        query: {type: prometheus, promql: 'histogram_quantile(0.99, ...{version="${scope}"})'}
        direction: increase
        test: {kind: mann_whitney, confidence: 0.98}

Kayenta configs are read with :meth:`CanaryConfig.from_kayenta` (see ``judge.config.kayenta``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from judge.config.enums import (
    Aggregate,
    Autocorrelation,
    Direction,
    EffectMeasure,
    JudgeMode,
    MultipleTestingMethod,
    NanStrategy,
    OutlierStrategy,
)
from judge.config.kayenta import kayenta_to_native, looks_like_kayenta
from judge.config.queries import ColumnQuery, Query
from judge.errors import ConfigError, UnknownMetricError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)









class Outliers(_Strict):
    """IQR outlier removal as Kayenta does it (fences at factor * IQR beyond the quartiles)."""

    strategy: OutlierStrategy = OutlierStrategy.KEEP
    factor: float = Field(default=3.0, gt=0, alias="outlierFactor")


class EffectSize(_Strict):
    """How large a significant shift must be to count.

    With ``meanRatio``, ``allowed_increase: 1.1`` means the canary's mean may be up to 10% above
    the baseline's before an increase fails the metric; 1.0 (the default) lets any significant
    increase fail it (in Kayenta mode, as Kayenta does, only when the ratio is at least 1; in
    default mode whatever the ratio, which must not veto the rank test's estimate).
    ``critical_*`` apply instead to critical metrics. With ``cles`` the limits are
    probabilities (0.5 = no effect).
    """

    measure: EffectMeasure = EffectMeasure.MEAN_RATIO
    allowed_increase: float = Field(default=1.0, alias="allowedIncrease")
    allowed_decrease: float = Field(default=1.0, alias="allowedDecrease")
    critical_increase: float = Field(default=1.0, alias="criticalIncrease")
    critical_decrease: float = Field(default=1.0, alias="criticalDecrease")

    @model_validator(mode="before")
    @classmethod
    def _neutral_defaults(cls, raw: Any) -> Any:
        # "No effect" is a ratio of 1.0 but a CLES of 0.5: limits left out default to the
        # measure's neutral value, as Kayenta's NetflixACAJudge does.
        if not isinstance(raw, Mapping) or raw.get("measure") not in ("cles", EffectMeasure.CLES):
            return raw
        filled = dict(raw)
        for snake, camel in (
            ("allowed_increase", "allowedIncrease"),
            ("allowed_decrease", "allowedDecrease"),
            ("critical_increase", "criticalIncrease"),
            ("critical_decrease", "criticalDecrease"),
        ):
            if snake not in filled and camel not in filled:
                filled[snake] = 0.5
        return filled

    def neutral(self) -> float:
        """The effect size meaning "no change": 1.0 for a ratio of means, 0.5 for CLES."""
        return 0.5 if self.measure is EffectMeasure.CLES else 1.0


class MannWhitneyTest(_Strict):
    """Mann-Whitney U test with the Hodges-Lehmann shift and its confidence interval.

    A shift is significant when the interval excludes a band of ``tolerance * |estimate|``
    around zero (Kayenta's rule); it then fails the metric if the effect size also passes the
    allowed limit in a direction the metric cares about.
    """

    kind: Literal["mann_whitney"] = "mann_whitney"
    confidence: float = Field(default=0.98, gt=0.5, lt=1.0)
    tolerance: float = Field(default=0.25, ge=0)
    effect_size: EffectSize = Field(default_factory=EffectSize, alias="effectSize")
    autocorrelation: Autocorrelation = Autocorrelation.AUTO
    """Default mode only: ``auto`` corrects the test for serially correlated points (effective
    sample size, see ``docs/default-judge.md``); ``none`` treats points as independent."""
    tails: bool = True
    """Default mode only: also compare the tails that matter for the direction (a wider
    spread or heavier tail with an unchanged median fails the metric)."""
    spread_reach: float = Field(default=1.0, gt=0)
    """Default mode only, with ``tails``: a wider spread fails the metric only when the
    canary's p90 (p10 for decreases) is at least this many times as far from the baseline's
    median as the baseline's p90 (p10) is: 1, the default, asks that its values reach beyond
    the baseline's (``docs/default-judge.md``, "Spread and tails")."""


class RelativeBound(_Strict):
    """A limit relative to the baseline's aggregate: at most ``percent`` % and/or ``absolute``
    units beyond it (both given: the looser one applies)."""

    percent: float | None = Field(default=None, ge=0)
    absolute: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _something(self) -> RelativeBound:
        if self.percent is None and self.absolute is None:
            raise ValueError("a relative bound needs 'percent' or 'absolute'")
        return self


class ThresholdTest(_Strict):
    """Compare an aggregate of the canary with fixed bounds and/or with the baseline's.

    ``aggregate: percentile`` needs ``percentile`` (0-100). ``max``/``min`` are absolute
    bounds on the canary's aggregate; ``relative`` bounds the change from the baseline's
    aggregate in the metric's direction.
    """

    kind: Literal["threshold"] = "threshold"
    aggregate: Aggregate = Aggregate.MEAN
    percentile: float | None = Field(default=None, ge=0, le=100)
    max: float | None = None
    min: float | None = None
    relative: RelativeBound | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdTest:
        if (self.aggregate is Aggregate.PERCENTILE) != (self.percentile is not None):
            raise ValueError("'percentile' is required with aggregate: percentile, and only then")
        if self.max is None and self.min is None and self.relative is None:
            raise ValueError("a threshold test needs 'max', 'min' or 'relative'")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is above 'max' ({self.max})")
        return self


class RateRatioTest(_Strict):
    """Default mode: judge a count (errors) on its counts, against its denominator (requests).

    The conditional binomial test of the Poisson rate ratio canary / baseline (R's
    ``poisson.test``), with a quasi-Poisson dispersion estimated from the per-interval counts
    (``overdispersion: auto``). ``denominator`` names the data column counting the trials
    (requests) or, for fetched data, another metric of the config whose series is that count;
    without it each interval counts as one unit of exposure. A significant
    increase fails when the ratio estimate is at least ``allowed_increase`` (decrease mirrored).
    Without a significant change the metric passes only when the evidence rules out a ratio
    above ``margin`` (or, with a denominator, a canary rate above ``negligible_rate``);
    otherwise it is ``nodata``: not enough traffic to tell.
    """

    kind: Literal["rate_ratio"] = "rate_ratio"
    denominator: str | None = None
    confidence: float = Field(default=0.98, gt=0.5, lt=1.0)
    allowed_increase: float = Field(default=1.0, ge=1.0, alias="allowedIncrease")
    allowed_decrease: float = Field(default=1.0, gt=0.0, le=1.0, alias="allowedDecrease")
    margin: float = Field(default=3.0, gt=1.0)
    negligible_rate: float = Field(default=0.002, ge=0.0, alias="negligibleRate")
    overdispersion: Autocorrelation = Autocorrelation.AUTO


class QuantileTest(_Strict):
    """Default mode: compare the tails at ``quantiles`` (generalised median test: share of
    points beyond the pooled quantile), upper quantiles for increases, ``1 - q`` for decreases.
    """

    kind: Literal["quantiles"] = "quantiles"
    quantiles: tuple[float, ...] = (0.9, 0.99)
    confidence: float = Field(default=0.98, gt=0.5, lt=1.0)
    autocorrelation: Autocorrelation = Autocorrelation.AUTO

    @field_validator("quantiles")
    @classmethod
    def _in_range(cls, quantiles: tuple[float, ...]) -> tuple[float, ...]:
        if not quantiles or any(not 0.5 < q < 1.0 for q in quantiles):
            raise ValueError("quantiles must be a non-empty list of values in (0.5, 1)")
        return quantiles


MetricTest = Annotated[
    MannWhitneyTest | ThresholdTest | RateRatioTest | QuantileTest, Field(discriminator="kind")
]



class MultipleTesting(_Strict):
    """Default mode: keep the chance that *some* metric fails by luck at most ``level``
    (Holm or Bonferroni over the tested metrics). ``none``: each metric at its own
    ``confidence``."""

    method: MultipleTestingMethod = MultipleTestingMethod.HOLM
    level: float = Field(default=0.02, gt=0.0, lt=0.5)


class SequentialSettings(_Strict):
    """Default mode, sequential (polled) judgments: anytime-valid at ``level`` over the whole
    run (split over the metrics); ``horizon`` points is where the confidence sequences are
    tightest (20: a third of an hour-long run, to catch clear regressions early); a metric passes
    once its evidence rules out a shift beyond ``pass_margin`` robust standard deviations of the
    minute-by-minute difference (half that for spread/tail shares), or a rate ratio above
    ``count_margin`` (or a canary rate above the test's ``negligible_rate``)."""

    level: float = Field(default=0.05, gt=0.0, lt=0.5)
    horizon: float = Field(default=20.0, gt=0.0)
    pass_margin: float = Field(default=1.0, gt=0.0, le=3.0)
    count_margin: float = Field(default=2.0, gt=1.0)



class MetricConfig(_Strict):
    """One metric: where its data comes from and how a canary's shift in it is judged."""

    name: str = Field(min_length=1)
    groups: tuple[str, ...] = ("default",)
    query: Query = Field(default_factory=ColumnQuery)
    source: str | None = None
    """Name of a configured metric source; ``None`` uses the analysis' default source."""
    scope_name: str = Field(default="default", alias="scopeName")
    direction: Direction = Direction.EITHER
    critical: bool = False
    must_have_data: bool = Field(default=False, alias="mustHaveData")
    muted: bool = False
    """A muted metric is judged and reported but not scored (Kayenta's ``muted``)."""
    unit: str | None = Field(default=None, min_length=1, max_length=32)
    """What the values are measured in (``s``, ``ms``, ``req/min``, ``%``): shown on the
    report page's axes and numbers. Not used in judging."""
    nan_strategy: NanStrategy = Field(default=NanStrategy.REMOVE, alias="nanStrategy")
    outliers: Outliers = Field(default_factory=Outliers)
    test: MetricTest = Field(default_factory=MannWhitneyTest)

    @field_validator("test", mode="before")
    @classmethod
    def _default_kind(cls, test: Any) -> Any:
        # ``test: {confidence: 0.95}`` means the default test; only other kinds must be named.
        if isinstance(test, Mapping) and "kind" not in test:
            return {"kind": "mann_whitney", **test}
        return test

    @field_validator("groups")
    @classmethod
    def _groups_named(cls, groups: tuple[str, ...]) -> tuple[str, ...]:
        if not groups:
            raise ValueError("a metric needs at least one group")
        if any(not g for g in groups):
            raise ValueError("group names must not be empty")
        return groups

    @property
    def column(self) -> str:
        """The key this metric's points go under in a judge's input (its ``query.column``,
        else its name); a count test's ``denominator`` names such a key too."""
        if isinstance(self.query, ColumnQuery) and self.query.column:
            return self.query.column
        return self.name


class ScoreThresholds(_Strict):
    """Score at or above ``pass`` passes; at or above ``marginal`` is marginal; below fails."""

    pass_: float = Field(default=95.0, alias="pass", ge=0, le=100)
    marginal: float = Field(default=75.0, ge=0, le=100)

    @classmethod
    def of(cls, pass_: float, marginal: float) -> ScoreThresholds:
        """Validated thresholds from the two limits."""
        return cls.model_validate({"pass": pass_, "marginal": marginal})

    def replaced(
        self, pass_: float | None = None, marginal: float | None = None
    ) -> ScoreThresholds:
        """These thresholds with either limit replaced (validated again: a ``marginal`` above
        ``pass`` is refused)."""
        return ScoreThresholds.of(
            self.pass_ if pass_ is None else pass_,
            self.marginal if marginal is None else marginal,
        )

    def to_dict(self) -> dict[str, float]:
        """``{"pass": .., "marginal": ..}``, as files and JSON bodies write them (``pass`` is a
        Python keyword, so the field is ``pass_``)."""
        return {"pass": self.pass_, "marginal": self.marginal}

    @model_validator(mode="after")
    def _ordered(self) -> ScoreThresholds:
        if self.marginal > self.pass_:
            raise ValueError(
                f"'marginal' ({self.marginal}) must not be above 'pass' ({self.pass_})"
            )
        return self


def _group_mismatch(detail: str) -> PydanticCustomError:
    # A custom error, not ValueError: the message then starts with the field it names (no
    # "Value error, " before it); the detail goes through the context so braces in a group's
    # name are not read as placeholders.
    return PydanticCustomError("group_mismatch", "{detail}", {"detail": detail})


class CanaryConfig(_Strict):
    """A whole canary config: metrics, group weights and score thresholds."""

    name: str = "canary"
    description: str | None = None
    mode: JudgeMode = JudgeMode.DEFAULT
    thresholds: ScoreThresholds = Field(default_factory=ScoreThresholds)
    groups: dict[str, float] = Field(default_factory=dict)
    """Group weights in percent. Groups a metric names without a weight share what is left."""
    templates: dict[str, str] = Field(default_factory=dict)
    """Named query filter templates (Kayenta's ``templates``), used by
    ``custom_filter_template``."""
    applications: tuple[str, ...] = ()
    metrics: tuple[MetricConfig, ...]
    multiple_testing: MultipleTesting = Field(
        default_factory=MultipleTesting, alias="multipleTesting"
    )
    """Default mode: family-wise correction over the metrics (ignored in kayenta mode)."""
    sequential: SequentialSettings = Field(default_factory=SequentialSettings)
    """Default mode: settings of sequential (polled, anytime-valid) judgments."""
    extras: dict[str, Any] = Field(default_factory=dict)
    """Fields of an imported config that do not change a judgment (Kayenta's ``judge`` block,
    ``configVersion`` ...) kept so an export gives them back."""

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, metrics: tuple[MetricConfig, ...]) -> tuple[MetricConfig, ...]:
        # An after-validator, not ``min_length``: pydantic would also report a list whose
        # items failed as "too short", next to the real error.
        if not metrics:
            raise ValueError("a canary config needs at least one metric")
        return metrics

    @field_validator("groups")
    @classmethod
    def _weights(cls, groups: dict[str, float]) -> dict[str, float]:
        for name, weight in groups.items():
            if weight < 0:
                raise ValueError(f"group {name!r} has a negative weight ({weight})")
        if sum(groups.values()) > 100.0 + 1e-9:
            raise ValueError(f"group weights add up to {sum(groups.values())}, above 100")
        return groups

    @model_validator(mode="after")
    def _consistent(self) -> CanaryConfig:
        seen: set[str] = set()
        for metric in self.metrics:
            if metric.name in seen:
                raise ValueError(f"metric name {metric.name!r} is used twice")
            seen.add(metric.name)
            template = getattr(metric.query, "custom_filter_template", None)
            if template is not None and template not in self.templates:
                raise ValueError(
                    f"metric {metric.name!r} uses filter template {template!r}, "
                    f"which is not in 'templates' ({sorted(self.templates) or 'none defined'})"
                )
        self._check_group_names()
        return self

    def _check_group_names(self) -> None:
        """Group names in the weights and in the metrics must match where a mismatch would
        change the score: a weighted group no metric is in (its weight is lost: the best
        score falls below 100), and a metric none of whose groups has a weight when the
        weights leave nothing to share (it counts for nothing). Either is almost always a typo
        (``groups: {errors: 100}`` with a metric in ``[errros]``), and would fail every canary
        or ignore a metric; so it is an error naming both spellings. An extra unweighted group
        next to a weighted one (a tag, as in Kayenta's own sample configs) changes nothing."""
        used = {group for metric in self.metrics for group in metric.groups}
        unused = sorted(set(self.groups) - used)
        if unused:
            raise _group_mismatch(
                f"groups: {unused} have a weight but no metric is in them (the metrics' groups: "
                f"{sorted(used)}); a group's name must match a metric's 'groups' entry"
            )
        if self.groups and sum(self.groups.values()) >= 100.0 - 1e-9:
            for index, metric in enumerate(self.metrics):
                if not any(group in self.groups for group in metric.groups):
                    raise _group_mismatch(
                        f"metrics[{index}].groups: {list(metric.groups)} (metric "
                        f"{metric.name!r}): no weight in 'groups' ({sorted(self.groups)}), whose "
                        "weights already add up to 100: the metric would count for nothing; "
                        "add a weight or fix the name"
                    )

    @property
    def denominators(self) -> frozenset[str]:
        """The series names count tests divide by (their ``denominator``): a judge's input
        carries them next to the metrics."""
        return frozenset(
            metric.test.denominator
            for metric in self.metrics
            if isinstance(metric.test, RateRatioTest) and metric.test.denominator
        )

    def metric(self, name: str) -> MetricConfig:
        """The metric ``name``; :class:`~judge.errors.UnknownMetricError` (a ``KeyError``)
        listing the config's metrics when there is none."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise UnknownMetricError(name, [m.name for m in self.metrics],
                                 f"config {self.name!r}")

    # -- reading -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CanaryConfig:
        """Parse a native config (a mapping, as read from YAML or JSON)."""
        return cls.model_validate(raw)

    @classmethod
    def from_kayenta(cls, raw: Mapping[str, Any]) -> CanaryConfig:
        """Read a Kayenta canary config (the JSON Kayenta stores) without losing its meaning."""
        return cls.model_validate(kayenta_to_native(raw))

    @classmethod
    def load(cls, path: str | Path) -> CanaryConfig:
        """Read a config file: YAML or JSON, native or Kayenta (recognised by its shape)."""
        text = Path(path).read_text()
        return cls.parse_text(text)

    @classmethod
    def parse_text(cls, text: str) -> CanaryConfig:
        raw = yaml.safe_load(text) if text.lstrip()[:1] not in "{[" else json.loads(text)
        if not isinstance(raw, Mapping):
            raise ConfigError("a canary config must be a mapping at its top level")
        if looks_like_kayenta(raw):
            return cls.from_kayenta(raw)
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """The native form, JSON-ready (round-trips through :meth:`from_dict`)."""
        native = self.model_dump(mode="json", by_alias=False, exclude_none=True)
        native["thresholds"] = self.thresholds.to_dict()
        return native


def config_from_kayenta(raw: Mapping[str, Any]) -> CanaryConfig:
    """Read a Kayenta canary config (the JSON Kayenta stores) as a ``mode: kayenta`` config.

    Raises pydantic's ``ValidationError`` listing every problem with its path (an unknown or
    obsolete field, a value Kayenta would silently replace by a default, a metric name used
    twice, a judge other than NetflixACAJudge).
    """
    return CanaryConfig.from_kayenta(raw)
