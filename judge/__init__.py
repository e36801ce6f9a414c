"""canary-judge: is the canary as good as the baseline?

The public surface is re-exported here. The parts, in the order data flows
(``docs/architecture.md``): ``judge.config`` (configs, Kayenta import/export), ``judge.ports``
(what a metric source is), ``judge.analysis`` (the use-cases: fetch and judge, poll a
sequential run), ``judge.judging`` (judge data in hand), ``judge.judges`` (the judges, each a
strategy), ``judge.stats`` (pure statistics), ``judge.scoring`` and ``judge.report`` (scores,
verdicts, results), ``judge.errors`` (the one exception tree), ``judge.lab`` (notebook tools).
"""

from __future__ import annotations

from judge.analysis import (
    PollOutcome,
    SequentialAnalysis,
    SequentialStatus,
    analyze,
    analyze_async,
    poll_async,
)
from judge.config import (
    CanaryConfig,
    Direction,
    JudgeMode,
    MetricConfig,
    ScoreThresholds,
    config_from_kayenta,
    config_to_kayenta,
)
from judge.errors import (
    ConfigError,
    ConflictError,
    DataError,
    JudgeError,
    NotFoundError,
    QueryError,
    SourceConnectionError,
    SourceError,
    SourceTimeoutError,
)
from judge.fetching import RetryPolicy
from judge.judges.common import MetricData
from judge.judges.state import SequentialState
from judge.judging import FetchFailure, classify_metric, judge, judge_series, poll
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
    "ConfigError",
    "ConflictError",
    "DataError",
    "Direction",
    "FetchFailure",
    "GroupResult",
    "JudgeError",
    "JudgeMode",
    "MetricConfig",
    "MetricData",
    "MetricResult",
    "MetricSource",
    "NotFoundError",
    "PollOutcome",
    "QueryError",
    "Report",
    "RetryPolicy",
    "Scope",
    "ScopePair",
    "ScoreThresholds",
    "SequentialAnalysis",
    "SequentialState",
    "SequentialStatus",
    "SideSummary",
    "SourceConnectionError",
    "SourceError",
    "SourceTimeoutError",
    "Verdict",
    "analyze",
    "analyze_async",
    "classify_metric",
    "config_from_kayenta",
    "config_to_kayenta",
    "judge",
    "judge_series",
    "poll",
    "poll_async",
]
