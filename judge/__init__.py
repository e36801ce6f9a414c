"""canary-judge: is the canary as good as the baseline?

The public surface is re-exported here. The parts, in the order data flows
(``docs/architecture.md``): ``judge.config`` (configs, Kayenta import/export), ``judge.ports``
(what a metric source is), ``judge.analysis`` (the use-cases: fetch and judge, poll a
sequential run), ``judge.judging`` (judge data in hand), ``judge.judges`` (the judges, each a
strategy), ``judge.stats`` (pure statistics), ``judge.scoring`` and ``judge.report`` (scores,
verdicts, results), ``judge.errors`` (the one exception tree), ``judge.lab`` (notebook tools).

Nothing heavy is imported with the package: each public name is imported from its module when
first used (PEP 562), so ``import judge`` (and every ``canary-judge`` call) does not pay for
pandas, scipy or the judges until a judgment needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS: dict[str, str] = {
    "PollOutcome": "judge.analysis",
    "SequentialAnalysis": "judge.analysis",
    "SequentialStatus": "judge.analysis",
    "analyze": "judge.analysis",
    "analyze_async": "judge.analysis",
    "poll_async": "judge.analysis",
    "CanaryConfig": "judge.config",
    "Direction": "judge.config",
    "JudgeMode": "judge.config",
    "MetricConfig": "judge.config",
    "ScoreThresholds": "judge.config",
    "config_from_kayenta": "judge.config",
    "config_to_kayenta": "judge.config",
    "ConfigError": "judge.errors",
    "ConflictError": "judge.errors",
    "DataError": "judge.errors",
    "JudgeError": "judge.errors",
    "NotFoundError": "judge.errors",
    "QueryError": "judge.errors",
    "SourceConnectionError": "judge.errors",
    "SourceError": "judge.errors",
    "SourceTimeoutError": "judge.errors",
    "RetryPolicy": "judge.fetching",
    "MetricData": "judge.judges.common",
    "SequentialState": "judge.judges.state",
    "FetchFailure": "judge.judging",
    "classify_metric": "judge.judging",
    "judge": "judge.judging",
    "judge_series": "judge.judging",
    "poll": "judge.judging",
    "MetricSource": "judge.ports",
    "Scope": "judge.ports",
    "ScopePair": "judge.ports",
    "Classification": "judge.report",
    "GroupResult": "judge.report",
    "MetricResult": "judge.report",
    "Report": "judge.report",
    "SideSummary": "judge.report",
    "Verdict": "judge.report",
}
"""Public name -> the module that defines it."""

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'judge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
