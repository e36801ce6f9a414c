"""canary-judge: is the canary as good as the baseline?

The public surface is re-exported here; submodules hold the parts (``judge.stats`` pure
statistics, ``judge.config`` configs, ``judge.kayenta`` Kayenta configs, ``judge.classify``
per-metric classification, ``judge.scoring`` scores and verdicts, ``judge.judging`` the
``judge()`` entry point, ``judge.report`` results).
"""

from __future__ import annotations

from judge.analysis import RetryPolicy, analyze, analyze_async
from judge.config import (
    CanaryConfig,
    Direction,
    JudgeMode,
    MetricConfig,
    ScoreThresholds,
    config_from_kayenta,
    config_to_kayenta,
)
from judge.judging import FetchFailure, judge, judge_series
from judge.ports import MetricSource, Scope, ScopePair
from judge.report import (
    Classification,
    GroupResult,
    MetricResult,
    Report,
    SideSummary,
    Verdict,
)

__all__ = [
    "CanaryConfig",
    "Classification",
    "Direction",
    "FetchFailure",
    "GroupResult",
    "JudgeMode",
    "MetricConfig",
    "MetricResult",
    "MetricSource",
    "Report",
    "RetryPolicy",
    "Scope",
    "ScopePair",
    "ScoreThresholds",
    "SideSummary",
    "Verdict",
    "analyze",
    "analyze_async",
    "config_from_kayenta",
    "config_to_kayenta",
    "judge",
    "judge_series",
]
