"""canary-judge: is the canary as good as the baseline?

The public surface is re-exported here; submodules hold the parts (``judge.stats`` pure
statistics, ``judge.config`` configs, ``judge.report`` results).
"""

from __future__ import annotations

from judge.config import CanaryConfig, Direction, JudgeMode, MetricConfig
from judge.report import Classification, GroupResult, MetricResult, Report, Verdict

__all__ = [
    "CanaryConfig",
    "Classification",
    "Direction",
    "GroupResult",
    "JudgeMode",
    "MetricConfig",
    "MetricResult",
    "Report",
    "Verdict",
]
