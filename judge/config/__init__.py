"""Canary configs: the native models (:mod:`judge.config.models`), their enumerations
(:mod:`judge.config.enums`), the typed queries a metric sends to its source
(:mod:`judge.config.queries`), and Kayenta's JSON read and written back
(:mod:`judge.config.kayenta`). Parsed once, strictly: an unknown field or value is an error that
names its path."""

from __future__ import annotations

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
from judge.config.kayenta import (
    KayentaIgnoredFieldWarning,
    config_to_kayenta,
    looks_like_kayenta,
)
from judge.config.models import (
    CanaryConfig,
    EffectSize,
    MannWhitneyTest,
    MetricConfig,
    MetricTest,
    MultipleTesting,
    Outliers,
    QuantileTest,
    RateRatioTest,
    RelativeBound,
    ScoreThresholds,
    SequentialSettings,
    ThresholdTest,
    config_from_kayenta,
)

__all__ = [
    "Aggregate",
    "Autocorrelation",
    "CanaryConfig",
    "Direction",
    "EffectMeasure",
    "EffectSize",
    "JudgeMode",
    "KayentaIgnoredFieldWarning",
    "MannWhitneyTest",
    "MetricConfig",
    "MetricTest",
    "MultipleTesting",
    "MultipleTestingMethod",
    "NanStrategy",
    "OutlierStrategy",
    "Outliers",
    "QuantileTest",
    "RateRatioTest",
    "RelativeBound",
    "ScoreThresholds",
    "SequentialSettings",
    "ThresholdTest",
    "config_from_kayenta",
    "config_to_kayenta",
    "looks_like_kayenta",
]
