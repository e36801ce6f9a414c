"""The enumerations of a canary config: every choice a config makes by name. Enums, never free
strings, so a typo in a direction or a strategy is an error that names the field."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Aggregate",
    "Autocorrelation",
    "Direction",
    "EffectMeasure",
    "JudgeMode",
    "MultipleTestingMethod",
    "NanStrategy",
    "OutlierStrategy",
]


class Direction(StrEnum):
    """Which way a change is bad: ``increase`` (latency, errors), ``decrease`` (throughput,
    success rate) or ``either``."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"

    @property
    def increase_matters(self) -> bool:
        """An increase can fail a metric with this direction."""
        return self in (Direction.INCREASE, Direction.EITHER)

    @property
    def decrease_matters(self) -> bool:
        """A decrease can fail a metric with this direction."""
        return self in (Direction.DECREASE, Direction.EITHER)


class NanStrategy(StrEnum):
    """What to do with NaN points (gaps): drop them (Kayenta's default) or count them as 0."""

    REMOVE = "remove"
    REPLACE = "replace"


class OutlierStrategy(StrEnum):
    KEEP = "keep"
    REMOVE = "remove"


class JudgeMode(StrEnum):
    """``default``: our judge (autocorrelation-aware, count tests, spread checks).
    ``kayenta``: reproduces NetflixACAJudge's classifications and scores exactly."""

    DEFAULT = "default"
    KAYENTA = "kayenta"


class Autocorrelation(StrEnum):
    """Default mode: ``auto`` allows for serially correlated points (or overdispersed counts);
    ``none`` assumes independent points (Poisson counts)."""

    AUTO = "auto"
    NONE = "none"


class EffectMeasure(StrEnum):
    """Effect size used to decide whether a significant shift matters (Kayenta's
    ``effectSize.measure``): ratio of means, or the common-language effect size."""

    MEAN_RATIO = "meanRatio"
    CLES = "cles"


class Aggregate(StrEnum):
    MEAN = "mean"
    MEDIAN = "median"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    SUM = "sum"
    PERCENTILE = "percentile"


class MultipleTestingMethod(StrEnum):
    """Family-wise correction over the metrics of a default-mode judgment."""

    HOLM = "holm"
    BONFERRONI = "bonferroni"
    NONE = "none"
