"""Pure statistics on arrays: the Mann-Whitney test with Hodges-Lehmann interval, preprocessing,
effect sizes and aggregates. Imports only numpy, scipy and the standard library.

See ``docs/statistics.md`` for what is computed and the references.
"""

from __future__ import annotations

from judge.stats._descriptive import Aggregation, Summary, aggregate, cles, mean_ratio, summarize
from judge.stats._mann_whitney import MannWhitneyResult, mann_whitney, mann_whitney_many
from judge.stats._preprocessing import NanStrategy, apply_nan_strategy, remove_outliers_iqr
from judge.stats._wilcox import IntervalSearch, Method

__all__ = [
    "Aggregation",
    "IntervalSearch",
    "MannWhitneyResult",
    "Method",
    "NanStrategy",
    "Summary",
    "aggregate",
    "apply_nan_strategy",
    "cles",
    "mann_whitney",
    "mann_whitney_many",
    "mean_ratio",
    "remove_outliers_iqr",
    "summarize",
]
